"""Books in, sentences out: sources (text, Markdown, EPUB), matter, normalisation, readings.

May import formats (cover images), system, settings and errors.
"""
