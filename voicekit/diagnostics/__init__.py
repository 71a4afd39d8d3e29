"""Looking at the machine and the engine: doctor and its checks, bench, dry-run estimates.

May import synth and everything below it; never cli.
"""
