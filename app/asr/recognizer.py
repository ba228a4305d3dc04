"""The recognizer: audio -> emissions -> hypotheses -> (rescoring) -> text with word times.

One `Recognizer` is shared by every request and stream; it holds the loaded bundles and
the lazily built decoding resources (n-gram LMs, lexicons, the Transformer-XL scorer).
Per-request state lives in arguments and per-stream state in `app.asr.streaming.Stream`.
Every entry point runs the same steps:

- `transcribe` (command-line tools): the acoustic model, then `finish`;
- `app.asr.batching.InferenceEngine.transcribe` (HTTP): the acoustic model batched across
  requests, then the same `finish`;
- `app.asr.streaming.Stream` (WebSockets): emissions computed as audio arrives, each
  endpointed utterance decoded by `decode`, the Transformer-XL memory carried from final to final.

`decode` is the one decoding step: the search (greedy or beam) gives hypotheses, rescoring
re-ranks them, and the best one's own alignment gives the words. A long recording that is
rescored is decoded in pieces cut at pauses (`SEGMENT_FRAMES`), each rescored after the memory
of the piece before, whichever entry point it came through. `Transcript` is the one result type:
the final text and words are made here and nowhere else.

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
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from app.asr.bundle import AcousticBundle, BundleSet
from app.asr.decoders import Hypothesis, asg_segments, beam_search, ctc_segments, flashlight, viterbi_asg
from app.asr.errors import InvalidOption, UnknownModel
from app.asr.kenlm_binary import load_lm
from app.asr.lexicon import Lexicon
from app.asr.numerics import log_softmax
from app.asr.options import DecodeOptions, ResolvedOptions, resolve
from app.asr.punctuation import present
from app.asr.rescoring import TransformerXLScorer, rescore
from app.asr.runtime import AcousticModel
from app.asr.tokens import TokenTable
from app.asr.vtln import best_warp


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float
    confidence: float
    punctuated_word: str | None = None  # as shown (app.asr.punctuation); "" inside a number written on the word before


@dataclass(frozen=True)
class NBestEntry:
    text: str
    score: float
    acoustic_score: float
    lm_score: float | None = None  # n-gram log-probability (natural log, unweighted)
    txl_score: float | None = None  # Transformer-XL log-probability when rescored
    raw_text: str | None = None  # the normalised words when `text` is punctuated


@dataclass
class Transcript:
    text: str
    words: list[Word]
    nbest: list[NBestEntry]
    duration: float
    model: str
    timings: dict[str, float] = field(default_factory=dict)
    memory: Any = field(default=None, repr=False, compare=False)  # Transformer-XL memory after this result (rescoring)
    warp: float | None = None  # the VTLN frequency warp the emissions were computed with (None: not normalised)
    raw_text: str | None = None  # the normalised words when `text` is punctuated (Recognizer.present)

    def to_json(self) -> dict[str, Any]:
        out = {"text": self.text, "raw_text": self.text if self.raw_text is None else self.raw_text, "words": [asdict(w) for w in self.words], "nbest": [asdict(n) for n in self.nbest],
               "duration": self.duration, "model": self.model, "timings": self.timings}
        if self.warp is not None:
            out["warp"] = self.warp
        return out


Segments = list[tuple[int, tuple[int, int]]]  # merged label, (first frame, end frame)
SEGMENT_FRAMES = 1000  # a rescored recording is decoded in pieces of at most this many frames


def pick_default(bundles: BundleSet) -> str | None:
    """The model a request that names none gets (unless `ASR_DEFAULT_MODEL` says): the first bundle, by
    name, whose manifest says `default`; else the first by name."""
    marked = sorted(name for name, b in bundles.acoustic.items() if b.manifest.default)
    return next(iter(marked or sorted(bundles.acoustic)), None)


class Recognizer:
    def __init__(self, bundles: BundleSet, *, default_model: str | None = None, threads: int = 1) -> None:
        self.bundles = bundles
        self.threads = threads
        self.default_model = default_model if default_model in bundles.acoustic else pick_default(bundles)
        self._resources: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self.punctuator = next((bundles.punctuation[name] for name in sorted(bundles.punctuation)), None)

    # --- models ---------------------------------------------------------------------------
    def bundle(self, name: str | None) -> AcousticBundle:
        if name in (None, "", "default"):
            name = self.default_model
        if name is None or name not in self.bundles.acoustic:
            known = ", ".join(sorted(self.bundles.acoustic)) or "none"
            raise UnknownModel(f"unknown model {name!r}; loaded models: {known}")
        return self.bundles.acoustic[name]

    def acoustic_model(self, bundle: AcousticBundle, options: DecodeOptions | ResolvedOptions) -> AcousticModel:
        return bundle.models[_resolved(options, bundle).precision]

    # --- the whole path -------------------------------------------------------------------
    def transcribe(self, samples: np.ndarray, *, model: str | None, options: DecodeOptions, progress: Callable[[float], None] | None = None) -> Transcript:
        """Samples at the bundle's rate -> transcript (the offline path: CLI, evaluation)."""
        bundle = self.bundle(model)
        started = time.perf_counter()
        resolved = resolve(options, bundle)
        acoustic = bundle.models[resolved.precision]
        warp = None
        if resolved.vtln_warps:
            warp, emissions = best_warp(samples, resolved.vtln_warps, acoustic.emissions)
        else:
            emissions = acoustic.emissions(samples, progress)
        return self.finish(bundle, emissions, resolved, samples=len(samples), warp=warp, started=started)

    def finish(self, bundle: AcousticBundle, emissions: np.ndarray, resolved: ResolvedOptions, *, samples: int, warp: float | None,
               started: float) -> Transcript:
        """The rest of a file's path once its emissions exist (`started`: when the acoustic step began)."""
        acoustic = time.perf_counter() - started
        transcript = self.decode(bundle, emissions, resolved, duration=samples / bundle.manifest.sample_rate)
        transcript.timings = {"acoustic": acoustic, "decode": time.perf_counter() - started - acoustic, **transcript.timings}
        transcript.warp = warp
        return self.present(transcript, resolved)

    def decode(self, bundle: AcousticBundle, emissions: np.ndarray, options: DecodeOptions | ResolvedOptions, *, duration: float,
               frame_offset: int = 0, memory: Any = None) -> Transcript:
        """Decode `[T, V]` emissions of one recording or utterance. `frame_offset` shifts word times
        (streams); `memory` is the Transformer-XL memory of what came before (rescoring), and the
        transcript's `memory` what to carry after it."""
        resolved = _resolved(options, bundle)
        if not resolved.rescore or len(emissions) <= SEGMENT_FRAMES:
            return self._decode_one(bundle, emissions, resolved, duration=duration, frame_offset=frame_offset, memory=memory)
        parts: list[Transcript] = []
        for start, end in pause_segments(emissions, bundle, max_frames=SEGMENT_FRAMES):
            part = self._decode_one(bundle, emissions[start:end], resolved, duration=0.0, frame_offset=frame_offset + start, memory=memory)
            memory = part.memory if part.memory is not None else memory
            parts.append(part)
        text = " ".join(p.text for p in parts if p.text)
        total = sum(p.nbest[0].score for p in parts if p.nbest)
        acoustic = sum(p.nbest[0].acoustic_score for p in parts if p.nbest)
        return Transcript(text, [w for p in parts for w in p.words], [NBestEntry(text, total, acoustic)], duration, bundle.name, memory=memory)

    def _decode_one(self, bundle: AcousticBundle, emissions: np.ndarray, resolved: ResolvedOptions, *, duration: float, frame_offset: int,
                    memory: Any) -> Transcript:
        """Search, rescore, words: one piece of emissions."""
        hypotheses, with_lm = self.search(bundle, emissions, resolved)
        nbest = [NBestEntry(h.text, h.score, h.acoustic_score, h.lm_score if with_lm else None) for h in hypotheses]
        best = hypotheses[0] if hypotheses else None
        carried = None
        if resolved.rescore and hypotheses:
            ranked = rescore(hypotheses, scorer=self._rescorer(bundle), alpha=resolved.rescore_alpha, beta=resolved.rescore_beta, mems=memory)
            nbest = [NBestEntry(r.text, r.total, r.hypothesis.acoustic_score, r.hypothesis.lm_score if with_lm else None, r.txl_logprob) for r in ranked]
            best, carried = ranked[0].hypothesis, ranked[0].mems
        nbest = nbest[: resolved.nbest]
        words = align_words(list(zip(best.tokens, best.frames, strict=True)), emissions, bundle, frame_offset=frame_offset) if best and resolved.word_timestamps else []
        return Transcript(nbest[0].text if nbest else "", words, nbest, duration, bundle.name, memory=carried)

    def search(self, bundle: AcousticBundle, emissions: np.ndarray, resolved: ResolvedOptions) -> tuple[list[Hypothesis], bool]:
        """The decoder's hypotheses, best first (greedy: one), and whether the n-gram LM scored them."""
        if resolved.decoder != "beam":
            return [greedy_hypothesis(emissions, bundle)], False
        manifest = bundle.manifest
        lm = self._resource(bundle, "lm") if resolved.lm else None
        lexicon = self._resource(bundle, "lexicon") if resolved.lm and bundle.lexicon_path is not None else None
        try:
            scores = log_softmax(emissions) if manifest.criterion == "ctc" else emissions
            hypotheses = beam_search(scores, criterion=manifest.criterion or "ctc", tokens=manifest.tokens, transitions=bundle.transitions,
                                     options=resolved.beam, lm=lm, lexicon=lexicon, hotwords=resolved.hotwords)
        except ValueError as e:
            raise InvalidOption(str(e)) from e
        return hypotheses, lm is not None

    def _rescorer(self, bundle: AcousticBundle) -> TransformerXLScorer:
        name = bundle.manifest.decoding.rescorer or next(iter(sorted(self.bundles.lms)), None)
        if name is None or name not in self.bundles.lms:
            raise InvalidOption("no Transformer-XL LM bundle is loaded; rescoring is unavailable")
        key = ("txl", name)
        with self._lock:
            if key not in self._resources:
                lm_bundle = self.bundles.lms[name]
                self._resources[key] = TransformerXLScorer.from_bundle(lm_bundle.directory, lm_bundle.manifest, threads=self.threads)
            return self._resources[key]

    def _resource(self, bundle: AcousticBundle, kind: str) -> Any:
        """The bundle's n-gram LM or lexicon, loaded once on first use."""
        key = (bundle.name, kind)
        with self._lock:
            if key not in self._resources:
                lexicon_key = (bundle.name, "lexicon")
                if lexicon_key not in self._resources and bundle.lexicon_path is not None:
                    self._resources[lexicon_key] = Lexicon.from_file(bundle.lexicon_path, word_separator=bundle.manifest.tokens.word_separator)
                if kind == "lm":
                    assert bundle.lm_path is not None
                    lexicon = self._resources.get(lexicon_key)
                    self._resources[key] = load_lm(bundle.lm_path, words=lexicon.words if lexicon is not None else None)
            return self._resources[key]

    # --- as shown ---------------------------------------------------------------------------
    def present(self, transcript: Transcript, options: DecodeOptions | ResolvedOptions) -> Transcript:
        """Punctuation, casing and written numbers on a finished transcript (`app.asr.punctuation.present`):
        files and stream finals, never partials."""
        punctuate, itn = self.punctuation_flags(options)
        return present(transcript, self.punctuator, punctuate=punctuate, itn=itn)

    def punctuation_flags(self, options: DecodeOptions | ResolvedOptions) -> tuple[bool, bool]:
        """(punctuate, itn) for a request: punctuation on when a punctuation bundle is loaded, ITN as punctuation."""
        punctuate = self.punctuator is not None if options.punctuate is None else options.punctuate
        if punctuate and self.punctuator is None:
            raise InvalidOption("punctuate=true, but no punctuation bundle is loaded; use punctuate=false")
        return punctuate, punctuate if options.itn is None else options.itn

    def warm_up(self) -> None:
        """Load every bundle's LM and lexicon now rather than on the first request."""
        for bundle in self.bundles.acoustic.values():
            lm = self._resource(bundle, "lm") if bundle.lm_path is not None else None
            lexicon = self._resource(bundle, "lexicon") if bundle.lexicon_path is not None else None
            if lm is not None and lexicon is not None and flashlight.AVAILABLE:
                flashlight.engine_for(bundle.manifest.tokens, lexicon, lm)  # KenLM and the C++ trie, for the fast beam engine


def quiet_frames(emissions: np.ndarray, table: TokenTable) -> np.ndarray:
    """bool `[T]`: the frames of `emissions` `[T, V]` whose best token is the blank or the word separator
    (no letter is said there). Long files are cut, and streams find their endpoints, in runs of them."""
    return np.isin(emissions.argmax(axis=1), [i for i in (table.blank_id, table.separator_id) if i is not None])


def pause_segments(emissions: np.ndarray, bundle: AcousticBundle, *, max_frames: int) -> list[tuple[int, int]]:
    """Cut `[0, T)` into pieces of at most `max_frames`, each ending in the middle of the longest
    run of quiet frames available in its second half (a pause between words)."""
    quiet = quiet_frames(emissions, bundle.manifest.tokens)
    pieces, start, total = [], 0, len(emissions)
    while total - start > max_frames:
        lo, hi = start + max_frames // 2, start + max_frames
        best_mid, best_len, run = hi, 0, 0
        for t in range(lo, hi):
            run = run + 1 if quiet[t] else 0
            if run > best_len:
                best_len, best_mid = run, t - run // 2
        pieces.append((start, best_mid))
        start = best_mid
    pieces.append((start, total))
    return pieces


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


def greedy_hypothesis(emissions: np.ndarray, bundle: AcousticBundle) -> Hypothesis:
    """The best path as the one hypothesis of greedy decoding."""
    segments, score = greedy_segments(emissions, bundle)
    tokens = tuple(tok for tok, _ in segments)
    return Hypothesis(text=bundle.manifest.tokens.decode(list(tokens)), tokens=tokens, score=score, acoustic_score=score,
                      frames=tuple(frames for _, frames in segments))


def _resolved(options: DecodeOptions | ResolvedOptions, bundle: AcousticBundle) -> ResolvedOptions:
    return options if isinstance(options, ResolvedOptions) else resolve(options, bundle)


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
