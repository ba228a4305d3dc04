"""The ARPA reader/scorer and the Kneser-Ney builder."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from app.asr.lexicon import Lexicon
from app.asr.ngram import LN10, MISSING_UNK_LOGPROB, ArpaError, NgramLM
from models.lm.build import BuildOptions, build_lm, kn_discounts, main

ARPA = """
\\data\\
ngram 1=6
ngram 2=4
ngram 3=2

\\1-grams:
-1.2\t<unk>
-99\t<s>\t-0.5
-0.8\t</s>
-0.6\tthe\t-0.3
-0.9\tcat\t-0.2
-1.0\tsat

\\2-grams:
-0.2\t<s> the\t-0.1
-0.4\tthe cat\t-0.15
-0.5\tcat sat
-0.3\tsat </s>

\\3-grams:
-0.05\t<s> the cat
-0.1\tthe cat sat

\\end\\
"""


@pytest.fixture(scope="module")
def lm() -> NgramLM:
    return NgramLM.from_arpa_text(ARPA)


def test_reads_and_backs_off(lm: NgramLM) -> None:
    assert lm.order == 3 and len(lm) == 6
    state = lm.begin_state()
    lp, state = lm.score_word(state, "the")
    assert lp == pytest.approx(-0.2 * LN10)
    lp, state = lm.score_word(state, "cat")
    assert lp == pytest.approx(-0.05 * LN10)
    lp, state = lm.score_word(state, "sat")
    assert lp == pytest.approx(-0.1 * LN10)
    # "cat sat" is not a context (no backoff, no extension): the state is cut to "sat"
    assert state == (lm.word_id("sat"),)
    # backoff: p(the | sat) = bo(sat) [absent -> 0] + p(the)
    assert lm.score_word(state, "the").logprob == pytest.approx(-0.6 * LN10)
    # p(sat | <s> the) = bo(<s> the) + bo(the) ... -> bo(<s> the) + p(sat | the) = bo(<s> the) + bo(the) + p(sat)
    assert lm.logprob(["<s>", "the"], "sat") == pytest.approx((-0.1 - 0.3 - 1.0) * LN10)
    assert lm.end_score((lm.word_id("sat"),)) == pytest.approx(-0.3 * LN10)
    assert lm.word_id("dog") == lm.word_id("<unk>")


@pytest.mark.parametrize("seed", range(5))
def test_state_path_matches_recursive_path(lm: NgramLM, seed: int) -> None:
    rng = np.random.default_rng(seed)
    words = [str(w) for w in rng.choice(["the", "cat", "sat", "dog", "the"], size=int(rng.integers(0, 7)))]
    state, total = lm.begin_state(), 0.0
    for w in words:
        lp, state = lm.score_word(state, w)
        total += lp
    total += lm.end_score(state)
    assert total == pytest.approx(lm.score_sentence(words))


def test_missing_unk_and_bad_files(tmp_path: Path) -> None:
    no_unk = NgramLM.from_arpa_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1\t</s>\n-1\ta\n\n\\end\\\n")
    assert no_unk.score_word((), "zzz").logprob == MISSING_UNK_LOGPROB
    with pytest.raises(ArpaError, match="header says"):
        NgramLM.from_arpa_text("\\data\\\nngram 1=3\n\n\\1-grams:\n-1\t</s>\n-1\ta\n\n\\end\\\n")
    with pytest.raises(ArpaError, match="data"):
        NgramLM.from_arpa_text("nothing here")


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_kneser_ney_by_hand(tmp_path: Path) -> None:
    """Order 2 over "a b", "a b", "b a" with the fallback discounts (0.5, 1, 1.5).

    Unigram continuation counts a=b=</s>=2 (total 6): p(w) = (2-1)/6 + gamma/4 with
    gamma = 1*3/6, so p(a) = 7/24 and p(<unk>) = 1/8. After <s>: counts a:2, b:1 (total 3),
    gamma(<s>) = (0.5*1 + 1*1)/3 = 1/2, so p(a|<s>) = (2-1)/3 + 7/48 = 23/48.
    """
    arpa = tmp_path / "m.arpa"
    stats = build_lm(text=write(tmp_path / "c.txt", ["a b", "a b", "b a"]), arpa=arpa, options=BuildOptions(order=2))
    assert stats.fallback_orders == (1, 2)
    lm = NgramLM.from_arpa(arpa)
    assert math.exp(lm.logprob([], "a")) == pytest.approx(7 / 24, rel=1e-5)
    assert math.exp(lm.logprob([], "<unk>")) == pytest.approx(1 / 8, rel=1e-5)
    assert math.exp(lm.logprob(["<s>"], "a")) == pytest.approx(23 / 48, rel=1e-5)
    assert math.exp(lm.logprob(["<s>"], "b")) == pytest.approx(15 / 48, rel=1e-5)
    assert math.exp(lm.logprob(["<s>"], "</s>")) == pytest.approx(7 / 48, rel=1e-5)


def test_discounts_formula() -> None:
    t1, t2, t3, t4 = 100, 40, 20, 12
    y = t1 / (t1 + 2 * t2)
    assert kn_discounts([t1, t2, t3, t4]) == pytest.approx(
        (1 - 2 * y * t2 / t1, 2 - 3 * y * t3 / t2, 3 - 4 * y * t4 / t3)
    )
    assert kn_discounts([0, 1, 1, 1]) is None


CORPUS = [
    "the cat sat on the mat",
    "the dog sat on the log",
    "a cat and a dog",
    "the cat ate the fish",
    "a dog ate a bone",
    "the mat is on the floor",
    "cats and dogs",
    "the cat sat",
    "the the the",
    "on the mat the cat sat on the dog",
]


@pytest.mark.parametrize(("order", "prune", "vocab_size"), [(3, (), None), (4, (1,), None), (4, (0, 0, 1, 1), 8)])
def test_every_context_sums_to_one(tmp_path: Path, order: int, prune: tuple[int, ...], vocab_size: int | None) -> None:
    arpa, lexicon = tmp_path / "m.arpa", tmp_path / "lex.txt"
    options = BuildOptions(order=order, prune=prune, vocab_size=vocab_size)
    stats = build_lm(text=write(tmp_path / "c.txt", CORPUS), arpa=arpa, lexicon=lexicon, options=options)
    lm = NgramLM.from_arpa(arpa)
    predicted = [w for w in lm.vocab if w != "<s>"]
    histories = {(), ("<s>",)}
    for line in CORPUS:
        words = ["<s>", *line.split()]
        for k in range(1, order):
            histories.update(tuple(words[i : i + k]) for i in range(len(words) - k + 1))
    histories.update(itertools.product(["the", "zebra"], ["cat", "on"]))
    for history in histories:
        total = sum(math.exp(lm.logprob(list(history), w)) for w in predicted)
        assert total == pytest.approx(1.0, abs=2e-5), history
    if vocab_size is not None:
        assert len(predicted) == vocab_size + 2  # + <unk> + </s>
        assert lm.logprob(["the"], "zebra") == lm.logprob(["the"], "<unk>")
    if prune:
        assert stats.ngram_counts[3] < build_lm(
            text=tmp_path / "c.txt", arpa=tmp_path / "full.arpa", options=BuildOptions(order=order)
        ).ngram_counts[3]
    lex = Lexicon.from_file(lexicon)
    assert lex.entries[0] == ("the", ("t", "h", "e"))
    assert lexicon.read_text().splitlines()[0] == "the\tt h e |"


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = write(tmp_path / "c.txt", CORPUS)
    code = main(["--text", str(text), "--order", "3", "--arpa", str(tmp_path / "o" / "lm.arpa"), "--lexicon", str(tmp_path / "o" / "lex.txt"), "--prune", "1"])
    assert code == 0
    assert "3-grams" in capsys.readouterr().out
    assert NgramLM.from_arpa(tmp_path / "o" / "lm.arpa").order == 3
    assert main(["--text", str(text), "--order", "9", "--arpa", str(tmp_path / "x.arpa")]) == 2
    with pytest.raises(ValueError, match="orders 1 and 2"):
        BuildOptions(order=3, prune=(1, 1, 1))
