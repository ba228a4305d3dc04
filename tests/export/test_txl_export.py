"""Transformer-XL export: the bundle loads, the graph matches PyTorch at every shape, int8 is close."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import export.txl as txl_export
from app.asr.manifest import Manifest
from app.asr.rescoring import TransformerXLScorer
from app.asr.tokens import encode_sentences, lm_letters
from export.onnx_utils import ParityError, cpu_session
from export.txl import export_transformer_xl
from models.train.txl import save_checkpoint
from models.transformer_xl import TransformerXL

torch.set_num_threads(1)

SENTENCES = ["the cat sat on the mat", "hello world", "it's", "", "a b c d e f g h i j k l m n o p"]
MEM_LEN = 12


def tiny_model() -> TransformerXL:
    torch.manual_seed(0)
    model = TransformerXL(
        vocab_size=len(lm_letters()),
        d_model=32,
        n_head=2,
        d_head=16,
        d_inner=64,
        n_layer=2,
        mem_len=MEM_LEN,
        dropout=0.1,
    )
    with torch.no_grad():  # sharper than the 0.02 init, so scores differ between sentences
        model.embedding.weight.normal_(std=0.3)
    return model.eval()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[TransformerXL, Path, Manifest]:
    root = tmp_path_factory.mktemp("txl")
    model = tiny_model()
    save_checkpoint(root / "last.pt", model, step=7)
    manifest = export_transformer_xl(root / "last.pt", root / "txl-tiny", int8=True)
    return model, root / "txl-tiny", manifest


def torch_logprob(model: TransformerXL, text: str) -> float:
    ids = torch.tensor(encode_sentences(lm_letters(), [text]))[None]
    with torch.no_grad():
        logits, _ = model(ids[:, :-1])
    return float(logits.log_softmax(-1)[0].gather(1, ids[0, 1:, None]).sum())


def test_manifest_describes_the_bundle(bundle: tuple[TransformerXL, Path, Manifest]) -> None:
    _, directory, written = bundle
    manifest = Manifest.load(directory)  # checks every sha256
    assert manifest == written
    assert (manifest.kind, manifest.architecture, manifest.name) == ("lm", "transformer_xl", "txl-tiny")
    assert manifest.tokens == lm_letters()
    assert set(manifest.files) == {"fp32", "int8"}
    assert manifest.extra["n_layer"] == 2 and manifest.extra["d_model"] == 32 and manifest.extra["mem_len"] == MEM_LEN
    assert manifest.extra["vocab_size"] == len(lm_letters()) and manifest.extra["eos_id"] == 0
    assert manifest.source["step"] == 7
    parity = manifest.parity["fp32"]
    assert parity["max_relative_error"] < 1e-4
    assert any(case["memory"] == 0 for case in parity["cases"]) and any(case["batch"] > 1 for case in parity["cases"])
    assert manifest.parity["int8"]["top1_agreement"] > 0.9


def test_onnx_scores_equal_pytorch(bundle: tuple[TransformerXL, Path, Manifest]) -> None:
    model, directory, manifest = bundle
    scorer = TransformerXLScorer.from_bundle(directory, manifest)
    result = scorer.score(SENTENCES)
    expected = np.array([torch_logprob(model, s) for s in SENTENCES])
    np.testing.assert_allclose(result.logprobs, expected, rtol=1e-5, atol=1e-4)
    assert len(set(np.round(result.logprobs, 3))) == len(SENTENCES)


@pytest.mark.parametrize(
    ("batch", "time", "memory"), [(1, 1, 0), (3, 4, 0), (2, 5, 3), (2, 3, MEM_LEN), (1, MEM_LEN + 4, 2)]
)
def test_graph_outputs_and_memory_lengths(
    bundle: tuple[TransformerXL, Path, Manifest], batch: int, time: int, memory: int
) -> None:
    model, directory, manifest = bundle
    session = cpu_session(directory / manifest.files["fp32"].path)
    rng = np.random.default_rng(batch * 100 + time * 10 + memory)
    tokens = rng.integers(0, len(lm_letters()), size=(batch, time), dtype=np.int64)
    mems = rng.standard_normal((2, batch, memory, 32)).astype(np.float32)
    logits, mems_out, hiddens = session.run(None, {"tokens": tokens, "mems_in": mems})
    assert logits.shape == (batch, time, len(lm_letters()))
    assert mems_out.shape == (2, batch, min(memory + time, MEM_LEN), 32)
    assert hiddens.shape == (2, batch, time, 32)
    with torch.no_grad():
        expected_logits, expected_mems = model(torch.from_numpy(tokens), list(torch.from_numpy(mems).unbind(0)))
    np.testing.assert_allclose(logits, expected_logits.numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(mems_out, torch.stack(expected_mems).numpy(), atol=1e-4, rtol=1e-4)


def test_int8_scores_are_close(bundle: tuple[TransformerXL, Path, Manifest]) -> None:
    _, directory, manifest = bundle
    fp32 = TransformerXLScorer.from_bundle(directory, manifest).score(SENTENCES).logprobs
    int8 = TransformerXLScorer.from_bundle(directory, manifest, precision="int8").score(SENTENCES).logprobs
    lengths = np.array([len(s) + 1 for s in SENTENCES])
    assert np.all(np.abs(fp32 - int8) / lengths < 0.05)  # nats per character
    assert np.all(np.isfinite(int8)) and not math.isclose(float(fp32[0]), 0.0)


def test_parity_failure_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_checkpoint(tmp_path / "last.pt", tiny_model())
    monkeypatch.setattr(txl_export, "PARITY_TOLERANCE", -1.0)  # no graph can pass
    with pytest.raises(ParityError):
        export_transformer_xl(tmp_path / "last.pt", tmp_path / "bundle")
    assert not (tmp_path / "bundle" / "manifest.json").exists()
