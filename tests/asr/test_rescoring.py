"""Transformer-XL scorer: batch equals single, memory across sentences equals one pass, rescore formula."""

from __future__ import annotations

import dataclasses
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from app.asr.decoders import Hypothesis
from app.asr.manifest import Manifest, ManifestError
from app.asr.rescoring import TransformerXLScorer, rescore
from app.asr.tokens import encode_sentences, lm_letters
from export.txl import export_transformer_xl
from models.train.txl import TrainConfig, train
from models.transformer_xl import TransformerXL, TransformerXLConfig

torch.set_num_threads(1)
pytestmark = pytest.mark.integration  # a Transformer-XL trained for a few seconds (the `trained` fixture)

MEM_LEN = 32
TEXTS = ["the red cat sat on the mat", "a dog", "", "the small dog ran", "x"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[TransformerXL, TransformerXLScorer]:
    """A tiny LM trained for a few seconds on generated sentences, exported and loaded."""
    root = tmp_path_factory.mktemp("rescoring")
    rng = random.Random(0)
    lines = [
        f"the {rng.choice(['big', 'small', 'red'])} {rng.choice(['cat', 'dog'])} {rng.choice(['sat', 'ran'])} on the {rng.choice(['mat', 'hat'])}"
        for _ in range(400)
    ]
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    (root / "heldout.txt").write_text("\n".join(lines[:20]) + "\n")
    model_config = TransformerXLConfig(
        vocab_size=len(lm_letters()),
        d_model=32,
        n_head=2,
        d_head=16,
        d_inner=64,
        n_layer=2,
        mem_len=MEM_LEN,
        dropout=0.0,
    )
    config = TrainConfig(
        steps=40, batch_size=8, tgt_len=16, lr=3e-3, warmup=3, log_every=40, eval_every=1000, checkpoint_every=40
    )
    model = train(
        root / "train.txt",
        root / "heldout.txt",
        root / "run",
        model_config=model_config,
        config=config,
        echo=lambda _: None,
    )
    export_transformer_xl(root / "run" / "last.pt", root / "bundle")
    manifest = Manifest.load(root / "bundle")
    return model, TransformerXLScorer.from_bundle(root / "bundle", manifest)


def torch_position_logprobs(
    model: TransformerXL, ids: list[int], mems: list[torch.Tensor] | None = None
) -> tuple[np.ndarray, list[torch.Tensor]]:
    """log p(ids[k+1] | ids[..k]) for every k, and the memory after reading ids[:-1]."""
    tokens = torch.tensor(ids)[None]
    with torch.no_grad():
        logits, new_mems = model(tokens[:, :-1], mems)
    return logits.log_softmax(-1)[0].gather(1, tokens[0, 1:, None])[:, 0].double().numpy(), new_mems


def test_batched_scoring_equals_one_by_one(trained: tuple[TransformerXL, TransformerXLScorer]) -> None:
    _, scorer = trained
    previous = scorer.score(["the big cat ran on the hat"]).mems[0]
    for mems in (None, previous):
        batched = scorer.score(TEXTS, mems)
        for i, text in enumerate(TEXTS):
            single = scorer.score([text], mems)
            np.testing.assert_allclose(batched.logprobs[i], single.logprobs[0], rtol=1e-5, atol=1e-4)
            assert batched.lengths[i] == len(text) + 1
            np.testing.assert_allclose(batched.mems[i], single.mems[0], atol=1e-5)
            held = 0 if mems is None else mems.shape[2]
            assert batched.mems[i].shape == (2, 1, min(held + len(text) + 1, MEM_LEN), 32)


def test_shared_memory_broadcasts(trained: tuple[TransformerXL, TransformerXLScorer]) -> None:
    _, scorer = trained
    memory = scorer.score(["a cat"]).mems[0]  # [L, 1, M, d]
    tiled = np.repeat(memory, len(TEXTS), axis=1)  # [L, B, M, d]
    np.testing.assert_allclose(scorer.score(TEXTS, memory).logprobs, scorer.score(TEXTS, tiled).logprobs, atol=1e-6)


def test_sentences_with_carried_memory_equal_one_pass(trained: tuple[TransformerXL, TransformerXLScorer]) -> None:
    model, scorer = trained
    sentences = ["the red cat sat", "on the mat", "a dog ran"]  # 29 read positions in all: within MEM_LEN
    per_position, _ = torch_position_logprobs(model, encode_sentences(lm_letters(), sentences))
    mems = None
    start = 0
    for sentence in sentences:
        result = scorer.score([sentence], mems)
        end = start + len(sentence) + 1
        np.testing.assert_allclose(result.logprobs[0], per_position[start:end].sum(), rtol=1e-5, atol=1e-4)
        mems, start = result.mems[0], end
    assert scorer.score([sentences[-1]]).logprobs[0] != pytest.approx(
        result.logprobs[0], abs=1e-3
    )  # the context matters


def test_memory_longer_than_mem_len_follows_the_recurrence(trained: tuple[TransformerXL, TransformerXLScorer]) -> None:
    model, scorer = trained
    first, second = "the small red dog sat on the big hat and the cat ran", "on the mat"
    assert len(first) + 1 > MEM_LEN
    _, torch_mems = torch_position_logprobs(model, encode_sentences(lm_letters(), [first]))
    expected, _ = torch_position_logprobs(model, encode_sentences(lm_letters(), [second]), torch_mems)
    onnx_mems = scorer.score([first]).mems[0]
    assert onnx_mems.shape == (2, 1, MEM_LEN, 32)
    np.testing.assert_allclose(onnx_mems, torch.stack(torch_mems).numpy(), atol=1e-4)
    np.testing.assert_allclose(scorer.score([second], onnx_mems).logprobs[0], expected.sum(), rtol=1e-5, atol=1e-4)


def test_rescore_follows_the_formula(trained: tuple[TransformerXL, TransformerXLScorer]) -> None:
    _, scorer = trained
    hypotheses = [
        Hypothesis(text="tha cqt sxt on the mxt", acoustic_score=-10.0, score=-11.0),
        Hypothesis(text="the cat sat on the mat", acoustic_score=-12.0, score=-13.5),
        Hypothesis(text="the cat sat on the max", acoustic_score=-11.0, score=-11.0),
    ]
    lm = scorer.score([h.text for h in hypotheses]).logprobs
    assert lm[1] > max(lm[0], lm[2]) + 3  # the trained LM knows its sentences (and no "q" or "x")

    assert [r.text for r in rescore(hypotheses, scorer=scorer, alpha=0.0, beta=0.0)] == [
        h.text for h in (hypotheses[0], hypotheses[2], hypotheses[1])
    ]
    ranked = rescore(hypotheses, scorer=scorer, alpha=1.0, beta=0.5)
    totals = [
        h.acoustic_score + h.ngram_score + 1.0 * float(p) + 0.5 * len(h.text.split())
        for h, p in zip(hypotheses, lm, strict=True)
    ]
    assert [r.text for r in ranked] == [hypotheses[i].text for i in np.argsort(totals)[::-1]]
    assert ranked[0].text == "the cat sat on the mat"
    for r in ranked:
        h = r.hypothesis
        assert r.words == len(h.text.split())
        assert r.total == pytest.approx(h.acoustic_score + h.ngram_score + 1.0 * r.txl_logprob + 0.5 * r.words)
    assert [r.total for r in ranked] == sorted((r.total for r in ranked), reverse=True)
    # A large word bonus prefers the hypothesis with more words whatever the LM says.
    longer = [*hypotheses, Hypothesis(text="tha c t s t on the m t", acoustic_score=-30.0, score=-30.0)]
    assert rescore(longer, scorer=scorer, alpha=0.01, beta=100.0)[0].words == 9
    assert rescore([], scorer=scorer, alpha=1.0, beta=0.0) == []


def test_rescore_with_memory_uses_the_context(trained: tuple[TransformerXL, TransformerXLScorer]) -> None:
    _, scorer = trained
    memory = scorer.score(["the big dog sat on the hat"]).mems[0]
    ranked = rescore(
        [Hypothesis(text="the red cat"), Hypothesis(text="a dog")], scorer=scorer, alpha=1.0, beta=0.0, mems=memory
    )
    expected = scorer.score(["the red cat", "a dog"], memory).logprobs
    assert sorted(r.txl_logprob for r in ranked) == pytest.approx(sorted(expected.tolist()))
    assert ranked[0].mems.shape[2] == min(memory.shape[2] + len(ranked[0].text) + 1, MEM_LEN)


def test_empty_and_bad_inputs(trained: tuple[TransformerXL, TransformerXLScorer]) -> None:
    _, scorer = trained
    empty = scorer.score([])
    assert empty.logprobs.shape == (0,) and empty.mems == ()
    assert scorer.score([""]).lengths[0] == 1  # only the closing <eos> is predicted
    with pytest.raises(ValueError, match="not in the LM token table"):
        scorer.score(["hello 42"])
    with pytest.raises(ValueError, match="memory of shape"):
        scorer.score(["a", "b", "c"], np.zeros((2, 2, 4, 32), dtype=np.float32))
    np.testing.assert_allclose(scorer.score(["a"], scorer.empty_mems()).logprobs, scorer.score(["a"]).logprobs)


def test_from_bundle_refuses_other_bundles(tmp_path: Path, trained: tuple[TransformerXL, TransformerXLScorer]) -> None:
    manifest = Manifest(name="x", kind="lm", architecture="transformer_xl", tokens=lm_letters(), files={})
    with pytest.raises(ManifestError, match="no fp32 graph"):
        TransformerXLScorer.from_bundle(tmp_path, manifest)
    with pytest.raises(ManifestError, match="not a Transformer-XL"):
        TransformerXLScorer.from_bundle(tmp_path, dataclasses.replace(manifest, kind="acoustic"))


@pytest.mark.unit
def test_scorer_imports_no_torch() -> None:
    code = "import sys, app.asr.rescoring; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[2]).returncode == 0
