"""The fast engine of beam search: flashlight-text's compiled decoders (C++), with KenLM.

`app.asr.decoders.reference` is the reference engine: every feature (out-of-lexicon words,
hotwords, silence score, lexicon-free LM fusion) in NumPy and Python. flashlight-text runs
the two common cases behind the same `beam_search` call several times faster, and
`app.asr.decoders.dispatch` picks it when a request stays inside one (`engine="auto"`):

- a lexicon with an n-gram LM file (ARPA or KenLM binary, read by KenLM), no hotwords, no
  out-of-lexicon words, no silence score: `FlashlightEngine`, built once per (token table,
  lexicon, LM) and kept by `engine_for`;
- lexicon-free CTC without LM or word scores: its lexicon-free decoder (`search_free`).
  Its lexicon-free ASG mode ranks hypotheses without the transitions, so ASG stays on the
  reference engine there.

The lexicon engine searches the space the reference searches and scores it the same way:
flashlight-text's `LexiconDecoder` walks a trie of spellings that end with the word
separator, so a word is scored (LM, `word_score`) when its separator is read, and inside a
word it adds the best unigram below the trie node (max smearing). What differs is bridged here:

- KenLM scores in log10; the reference in natural log. The LM weight is scaled by ln 10.
- flashlight-text keeps only hypotheses that end on a separator when it finishes an
  utterance, which would drop an unfinished last word (a CTC model rarely emits a final
  separator). CTC: one more frame that can only be the separator, at log-probability 0,
  closes the last word inside the decoder (`_search_closed`). ASG (where that frame would
  add a transition score), and CTC when nothing ends in a lexicon word: the search stops
  after the last frame and each hypothesis of the final beam is finished here as the
  reference finishes one (last word completed if in the lexicon, `</s>` scored).
- Its beam merges hypotheses by (LM state, trie node, last token), not by label prefix, so
  with `log_add=True` it also sums labellings that differ only in where separators fall, and
  a transcript's acoustic score can be a little higher than the reference's. With
  `log_add=False` (Viterbi merging) the two agree (tests compare both engines).

Its ASG mode uses the transition matrix (`[next, prev]`, as here); the tests check it
against brute force, the reference engine and the Viterbi oracle.
"""

from __future__ import annotations

import itertools
import math
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.asr.decoders.greedy import ctc_segments
from app.asr.decoders.types import BeamOptions
from app.asr.kenlm_binary import KenLMBinary
from app.asr.lexicon import Lexicon, spell
from app.asr.ngram import LN10, NgramLM
from app.asr.tokens import TokenTable

try:  # a compiled wheel; without it every search takes the reference engine
    from flashlight.lib.text.decoder import (
        CriterionType,
        LexiconDecoder,
        LexiconDecoderOptions,
        LexiconFreeDecoder,
        LexiconFreeDecoderOptions,
        SmearingMode,
        Trie,
        ZeroLM,
    )
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import Dictionary

    AVAILABLE = True
except ImportError:  # pragma: no cover - the wheel is a dependency; this guards exotic platforms
    AVAILABLE = False

_NEG_INF = -math.inf


@dataclass(frozen=True)
class Finished:
    """One hypothesis of the final beam, finished: what `app.asr.decoders.types.Hypothesis` is built from."""

    labels: tuple[int, ...]
    path: list[int]  # the search's own best frame path for the labels
    blank: int | None
    words: tuple[str, ...]
    acoustic_score: float
    lm_score: float
    score: float

    def frames(self) -> tuple[tuple[int, int], ...]:
        """[start, end) of each label on `path`, as `app.asr.decoders.alignment` reports them."""
        return tuple(span for _, span in ctc_segments(np.asarray(self.path), self.blank))  # blank None: ASG, every frame a label


class FlashlightEngine:
    """The trie, the KenLM model and the spelling table for one (token table, lexicon, LM file).

    Built once per bundle (about half a second for 30k words) and shared by every request:
    the trie and the model are read-only during a search, and each search makes its own
    `LexiconDecoder`.
    """

    def __init__(self, *, tokens: TokenTable, lexicon: Lexicon, lm_file: str | Path, lm: NgramLM) -> None:
        if not AVAILABLE:
            raise RuntimeError("flashlight-text is not installed")
        if tokens.separator_id is None:
            raise ValueError("the fast engine needs a token table with a word separator")
        self.tokens, self.lm = tokens, lm
        self.sep = tokens.separator_id
        self.words: list[str] = []
        self.by_spelling: dict[tuple[int, ...], str] = {}
        for word, letters in lexicon.entries:
            ids = spell("".join(letters), tokens)
            if ids is not None and ids not in self.by_spelling:
                self.by_spelling[ids] = word
        index: dict[str, int] = {}
        if isinstance(lm, KenLMBinary) and all(word in lm for word in self.by_spelling.values()):
            # The LM is KenLM already: search with it, in its own word numbering, rather than load the file twice.
            index = {word: lm.word_id(word) for word in self.by_spelling.values()}
            self.words, self.unk_index, self.kenlm = list(lm.vocab), lm.unk_id, lm.model
        else:
            for word in self.by_spelling.values():
                index.setdefault(word, len(index))
            self.words = list(index)
            self.unk_index = len(self.words)
            self.kenlm = KenLM(str(lm_file), Dictionary([*self.words, "<unk>"]))  # ARPA or KenLM binary
        self.trie = Trie(len(tokens), self.sep)
        for ids, word in self.by_spelling.items():
            # Smearing scores: the unigram in log10 (the decoder multiplies by the scaled weight).
            self.trie.insert([*ids, self.sep], index[word], lm.unigram_logprob(lm.word_id(word)) / LN10)
        self.trie.smear(SmearingMode.MAX)

    def search(self, emissions: np.ndarray, *, criterion: str, blank: int | None, transitions: np.ndarray | None,
               options: BeamOptions) -> list[Finished]:  # fmt: skip
        """The final beam of one utterance, finished, one entry per labelling, best first.

        Hypotheses whose unfinished last word is outside the lexicon are dropped, unless
        that rules out all of them: then they are kept with the word as `<unk>`, as the
        reference engine does."""
        num_frames, vocab = emissions.shape
        decoder_options = LexiconDecoderOptions(
            beam_size=options.beam_size, beam_size_token=_tokens_per_frame(emissions, options),
            beam_threshold=options.beam_threshold, lm_weight=options.lm_weight * LN10, word_score=options.word_score,
            unk_score=_NEG_INF, sil_score=0.0, log_add=options.log_add,
            criterion_type=CriterionType.CTC if criterion == "ctc" else CriterionType.ASG,
        )  # fmt: skip
        em = _finite(emissions)
        if criterion == "ctc" and blank is not None:
            closed = self._search_closed(em, blank, decoder_options, options)
            if closed:
                return closed
        trans = [] if transitions is None else np.asarray(transitions, dtype=np.float32).ravel().tolist()
        decoder = LexiconDecoder(decoder_options, self.trie, self.kenlm, self.sep, -1 if blank is None else blank, self.unk_index, trans, False)
        decoder.decode_begin()
        decoder.decode_step(em.ctypes.data, num_frames, vocab)
        beam: list[tuple[list[int], float]] = []
        for hyp in decoder.get_all_final_hypothesis():
            # With log-add merging only `score` sums over the merged paths (`emittingModelScore`
            # is one path's), so the acoustic part is what is left of it without the LM terms.
            if options.log_add:
                words = hyp.words
                emitted = len(words) - words.count(-1)
                acoustic = hyp.score - decoder_options.lm_weight * hyp.lmScore - options.word_score * emitted
            else:
                acoustic = hyp.emittingModelScore
            beam.append((hyp.tokens[1:], acoustic))  # tokens[0] is the start state's
        for force in (False, True):
            finished = [f for path, acoustic in beam if (f := self._finish(path, blank, acoustic, options, force=force)) is not None]
            if finished:
                break
        return _merge(finished, log_add=options.log_add)

    def _search_closed(self, em: np.ndarray, blank: int, decoder_options: LexiconDecoderOptions, options: BeamOptions) -> list[Finished]:
        """CTC: the search with one more frame that can only be the separator, at log-probability 0.

        That frame closes every hypothesis's last word inside the decoder (it costs nothing, so
        the scores are those of the real frames), `decode_end` scores `</s>`, and the decoder's
        own best hypothesis is the answer: no Python pass over the beam. Empty when no
        hypothesis ends in a lexicon word (the caller then finishes the beam itself)."""
        num_frames, vocab = em.shape
        closing = np.full((1, vocab), -1e9, dtype=np.float32)
        closing[0, self.sep] = 0.0
        full = np.ascontiguousarray(np.concatenate([em, closing]))
        decoder = LexiconDecoder(decoder_options, self.trie, self.kenlm, self.sep, blank, self.unk_index, [], False)
        decoder.decode_begin()
        decoder.decode_step(full.ctypes.data, num_frames + 1, vocab)
        decoder.decode_end()
        hyps = [decoder.get_best_hypothesis()] if options.nbest == 1 else decoder.get_all_final_hypothesis()
        finished = []
        for hyp in hyps:
            path = hyp.tokens[1 : num_frames + 1]  # [start state, frames..., closing frame, end]
            if len(path) < num_frames or not hyp.score > -1e8:  # no hypothesis survived the closing frame
                continue
            ids = [w for w in hyp.words if w >= 0]
            if options.log_add:  # `score` sums the merged paths; `emittingModelScore` is one path's
                acoustic = hyp.score - decoder_options.lm_weight * hyp.lmScore - options.word_score * len(ids)
            else:
                acoustic = hyp.emittingModelScore
            words = tuple(self.words[i] for i in ids)
            lm_score = self._sentence_logprob(list(words))
            labels = tuple(tok for tok, _ in itertools.groupby(path) if tok != blank)
            score = acoustic + options.lm_weight * lm_score + options.word_score * len(words)
            finished.append(Finished(labels, path, blank, words, acoustic, lm_score, score))
        return _merge(finished, log_add=options.log_add)

    def _finish(self, path: list[int], blank: int | None, acoustic: float, options: BeamOptions, *, force: bool) -> Finished | None:
        """The words of a frame path, scored; None if the unfinished last word is not in the
        lexicon (with `force`, it is then an out-of-lexicon word)."""
        labels = tuple(tok for tok, _ in itertools.groupby(path) if tok != blank)  # repeats merged, blanks dropped
        words: list[str] = []
        oov = 0
        start = 0
        for i in [*(j for j, tok in enumerate(labels) if tok == self.sep), len(labels)]:
            chunk = labels[start:i]
            start = i + 1
            if not chunk:
                continue
            word = self.by_spelling.get(chunk)
            if word is None:
                if not force:
                    return None
                word, oov = self.tokens.decode(chunk), oov + 1
                if not word:  # repetition labels alone spell nothing
                    continue
            words.append(word)
        lm_score = self._sentence_logprob(words)
        score = acoustic + options.lm_weight * lm_score + options.word_score * len(words) + options.unk_score * oov
        return Finished(labels, path, blank, tuple(words), acoustic, lm_score, score)

    def _sentence_logprob(self, words: list[str]) -> float:
        lm = self.lm
        state = lm.begin_state()
        total = 0.0
        for word in words:
            result = lm.score_word(state, word)
            total += result.logprob
            state = result.state
        return total + lm.end_score(state)


def _words(labels: tuple[int, ...], tokens: TokenTable | None, sep: int | None) -> tuple[str, ...]:
    """The separator-delimited words of a labelling (none without a token table with a separator)."""
    if tokens is None or sep is None:
        return ()
    chunks = (tuple(g) for is_sep, g in itertools.groupby(labels, key=lambda k: k == sep) if not is_sep)
    return tuple(w for w in (tokens.decode(c) for c in chunks) if w)


def search_free(emissions: np.ndarray, *, blank: int, tokens: TokenTable | None, options: BeamOptions) -> list[Finished]:
    """Lexicon-free CTC prefix beam search without an LM: the final beam, one entry per labelling, best first.

    flashlight-text's `LexiconFreeDecoder` with a `ZeroLM`, whose states form a trie of the
    label sequence, so hypotheses merge exactly when their prefixes do. CTC only: in ASG
    mode that decoder ranks hypotheses without the transition scores."""
    num_frames, vocab = emissions.shape
    decoder_options = LexiconFreeDecoderOptions(
        beam_size=options.beam_size, beam_size_token=_tokens_per_frame(emissions, options),
        beam_threshold=options.beam_threshold, lm_weight=0.0, sil_score=0.0, log_add=options.log_add,
        criterion_type=CriterionType.CTC,
    )  # fmt: skip
    sep = tokens.separator_id if tokens is not None else None
    decoder = LexiconFreeDecoder(decoder_options, ZeroLM(), blank if sep is None else sep, blank, [])
    em = _finite(emissions)
    decoder.decode_begin()
    decoder.decode_step(em.ctypes.data, num_frames, vocab)
    finished = []
    for hyp in decoder.get_all_final_hypothesis():
        path = hyp.tokens[1:]
        labels = tuple(tok for tok, _ in itertools.groupby(path) if tok != blank)
        acoustic = hyp.score if options.log_add else hyp.emittingModelScore  # `score` sums merged paths
        finished.append(Finished(labels, path, blank, _words(labels, tokens, sep), acoustic, 0.0, acoustic))
    return _merge(finished, log_add=options.log_add)


def free_unsupported(*, criterion: str, options: BeamOptions, lm: NgramLM | None, lexicon: Lexicon | None,
                     hotwords: Sequence[object]) -> str | None:  # fmt: skip
    """Why `search_free` cannot run a search with these settings, or None if it can."""
    reasons = [
        (not AVAILABLE, "flashlight-text is not installed"),
        (criterion != "ctc", "its lexicon-free search is CTC only"),
        (lm is not None or lexicon is not None, "its lexicon-free search has no LM or lexicon"),
        (bool(hotwords), "it has no hotwords"),
        (options.word_score != 0.0 or options.silence_score != 0.0, "its lexicon-free search has no word or silence score"),
    ]
    return next((why for bad, why in reasons if bad), None)


def unsupported(*, options: BeamOptions, tokens: TokenTable | None, lm: NgramLM | None, lexicon: Lexicon | None,
                hotwords: Sequence[object]) -> str | None:  # fmt: skip
    """Why this engine cannot run a search with these settings, or None if it can."""
    reasons = [
        (not AVAILABLE, "flashlight-text is not installed"),
        (lexicon is None or lm is None, "it needs a lexicon and an n-gram LM"),
        (lm is not None and lm.path is None, "the LM was not read from a file"),
        (tokens is None or tokens.separator_id is None, "it needs a token table with a word separator"),
        (bool(hotwords), "it has no hotwords"),
        (options.allow_oov, "it keeps words to the lexicon (allow_oov=false)"),
        (options.silence_score != 0.0, "it has no silence score"),
    ]
    return next((why for bad, why in reasons if bad), None)


_build_lock = threading.Lock()
_engines: weakref.WeakKeyDictionary[Lexicon, dict[tuple[TokenTable, int], FlashlightEngine]] = weakref.WeakKeyDictionary()


def engine_for(tokens: TokenTable, lexicon: Lexicon, lm: NgramLM) -> FlashlightEngine:
    """The engine of this (table, lexicon, LM), built on first use and kept while the lexicon lives."""
    key = (tokens, id(lm))
    with _build_lock:
        built = _engines.setdefault(lexicon, {})
        engine = built.get(key)
        if engine is None or engine.lm is not lm:
            assert lm.path is not None
            engine = built[key] = FlashlightEngine(tokens=tokens, lexicon=lexicon, lm_file=lm.path, lm=lm)
        return engine


def _finite(emissions: np.ndarray) -> np.ndarray:
    """float32, C-contiguous, -inf (a token pruned by `token_threshold`) as -1e30: flashlight-text's
    log-add of two -inf scores is NaN, and no path through -1e30 survives its beam threshold."""
    em = np.ascontiguousarray(emissions, dtype=np.float32)
    return np.maximum(em, np.float32(-1e30)) if np.isneginf(em).any() else em


def _tokens_per_frame(emissions: np.ndarray, options: BeamOptions) -> int:
    """flashlight-text tries the K best tokens of every frame; the reference engine tries the
    tokens within `tokens_within` of the frame's best. K is the most such tokens any frame
    has, so every token the reference tries is tried here too (capped by `beam_size_token`)."""
    vocab = emissions.shape[1]
    cap = min(options.beam_size_token or vocab, vocab)
    if not len(emissions) or not math.isfinite(options.tokens_within):
        return cap
    within = emissions >= emissions.max(axis=1, keepdims=True) - options.tokens_within
    return max(1, min(cap, int(within.sum(axis=1).max())))


def _merge(finished: list[Finished], *, log_add: bool) -> list[Finished]:
    """One entry per label sequence, best first. The beam holds a prefix's paths that end in a
    blank and in its last label as two hypotheses; the reference engine's score of the prefix
    combines them (log-add or max), and so does this."""
    by_labels: dict[tuple[int, ...], Finished] = {}
    for f in finished:
        other = by_labels.get(f.labels)
        if other is None:
            by_labels[f.labels] = f
            continue
        acoustic = float(np.logaddexp(other.acoustic_score, f.acoustic_score)) if log_add else max(other.acoustic_score, f.acoustic_score)
        better = f if f.acoustic_score > other.acoustic_score else other  # whose path gives the frames
        by_labels[f.labels] = Finished(f.labels, better.path, f.blank, f.words, acoustic, f.lm_score, f.score - f.acoustic_score + acoustic)
    return sorted(by_labels.values(), key=lambda f: -f.score)
