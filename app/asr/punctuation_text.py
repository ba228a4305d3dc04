"""Punctuation and casing labels: from written text to per-word targets, and back to display forms.

Shared by the training recipe (`models.train.punctuation`), evaluation and the server's
tagger (`app.asr.punctuation`); pure Python, no torch.

A transcript is the list of words `app.asr.text.normalize_text` produces. For each word the
tagger predicts two labels:

- its case (`CASES`): `lower`, `capital` ("Gregson", "I"), `upper` ("BBC") or `known`: a form
  taken from the bundle's table of known forms (mixed case such as "McDonald", "O'Brien", and
  abbreviations that carry their own period such as "Mr."); a `known` word missing from the
  table is shown capitalised;
- the mark that follows it (`MARKS`): none, comma, period, question or exclamation mark.
  Semicolons, colons and dashes are folded into the comma and an ellipsis into the period,
  so the labels are the marks a transcript shows. Apostrophes stay inside words.

`label_text` turns one written passage into `LabeledWord`s whose `word`s are exactly
`normalize_text(passage).split()`, so labels line up with what a recognizer outputs.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from app.asr.text import normalize_text

CASES: tuple[str, ...] = ("lower", "capital", "upper", "known")
MARKS: tuple[str, ...] = ("", ",", ".", "?", "!")
LOWER, CAPITAL, UPPER, KNOWN = range(4)
NO_MARK, COMMA, PERIOD, QUESTION, EXCLAMATION = range(5)

# Abbreviations whose period belongs to the word ("Mr. Holmes" is one sentence): a `known` form.
ABBREVIATIONS: tuple[str, ...] = ("Mr.", "Mrs.", "Dr.", "St.", "Messrs.", "Mme.", "Mlle.", "Jr.", "Sr.", "Prof.", "Rev.", "Capt.",
                                  "Col.", "Gen.", "Lt.", "Sgt.", "Gov.", "Hon.", "Mt.", "Ms.")
_ABBREVIATION_KEYS = {a.lower(): a for a in ABBREVIATIONS}
_MARK_OF = {",": COMMA, ";": COMMA, ":": COMMA, "-": COMMA, ".": PERIOD, "?": QUESTION, "!": EXCLAMATION}
_PIECE = re.compile(r"\d+|[A-Za-z]+(?:'[A-Za-z]+)*")
_CLOSERS = "\"')]}*_"
_OPENERS = "\"'([{*_"


@dataclass(frozen=True)
class LabeledWord:
    word: str  # normalised: lowercase letters and apostrophe
    case: int  # index into CASES
    mark: int  # index into MARKS: the mark after this word
    form: str  # the word's letters as written ("McDonald", "Mr." for abbreviations)


def fold(text: str) -> str:
    """Accents folded and typographic apostrophes made plain, as `normalize_text` does."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return text.replace("\u2019", "'").replace("`", "'")


def case_of(form: str) -> int:
    """The case class of a written word ("the" lower, "The"/"I" capital, "BBC" upper, "McDonald" known)."""
    letters = [c for c in form if c.isalpha()]
    if not letters or not any(c.isupper() for c in letters):
        return LOWER
    if all(c.isupper() for c in letters):
        return CAPITAL if len(letters) == 1 else UPPER
    if letters[0].isupper() and not any(c.isupper() for c in letters[1:]):
        return CAPITAL
    return KNOWN


def _mark_in(chars: str) -> int:
    """The last mark among a word's trailing punctuation ("etc.," -> comma, "...?" -> question)."""
    found = [_MARK_OF[c] for c in chars if c in _MARK_OF]
    return found[-1] if found else NO_MARK


def label_text(text: str) -> list[LabeledWord]:
    """Written text -> the words of `normalize_text(text)` with their case and following mark."""
    text = fold(text).replace("--", " -- ")
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)
    out: list[LabeledWord] = []
    for token in text.split():
        abbreviation = _ABBREVIATION_KEYS.get(token.strip(_OPENERS + _CLOSERS).lower())
        if abbreviation is not None:  # "Mr.": the period is part of the word
            out.append(LabeledWord(abbreviation[:-1].lower(), KNOWN, NO_MARK, abbreviation))
            continue
        words: list[LabeledWord] = []
        for piece in _PIECE.findall(token):
            if piece.isdigit():
                words += [LabeledWord(w, LOWER, NO_MARK, w) for w in normalize_text(piece).split()]
            else:
                words.append(LabeledWord(piece.lower(), case_of(piece), NO_MARK, piece))
        tail = token[_last_piece_end(token):]
        mark = _mark_in(tail.rstrip(_CLOSERS) or tail)
        if words:
            if [w.word for w in words] != normalize_text(token).split():  # characters normalize_text treats otherwise
                words = [LabeledWord(w, LOWER, NO_MARK, w) for w in normalize_text(token).split()]
            if words:
                out += words[:-1]
                out.append(LabeledWord(words[-1].word, words[-1].case, mark, words[-1].form))
                continue
        if out and mark > out[-1].mark:  # a mark standing alone ("--", "?") belongs to the word before
            last = out[-1]
            out[-1] = LabeledWord(last.word, last.case, mark, last.form)
    return out


def _last_piece_end(token: str) -> int:
    end = 0
    for match in _PIECE.finditer(token):
        end = match.end()
    return end


def display(word: str, *, case: int, mark: int, known: Mapping[str, str]) -> str:
    """The word as shown: cased and followed by its mark ("gregson", CAPITAL, COMMA -> "Gregson,")."""
    if case == KNOWN:
        shown = known.get(word)
        if shown is None:
            shown = word[:1].upper() + word[1:]
        elif shown.endswith(".") and mark == PERIOD:
            return shown  # "Mr." ends the sentence: one period, not two
    elif case == CAPITAL:
        shown = word[:1].upper() + word[1:]
    elif case == UPPER:
        shown = word.upper()
    else:
        shown = word
    return shown + MARKS[mark]


def suffix_bucket(word: str, buckets: int) -> int:
    """A hashed id of the word's last three letters, 1..buckets (0 pads): a hint for unknown words."""
    return zlib.crc32(word[-3:].encode()) % buckets + 1


class Vocabulary:
    """Word ids of a tagger: 0 pads, 1 is every word outside the list, then the words in order."""

    PAD, UNKNOWN = 0, 1

    def __init__(self, words: Sequence[str], *, suffix_buckets: int) -> None:
        self.words = tuple(words)
        self.suffix_buckets = suffix_buckets
        self._index = {w: i + 2 for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words) + 2

    def ids(self, words: Iterable[str]) -> tuple[list[int], list[int]]:
        """Word ids and suffix ids of a sequence of normalised words."""
        word_ids, suffix_ids = [], []
        for w in words:
            word_ids.append(self._index.get(w, self.UNKNOWN))
            suffix_ids.append(suffix_bucket(w, self.suffix_buckets))
        return word_ids, suffix_ids

    @classmethod
    def from_file(cls, path: str | object, *, suffix_buckets: int) -> Vocabulary:
        from pathlib import Path

        return cls(Path(str(path)).read_text(encoding="utf-8").split("\n")[:-1], suffix_buckets=suffix_buckets)

    def write(self, path: object) -> None:
        from pathlib import Path

        Path(str(path)).write_text("".join(w + "\n" for w in self.words), encoding="utf-8")
