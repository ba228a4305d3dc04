"""A Transformer-XL read back from its exported bundle is the model that was exported, and the
recipe can go on training from it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from export.compact import compact_bundle
from export.txl import export_transformer_xl
from export.txl_recover import recover
from models.train.txl import TrainConfig, save_checkpoint, train
from models.transformer_xl import TransformerXL, load_transformer_xl
from tests.helpers import TINY_TEXT, save_txl_checkpoint

torch.set_num_threads(1)


def trained_like(path: Path) -> TransformerXL:
    """The tiny checkpoint with every parameter nonzero (fresh biases are zero, and would match anything)."""
    model = load_transformer_xl(save_txl_checkpoint(path))
    torch.manual_seed(3)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    save_checkpoint(path, model, step=7)
    return model


def test_recovers_the_exported_weights(tmp_path: Path) -> None:
    original = trained_like(tmp_path / "txl.pt")
    export_transformer_xl(tmp_path / "txl.pt", tmp_path / "bundle")
    rebuilt = recover(tmp_path / "bundle")
    assert rebuilt.config == replace(original.config, dropout=rebuilt.config.dropout)
    for (name, expected), (other, actual) in zip(original.state_dict().items(), rebuilt.state_dict().items(), strict=True):
        assert name == other and torch.equal(expected, actual), name


def test_recovers_fp16_stored_weights(tmp_path: Path) -> None:
    original = trained_like(tmp_path / "txl.pt")
    export_transformer_xl(tmp_path / "txl.pt", tmp_path / "bundle")
    compact_bundle(tmp_path / "bundle", ("fp32",))
    rebuilt = recover(tmp_path / "bundle")
    for name, expected in original.state_dict().items():
        actual = rebuilt.state_dict()[name]
        assert torch.allclose(expected, actual, rtol=1e-3, atol=1e-4), name
    assert any(not torch.equal(expected, rebuilt.state_dict()[name]) for name, expected in original.state_dict().items())


def test_training_starts_from_the_init_weights(tmp_path: Path) -> None:
    original = trained_like(tmp_path / "txl.pt")
    text = tmp_path / "text.txt"
    text.write_text("\n".join(TINY_TEXT * 4) + "\n")
    still = TrainConfig(steps=2, batch_size=2, tgt_len=8, lr=0.0, warmup=0, log_every=1, eval_every=1000, checkpoint_every=10)
    model = train(text, text, tmp_path / "run", config=still, init=tmp_path / "txl.pt", echo=lambda _: None)
    for name, expected in original.state_dict().items():
        assert torch.equal(expected, model.state_dict()[name]), name
