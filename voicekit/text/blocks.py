"""Blocks that are not prose: headings, code, lists and tables, read for the ear.

A paragraph arrives as a string that may start with a block mark (``model.py``). This
module turns each kind into what the voice is given: one normalised paragraph, where
"\\n" ends a sentence that has no full stop of its own (a list item, a table row, a line
of code), or "" when nothing is read.

Heading numbers: "6.1 Dealing with changes" is read "six one, Dealing with changes"
(``read``, the default) or "Dealing with changes" (``drop``), never "six point one".
The default keeps the numbers because technical books refer to their sections by them
("see section 6.1", which reads "section six one" too), and a heading that is only a
number ("IV") must keep it; fiction's "IV. The Storm" reads as it did before.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING

from voicekit.text.addresses import read_addresses
from voicekit.text.model import CODE, HEADING, LIST, TABLE, TABLE_HEADER, block_kind
from voicekit.text.normalize import _words, normalize_heading, normalize_text
from voicekit.text.numerals import roman_to_int
from voicekit.text.readings import Reading

if TYPE_CHECKING:
    from voicekit.settings import SynthSettings

# What replaces a code block or a table, by voice language (English for the others).
NOTES = {
    "en": ("Code example omitted.", "Table omitted."),
    "de": ("Codebeispiel ausgelassen.", "Tabelle ausgelassen."),
    "fr": ("Exemple de code omis.", "Tableau omis."),
    "es": ("Ejemplo de código omitido.", "Tabla omitida."),
    "it": ("Esempio di codice omesso.", "Tabella omessa."),
    "nl": ("Codevoorbeeld weggelaten.", "Tabel weggelaten."),
    "pt": ("Exemplo de código omitido.", "Tabela omitida."),
}

# Prose that is really a shell line: a prompt, a shebang, a continued line.
_CODE_LINE = re.compile(r"^(?:[$%] [a-z./~_-]|#!/|>>> \S)|\s\\$")
_LABELLED = re.compile(
    r"^(chapter|part|book|section|appendix|volume|act|canto|letter|lesson|unit)\s+"
    r"(\d+(?:\.\d+)*|[ivxlcdm]+|[a-z]|one|two|three|four|five|six|seven|eight|nine|ten)"
    r"(?![\w'])[.:)]?\s*",
    re.IGNORECASE,
)
_BARE_NUMBER = re.compile(r"^(\d+(?:\.\d+)*|[ivxlcdm]+)(?:[.:)](?:\s+|$)|\s*$)", re.IGNORECASE)

# Symbols in code read with --code read, longest first.
_CODE_SYMBOLS = [
    ("&&", "and"), ("||", "or"), ("==", "equals equals"), ("!=", "not equals"),
    (">=", "greater or equal"), ("<=", "less or equal"), ("->", "arrow"), ("=>", "arrow"),
    ("::", "colon colon"), (">>", "append to"), ("#!", "shebang"), ("--", "dash dash"),
    ("|", "pipe"), (">", "greater than"), ("<", "less than"), ("=", "equals"),
    ("/", "slash"), ("\\", "backslash"), ("~", "tilde"), ("*", "star"), ("#", "hash"),
    ("$", "dollar"), ("%", "percent"), ("^", "caret"), ("&", "and"), ("@", "at"),
    ("+", "plus"), ("-", "dash"), (".", "dot"), (":", "colon"), (";", "semicolon"),
    ("(", "open paren"), (")", "close paren"), ("[", "open bracket"), ("]", "close bracket"),
    ("{", "open brace"), ("}", "close brace"), ('"', "quote"), ("'", "quote"),
    ("`", "backtick"), ("!", "bang"), ("?", "question mark"), (",", "comma"),
    ("_", "underscore"),
]  # fmt: skip
_CODE_SYMBOL_RE = re.compile("|".join(re.escape(s) for s, _ in _CODE_SYMBOLS))
_CODE_WORDS = dict(_CODE_SYMBOLS)


@dataclass
class Reader:
    """Reads one chapter's paragraphs with the reading settings; collects what it skipped."""

    lang: str
    """num2words language (``en``), as ``normalize.language_of`` gives it."""
    heading_numbers: str
    code: str
    tables: str
    code_note: str | None
    reading: Reading
    """The prose rules' settings, and the warnings they collect."""

    @classmethod
    def from_settings(cls, settings: SynthSettings, lang: str) -> Reader:
        return cls(
            lang=lang,
            heading_numbers=settings.heading_numbers,
            code=settings.code,
            tables=settings.tables,
            code_note=settings.code_note,
            reading=Reading(urls=settings.urls),
        )

    @property
    def warnings(self) -> list[str]:
        return self.reading.warnings

    def notes(self) -> tuple[str, str]:
        code_note, table_note = NOTES.get(self.lang, NOTES["en"])
        return (self.code_note if self.code_note is not None else code_note), table_note

    def title(self, title: str) -> str:
        return self.heading(title)

    def paragraph(self, paragraph: str) -> str:
        kind, body = block_kind(paragraph)
        if kind == HEADING:
            return self.heading(body)
        if kind == CODE or (not kind and looks_like_code(body)):
            return self.code_block(body)
        if kind == LIST:
            return "\n".join(self._item(item) for item in body.split("\n") if item.strip())
        if kind == TABLE:
            return self.table(body)
        return normalize_text(body, self.lang, self.reading)

    def heading(self, text: str) -> str:
        numbers = self.heading_numbers
        return normalize_heading(text, self.lang, numbers=numbers, reading=self.reading)

    def code_block(self, code: str) -> str:
        if self.code == "skip":
            return ""
        if self.code == "note":
            return self.notes()[0]
        lines = [read_code_line(line, self.lang, self.reading) for line in code.split("\n")]
        return "\n".join(line for line in lines if line)

    def table(self, body: str) -> str:
        if self.tables == "skip":
            return self.notes()[1]
        rows = [row for row in body.split("\n") if row.strip(TABLE_HEADER + "\t ")]
        header: list[str] = []
        if rows and rows[0].startswith(TABLE_HEADER):
            header = [c.strip() for c in rows.pop(0)[1:].split("\t")]
        spoken = []
        for row in rows:
            cells = [c.strip() for c in row.split("\t")]
            if header and len(header) >= len(cells):
                pairs = [f"{h}: {c}" if h else c for h, c in zip(header, cells, strict=False) if c]
                line = "; ".join(pairs)
            else:
                line = ", ".join(c for c in cells if c)
            if line:
                spoken.append(_full_stop(normalize_text(line, self.lang, self.reading)))
        if not spoken and header:  # a header alone is still the table's text
            spoken.append(_full_stop(normalize_text(", ".join(header), self.lang, self.reading)))
        return "\n".join(spoken)

    def _item(self, item: str) -> str:
        return _full_stop(self.paragraph(item))


def _full_stop(text: str) -> str:
    """A list item or a table row ends like a sentence, so the voice closes it."""
    text = text.strip()
    if text and text[-1] not in ".!?…:;\"'”’)":
        text += "."
    return text


def looks_like_code(paragraph: str) -> bool:
    """A shell line that lost its code markup: ``$ mkdir x``, ``#!/bin/sh``, ``lb config \\``."""
    return bool(_CODE_LINE.search(paragraph.strip()))


def read_code_line(line: str, lang: str, reading: Reading) -> str:
    """One line of code, its symbols in words; prompts and line continuations are not read."""
    line = line.strip()
    line = re.sub(r"^(?:[$%]|>>>)\s+", "", line)  # the prompt is not the command
    line = re.sub(r"\s*\\$", "", line)
    if not line:
        return ""
    line = read_addresses(line, lang, "host")
    spoken = _CODE_SYMBOL_RE.sub(lambda m: f" {_CODE_WORDS[m.group(0)]} ", line)
    spoken = re.sub(r"(?<=\d)(?=[A-Za-z])|(?<=[A-Za-z])(?=\d)", " ", spoken)
    spoken = re.sub(r"\b\d+\b", lambda m: _words(int(m.group(0)), lang), spoken)
    spoken = re.sub(r"\s+", " ", spoken).strip()
    return _full_stop(spoken) if spoken else ""


def title_key(text: str) -> str:
    """What makes two headings the same title: no number prefix, case or punctuation.

    "1. About this manual", "About this manual" and "ABOUT THIS MANUAL!" share a key, as
    do "Chapter 1" and "CHAPTER I."; "Chapter 1: The Harbour" and "The Harbour" too.
    """
    text = unicodedata.normalize("NFKC", text).lower().strip()
    text = "".join(c for c in text if not 0xE000 <= ord(c) <= 0xF8FF)  # block marks
    number = ""
    if match := _LABELLED.match(text):
        number = f"{match.group(1)} {_number_value(match.group(2))}"
        text = text[match.end() :]
    elif (
        (match := _BARE_NUMBER.match(text)) and text[match.end() :].strip()
    ) or (match := re.match(r"^\d+(?:\.\d+)+\s+", text)):
        text = text[match.end() :]
    words = re.sub(r"[\W_]+", " ", text).strip()
    return words or number or re.sub(r"[\W_]+", " ", text).strip()


def _number_value(token: str) -> str:

    spelled = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
    if token in spelled:
        return str(spelled.index(token) + 1)
    if (token.isalpha() and len(token) > 1) or token in ("i", "v", "x"):
        value = roman_to_int(token)
        return str(value) if value else token
    return token


def group_blocks(paragraphs: list[str]) -> list[str]:
    """Join a list's items, and a table's rows, into one paragraph each.

    Sources keep each item or row a paragraph of its own (so matter detection still sees
    a contents page line by line); read aloud, a list or a table is one paragraph whose
    items get the pause of a sentence. A header row starts a new table.
    """
    out: list[str] = []
    for paragraph in paragraphs:
        kind, body = block_kind(paragraph)
        previous = block_kind(out[-1])[0] if out else ""
        joins = kind in (LIST, TABLE) and kind == previous
        if joins and not (kind == TABLE and body.startswith(TABLE_HEADER)):
            out[-1] += "\n" + body
        else:
            out.append(paragraph)
    return out
