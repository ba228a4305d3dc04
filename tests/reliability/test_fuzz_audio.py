"""Fuzzing `decode_audio`: whatever the bytes, the answer is audio or one of its domain errors.

Corrupted and truncated WAV/FLAC/OGG/MP3 (and every other libsndfile format) headers, huge
declared lengths and channel counts, tiny and huge sample rates, NaN/Inf samples, zero-length
audio and files that are not audio at all.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from app.asr.audio import MAX_SAMPLE_RATE, decode_audio
from app.asr.errors import AudioTooLong, EmptyAudio, InvalidAudio
from tests.reliability.fuzzing import audio_inputs, fuzz_settings, guarded

MAX_SECONDS = 30.0
DOMAIN_ERRORS = (InvalidAudio, EmptyAudio, AudioTooLong)


def check_decode(data: bytes) -> None:
    """The property: domain errors only, and decoded audio is finite float32 mono at the asked rate within the limit."""
    try:
        audio = decode_audio(data, sample_rate=16000, max_seconds=MAX_SECONDS)
    except DOMAIN_ERRORS as e:
        assert e.status in (400, 413, 415) and e.message
        return
    samples = audio.samples
    assert audio.sample_rate == 16000
    assert samples.dtype == np.float32 and samples.ndim == 1 and len(samples) > 0
    assert np.isfinite(samples).all()
    assert audio.duration <= MAX_SECONDS + 0.1


@fuzz_settings(ci_examples=300)
@given(audio_inputs())
def test_decode_audio_raises_only_domain_errors(data: bytes) -> None:
    guarded("audio", data, lambda: check_decode(data))


@fuzz_settings(ci_examples=60)
@given(data=audio_inputs(), rate=st.sampled_from([1000, 8000, 16000, 22050, 48000, MAX_SAMPLE_RATE]))
def test_decode_audio_at_any_model_rate(data: bytes, rate: int) -> None:
    def check() -> None:
        try:
            audio = decode_audio(data, sample_rate=rate, max_seconds=MAX_SECONDS)
        except DOMAIN_ERRORS:
            return
        assert audio.sample_rate == rate and np.isfinite(audio.samples).all()

    guarded("audio", data, check)
