"""Decoding options: one frozen pydantic model, its bounds defined once, resolved against a bundle once.

`DecodeOptions` is what a request may ask of the decoder. Every way options arrive builds it:
HTTP query and form fields (`app.api.params`), the `WS /v1/stream` config, the Realtime
session and the command-line tools. It holds no state: the Transformer-XL memory a stream
carries from one final to the next is the stream's (`app.asr.streaming.Stream`).

`resolve(options, bundle)` is the one place where a request meets the bundle's tuned defaults
(`DecodingDefaults` in the manifest): it fills what the request left out, checks what only the
bundle can tell (precision, n-gram LM, beam width against n-best) and returns a
`ResolvedOptions` the recognizer runs with.

A new option is a field here (with its bound) and, when the bundle has a default for it, a line
in `resolve`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from app.asr.decoders import MAX_BEAM_SIZE, BeamOptions
from app.asr.errors import InvalidOption
from app.asr.lexicon import Hotword, parse_hotwords
from app.asr.vtln import DEFAULT_WARPS

if TYPE_CHECKING:
    from app.asr.bundle import AcousticBundle

MAX_NBEST = 32
MAX_HOTWORDS = 100  # phrases per request
MAX_HOTWORD_CHARS = 100  # characters per phrase (with its ':boost')
MAX_HOTWORDS_CHARS = 10_000  # characters of all hotwords together, as sent (separators included)
WEIGHT_BOUND = 100.0  # |lm_weight|, |word_score|, |rescore_alpha|, |rescore_beta|
RESCORE_NBEST = 8  # hypotheses rescored when the request asks for fewer

Weight = Annotated[float, Field(ge=-WEIGHT_BOUND, le=WEIGHT_BOUND, allow_inf_nan=False)] | None


class DecodeOptions(BaseModel):
    """The decoding options of one request; `None` means the bundle's default."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    decoder: Literal["greedy", "beam"] | None = Field(None, description="greedy (Viterbi ASG / greedy CTC) or beam search; default: the bundle's")
    beam_size: int | None = Field(None, ge=1, le=MAX_BEAM_SIZE, description=f"beam width, 1..{MAX_BEAM_SIZE}; default: the bundle's")
    nbest: int = Field(1, ge=1, le=MAX_NBEST, description=f"distinct transcripts returned, 1..{MAX_NBEST}")
    lm: bool | None = Field(None, description="n-gram shallow fusion (beam only); default: on when the bundle ships an LM")
    rescore: bool = Field(False, description="Transformer-XL n-best rescoring")
    lm_weight: Weight = None
    word_score: Weight = None
    rescore_alpha: Weight = None
    rescore_beta: Weight = None
    allow_oov: bool | None = Field(None, description="beam with lexicon: allow words outside the lexicon; default: the bundle's")
    word_timestamps: bool = True
    vtln: bool | None = Field(None, description="speaker normalisation by frequency warping; default: the bundle's")
    hotwords: tuple[str, ...] = Field(
        (), description=f"words or phrases to favour, each optionally 'phrase:boost' (comma-separated in a string); at most {MAX_HOTWORDS}, "
                        f"{MAX_HOTWORD_CHARS} characters each, {MAX_HOTWORDS_CHARS} in all")  # fmt: skip
    precision: Literal["fp32", "int8", "fp16"] | None = Field(None, description="acoustic graph precision; default fp32 (int8 where a bundle ships only int8)")
    punctuate: bool | None = Field(None, description="punctuation and casing in text, n-best and stream finals (partials stay raw; raw_text keeps "
                                   "the normalised words); default: on when a punctuation bundle is loaded")
    itn: bool | None = Field(None, description="spoken numbers written as digits ('twenty five percent' -> '25%'); default: as punctuate")

    def __init__(self, **values: Any) -> None:
        """Keyword construction in code (the command-line tools, tests) raises `InvalidOption` too."""
        try:
            super().__init__(**values)
        except ValidationError as e:
            raise InvalidOption(describe(e)) from e

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_default(cls, value: Any, info: ValidationInfo) -> Any:
        """Form and query values arrive as strings: surrounding space is dropped, an empty value means 'not given'."""
        if isinstance(value, str):
            value = value.strip()
            if value == "" and info.field_name != "hotwords":
                return cls.model_fields[info.field_name or ""].default
        return value

    @field_validator("hotwords", mode="before")
    @classmethod
    def _split_hotwords(cls, value: Any) -> Any:
        """A string or a list of strings, each comma-separated; bounded before anything is split."""
        if value is None:
            return ()
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(v, str) for v in items):
            raise ValueError("hotwords must be a string or a list of strings")
        sent = sum(len(v) for v in items) + max(len(items) - 1, 0)
        if sent > MAX_HOTWORDS_CHARS:
            raise ValueError(f"hotwords hold {sent} characters; at most {MAX_HOTWORDS_CHARS} in all")
        phrases = tuple(p.strip() for v in items for p in v.split(",") if p.strip())
        if len(phrases) > MAX_HOTWORDS:
            raise ValueError(f"{len(phrases)} hotwords given; at most {MAX_HOTWORDS}")
        long = next((p for p in phrases if len(p) > MAX_HOTWORD_CHARS), None)
        if long is not None:
            raise ValueError(f"hotword {long[:40]!r}... has {len(long)} characters; at most {MAX_HOTWORD_CHARS} each")
        parse_hotwords(phrases, 0.0)  # the syntax ('phrase' or 'phrase:boost'); the boost default comes with the bundle
        return phrases

    @model_validator(mode="after")
    def _nbest_within_beam(self) -> DecodeOptions:
        if self.beam_size is not None and self.nbest > self.beam_size:
            raise ValueError(f"nbest={self.nbest} exceeds beam_size={self.beam_size}; raise beam_size or lower nbest")
        return self

    @classmethod
    def parse(cls, values: dict[str, Any]) -> DecodeOptions:
        """Validate untrusted values (a form, a JSON config); faults become `InvalidOption` naming the value."""
        try:
            return cls.model_validate(values)
        except ValidationError as e:
            raise InvalidOption(describe(e)) from e

    def with_(self, **changes: object) -> DecodeOptions:
        """A copy with some options changed, validated again."""
        return type(self).parse({**self.model_dump(exclude_unset=True), **changes})


def describe(error: ValidationError) -> str:
    """A pydantic error as one line per fault, `name=value: what is wrong`."""
    parts = []
    for fault in error.errors()[:5]:
        name = ".".join(str(p) for p in fault.get("loc", ()))
        value = fault.get("input")
        shown = repr(value) if isinstance(value, int | float | bool) or (isinstance(value, str) and len(value) <= 40) else type(value).__name__
        message = str(fault.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{name}={shown}: {message}" if name else message)
    return "; ".join(parts) or "invalid options"


@dataclass(frozen=True)
class ResolvedOptions:
    """A request's options with the bundle's defaults filled in: what the recognizer runs."""

    decoder: Literal["greedy", "beam"]
    precision: str
    nbest: int
    word_timestamps: bool
    vtln_warps: tuple[float, ...]  # frequency warps to try; () for none
    beam: BeamOptions | None  # beam search only
    lm: bool  # beam search with the bundle's n-gram LM (and lexicon)
    hotwords: tuple[Hotword, ...]
    rescore: bool  # beam search only: greedy decoding has one hypothesis
    rescore_alpha: float
    rescore_beta: float
    punctuate: bool | None = None  # the recognizer decides None: on when it holds a punctuation bundle
    itn: bool | None = None  # None: as punctuate


def resolve(options: DecodeOptions, bundle: AcousticBundle) -> ResolvedOptions:
    """Fill `options` from the bundle's decoding defaults; `InvalidOption` for what the bundle cannot do."""
    defaults = bundle.manifest.decoding
    precision = options.precision or bundle.default_precision
    if precision not in bundle.models:
        raise InvalidOption(f"model {bundle.name!r} has no {precision} graph; it has {sorted(bundle.models)}")
    if options.vtln is False:
        warps: tuple[float, ...] = ()
    else:
        warps = defaults.vtln_warps or (DEFAULT_WARPS if options.vtln else ())
    decoder = options.decoder or defaults.decoder
    beam, lm, hotwords = None, False, ()
    if decoder == "beam":
        lm = options.lm if options.lm is not None else bundle.lm_path is not None
        if lm and bundle.lm_path is None:
            raise InvalidOption(f"model {bundle.name!r} ships no n-gram LM; use lm=false")
        beam_size = options.beam_size or defaults.beam_size
        try:
            hotwords = tuple(parse_hotwords(options.hotwords, defaults.hotword_boost))
            beam = BeamOptions(
                beam_size=beam_size, beam_threshold=defaults.beam_threshold,
                nbest=max(options.nbest, min(beam_size, RESCORE_NBEST) if options.rescore else 1),
                lm_weight=_given(options.lm_weight, defaults.lm_weight), word_score=_given(options.word_score, defaults.word_score),
                silence_score=defaults.silence_score, unk_score=defaults.unk_score, allow_oov=_given(options.allow_oov, defaults.allow_oov),
            )  # fmt: skip
        except ValueError as e:
            raise InvalidOption(str(e)) from e
    return ResolvedOptions(
        decoder=decoder, precision=precision, nbest=options.nbest, word_timestamps=options.word_timestamps, vtln_warps=warps,
        beam=beam, lm=lm, hotwords=hotwords, rescore=options.rescore and decoder == "beam",
        rescore_alpha=_given(options.rescore_alpha, defaults.rescore_alpha), rescore_beta=_given(options.rescore_beta, defaults.rescore_beta),
        punctuate=options.punctuate, itn=options.itn,
    )  # fmt: skip


def _given(value: Any, default: Any) -> Any:
    return default if value is None else value

