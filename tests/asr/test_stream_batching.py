"""Cross-stream batching: concurrent streams share calls, and each gets exactly what it gets alone."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from app.asr.bundle import load_bundles
from app.asr.options import DecodeOptions
from app.asr.recognizer import Recognizer
from app.asr.stream_batching import StreamScheduler
from app.asr.streaming import Stream, StreamOptions, StreamResult
from tests.helpers import speechlike


@pytest.fixture(scope="module")
def recognizer(models_dir: Path) -> Recognizer:
    return Recognizer(load_bundles(models_dir, threads=1), default_model="tiny-asg")


def new_stream(recognizer: Recognizer, *, cached: bool = True) -> Stream:
    bundle = recognizer.bundle("tiny-asg")
    options = StreamOptions(endpoint_silence=0.3, max_utterance=1.0, cached=cached)
    return Stream(recognizer, bundle, bundle.models["fp32"], DecodeOptions(), options, history=[])


def pieces(audio: np.ndarray, size: int) -> list[np.ndarray]:
    return [audio[i : i + size] for i in range(0, len(audio), size)]


def alone(stream: Stream, audio: np.ndarray, size: int) -> list[StreamResult]:
    results = []
    for piece in pieces(audio, size):
        results += stream.accept(piece)
    return results + stream.finish()


async def together(scheduler: StreamScheduler, streams: list[Stream], inputs: list[tuple[np.ndarray, int]]) -> list[list[StreamResult]]:
    async def run(stream: Stream, audio: np.ndarray, size: int) -> list[StreamResult]:
        results = []
        for piece in pieces(audio, size):
            results += await scheduler.accept(stream, piece)
            await asyncio.sleep(0)  # other streams' messages arrive in between
        return results + await scheduler.finish(stream)

    return await asyncio.gather(*(run(s, a, n) for s, (a, n) in zip(streams, inputs, strict=True)))


def test_streams_in_shared_calls_get_what_they_get_alone(recognizer: Recognizer) -> None:
    inputs = [(speechlike(s, seed=i) * g, n) for i, (s, g, n) in enumerate([(2.5, 1.0, 2560), (1.7, 0.3, 2560), (3.2, 2.0, 1000), (0.3, 1.0, 2560), (2.5, 1.0, 4096)])]
    inputs.append((np.zeros(0, np.float32), 2560))
    solo = [new_stream(recognizer) for _ in inputs]
    expected = [alone(s, a, n) for s, (a, n) in zip(solo, inputs, strict=True)]
    shared = [new_stream(recognizer) for _ in inputs]
    with ThreadPoolExecutor(2) as executor:
        scheduler = StreamScheduler(executor)
        got = asyncio.run(together(scheduler, shared, inputs))
    assert scheduler.chunks > scheduler.calls  # some calls carried several streams' chunks
    for a, b, stream_a, stream_b in zip(expected, got, solo, shared, strict=True):
        assert [(r.kind, r.text, r.start, r.end) for r in b] == [(r.kind, r.text, r.start, r.end) for r in a]
        frames_a = np.concatenate(stream_a.history or [np.zeros((0, 1))])
        frames_b = np.concatenate(stream_b.history or [np.zeros((0, 1))])
        assert frames_a.shape == frames_b.shape
        np.testing.assert_allclose(frames_b, frames_a, atol=1e-4, rtol=1e-4)


def test_streams_without_caches_take_the_same_path(recognizer: Recognizer) -> None:
    audio = speechlike(1.5, seed=4)
    expected = alone(new_stream(recognizer, cached=False), audio, 1600)
    stream = new_stream(recognizer, cached=False)
    with ThreadPoolExecutor(1) as executor:
        got = asyncio.run(together(StreamScheduler(executor), [stream], [(audio, 1600)]))[0]
    assert [(r.kind, r.text) for r in got] == [(r.kind, r.text) for r in expected]
