"""The letter dictionary shared by training, export and the server (pure Python).

Acoustic models score letters: lowercase a-z, the apostrophe and the word separator `|`.
ASG models add repetition labels (`1`, `2`, ...): a label N means "the previous letter N
more times", so that doubled letters ("hello") survive the merging of repeated frames
without a blank. CTC models add a blank instead, at index 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

WORD_SEPARATOR = "|"
BLANK = "<blank>"
LETTERS: tuple[str, ...] = tuple("'abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True)
class TokenTable:
    """Maps token strings to ids and letters to transcripts.

    `repetition_labels` is the number of repetition labels (`1`..`N`) in the table; 0 for
    CTC tables and tables taken from outside models (e.g. a Hugging Face tokenizer).
    """

    tokens: tuple[str, ...]
    word_separator: str = WORD_SEPARATOR
    blank: str | None = None
    repetition_labels: int = 0

    def __post_init__(self) -> None:
        if len(set(self.tokens)) != len(self.tokens):
            raise ValueError("token list has duplicates")
        if self.blank is not None and self.blank not in self.tokens:
            raise ValueError(f"blank token {self.blank!r} is not in the token list")
        for n in range(1, self.repetition_labels + 1):
            if str(n) not in self.tokens:
                raise ValueError(f"repetition label {n!r} is not in the token list")

    @property
    def index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tokens)}

    @property
    def blank_id(self) -> int | None:
        return None if self.blank is None else self.tokens.index(self.blank)

    @property
    def separator_id(self) -> int | None:
        return self.tokens.index(self.word_separator) if self.word_separator in self.tokens else None

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        """Normalised text to ids: spaces become the separator; with repetition labels, a run
        of k identical letters becomes the letter followed by the label k-1 (split into
        several labels when k-1 exceeds the largest label)."""
        index = self.index
        letters = [self.word_separator if c == " " else c for c in text]
        unknown = sorted({c for c in letters if c not in index})
        if unknown:
            raise ValueError(f"characters not in the token table: {unknown!r}")
        ids: list[int] = []
        i = 0
        while i < len(letters):
            j = i
            while j + 1 < len(letters) and letters[j + 1] == letters[i]:
                j += 1
            ids.append(index[letters[i]])
            extra = j - i
            if self.repetition_labels == 0:
                ids.extend([index[letters[i]]] * extra)
            while extra > 0:
                label = min(extra, self.repetition_labels)
                ids.append(index[str(label)])
                extra -= label
            i = j + 1
        return ids

    def expand(self, ids: Iterable[int]) -> list[int]:
        """Replace repetition labels by the letter they repeat (ids already merged)."""
        out: list[int] = []
        labels = {self.tokens.index(str(n)): n for n in range(1, self.repetition_labels + 1)}
        for i in ids:
            if i in labels:
                if out:
                    out.extend([out[-1]] * labels[i])
            else:
                out.append(i)
        return out

    def decode(self, ids: Sequence[int]) -> str:
        """Merged label ids (no blanks) to a normalised transcript."""
        chars = [self.tokens[i] for i in self.expand(ids) if self.tokens[i] != self.blank]
        text = "".join(" " if c == self.word_separator else c for c in chars)
        return " ".join(text.split())

    def to_json(self) -> dict[str, object]:
        return {
            "tokens": list(self.tokens),
            "word_separator": self.word_separator,
            "blank": self.blank,
            "repetition_labels": self.repetition_labels,
        }


def asg_letters(repetition_labels: int = 2) -> TokenTable:
    """The ASG dictionary: separator, apostrophe, a-z, then repetition labels."""
    labels = tuple(str(n) for n in range(1, repetition_labels + 1))
    return TokenTable((WORD_SEPARATOR, *LETTERS, *labels), repetition_labels=repetition_labels)


def ctc_letters() -> TokenTable:
    """The CTC dictionary: blank at index 0, separator, apostrophe, a-z."""
    return TokenTable((BLANK, WORD_SEPARATOR, *LETTERS), blank=BLANK)
