"""The punctuation recipe's pieces: recognition-error injection, mark calibration, the device option."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from app.asr.punctuation_text import CAPITAL, COMMA, LOWER, NO_MARK, PERIOD, QUESTION
from models.train.common import resolve_device
from models.train.punctuation import BatchConfig, Batcher, Labelled, TrainConfig, corrupt, load_source, prepare, train
from models.train.punctuation_device import batches
from models.train.punctuation_scores import calibrate, score, tune_mark_biases


def test_calibration_raises_f1_of_an_under_predicted_mark() -> None:
    rng = np.random.default_rng(0)
    marks = rng.choice(5, size=20_000, p=[0.85, 0.08, 0.05, 0.015, 0.005])
    logits = rng.normal(size=(20_000, 5))
    logits[np.arange(20_000), marks] += 2.0
    logits[:, QUESTION] -= 2.0  # the model is shy of question marks
    before = score(logits.argmax(-1), marks, np.zeros(1), np.zeros(1)).f1["?"]
    bias = tune_mark_biases(logits, marks)
    after = score((logits + bias).argmax(-1), marks, np.zeros(1), np.zeros(1)).f1["?"]
    assert bias[QUESTION] > 0 and after > before + 0.05


def test_corrupt_keeps_length_and_moves_marks_of_deleted_words() -> None:
    n = 40
    source = Labelled(np.arange(2, n + 2, dtype=np.int32), np.ones(n, np.int16), np.full(n, LOWER, np.int8), np.zeros(n, np.int8))
    source.marks[9::10] = PERIOD
    source.cases[10::10] = CAPITAL
    columns = [source.words, source.suffixes, source.cases, source.marks]
    clean = corrupt(columns, source, length=20, rate=0.0, rng=np.random.default_rng(0))
    assert clean.shape == (4, 20) and np.array_equal(clean[0], source.words[:20]) and np.array_equal(clean[3], source.marks[:20])
    noisy = corrupt(columns, source, length=20, rate=0.9, rng=np.random.default_rng(1))
    assert noisy.shape == (4, 20) and set(noisy[3].tolist()) <= {NO_MARK, COMMA, PERIOD}


# --- the device option: the CPU path as it was, checkpoints that load anywhere -----------------
@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.punctuation_helpers import write_corpus

    root = tmp_path_factory.mktemp("punct_device")
    write_corpus(root / "data" / "text")
    prepare(root / "data", root / "prepared", vocab_size=200, suffix_buckets=64, known_min_count=1)
    for column in ("words", "suffixes", "cases", "marks"):  # the corpus is too short for development lines: borrow some
        (root / "prepared" / f"dev.{column}.npy").write_bytes((root / "prepared" / f"common_voice.{column}.npy").read_bytes())
    return root / "prepared"


def tiny_train(prepared: Path, out: Path, **device: Any) -> dict[str, Any]:
    path = train(prepared, out, model_config={"encoder": "transformer", "d_model": 32, "d_embed": 16, "n_layer": 1, "n_head": 2, "d_inner": 64},
                 batch=BatchConfig(tokens=256, max_words=32), config=TrainConfig(minutes=0, steps=12, warmup=3, log_every=4, eval_minutes=1000, eval_words=200),
                 threads=1, **device)
    checkpoint: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    return checkpoint


def test_device_cpu_trains_as_before(prepared: Path, tmp_path: Path) -> None:
    """`--device cpu` (and the defaults) keep the in-process batches, fp32 and the same weights, run for run."""
    before = tiny_train(prepared, tmp_path / "a")
    after = tiny_train(prepared, tmp_path / "b", device="cpu", workers=0)
    assert before["model"].keys() == after["model"].keys()
    assert all(torch.equal(before["model"][k], after["model"][k]) for k in before["model"])
    assert (tmp_path / "a" / "log.jsonl").read_text().count('"loss"') == 3
    assert all(v.device.type == "cpu" and v.dtype == torch.float32 for v in after["model"].values() if v.is_floating_point())


def test_in_process_batches_are_the_batchers_own(prepared: Path) -> None:
    sources = {"gutenberg": load_source(prepared, "gutenberg")}
    config = BatchConfig(tokens=256, max_words=32)
    stream = batches(partial(Batcher, sources, {"gutenberg": 1.0}, config), seed=3, workers=0, device=torch.device("cpu"))
    reference = Batcher(sources, {"gutenberg": 1.0}, config, seed=3)
    for _ in range(3):
        assert all(np.array_equal(t.numpy(), a) for t, a in zip(next(stream), reference.batch(), strict=True))


def test_worker_batches_come_from_their_own_seeds(prepared: Path) -> None:
    sources = {"gutenberg": load_source(prepared, "gutenberg")}
    config = BatchConfig(tokens=256, max_words=32)
    stream = batches(partial(Batcher, sources, {"gutenberg": 1.0}, config), seed=3, workers=1, device=torch.device("cpu"))
    reference = Batcher(sources, {"gutenberg": 1.0}, config, seed=4)  # worker 0: seed + 1
    for _ in range(2):
        batch = next(stream)
        assert all(t.dtype == torch.int64 and t.shape == batch[0].shape for t in batch)
        assert all(np.array_equal(t.numpy(), a) for t, a in zip(batch, reference.batch(), strict=True))


def test_device_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu" and resolve_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="sees no GPU"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="auto, cpu or cuda"):
        resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda"


def test_moving_average_as_python_floats() -> None:
    """The loss average moved onto the device (float64, read when logged) gives the doubles the CPU recipe printed."""
    losses = torch.rand(50, dtype=torch.float32) * 4
    python, tensor = 0.0, torch.zeros((), dtype=torch.float64)
    for step, loss in enumerate(losses, 1):
        python = 0.98 * python + 0.02 * loss.item() if step > 1 else loss.item()
        tensor = 0.98 * tensor + 0.02 * loss.double() if step > 1 else loss.double()
        assert tensor.item() == python


def test_calibrate_from_a_trained_checkpoint(prepared: Path, tmp_path: Path) -> None:
    tiny_train(prepared, tmp_path / "run", device="auto")
    result = calibrate(tmp_path / "run" / "last.pt", prepared, max_words=500)
    assert set(result["offsets"]) == {"", ",", ".", "?", "!"}
    assert torch.load(tmp_path / "run" / "last.pt", map_location="cpu", weights_only=False)["mark_offsets"] == result["offsets"]
