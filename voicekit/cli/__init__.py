"""The command line: one module per command (options -> call -> render), and the Rich views.

May import every other folder; nothing outside cli imports cli.
"""
