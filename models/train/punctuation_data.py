"""The punctuation corpus as the recipe stores it: one source's words, suffixes, cases and marks as flat arrays.

Below the recipe (`models.train.punctuation`), its batch loading (`punctuation_device`) and its scores
(`punctuation_scores`), which all read it, so none of those imports another to get it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.asr.punctuation_text import EXCLAMATION, PERIOD, QUESTION

SENTENCE_END = (PERIOD, QUESTION, EXCLAMATION)


@dataclass
class Labelled:
    """One source as flat arrays over its words in order."""

    words: np.ndarray  # [N] int32 word ids (vocabulary ids after `prepare`)
    suffixes: np.ndarray  # [N] int16 suffix bucket ids
    cases: np.ndarray  # [N] int8 CASES index
    marks: np.ndarray  # [N] int8 MARKS index

    def starts(self) -> np.ndarray:
        """Indices of words that begin a sentence (the first, and each after a sentence-final mark)."""
        after_end = np.isin(self.marks[:-1], SENTENCE_END)
        return np.concatenate([[0], np.nonzero(after_end)[0] + 1]).astype(np.int64)


def load_source(prepared: Path, source: str) -> Labelled:
    return Labelled(*(np.load(prepared / f"{source}.{column}.npy") for column in ("words", "suffixes", "cases", "marks")))
