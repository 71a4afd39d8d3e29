"""Text normalisation: what espeak-ng reads badly, written out as words.

Numbers, ordinals, years, currency, percentages, common abbreviations (English),
and Roman numerals in chapter headings. Number words come from num2words in the
voice's language; English-only rules (abbreviations, currency names) apply only
to English voices, and other languages leave those to espeak-ng.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal
from functools import lru_cache

from num2words import num2words

from voicekit.settings import SynthSettings
from voicekit.text.numerals import roman_to_int
from voicekit.text.readings import Reading, read_prose

# Bumped whenever the rules change: part of each bucket's hash, so old audio is redone.
NORMALIZER_VERSION = 2

_ABBREVIATIONS = {
    "Mr": "Mister",
    "Mrs": "Missus",
    "Ms": "Miz",
    "Dr": "Doctor",
    "Prof": "Professor",
    "Jr": "Junior",
    "Sr": "Senior",
    "Capt": "Captain",
    "Col": "Colonel",
    "Gen": "General",
    "Lt": "Lieutenant",
    "Sgt": "Sergeant",
    "Rev": "Reverend",
    "Hon": "Honorable",
    "Gov": "Governor",
    "Pres": "President",
    "Mt": "Mount",
    "Ft": "Fort",
    "Ave": "Avenue",
    "Blvd": "Boulevard",
    "Rd": "Road",
    "Dept": "Department",
    "Univ": "University",
    "Jan": "January",
    "Feb": "February",
    "Mar": "March",
    "Apr": "April",
    "Aug": "August",
    "Sept": "September",
    "Sep": "September",
    "Oct": "October",
    "Nov": "November",
    "Dec": "December",
    "approx": "approximately",
    "vs": "versus",
    "Vol": "Volume",
    "vol": "volume",
    "ch": "chapter",
    "Ch": "Chapter",
    "pp": "pages",
    "p": "page",
    "fig": "figure",
    "Fig": "Figure",
}
_LATIN = {
    "e.g.": "for example",
    "i.e.": "that is",
    "etc.": "et cetera",
    "et al.": "and others",
    "a.m.": "A M",
    "p.m.": "P M",
    "A.M.": "A M",
    "P.M.": "P M",
    "cf.": "compare",
}
_CURRENCY = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"),
    "¥": ("yen", "yen", "", ""),
}
_MAGNITUDES = ("thousand", "million", "billion", "trillion")
# Past this many digits a number is an identifier or a digit string, not a quantity: it is
# read digit by digit. (Python's int() also refuses strings over 4,300 digits.)
MAX_CARDINAL_DIGITS = 36

_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u202f\u205f\u3000]+")
_ABBR_RE = re.compile(
    r"\b(" + "|".join(sorted(_ABBREVIATIONS, key=len, reverse=True)) + r")\.(?=\s+\S)"
)
_LATIN_RE = re.compile(
    "(?:"
    + "|".join(re.escape(k) for k in sorted(_LATIN, key=len, reverse=True))
    + r")(?=(\s+[A-Z\"“]|\s*$)?)"
)
_ST_RE = re.compile(r"\bSt\.(?=\s+([A-Z]?))")
_CURRENCY_RE = re.compile(
    r"([$£€¥])\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?"
    r"(?:\s+(" + "|".join(_MAGNITUDES) + r"))?\b"
)
_PERCENT_RE = re.compile(r"(\d+(?:\.\d+)?)\s?%")
_ORDINAL_RE = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_YEAR_RANGE_RE = re.compile(r"\b(1[1-9]\d\d|20\d\d)\s?[-–]\s?(1[1-9]\d\d|20\d\d|\d\d)\b")
_DECADE_RE = re.compile(r"\b(1[1-9]\d0|20[0-9]0)'?s\b")
_YEAR_RE = re.compile(r"(?<![\d.,])\b(1[1-9]\d\d|20\d\d)\b(?![.,]\d)")
_TIME_RE = re.compile(r"\b([01]?\d|2[0-3]):([0-5]\d)\b")
_NUMBER_RE = re.compile(r"(?<![\w.])(-?)(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?\b")
_DASHES_RE = re.compile(r"\s*[—―]\s*|\s+[–-]\s+")
_HEADING_NUMERAL_RE = re.compile(
    # Numerals must be upper-case: "Chapter Mix" is a title, not chapter 1009.
    r"^((?:chapter|book|part|volume|act|scene|canto|section|letter)\s+)((?-i:[IVXLCDM]+))\b(.*)$",
    re.IGNORECASE,
)
_BARE_NUMERAL_RE = re.compile(r"^([IVXLCDM]+)([.:)]?)(\s.*)?$")
# A heading's section number: "6.1", "6.1.", "A.2", or "1." / "1:" / "1)"; not "7 Habits".
_SECTION_NUMBER_RE = re.compile(r"^(\d+(?:\.\d+)+|[A-Z](?:\.\d+)+|\d+(?=[.:)]))([.:)]?)\s+(?=\S)")


def language_of(code: str) -> str:
    """num2words language for a voice language code like ``en_US``."""
    return code.replace("-", "_").split("_")[0].lower() or "en"


def normalize_text(text: str, lang: str = "en", reading: Reading | None = None) -> str:
    """Normalise one paragraph of prose for speech (``readings.py`` first, then numbers)."""

    text = unicodedata.normalize("NFC", text)
    text = _SPACES.sub(" ", text).strip()
    text = read_prose(
        text,
        lang,
        reading or Reading.default(),
        say=lambda n: _words(n, lang),
        say_ordinal=lambda n: _words(n, lang, "ordinal"),
        say_year=lambda n: _words(n, lang, "year"),
    )
    text = _DASHES_RE.sub(", ", text)
    english = lang == "en"
    if english:
        text = _LATIN_RE.sub(_latin, text)
        text = _ST_RE.sub(lambda m: "Saint" if m.group(1) else "Street", text)
        text = _ABBR_RE.sub(lambda m: _ABBREVIATIONS[m.group(1)], text)
        text = _CURRENCY_RE.sub(_currency, text)
        text = _DECADE_RE.sub(lambda m: _decade(int(m.group(1))), text)
        text = _YEAR_RANGE_RE.sub(_year_range, text)
    text = _PERCENT_RE.sub(lambda m: _number(m.group(1), lang) + _percent_word(lang), text)
    text = _ORDINAL_RE.sub(lambda m: _integer(m.group(1), lang, "ordinal"), text)
    if english:
        text = _TIME_RE.sub(_time, text)
        text = _YEAR_RE.sub(lambda m: _words(int(m.group(1)), lang, "year"), text)
    text = _NUMBER_RE.sub(lambda m: _signed(m, lang), text)
    return _SPACES.sub(" ", text).strip()


def normalize_heading(
    title: str, lang: str = "en", *, numbers: str | None = None, reading: Reading | None = None
) -> str:
    """A heading: Roman numerals become numbers, a section number ("6.1") is read "six one"
    (``numbers="read"``) or dropped (``"drop"``), then the usual rules apply."""
    title = _SPACES.sub(" ", unicodedata.normalize("NFC", title)).strip()
    match = _HEADING_NUMERAL_RE.match(title)
    if match and (value := roman_to_int(match.group(2))):
        title = f"{match.group(1)}{value}{match.group(3)}"
    else:
        bare = _BARE_NUMERAL_RE.match(title)
        if bare and (value := roman_to_int(bare.group(1))) and bare.group(1) != "I":
            title = f"{value}{bare.group(2)}{bare.group(3) or ''}"
    section = _SECTION_NUMBER_RE.match(title)
    if section:
        rest = title[section.end() :]
        if (numbers or SynthSettings.heading_numbers) == "drop":
            title = rest
        else:
            parts = re.split(r"\.", section.group(1))
            spoken = " ".join(_words(int(p), lang) if p.isdigit() else p for p in parts)
            mark = {"": ",", ")": "."}.get(section.group(2), section.group(2))
            title = f"{spoken}{mark} {rest}"
    return normalize_text(title, lang, reading)


@lru_cache(maxsize=4096)
def _words(value: int | Decimal, lang: str, to: str = "cardinal") -> str:
    try:
        return str(num2words(value, lang=lang, to=to))
    except (NotImplementedError, OverflowError, ValueError, TypeError):
        try:
            return str(num2words(value, lang=lang))
        except (NotImplementedError, OverflowError, ValueError, TypeError):
            return str(value)  # espeak-ng reads digits in its own language


def _integer(digits: str, lang: str, to: str = "cardinal") -> str:
    """A whole number in words; one past MAX_CARDINAL_DIGITS digit by digit."""
    if len(digits) > MAX_CARDINAL_DIGITS:
        return " ".join(_words(int(d), lang) for d in digits)
    return _words(int(digits), lang, to)


def _number(digits: str, lang: str) -> str:
    whole, _, frac = digits.replace(",", "").partition(".")
    long = len(whole) > MAX_CARDINAL_DIGITS or len(frac) > MAX_CARDINAL_DIGITS
    if frac and lang != "en" and not long:  # num2words knows each language's decimal word
        return _words(Decimal(f"{whole}.{frac}"), lang)
    spoken = _integer(whole, lang)
    if frac:
        spoken += " point " + " ".join(_words(int(d), lang) for d in frac)
    return spoken


def _signed(match: re.Match[str], lang: str) -> str:
    sign, whole, frac = match.group(1), match.group(2), match.group(3)
    spoken = _number(whole + (f".{frac}" if frac else ""), lang)
    if sign:
        spoken = ("minus " if lang == "en" else "-") + spoken
    return spoken


def _percent_word(lang: str) -> str:
    return " percent" if lang == "en" else "%"


def _currency(match: re.Match[str]) -> str:
    symbol, whole, cents, magnitude = match.groups()
    one, many, sub_one, sub_many = _CURRENCY[symbol]
    digits = whole.replace(",", "")
    # "$2.5 million" reads "two point five million dollars"
    if magnitude or len(digits) > MAX_CARDINAL_DIGITS:
        number = _number(whole + (f".{cents}" if cents else ""), "en")
        return f"{number} {magnitude} {many}" if magnitude else f"{number} {many}"
    amount = int(digits)
    parts = []
    if amount or not cents:
        parts.append(f"{_words(amount, 'en')} {one if amount == 1 else many}")
    if cents and sub_one:
        value = int(cents.ljust(2, "0"))
        if value:
            parts.append(f"{_words(value, 'en')} {sub_one if value == 1 else sub_many}")
    return " and ".join(parts) if parts else f"zero {many}"


def _latin(match: re.Match[str]) -> str:
    # "etc." that ends a sentence also carries the sentence's full stop.
    words = _LATIN[match.group(0)]
    return words + "." if match.group(1) is not None else words


def _decade(year: int) -> str:
    words = _words(year, "en", "year")
    if words.endswith("y"):
        return words[:-1] + "ies"
    return words + "s"


def _year_range(match: re.Match[str]) -> str:
    start, end = match.group(1), match.group(2)
    if len(end) == 2:
        end = start[:2] + end
    return f"{_words(int(start), 'en', 'year')} to {_words(int(end), 'en', 'year')}"


def _time(match: re.Match[str]) -> str:
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes == 0:
        return f"{_words(hours, 'en')} o'clock"
    if minutes < 10:
        return f"{_words(hours, 'en')} oh {_words(minutes, 'en')}"
    return f"{_words(hours, 'en')} {_words(minutes, 'en')}"
