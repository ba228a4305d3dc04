"""What the training recipes share: the wall-clock learning-rate schedule, checkpoints written whole,
the optimizer, quiet Hugging Face logging. (Audio in memory: `models.train.data`; manifests: `models.train.manifest`.)"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

STATE_FILE = "trainer_state.pt"


def resolve_device(name: str) -> torch.device:
    """A recipe's `--device`: `auto` -> CUDA when PyTorch sees a GPU, else the CPU; `cuda`
    without one is an error that says so (rather than a failure at the first tensor moved)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device {name!r}: choose auto, cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda': PyTorch sees no GPU here; use --device cpu (or auto)")
    return torch.device(name)


def schedule_progress(*, step: int, elapsed: float, minutes: float, max_steps: int) -> float:
    """Share of the run done, in [0, 1]: by the clock, or by steps when that ends first."""
    progress = elapsed / max(minutes * 60.0, 1e-9)
    if max_steps > 0:
        progress = max(progress, step / max_steps)
    return min(progress, 1.0)


def learning_rate(*, step: int, progress: float, lr: float, warmup: int, final_lr_ratio: float) -> float:
    """Linear warm-up over `warmup` steps, times a cosine from 1 to `final_lr_ratio` over the run."""
    floor = final_lr_ratio
    cosine = floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return lr * min(1.0, (step + 1) / max(warmup, 1)) * cosine


def run_finished(*, step: int, elapsed: float, minutes: float, max_steps: int) -> bool:
    return elapsed >= minutes * 60.0 or (max_steps > 0 and step >= max_steps)


def save_directory(directory: Path, write: Callable[[Path], None]) -> None:
    """Write a checkpoint directory through `write(tmp)` and swap it in, so a crash never leaves half of one."""
    tmp = directory.with_name(directory.name + ".tmp")
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        directory.replace(old)
    tmp.replace(directory)
    shutil.rmtree(old, ignore_errors=True)


def adamw(model: torch.nn.Module, *, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on norms and biases)."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for _, p in trainable if p.dim() >= 2]
    no_decay = [p for _, p in trainable if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.98), eps=1e-6)  # fmt: skip


def quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
