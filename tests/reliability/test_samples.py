"""Huge finite float samples: every path clips them the same way, and no NaN emission reaches a decoder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.asr.audio import check_samples, decode_audio, pcm_to_float
from app.asr.errors import InvalidAudio
from tests.helpers import encode, speechlike

HUGE = 1e38


def loud(seconds: float = 1.5) -> np.ndarray:
    """Speech-like audio scaled so its peaks sit near float32's maximum."""
    wave = speechlike(seconds, seed=11)
    return (wave / np.abs(wave).max() * HUGE).astype(np.float32)


def test_check_samples_clips_finite_and_refuses_nan() -> None:
    out = check_samples(np.array([0.5, -HUGE, HUGE, 2.0, -0.25], np.float32))
    assert out.dtype == np.float32 and out.tolist() == [0.5, -1.0, 1.0, 1.0, -0.25]
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(InvalidAudio):
            check_samples(np.array([0.0, bad], np.float32))


def test_every_entry_clips_the_same_way() -> None:
    wave = loud()
    from_file = decode_audio(encode(wave, 16000, subtype="FLOAT"), sample_rate=16000, max_seconds=60).samples
    from_frames = pcm_to_float(wave.astype("<f4").tobytes(), "f32le")
    assert np.abs(from_file).max() <= 1.0 and np.array_equal(from_file, from_frames)


@pytest.mark.parametrize("decoder", ["greedy", "beam"])
def test_http_huge_float_wav_is_transcribed_as_clipped(client: TestClient, decoder: str) -> None:
    wave = loud()
    huge = client.post("/v1/transcribe", params={"decoder": decoder}, content=encode(wave, 16000, subtype="FLOAT"))
    clipped = client.post("/v1/transcribe", params={"decoder": decoder}, content=encode(np.clip(wave, -1, 1), 16000, subtype="FLOAT"))
    assert huge.status_code == 200, huge.text
    assert huge.json()["text"] == clipped.json()["text"]


@pytest.mark.parametrize("decoder", ["greedy", "beam"])
def test_stream_of_huge_f32le_frames_gets_finals(client: TestClient, decoder: str) -> None:
    """Before: `ValueError: emissions contain NaN` in the beam search, close 1011."""
    data = loud().astype("<f4").tobytes()
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"sample_rate": 16000, "encoding": "f32le", "decoder": decoder, "endpoint_silence": 10, "max_utterance": 60}))
        assert json.loads(ws.receive_text())["type"] == "ready"
        for start in range(0, len(data), 6400):
            ws.send_bytes(data[start : start + 6400])
        ws.send_text('{"type": "eof"}')
        messages = []
        while True:
            message = ws.receive()
            if message["type"] == "websocket.close":
                break
            messages.append(json.loads(message["text"]))
    assert message["code"] == 1000, messages
    assert not [m for m in messages if m["type"] == "error"] and messages[-1]["type"] == "eof"
    assert any(m["type"] == "final" for m in messages)


def test_nan_emissions_never_reach_a_decoder(client: TestClient) -> None:
    """A graph that emits NaN (here: one that passes its input through) is refused before any decoder runs."""
    from app.asr.runtime import AcousticModel

    model: AcousticModel = client.app.state.recognizer.bundle("tiny-asg").models["fp32"]  # type: ignore[attr-defined]

    class PassThrough:
        def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
            return [next(iter(feeds.values()))[:, :, None]]

    broken = AcousticModel.__new__(AcousticModel)
    broken.__dict__.update(model.__dict__, session=PassThrough())
    with pytest.raises(InvalidAudio):
        broken.run(np.full((1, 400), np.nan, np.float32))
    assert broken.run(np.zeros((1, 400), np.float32)).shape == (1, 400, 1)
