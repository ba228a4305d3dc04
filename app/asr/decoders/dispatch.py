"""`beam_search`: one call for every beam search, on the engine that can run it.

Two engines search the same space and score it the same way: the reference engine
(`app.asr.decoders.reference`, NumPy and Python, every feature) and flashlight-text's compiled
decoders (`app.asr.decoders.flashlight`: a lexicon with an n-gram LM file, or lexicon-free CTC
without LM or word scores). This module checks the call once, picks the engine
(`BeamOptions.engine`: `auto` takes flashlight-text whenever the search is one of its cases),
keeps one hypothesis per distinct transcript and returns them with the frames of the engine's
own alignment (the reference engine merges paths, so its labellings are aligned afterwards,
exactly: `app.asr.decoders.alignment`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

import numpy as np

from app.asr.decoders import flashlight, reference
from app.asr.decoders.alignment import align_asg, align_ctc, word_spans
from app.asr.decoders.types import BeamOptions, Final, Hypothesis
from app.asr.lexicon import Hotword, Lexicon
from app.asr.ngram import NgramLM
from app.asr.tokens import TokenTable

_NEG_INF = -math.inf


def beam_search(
    emissions: np.ndarray,
    *,
    criterion: Literal["ctc", "asg"],
    tokens: TokenTable | None = None,
    blank: int | None = None,
    transitions: np.ndarray | None = None,
    options: BeamOptions | None = None,
    lm: NgramLM | None = None,
    lexicon: Lexicon | None = None,
    hotwords: Sequence[Hotword] = (),
    beam_size: int | None = None,
    nbest: int | None = None,
    beam_threshold: float | None = None,
    token_threshold: float | None = None,
    beam_size_token: int | None = None,
    lm_weight: float | None = None,
    word_score: float | None = None,
    silence_score: float | None = None,
    unk_score: float | None = None,
    allow_oov: bool | None = None,
    log_add: bool | None = None,
    engine: Literal["auto", "python", "fast"] | None = None,
) -> list[Hypothesis]:
    """Decode one utterance's emissions [T, V]; best hypothesis first, at most `nbest`.

    CTC: `emissions` are log-probabilities, `blank` defaults to the token table's. ASG:
    unnormalised scores and `transitions` [V, V] (`[next, prev]`). Keyword settings
    override `options`. A lexicon, an LM or hotwords need `tokens` (for the word separator
    and the spellings). With a token table the n-best transcripts are distinct: of the
    labellings that differ only in separators, the best one stands for the transcript.
    Returns [] only when a lexicon rules out every path.
    """
    settings = dict(
        beam_size=beam_size, nbest=nbest, beam_threshold=beam_threshold, token_threshold=token_threshold, beam_size_token=beam_size_token,
        lm_weight=lm_weight, word_score=word_score, silence_score=silence_score, unk_score=unk_score,
        allow_oov=allow_oov, log_add=log_add, engine=engine,
    )  # fmt: skip
    overrides = {name: value for name, value in settings.items() if value is not None}
    options = replace(options or BeamOptions(), **overrides)
    emissions = np.asarray(emissions)
    if emissions.ndim != 2:
        raise ValueError(f"emissions must be [T, V], got shape {emissions.shape}")
    em = emissions.astype(np.float64)
    if np.isnan(em).any():
        raise ValueError("emissions contain NaN")
    vocab = em.shape[1]
    if tokens is not None and len(tokens) != vocab:
        raise ValueError(f"emissions have {vocab} columns but the token table has {len(tokens)} tokens")
    if (lm is not None or lexicon is not None or hotwords) and (tokens is None or tokens.separator_id is None):
        raise ValueError("a lexicon, an LM or hotwords need a token table with a word separator")
    if any(not isinstance(h, Hotword) for h in hotwords):
        raise ValueError("hotwords must be Hotword objects (see parse_hotwords for 'phrase:boost' strings)")
    trans: np.ndarray | None = None
    if criterion == "ctc":
        if blank is None:
            blank = tokens.blank_id if tokens is not None else None
        if blank is None or not 0 <= blank < vocab:
            raise ValueError(f"CTC needs a blank index in 0..{vocab - 1}, got {blank!r}")
        if transitions is not None:
            raise ValueError("CTC takes no transition matrix")
    elif criterion == "asg":
        if blank is not None:
            raise ValueError("ASG has no blank; pass blank=None")
        if transitions is None or np.shape(transitions) != (vocab, vocab):
            raise ValueError(f"ASG needs transitions of shape ({vocab}, {vocab}), got {np.shape(transitions)}")
        trans = np.asarray(transitions, dtype=np.float64)
    else:
        raise ValueError(f"criterion must be 'ctc' or 'asg', got {criterion!r}")

    if options.token_threshold is not None and len(em):
        em = _prune_tokens(em, options.token_threshold, blank)
    why_not = flashlight.unsupported(options=options, tokens=tokens, lm=lm, lexicon=lexicon, hotwords=hotwords)
    why_not_free = flashlight.free_unsupported(criterion=criterion, options=options, lm=lm, lexicon=lexicon, hotwords=hotwords)
    if options.engine == "fast" and why_not is not None and why_not_free is not None:
        raise ValueError(f"engine='fast' cannot run this search: {why_not if lm is not None or lexicon is not None else why_not_free}")
    finals: list[Final]
    separator: int | None
    if options.engine != "python" and (why_not is None or why_not_free is None):
        if why_not is None:
            assert tokens is not None and lm is not None and lexicon is not None
            finished = flashlight.engine_for(tokens, lexicon, lm).search(em, criterion=criterion, blank=blank, transitions=trans, options=options)
        else:
            assert blank is not None
            finished = flashlight.search_free(em, blank=blank, tokens=tokens, options=options)
        finals = [Final(f.score, f.acoustic_score, f.labels, f.words, f.lm_score, 0.0, f.frames) for f in finished]
        separator = tokens.separator_id if tokens is not None else None
    else:
        finals, separator = reference.search(em, criterion_blank=blank, trans=trans, options=options, tokens=tokens, lm=lm,
                                           lexicon=lexicon, hotwords=hotwords)  # fmt: skip
    chosen: list[Final] = []
    seen: set[tuple[str, ...]] = set()
    for final in finals:  # one entry per transcript: labellings that differ only in separators collapse
        if separator is not None and final.words in seen:
            continue
        seen.add(final.words)
        chosen.append(final)
        if len(chosen) == options.nbest:
            break
    results = []
    for final in chosen:
        if final.frames is not None:
            frames = final.frames()
        elif trans is not None:
            frames = align_asg(em, trans, final.labels)
        else:
            assert blank is not None
            frames = align_ctc(em, blank, final.labels)
        results.append(
            Hypothesis(
                text=tokens.decode(final.labels) if tokens is not None else "",
                tokens=final.labels,
                score=final.score,
                acoustic_score=final.acoustic,
                lm_score=final.lm_logprob,
                word_count=len(final.words),
                frames=frames,
                words=final.words,
                word_frames=word_spans(final.labels, frames, separator),
                hotword_score=final.hotword,
            )
        )
    return results


def _prune_tokens(em: np.ndarray, threshold: float, blank: int | None) -> np.ndarray:
    """`token_threshold`: every token but the blank more than `threshold` below its frame's best becomes impossible."""
    keep = em >= em.max(axis=1, keepdims=True) - threshold
    if blank is not None:
        keep[:, blank] = True
    return np.where(keep, em, _NEG_INF)
