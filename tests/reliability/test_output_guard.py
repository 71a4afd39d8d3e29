"""Issue 9, item 6: --force replaces regular files only, and never the book's own input."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.reliability.helpers import FAST, invoke, one_line_error, write_text
from voicekit.errors import OutputError
from voicekit.formats.output import check_output
from voicekit.settings import SynthSettings
from voicekit.synth.pipeline import RunOptions, Synthesizer
from voicekit.text.model import Book, BookMeta, Chapter


def _specials(tmp_path: Path) -> dict[str, Path]:
    target = tmp_path / "precious.wav"
    target.write_bytes(b"precious")
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    link = tmp_path / "link.wav"
    link.symlink_to(target)
    dangling = tmp_path / "dangling.wav"
    dangling.symlink_to(tmp_path / "nowhere.wav")
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    return {"a FIFO": fifo, "a symbolic link": link, "a symbolic link ": dangling,
            "a folder": folder}


def test_force_does_not_replace_what_is_not_a_regular_file(tmp_path: Path) -> None:
    for kind, path in _specials(tmp_path).items():
        with pytest.raises(OutputError, match=f"is {kind.strip()}.*; voicekit replaces only"):
            check_output(path, force=True)
    assert (tmp_path / "precious.wav").read_bytes() == b"precious"


def test_a_device_node_is_refused(tmp_path: Path) -> None:
    node = tmp_path / "null.wav"
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot make a device node here: {exc}")
    with pytest.raises(OutputError, match="is a character device"):
        check_output(node, force=True)
    with pytest.raises(OutputError, match="is a character device"):
        check_output(Path("/dev/null"), force=True)
    assert stat.S_ISCHR(os.lstat(node).st_mode)


def test_force_onto_a_fifo_from_the_command_line(tmp_path: Path) -> None:
    book = write_text(tmp_path / "book.md")
    fifo = tmp_path / "out.wav"
    os.mkfifo(fifo)
    one_line_error(invoke("synth", book, "-o", fifo, "--force", *FAST), 3, "is a FIFO")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_synth_never_writes_over_its_own_input(tmp_path: Path) -> None:
    book = write_text(tmp_path / "x.txt", "Hello there.\n")
    result = invoke("synth", book, "-o", book, "--format", "wav", "--force", *FAST)
    one_line_error(result, 3, "would replace the input")
    assert book.read_text() == "Hello there.\n"
    # another name for the same file (a hard link) is the input too
    twin = tmp_path / "twin.wav"
    os.link(book, twin)
    one_line_error(invoke("synth", book, "-o", twin, "--force", *FAST), 3,
                   "would replace the input")
    assert book.read_text() == "Hello there.\n"


@pytest.mark.slow
def test_split_chapter_files_are_guarded_too(tmp_path: Path,
                                             cpu_settings: SynthSettings) -> None:
    book = Book(BookMeta(title="T"), [Chapter(1, "One", ["Hello there."]),
                                      Chapter(2, "Two", ["The end."])])
    folder = tmp_path / "T"
    folder.mkdir()
    precious = tmp_path / "precious.wav"
    precious.write_bytes(b"precious")
    (folder / "02 - Two.wav").symlink_to(precious)
    synth = Synthesizer(cpu_settings)
    with pytest.raises(OutputError, match=r"02 - Two\.wav is a symbolic link"):
        list(synth.run(synth.plan(book), folder / "T.m3u8",
                       RunOptions(split=True, force=True)))
    assert (folder / "02 - Two.wav").is_symlink() and precious.read_bytes() == b"precious"
    assert not (folder / "T.m3u8").exists()
