"""Tiny models built in-process and exported to bundles; synthetic audio in any format."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from app.asr.tokens import asg_letters, ctc_letters
from models.asg import ASGLoss
from models.wav2letter import Wav2Letter, Wav2LetterConfig


def save_wav2letter_checkpoint(path: Path, *, criterion: str = "asg", channels: int = 32, depth: int = 2, kernel: int = 5, seed: int = 0) -> Path:
    """A random small Wav2Letter saved exactly the way `models.train.acoustic` saves one."""
    torch.manual_seed(seed)
    table = asg_letters() if criterion == "asg" else ctc_letters()
    config = Wav2LetterConfig.small(len(table), channels=channels, kernel=kernel, depth=depth, hidden=64)
    model = Wav2Letter(config).eval()
    with torch.no_grad():  # give BatchNorm statistics that make the outputs vary with the input
        model.input_norm.running_mean.fill_(-6.0)
        model.input_norm.running_var.fill_(9.0)
        model.head.weight.mul_(5.0)
    transitions = None
    if criterion == "asg":
        loss = ASGLoss(len(table))
        with torch.no_grad():
            loss.transitions.normal_(0, 0.5)
        transitions = loss.transitions.detach().clone()
    torch.save({"architecture": "wav2letter", "criterion": criterion, "config": config.to_json(), "tokens": table.to_json(),
                "model": model.state_dict(), "transitions": transitions}, path)
    return path


def speechlike(seconds: float, rate: int = 16000, *, seed: int = 0, channels: int = 1) -> np.ndarray:
    """Harmonic bursts with pauses: varied enough that random models emit varied tokens."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase) * rng.uniform(0.2, 1.0) / k for k in range(1, 10))
    envelope = (np.sin(2 * np.pi * 2.1 * t) > -0.3).astype(np.float64) * (0.5 + 0.5 * np.sin(2 * np.pi * 5.3 * t) ** 2)
    wave = 0.3 * voiced * envelope + 0.01 * rng.standard_normal(n)
    wave = (wave / np.abs(wave).max() * 0.8).astype(np.float32)
    return np.stack([wave * (1 - 0.3 * c) for c in range(channels)], axis=1) if channels > 1 else wave


def encode(wave: np.ndarray, rate: int, *, format: str = "WAV", subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, wave, rate, format=format, subtype=subtype)
    return buffer.getvalue()
