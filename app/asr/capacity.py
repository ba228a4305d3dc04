"""How many real-time streams this machine holds, and admission against that number.

`measure_stream_capacity` runs, at start-up, what one more stream costs: a stream of
speech-like audio through the default model in 160 ms chunks (its partial texts and its final
decodes with the bundle's default decoder), and the chunk's acoustic call inside a batch of
`batch` streams, as the scheduler runs them (`app.asr.stream_batching`). A stream costs, per
chunk of audio, its share of the batched call plus its own decoding; the machine holds
`headroom * chunk_seconds / cost` streams of that kind (the rest of the time goes
to HTTP requests, the event loop, and bursts). The figure depends on the load at start-up:
`ASR_MAX_STREAMS` overrides it (for instance with the `sustained_streams` that `asr-bench`
measured on the machine).

`Admission` counts open streams against the limit: past it a stream is refused at once
(WebSocket close 1013 with a reason), so the streams already open keep their latency.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from app.asr.bundle import AcousticBundle
from app.asr.options import DecodeOptions
from app.asr.recognizer import Recognizer
from app.asr.streaming import Stream, StreamOptions

CHUNK_SECONDS = 0.16
HEADROOM = 0.75  # at 64 streams (the estimate on an idle 2-core machine) asr-bench measured a p95 partial latency of 416 ms


@dataclass(frozen=True)
class StreamCapacity:
    streams: int  # concurrent real-time streams admitted
    source: str  # "measured" (at start-up) or "setting" (ASR_MAX_STREAMS)
    acoustic_seconds: float = float("nan")  # compute per stream per chunk in a batched call (wall time)
    decode_seconds: float = float("nan")  # partial and final decoding per stream per chunk (one worker)
    chunk_seconds: float = CHUNK_SECONDS

    def describe(self) -> str:
        if self.source == "setting":
            return f"{self.streams} streams (ASR_MAX_STREAMS)"
        return (f"{self.streams} streams, measured at start-up: {1000 * self.acoustic_seconds:.2f} ms acoustic and "
                f"{1000 * self.decode_seconds:.2f} ms decoding per {1000 * self.chunk_seconds:.0f} ms chunk")


def speechlike(seconds: float, rate: int, *, seed: int = 0) -> np.ndarray:
    """Voiced bursts with pauses: enough for partials, endpoints and a final of each kind."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    voiced = sum(np.sin(2 * np.pi * np.cumsum(f0 * k) / rate) / k for k in range(1, 6))
    envelope = (np.sin(2 * np.pi * 0.8 * t) > -0.3).astype(np.float32)
    return (0.2 * voiced * envelope + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def measure_stream_capacity(recognizer: Recognizer, bundle: AcousticBundle, *, workers: int, batch: int = 16, audio_seconds: float = 3.0,
                            headroom: float = HEADROOM, options: StreamOptions | None = None) -> StreamCapacity:
    """Real-time streams of `bundle`'s default options this machine holds (see the module docstring); about a second to run."""
    rate = bundle.manifest.sample_rate
    chunk = int(CHUNK_SECONDS * rate)
    audio = speechlike(audio_seconds, rate)
    model = bundle.model()
    stream_options = options or StreamOptions()
    stream = Stream(recognizer, bundle, model, DecodeOptions(), stream_options)
    chunks = 0
    started = time.perf_counter()
    for i in range(0, len(audio), chunk):
        stream.accept(audio[i : i + chunk])
        chunks += 1
    stream.finish()
    total = (time.perf_counter() - started) / max(chunks, 1)  # everything one stream costs per chunk of audio, alone
    frames = chunk / model.geometry.stride  # frames per chunk of audio
    # frames per call: the cached graph's chunk option, or a chunked transformer's own chunk (app.asr.chunked_stream)
    compute = (stream.graph.chunk_frames or stream_options.cached_chunk_frames) if stream.graph is not None else stream_options.chunk_frames
    alone, batched = _acoustic_per_frame(model, frames=compute, batch=batch)
    decode = max(total - alone * frames, 0.0)
    cost = batched * frames + decode / max(workers, 1)
    streams = max(int(headroom * CHUNK_SECONDS / max(cost, 1e-6)), 1)
    return StreamCapacity(streams, "measured", acoustic_seconds=batched * frames, decode_seconds=decode)


def _acoustic_per_frame(model: object, *, frames: int, batch: int, repeats: int = 3) -> tuple[float, float]:
    """(seconds per frame computed `frames` at a time alone, the same inside a call of `batch` streams), best of `repeats`."""
    from app.asr.runtime import AcousticModel

    assert isinstance(model, AcousticModel)
    graph = model.streaming
    rng = np.random.default_rng(0)
    if graph is None:  # every chunk recomputes its receptive field; batching does not apply
        window = model.geometry.receptive_field + (frames - 1) * model.geometry.stride
        x = (0.05 * rng.standard_normal((1, window))).astype(np.float32)
        best = min(_timed(lambda: model.run(x)) for _ in range(repeats)) / frames
        return best, best
    samples = (0.05 * rng.standard_normal(frames * graph.stride + (graph.lookahead_samples or 0))).astype(np.float32)

    def run(n: int) -> float:
        states = [graph.new_state() for _ in range(n)]
        requests = [graph.take(s, samples, chunk_frames=frames) for s in states]
        ready = [r for r in requests if r is not None]
        return _timed(lambda: graph.run(ready)) / max(len(ready), 1) / frames

    run(1)  # first call allocates
    return min(run(1) for _ in range(repeats)), min(run(batch) for _ in range(repeats))


def _timed(fn: object) -> float:
    started = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - started


@dataclass
class Admission:
    """The stream limit and the refusals past it (the open streams are counted by the caller)."""

    capacity: StreamCapacity
    refused: int = 0

    @property
    def limit(self) -> int:
        return self.capacity.streams

    def admit(self, active: int) -> bool:
        """Whether one more stream may open beside `active` ones; a refusal is counted."""
        if active >= self.limit:
            self.refused += 1
            return False
        return True

    def reason(self) -> str:
        return f"the server is at its capacity of {self.limit} concurrent streams ({self.capacity.describe()}); retry later"


def capacity_from_setting(streams: int | None) -> StreamCapacity | None:
    return StreamCapacity(streams, "setting") if streams is not None else None
