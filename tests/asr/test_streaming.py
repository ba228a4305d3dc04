"""Streaming against offline: exact Wav2Letter emissions for any piece size, endpointing, finals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.asr.bundle import load_bundles
from app.asr.options import DecodeOptions
from app.asr.recognizer import Recognizer
from app.asr.streaming import Stream, StreamOptions
from tests.helpers import speechlike


@pytest.fixture(scope="module")
def recognizer(models_dir: Path) -> Recognizer:
    return Recognizer(load_bundles(models_dir, threads=1), default_model="tiny-asg")


@pytest.mark.parametrize("cached", [True, False], ids=["cached", "windows"])
@pytest.mark.parametrize("piece", [1, 160, 1000, 4096])
@pytest.mark.parametrize("model", ["tiny-asg", "tiny-ctc"])
def test_streamed_emissions_equal_offline(recognizer: Recognizer, piece: int, model: str, cached: bool) -> None:
    bundle = recognizer.bundle(model)
    acoustic = bundle.models["fp32"]
    audio = speechlike(1.3 if piece == 1 else 3.1, seed=piece)
    offline = acoustic.emissions(audio)
    never = StreamOptions(endpoint_silence=1e9, max_utterance=1e9, interim_results=False, cached=cached)
    stream = Stream(recognizer, bundle, acoustic, DecodeOptions(), never, history=[])
    assert (stream.graph is not None) == cached  # the tiny bundles are exported with their streaming graph
    for start in range(0, len(audio), piece):
        stream.accept(audio[start : start + piece])
    stream.finish()
    streamed = np.concatenate(stream.history or [])
    assert streamed.shape == offline.shape
    np.testing.assert_allclose(streamed, offline, atol=1e-4, rtol=1e-4)


def test_stream_final_equals_offline_transcript(recognizer: Recognizer) -> None:
    bundle = recognizer.bundle("tiny-asg")
    audio = speechlike(2.5, seed=3)
    offline = recognizer.transcribe(audio, model="tiny-asg", options=DecodeOptions())
    stream = Stream(recognizer, bundle, bundle.models["fp32"], DecodeOptions(), StreamOptions(endpoint_silence=1e9, max_utterance=1e9))
    results = []
    for start in range(0, len(audio), 1600):
        results += stream.accept(audio[start : start + 1600])
    results += stream.finish()
    finals = [r for r in results if r.kind == "final"]
    assert len(finals) == 1 and finals[0].text == offline.text
    assert finals[0].transcript is not None and finals[0].transcript.words == offline.words
    assert any(r.kind == "partial" for r in results) or offline.text == ""


def test_long_audio_windows_have_no_seams(recognizer: Recognizer) -> None:
    """A 40 s recording computed in 100-frame windows equals one pass over the whole file."""
    bundle = recognizer.bundle("tiny-asg")
    acoustic = bundle.models["fp32"]
    audio = speechlike(40.0, seed=9)
    one_pass = acoustic.run(acoustic.pad(audio)[None])[0]
    windowed_model = type(acoustic)(acoustic.session, acoustic.geometry, window_frames=100)
    windowed = windowed_model.emissions(audio)
    assert windowed.shape == one_pass.shape
    np.testing.assert_allclose(windowed, one_pass, atol=1e-4, rtol=1e-4)
    whole = recognizer.decode(bundle, one_pass, DecodeOptions(), duration=40.0)
    pieces = recognizer.decode(bundle, windowed, DecodeOptions(), duration=40.0)
    assert pieces.text == whole.text and pieces.words == whole.words


def _finals(stream: Stream, audio: np.ndarray, *, step: int) -> list:  # type: ignore[type-arg]
    """Feed `audio` in pieces of `step` samples, finish, and keep the finals."""
    results = []
    for start in range(0, len(audio), step):
        results += stream.accept(audio[start : start + step])
    results += stream.finish()
    return [r for r in results if r.kind == "final"]


def test_endpointing_cuts_at_silence(recognizer: Recognizer) -> None:
    """Speech, 2 s of silence, speech: with a model whose blank/separator wins on silence, two finals."""
    bundle = recognizer.bundle("tiny-asg")
    stream = Stream(recognizer, bundle, bundle.models["fp32"], DecodeOptions(), StreamOptions(endpoint_silence=0.3, max_utterance=1.0))
    audio = speechlike(3.5, seed=1)
    finals = _finals(stream, audio, step=3200)
    assert len(finals) >= 3  # max_utterance of 1 s forces a final at least every second
    for a, b in zip(finals, finals[1:], strict=False):
        assert a.end <= b.start + 1e-9
    assert finals[-1].end == pytest.approx(len(audio) / 16000, abs=0.05)


@pytest.mark.parametrize("decoder", ["greedy", "beam"])
def test_finals_equal_offline_decoding_of_their_segments(recognizer: Recognizer, decoder: str) -> None:
    """When endpointing cuts a recording, each final is the offline decoding of its own span of
    the offline emissions: streamed and offline WER differ by the segmentation and nothing else
    (scripts/stream_vs_offline.py measures that gap on the dev sets)."""
    bundle = recognizer.bundle("tiny-asg")
    acoustic = bundle.models["fp32"]
    options = DecodeOptions(decoder=decoder, vtln=False)
    stream = Stream(recognizer, bundle, acoustic, options, StreamOptions(endpoint_silence=0.3, max_utterance=0.9, interim_results=False))
    audio = speechlike(4.0, seed=6)
    finals = _finals(stream, audio, step=2000)
    assert len(finals) >= 4
    offline = acoustic.emissions(audio)
    frame = acoustic.geometry.stride / bundle.manifest.sample_rate
    for r in finals:
        a, b = round(r.start / frame), round(r.end / frame)
        alone = recognizer.decode(bundle, offline[a:b], options, duration=(b - a) * frame, frame_offset=a)
        assert r.transcript is not None
        assert (r.text, r.transcript.words) == (alone.text, alone.words)


@pytest.mark.parametrize("cached", [True, False], ids=["cached", "windows"])
@pytest.mark.parametrize("chunk_seconds", [0.2, 3.5])
def test_max_utterance_holds_however_the_audio_is_sent(recognizer: Recognizer, chunk_seconds: float, cached: bool) -> None:
    """No final is longer than max_utterance, even when one message carries several times it
    (the model computes up to 30 s per window), and the finals still tile the input."""
    bundle = recognizer.bundle("tiny-asg")
    never_quiet = StreamOptions(endpoint_silence=1e9, max_utterance=0.7, interim_results=False, cached=cached)
    stream = Stream(recognizer, bundle, bundle.models["fp32"], DecodeOptions(), never_quiet)
    audio = speechlike(3.5, seed=4)
    step = int(chunk_seconds * 16000)
    results = []
    for start in range(0, len(audio), step):
        results += stream.accept(audio[start : start + step])
    results += stream.finish()
    finals = [r for r in results if r.kind == "final"]
    assert len(finals) >= 5
    assert all(r.end - r.start <= 0.7 + 1e-6 for r in finals), [(r.start, r.end) for r in finals]
    assert [r.start for r in finals[1:]] == pytest.approx([r.end for r in finals[:-1]])
    assert finals[-1].end == pytest.approx(len(audio) / 16000, abs=0.05)
