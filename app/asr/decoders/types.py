"""What the decoders share: `BeamOptions` (the settings of one search) and `Hypothesis` (one
transcript of an n-best list, as every decoder returns it and rescoring reads it)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

MAX_BEAM_SIZE = 1024  # the one bound on beam width: library calls and requests (app.asr.options) alike
Frames = tuple[tuple[int, int], ...]  # per label (or word): the frames [start, end) it occupies


@dataclass(frozen=True)
class BeamOptions:
    """Beam search settings, checked once.

    `beam_threshold` prunes twice: tokens scoring below the frame's best token by more than
    it are not tried, and hypotheses below the best by more than it are dropped.
    `token_threshold`, when given, prunes tokens harder: in each frame every token but the
    blank scoring below the frame's best by more than it is impossible, for staying on a
    label as for moving to one (pyctcdecode's `token_min_logp`, there in absolute
    log-probability). Faster, and it can cost accuracy where the right letter is weak.
    `beam_size_token` caps the tokens tried per frame (None: no cap). `allow_oov` lets a
    lexicon search spell words outside the lexicon, each costing `unk_score` (and scored as
    `<unk>` by the LM). `log_add` sums over alignments (True) or keeps the best (False).
    `engine`: `python` is the reference search (`app.asr.decoders.reference`), which does
    everything; `fast` is flashlight-text's compiled decoders (`app.asr.decoders.flashlight`),
    several times faster for two common cases: a lexicon with an n-gram LM file (its C++
    lexicon decoder and KenLM; no hotwords, out-of-lexicon words or silence score), and plain
    lexicon-free CTC without LM or word scores; `auto` takes `fast` whenever the search is one
    of them (`app.asr.decoders.dispatch`).
    """

    beam_size: int = 16
    nbest: int = 1
    beam_threshold: float = 25.0
    token_threshold: float | None = None
    beam_size_token: int | None = None
    lm_weight: float = 0.5
    word_score: float = 0.0
    silence_score: float = 0.0
    unk_score: float = -10.0
    allow_oov: bool = False
    log_add: bool = True
    engine: Literal["auto", "python", "fast"] = "auto"

    def __post_init__(self) -> None:
        def is_int(v: object) -> bool:
            return isinstance(v, int | np.integer) and not isinstance(v, bool)

        if not is_int(self.beam_size) or not 1 <= self.beam_size <= MAX_BEAM_SIZE:
            raise ValueError(f"beam_size must be an integer in 1..{MAX_BEAM_SIZE}, got {self.beam_size!r}")
        if not is_int(self.nbest) or not 1 <= self.nbest <= self.beam_size:
            raise ValueError(f"nbest must be an integer in 1..beam_size ({self.beam_size}), got {self.nbest!r}")
        if self.beam_size_token is not None and (not is_int(self.beam_size_token) or self.beam_size_token < 1):
            raise ValueError(f"beam_size_token must be a positive integer or None, got {self.beam_size_token!r}")
        if not self.beam_threshold > 0:  # also rejects NaN; +inf means no pruning
            raise ValueError(f"beam_threshold must be > 0, got {self.beam_threshold!r}")
        if self.token_threshold is not None and not self.token_threshold > 0:
            raise ValueError(f"token_threshold must be > 0 or None, got {self.token_threshold!r}")
        if not (math.isfinite(self.lm_weight) and self.lm_weight >= 0):
            raise ValueError(f"lm_weight must be a finite number >= 0, got {self.lm_weight!r}")
        if self.engine not in ("auto", "python", "fast"):
            raise ValueError(f"engine must be 'auto', 'python' or 'fast', got {self.engine!r}")
        for name in ("word_score", "silence_score", "unk_score"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number, got {getattr(self, name)!r}")

    @property
    def tokens_within(self) -> float:
        """How far below the frame's best token a token may score and still be tried."""
        return self.beam_threshold if self.token_threshold is None else self.token_threshold




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


class Final(NamedTuple):
    """A finished hypothesis of either engine, before alignment (`app.asr.decoders.dispatch` aligns it)."""

    score: float
    acoustic: float
    labels: tuple[int, ...]
    words: tuple[str, ...]
    lm_logprob: float
    hotword: float
    frames: Callable[[], Frames] | None = None  # the engine's own alignment; None: align afterwards
