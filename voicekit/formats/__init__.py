"""Audio files out: the encoder table, atomic output, chapters, tags, covers, ffmpeg, WAV.

May import system, settings and errors; knows nothing of jobs or voices.
"""
