"""The pronunciation lexicon: words and phrases the voice should say another way.

A TOML file (``--lexicon FILE``, and ``lexicon.toml`` in ``$VOICEKIT_HOME`` for every run)::

    [options]                         # defaults for every entry (these are the defaults)
    case_sensitive = false
    whole_word = true

    [words]                           # every language
    "Hermione" = "her my oh nee"      # a respelling: text the voice reads instead
    "Nguyen" = "[[ŋwˈɪn]]"            # phonemes in the voice's alphabet (espeak IPA)
    "US" = { say = "you ess", case_sensitive = true }

    [languages.de]                    # only for voices whose language is de (de_DE, ...)
    "Chemnitz" = "Kemnitz"

Entries apply to each normalised sentence, before phonemization, so the bucket hash
(which covers the sentences) changes only for buckets that hold a changed entry.
Phonemes stay in the sentence as ``[[...]]``: the voice's phonemizer splices them in
as they are (``backends/voices.py``). Longer keys win over shorter ones, and a
replacement is never matched again.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from voicekit.errors import InputError, os_error

LEXICON_NAME = "lexicon.toml"
"""The per-user lexicon in ``$VOICEKIT_HOME``."""

PHONEMES = re.compile(r"\[\[(.*?)\]\]", re.DOTALL)
"""Phonemes written out in a sentence: ``[[ŋwˈɪn]]``."""

_OPTION_KEYS = {"case_sensitive", "whole_word"}
_ENTRY_KEYS = {"say", *_OPTION_KEYS}
_KEY_LINE = re.compile(r"""^\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*=""")
_SECTION_LINE = re.compile(r"^\s*\[\s*([^\]]*?)\s*\]")


@dataclass(frozen=True)
class Entry:
    word: str
    """The word or phrase as written in the lexicon."""
    say: str
    """What the voice is given instead: a respelling, ``[[phonemes]]``, or both."""
    case_sensitive: bool
    whole_word: bool
    where: str
    """``file:line``, for errors."""

    def pattern(self) -> str:
        words = [re.escape(w) for w in self.word.split()]
        body = r"\s+".join(words)
        if not self.case_sensitive:
            body = f"(?i:{body})"
        if self.whole_word:
            body = rf"(?<!\w){body}(?!\w)"
        return body

    def phonemes(self) -> list[str]:
        """The phoneme symbols of every ``[[...]]`` in ``say``, one per code point."""
        return [c for span in PHONEMES.findall(self.say) for c in split_phonemes(span)]


def split_phonemes(span: str) -> list[str]:
    """``"h ɝ m aɪ"`` or ``"ŋwˈɪn"``: symbols are code points (as Piper's are); spaces
    only make them readable."""
    import unicodedata

    return [c for c in unicodedata.normalize("NFD", span) if not c.isspace()]


@dataclass
class Lexicon:
    entries: list[Entry] = field(default_factory=list)
    hits: Counter[str] = field(default_factory=Counter)
    """How often each entry matched, by its word (``--dry-run --json`` shows it)."""

    def __post_init__(self) -> None:
        self._compile()

    def _compile(self) -> None:
        # longest first, so a phrase wins over a word inside it
        self._ordered = sorted(self.entries, key=lambda e: len(e.word), reverse=True)
        if self._ordered:
            alternatives = "|".join(f"(?P<e{i}>{e.pattern()})" for i, e in enumerate(self._ordered))
            self._regex: re.Pattern[str] | None = re.compile(alternatives)
        else:
            self._regex = None

    def apply(self, sentence: str) -> str:
        """The sentence with every entry replaced; ``[[`` that the book wrote is not phonemes."""
        sentence = sentence.replace("[[", "[ [").replace("]]", "] ]")
        if self._regex is None:
            return sentence

        def swap(match: re.Match[str]) -> str:
            entry = self._ordered[int(str(match.lastgroup)[1:])]
            self.hits[entry.word] += 1
            return entry.say

        return self._regex.sub(swap, sentence)

    def check_phonemes(self, known: Iterable[str], voice: str) -> None:
        """Every phoneme of every entry must be one the voice has (its phoneme_id_map)."""
        have = set(known)
        for entry in self.entries:
            missing = [p for p in dict.fromkeys(entry.phonemes()) if p not in have]
            if missing:
                raise InputError(
                    f"{entry.where}: '{entry.word}': the voice {voice} has no phoneme "
                    + ", ".join(f"'{p}' (U+{ord(p):04X})" for p in missing),
                    hint="write phonemes in the voice's alphabet (espeak-ng IPA for Piper voices)",
                )

    def matched(self) -> dict[str, int]:
        return dict(sorted(self.hits.items()))


def load_lexicon(paths: Iterable[Path], language: str) -> Lexicon:
    """The entries of ``paths`` for ``language``; a later file's entry replaces an earlier one."""
    merged: dict[tuple[str, bool], Entry] = {}
    for path in paths:
        for entry in read_lexicon(path, language):
            key = entry.word if entry.case_sensitive else entry.word.lower()
            merged[(" ".join(key.split()), entry.case_sensitive)] = entry
    return Lexicon(list(merged.values()))


def lexicon_paths(explicit: str | None, home: Path) -> list[Path]:
    """The user's lexicon (when there is one), then ``--lexicon`` (which must exist)."""
    paths = []
    user = home / LEXICON_NAME
    if user.is_file():
        paths.append(user)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise InputError(f"lexicon {path} does not exist or is not a file")
        paths.append(path)
    return paths


def read_lexicon(path: Path, language: str) -> list[Entry]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise os_error(exc, InputError, f"cannot read the lexicon {path}") from exc
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise InputError(f"lexicon {path} is not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"lexicon {path}: {exc}") from exc
    lines = _key_lines(text)
    unknown = set(data) - {"options", "words", "languages"}
    if unknown:
        raise InputError(
            f"lexicon {path}: unknown section [{sorted(unknown)[0]}]",
            hint="use [options], [words] and [languages.<code>]",
        )
    options = _table(data.get("options", {}), f"{path}: [options]")
    bad = set(options) - _OPTION_KEYS
    if bad:
        raise InputError(f"lexicon {path}: [options] has no setting '{sorted(bad)[0]}'")
    defaults = {k: _flag(v, f"{path}: [options] {k}") for k, v in options.items()}
    sections: list[tuple[str, dict[str, Any]]] = [
        ("words", _table(data.get("words", {}), f"{path}: [words]"))
    ]
    languages = _table(data.get("languages", {}), f"{path}: [languages]")
    for code, table in languages.items():
        if _language_matches(code, language):
            sections.append((f"languages.{code}", _table(table, f"{path}: [languages.{code}]")))
    entries = []
    for section, table in sections:
        for word, value in table.items():
            line = lines.get((section, word))
            where = f"{path}:{line}" if line else f"{path} [{section}]"
            entries.append(_entry(word, value, defaults, where))
    return entries


def _entry(word: str, value: Any, defaults: dict[str, bool], where: str) -> Entry:
    settings = dict(defaults)
    if isinstance(value, dict):
        bad = set(value) - _ENTRY_KEYS
        if bad:
            raise InputError(f"{where}: '{word}' has no setting '{sorted(bad)[0]}'")
        if "say" not in value:
            raise InputError(f"{where}: '{word}' needs say = \"...\"")
        settings.update({k: _flag(v, f"{where}: {k}") for k, v in value.items() if k != "say"})
        value = value["say"]
    if not word.strip():
        raise InputError(f"{where}: an entry has an empty word")
    if not isinstance(value, str):
        raise InputError(f"{where}: '{word}' must map to a text or [[phonemes]]")
    if not value.strip():
        raise InputError(f"{where}: '{word}' maps to nothing")
    rest = PHONEMES.sub(" ", value)
    if "[[" in rest or "]]" in rest:
        raise InputError(f"{where}: '{word}': unclosed [[ or ]] in '{value}'")
    if any(not split_phonemes(span) for span in PHONEMES.findall(value)):
        raise InputError(f"{where}: '{word}': empty [[ ]]")
    return Entry(
        word=word.strip(),
        say=value.strip(),
        case_sensitive=settings.get("case_sensitive", False),
        whole_word=settings.get("whole_word", True),
        where=where,
    )


def _language_matches(code: str, language: str) -> bool:
    want = code.lower().replace("-", "_")
    have = language.lower().replace("-", "_")
    return have == want or have.startswith(want + "_")


def _table(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(f"lexicon {what} must be a table")
    return value


def _flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"lexicon {what} must be true or false")
    return value


def _key_lines(text: str) -> dict[tuple[str, str], int]:
    """(section, key) to its 1-based line, so an error can name the line."""
    found: dict[tuple[str, str], int] = {}
    section = ""
    for number, line in enumerate(text.splitlines(), 1):
        if (head := _SECTION_LINE.match(line)) and not _KEY_LINE.match(line):
            section = ".".join(_key_name(p.strip()) for p in _split_dotted(head.group(1)))
            continue
        if key := _KEY_LINE.match(line):
            found.setdefault((section, _key_name(key.group(1))), number)
    return found


def _split_dotted(header: str) -> list[str]:
    return re.findall(r"""\s*("(?:[^"\\]|\\.)*"|'[^']*'|[^.\s]+)\s*(?:\.|$)""", header)


def _key_name(token: str) -> str:
    try:
        return next(iter(tomllib.loads(f"{token} = 0")))
    except (tomllib.TOMLDecodeError, StopIteration):
        return token
