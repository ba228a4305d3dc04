"""Tune a bundle's decoding weights on held-out data and write them into its manifest.

    asr-export tune models/bundles/wav2letter-asg --dev data/corpus40/dev.jsonl --txl models/bundles/txl-char

Emissions are computed once; beam search with the bundle's n-gram LM is run over a grid of
LM weights and word scores; then the n-best lists of the best setting are scored once by the
Transformer-XL LM and `alpha` (its weight) and `beta` (a per-word bonus) are chosen on them.
The chosen values become the bundle's decoding defaults (`--write`), which requests may
override.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.asr.audio import decode_audio
from app.asr.bundle import AcousticBundle, BundleSet, LMBundle, load_acoustic
from app.asr.manifest import Manifest
from app.asr.metrics import error_rates
from app.asr.options import DecodeOptions
from app.asr.recognizer import Recognizer, Transcript
from app.asr.rescoring import count_words
from app.asr.runtime import select_providers
from app.asr.text import normalize_text
from models.train.manifest import read_manifest

LM_WEIGHTS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
WORD_SCORES = (-1.0, 0.0, 1.0, 2.0, 3.0)
ALPHAS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)
BETAS = (-1.0, 0.0, 1.0, 2.0, 4.0)


@dataclass(frozen=True)
class TuneResult:
    lm_weight: float
    word_score: float
    beam_wer: float
    rescore_alpha: float | None = None
    rescore_beta: float | None = None
    rescore_wer: float | None = None


def load_recognizer(bundle_dir: Path, txl_dir: Path | None) -> Recognizer:
    manifest = Manifest.load(bundle_dir)
    acoustic = load_acoustic(bundle_dir, manifest, threads=2, providers=select_providers("cpu"), precisions=())  # the bundle's default graph
    lms = {}
    if txl_dir is not None:
        lm_manifest = Manifest.load(txl_dir)
        lms[lm_manifest.name] = LMBundle(txl_dir, lm_manifest)
    return Recognizer(BundleSet(acoustic={manifest.name: acoustic}, lms=lms), default_model=manifest.name, threads=2)


def tune(bundle_dir: Path, dev: Path, *, txl_dir: Path | None = None, limit: int = 150, beam_size: int = 32, log: bool = True) -> TuneResult:
    recognizer = load_recognizer(bundle_dir, txl_dir)
    bundle = recognizer.bundle(None)
    rows = read_manifest(dev, limit=limit)
    refs, emissions = [], []
    for row in rows:
        audio = decode_audio(Path(row["audio"]).read_bytes(), sample_rate=bundle.manifest.sample_rate, max_seconds=600)
        emissions.append(bundle.model().emissions(audio.samples))
        refs.append(normalize_text(row["text"]))

    def wer(options: DecodeOptions) -> tuple[float, list]:  # type: ignore[type-arg]
        outs = [recognizer.decode(bundle, e, options, duration=0.0) for e in emissions]
        return error_rates(list(zip(refs, [o.text for o in outs], strict=True)))[0], outs

    greedy_wer, _ = wer(DecodeOptions(decoder="greedy"))
    _say(log, f"greedy WER {greedy_wer:.2f} on {len(refs)} utterances")
    best = None
    for lm_weight, word_score in itertools.product(LM_WEIGHTS, WORD_SCORES):
        score, _ = wer(DecodeOptions(decoder="beam", beam_size=beam_size, lm_weight=lm_weight, word_score=word_score))
        _say(log, f"beam{beam_size} lm_weight {lm_weight:<5} word_score {word_score:<5} WER {score:.2f}")
        if best is None or score < best.beam_wer:
            best = TuneResult(lm_weight, word_score, score)
    assert best is not None
    if txl_dir is None:
        return best
    options = DecodeOptions(decoder="beam", beam_size=beam_size, nbest=8, lm_weight=best.lm_weight, word_score=best.word_score)
    _, outs = wer(options)
    table = score_nbest(recognizer, bundle, outs)
    for alpha, beta in itertools.product(ALPHAS, BETAS):
        score = error_rates(list(zip(refs, rescored_texts(table, alpha, beta), strict=True)))[0]
        _say(log, f"rescore alpha {alpha:<5} beta {beta:<5} WER {score:.2f}")
        if best.rescore_wer is None or score < best.rescore_wer:
            best = TuneResult(best.lm_weight, best.word_score, best.beam_wer, alpha, beta, score)
    return best


@dataclass(frozen=True)
class NbestScores:
    """One utterance's n-best list with what rescoring weighs: the decoder's totals, the
    Transformer-XL log-probabilities and the word counts."""

    texts: list[str]
    totals: np.ndarray
    txl: np.ndarray
    words: np.ndarray


def score_nbest(recognizer: Recognizer, bundle: AcousticBundle, outs: list[Transcript]) -> list[NbestScores]:
    """Score each transcript's n-best list once with the bundle's rescorer, so a grid of weights costs no model call."""
    scorer = recognizer._rescorer(bundle)
    table = []
    for out in outs:
        texts = [n.text for n in out.nbest]
        txl = np.asarray(scorer.score(texts).logprobs) if texts else np.zeros(0)
        table.append(NbestScores(texts, np.array([n.score for n in out.nbest]), txl, np.array([count_words(t) for t in texts])))
    return table


def rescored_texts(table: list[NbestScores], alpha: float, beta: float) -> list[str]:
    """The hypothesis `app.asr.rescoring.rescore` would put first at these weights, per utterance."""
    return [n.texts[int(np.argmax(n.totals + alpha * n.txl + beta * n.words))] if n.texts else "" for n in table]


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, flush=True)
