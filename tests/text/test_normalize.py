from __future__ import annotations

import pytest

from voicekit.text.normalize import language_of, normalize_heading, normalize_text
from voicekit.text.numerals import roman_to_int


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I have 3 cats.", "I have three cats."),
        ("It costs 1,250 points.", "It costs one thousand, two hundred and fifty points."),
        ("Pi is 3.14 or so.", "Pi is three point one four or so."),
        ("It was -5 outside.", "It was minus five outside."),
        ("She came 21st and he 2nd.", "She came twenty-first and he second."),
        ("In 1984 it rained.", "In nineteen eighty-four it rained."),
        ("Born in 1905.", "Born in nineteen oh-five."),
        ("The war of 1914-18 ended.", "The war of nineteen fourteen to nineteen eighteen ended."),
        ("Music of the 1960s.", "Music of the nineteen sixties."),
        ("It cost $5.50 today.", "It cost five dollars and fifty cents today."),
        ("Just $1.", "Just one dollar."),
        ("Only $0.99 now.", "Only ninety-nine cents now."),
        ("A £1,000 fine.", "A one thousand pounds fine."),
        ("Worth €12 each.", "Worth twelve euros each."),
        ("They raised $2.5 million.", "They raised two point five million dollars."),
        ("Growth of 50% here.", "Growth of fifty percent here."),
        ("Meet at 10:30 or 9:05 or 7:00.", "Meet at ten thirty or nine oh five or seven o'clock."),
    ],
)
def test_numbers_years_currency(text: str, expected: str) -> None:
    assert normalize_text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mr. Smith met Mrs. Jones and Dr. Who.", "Mister Smith met Missus Jones and Doctor Who."),
        ("St. Peter lived on Baker St. in town.", "Saint Peter lived on Baker Street in town."),
        ("Fruit, e.g. apples, etc. are fine.", "Fruit, for example apples, et cetera are fine."),
        ("We left at 5 p.m. Then it rained.", "We left at five P M. Then it rained."),
        ("Apples, pears, etc.", "Apples, pears, et cetera."),
        ("Prof. Lee vs. Capt. Hook.", "Professor Lee versus Captain Hook."),
    ],
)
def test_abbreviations(text: str, expected: str) -> None:
    assert normalize_text(text) == expected


def test_dashes_become_pauses_and_spaces_collapse() -> None:
    assert normalize_text("Wait\u2014what?  Really\u00a0 now.") == "Wait, what? Really now."


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Chapter XII", "Chapter twelve"),
        ("CHAPTER IV. The Storm", "CHAPTER four. The Storm"),
        ("Part II: Return", "Part two: Return"),
        ("IX.", "nine."),
        ("Book 3", "Book three"),
        ("I", "I"),  # a lone "I" is more likely the pronoun than chapter one
        ("Chapter Mix", "Chapter Mix"),  # not a numeral: MIX would be 1009 but "Mix" is a word
    ],
)
def test_roman_numerals_in_headings(title: str, expected: str) -> None:
    assert normalize_heading(title) == expected


def test_roman_numerals_in_prose_only_where_they_are_numbers() -> None:
    # before 2: "Chapter XII began." was left to espeak-ng, which spells "X I I"
    assert normalize_text("Chapter XII began.") == "Chapter twelve began."
    assert normalize_text("I saw V. Then I left.") == "I saw V. Then I left."


@pytest.mark.parametrize(("numeral", "value"), [("iv", 4), ("MCMLXXXIV", 1984), ("XL", 40)])
def test_roman_values(numeral: str, value: int) -> None:
    assert roman_to_int(numeral) == value


@pytest.mark.parametrize("bad", ["IIII", "VX", "ABC", ""])
def test_malformed_roman_numerals_are_rejected(bad: str) -> None:
    assert roman_to_int(bad) is None


def test_other_languages_use_their_number_words_and_skip_english_rules() -> None:
    assert normalize_text("Er kaufte 12 Äpfel.", "de") == "Er kaufte zwölf Äpfel."
    # English abbreviations are not expanded in German text.
    assert normalize_text("Dr. Müller kam.", "de") == "Dr. Müller kam."


def test_language_codes() -> None:
    assert language_of("en_US") == "en"
    assert language_of("de-DE") == "de"
    assert language_of("") == "en"


def test_no_is_a_number_only_before_one() -> None:
    # before 2: "No. I will not." read "Number I will not."
    assert normalize_text("No. I will not. No. 5 will.") == "No. I will not. Number five will."


def test_settings_check_the_reading_options() -> None:
    from voicekit.errors import InputError
    from voicekit.settings import SynthSettings

    for name in ("heading_numbers", "urls", "code", "tables"):
        with pytest.raises(InputError, match=name.replace("_", "-")):
            SynthSettings().replace(**{name: "loud"}).validate()
