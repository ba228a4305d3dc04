"""Augmentation must keep the training contract (mono float32 in [-1, 1], reproducible from
the seed) and each effect must do what its parameters say."""

from __future__ import annotations

import numpy as np
import pytest

from models.train.augment import (
    AugmentConfig,
    Augmenter,
    add_noise,
    coloured_noise,
    reverberate,
    speed_perturb,
    telephone,
    warp_spectrum,
)

SR = 16000


def speechlike(seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    """Harmonics up to 7 kHz with a syllable-rate envelope: energy across the whole band."""
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    wave = sum(np.sin(2 * np.pi * f0 * t + rng.uniform(0, 6.3)) / (k + 1) for k, f0 in enumerate(range(150, 7000, 150)))
    wave *= 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    return (0.3 * wave / np.max(np.abs(wave))).astype(np.float32)


def band_energy(wave: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(wave)) ** 2
    freqs = np.fft.rfftfreq(wave.size, 1 / SR)
    return float(spec[(freqs >= lo) & (freqs < hi)].sum())


@pytest.mark.parametrize("kind", ["white", "pink", "brown"])
@pytest.mark.parametrize("snr_db", [5.0, 10.0, 30.0])
def test_add_noise_hits_requested_snr(kind: str, snr_db: float) -> None:
    clean = speechlike()
    noisy = add_noise(clean, coloured_noise(clean.size, kind, np.random.default_rng(1)), snr_db)
    noise = noisy - clean
    measured = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise.astype(np.float64) ** 2))
    assert abs(measured - snr_db) < 0.1


def test_augmenter_output_contract_and_determinism() -> None:
    aug_a, aug_b = Augmenter(AugmentConfig()), Augmenter(AugmentConfig())
    rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
    for i in range(30):
        wave = speechlike(1.0, seed=i) * (3.0 if i % 5 == 0 else 1.0)  # some inputs exceed [-1, 1]
        out_a, out_b = aug_a(wave, rng_a), aug_b(wave, rng_b)
        assert out_a.dtype == np.float32 and out_a.ndim == 1
        assert np.all(np.abs(out_a) <= 1.0)
        assert 0.85 * wave.size <= out_a.size <= 1.15 * wave.size  # only speed changes the length
        np.testing.assert_array_equal(out_a, out_b)


def test_every_effect_on_keeps_contract() -> None:
    cfg = AugmentConfig(p_clean=0.0, p_speed=1.0, p_warp=1.0, p_reverb=1.0, p_noise=1.0, p_telephone=1.0, p_gain=1.0)
    aug = Augmenter(cfg, babble_pool=[speechlike(0.7, seed=9)])
    out = aug(speechlike(), np.random.default_rng(3))
    assert out.dtype == np.float32 and np.all(np.isfinite(out)) and np.all(np.abs(out) <= 1.0)


def test_clean_share_is_respected() -> None:
    aug = Augmenter(AugmentConfig(p_clean=0.3))
    rng = np.random.default_rng(0)
    wave = speechlike(0.5)
    unchanged = sum(np.array_equal(aug(wave, rng), wave) for _ in range(200))
    assert 40 <= unchanged <= 100  # >= 30% clean, plus those whose effect draws all missed


def test_telephone_removes_energy_above_4khz() -> None:
    clean = speechlike()
    for mulaw in (False, True):
        narrow = telephone(clean, mulaw=mulaw)
        assert narrow.shape == clean.shape
        ratio_high = band_energy(narrow, 4000, 8000) / band_energy(clean, 4000, 8000)
        assert ratio_high < 1e-3
        assert band_energy(narrow, 500, 3000) > 0.5 * band_energy(clean, 500, 3000)


def test_speed_changes_length() -> None:
    clean = speechlike(1.0)
    assert abs(speed_perturb(clean, 1.1).size - clean.size / 1.1) < 5
    assert abs(speed_perturb(clean, 0.9).size - clean.size / 0.9) < 5


def test_warp_keeps_length_and_moves_spectrum_up() -> None:
    t = np.arange(SR) / SR
    tone = (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    warped = warp_spectrum(tone, 1.1)
    assert warped.shape == tone.shape and warped.dtype == np.float32
    peak_hz = np.argmax(np.abs(np.fft.rfft(warped))) * SR / tone.size
    assert abs(peak_hz - 1100) < 40  # STFT bins are 31 Hz wide


def test_reverb_keeps_length_and_level() -> None:
    clean = speechlike()
    wet = reverberate(clean, rt60=0.6, drr_db=0.0, rng=np.random.default_rng(0))
    assert wet.shape == clean.shape
    assert abs(np.std(wet) / np.std(clean) - 1.0) < 1e-3
    assert not np.allclose(wet, clean)
