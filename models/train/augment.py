"""On-the-fly waveform augmentation for acoustic-model training.

The synthetic corpus has few distinct speakers and studio-clean audio, so the model
overfits to the voices and to silence-level noise floors. These effects widen the
acoustic space cheaply: they run per sample inside data-loader workers, so everything
here is numpy (FFT convolution, FFT filtering) plus soxr for resampling; nothing needs
scipy or torch.

Vocal-tract / pitch perturbation: the textbook route (resample by a factor, then
time-stretch back with WSOLA or a phase vocoder) is too slow for on-the-fly use. Instead
:func:`warp_spectrum` (from ``app.asr.vtln``, which the server also uses to normalise a
speaker at inference) warps the frequency axis of a short-time Fourier transform by a
factor; duration is unchanged, formants and harmonics move together.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import soxr

from app.asr.vtln import warp_spectrum

SAMPLE_RATE = 16000
NOISE_KINDS = ("white", "pink", "brown", "babble")


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges for each effect.

    ``p_clean`` is drawn first so that a known share of samples stays untouched whatever
    the per-effect probabilities are; the remaining samples get each effect independently.
    """

    sample_rate: int = SAMPLE_RATE
    p_clean: float = 0.3
    p_speed: float = 0.4
    speed_range: tuple[float, float] = (0.9, 1.1)
    p_warp: float = 0.3
    warp_range: tuple[float, float] = (0.88, 1.12)
    p_reverb: float = 0.25
    rt60_range: tuple[float, float] = (0.1, 0.8)
    drr_db_range: tuple[float, float] = (-3.0, 12.0)
    p_noise: float = 0.4
    snr_db_range: tuple[float, float] = (5.0, 30.0)
    noise_weights: tuple[float, float, float, float] = (0.3, 0.3, 0.15, 0.25)  # white, pink, brown, babble
    babble_talkers: tuple[int, int] = (2, 5)
    p_telephone: float = 0.1
    p_mulaw: float = 0.5
    p_gain: float = 0.5
    gain_db_range: tuple[float, float] = (-20.0, 6.0)
    peak_limit: float = 0.99
    babble_pool_size: int = 64


def _power(wave: np.ndarray) -> float:
    return float(np.mean(np.square(wave, dtype=np.float64))) if wave.size else 0.0


def speed_perturb(wave: np.ndarray, factor: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Play ``factor`` times faster (shorter, higher): treat the clip as if recorded at
    ``sample_rate * factor`` and resample it back, exactly like Kaldi's speed perturbation."""
    if abs(factor - 1.0) < 1e-6 or wave.size == 0:
        return wave
    out = soxr.resample(wave, sample_rate * factor, sample_rate, quality="MQ")
    return np.asarray(out, dtype=np.float32)


def coloured_noise(n: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """White, pink (1/f power) or brown (1/f^2 power) noise with unit power, shaped in the
    frequency domain so it costs one FFT pair rather than an IIR filter loop."""
    white = rng.standard_normal(n).astype(np.float32)
    if kind == "white" or n < 4:
        noise = white
    else:
        spec = np.fft.rfft(white)
        freqs = np.arange(len(spec), dtype=np.float64)
        freqs[0] = freqs[1]
        exponent = {"pink": 0.5, "brown": 1.0}[kind]
        noise = np.fft.irfft(spec / freqs**exponent, n=n).astype(np.float32)
    return noise / np.sqrt(max(_power(noise), 1e-12))


def babble_noise(n: int, pool: Sequence[np.ndarray], talkers: int, rng: np.random.Generator) -> np.ndarray:
    """Sum of random stretches of other clips: speech-shaped, non-stationary interference
    that coloured noise cannot imitate. Clips shorter than ``n`` are tiled."""
    out = np.zeros(n, dtype=np.float32)
    for _ in range(talkers):
        clip = pool[int(rng.integers(len(pool)))]
        if clip.size == 0:
            continue
        reps = int(np.ceil((n + clip.size) / clip.size))
        tiled = np.tile(clip, reps)
        start = int(rng.integers(clip.size))
        seg = tiled[start : start + n]
        out += seg / np.sqrt(max(_power(seg), 1e-12))
    return out / np.sqrt(max(_power(out), 1e-12))


def add_noise(wave: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Mix ``noise`` in at ``snr_db`` relative to the clip's mean power (silent clips are
    returned unchanged: an SNR is undefined for them)."""
    signal_power = _power(wave)
    if signal_power <= 0.0:
        return wave
    noise_power = max(_power(noise), 1e-12)
    gain = np.sqrt(signal_power / (noise_power * 10.0 ** (snr_db / 10.0)))
    return (wave + gain * noise[: wave.size]).astype(np.float32)


def room_impulse_response(
    rt60: float, drr_db: float, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """Exponentially decaying Gaussian tail (60 dB down after ``rt60``) behind a unit direct
    path; ``drr_db`` sets the direct-to-reverberant energy ratio. Crude next to image-source
    models but captures what matters for recognition: smearing over a given decay time."""
    length = max(int(rt60 * sample_rate), 16)
    t = np.arange(length) / sample_rate
    tail = rng.standard_normal(length) * np.exp(-6.908 * t / rt60)
    predelay = int(rng.integers(int(0.002 * sample_rate), int(0.01 * sample_rate)))
    tail[:predelay] = 0.0
    tail *= np.sqrt(1.0 / (np.sum(tail**2) * 10.0 ** (drr_db / 10.0) + 1e-12))
    tail[0] = 1.0
    return tail.astype(np.float32)


def fft_convolve(wave: np.ndarray, ir: np.ndarray) -> np.ndarray:
    """Linear convolution truncated to the input length, via one real FFT pair."""
    n = wave.size + ir.size - 1
    size = 1 << (n - 1).bit_length()
    out = np.fft.irfft(np.fft.rfft(wave, size) * np.fft.rfft(ir, size), size)[: wave.size]
    return out.astype(np.float32)


def reverberate(wave: np.ndarray, rt60: float, drr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Convolve with a simulated room and restore the input RMS, so reverb does not double as gain."""
    if wave.size == 0:
        return wave
    out = fft_convolve(wave, room_impulse_response(rt60, drr_db, rng))
    scale = np.sqrt(_power(wave) / max(_power(out), 1e-12))
    return (out * scale).astype(np.float32)


def _mulaw(wave: np.ndarray, mu: float = 255.0) -> np.ndarray:
    """G.711-like 8-bit companding: quantisation noise that scales with the signal level."""
    peak = max(float(np.max(np.abs(wave))), 1e-8)
    x = np.clip(wave / peak, -1.0, 1.0)
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    y = np.round(y * 127.0) / 127.0
    return (np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu * peak).astype(np.float32)


def telephone(wave: np.ndarray, mulaw: bool = False, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Narrow-band channel: down to 8 kHz, 300-3400 Hz band-pass, optional mu-law, back up.
    Companding happens at 8 kHz so its noise stays below 4 kHz as on a real line."""
    if wave.size == 0:
        return wave
    narrow = np.asarray(soxr.resample(wave, sample_rate, 8000, quality="MQ"), dtype=np.float32)
    spec = np.fft.rfft(narrow)
    freqs = np.fft.rfftfreq(narrow.size, 1.0 / 8000)
    # Raised-cosine edges (100 Hz wide) rather than a brick wall, to limit ringing.
    low = np.clip((freqs - 250.0) / 100.0, 0.0, 1.0)
    high = np.clip((3450.0 - freqs) / 100.0, 0.0, 1.0)
    mask = (0.5 - 0.5 * np.cos(np.pi * low)) * (0.5 - 0.5 * np.cos(np.pi * high))
    narrow = np.fft.irfft(spec * mask, n=narrow.size).astype(np.float32)
    if mulaw:
        narrow = _mulaw(narrow)
    out = np.asarray(soxr.resample(narrow, 8000, sample_rate, quality="MQ"), dtype=np.float32)
    if out.size >= wave.size:
        return out[: wave.size]
    return np.pad(out, (0, wave.size - out.size))


def apply_gain(wave: np.ndarray, gain_db: float, peak_limit: float = 0.99) -> np.ndarray:
    """Scale by ``gain_db`` but never past ``peak_limit``: clipping would add distortion the
    recogniser never meets in practice, so loud clips are scaled down instead."""
    out = wave * np.float32(10.0 ** (gain_db / 20.0))
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    if peak > peak_limit:
        out = out * np.float32(peak_limit / peak)
    return out.astype(np.float32)


class Augmenter:
    """Random chain of effects; call once per training sample with the worker's generator.

    Babble needs other speech: the augmenter remembers up to ``babble_pool_size`` recent
    clean inputs (plus any passed as ``babble_pool``) and mixes stretches of them; until it
    has some, babble falls back to pink noise.
    """

    def __init__(self, config: AugmentConfig | None = None, babble_pool: Sequence[np.ndarray] = ()) -> None:
        self.config = config or AugmentConfig()
        self._pool: deque[np.ndarray] = deque(
            (np.asarray(c, dtype=np.float32) for c in babble_pool), maxlen=max(self.config.babble_pool_size, 1)
        )

    def remember(self, wave: np.ndarray) -> None:
        """Add a clip to the babble pool (a copy, so callers may reuse their buffer)."""
        if wave.size:
            self._pool.append(np.array(wave, dtype=np.float32))

    def _noise(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        cfg = self.config
        weights = np.asarray(cfg.noise_weights, dtype=np.float64)
        kind = NOISE_KINDS[int(rng.choice(len(NOISE_KINDS), p=weights / weights.sum()))]
        if kind == "babble" and len(self._pool) == 0:
            kind = "pink"
        if kind == "babble":
            talkers = int(rng.integers(cfg.babble_talkers[0], cfg.babble_talkers[1] + 1))
            noise = babble_noise(wave.size, list(self._pool), talkers, rng)
        else:
            noise = coloured_noise(wave.size, kind, rng)
        return add_noise(wave, noise, float(rng.uniform(*cfg.snr_db_range)))

    def __call__(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        cfg = self.config
        x = np.asarray(wave, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"expected a mono 1-D waveform, got shape {x.shape}")
        clean = x
        if rng.random() < cfg.p_clean:
            out = x
        else:
            if rng.random() < cfg.p_speed:
                x = speed_perturb(x, float(rng.uniform(*cfg.speed_range)), cfg.sample_rate)
            if rng.random() < cfg.p_warp:
                x = warp_spectrum(x, float(rng.uniform(*cfg.warp_range)))
            if rng.random() < cfg.p_reverb:
                x = reverberate(x, float(rng.uniform(*cfg.rt60_range)), float(rng.uniform(*cfg.drr_db_range)), rng)
            if rng.random() < cfg.p_noise:
                x = self._noise(x, rng)
            if rng.random() < cfg.p_telephone:
                x = telephone(x, mulaw=bool(rng.random() < cfg.p_mulaw), sample_rate=cfg.sample_rate)
            if rng.random() < cfg.p_gain:
                x = apply_gain(x, float(rng.uniform(*cfg.gain_db_range)), cfg.peak_limit)
            out = x
        self.remember(clean)
        peak = float(np.max(np.abs(out))) if out.size else 0.0
        if peak > 1.0:
            out = out / np.float32(peak / cfg.peak_limit)
        return np.asarray(out, dtype=np.float32)
