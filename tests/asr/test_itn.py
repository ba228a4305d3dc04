"""Inverse text normalisation: a table of spoken forms and how they are written."""

from __future__ import annotations

import pytest

from app.asr.itn import apply_itn, find_numbers
from app.asr.text import normalize_text

EXAMPLES = [
    # cardinals: ten and above, or with a scale word, become digits; under ten stay words
    ("three dogs and twenty one cats", "three dogs and 21 cats"),
    ("one hundred and five", "105"),
    ("fifteen hundred men", "1500 men"),
    ("forty thousand people", "40,000 people"),
    ("two million three hundred thousand", "2,300,000"),
    ("one thousand nine hundred fourteen", "1914"),  # how normalize_text spells 1914
    ("a hundred years", "a hundred years"),
    ("two and three", "two and three"),
    ("zero", "zero"),
    # ordinals
    ("the twenty first century", "the 21st century"),
    ("the first one", "the first one"),
    ("on march third", "on march 3rd"),
    ("the eleventh hour", "the 11th hour"),
    ("one hundredth", "100th"),
    ("the forty second street", "the 42nd street"),
    # years
    ("in nineteen eighty four", "in 1984"),
    ("nineteen oh five", "1905"),
    ("two thousand and ten", "2010"),
    ("twenty twenty five", "2025"),
    # times
    ("ten thirty a m", "10:30 a.m."),
    ("five p m", "5 p.m."),
    ("at eleven fifteen we left", "at 11:15 we left"),
    ("at four oh five", "at 4:05"),
    ("six o'clock", "6 o'clock"),
    # money and percentages
    ("twenty dollars", "$20"),
    ("one dollar", "$1"),
    ("five dollars and fifty cents", "$5.50"),
    ("ten pounds", "£10"),
    ("twenty five percent", "25%"),
    ("fifty per cent", "50%"),
    ("three point five percent", "3.5%"),
    # decimals and digit strings
    ("three point one four", "3.14"),
    ("call nine one six now", "call 916 now"),
    ("four oh two one", "4021"),
    ("room four two", "room 42"),
    ("flight seven", "flight 7"),
    ("oh no", "oh no"),
    ("one second", "one second"),
    ("twenty seconds", "20 seconds"),
]


@pytest.mark.parametrize(("spoken", "written"), EXAMPLES)
def test_examples(spoken: str, written: str) -> None:
    assert " ".join(w for w in apply_itn(spoken.split()) if w) == written


@pytest.mark.parametrize(("spoken", "written"), EXAMPLES)
def test_display_goes_on_the_first_word(spoken: str, written: str) -> None:
    """Every word keeps a slot, so timestamps still cover a span; merged words show ""."""
    words = spoken.split()
    shown = apply_itn(words)
    assert len(shown) == len(words)
    for span in find_numbers(words):
        assert shown[span.start] == span.text and all(s == "" for s in shown[span.start + 1 : span.end])


@pytest.mark.parametrize("spoken", ["three dogs and twenty one cats", "forty thousand people", "one thousand nine hundred fourteen",
                                    "call nine one six now"])
def test_normalising_the_written_form_gives_the_words_back(spoken: str) -> None:
    """Where normalize_text spells numbers the way they were said, WER on normalised text is unchanged by ITN
    (asr-eval scores `raw_text` anyway)."""
    written = " ".join(w for w in apply_itn(spoken.split()) if w)
    assert written != spoken
    if "nine one six" in spoken:  # a digit string normalises to its cardinal ("nine hundred sixteen")
        assert normalize_text(written) == "call nine hundred sixteen now"
    else:
        assert normalize_text(written) == spoken


def test_spans_stop_at_punctuation() -> None:
    words = "it was nineteen twenty people came".split()
    marks = ["", "", ",", "", "", "."]
    assert apply_itn(words, marks) == ["it", "was", "19", "20", "people", "came"]
    assert apply_itn(words) == ["it", "was", "1920", "", "people", "came"]


def test_no_numbers_no_change() -> None:
    words = "he turned sharply and faced gregson across the table".split()
    assert apply_itn(words) == words and find_numbers(words) == []
