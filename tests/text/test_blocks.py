"""Headings, code, lists and tables read for the ear (text/blocks.py) and in the plan."""

from __future__ import annotations

import pytest

from voicekit.settings import SynthSettings
from voicekit.synth.plan import spoken_paragraphs
from voicekit.text.blocks import Reader, group_blocks, looks_like_code, title_key
from voicekit.text.model import CODE, HEADING, LIST, TABLE, TABLE_HEADER, Chapter
from voicekit.text.normalize import normalize_heading
from voicekit.text.sentences import split_sentences


def reader(lang: str = "en", **changes: object) -> Reader:
    return Reader.from_settings(SynthSettings().replace(**changes), lang)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("1. About this manual", "About this manual"),
        ("Chapter 1: The Harbour", "The Harbour"),
        ("CHAPTER I.", "Chapter 1"),
        ("chapter one", "Chapter 1"),
        ("6.1 Dealing with changes", "Dealing With Changes!"),
        ("IV. The Storm", "The storm"),
    ],
)
def test_title_keys_match_despite_numbers_case_and_punctuation(a: str, b: str) -> None:
    assert title_key(a) == title_key(b)


def test_title_keys_keep_different_titles_apart() -> None:
    assert title_key("Chapter 1") != title_key("Chapter 2")
    assert title_key("The Harbour") != title_key("The Storm")
    assert title_key("1984") == "1984"  # a title that is a number is not emptied


@pytest.mark.parametrize(
    ("title", "read", "drop"),
    [
        ("6.1 Dealing with configuration changes",
         "six one, Dealing with configuration changes", "Dealing with configuration changes"),
        ("6.1.2. Hooks", "six one two. Hooks", "Hooks"),
        ("1. About this manual", "one. About this manual", "About this manual"),
        ("A.2 Glossary", "A two, Glossary", "Glossary"),
        ("IV. The Storm", "four. The Storm", "The Storm"),
        ("IV", "four", "four"),  # a heading that is only a number keeps it
        ("Chapter 1: The Harbour", "Chapter one: The Harbour", "Chapter one: The Harbour"),
        ("7 Habits", "seven Habits", "seven Habits"),  # a number that is part of the title
        ("1984 Revisited", "nineteen eighty-four Revisited", "nineteen eighty-four Revisited"),
    ],
)  # fmt: skip
def test_heading_numbers_read_or_dropped_never_decimals(title: str, read: str, drop: str) -> None:
    # before: "6.1 Dealing ..." read "six point one Dealing ..."
    assert normalize_heading(title, numbers="read") == read
    assert normalize_heading(title, numbers="drop") == drop


def test_code_blocks_by_mode() -> None:
    code = CODE + "$ mkdir live && cd live\nlb config noauto \\\n   --debug\n\n#!/bin/sh"
    assert reader().paragraph(code) == "Code example omitted."
    assert reader(code="skip").paragraph(code) == ""
    assert reader(code_note="Skipping code.").paragraph(code) == "Skipping code."
    assert reader("de").paragraph(code) == "Codebeispiel ausgelassen."
    assert reader(code="read").paragraph(code).split("\n") == [
        "mkdir live and cd live.",
        "lb config noauto.",
        "dash dash debug.",
        "shebang slash bin slash sh.",
    ]


@pytest.mark.parametrize(
    "line", ["$ mkdir mylive && cd mylive && lb config", "#!/bin/sh", "lb config noauto \\"]
)
def test_shell_lines_without_markup_are_code(line: str) -> None:
    assert looks_like_code(line)
    assert reader().paragraph(line) == "Code example omitted."


@pytest.mark.parametrize("prose", ["$5 is cheap.", "It costs $ 5.", "# of items", "A \\ B."])
def test_prose_is_not_code(prose: str) -> None:
    assert not looks_like_code(prose)


def test_lists_are_one_paragraph_of_sentences() -> None:
    paragraphs = group_blocks(["Intro:", LIST + "a network", LIST + "disk space!", "After."])
    assert paragraphs == ["Intro:", LIST + "a network\ndisk space!", "After."]
    spoken = reader().paragraph(paragraphs[1])
    assert split_sentences(spoken, 400) == ["a network.", "disk space!"]


def test_tables_read_as_header_value_pairs_or_a_note() -> None:
    rows = [TABLE + TABLE_HEADER + "Option\tMeaning", TABLE + "noauto\tno auto", TABLE + "x\t"]
    (table,) = group_blocks(rows)
    assert reader().paragraph(table).split("\n") == [
        "Option: noauto; Meaning: no auto.",
        "Option: x.",
    ]
    assert reader(tables="skip").paragraph(table) == "Table omitted."
    plain = group_blocks([TABLE + "1\t2", TABLE + "3\t4"])[0]
    assert reader().paragraph(plain) == "one, two.\nthree, four."
    # a second header row starts a second table
    assert len(group_blocks([*rows, TABLE + TABLE_HEADER + "A", TABLE + "b"])) == 2


def test_plan_says_the_title_once_and_one_note_for_a_run_of_code() -> None:
    chapter = Chapter(
        index=1,
        title="About this manual",
        paragraphs=[HEADING + "1. About this manual", "Text.", CODE + "a", CODE + "b", "End."],
    )
    settings = SynthSettings()
    spoken = spoken_paragraphs(chapter, settings, Reader.from_settings(settings, "en"))
    assert spoken == ["About this manual", "Text.", "Code example omitted.", "End."]
    quiet = settings.replace(speak_titles=False)
    spoken = spoken_paragraphs(chapter, quiet, Reader.from_settings(quiet, "en"))
    assert spoken[0] == "one. About this manual"  # not spoken as a title: the heading stays


def test_plan_keeps_a_first_paragraph_that_is_not_the_title() -> None:
    chapter = Chapter(index=1, title="The Harbour", paragraphs=["The harbour was quiet."])
    settings = SynthSettings()
    spoken = spoken_paragraphs(chapter, settings, Reader.from_settings(settings, "en"))
    assert spoken == ["The Harbour", "The harbour was quiet."]


def test_a_line_break_always_ends_a_sentence() -> None:
    assert split_sentences("lb config\nlb build", 400) == ["lb config", "lb build"]
