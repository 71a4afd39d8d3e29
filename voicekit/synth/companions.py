"""What goes beside the audiobook, timed from the job's sentence lengths: captions and a
read-along EPUB. Checked before any work (nothing of the user's is replaced), written
after the output."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from voicekit.errors import OutputError
from voicekit.formats.output import check_output
from voicekit.formats.timeline import Timeline
from voicekit.synth.captions import write_captions
from voicekit.synth.manifest import Manifest
from voicekit.synth.plan import Plan
from voicekit.synth.readalong import write_readalong


def check_companions(
    output: Path,
    captions: Sequence[str],
    readalong: Path | None,
    *,
    split: bool,
    force: bool,
    protect: tuple[Path, ...],
) -> None:
    """Refuse before any work what ``write_companions`` must not replace (as for the output).

    A split book's caption files are named after its chapter files, in the book's own
    folder, and are replaced with them.
    """
    paths = [] if split else [output.with_suffix(f".{kind}") for kind in captions]
    if readalong is not None:
        paths.append(readalong)
    for path in paths:
        if path == output:
            raise OutputError(f"{path} is the audiobook itself; choose another name")
        check_output(path, force, (*protect, output))


def write_companions(
    folder: Path,
    manifest: Manifest,
    plan: Plan,
    timeline: Timeline,
    output: Path,
    captions: Sequence[str],
    readalong: Path | None,
    *,
    fmt: str,
    split: bool,
    readalong_source: bytes | None = None,
) -> list[str]:
    """Captions (``--captions``) and the read-along EPUB (``--readalong``), if asked for;
    returns warnings for the user. ``readalong_source``: the source EPUB's bytes, where
    they were sent rather than read here (``RunOptions.readalong_source``)."""
    if captions:
        write_captions(folder, manifest, plan, timeline, output, fmt=fmt, split=split,
                       kinds=captions)  # fmt: skip
    if readalong is not None:
        return write_readalong(folder, manifest, plan, timeline, readalong,
                               source=readalong_source)  # fmt: skip
    return []
