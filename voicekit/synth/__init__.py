"""Making an audiobook from a book: plan, job folder and manifest, pipeline, assembly.

May import text, backends, formats, system, settings and errors; never cli or diagnostics.
"""
