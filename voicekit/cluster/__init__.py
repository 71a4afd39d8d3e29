"""Batches of books on a Ray cluster (``voicekit synth ... --cluster ADDRESS``).

Rank: above synth, below cli (tests/test_architecture.py). This package may import
errors, system, settings, formats, text, backends and synth; never profiles,
diagnostics or cli (the CLI renders what the runner reports). Ray itself is an
optional extra (``voicekit[cluster]``): it is imported lazily, through
``connect.import_ray``, so ``import voicekit.cluster`` works without it.

- ``connect``: the ``--cluster`` address (local, auto, ray://host:port) and ``ray.init``.
- ``worker``: the actor that holds one voice (a ``Synthesizer``) and makes whole books,
  or plans a book to split, makes one of its bucket ranges, and finishes it.
- ``units``: the units of work, and which books are split into ranges.
- ``splits``: the driver's side of a split book's job folder.
- ``readalong``: a book's read-along EPUB: the source's bytes sent, where it is written.
- ``runner``: the driver: places actors, hands out units, retries lost ones, writes
  results that come back through the object store; ``state``: the progress it reports.
"""
