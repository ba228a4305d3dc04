"""Beam search against brute force: CTC labelling probabilities, ASG Viterbi, LM/lexicon
score bookkeeping, hotwords, alignments and option validation."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import numpy as np
import pytest

from app.asr.decoders import BeamOptions, align_asg, align_ctc, beam_search
from app.asr.lexicon import Hotword, HotwordGraph, Lexicon, parse_hotwords, spell
from app.asr.ngram import NgramLM
from app.asr.tokens import BLANK, TokenTable, asg_letters, ctc_letters

WIDE = {"beam_size": 1024, "beam_threshold": math.inf}


def log_softmax(x: np.ndarray) -> np.ndarray:
    return x - np.logaddexp.reduce(x, axis=1, keepdims=True)


def merge(path: tuple[int, ...], blank: int | None = None) -> tuple[int, ...]:
    out = [tok for i, tok in enumerate(path) if i == 0 or tok != path[i - 1]]
    return tuple(tok for tok in out if tok != blank)


def brute_ctc(em: np.ndarray, blank: int) -> dict[tuple[int, ...], float]:
    """log P(labelling) for every labelling, by enumerating all frame paths."""
    totals: dict[tuple[int, ...], list[float]] = defaultdict(list)
    frames = range(em.shape[0])
    for path in itertools.product(range(em.shape[1]), repeat=em.shape[0]):
        totals[merge(path, blank)].append(sum(em[t, s] for t, s in zip(frames, path, strict=True)))
    return {k: float(np.logaddexp.reduce(v)) for k, v in totals.items()}


def brute_asg(em: np.ndarray, trans: np.ndarray) -> dict[tuple[int, ...], tuple[float, float]]:
    """Per merged labelling: (best path score, log-sum over its paths)."""
    scores: dict[tuple[int, ...], list[float]] = defaultdict(list)
    for path in itertools.product(range(em.shape[1]), repeat=em.shape[0]):
        s = sum(em[t, k] for t, k in enumerate(path)) + sum(trans[b, a] for a, b in itertools.pairwise(path))
        scores[merge(path)].append(s)
    return {k: (max(v), float(np.logaddexp.reduce(v))) for k, v in scores.items()}


def ctc_forward(em: np.ndarray, blank: int, labels: tuple[int, ...], *, log_add: bool = True) -> float:
    """Textbook CTC forward (sum, or max) over the blank-interleaved labels."""
    ext = [blank]
    for lab in labels:
        ext += [lab, blank]
    comb = np.logaddexp if log_add else max
    alpha = [-math.inf] * len(ext)
    alpha[0] = em[0, blank]
    if len(ext) > 1:
        alpha[1] = em[0, ext[1]]
    for t in range(1, em.shape[0]):
        new = []
        for s in range(len(ext)):
            a = alpha[s]
            if s >= 1:
                a = comb(a, alpha[s - 1])
            if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
                a = comb(a, alpha[s - 2])
            new.append(a + em[t, ext[s]])
        alpha = new
    return float(comb(alpha[-1], alpha[-2]) if len(ext) > 1 else alpha[-1])


def asg_viterbi_of(em: np.ndarray, trans: np.ndarray, labels: tuple[int, ...]) -> float:
    """Best path score of one ASG labelling (label j stays or moves to j+1 each frame)."""
    alpha = [em[0, labels[0]]] + [-math.inf] * (len(labels) - 1)
    for t in range(1, em.shape[0]):
        alpha = [
            max(alpha[j] + trans[labels[j], labels[j]], alpha[j - 1] + trans[labels[j], labels[j - 1]] if j else -math.inf)
            + em[t, labels[j]]
            for j in range(len(labels))
        ]
    return float(alpha[-1])


# -- (a) CTC against brute force ------------------------------------------------------------


# Lexicon-free CTC without an LM runs on two engines: the Python one and flashlight-text's lexicon-free decoder (what auto takes).
ENGINES = ["python", "flashlight"]


@pytest.fixture
def engine(request: pytest.FixtureRequest) -> str:
    """The `engine=` value that selects the engine named by the test's parameter."""
    return "python" if request.param == "python" else "fast"


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
@pytest.mark.parametrize("seed", range(6))
def test_ctc_prefix_search_equals_brute_force(seed: int, engine: str) -> None:
    rng = np.random.default_rng(seed)
    frames, vocab = int(rng.integers(1, 6)), int(rng.integers(3, 5))
    em = log_softmax(rng.normal(size=(frames, vocab)) * 2)
    truth = sorted(brute_ctc(em, 0).items(), key=lambda kv: -kv[1])
    hyps = beam_search(em.astype(np.float32), criterion="ctc", blank=0, nbest=min(8, len(truth)), engine=engine, **WIDE)
    assert [h.tokens for h in hyps] == [k for k, _ in truth[: len(hyps)]]
    for h, (_, logp) in zip(hyps, truth, strict=False):
        assert h.score == pytest.approx(logp, abs=1e-5)
        assert h.acoustic_score == pytest.approx(ctc_forward(em.astype(np.float32).astype(np.float64), 0, h.tokens), abs=1e-9)


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
@pytest.mark.parametrize("seed", range(4))
def test_ctc_max_merge_finds_the_best_path(seed: int, engine: str) -> None:
    rng = np.random.default_rng(100 + seed)
    em = log_softmax(rng.normal(size=(5, 4)) * 2)
    best = max(itertools.product(range(4), repeat=5), key=lambda p: sum(em[t, s] for t, s in enumerate(p)))
    (h,) = beam_search(em, criterion="ctc", blank=0, log_add=False, engine=engine, **WIDE)
    assert h.tokens == merge(best, 0)
    assert h.score == pytest.approx(sum(em[t, s] for t, s in enumerate(best)))
    # the reported frames are the best path's segments
    segments = [(t, s) for t, s in enumerate(best) if s != 0 and (t == 0 or best[t - 1] != s)]
    assert [f[0] for f in h.frames] == [t for t, _ in segments]


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_beam_one_is_greedy_on_peaky_input(engine: str) -> None:
    rng = np.random.default_rng(7)
    path = rng.integers(0, 5, size=30)
    em = log_softmax(np.eye(5)[path] * 8 + rng.normal(size=(30, 5)) * 0.1)
    (h,) = beam_search(em, criterion="ctc", blank=0, beam_size=1, engine=engine)
    assert h.tokens == merge(tuple(path.tolist()), 0)


# -- (b) ASG against brute-force Viterbi ---------------------------------------------------


ASG_TOKENS = TokenTable(("|", "a", "b", "1"), repetition_labels=1)


@pytest.mark.parametrize("seed", range(6))
def test_asg_max_equals_viterbi(seed: int) -> None:
    rng = np.random.default_rng(200 + seed)
    frames = int(rng.integers(1, 6))
    em = rng.normal(size=(frames, 4)).astype(np.float32)
    trans = rng.normal(size=(4, 4)).astype(np.float32)
    truth = brute_asg(em.astype(np.float64), trans.astype(np.float64))
    best = max(truth, key=lambda k: truth[k][0])
    hyps = beam_search(em, criterion="asg", tokens=ASG_TOKENS, transitions=trans, log_add=False, nbest=3, **WIDE)
    assert hyps[0].tokens == best
    assert hyps[0].score == pytest.approx(truth[best][0], abs=1e-5)
    for h in hyps:
        assert h.acoustic_score == pytest.approx(truth[h.tokens][0], abs=1e-5)
        assert sum(e - s for s, e in h.frames) == frames  # ASG: every frame belongs to a label
    (summed,) = beam_search(em, criterion="asg", tokens=ASG_TOKENS, transitions=trans, log_add=True, **WIDE)
    assert summed.score == pytest.approx(max(v[1] for v in truth.values()), abs=1e-5)


# -- (c) LM + lexicon bookkeeping ----------------------------------------------------------


ARPA = """
\\data\\
ngram 1=7
ngram 2=6

\\1-grams:
-1.0\t<unk>
-99\t<s>\t-0.30
-0.70\t</s>
-0.60\tab\t-0.20
-0.80\tba\t-0.25
-0.90\ta\t-0.10
-1.20\tbab

\\2-grams:
-0.20\t<s> ab
-0.50\t<s> a
-0.30\tab ba
-0.40\tba </s>
-0.60\ta ab
-0.35\tab </s>

\\end\\
"""


@pytest.fixture(scope="module")
def lm() -> NgramLM:
    return NgramLM.from_arpa_text(ARPA)


CTC_TOKENS = TokenTable((BLANK, "|", "a", "b"), blank=BLANK)
LEXICON = Lexicon.from_words(["ab", "ba", "a", "bab"])


@pytest.mark.parametrize("criterion", ["ctc", "asg"])
@pytest.mark.parametrize("seed", range(3))
def test_total_is_acoustic_plus_weighted_lm_plus_word_score(lm: NgramLM, criterion: str, seed: int) -> None:
    rng = np.random.default_rng(300 + seed)
    weight, word_score = 0.8, 1.5
    if criterion == "ctc":
        em = log_softmax(rng.normal(size=(9, 4)) * 2)
        kwargs: dict = {"tokens": CTC_TOKENS}
    else:
        em = rng.normal(size=(9, 4))
        trans = rng.normal(size=(4, 4))
        kwargs = {"tokens": ASG_TOKENS, "transitions": trans}
    hyps = beam_search(
        em, criterion=criterion, lm=lm, lexicon=LEXICON, lm_weight=weight, word_score=word_score,
        log_add=criterion == "ctc", nbest=6, **WIDE, **kwargs,
    )  # fmt: skip
    assert len(hyps) == 6
    assert all(a.score >= b.score for a, b in itertools.pairwise(hyps))
    assert len({h.words for h in hyps}) == len(hyps)  # distinct transcripts
    for h in hyps:
        assert set(h.words) <= set(LEXICON.words)
        assert kwargs["tokens"].decode(h.tokens).split() == list(h.words)
        if criterion == "ctc":
            acoustic = ctc_forward(em, 0, h.tokens)
        else:
            acoustic = asg_viterbi_of(em, trans, h.tokens)
        assert h.acoustic_score == pytest.approx(acoustic, abs=1e-9)
        assert h.lm_score == pytest.approx(lm.score_sentence(h.words), abs=1e-9)
        assert h.word_count == len(h.words)
        assert h.score == pytest.approx(acoustic + weight * lm.score_sentence(h.words) + word_score * len(h.words))


def test_lexicon_free_lm_and_silence_score(lm: NgramLM) -> None:
    rng = np.random.default_rng(5)
    em = log_softmax(rng.normal(size=(10, 4)) * 2)
    hyps = beam_search(em, criterion="ctc", tokens=CTC_TOKENS, lm=lm, lm_weight=0.5, silence_score=-0.7, nbest=5, **WIDE)
    for h in hyps:
        separators = sum(1 for t in h.tokens if t == 1)
        expected = ctc_forward(em, 0, h.tokens) + 0.5 * lm.score_sentence(h.words) - 0.7 * separators
        assert h.score == pytest.approx(expected)


def test_allow_oov_charges_unk_score(lm: NgramLM) -> None:
    em = log_softmax(np.array([[0, 0, 9, 0], [9, 0, 0, 0], [0, 0, 9, 0]], dtype=float))  # "a a" -> "aa"
    strict = beam_search(em, criterion="ctc", tokens=CTC_TOKENS, lexicon=LEXICON, lm=lm, beam_size=16)
    loose = beam_search(em, criterion="ctc", tokens=CTC_TOKENS, lexicon=LEXICON, lm=lm, beam_size=16, allow_oov=True, unk_score=-1.0)
    assert strict[0].words != ("aa",)
    assert loose[0].words == ("aa",)
    assert loose[0].score == pytest.approx(loose[0].acoustic_score + 0.5 * loose[0].lm_score - 1.0)


# -- (d) hotwords ----------------------------------------------------------------------------


HOT_TOKENS = TokenTable((BLANK, "|", "a", "b", "c", "t"), blank=BLANK)


def ambiguous_cat_bat() -> np.ndarray:
    p = np.full((5, 6), 0.01)
    p[0, 3], p[0, 4] = 0.55, 0.43  # b slightly ahead of c
    p[1, 2] = p[2, 0] = p[3, 5] = p[4, 0] = 0.95
    return np.log(p / p.sum(axis=1, keepdims=True))


def test_hotword_tips_an_ambiguous_word() -> None:
    em = ambiguous_cat_bat()
    lexicon = Lexicon.from_words(["cat", "bat"])
    plain = beam_search(em, criterion="ctc", tokens=HOT_TOKENS, lexicon=lexicon, beam_size=8)
    boosted = beam_search(em, criterion="ctc", tokens=HOT_TOKENS, lexicon=lexicon, beam_size=8, hotwords=[Hotword("cat", 1.0)])
    assert plain[0].words == ("bat",)
    assert boosted[0].words == ("cat",)
    assert boosted[0].hotword_score == pytest.approx(1.0)
    assert boosted[0].score == pytest.approx(boosted[0].acoustic_score + 1.0)
    # a hotword outside the lexicon is still spellable
    other = beam_search(em, criterion="ctc", tokens=HOT_TOKENS, lexicon=Lexicon.from_words(["bat"]), hotwords=parse_hotwords(["cat:2"], 1.0))
    assert other[0].words == ("cat",)


def test_hotword_graph_withdraws_partial_credit() -> None:
    graph = HotwordGraph([Hotword("new york", 1.0), Hotword("new york city", 1.0), Hotword("york", 0.5)])

    def run(words: list[str]) -> float:
        node, banked, offset = graph.root, 0.0, 0.0
        for w in words:
            node, banked, offset = graph.step(node, banked, offset, w)
        return banked  # an unfinished phrase earns nothing at the end

    assert run(["new"]) == 0.0
    assert run(["new", "york"]) == 2.0
    assert run(["new", "york", "city"]) == 3.0
    assert run(["new", "jersey"]) == 0.0
    assert run(["old", "york"]) == 0.5
    assert run(["new", "new", "york"]) == 2.0  # falls back to the second "new"
    node, banked, offset = graph.step(graph.root, 0.0, 0.0, "new")
    assert banked + node.credit - offset == 1.0  # provisional credit while inside


def test_parse_hotwords() -> None:
    assert parse_hotwords(["Name:4.0", "other phrase"], 1.5) == [Hotword("name", 4.0), Hotword("other phrase", 1.5)]
    for bad in ["name:abc", ":3", "   ", "x:inf", "name:"]:
        with pytest.raises(ValueError, match="hotword"):
            parse_hotwords([bad], 1.0)


# -- (e) validation, edges and alignment -----------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{"beam_size": 0}, {"beam_size": 100000}, {"nbest": 0}, {"nbest": 20, "beam_size": 4}, {"beam_threshold": 0.0},
     {"beam_threshold": math.nan}, {"lm_weight": -1.0}, {"word_score": math.inf}, {"beam_size_token": 0}],
)  # fmt: skip
def test_bad_options(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        BeamOptions(**kwargs)
    with pytest.raises(ValueError):
        beam_search(np.zeros((3, 4)), criterion="ctc", blank=0, **kwargs)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="blank"):
        beam_search(np.zeros((3, 4)), criterion="ctc")
    with pytest.raises(ValueError, match="transitions"):
        beam_search(np.zeros((3, 4)), criterion="asg")
    with pytest.raises(ValueError, match="criterion"):
        beam_search(np.zeros((3, 4)), criterion="rnnt", blank=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="token table"):
        beam_search(np.zeros((3, 4)), criterion="ctc", blank=0, lexicon=LEXICON)


def test_zero_frames(lm: NgramLM) -> None:
    (h,) = beam_search(np.zeros((0, 4)), criterion="ctc", tokens=CTC_TOKENS, lm=lm, lm_weight=1.0)
    assert h.tokens == () and h.frames == () and h.acoustic_score == 0.0
    assert h.score == pytest.approx(lm.score_sentence([]))


def test_frames_and_word_frames_follow_the_peaks() -> None:
    # "ab|a" spoken over 10 frames with blanks between
    path = [0, 2, 2, 0, 3, 1, 1, 0, 2, 0]
    em = log_softmax(np.eye(4)[path] * 10.0)
    (h,) = beam_search(em, criterion="ctc", tokens=CTC_TOKENS, lexicon=LEXICON, beam_size=8)
    assert h.words == ("ab", "a")
    assert h.frames == ((1, 3), (4, 5), (5, 7), (8, 9))
    assert h.word_frames == ((1, 5), (8, 9))
    assert align_ctc(em, 0, h.tokens) == h.frames
    trans = np.zeros((4, 4))
    assert align_asg(np.eye(4)[[2, 2, 1, 3, 3]] * 5.0, trans, (2, 1, 3)) == ((0, 2), (2, 3), (3, 5))


def test_double_letters_in_both_token_tables() -> None:
    ctc, asg = ctc_letters(), asg_letters(2)
    assert spell("hello", ctc) == tuple(ctc.index[c] for c in "hello")
    assert spell("hello", asg) == tuple(asg.index[c] for c in "hel1o")
    lexicon = Lexicon.from_words(["hello", "helo", "x-ray"])
    assert lexicon.trie(ctc, None).skipped == ("x-ray",)
    index = ctc.index
    path = [index[c] for c in "hhel"] + [0] + [index[c] for c in "lo"] + [0]  # h h e l _ l o _
    em = log_softmax(np.eye(len(ctc))[path] * 10.0)
    (h,) = beam_search(em, criterion="ctc", tokens=ctc, lexicon=lexicon, beam_size=8)
    assert h.words == ("hello",)
    labels = [asg.index[c] for c in "hhell1oo"]
    (h,) = beam_search(np.eye(len(asg))[labels] * 10.0, criterion="asg", tokens=asg, lexicon=lexicon,
                       transitions=np.zeros((len(asg), len(asg))), beam_size=8)  # fmt: skip
    assert h.words == ("hello",)
