"""The recognizer: audio -> emissions -> decoder -> n-best -> (rescoring) -> words with times.

One `Recognizer` is shared by every request and stream; it holds the loaded bundles and
the lazily built decoding resources (n-gram LMs, lexicons, the Transformer-XL scorer).
Per-request state lives in arguments and per-stream state in `app.asr.streaming.Stream`.

Word timing and confidence: a word starts at the first frame of its first letter and ends
after the last frame of its last letter (frame `t` covers samples
`[t * stride, (t + 1) * stride)` of the input, the frame geometry of the bundle); its
confidence is the mean, over those letters' frames, of the softmax posterior of the letter
the alignment chose (for CTC emissions the model's own probabilities).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.asr.bundle import AcousticBundle, BundleSet
from app.asr.decoding import asg_segments, ctc_segments, viterbi_asg
from app.asr.errors import InvalidOption, UnknownModel
from app.asr.options import DecodeOptions
from app.asr.runtime import AcousticModel
from app.asr.tokens import TokenTable


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float
    confidence: float


@dataclass(frozen=True)
class NBestEntry:
    text: str
    score: float
    acoustic_score: float
    lm_score: float | None = None  # n-gram log-probability (natural log, unweighted)
    txl_score: float | None = None  # Transformer-XL log-probability when rescored


@dataclass
class Transcript:
    text: str
    words: list[Word]
    nbest: list[NBestEntry]
    duration: float
    model: str
    timings: dict[str, float] = field(default_factory=dict)


Segments = list[tuple[int, tuple[int, int]]]  # merged label, (first frame, end frame)


class Recognizer:
    def __init__(self, bundles: BundleSet, *, default_model: str | None = None) -> None:
        self.bundles = bundles
        self.default_model = default_model if default_model in bundles.acoustic else next(iter(sorted(bundles.acoustic)), None)
        self._resources: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    # --- models ---------------------------------------------------------------------------
    def bundle(self, name: str | None) -> AcousticBundle:
        if name in (None, "", "default"):
            name = self.default_model
        if name is None or name not in self.bundles.acoustic:
            known = ", ".join(sorted(self.bundles.acoustic)) or "none"
            raise UnknownModel(f"unknown model {name!r}; loaded models: {known}")
        return self.bundles.acoustic[name]

    def acoustic_model(self, bundle: AcousticBundle, options: DecodeOptions) -> AcousticModel:
        precision = options.precision or "fp32"
        if precision not in bundle.models:
            raise InvalidOption(f"model {bundle.name!r} has no {precision} graph; it has {sorted(bundle.models)}")
        return bundle.models[precision]

    # --- the whole path -------------------------------------------------------------------
    def transcribe(self, samples: np.ndarray, *, model: str | None, options: DecodeOptions, progress: Callable[[float], None] | None = None) -> Transcript:
        """Samples at the bundle's rate -> transcript (the offline path: CLI, evaluation)."""
        bundle = self.bundle(model)
        started = time.perf_counter()
        emissions = self.acoustic_model(bundle, options).emissions(samples, progress)
        acoustic = time.perf_counter() - started
        transcript = self.decode(bundle, emissions, options, duration=len(samples) / bundle.manifest.sample_rate)
        transcript.timings = {"acoustic": acoustic, "decode": time.perf_counter() - started - acoustic, **transcript.timings}
        return transcript

    def decode(self, bundle: AcousticBundle, emissions: np.ndarray, options: DecodeOptions, *, duration: float, frame_offset: int = 0) -> Transcript:
        """Decode `[T, V]` emissions of one utterance. `frame_offset` shifts word times (streams)."""
        manifest = bundle.manifest
        decoder = options.decoder or manifest.decoding.decoder
        if decoder == "beam":
            return self._decode_beam(bundle, emissions, options, duration=duration, frame_offset=frame_offset)
        segments, score = greedy_segments(emissions, bundle)
        text = manifest.tokens.decode([tok for tok, _ in segments])
        words = align_words(segments, emissions, bundle, frame_offset=frame_offset) if options.word_timestamps else []
        return Transcript(text, words, [NBestEntry(text, score, score)], duration, bundle.name)

    def _decode_beam(self, bundle: AcousticBundle, emissions: np.ndarray, options: DecodeOptions, *, duration: float, frame_offset: int) -> Transcript:
        raise InvalidOption("beam search is not available in this build")


def greedy_segments(emissions: np.ndarray, bundle: AcousticBundle) -> tuple[Segments, float]:
    """Best path (greedy CTC or Viterbi ASG) as merged labels with their frames, and its score."""
    manifest = bundle.manifest
    if manifest.criterion == "asg":
        assert bundle.transitions is not None
        path, score = viterbi_asg(emissions, bundle.transitions)
        return asg_segments(path), score
    blank = manifest.tokens.blank_id
    assert blank is not None
    best = emissions.argmax(axis=1)
    log_probs = log_softmax(emissions)
    return ctc_segments(best, blank), float(log_probs[np.arange(len(best)), best].sum())


def log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def align_words(segments: Segments, emissions: np.ndarray, bundle: AcousticBundle, *, frame_offset: int = 0) -> list[Word]:
    """Group letters into words at the separator; times from frames, confidence from posteriors."""
    table: TokenTable = bundle.manifest.tokens
    seconds_per_frame = bundle.manifest.frame_stride / bundle.manifest.sample_rate
    posteriors = np.exp(log_softmax(emissions)) if len(segments) else emissions
    separator = table.separator_id
    words: list[Word] = []
    current: Segments = []

    def flush() -> None:
        if not current:
            return
        text = table.decode([tok for tok, _ in current])
        if text:
            probs = np.concatenate([posteriors[s:e, tok] for tok, (s, e) in current])
            start, end = current[0][1][0] + frame_offset, current[-1][1][1] + frame_offset
            words.append(Word(text, round(start * seconds_per_frame, 3), round(end * seconds_per_frame, 3), round(float(probs.mean()), 4)))
        current.clear()

    for segment in segments:
        if segment[0] == separator:
            flush()
        else:
            current.append(segment)
    flush()
    return words
