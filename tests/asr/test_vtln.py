"""Speaker normalisation by frequency warping: the warp itself, the confidence it is chosen by,
and the choice made the same way offline, through the batching engine and over HTTP."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.asr.batching import InferenceEngine
from app.asr.bundle import load_bundles
from app.asr.manifest import DecodingDefaults
from app.asr.options import DecodeOptions
from app.asr.recognizer import Recognizer
from app.asr.vtln import DEFAULT_WARPS, best_warp, confidence, warp_spectrum
from app.config import Settings
from tests.helpers import encode, speechlike

RATE = 16000


def peak_hz(wave: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.argmax(spectrum) * RATE / len(wave))


@pytest.mark.parametrize("alpha", [0.85, 1.15])
def test_warp_moves_a_tone_by_alpha_and_keeps_duration(alpha: float) -> None:
    t = np.arange(RATE) / RATE
    tone = (0.3 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
    warped = warp_spectrum(tone, alpha)
    assert len(warped) == len(tone)
    assert peak_hz(warped[2000:-2000]) == pytest.approx(1000.0 * alpha, abs=40.0)
    assert warp_spectrum(tone, 1.0) is tone  # 1.0 is the input itself


def test_confidence_prefers_peaky_frames_and_ignores_scale_offsets() -> None:
    rng = np.random.default_rng(0)
    flat = rng.normal(size=(50, 10))
    peaky = flat.copy()
    peaky[np.arange(50), rng.integers(0, 10, 50)] += 8.0
    assert confidence(peaky) > confidence(flat)
    assert confidence(peaky + rng.normal(size=(50, 1)) * 100) == pytest.approx(confidence(peaky))  # raw ASG scores: per-frame offsets
    assert confidence(np.zeros((0, 10))) == 0.0


def test_best_warp_takes_the_most_confident_emissions() -> None:
    """A fake model that is sure of itself only when the tone it hears sits at 850 Hz."""
    t = np.arange(RATE) / RATE
    tone = (0.3 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)

    def emissions_of(wave: np.ndarray) -> np.ndarray:
        sharp = 10.0 if abs(peak_hz(wave[2000:-2000]) - 850.0) < 40.0 else 1.0
        em = np.zeros((20, 5))
        em[:, 2] = sharp
        return em

    warp, emissions = best_warp(tone, (1.0, 0.85, 1.15), emissions_of)
    assert warp == 0.85 and emissions[0, 2] == 10.0
    warp, _ = best_warp(tone, (1.0, 1.15), emissions_of)  # a tie: the earlier warp
    assert warp == 1.0


def test_manifest_checks_warps() -> None:
    assert DecodingDefaults(vtln_warps=[0.85, 1]).vtln_warps == (0.85, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="vtln_warps"):
        DecodingDefaults(vtln_warps=(0.1,))


def test_offline_batched_and_http_choose_the_same_warp(settings: Settings) -> None:
    """vtln=true on a bundle without warps of its own tries DEFAULT_WARPS; the offline path and the
    batching engine pick the same warp and transcript; vtln=false leaves the audio alone."""
    bundles = load_bundles(settings.models_dir, threads=1)
    recognizer = Recognizer(bundles, threads=1)
    bundle = recognizer.bundle(None)
    assert not bundle.manifest.decoding.vtln_warps
    samples = speechlike(2.0, seed=3)
    on, off = DecodeOptions(vtln=True), DecodeOptions(vtln=False)
    offline = recognizer.transcribe(samples, model=None, options=on)
    assert offline.warp in DEFAULT_WARPS
    model = recognizer.acoustic_model(bundle, on)
    expected_warp, _ = best_warp(samples, DEFAULT_WARPS, model.emissions)
    assert offline.warp == expected_warp
    assert recognizer.transcribe(samples, model=None, options=off).warp is None
    assert recognizer.transcribe(samples, model=None, options=DecodeOptions()).warp is None  # the bundle lists none

    async def batched() -> object:
        with ThreadPoolExecutor(2) as pool:
            engine = InferenceEngine(recognizer, pool, max_batch=4, max_wait_ms=20)
            return await asyncio.gather(*(engine.transcribe(bundle, samples, on) for _ in range(3)))

    for transcript in asyncio.run(batched()):  # type: ignore[union-attr]
        assert transcript.warp == offline.warp and transcript.text == offline.text


def test_http_vtln_option(client: TestClient) -> None:
    wav = encode(speechlike(1.5, seed=4), RATE)
    normalised = client.post("/v1/transcribe", params={"vtln": "true"}, content=wav)
    assert normalised.status_code == 200 and normalised.json()["warp"] in DEFAULT_WARPS
    plain = client.post("/v1/transcribe", params={"vtln": "false"}, content=wav).json()
    assert "warp" not in plain or plain["warp"] is None
    bad = client.post("/v1/transcribe", params={"vtln": "sometimes"}, content=wav)
    assert bad.status_code == 422 and bad.json()["error"]["code"] in ("invalid_option", "invalid_request")
    assert client.get("/readyz").json()["status"] == "ready"
