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
    `special` names tokens that are never text (a tokenizer's `<s>`, `</s>`, `<unk>`):
    `decode` drops them, like the blank.
    """

    tokens: tuple[str, ...]
    word_separator: str = WORD_SEPARATOR
    blank: str | None = None
    repetition_labels: int = 0
    special: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(set(self.tokens)) != len(self.tokens):
            raise ValueError("token list has duplicates")
        if self.blank is not None and self.blank not in self.tokens:
            raise ValueError(f"blank token {self.blank!r} is not in the token list")
        for n in range(1, self.repetition_labels + 1):
            if str(n) not in self.tokens:
                raise ValueError(f"repetition label {n!r} is not in the token list")
        for token in self.special:
            if token not in self.tokens:
                raise ValueError(f"special token {token!r} is not in the token list")

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
                extra = 0
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
        """Merged label ids (no blanks) to a normalised transcript; special tokens are dropped."""
        dropped = {self.blank, *self.special}
        chars = [self.tokens[i] for i in self.expand(ids) if self.tokens[i] not in dropped]
        text = "".join(" " if c == self.word_separator else c for c in chars)
        return " ".join(text.split())

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "tokens": list(self.tokens),
            "word_separator": self.word_separator,
            "blank": self.blank,
            "repetition_labels": self.repetition_labels,
        }
        if self.special:  # written only when present, so older readers see the same manifest
            data["special"] = list(self.special)
        return data


def asg_letters(repetition_labels: int = 2) -> TokenTable:
    """The ASG dictionary: separator, apostrophe, a-z, then repetition labels."""
    labels = tuple(str(n) for n in range(1, repetition_labels + 1))
    return TokenTable((WORD_SEPARATOR, *LETTERS, *labels), repetition_labels=repetition_labels)


def ctc_letters() -> TokenTable:
    """The CTC dictionary: blank at index 0, separator, apostrophe, a-z."""
    return TokenTable((BLANK, WORD_SEPARATOR, *LETTERS), blank=BLANK)


EOS = "<eos>"


def lm_letters() -> TokenTable:
    """The character LM dictionary: `<eos>` at index 0, separator, apostrophe, a-z."""
    return TokenTable((EOS, WORD_SEPARATOR, *LETTERS))


def encode_sentences(table: TokenTable, sentences: Iterable[str]) -> list[int]:
    """Normalised sentences to the LM stream `<eos> s1 <eos> s2 ... <eos>` (spaces -> separator).

    The one encoding used by the trainer (the corpus as one stream) and the scorer (one
    sentence: `<eos> h e l l o | w o r l d <eos>`, whose log-probability is the sum of
    log p(id[k+1] | id[..k])). Each `<eos>` ends one sentence and is the context that
    starts the next.
    """
    if EOS not in table.tokens:
        raise ValueError(f"token table has no {EOS!r}")
    index = table.index
    eos = index[EOS]
    index[" "] = index[table.word_separator]
    ids = [eos]
    for sentence in sentences:
        try:
            ids.extend(index[c] for c in sentence)
        except KeyError as e:
            raise ValueError(f"character {e.args[0]!r} not in the LM token table (in {sentence!r})") from None
        ids.append(eos)
    return ids
