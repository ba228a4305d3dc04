"""The cached streaming graph: exact against offline for any chunking, batches without cross-talk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.asr.bundle import AcousticBundle, load_bundles
from app.asr.manifest import Manifest
from app.asr.stream_graph import StreamGraph
from export.streaming import stream_through
from tests.helpers import speechlike


@pytest.fixture(scope="module")
def bundles(models_dir: Path) -> dict[str, AcousticBundle]:
    return load_bundles(models_dir, threads=1).acoustic


def graph_of(bundles: dict[str, AcousticBundle], name: str) -> StreamGraph:
    graph = bundles[name].models["fp32"].streaming
    assert graph is not None, f"{name} was exported without its streaming graph"
    return graph


def stream_alone(graph: StreamGraph, audio: np.ndarray, piece: int, *, chunk_frames: int = 8) -> np.ndarray:
    """One stream fed `piece` samples at a time, every due chunk run at once."""
    state = graph.new_state()
    out: list[np.ndarray] = []

    def drain(samples: np.ndarray | None = None, *, final: bool = False) -> None:
        request = graph.take(state, samples, chunk_frames=chunk_frames, final=final)
        while request is not None:
            graph.run([request])
            assert request.result is not None
            out.append(request.result)
            request = graph.take(state, chunk_frames=chunk_frames, final=final)

    for start in range(0, len(audio), piece):
        drain(audio[start : start + piece])
    drain(final=True)
    return np.concatenate(out)


@pytest.mark.parametrize("piece", [1, 160, 321, 1000, 4096, 100_000])
@pytest.mark.parametrize("model", ["tiny-asg", "tiny-ctc"])
def test_streamed_equals_offline_for_any_piece_size(bundles: dict[str, AcousticBundle], piece: int, model: str) -> None:
    graph = graph_of(bundles, model)
    audio = speechlike(0.7 if piece == 1 else 3.1, seed=piece)
    offline = bundles[model].models["fp32"].emissions(audio)
    streamed = stream_alone(graph, audio, piece)
    assert streamed.shape == offline.shape
    np.testing.assert_allclose(streamed, offline, atol=1e-4, rtol=1e-4)
    assert (streamed.argmax(1) == offline.argmax(1)).all()


@pytest.mark.parametrize("chunk_frames", [1, 3, 8, 50])
def test_chunk_size_does_not_change_emissions(bundles: dict[str, AcousticBundle], chunk_frames: int) -> None:
    graph = graph_of(bundles, "tiny-asg")
    audio = speechlike(2.3, seed=5)
    offline = bundles["tiny-asg"].models["fp32"].emissions(audio)
    np.testing.assert_allclose(stream_alone(graph, audio, 1234, chunk_frames=chunk_frames), offline, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("seconds", [0.0, 0.01, 0.1, 0.2])
def test_short_and_empty_audio_give_the_offline_frames(bundles: dict[str, AcousticBundle], seconds: float) -> None:
    graph = graph_of(bundles, "tiny-asg")
    audio = speechlike(seconds, seed=2) if seconds else np.zeros(0, np.float32)
    offline = bundles["tiny-asg"].models["fp32"].emissions(audio)
    streamed = stream_alone(graph, audio, 999)
    assert streamed.shape == offline.shape
    np.testing.assert_allclose(streamed, offline, atol=1e-4, rtol=1e-4)


def test_streams_batched_together_equal_each_alone(bundles: dict[str, AcousticBundle]) -> None:
    """Streams of different lengths and voices share calls; each gets exactly its own frames (no cross-talk)."""
    graph = graph_of(bundles, "tiny-asg")
    model = bundles["tiny-asg"].models["fp32"]
    waveforms = [speechlike(s, seed=i) * g for i, (s, g) in enumerate([(1.0, 1.0), (2.7, 0.2), (0.4, 3.0), (2.7, 1.0)])]
    waveforms.append(np.zeros(0, np.float32))
    calls_before, rows_before = graph.calls, graph.rows
    together = stream_through(graph, waveforms, (8,))
    assert graph.rows - rows_before > graph.calls - calls_before  # some calls carried several streams
    for waveform, frames in zip(waveforms, together, strict=True):
        offline = model.emissions(waveform)
        assert frames.shape == offline.shape
        np.testing.assert_allclose(frames, offline, atol=1e-4, rtol=1e-4)


def test_only_equal_lengths_share_a_call(bundles: dict[str, AcousticBundle]) -> None:
    graph = graph_of(bundles, "tiny-asg")
    states = [graph.new_state() for _ in range(3)]
    requests = [graph.take(s, np.zeros(n * graph.stride, np.float32), chunk_frames=1) for s, n in zip(states, [20, 20, 30], strict=True)]
    calls = graph.calls
    graph.run([r for r in requests if r is not None])
    assert graph.calls - calls == 2


def test_offline_call_is_the_plain_graph(bundles: dict[str, AcousticBundle]) -> None:
    """Fed only `waveform`, the streaming graph computes the offline emissions: one file serves both."""
    model = bundles["tiny-asg"].models["fp32"]
    assert [i.name for i in model.session.get_inputs()] == ["waveform"]
    batch = np.stack([model.pad(speechlike(1.0, seed=s)) for s in (1, 2)])
    out = model.run(batch)
    single = model.run(batch[:1])
    np.testing.assert_allclose(out[:1], single, atol=1e-5, rtol=1e-5)


def test_manifest_records_the_caches(models_dir: Path) -> None:
    manifest = Manifest.load(models_dir / "tiny-asg")
    assert manifest.streaming is not None and manifest.streaming.precisions == ("fp32",)
    assert manifest.streaming.caches[0].name == "cache_frontend"
    assert manifest.parity["streaming"]["max_relative_error"] < 1e-4
    assert Manifest.from_json(manifest.to_json()) == manifest
