"""Token tables: round trips, repetition labels, CTC doubles, text normalisation."""

import pytest

from app.asr.text import normalize_text
from app.asr.tokens import asg_letters, ctc_letters, lm_letters


@pytest.mark.parametrize("text", ["hello world", "a", "bookkeeper", "llll x", "don't stop", "zzzzzz"])
def test_round_trip(text: str) -> None:
    for table in (asg_letters(), ctc_letters()):
        assert table.decode(table.encode(text)) == text


def test_repetition_labels() -> None:
    table = asg_letters()
    assert [table.tokens[i] for i in table.encode("hello")] == ["h", "e", "l", "1", "o"]
    assert [table.tokens[i] for i in table.encode("aaa")] == ["a", "2"]
    ctc = ctc_letters()
    assert [ctc.tokens[i] for i in ctc.encode("hello")] == ["h", "e", "l", "l", "o"]


def test_unknown_characters_are_refused() -> None:
    with pytest.raises(ValueError, match="not in the token table"):
        asg_letters().encode("héllo")


def test_lm_table_has_eos_first() -> None:
    assert lm_letters().tokens[0] == "<eos>"


@pytest.mark.parametrize(("raw", "normal"), [
    ("Hello, World!", "hello world"),
    ("It's 42 o'clock", "it's forty two o'clock"),
    ("Café — \u2018quoted\u2019 1,234", "cafe quoted one thousand two hundred thirty four"),
    ("  many   spaces ", "many spaces"),
])
def test_normalize_text(raw: str, normal: str) -> None:
    assert normalize_text(raw) == normal
