"""`Hypothesis`: one transcript of an n-best list, as every decoder returns it and rescoring reads it."""

from __future__ import annotations

from dataclasses import dataclass

Frames = tuple[tuple[int, int], ...]  # per label (or word): the frames [start, end) it occupies


@dataclass(frozen=True, kw_only=True)
class Hypothesis:
    """One transcript of the n-best list.

    `tokens`: label ids after merging repeats and dropping blanks (repetition labels kept).
    `frames[i]`: the frames [start, end) token i occupies in the search's alignment.
    `text`: the transcript (the token table's reading of `tokens`; "" when searched without a table).
    `score` = `acoustic_score` + lm_weight x `lm_score` + word_score x `word_count`
    + silence_score x separators + unk_score x out-of-lexicon words + `hotword_score`.
    `lm_score` is the n-gram LM's own natural-log probability of `words` and `</s>`.
    """

    text: str = ""
    tokens: tuple[int, ...] = ()
    score: float = 0.0
    acoustic_score: float = 0.0
    lm_score: float = 0.0
    word_count: int = 0
    frames: Frames = ()
    words: tuple[str, ...] = ()
    word_frames: Frames = ()
    hotword_score: float = 0.0

    @property
    def ngram_score(self) -> float:
        """What the decoder added to the acoustic score (weighted n-gram, word, silence, out-of-lexicon
        and hotword scores): the part of `score` a rescorer keeps beside the acoustic one."""
        return self.score - self.acoustic_score
