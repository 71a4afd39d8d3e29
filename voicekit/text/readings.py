"""Readings of what prose borrows from other registers: addresses, symbols, units, dates.

``read_prose`` runs before the number rules of ``normalize.py`` and writes out, in
words, what those rules would read wrongly or espeak-ng would spell out character by
character: URLs and e-mail addresses, inline code, phone and version numbers, ISO
dates, times, units, fractions, ranges, symbols, regnal numerals, and text in another
script (skipped, with a warning). Numbers it leaves as digits are read later.

The golden cases in ``tests/text/golden_readings.tsv`` say what each rule reads.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from voicekit.settings import SynthSettings
from voicekit.text.addresses import (
    drop_note_markers,
    read_addresses,
    read_inline_code,
    skip_other_scripts,
)
from voicekit.text.numerals import roman_to_int


@dataclass(frozen=True)
class Reading:
    """How the prose rules read what is not plain prose (from the synthesis settings)."""

    urls: str
    """read, host or skip (``SynthSettings.urls``)."""
    warnings: list[str] = field(default_factory=list, compare=False, hash=False)
    """Filled with what was skipped (text in another script)."""

    @classmethod
    def default(cls) -> Reading:
        """The settings' defaults (defined once, in ``SynthSettings``)."""
        return cls(urls=SynthSettings.urls)


# --- numbers in context -----------------------------------------------------------------------

Say = Callable[[int], str]
"""Cardinal words of a number, in the voice's language."""

_MONTHS = [
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
]  # fmt: skip
_ISO_DATE_RE = re.compile(r"\b(1[5-9]\d\d|20\d\d)-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])\b")
_MONTH_DAY_RE = re.compile(
    r"\b(January|February|March|April|June|July|August|September|October|November|December|"
    r"May(?=\s+\d{1,2}(?:st|nd|rd|th)?,\s+\d{4}))\s+(\d{1,2})(?:st|nd|rd|th)?\b(?![:.]\d)"
)
_DAY_MONTH_RE = re.compile(
    r"\b(\d{1,2})(?:st|nd|rd|th)?\s+(January|February|March|April|May|June|July|August|"
    r"September|October|November|December)\b"
)
_CIRCA_RE = re.compile(r"\b(?:c|ca)\.\s?(?=\d{2,4}\b)")
_SHORT_DECADE_RE = re.compile(r"(?<!\w)['’]([1-9])0s\b")
_PHONE_RE = re.compile(
    r"(?<![\w.+-])(?:(\+\d{1,3})[\s.-]?)?(\(\d{2,5}\)[\s.-]?)?"
    r"(\d{2,5}(?:[\s.-]\d{2,5}){1,4})(?![\w.-]*\d)"
)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1?\d?\d)"
_IP_RE = re.compile(rf"(?<![\w.])({_OCTET}(?:\.{_OCTET}){{3}})(?![\w.]*\d)")
_LABELLED_VERSION_RE = re.compile(
    r"(?<![\w.])(v|[Vv]ersion |[Rr]elease )(\d+(?:\.\d+)+)(?![.\d]*\d)"
)
_DOTTED_VERSION_RE = re.compile(r"(?<![\w.])(\d+(?:\.\d+){2,})(?![.\d]*\d)")
_SECTION_REF_RE = re.compile(
    r"(?:\b([Ss]ections?|[Cc]hapters?|[Aa]ppendix|[Cc]lauses?)\s+|(§§?)\s?)"
    r"(\d+(?:\.\d+)+|\d+)\b"
)
# "3:45 pm", "3 p.m.", "14:05". A final "p.m." that ends the sentence keeps its full stop.
_CLOCK_RE = re.compile(
    r"\b([01]?\d|2[0-3])(?::([0-5]\d))?\s?(?:([ap])(?:\.m\.|m\b)|([AP])(?:\.M\.|M\b))"
    r"(?=(\s+[A-Z\"“]|\s*$)?)"
    r"|\b([01]?\d|2[0-3]):([0-5]\d)\b(?!:\d)"
)
_MAGNITUDE_SUFFIX_RE = re.compile(
    r"([$£€¥])\s?(\d+(?:\.\d+)?)\s?(k|K|m|M|mn|bn|b|B|tn|trn|T)\b"
)
_CURRENCY_NAMES = {"$": "dollars", "£": "pounds", "€": "euros", "¥": "yen"}
_SUFFIX_WORDS = {
    "k": "thousand", "K": "thousand", "m": "million", "M": "million", "mn": "million",
    "bn": "billion", "b": "billion", "B": "billion", "tn": "trillion", "trn": "trillion",
    "T": "trillion",
}  # fmt: skip
_TEMPERATURE_RE = re.compile(r"(-?\d+(?:[.,]\d+)?)\s?°\s?([CFK])\b")
_DEGREES_RE = re.compile(r"(\d+(?:\.\d+)?)\s?°")
# Units read only after a number. Plural first, then singular.
_UNITS = {
    "km/h": ("kilometers per hour", "kilometer per hour"),
    "kph": ("kilometers per hour", "kilometer per hour"),
    "mph": ("miles per hour", "mile per hour"),
    "m/s": ("meters per second", "meter per second"),
    "km²": ("square kilometers", "square kilometer"),
    "m²": ("square meters", "square meter"),
    "cm²": ("square centimeters", "square centimeter"),
    "ft²": ("square feet", "square foot"),
    "m³": ("cubic meters", "cubic meter"),
    "km": ("kilometers", "kilometer"),
    "cm": ("centimeters", "centimeter"),
    "mm": ("millimeters", "millimeter"),
    "kg": ("kilograms", "kilogram"),
    "mg": ("milligrams", "milligram"),
    "lbs": ("pounds", "pound"),
    "lb": ("pounds", "pound"),
    "oz": ("ounces", "ounce"),
    "ft": ("feet", "foot"),
    "ml": ("milliliters", "milliliter"),
    "mL": ("milliliters", "milliliter"),
    "GHz": ("gigahertz", "gigahertz"),
    "MHz": ("megahertz", "megahertz"),
    "kHz": ("kilohertz", "kilohertz"),
    "Hz": ("hertz", "hertz"),
    "kWh": ("kilowatt hours", "kilowatt hour"),
    "kW": ("kilowatts", "kilowatt"),
    "TB": ("terabytes", "terabyte"),
    "GB": ("gigabytes", "gigabyte"),
    "MB": ("megabytes", "megabyte"),
    "KB": ("kilobytes", "kilobyte"),
    "kB": ("kilobytes", "kilobyte"),
    "ms": ("milliseconds", "millisecond"),
    "min": ("minutes", "minute"),
    "hrs": ("hours", "hour"),
    "hr": ("hours", "hour"),
    "sec": ("seconds", "second"),
}
_UNIT_RE = re.compile(
    r"(?<![\w.])(\d+(?:\.\d+)?)\s?("
    + "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
    + r")(?![\w/²³])"
)
_VULGAR = {
    "½": (1, 2), "⅓": (1, 3), "⅔": (2, 3), "¼": (1, 4), "¾": (3, 4), "⅕": (1, 5),
    "⅖": (2, 5), "⅗": (3, 5), "⅘": (4, 5), "⅙": (1, 6), "⅚": (5, 6), "⅛": (1, 8),
    "⅜": (3, 8), "⅝": (5, 8), "⅞": (7, 8),
}  # fmt: skip
_VULGAR_RE = re.compile(rf"(?:(\d+)\s?)?([{''.join(_VULGAR)}])")
_SLASH_FRACTION_RE = re.compile(r"(?<![\w/.])(?:(\d+)\s+)?(\d{1,3})/(\d{1,3})(?![\w/.]*\d)")
_PAGES_RE = re.compile(r"\b(pp?)\.\s?(\d+)(?:\s?[–-]\s?(\d+))?\b")
_RANGE_RE = re.compile(r"(?<![\w.,–-])(\d+)\s?–\s?(\d+)(?![\w.,]*\d)")
_NUMBER_SIGN_RE = re.compile(r"(?:\b(No|no|Nos|nos)\.|#)\s?(?=\d)")


@dataclass(frozen=True)
class _Words:
    """The number words of the voice's language that the rules below speak with."""

    say: Say
    ordinal: Say
    year: Say


def _iso_date(m: re.Match[str], w: _Words) -> str:
    year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
    return f"{_MONTHS[month - 1]} {w.ordinal(day)}, {w.year(year)}"


def _month_day(m: re.Match[str], w: _Words) -> str:
    day = int(m.group(2))
    return f"{m.group(1)} {w.ordinal(day)}" if 1 <= day <= 31 else m.group(0)


def _day_month(m: re.Match[str], w: _Words) -> str:
    day = int(m.group(1))
    return f"the {w.ordinal(day)} of {m.group(2)}" if 1 <= day <= 31 else m.group(0)


def _plausible_phone(
    prefix: str | None, area: str | None, groups: list[str], seps: list[str]
) -> bool:
    """A +prefix or an (area) code, or a shape that numbers of other kinds do not take."""
    shape = [len(g) for g in groups]
    return bool(prefix or area) or (
        # 555-123-4567, 555.123.4567, 555-1234; not 1.250.000 or 1914-18
        (seps == ["-", "-"] or seps == [".", "."]) and shape == [3, 3, 4]
    ) or (seps == ["-"] and shape == [3, 4]) or (
        len(groups) >= 3 and set(seps) == {"-"} and groups[0].startswith("0")
    )


def _phone(m: re.Match[str], w: _Words) -> str:
    prefix, area, body = m.group(1), m.group(2), m.group(3)
    groups = re.split(r"[\s.-]", body)
    digits = sum(len(g) for g in groups) + len(re.sub(r"\D", "", area or ""))
    if not _plausible_phone(prefix, area, groups, re.findall(r"[\s.-]", body)):
        return m.group(0)
    if not 7 <= digits <= 15:
        return m.group(0)
    parts = []
    if prefix:
        parts.append("plus " + " ".join(w.say(int(d)) for d in prefix[1:]))
    if area:
        parts.append(" ".join(w.say(int(d)) for d in re.sub(r"\D", "", area)))
    parts.extend(" ".join(w.say(int(d)) for d in g) for g in groups)
    return ", ".join(parts)


def _version(m: re.Match[str], w: _Words) -> str:
    label, dotted = (m.group(1), m.group(2)) if m.lastindex == 2 else ("", m.group(1))
    label = {"v": "version "}.get(label, label)
    return label + " point ".join(w.say(int(p)) for p in dotted.split("."))


def _section(m: re.Match[str], w: _Words) -> str:
    word = m.group(1) or ("sections" if m.group(2) == "§§" else "section")
    return f"{word} " + " ".join(w.say(int(p)) for p in m.group(3).split("."))


def _ip_address(m: re.Match[str], w: _Words) -> str:
    return " dot ".join(w.say(int(p)) for p in m.group(1).split("."))


def _clock(m: re.Match[str], w: _Words) -> str:
    end = ""
    if m.group(6):  # 24-hour time
        hours, minutes, half = int(m.group(6)), int(m.group(7)), ""
    else:
        hours, minutes = int(m.group(1)), int(m.group(2) or 0)
        half = (m.group(3) or m.group(4)).upper() + " M"
        end = "." if m.group(0).endswith(".") and m.group(5) is not None else ""
        if hours > 12:
            return m.group(0)
    spoken = _clock_words(hours, minutes, bool(half), w.say)
    return f"{spoken} {half}{end}" if half else spoken


def _clock_words(hours: int, minutes: int, twelve_hour: bool, say: Say) -> str:
    if minutes == 0:
        if twelve_hour:
            return say(hours)
        if hours == 0:
            return "midnight"
        return f"{say(hours)} hundred" if hours > 12 else f"{say(hours)} o'clock"
    hour = say(hours) if hours or twelve_hour else "zero"
    return f"{hour} oh {say(minutes)}" if minutes < 10 else f"{hour} {say(minutes)}"


def _magnitude(m: re.Match[str], w: _Words) -> str:
    symbol, amount, suffix = m.groups()
    return f"{amount} {_SUFFIX_WORDS[suffix]} {_CURRENCY_NAMES[symbol]}"


def _temperature(m: re.Match[str], w: _Words) -> str:
    value = m.group(1).replace(",", ".")
    scale = {"C": "Celsius", "F": "Fahrenheit", "K": "kelvin"}[m.group(2)]
    unit = "degree" if value in ("1", "-1") else "degrees"
    return f"{value} {unit} {scale}" if scale != "kelvin" else f"{value} kelvin"


def _degrees(m: re.Match[str], w: _Words) -> str:
    return f"{m.group(1)} degree{'' if m.group(1) == '1' else 's'}"


def _unit(m: re.Match[str], w: _Words) -> str:
    many, one = _UNITS[m.group(2)]
    return f"{m.group(1)} {one if m.group(1) == '1' else many}"


def _with_whole(whole: str | None, num: int, den: int, w: _Words) -> str:
    spoken = _fraction(num, den, w.say, w.ordinal)
    if whole:
        return f"{whole} and {'a half' if (num, den) == (1, 2) else spoken}"
    return spoken


def _vulgar(m: re.Match[str], w: _Words) -> str:
    num, den = _VULGAR[m.group(2)]
    return _with_whole(m.group(1), num, den, w)


def _slash(m: re.Match[str], w: _Words) -> str:
    whole, num, den = m.group(1), int(m.group(2)), int(m.group(3))
    if num == 0 or den < 2 or den > 100 or num >= den:
        if whole:
            return m.group(0)
        return f"{m.group(2)} {m.group(3)}"  # 24/7, 50/50, 9/11
    return _with_whole(whole, num, den, w)


def _pages(m: re.Match[str], w: _Words) -> str:
    word = "pages" if m.group(1) == "pp" or m.group(3) else "page"
    spoken = f"{word} {w.say(int(m.group(2)))}"
    return spoken + (f" to {w.say(int(m.group(3)))}" if m.group(3) else "")


_Rule = tuple[re.Pattern[str], Callable[[re.Match[str], _Words], str]]

_CONTEXT_RULES: tuple[_Rule, ...] = (
    # The order is part of the readings: what one rule has put in words, the next ones no
    # longer see as digits (tests/text/golden_readings.tsv pins it).
    (_ISO_DATE_RE, _iso_date),
    (_MONTH_DAY_RE, _month_day),
    (_DAY_MONTH_RE, _day_month),
    (_CIRCA_RE, lambda m, w: "circa "),
    (_SHORT_DECADE_RE, lambda m, w: _decade_word(w.say(int(m.group(1)) * 10))),
    (_PAGES_RE, _pages),
    (_SECTION_REF_RE, _section),
    (_LABELLED_VERSION_RE, _version),
    (_IP_RE, _ip_address),
    (_DOTTED_VERSION_RE, _version),
    (_PHONE_RE, _phone),
    (_CLOCK_RE, _clock),
    (_MAGNITUDE_SUFFIX_RE, _magnitude),
    (_TEMPERATURE_RE, _temperature),
    (_DEGREES_RE, _degrees),
    (_UNIT_RE, _unit),
    (_VULGAR_RE, _vulgar),
    (_SLASH_FRACTION_RE, _slash),
    (_RANGE_RE, lambda m, w: f"{m.group(1)} to {m.group(2)}"),
    (_NUMBER_SIGN_RE, lambda m, w: _number_sign(m)),
)


def read_numbers_in_context(text: str, say: Say, say_ordinal: Say, say_year: Say) -> str:
    """English readings of numbers whose context says what they are, rule by rule."""
    words = _Words(say, say_ordinal, say_year)
    for pattern, read in _CONTEXT_RULES:
        text = pattern.sub(lambda m, read=read: read(m, words), text)
    return text


def _number_sign(match: re.Match[str]) -> str:
    word = "numbers " if (match.group(1) or "").lower() == "nos" else "number "
    return word.capitalize() if (match.group(1) or "n")[0] == "N" else word


def _decade_word(tens: str) -> str:
    """ "ninety" to "nineties" ("the '90s")."""
    return tens[:-1] + "ies" if tens.endswith("y") else tens + "s"


def _fraction(num: int, den: int, say: Say, say_ordinal: Say) -> str:
    if den == 2:
        name = "half" if num == 1 else "halves"
    elif den == 4:
        name = "quarter" if num == 1 else "quarters"
    else:
        name = say_ordinal(den) + ("" if num == 1 else "s")
    return f"{say(num)} {name}"


# --- symbols, numerals and abbreviations by context -------------------------------------------

_SYMBOL_WORDS = [
    (re.compile(r"\s*&\s*"), " and "),
    (re.compile(r"(?<=\d)\s?×\s?(?=\d)"), " times "),
    (re.compile(r"\s?±\s?(?=\d)"), " plus or minus "),
    (re.compile(r"(?<!\w)~\s?(?=\d)"), "about "),
    (re.compile(r"\s?≈\s?(?=\d)"), " approximately "),
    (re.compile(r"(?<=\d) ?\+ ?(?=\d)"), " plus "),
    (re.compile(r"(?<=\d) = (?=\d)"), " equals "),
    (re.compile(r"(?<!\w)<\s?(?=\d)"), "less than "),
    (re.compile(r"(?<!\w)>\s?(?=\d)"), "more than "),
    (re.compile(r"(?<=[A-Za-z])/(?=[A-Za-z])"), " "),  # and/or, he/she, TCP/IP
    (re.compile(r"\s?%(?!\w)"), " percent"),
    (re.compile(r"^©\s?"), "Copyright "),
    (re.compile(r"©\s?"), "copyright "),
    (re.compile(r"[®™¶•]"), ""),
    (re.compile(r"§\s?"), "section "),
]
_REGNAL_NAMES = (
    "Henry|Edward|George|William|Louis|Charles|James|Richard|Elizabeth|Mary|Philip|Pius|John|"
    "Paul|Benedict|Gregory|Leo|Innocent|Frederick|Peter|Catherine|Ivan|Alexander|Nicholas|"
    "Ramesses|Ptolemy|Alfonso|Ferdinand|Wilhelm|Friedrich|Gustav|Gustavus|Christian|Olaf|"
    "Haakon|Harald|Otto|Constantine|Justinian|Clement|Urban|Boniface|Sixtus|Rudolf|Leopold|"
    "Joseph|Francis|Felipe|Juan|Carlos|Stephen|Malcolm|David|Robert|Edmund|Ethelred|Anne|"
    "Victoria|Amenhotep|Thutmose|Napoleon|Boris|Vasily|Sigismund|Casimir|Wenceslaus|Matilda"
)
_NUMERAL = r"(?:M{0,3})(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})"
_REGNAL_RE = re.compile(
    rf"\b((?:King |Queen |Pope |Emperor |Tsar |Czar |Pharaoh |Saint )?(?:{_REGNAL_NAMES}))\s"
    rf"({_NUMERAL})\b(?!['’]\w)"
)
# After "Henry I" only what cannot start a clause with the pronoun "I".
_AFTER_FIRST = re.compile(
    r"(?:'s)?(?:[,.;:!?)'’\"”]|\s+(?:of|and|was|were|had|died|ruled|reigned|became)\b|$)"
)
_COUNTED_RE = re.compile(
    r"\b(World War|Vatican|Apollo|Super Bowl|Title|Type|Class|Phase|Stage|Level|Grade|"
    r"Article|Volume|Book|Part|Chapter|Act|Scene|Appendix|Canto|Psalm|Episode|Mark|Schedule|"
    r"Category|Section)\s(" + _NUMERAL + r")\b(?!['’]\w)"
)
_DOCTOR_RE = re.compile(r"\bDr\.(?=\s+([A-Z]?))")
_SAINT_RE = re.compile(r"\bSt\.(?=\s*([A-Z]?))")
_SENTENCE_WORDS = frozenset(
    {
        "The", "A", "An", "On", "In", "At", "To", "From", "By", "Of", "And", "But", "Or",
        "We", "I", "He", "She", "It", "They", "You", "His", "Her",
    }
)  # fmt: skip


def read_regnal_numerals(text: str, say: Say, say_ordinal: Say) -> str:
    """Henry VIII, World War II: numerals where a name or a counted noun says they are numbers."""

    def regnal(m: re.Match[str]) -> str:
        value = roman_to_int(m.group(2)) if m.group(2) else None
        if not value or (m.group(2) == "I" and not _AFTER_FIRST.match(text, m.end())):
            return m.group(0)
        return f"{m.group(1)} the {say_ordinal(value).capitalize()}"

    def counted(m: re.Match[str]) -> str:
        numeral = m.group(2)
        value = roman_to_int(numeral) if numeral else None
        if not value:
            return m.group(0)
        spoken = say(value)
        return f"{m.group(1)} {spoken.capitalize() if m.group(1) == 'World War' else spoken}"

    text = _REGNAL_RE.sub(regnal, text)
    return _COUNTED_RE.sub(counted, text)


def read_titles_by_context(text: str) -> str:
    """Dr. and St.: Doctor and Saint before a name, Drive and Street after one."""

    def after_name(start: int) -> bool:
        """A capitalised word before, that does not start the sentence ("Baker St.")."""
        before = text[:start].rstrip()
        word = re.search(r"(?:^|([.!?\"“]?)\s*)\b([A-Z][a-z]+)$", before)
        if not word or word.group(2) in _SENTENCE_WORDS:
            return False
        return not re.search(r"(?:^|[.!?]\s+)[A-Z][a-z]+$", before)

    def doctor(m: re.Match[str]) -> str:
        return "Doctor" if m.group(1) or not after_name(m.start()) else "Drive"

    def saint(m: re.Match[str]) -> str:
        return "Saint" if m.group(1) and not after_name(m.start()) else "Street"

    text = _DOCTOR_RE.sub(doctor, text)
    return _SAINT_RE.sub(saint, text)


def read_symbols(text: str) -> str:
    for pattern, words in _SYMBOL_WORDS:
        text = pattern.sub(words, text)
    return text


def read_prose(
    text: str,
    lang: str,
    reading: Reading,
    say: Say,
    say_ordinal: Say,
    say_year: Say,
) -> str:
    """Everything in this module, in the order the rules need (see the module's docstring)."""
    text = read_inline_code(text, lang, reading.urls)
    text = drop_note_markers(text)
    text = read_addresses(text, lang, reading.urls)
    text = skip_other_scripts(text, lang, reading.warnings)
    if lang != "en":
        return text
    text = read_numbers_in_context(text, say, say_ordinal, say_year)
    text = read_regnal_numerals(text, say, say_ordinal)
    text = read_titles_by_context(text)
    return read_symbols(text)
