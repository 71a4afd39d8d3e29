"""The read-along EPUB: valid EPUB 3 (epubcheck), clips inside the audio and in order."""

from __future__ import annotations

import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pytest

from voicekit.settings import SynthSettings
from voicekit.synth.pipeline import RunOptions, Synthesizer
from voicekit.text.model import Book, BookMeta, Chapter

pytestmark = pytest.mark.slow

EPUBCHECK = Path("/usr/bin/epubcheck")
BOOK = Book(
    BookMeta(title="Harbour & Light", authors=["A. Writer"], language="en"),
    [
        Chapter(1, "Chapter I", ["Mr. Ellis climbed the hill. He was 52 <then>.", "It rained."]),
        Chapter(2, "Chapter II", ["Mrs. Penhallow sold him bread."]),
    ],
)
SMIL = "{http://www.w3.org/ns/SMIL}"


def _seconds(clock: str) -> float:
    h, m, s = clock.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def _epubcheck(path: Path) -> subprocess.CompletedProcess[str]:
    # Debian's epubcheck is the jar itself (run through binfmt), so ask java for it
    java = shutil.which("java")
    if java and EPUBCHECK.resolve().suffix == ".jar":
        cmd = [java, "-jar", str(EPUBCHECK), str(path)]
    else:
        cmd = [str(EPUBCHECK), str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    tmp = tmp_path_factory.mktemp("readalong")
    settings = SynthSettings(device="cpu", backend="ort", sentence_silence=0.1,
                             paragraph_silence=0.2, chapter_silence=0.3)
    epub = tmp / "read.epub"
    with pytest.MonkeyPatch.context() as mp:  # one run for the module, away from the user's home
        mp.setenv("VOICEKIT_HOME", str(tmp / "home"))
        synth = Synthesizer(settings)
        plan = synth.plan(BOOK)
        list(synth.run(plan, tmp / "book.wav", RunOptions(readalong=epub)))
    return epub, tmp / "book.wav", plan


def test_passes_epubcheck(made: tuple[Path, Path, object]) -> None:
    if not EPUBCHECK.exists():
        pytest.skip("epubcheck is not installed (Debian package epubcheck)")
    result = _epubcheck(made[0])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 errors / 0 warnings" in result.stdout + result.stderr


def test_clips_lie_inside_the_audio_in_order(made: tuple[Path, Path, object]) -> None:
    epub, wav, plan = made
    with zipfile.ZipFile(epub) as z:
        names = z.namelist()
        assert names[0] == "mimetype" and z.getinfo("mimetype").compress_type == zipfile.ZIP_STORED
        audio = z.read("OEBPS/audio/book.mp3")
        smils = sorted(n for n in names if n.endswith(".smil"))
        assert len(smils) == 2
        opf = z.read("OEBPS/package.opf").decode()
        probe = Path(str(wav) + ".mp3")
        probe.write_bytes(audio)
        seconds = float(
            subprocess.run(
                ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                 str(probe)], capture_output=True, text=True, check=True,
            ).stdout
        )
        previous = 0.0
        texts = []
        durations = []
        for name in smils:
            root = ElementTree.fromstring(z.read(name))
            total = 0.0
            xhtml_name = ""
            for par in root.iter(f"{SMIL}par"):
                src = par.find(f"{SMIL}text").get("src")  # type: ignore[union-attr]
                clip = par.find(f"{SMIL}audio")
                assert clip is not None
                begin, end = _seconds(clip.get("clipBegin", "")), _seconds(clip.get("clipEnd", ""))
                assert previous <= begin < end <= seconds + 0.001
                previous = end
                total += end - begin
                xhtml_name, _, sid = src.partition("#")
                page = z.read(f"OEBPS/{xhtml_name}").decode()
                span = re.search(rf'<span id="{sid}">(.*?)</span>', page)
                assert span is not None
                texts.append(span.group(1))
            durations.append(total)
    # the book's own text (escaped as XHTML), one span per sentence
    sources = [s for b in plan.buckets for s in b.sources if s]  # type: ignore[attr-defined]
    assert texts == [s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                     for s in sources]
    assert "He was 52 &lt;then&gt;." in texts
    # media:duration: one per overlay and the book's, which is their sum
    found = re.findall(r'<meta property="media:duration"(?: refines="#([^"]+)")?>([^<]+)<', opf)
    per = [_seconds(v) for ref, v in found if ref]
    assert per == pytest.approx(durations, abs=0.002)
    assert [_seconds(v) for ref, v in found if not ref] == pytest.approx([sum(per)], abs=1e-6)
