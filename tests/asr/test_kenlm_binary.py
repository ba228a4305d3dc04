"""KenLM binary LMs (probing and trie, made by KenLM's build_binary from the ARPA model of
test_beam.py): the same scores as the ARPA file read by NgramLM, the same beam search results on
both engines, and a bundle that references one."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from app.asr.bundle import load_bundles
from app.asr.decoders import beam_search, flashlight
from app.asr.kenlm_binary import KenLMBinary, is_kenlm_binary, load_lm
from app.asr.manifest import Manifest
from app.asr.ngram import NgramLM
from app.asr.options import DecodeOptions
from app.asr.recognizer import Recognizer
from tests.asr.test_beam import ARPA, ASG_TOKENS, CTC_TOKENS, LEXICON, WIDE, log_softmax

DATA = Path(__file__).parent / "data"
BINARIES = [DATA / "tiny-probing.klm", DATA / "tiny-trie.klm"]


@pytest.fixture(scope="module")
def arpa_lm() -> NgramLM:
    return NgramLM.from_arpa_text(ARPA)


@pytest.mark.parametrize("path", BINARIES, ids=lambda p: p.stem)
def test_scores_equal_the_arpa_model(path: Path, arpa_lm: NgramLM) -> None:
    assert is_kenlm_binary(path)
    lm = KenLMBinary(path, LEXICON.words)
    words = [*LEXICON.words, "zebra"]  # zebra: outside the list, <unk>
    for n in range(4):
        for sentence in itertools.product(words, repeat=n):
            assert lm.score_sentence(sentence) == pytest.approx(arpa_lm.score_sentence(sentence), abs=1e-5)
    for word in LEXICON.words:
        assert lm.unigram_logprob(lm.word_id(word)) == pytest.approx(arpa_lm.unigram_logprob(arpa_lm.word_id(word)), abs=1e-5)
    assert "ab" in lm and "zebra" not in lm


@pytest.mark.parametrize("engine", ["python", "fast"])
@pytest.mark.parametrize("criterion", ["ctc", "asg"])
def test_beam_search_with_a_binary_lm_matches_the_arpa_lm(tmp_path: Path, engine: str, criterion: str) -> None:
    arpa = tmp_path / "lm.arpa"
    arpa.write_text(ARPA, encoding="utf-8")
    rng = np.random.default_rng(5)
    for _ in range(3):
        if criterion == "ctc":
            em, trans, tokens = log_softmax(rng.normal(size=(7, 4)) * 2), None, CTC_TOKENS
        else:
            em, trans, tokens = rng.normal(size=(7, 4)) * 2, rng.normal(size=(4, 4)), ASG_TOKENS
        args = {"criterion": criterion, "tokens": tokens, "transitions": trans, "lexicon": LEXICON, "lm_weight": 0.8, "word_score": 0.5,
                "log_add": False, "nbest": 3, "engine": engine, **WIDE}
        with_arpa = beam_search(em, lm=NgramLM.from_arpa(arpa), **args)
        with_binary = beam_search(em, lm=load_lm(BINARIES[0], words=LEXICON.words), **args)
        assert [h.words for h in with_binary] == [h.words for h in with_arpa]
        for b, a in zip(with_binary, with_arpa, strict=True):
            assert b.score == pytest.approx(a.score, abs=1e-4)
            assert b.lm_score == pytest.approx(a.lm_score, abs=1e-5)


def test_the_fast_engine_searches_with_the_binary_lms_own_model() -> None:
    """One KenLM model in memory, not two: the engine built for a binary LM reuses it (an ARPA file still loads in KenLM)."""
    if not flashlight.AVAILABLE:
        pytest.skip("flashlight-text is a dependency; this guards a broken install")
    lm = load_lm(BINARIES[0], words=LEXICON.words)
    assert isinstance(lm, KenLMBinary)
    assert flashlight.engine_for(CTC_TOKENS, LEXICON, lm).kenlm is lm.model


def test_a_binary_lm_needs_words() -> None:
    with pytest.raises(ValueError, match="lexicon"):
        load_lm(BINARIES[0])
    assert isinstance(load_lm(BINARIES[0], words=["ab"]), KenLMBinary)


def test_a_bundle_referencing_a_binary_lm(models_dir: Path, tmp_path: Path) -> None:
    """The tiny CTC bundle with its LM swapped for a KenLM binary and a lexicon of that model's words."""
    source = next(d for d in sorted(models_dir.iterdir()) if (d / "manifest.json").is_file() and Manifest.load(d).decoding.lm
                  and Manifest.load(d).criterion == "ctc")  # fmt: skip
    bundle_dir = tmp_path / "bundles" / source.name
    shutil.copytree(source, bundle_dir)
    shutil.copy(BINARIES[1], bundle_dir / "lm.klm")
    (bundle_dir / "lexicon.txt").write_text("".join(f"{w}\t{' '.join(w)} |\n" for w in LEXICON.words), encoding="utf-8")
    data = json.loads((bundle_dir / "manifest.json").read_text())
    data["decoding"]["lm"] = "lm.klm"
    for name in list(data.get("side_files", {})):
        if name.endswith((".arpa", ".arpa.gz", "lexicon.txt")):
            del data["side_files"][name]
    (bundle_dir / "manifest.json").write_text(json.dumps(data))
    bundles = load_bundles(bundle_dir.parent, threads=1)
    assert not bundles.failures, bundles.failures
    recognizer = Recognizer(bundles, threads=1)
    recognizer.warm_up()
    lm = recognizer._resource(recognizer.bundle(None), "lm")
    assert isinstance(lm, KenLMBinary)
    rng = np.random.default_rng(0)
    for allow_oov in (False, True):  # the fast engine, then the Python one
        options = DecodeOptions(decoder="beam", nbest=2, allow_oov=allow_oov)
        transcript = recognizer.transcribe(rng.normal(size=16000).astype(np.float32) * 0.1, model=None, options=options)
        for entry in transcript.nbest:
            assert entry.lm_score == pytest.approx(lm.score_sentence(entry.text.split()), abs=1e-4)
