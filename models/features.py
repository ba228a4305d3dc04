"""Feature front-ends computed inside the acoustic model, so export puts them in the ONNX graph.

The short-time Fourier transform is a strided `Conv1d` with a fixed windowed DFT basis
instead of `torch.stft`: it exports to plain ONNX `Conv`, runs fast on ONNX Runtime, and,
with no centring or padding, frame `t` depends exactly on samples `[t * hop, t * hop + n_fft)`,
which is what exact streaming needs. No per-utterance normalisation for the same reason:
a learned `BatchNorm` after the log compression (fixed at inference) does that job.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def mel_filterbank(*, n_freqs: int, n_mels: int, sample_rate: int, f_min: float = 20.0, f_max: float | None = None) -> Tensor:
    """HTK-style triangular mel filters `[n_freqs, n_mels]`."""
    f_max = f_max or sample_rate / 2

    def hz_to_mel(f: float) -> float:
        return 2595.0 * math.log10(1.0 + f / 700.0)

    mels = torch.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2, dtype=torch.float64)
    hz = 700.0 * (10 ** (mels / 2595.0) - 1.0)
    freqs = torch.linspace(0, sample_rate / 2, n_freqs, dtype=torch.float64)
    lower, center, upper = hz[:-2], hz[1:-1], hz[2:]
    up = (freqs[:, None] - lower[None, :]) / (center - lower)[None, :]
    down = (upper[None, :] - freqs[:, None]) / (upper - center)[None, :]
    return torch.clamp(torch.minimum(up, down), min=0.0).float()


class LogMel(nn.Module):
    """Waveform `[B, N]` -> log-mel features `[B, n_mels, F]`, F = (N - n_fft) // hop + 1."""

    def __init__(self, *, sample_rate: int = 16000, n_fft: int = 400, hop: int = 160, n_mels: int = 80) -> None:
        super().__init__()
        self.n_fft, self.hop, self.n_mels = n_fft, hop, n_mels
        n_freqs = n_fft // 2 + 1
        window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
        k = torch.arange(n_freqs, dtype=torch.float64)[:, None]
        n = torch.arange(n_fft, dtype=torch.float64)[None, :]
        angle = 2 * math.pi * k * n / n_fft
        basis = torch.cat([torch.cos(angle), -torch.sin(angle)]) * window  # [2 * n_freqs, n_fft]
        self.register_buffer("basis", basis.float()[:, None, :], persistent=False)
        self.register_buffer("mel", mel_filterbank(n_freqs=n_freqs, n_mels=n_mels, sample_rate=sample_rate).T.contiguous(), persistent=False)

    def forward(self, waveform: Tensor) -> Tensor:
        spec = nn.functional.conv1d(waveform[:, None, :], self.basis, stride=self.hop)  # [B, 2K, F]
        real, imag = spec.chunk(2, dim=1)
        power = real * real + imag * imag  # [B, K, F]
        mel = torch.matmul(self.mel, power)  # [B, n_mels, F]
        return torch.log(mel + 1e-6)


class SpecAugment(nn.Module):
    """Time and frequency masking on normalised `[B, C, F]` features (masked to 0, the mean), training only."""

    def __init__(self, *, freq_masks: int = 2, freq_width: int = 15, time_masks: int = 4, time_width: int = 20) -> None:
        super().__init__()
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.time_masks, self.time_width = time_masks, time_width

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        b, c, f = x.shape
        mask = torch.zeros(b, c, f, dtype=torch.bool, device=x.device)
        for _ in range(self.freq_masks):
            width = torch.randint(0, self.freq_width + 1, (b, 1, 1), device=x.device)
            start = (torch.rand(b, 1, 1, device=x.device) * (c - width)).long()
            idx = torch.arange(c, device=x.device)[None, :, None]
            mask |= (idx >= start) & (idx < start + width)
        time_width = min(self.time_width, max(1, f // 10))  # short clips (a spoken digit) keep most of their frames
        for _ in range(self.time_masks):
            width = torch.randint(0, time_width + 1, (b, 1, 1), device=x.device)
            start = (torch.rand(b, 1, 1, device=x.device) * (f - width).clamp(min=0)).long()
            idx = torch.arange(f, device=x.device)[None, None, :]
            mask |= (idx >= start) & (idx < start + width)
        return x.masked_fill(mask, 0.0)
