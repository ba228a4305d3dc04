"""Decoding options: one frozen object per request, validated once with messages that name the fix."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from app.asr.errors import InvalidOption

MAX_BEAM = 512
MAX_NBEST = 32
MAX_HOTWORDS = 100


@dataclass(frozen=True)
class DecodeOptions:
    decoder: Literal["greedy", "beam"] | None = None  # None: the bundle's default
    beam_size: int | None = None
    nbest: int = 1
    lm: bool | None = None  # n-gram shallow fusion; None: on when the bundle ships one
    rescore: bool = False  # Transformer-XL n-best rescoring
    lm_weight: float | None = None
    word_score: float | None = None
    rescore_alpha: float | None = None
    rescore_beta: float | None = None
    allow_oov: bool | None = None  # lexicon search: allow words outside the lexicon (None: the bundle's default)
    word_timestamps: bool = True
    vtln: bool | None = None  # speaker normalisation by frequency warping (None: on when the bundle lists warps)
    hotwords: tuple[str, ...] = ()
    precision: Literal["fp32", "int8", "fp16"] | None = None
    rescore_memory: Any = field(default=None, repr=False, compare=False)  # Transformer-XL memory of the previous segment

    def __post_init__(self) -> None:
        if self.decoder not in (None, "greedy", "beam"):
            raise InvalidOption(f"decoder={self.decoder!r} is unknown; use 'greedy' or 'beam'")
        if self.beam_size is not None and not 1 <= self.beam_size <= MAX_BEAM:
            raise InvalidOption(f"beam_size={self.beam_size} is outside 1..{MAX_BEAM}")
        if not 1 <= self.nbest <= MAX_NBEST:
            raise InvalidOption(f"nbest={self.nbest} is outside 1..{MAX_NBEST}")
        if self.beam_size is not None and self.nbest > self.beam_size:
            raise InvalidOption(f"nbest={self.nbest} exceeds beam_size={self.beam_size}; raise beam_size or lower nbest")
        if len(self.hotwords) > MAX_HOTWORDS:
            raise InvalidOption(f"{len(self.hotwords)} hotwords given; at most {MAX_HOTWORDS}")
        for name in ("lm_weight", "word_score", "rescore_alpha", "rescore_beta"):
            value = getattr(self, name)
            if value is not None and not -100.0 <= value <= 100.0:
                raise InvalidOption(f"{name}={value} is outside -100..100")
        if self.precision not in (None, "fp32", "int8", "fp16"):
            raise InvalidOption(f"precision={self.precision!r} is unknown; use fp32, int8 or fp16")

    def with_(self, **changes: object) -> DecodeOptions:
        return replace(self, **changes)  # type: ignore[arg-type]
