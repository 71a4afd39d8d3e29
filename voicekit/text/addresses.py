"""Addresses, code and foreign text in prose: what espeak-ng would spell out.

URLs read as their host in words ("debian-live dot alioth dot debian dot org"), with a
short path only when its segments are words; e-mail as "user at host dot org". Angle
brackets and trailing punctuation belong to the prose. Inline code and bare file paths
read as their words without symbols. Footnote markers ("[1]", "word¹") are dropped, and
in a Latin-script language a run of another script is skipped with a warning.
"""

from __future__ import annotations

import re
import unicodedata

from voicekit.text.model import CODE_CLOSE, CODE_OPEN

# Words for the parts of an address, by voice language; other languages keep the dots
# for espeak-ng, which reads them in its own language.
_ADDRESS_WORDS = {
    "en": {"dot": "dot", "at": "at", "slash": "slash"},
    "de": {"dot": "Punkt", "at": "at", "slash": "Schrägstrich"},
    "fr": {"dot": "point", "at": "arobase", "slash": "barre oblique"},
    "es": {"dot": "punto", "at": "arroba", "slash": "barra"},
    "it": {"dot": "punto", "at": "chiocciola", "slash": "barra"},
    "nl": {"dot": "punt", "at": "apenstaartje", "slash": "schuine streep"},
    "pt": {"dot": "ponto", "at": "arroba", "slash": "barra"},
}
# Languages written in Latin script: a run of another script in their text is skipped.
_LATIN_LANGUAGES = frozenset(
    {
        "en", "de", "fr", "es", "it", "nl", "pt", "pl", "cs", "sk", "sl", "hr", "sv", "da",
        "no", "nb", "nn", "fi", "et", "lv", "lt", "ro", "hu", "tr", "ca", "eu", "gl", "is",
        "ga", "cy", "sw", "vi", "id", "ms", "lb", "mt", "sq",
    }
)  # fmt: skip


# --- addresses --------------------------------------------------------------------------------

_TRAIL = ".,;:!?'\"”’)]}"
_URL_RE = re.compile(
    r"<?(?:(?:https?|ftps?|sftp|git|ssh)://|www\.)[^\s<>\"“”‘’]+>?", re.IGNORECASE
)
_EMAIL_RE = re.compile(
    r"<?(?:mailto:)?([A-Za-z0-9._%+-]+)@((?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,})(?:\.?>)?", re.IGNORECASE
)
# A bare host such as "example.com" in prose: lower case, a common top-level domain.
_BARE_HOST_RE = re.compile(
    r"(?<![\w@./-])((?:[a-z0-9-]+\.)+(?:com|org|net|edu|gov|io|info|dev|co\.uk|org\.uk|"
    r"ac\.uk|de|fr|nl|eu))(?![\w@/-]|\.\w)"
)
# A path segment worth saying: a word, perhaps hyphenated ("install", "getting-started").
_WORD_SEGMENT = re.compile(r"^[A-Za-z][A-Za-z]+(?:[-_][A-Za-z]+)?$")


def _address_words(lang: str) -> dict[str, str] | None:
    return _ADDRESS_WORDS.get(lang)


def read_host(host: str, lang: str) -> str:
    """``debian-live.alioth.debian.org`` to ``debian-live dot alioth dot debian dot org``."""
    host = host.lower().rstrip(".")
    if host.startswith("www."):
        host = host[4:]
    words = _address_words(lang)
    if words is None:
        return host
    labels = [label for label in host.split(".") if label]
    return f" {words['dot']} ".join(labels)


def read_url(url: str, lang: str, mode: str) -> str:
    """A URL in words: its host, plus a short path of words (``read``), or nothing (``skip``)."""
    if mode == "skip":
        return ""
    rest = re.sub(r"^[a-z]+://", "", url, flags=re.IGNORECASE)
    rest = re.sub(r"^[^@/]*@", "", rest)  # user:password@
    host, _, path = rest.partition("/")
    host = host.split(":", 1)[0]  # the port
    spoken = read_host(host, lang)
    if mode == "read":
        segments = _meaningful_path(path)
        words = _address_words(lang)
        if segments and words:
            spoken += "".join(f" {words['slash']} {s}" for s in segments)
    return spoken


def _meaningful_path(path: str) -> list[str]:
    """One or two word-like segments; ids, queries, files and long paths are not said."""
    if not path or re.search(r"[?#=&%]", path):
        return []
    segments = [s for s in path.strip("/").split("/") if s]
    if not segments or len(segments) > 2:
        return []
    if not all(_WORD_SEGMENT.match(s) and len(s) <= 24 for s in segments):
        return []
    return [s.replace("_", " ") for s in segments]


def _split_trailing(address: str) -> tuple[str, str]:
    """The address and the prose punctuation that follows it (a closing bracket it opened stays)."""
    inner = address
    if inner.startswith("<"):
        inner = inner[1:]
    trail = ""
    if inner.endswith(">"):
        inner, trail = inner[:-1], ""
    while inner and inner[-1] in _TRAIL:
        if inner[-1] == ")" and inner.count("(") >= inner.count(")"):
            break
        trail = inner[-1] + trail
        inner = inner[:-1]
    # "<debian-live@lists.debian.org.>": the full stop inside the brackets is the prose's too
    return inner, trail


def read_addresses(text: str, lang: str, mode: str) -> str:
    def url(match: re.Match[str]) -> str:
        inner, trail = _split_trailing(match.group(0))
        return read_url(inner, lang, mode) + trail

    def email(match: re.Match[str]) -> str:
        inner, trail = _split_trailing(match.group(0))
        if mode == "skip":
            return trail
        inner = re.sub(r"^mailto:", "", inner, flags=re.IGNORECASE)
        user, _, host = inner.partition("@")
        host = host.rstrip(".")
        words = _address_words(lang)
        if words is None:
            return f"{user}@{host}{trail}"
        user = f" {words['dot']} ".join(p for p in re.split(r"[.]", user) if p)
        return f"{user} {words['at']} {read_host(host, lang)}{trail}"

    text = _URL_RE.sub(url, text)
    text = _EMAIL_RE.sub(email, text)
    if _address_words(lang) is not None:
        text = _BARE_HOST_RE.sub(
            lambda m: "" if mode == "skip" else read_host(m.group(1), lang), text
        )
    if mode == "skip":  # no space left where an address was
        text = re.sub(r" +([.,;:!?])", r"\1", re.sub(r" {2,}", " ", text))
    return text


# --- inline code, footnote markers, other scripts -----------------------------------------------

_INLINE_CODE_RE = re.compile(f"{CODE_OPEN}([^{CODE_CLOSE}]*){CODE_CLOSE}")
# A file path in prose without code markup: "/etc/apt/sources.list", "~/.bashrc".
_PATH_RE = re.compile(r"(?<![\w/<])(~?/[\w.+-]+(?:/[\w.+-]+)+/?|~/[\w.+-]+)")
_SYMBOLS_RE = re.compile(r"[^\w\s'’]+|_+")
# "[1]", "[12]" or "[a]" after a word or punctuation; superscript digits after a word of
# three letters or more ("mc²" and "km²" keep theirs).
_NOTE_MARKER_RE = re.compile(r"(?<=[\w.,;:!?\"”’)])\[(?:\d{1,3}|[a-z]|\*|†)\]")
_SUPER_DIGITS = "⁰¹²³⁴⁵⁶⁷⁸⁹"
_SUPER_MARKER_RE = re.compile(rf"(?:(?<=[A-Za-z]{{3}})|(?<=[.,;:!?\"”’)]))[{_SUPER_DIGITS}]+")


def read_inline_code(text: str, lang: str, mode: str) -> str:
    """``lb config --debug`` inside prose reads "lb config debug": words, no symbols."""

    def code(match: re.Match[str]) -> str:
        inner = read_addresses(match.group(1), lang, "host" if mode == "read" else mode)
        return " " + _SYMBOLS_RE.sub(" ", inner).strip() + " "

    text = _PATH_RE.sub(lambda m: f"{CODE_OPEN}{m.group(1)}{CODE_CLOSE}", text)
    if CODE_OPEN not in text:
        return text
    text = _INLINE_CODE_RE.sub(code, text)
    text = text.replace(CODE_OPEN, " ").replace(CODE_CLOSE, " ")
    return re.sub(r" +([.,;:!?])", r"\1", re.sub(r" {2,}", " ", text))


def drop_note_markers(text: str) -> str:
    text = _NOTE_MARKER_RE.sub("", text)
    return _SUPER_MARKER_RE.sub("", text)


def skip_other_scripts(text: str, lang: str, warnings: list[str]) -> str:
    """In a Latin-script language, drop runs of another script (with a warning)."""
    if lang not in _LATIN_LANGUAGES or text.isascii():
        return text
    out: list[str] = []
    skipped: list[str] = []
    run: list[str] = []

    def close_run() -> None:
        if not run:
            return
        word = "".join(run).strip()
        run.clear()
        letters = [c for c in word if c.isalpha()]
        if len(letters) == 1 and lang == "en" and (name := _greek_letter(letters[0])):
            out.append(name)  # "the α particle": a symbol, read by its name
            return
        skipped.append(word)

    for char in text:
        joins = char in " '’-" or unicodedata.category(char) in ("Mn", "Mc")
        if (char.isalpha() and _foreign(char)) or (run and joins):
            run.append(char)
        else:
            if run:
                trailing = len(run) - len("".join(run).rstrip(" '’-"))
                tail = "".join(run[len(run) - trailing :]) if trailing else ""
                del run[len(run) - trailing :]
                close_run()
                out.append(tail)
            out.append(char)
    close_run()
    if not skipped:
        return "".join(out)
    shown = ", ".join(f"'{s}'" for s in skipped[:3]) + (" ..." if len(skipped) > 3 else "")
    warnings.append(f"skipped text in another script: {shown}")
    result = "".join(out)
    result = re.sub(r"\(\s*[,;:]?\s*\)|\[\s*\]|«\s*»|“\s*”|\"\s*\"", "", result)
    result = re.sub(r" {2,}", " ", result)
    return re.sub(r" +([.,;:!?])", r"\1", result).strip()


def _foreign(char: str) -> bool:
    if char in "ªºµ":
        return False
    try:
        return not unicodedata.name(char).startswith("LATIN")
    except ValueError:
        return False


def _greek_letter(char: str) -> str:
    name = unicodedata.name(char, "")
    if name.startswith("GREEK SMALL LETTER ") or name.startswith("GREEK CAPITAL LETTER "):
        letter = name.rsplit(" ", 1)[-1].lower()
        return "" if " WITH " in name else letter
    return ""


