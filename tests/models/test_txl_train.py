"""The Transformer-XL recipe learns a small generated text, logs, checkpoints and resumes."""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

from app.asr.tokens import lm_letters
from models.train.txl import StreamBatches, TrainConfig, learning_rate, train
from models.transformer_xl import TransformerXLConfig, load_transformer_xl

torch.set_num_threads(1)

WORDS = "the cat dog sat ran on under a mat big small red hat".split()


def write_text(path: Path, sentences: int, seed: int) -> Path:
    rng = random.Random(seed)
    lines = []
    for _ in range(sentences):
        subject, verb, place = rng.choice(["cat", "dog"]), rng.choice(["sat", "ran"]), rng.choice(["mat", "hat"])
        lines.append(f"the {rng.choice(['big', 'small', 'red'])} {subject} {verb} on the {place}")
    path.write_text("\n".join(lines) + "\n")
    return path


def read_log(path: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_loss_goes_down_and_resume_continues(tmp_path: Path) -> None:
    text, heldout = write_text(tmp_path / "train.txt", 400, 0), write_text(tmp_path / "heldout.txt", 20, 1)
    model_config = TransformerXLConfig(
        vocab_size=len(lm_letters()), d_model=32, n_head=2, d_head=16, d_inner=64, n_layer=2, mem_len=16, dropout=0.0
    )
    config = TrainConfig(
        steps=30, batch_size=8, tgt_len=16, lr=3e-3, warmup=3, log_every=1, eval_every=1000, checkpoint_every=10
    )
    out = tmp_path / "run"
    train(text, heldout, out, model_config=model_config, config=config, echo=lambda _: None)

    log = read_log(out / "log.jsonl")
    losses = [entry["loss"] for entry in log if "loss" in entry]
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.85 * sum(losses[:5]) / 5  # from ln(29) = 3.37 to about 2.4
    evals = [entry for entry in log if "heldout_bpc" in entry]
    assert evals and evals[-1]["heldout_bpc"] < 4.0 and evals[-1]["heldout_bpc_no_mems"] < 4.0

    checkpoint = torch.load(out / "last.pt", weights_only=True)
    assert checkpoint["step"] == 30 and checkpoint["config"]["d_model"] == 32
    assert len(checkpoint["mems"]) == 2 and checkpoint["mems"][0].shape == (8, 16, 32)
    assert load_transformer_xl(out / "last.pt").config == model_config

    longer = TrainConfig(**{**config.__dict__, "steps": 34})
    train(text, heldout, out, config=longer, resume=True, echo=lambda _: None)
    steps = [entry["step"] for entry in read_log(out / "log.jsonl") if "loss" in entry]
    assert steps[-4:] == [31, 32, 33, 34]
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 34


def test_stream_batches_continue_each_stream() -> None:
    data = torch.arange(50, dtype=torch.uint8)
    batches = StreamBatches(data, batch_size=2, tgt_len=4)
    first_inputs, first_targets = batches[0]
    second_inputs, _ = batches[1]
    assert first_inputs.tolist() == [[0, 1, 2, 3], [25, 26, 27, 28]]
    assert first_targets.tolist() == [[1, 2, 3, 4], [26, 27, 28, 29]]
    assert second_inputs[:, 0].tolist() == [4, 29]
    assert len(batches) == 6


def test_learning_rate_warms_up_then_decays() -> None:
    config = TrainConfig(steps=100, warmup=10, lr=1e-3, final_lr_ratio=0.1)
    rates = [learning_rate(step, config) for step in range(100)]
    assert rates[0] < rates[9] == config.lr
    assert all(a >= b for a, b in zip(rates[9:], rates[10:], strict=False))
    assert abs(learning_rate(100, config) - 1e-4) < 1e-12
