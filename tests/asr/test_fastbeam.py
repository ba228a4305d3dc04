"""The fast beam engine (flashlight-text + KenLM, and its lexicon-free decoder) against brute force and the Python engine.

The oracle enumerates every frame path of a tiny input, keeps the labellings whose words are
all in the lexicon, and scores each as acoustic (best path, transitions included for ASG)
+ LM weight x the LM's own log-probability of the words + word score x words. The engine
must find the best of them with its score; it must also agree with the Python engine, and
`engine="auto"` must only pick it where it applies."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from app.asr.decoders import beam_search
from app.asr.decoders import flashlight as fastbeam
from app.asr.lexicon import Hotword, Lexicon, spell
from app.asr.ngram import NgramLM
from tests.asr.test_beam import ARPA, ASG_TOKENS, CTC_TOKENS, LEXICON, WIDE, ctc_forward, log_softmax, merge

pytestmark = pytest.mark.skipif(not fastbeam.AVAILABLE, reason="flashlight-text is a dependency; this guards a broken install")


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> NgramLM:
    path = tmp_path_factory.mktemp("lm") / "lm.arpa"
    path.write_text(ARPA, encoding="utf-8")
    return NgramLM.from_arpa(path)


@pytest.fixture
def fast_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts searches that went to the fast engine."""
    calls: list[int] = []
    search = fastbeam.FlashlightEngine.search

    def counted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return search(self, *args, **kwargs)

    monkeypatch.setattr(fastbeam.FlashlightEngine, "search", counted)
    return calls


def lexicon_oracle(em: np.ndarray, trans: np.ndarray | None, blank: int | None, tokens, lm: NgramLM, weight: float, word_score: float):  # type: ignore[no-untyped-def]
    """(total, labels, words) of every in-lexicon labelling, by enumerating frame paths (best path per labelling)."""
    best: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(em.shape[1]), repeat=em.shape[0]):
        score = sum(em[t, k] for t, k in enumerate(path))
        if trans is not None:
            score += sum(trans[b, a] for a, b in itertools.pairwise(path))
        labels = merge(path, blank)
        best[labels] = max(best.get(labels, -math.inf), score)
    spellings = {spell(w, tokens): w for w in LEXICON.words}
    out = []
    for labels, acoustic in best.items():
        chunks = [tuple(c) for sep, c in itertools.groupby(labels, key=lambda k: k == tokens.separator_id) if not sep]
        if all(c in spellings for c in chunks):  # every word spelled as the lexicon spells it (no stray repetition label)
            words = [spellings[c] for c in chunks]
            out.append((acoustic + weight * lm.score_sentence(words) + word_score * len(words), labels, tuple(words)))
    return sorted(out, reverse=True)


@pytest.mark.parametrize("criterion", ["ctc", "asg"])
@pytest.mark.parametrize("seed", range(5))
def test_finds_the_best_in_lexicon_labelling(lm: NgramLM, fast_calls: list[int], criterion: str, seed: int) -> None:
    rng = np.random.default_rng(900 + seed)
    frames = int(rng.integers(3, 7))
    weight, word_score = 0.7, 1.2
    if criterion == "ctc":
        em, trans, blank, tokens = log_softmax(rng.normal(size=(frames, 4)) * 2), None, 0, CTC_TOKENS
    else:
        em, trans, blank, tokens = rng.normal(size=(frames, 4)) * 2, rng.normal(size=(4, 4)), None, ASG_TOKENS
    em = em.astype(np.float32).astype(np.float64)  # the engine reads float32: compare on the same numbers
    truth = lexicon_oracle(em, trans, blank, tokens, lm, weight, word_score)
    hyps = beam_search(em, criterion=criterion, tokens=tokens, transitions=trans, lm=lm, lexicon=LEXICON, lm_weight=weight,
                       word_score=word_score, log_add=False, nbest=3, **WIDE)  # fmt: skip
    assert fast_calls, "auto should have taken the fast engine"
    assert hyps[0].words == truth[0][2]
    assert hyps[0].score == pytest.approx(truth[0][0], abs=1e-4)
    reference = beam_search(em, criterion=criterion, tokens=tokens, transitions=trans, lm=lm, lexicon=LEXICON, lm_weight=weight,
                            word_score=word_score, log_add=False, nbest=3, engine="python", **WIDE)  # fmt: skip
    assert [h.words for h in hyps] == [h.words for h in reference]
    for ours, theirs in zip(hyps, reference, strict=True):
        assert ours.score == pytest.approx(theirs.score, abs=1e-4)
        assert ours.acoustic_score == pytest.approx(theirs.acoustic_score, abs=1e-4)
        assert ours.lm_score == pytest.approx(lm.score_sentence(ours.words), abs=1e-9)
        assert ours.frames == theirs.frames and ours.word_frames == theirs.word_frames


def test_asg_uses_the_transitions(lm: NgramLM) -> None:
    """The same emissions under two transition matrices: the transitions must change the scores by their sum along the path."""
    rng = np.random.default_rng(7)
    em = rng.normal(size=(6, 4)).astype(np.float32).astype(np.float64)
    zero, trans = np.zeros((4, 4)), rng.normal(size=(4, 4)) * 3
    for t in (zero, trans):
        (h,) = beam_search(em, criterion="asg", tokens=ASG_TOKENS, transitions=t, lm=lm, lexicon=LEXICON, log_add=False, engine="fast", **WIDE)
        path = [tok for tok, (s, e) in zip(h.tokens, h.frames, strict=True) for _ in range(s, e)]
        expected = sum(em[i, k] for i, k in enumerate(path)) + sum(t[b, a] for a, b in itertools.pairwise(path))
        assert h.acoustic_score == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("seed", range(4))
def test_log_add_sums_at_least_the_labelling(lm: NgramLM, seed: int) -> None:
    """With log-add merging the engine also merges labellings that differ only in separators, so its acoustic score
    is at least the CTC forward probability of the labelling it returns; the bookkeeping of the total still holds."""
    rng = np.random.default_rng(950 + seed)
    em = log_softmax(rng.normal(size=(7, 4)) * 2).astype(np.float32).astype(np.float64)
    fast = beam_search(em, criterion="ctc", tokens=CTC_TOKENS, lm=lm, lexicon=LEXICON, nbest=3, engine="fast", **WIDE)
    reference = beam_search(em, criterion="ctc", tokens=CTC_TOKENS, lm=lm, lexicon=LEXICON, nbest=3, engine="python", **WIDE)
    assert fast[0].words == reference[0].words
    for h in fast:
        assert h.acoustic_score >= ctc_forward(em, 0, h.tokens) - 1e-4
        assert h.score == pytest.approx(h.acoustic_score + 0.5 * lm.score_sentence(h.words))


@pytest.mark.parametrize("log_add", [False, True])
def test_unfinished_word_outside_the_lexicon_is_kept_when_nothing_else_ends(lm: NgramLM, log_add: bool) -> None:
    em = log_softmax(np.array([[0, 0, 9, 0], [9, 0, 0, 0], [0, 0, 9, 0]], dtype=float))  # "a a" -> "aa", not a word
    lexicon = Lexicon.from_words(["ab", "ba", "bab"])  # nor is "a": with a tight beam nothing else survives
    args = {"criterion": "ctc", "tokens": CTC_TOKENS, "lexicon": lexicon, "lm": lm, "beam_size": 16, "beam_threshold": 3.0, "log_add": log_add}
    fast, reference = beam_search(em, engine="fast", **args), beam_search(em, engine="python", **args)
    assert fast[0].words == reference[0].words
    assert fast[0].words and not set(fast[0].words) & set(lexicon.words)  # an out-of-lexicon ending, as the Python engine forces
    if not log_add:  # with log-add and this tight a beam the two keep different alignments of the labelling
        assert fast[0].score == pytest.approx(reference[0].score, abs=1e-4)


def test_auto_keeps_the_python_engine_for_what_the_fast_one_lacks(lm: NgramLM, fast_calls: list[int]) -> None:
    em = log_softmax(np.random.default_rng(3).normal(size=(8, 4)))
    common = {"criterion": "ctc", "tokens": CTC_TOKENS, "lexicon": LEXICON, "beam_size": 8}
    beam_search(em, lm=lm, hotwords=[Hotword("ab", 2.0)], **common)
    beam_search(em, lm=lm, allow_oov=True, **common)
    beam_search(em, lm=lm, silence_score=-1.0, **common)
    beam_search(em, lm=NgramLM.from_arpa_text(ARPA), **common)  # no file for KenLM to read
    beam_search(em, **common)  # no LM
    assert fast_calls == []
    beam_search(em, lm=lm, **common)
    assert fast_calls == [1]
    with pytest.raises(ValueError, match="hotwords"):
        beam_search(em, lm=lm, hotwords=[Hotword("ab", 2.0)], engine="fast", **common)
    with pytest.raises(ValueError, match="engine"):
        beam_search(em, lm=lm, engine="cuda", **common)  # type: ignore[arg-type]


def test_agrees_with_the_python_engine_on_sentences(tmp_path: Path) -> None:
    """Peaky emissions of real sentences, an LM built from text: with a beam wide enough for neither to lose the best, the two engines pick the same words."""
    from app.asr.lexicon import Lexicon
    from models.lm.build import build_lm
    from tests.helpers import SYNTHETIC_SENTENCES, synthetic_emissions

    text = tmp_path / "text.txt"
    text.write_text("\n".join(SYNTHETIC_SENTENCES * 3) + "\n", encoding="utf-8")
    build_lm(text=text, arpa=tmp_path / "lm.arpa", lexicon=tmp_path / "lexicon.txt")
    lm, lexicon = NgramLM.from_arpa(tmp_path / "lm.arpa"), Lexicon.from_file(tmp_path / "lexicon.txt")
    emissions = synthetic_emissions(list(SYNTHETIC_SENTENCES[:8]), seed=4, confusion=0.08)
    for e in emissions.emissions:
        args = {"criterion": "ctc", "tokens": emissions.tokens, "lm": lm, "lexicon": lexicon, "beam_size": 128, "lm_weight": 1.0, "word_score": 2.0}
        fast, reference = beam_search(e, engine="fast", **args), beam_search(e, engine="python", **args)
        assert fast[0].words == reference[0].words
        assert fast[0].score >= reference[0].score - 1e-4  # it also sums the paths of other separator placements
        fast, reference = beam_search(e, engine="fast", log_add=False, **args), beam_search(e, engine="python", log_add=False, **args)
        assert fast[0].words == reference[0].words
        assert fast[0].score == pytest.approx(reference[0].score, abs=1e-3)


def test_lexicon_free_routing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain lexicon-free CTC goes to flashlight-text's lexicon-free decoder; ASG and word scores stay in Python."""
    calls: list[str] = []
    free = fastbeam.search_free
    monkeypatch.setattr(fastbeam, "search_free", lambda *a, **k: calls.append("free") or free(*a, **k))
    rng = np.random.default_rng(11)
    em = log_softmax(rng.normal(size=(8, 4)) * 2)
    reference = beam_search(em, criterion="ctc", tokens=CTC_TOKENS, nbest=4, engine="python", **WIDE)
    flashlight = beam_search(em, criterion="ctc", tokens=CTC_TOKENS, nbest=4, **WIDE)
    assert calls == ["free"]
    assert [h.words for h in flashlight] == [h.words for h in reference]
    for ours, theirs in zip(flashlight, reference, strict=True):
        # A leading separator starts no new state there, so it also sums the paths with and without one
        assert ours.score >= theirs.score - 1e-5
        assert ours.score == pytest.approx(ours.acoustic_score)
    beam_search(em, criterion="ctc", tokens=CTC_TOKENS, word_score=1.0, beam_size=8)
    beam_search(rng.normal(size=(8, 4)), criterion="asg", tokens=ASG_TOKENS, transitions=rng.normal(size=(4, 4)), beam_size=8)
    assert calls == ["free"]
    with pytest.raises(ValueError, match="CTC only"):
        beam_search(rng.normal(size=(8, 4)), criterion="asg", tokens=ASG_TOKENS, transitions=rng.normal(size=(4, 4)), engine="fast")
