"""Roman numerals: their value, and whether a word is one at all."""

from __future__ import annotations

_ROMAN = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}


def roman_to_int(numeral: str) -> int | None:
    """Value of a well-formed Roman numeral (case-insensitive), else None."""
    numeral = numeral.upper()
    if not numeral or any(c not in _ROMAN for c in numeral):
        return None
    total = 0
    for i, char in enumerate(numeral):
        value = _ROMAN[char]
        if i + 1 < len(numeral) and _ROMAN[numeral[i + 1]] > value:
            total -= value
        else:
            total += value
    # Reject malformed numerals such as IIII or VX by writing the value back.
    return total if 0 < total < 4000 and _int_to_roman(total) == numeral else None


def _int_to_roman(value: int) -> str:
    out = []
    for number, letters in (
        (1000, "M"),
        (900, "CM"),
        (500, "D"),
        (400, "CD"),
        (100, "C"),
        (90, "XC"),
        (50, "L"),
        (40, "XL"),
        (10, "X"),
        (9, "IX"),
        (5, "V"),
        (4, "IV"),
        (1, "I"),
    ):
        count, value = divmod(value, number)
        out.append(letters * count)
    return "".join(out)
