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
from collections.abc import Sequence

import numpy as np

from app.asr.decoders.types import BeamOptions, Final
from app.asr.lexicon import HotNode, Hotword, HotwordGraph, Lexicon, TrieNode, overlay_words
from app.asr.ngram import NgramLM
from app.asr.tokens import TokenTable

_NEG_INF = -math.inf


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


def search(
    em: np.ndarray, *, criterion_blank: int | None, trans: np.ndarray | None, options: BeamOptions, tokens: TokenTable | None,
    lm: NgramLM | None, lexicon: Lexicon | None, hotwords: Sequence[Hotword],
) -> tuple[list[Final], int | None]:  # fmt: skip
    """The reference engine: the finished final beam, best first, and the separator it words by (None: no words)."""
    scorer = _Scorer(
        tokens=tokens, vocab_size=em.shape[1], blank=criterion_blank, options=options, lm=lm, lexicon=lexicon, hotwords=hotwords
    )
    beam, acoustic = _search(em, blank=criterion_blank, transitions=trans, options=options, scorer=scorer)
    finals: list[Final] = []
    for force in (False, True):  # if the lexicon rules out every ending, accept OOV endings
        for p, ac in zip(beam, acoustic.tolist(), strict=True):
            done = scorer.finish(p, force=force)
            if done is not None:
                finals.append(Final(ac + done.fixed, ac, p.labels(), done.words, done.lm_logprob, done.hot_banked))
        if finals:
            break
    finals.sort(key=lambda f: -f.score)
    return finals, scorer.sep if scorer.word_level else None
