"""Chapter files (simple lines, FFMETADATA, JSON), times past 24 hours, and FFMETADATA out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from voicekit.errors import InputError
from voicekit.formats.chapters import (
    ChapterSpec,
    format_time,
    parse_ffmetadata,
    parse_time,
    read_chapters_file,
    to_marks,
    write_ffmetadata,
)
from voicekit.formats.timeline import ChapterMark


def test_times() -> None:
    assert parse_time("01:30") == 90
    assert parse_time("1:02:03.5") == 3723.5
    assert parse_time("25:00:00") == 90000  # hours past a day: no wrap
    assert parse_time("75:30") == 4530  # minutes may pass 60 without hours
    assert parse_time("12.25") == 12.25
    with pytest.raises(ValueError):
        parse_time("1:75:00")
    assert format_time(90000.0) == "25:00:00.000"
    assert format_time(3723.4996) == "01:02:03.500"
    assert format_time(59.9996) == "00:01:00.000"


def test_simple_lines(tmp_path: Path) -> None:
    path = tmp_path / "ch.txt"
    path.write_text("# chapters\n00:00 Opening\n\n1:02:03.250 - The middle\n25:00:00 Late\n")
    assert read_chapters_file(path) == [
        ChapterSpec(0.0, "Opening"),
        ChapterSpec(3723.25, "The middle"),
        ChapterSpec(90000.0, "Late"),
    ]


def test_bad_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "ch.txt"
    path.write_text("00:00 Opening\nsoon: Something\n")
    with pytest.raises(InputError, match=r"ch.txt:2: expected"):
        read_chapters_file(path)


def test_ffmetadata_file_with_escapes(tmp_path: Path) -> None:
    path = tmp_path / "meta.txt"
    path.write_text(
        ";FFMETADATA1\ntitle=A \\= B\\; C\n\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=1500\n"
        "title=One \\#1\n[CHAPTER]\nTIMEBASE=1/22050\nSTART=33075\nEND=44100\ntitle=Two\n"
    )
    assert read_chapters_file(path) == [ChapterSpec(0.0, "One #1"), ChapterSpec(1.5, "Two")]
    assert parse_ffmetadata(path.read_text()).tags == {"title": "A = B; C"}


def test_json_forms(tmp_path: Path) -> None:
    plain = tmp_path / "a.json"
    plain.write_text(json.dumps([{"start": 0, "title": "A"}, {"start": "00:10", "title": "B"}]))
    assert read_chapters_file(plain) == [ChapterSpec(0, "A"), ChapterSpec(10, "B")]
    probe_style = tmp_path / "b.json"
    probe_style.write_text(json.dumps({"chapters": [
        {"start_time": "0.000000", "end_time": "5.5", "tags": {"title": "X"}},
    ]}))  # fmt: skip
    assert read_chapters_file(probe_style) == [ChapterSpec(0, "X")]  # ends are not used
    broken = tmp_path / "c.json"
    broken.write_text("[{")
    with pytest.raises(InputError, match="not valid JSON"):
        read_chapters_file(broken)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        read_chapters_file(tmp_path / "nope.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(InputError, match="lists no chapters"):
        read_chapters_file(empty)


def test_to_marks_checks_order_and_range() -> None:
    specs = [ChapterSpec(0, "A"), ChapterSpec(1.5, ""), ChapterSpec(3, "C")]
    marks = to_marks(specs, 1000, 4000)
    assert marks == [
        ChapterMark(1, "A", 0, 1500),
        ChapterMark(2, "Chapter 2", 1500, 3000),
        ChapterMark(3, "C", 3000, 4000),
    ]
    with pytest.raises(InputError, match="not after the chapter before"):
        to_marks([ChapterSpec(2, "A"), ChapterSpec(1, "B")], 1000, 4000)
    with pytest.raises(InputError, match="after the end of the audio"):
        to_marks([ChapterSpec(0, "A"), ChapterSpec(9, "B")], 1000, 4000)


def test_write_ffmetadata_round_trip_in_samples() -> None:
    marks = [ChapterMark(1, "A=B;C#D\\E", 0, 22050), ChapterMark(2, "Day two", 10**10, 10**10 + 1)]
    text = write_ffmetadata(marks, 22050)
    assert "START=10000000000\nEND=10000000001\n" in text  # samples, not rounded seconds
    parsed = parse_ffmetadata(text)
    assert [c.title for c in parsed.chapters] == ["A=B;C#D\\E", "Day two"]
    assert parsed.chapters[1].start == pytest.approx(10**10 / 22050)
