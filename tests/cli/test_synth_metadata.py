"""``synth --title --author --narrator --cover --language --series --series-index --year``:
they replace the book's own tags in every format."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.text.epub_factory import tiny_png
from voicekit.cli.main import app

runner = CliRunner()

FLAGS = ["--title", "Given Title", "--author", "Ann Author", "--author", "Bo Writer",
         "--narrator", "Nia Narrator", "--language", "en-GB", "--series", "The Saga",
         "--series-index", "2", "--year", "2021"]  # fmt: skip


def _synth(tmp_path: Path, out: Path, *extra: str) -> None:
    text = tmp_path / "own title.txt"
    text.write_text("Hello there.\n", encoding="utf-8")
    cover = tmp_path / "cover.png"
    cover.write_bytes(tiny_png())
    result = runner.invoke(app, ["synth", str(text), "-o", str(out), "--device", "cpu",
                                 "--backend", "ort", "--loudness", "0", "--cover", str(cover),
                                 *FLAGS, *extra])  # fmt: skip
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_mp3_m4b_and_flac_carry_the_given_tags(tmp_path: Path) -> None:
    from mutagen.flac import FLAC
    from mutagen.id3 import ID3
    from mutagen.mp4 import MP4

    _synth(tmp_path, tmp_path / "b.mp3")
    id3 = ID3(tmp_path / "b.mp3")
    assert str(id3["TIT2"]) == "Given Title" and str(id3["TPE1"]) == "Ann Author, Bo Writer"
    assert str(id3["TCOM"]) == "Nia Narrator" and str(id3["TDRC"]) == "2021"
    assert str(id3["TXXX:SERIES"]) == "The Saga" and str(id3["TXXX:SERIES-PART"]) == "2"
    assert id3.getall("APIC")[0].data == tiny_png()

    _synth(tmp_path, tmp_path / "b.m4b")
    mp4 = MP4(tmp_path / "b.m4b").tags
    assert mp4 is not None
    assert mp4["\xa9nam"] == ["Given Title"] and mp4["\xa9wrt"] == ["Nia Narrator"]
    assert mp4["\xa9mvn"] == ["The Saga"] and mp4["\xa9mvi"] == [2]
    assert mp4["\xa9day"] == ["2021"] and bytes(mp4["covr"][0]) == tiny_png()

    _synth(tmp_path, tmp_path / "b.flac")
    flac = FLAC(tmp_path / "b.flac")
    assert flac["ARTIST"] == ["Ann Author", "Bo Writer"] and flac["COMPOSER"] == ["Nia Narrator"]
    assert flac["LANGUAGE"] == ["en-GB"] and flac["SERIES-PART"] == ["2"]
    assert flac["DATE"] == ["2021"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--series-index", "second"], "is not a number like 2 or 2.5"),
        (["--year", "21"], "is not a four-digit year"),
        (["--cover", "missing.png"], "cover image not found"),
    ],
)
def test_bad_metadata_fails_before_any_work(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    text = tmp_path / "t.txt"
    text.write_text("Hello.\n", encoding="utf-8")
    out = tmp_path / "t.wav"
    result = runner.invoke(app, ["synth", str(text), "-o", str(out), *flags])
    assert result.exit_code == 2 and message in result.output
    assert not out.exists()
