"""Beam search over CTC or ASG emissions, with a lexicon, n-gram shallow fusion and hotwords.

One search serves both criteria. A hypothesis is a label prefix (repeats merged, no
blanks) with two acoustic scores: the prefix's paths ending in a blank (`pb`) and in its
last label (`pnb`). For CTC this is the classic prefix beam search. ASG has no blank, so
its `pb` stays -inf, and the transition score `transitions[next, prev]` is added on every
frame; because the last frame's token is always the prefix's last label, keying ASG
hypotheses by prefix is exact. Paths that reach the same prefix merge with `logaddexp`
(`log_add=True`: the score is the log-probability of the labelling, summed over
alignments) or `max` (`log_add=False`: the best alignment, Viterbi).

Per frame the work is a few NumPy operations on a [beam, candidates] matrix, where the
candidates are the tokens within `beam_threshold` of the frame's best (usually a handful
on peaky outputs); Python only touches the hypotheses that survive. Prefixes are
canonical objects (a child is created once per parent and token), which makes merging a
prefix's extension into an existing hypothesis exact.

Word-level scores are a function of the prefix alone, kept in `_Prefix.lang`: LM
log-probability of the completed words (times `lm_weight`), `word_score` per word,
`silence_score` per separator, `unk_score` per out-of-lexicon word, hotword credit, and
inside a word the look-ahead of the lexicon trie (replaced by the true LM score when the
word completes). Total score = acoustic + lang; at the end the unfinished word is
completed and `</s>` is scored.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal, NamedTuple

import numpy as np

from app.asr import fastbeam
from app.asr.alignment import align_asg, align_ctc, word_spans
from app.asr.hypothesis import Hypothesis
from app.asr.lexicon import HotNode, Hotword, HotwordGraph, Lexicon, TrieNode, overlay_words
from app.asr.ngram import NgramLM
from app.asr.tokens import TokenTable

MAX_BEAM_SIZE = 1024  # the one bound on beam width: library calls and requests (app.asr.options) alike
_NEG_INF = -math.inf


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
    `engine`: `python` is this module's search, which does everything; `fast` is
    `app.asr.fastbeam`, compiled code about ten times faster for two common cases: a lexicon
    with an n-gram LM file (flashlight-text's C++ decoder and KenLM; no hotwords,
    out-of-lexicon words or silence score), and plain lexicon-free CTC without LM or word
    scores (the project's C search); `auto` takes `fast` whenever the search is one of them.
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


class _Off:
    """The trie position of a word outside the lexicon (allow_oov)."""


_OFF = _Off()


class _Words:
    """Word-level state, shared by every prefix of one word: it only changes at a separator."""

    __slots__ = ("words", "lm_state", "lm_logprob", "oov_count", "sep_count", "hot_node", "hot_banked", "hot_offset", "fixed")

    def __init__(
        self, words: tuple[str, ...], lm_state: tuple[int, ...], lm_logprob: float, oov_count: int, sep_count: int,
        hot: tuple[HotNode | None, float, float],
    ) -> None:  # fmt: skip
        self.words, self.lm_state, self.lm_logprob = words, lm_state, lm_logprob
        self.oov_count, self.sep_count = oov_count, sep_count
        self.hot_node, self.hot_banked, self.hot_offset = hot
        self.fixed = 0.0  # the word-level score without look-ahead, set by `_Scorer.fix`

    @property
    def hot_score(self) -> float:
        return 0.0 if self.hot_node is None else self.hot_banked + self.hot_node.credit - self.hot_offset


class _Prefix:
    """A label prefix; created once per (parent, token), so identity is exact merging."""

    __slots__ = ("parent", "token", "node", "word_tokens", "ctx", "smear", "lang", "sep_delta", "sep_ctx")

    def __init__(self, parent: _Prefix | None, token: int, node: TrieNode | _Off | None,
                 word_tokens: tuple[int, ...], ctx: _Words, smear: float) -> None:  # fmt: skip
        self.parent, self.token, self.node, self.word_tokens, self.ctx = parent, token, node, word_tokens, ctx
        self.smear = smear
        self.lang = ctx.fixed + smear  # everything but the acoustic score
        self.sep_delta: float | None = None
        self.sep_ctx: _Words | None = None

    def labels(self) -> tuple[int, ...]:
        out: list[int] = []
        p: _Prefix | None = self
        while p is not None and p.parent is not None:
            out.append(p.token)
            p = p.parent
        return tuple(reversed(out))


class _Scorer:
    """Word-level scoring of prefixes: lexicon constraint, LM, word/silence/unk scores, hotwords."""

    def __init__(
        self, *, tokens: TokenTable | None, vocab_size: int, blank: int | None, options: BeamOptions,
        lm: NgramLM | None, lexicon: Lexicon | None, hotwords: Sequence[Hotword],
    ) -> None:  # fmt: skip
        self.tokens, self.lm, self.o = tokens, lm, options
        self.width = vocab_size + 1  # the extra column is "no token yet"
        self.blank = blank
        self.sep = tokens.separator_id if tokens is not None else None
        self.hot = HotwordGraph(hotwords) if hotwords else None
        self.word_level = self.sep is not None  # words are tracked whenever they can be delimited
        self.root: TrieNode | None = None
        self.off_smear = 0.0
        if lexicon is not None:
            assert tokens is not None
            trie = lexicon.trie(tokens, lm)
            credits = dict.fromkeys(self.hot.words, 0.0) if self.hot is not None else {}
            if self.hot is not None:
                credits.update(self.hot.first_word_credits())
            self.root = overlay_words(trie.root, credits, tokens=tokens, lm=lm, lm_weight=options.lm_weight)
            unk_lm = lm.unigram_logprob(lm.unk_id) if lm is not None else 0.0
            self.off_smear = options.lm_weight * unk_lm + options.unk_score
        self._zeros = np.zeros(self.width)
        # Every prefix made, by id(parent) * width + token: makes children canonical, keeps
        # ids unique for the search's lifetime, and avoids parent<->child reference cycles.
        self._made: dict[int, _Prefix] = {}
        self._letters: tuple[str, ...] = tokens.tokens if tokens is not None else ()
        self._repeats = {tokens.tokens.index(str(n)): n for n in range(1, tokens.repetition_labels + 1)} if tokens else {}
        self._row_key = (options.lm_weight, options.allow_oov, self.off_smear, self.sep, self.blank, self.width)

    def fix(self, ctx: _Words) -> _Words:
        o = self.o
        ctx.fixed = (
            o.lm_weight * ctx.lm_logprob + o.word_score * len(ctx.words) + o.silence_score * ctx.sep_count
            + o.unk_score * ctx.oov_count + ctx.hot_score
        )  # fmt: skip
        return ctx

    def root_prefix(self) -> _Prefix:
        lm_state = self.lm.begin_state() if self.lm is not None else ()
        ctx = _Words((), lm_state, 0.0, 0, 0, (self.hot.root if self.hot else None, 0.0, 0.0))
        root = _Prefix(None, -1, self.root, (), self.fix(ctx), 0.0)
        self._made[-1] = root
        return root

    def smear(self, node: TrieNode | _Off | None) -> float:
        if node is None or node is self.root:
            return 0.0
        if isinstance(node, _Off):
            return self.off_smear
        return max(self.o.lm_weight * node.max_unigram, node.hot_best)

    def row(self, p: _Prefix) -> np.ndarray:
        """[V+1] lang deltas of extending `p` by each token (-inf: not allowed). The
        separator column is a placeholder: see `sep_delta`."""
        node = p.node
        if not isinstance(node, TrieNode):
            return self._zeros
        cached = node.row
        if cached is not None and cached[0] == self._row_key:
            return cached[1]  # type: ignore[return-value]
        here = self.smear(node)
        row = np.full(self.width, self.off_smear - here if self.o.allow_oov else _NEG_INF)
        for token, child in node.children.items():
            row[token] = self.smear(child) - here
        row[-1] = _NEG_INF
        if self.blank is not None:
            row[self.blank] = _NEG_INF
        if self.sep is not None:
            row[self.sep] = 0.0
        node.row = (self._row_key, row)
        return row

    def child(self, p: _Prefix, token: int) -> _Prefix:
        key = id(p) * self.width + token
        q = self._made.get(key)
        if q is not None:
            return q
        if not self.word_level:
            q = _Prefix(p, token, None, (), p.ctx, 0.0)
        elif token == self.sep:
            self.sep_delta(p)
            assert p.sep_ctx is not None, "a ruled-out separator was selected"
            q = _Prefix(p, token, self.root, (), p.sep_ctx, 0.0)
        elif self.root is None:
            q = _Prefix(p, token, None, (*p.word_tokens, token), p.ctx, 0.0)
        else:
            node = p.node
            node = node.children.get(token, _OFF) if isinstance(node, TrieNode) else _OFF
            q = _Prefix(p, token, node, (*p.word_tokens, token), p.ctx, self.smear(node))
        self._made[key] = q
        return q

    def sep_delta(self, p: _Prefix) -> float:
        """lang(p + separator) - lang(p), -inf when the word before it is not allowed."""
        if p.sep_delta is None:
            ctx = self.complete(p, force=False, separators=1)
            p.sep_ctx = ctx
            p.sep_delta = _NEG_INF if ctx is None else ctx.fixed - p.lang
        return p.sep_delta

    def complete(self, p: _Prefix, *, force: bool, separators: int) -> _Words | None:
        """The word-level state once the word under construction ends (None: not allowed)."""
        ctx = p.ctx
        hot = (ctx.hot_node, ctx.hot_banked, ctx.hot_offset)
        word = ""
        if p.word_tokens:
            node, lm_id, oov = p.node, -1, 0
            if isinstance(node, TrieNode) and node.word is not None:
                word, lm_id = node.word, node.lm_id
            elif self.root is None or self.o.allow_oov or force:
                word = self.spell_out(p.word_tokens)  # "" if only repetition labels: no word
                lm_id = self.lm.word_id(word) if self.lm is not None else -1
                oov = 1 if self.root is not None else 0
            else:
                return None
        if not word:
            new = _Words(ctx.words, ctx.lm_state, ctx.lm_logprob, ctx.oov_count, ctx.sep_count + separators, hot)
            return self.fix(new)
        lm_state, lm_logprob = ctx.lm_state, ctx.lm_logprob
        if self.lm is not None:
            score = self.lm.score_id(lm_state, lm_id)
            lm_state, lm_logprob = score.state, lm_logprob + score.logprob
        if self.hot is not None and ctx.hot_node is not None:
            hot = self.hot.step(ctx.hot_node, ctx.hot_banked, ctx.hot_offset, word)
        words = (*ctx.words, word)
        return self.fix(_Words(words, lm_state, lm_logprob, ctx.oov_count + oov, ctx.sep_count + separators, hot))

    def spell_out(self, word_tokens: tuple[int, ...]) -> str:
        """A word's letters, repetition labels expanded (`TokenTable.decode` for one word, faster)."""
        letters, repeats = self._letters, self._repeats
        out: list[str] = []
        last = ""
        for i in word_tokens:
            n = repeats.get(i)
            if n is None:
                last = letters[i]
                out.append(last)
            else:
                out.append(last * n)
        return "".join(out)

    def finish(self, p: _Prefix, *, force: bool) -> _Words | None:
        """The final word-level state: last word completed, `</s>` scored, unfinished
        hotword phrases withdrawn. None if the lexicon rules the ending out."""
        ctx = self.complete(p, force=force, separators=0)
        if ctx is None:
            return None
        if self.lm is not None:
            ctx.lm_logprob += self.lm.end_score(ctx.lm_state)
        if ctx.hot_node is not None:
            ctx.hot_offset = ctx.hot_node.credit
        return self.fix(ctx)


def _search(
    emissions: np.ndarray, *, blank: int | None, transitions: np.ndarray | None, options: BeamOptions, scorer: _Scorer
) -> tuple[list[_Prefix], np.ndarray]:
    """The frame loop. Returns the final beam and its acoustic scores."""
    num_frames, vocab = emissions.shape
    width = vocab + 1
    em = np.full((num_frames, width), _NEG_INF)  # [T, V+1]: the extra column is "no token"
    em[:, :vocab] = emissions
    blank_col = vocab if blank is None else blank
    trans: np.ndarray | None = None
    if transitions is not None:
        trans = np.zeros((width, width))  # [next, prev]; column V (no previous token) scores 0
        trans[:vocab, :vocab] = transitions
    candidates = em[:, :vocab] >= (em[:, :vocab].max(axis=1) - options.tokens_within)[:, None]  # [T, V]
    if blank is not None:
        candidates[:, blank] = False
    combine = np.logaddexp if options.log_add else np.maximum
    sep = scorer.sep if scorer.sep is not None else -1
    lexicon = scorer.root is not None
    threshold = options.beam_threshold
    beam_size, token_cap = options.beam_size, options.beam_size_token

    beam = [scorer.root_prefix()]
    pb, pnb = np.zeros(1), np.full(1, _NEG_INF)
    last = np.full(1, vocab)
    lang = np.zeros(1)
    rows = np.stack([scorer.row(beam[0])]) if lexicon else None
    merge_child = merge_parent = np.zeros(0, dtype=np.int64)
    pos_of = np.full(width, -1)
    for t in range(num_frames):
        e = em[t]
        cand = np.flatnonzero(candidates[t])
        if token_cap is not None and len(cand) > token_cap:
            cand = cand[np.argpartition(-e[cand], token_cap - 1)[:token_cap]]
        size, k = len(beam), len(cand)
        total = combine(pb, pnb)
        stay_b = total + e[blank_col]
        stay_nb = pnb + e[last]
        if trans is not None:
            stay_nb += trans[last, last]
        ext = np.where(last[:, None] == cand[None, :], pb[:, None], total[:, None]) + e[cand][None, :]  # [B, K]
        if trans is not None:
            ext += trans[cand[None, :], last[:, None]]
        if len(merge_child) and k:
            pos_of[cand] = np.arange(k)
            ks = pos_of[last[merge_child]]
            pos_of[cand] = -1
            hit = ks >= 0
            child, parent, ks = merge_child[hit], merge_parent[hit], ks[hit]
            stay_nb[child] = combine(stay_nb[child], ext[parent, ks])
            ext[parent, ks] = _NEG_INF
        rank = ext + lang[:, None]
        if rows is not None:
            rank += rows[:, cand]
        if sep >= 0 and candidates[t, sep] and (sep_at := np.flatnonzero(cand == sep)).size:
            rank[:, sep_at[0]] += np.fromiter((scorer.sep_delta(p) for p in beam), float, size)
        scores = np.concatenate([combine(stay_b, stay_nb) + lang, rank.ravel()])
        best = scores.max()
        if best == _NEG_INF:
            return [], np.zeros(0)
        keep = np.flatnonzero(scores >= best - threshold)
        if len(keep) > beam_size:
            keep = keep[np.argpartition(-scores[keep], beam_size - 1)[:beam_size]]
        keep = keep[scores[keep] > _NEG_INF]
        is_ext = keep >= size
        flat = np.where(is_ext, keep - size, 0)
        stay_idx = np.where(is_ext, 0, keep)
        pb = np.where(is_ext, _NEG_INF, stay_b[stay_idx])
        pnb = np.where(is_ext, ext.ravel()[flat] if k else _NEG_INF, stay_nb[stay_idx])
        new_beam: list[_Prefix] = []
        for j, extension, f in zip(keep.tolist(), is_ext.tolist(), flat.tolist(), strict=True):
            if extension:
                i, c = divmod(f, k)
                new_beam.append(scorer.child(beam[i], int(cand[c])))
            else:
                new_beam.append(beam[j])
        beam = new_beam
        last = np.fromiter((p.token if p.parent is not None else vocab for p in beam), np.int64, len(beam))
        lang = np.fromiter((p.lang for p in beam), float, len(beam))
        if rows is not None:
            rows = np.stack([scorer.row(p) for p in beam])
        index = {id(p): j for j, p in enumerate(beam)}
        pairs = [(j, index[id(p.parent)]) for j, p in enumerate(beam) if id(p.parent) in index]
        merge_child = np.fromiter((c for c, _ in pairs), np.int64, len(pairs))
        merge_parent = np.fromiter((q for _, q in pairs), np.int64, len(pairs))
    return beam, combine(pb, pnb)


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
    why_not = fastbeam.unsupported(options=options, tokens=tokens, lm=lm, lexicon=lexicon, hotwords=hotwords)
    why_not_free = fastbeam.free_unsupported(criterion=criterion, options=options, lm=lm, lexicon=lexicon, hotwords=hotwords)
    if options.engine == "fast" and why_not is not None and why_not_free is not None:
        raise ValueError(f"engine='fast' cannot run this search: {why_not if lm is not None or lexicon is not None else why_not_free}")
    finals: list[_Final]
    separator: int | None
    if options.engine != "python" and (why_not is None or why_not_free is None):
        if why_not is None:
            assert tokens is not None and lm is not None and lexicon is not None
            finished = fastbeam.engine_for(tokens, lexicon, lm).search(em, criterion=criterion, blank=blank, transitions=trans, options=options)
        elif fastbeam.NATIVE is not None:
            assert blank is not None
            finished = fastbeam.search_native(em, blank=blank, tokens=tokens, options=options)
        else:
            assert blank is not None
            finished = fastbeam.search_free(em, blank=blank, tokens=tokens, options=options)
        finals = [_Final(f.score, f.acoustic_score, f.labels, f.words, f.lm_score, 0.0, f.frames) for f in finished]  # type: ignore[union-attr]
        separator = tokens.separator_id if tokens is not None else None
    else:
        finals, separator = _python_search(em, criterion_blank=blank, trans=trans, options=options, tokens=tokens, lm=lm,
                                           lexicon=lexicon, hotwords=hotwords)  # fmt: skip
    chosen: list[_Final] = []
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


class _Final(NamedTuple):
    """A finished hypothesis of either engine, before alignment."""

    score: float
    acoustic: float
    labels: tuple[int, ...]
    words: tuple[str, ...]
    lm_logprob: float
    hotword: float
    frames: Callable[[], tuple[tuple[int, int], ...]] | None = None  # the engine's own alignment; None: align afterwards


def _python_search(
    em: np.ndarray, *, criterion_blank: int | None, trans: np.ndarray | None, options: BeamOptions, tokens: TokenTable | None,
    lm: NgramLM | None, lexicon: Lexicon | None, hotwords: Sequence[Hotword],
) -> tuple[list[_Final], int | None]:  # fmt: skip
    """This module's engine: the finished final beam, best first, and the separator it words by (None: no words)."""
    scorer = _Scorer(
        tokens=tokens, vocab_size=em.shape[1], blank=criterion_blank, options=options, lm=lm, lexicon=lexicon, hotwords=hotwords
    )
    beam, acoustic = _search(em, blank=criterion_blank, transitions=trans, options=options, scorer=scorer)
    finals: list[_Final] = []
    for force in (False, True):  # if the lexicon rules out every ending, accept OOV endings
        for p, ac in zip(beam, acoustic.tolist(), strict=True):
            done = scorer.finish(p, force=force)
            if done is not None:
                finals.append(_Final(ac + done.fixed, ac, p.labels(), done.words, done.lm_logprob, done.hot_banked))
        if finals:
            break
    finals.sort(key=lambda f: -f.score)
    return finals, scorer.sep if scorer.word_level else None
