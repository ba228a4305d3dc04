"""Chunked streaming of Whisper-CTC: per chunk, the compute of that chunk, emissions exact.

A bundle whose manifest has `chunked_streaming` ships one graph (`models.whisper_stream`) that
serves files with full attention when fed only `waveform`, and streams when fed a window of
audio plus each layer's cached keys and values: `chunk_frames` new frames (640 ms for the
default) attend to themselves and to `left_chunks` chunks before them, the block mask the
model was trained with. Streamed emissions then equal one masked pass over the whole input,
whatever the message sizes (`export.whisper_stream.check_streaming`, and tests).

Windows: a frame depends on the samples 520 before and after its centre (the log-mel's 400-point
STFT and the stem's two convolutions). A chunk's window starts two frames before its first frame
(`skip = 2`; at a segment's start the window starts at its first sample, `skip = 0`, as a file
does) and ends 200 samples after its last frame's centre plus 320 (or at the end of the audio
for the last chunk, so that the edge padding is the file's).

Segments: positions come from Whisper's table of 30 s, so a stream is a sequence of segments,
each computed as if it were a file from its first sample. A new segment begins after each final
result (`restart`), and before a segment would outgrow the table.

Cross-stream batching: `run` stacks the requests of equal window length and `skip` into one
call; caches are always `cache_frames` long (zeros marked invalid for young streams), so every
stream in steady state shares one shape.

The same interface as `app.asr.stream_graph.StreamGraph` (`new_state`, `take`, `run`), so `Stream`,
the scheduler and the capacity measurement drive either.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from app.asr.errors import InvalidAudio
from app.asr.manifest import ChunkedStreamingSpec

STRIDE = 320  # samples per encoder frame
REACH = 520  # samples a frame depends on either side of its centre (2 mel frames + half the STFT window)
LOOKAHEAD = REACH - STRIDE  # samples past a chunk's last frame span needed before it runs
MIN_SAMPLES = 400  # what `AcousticModel.pad` pads a short file to
WINDOW_SKIP = 2  # frames of left context at the front of a window


@dataclass
class ChunkedState:
    """One stream's position: its segment, the audio not yet behind every future window, and the cache."""

    cache: np.ndarray  # [L, 2, 1, P, D]
    valid: int = 0  # real frames at the end of `cache`
    audio: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # samples from `audio_start` on
    audio_start: int = 0  # stream sample index of audio[0]
    segment_start: int = 0  # stream sample index where the current segment begins
    segment_frames: int = 0  # frames computed in this segment (its positions so far)
    next_frame: int = 0  # stream frame index of the next frame emitted
    audio_samples: int = 0
    finished: bool = False
    restart_pending: bool = False


@dataclass
class WindowRequest:
    """`frames` new frames for one stream, from `samples` (a window starting `skip` frames early)."""

    state: ChunkedState
    samples: np.ndarray
    frames: int
    skip: int
    offset: int  # position of the first new frame in its segment
    result: np.ndarray | None = field(default=None, repr=False)


class ChunkedStreamGraph:
    """The chunked streaming path of one Whisper-CTC model (one ONNX session, shared by every stream)."""

    stride = STRIDE
    lookahead_samples: int | None = LOOKAHEAD

    def __init__(self, session: object, spec: ChunkedStreamingSpec) -> None:
        self.session = session
        self.spec = spec
        self.chunk_frames: int | None = spec.chunk_frames
        names = {i.name for i in session.get_inputs()} | {i.name for i in session.get_overridable_initializers()}  # type: ignore[attr-defined]
        missing = {"waveform", "skip", "frames", "offset", "cache", "cache_valid", "chunked"} - names
        if missing:
            raise ValueError(f"the graph lacks the chunked streaming inputs {sorted(missing)}")
        self.empty_cache = np.zeros((spec.layers, 2, 1, spec.cache_frames, spec.width), np.float32)
        # Cross-stream batching, by measurement (docs/streaming.md): on the CPU a chunk of 32 frames already
        # fills the int8 GEMMs, and stacking streams copies every cache in and out, so a chunk costs less alone;
        # on a GPU the call overhead dominates and streams share calls
        providers = getattr(session, "get_providers", lambda: ["CPUExecutionProvider"])()
        self.max_batch: int | None = 64 if providers[:1] == ["CUDAExecutionProvider"] else 1
        self.calls = 0
        self.rows = 0

    def new_state(self) -> ChunkedState:
        return ChunkedState(cache=self.empty_cache)

    def restart(self, state: ChunkedState) -> None:
        """Begin a new segment at the next frame (after a final result): no cache, positions from 0."""
        state.restart_pending = True

    def _begin_segment(self, state: ChunkedState) -> None:
        state.segment_start = state.next_frame * STRIDE
        state.segment_frames = 0
        state.cache, state.valid = self.empty_cache, 0
        state.restart_pending = False
        self._drop_before(state, state.segment_start)

    def _drop_before(self, state: ChunkedState, sample: int) -> None:
        if sample > state.audio_start:
            state.audio = state.audio[sample - state.audio_start :]
            state.audio_start = sample

    def take(self, state: ChunkedState, samples: np.ndarray | None = None, *, chunk_frames: int = 0, max_frames: int = 1500,
             final: bool = False) -> WindowRequest | None:
        """Queue `samples` and cut the next request, if one is due: whole chunks (several when audio
        came in bulk, up to `max_frames`), or at the end (`final`) whatever frames remain."""
        del chunk_frames  # the chunk is the model's (the block mask it was trained with)
        if samples is not None and len(samples):
            state.audio = np.concatenate([state.audio, samples.astype(np.float32, copy=False)])
            state.audio_samples += len(samples)
        state.finished = state.finished or final
        c = self.chunk_frames
        if state.restart_pending or state.segment_frames + c > self.spec.max_frames:
            self._begin_segment(state)
        f = state.segment_frames
        available = state.audio_samples - state.segment_start  # samples of this segment so far
        total = self._segment_frames_at_end(available) if state.finished else -1  # the segment's frames, once its end is known
        if state.finished:
            frames = total - f
        else:
            ready = (available - REACH) // STRIDE + 1 - f if available >= REACH else 0
            frames = ready - ready % c
        room = self.spec.max_frames - f
        frames = min(frames, max(max_frames - max_frames % c, c), room)
        if frames <= 0:
            return None
        if state.finished and state.segment_start + (f + frames) * STRIDE + LOOKAHEAD > state.audio_samples:
            frames = total - f  # the last frames see the end padding: they go in the last call, whatever the cap
        skip = min(f, WINDOW_SKIP)
        start = state.segment_start + (f - skip) * STRIDE
        if f + frames == total:
            end = state.audio_samples  # the file's own end padding
            window = state.audio[start - state.audio_start : end - state.audio_start]
            if f == 0 and len(window) < MIN_SAMPLES:
                window = np.pad(window, (0, MIN_SAMPLES - len(window)))
        else:
            end = state.segment_start + (f + frames) * STRIDE + LOOKAHEAD
            window = state.audio[start - state.audio_start : end - state.audio_start]
        request = WindowRequest(state, window, frames, skip, f)
        state.segment_frames += frames
        state.next_frame += frames
        self._drop_before(state, state.segment_start + max(state.segment_frames - WINDOW_SKIP, 0) * STRIDE)
        return request

    @staticmethod
    def _segment_frames_at_end(samples: int) -> int:
        """Frames of a file of `samples` samples (padded to the shortest input): `WhisperCTC.output_frames`."""
        n = max(samples, MIN_SAMPLES) if samples > 0 else 0
        return ((n // 160 + 1) + 1) // 2 if n else 0

    def run(self, requests: list[WindowRequest]) -> None:
        """Compute every request's frames into `request.result` and advance its cache; requests with
        the same window length and `skip` share one call."""
        groups: dict[tuple[int, int, int], list[WindowRequest]] = {}
        for r in requests:
            groups.setdefault((len(r.samples), r.skip, r.frames), []).append(r)
        keep = self.spec.cache_frames
        for (_, skip, frames), group in groups.items():
            feeds = {
                "waveform": np.stack([r.samples for r in group]),
                "skip": np.array(skip, np.int64),
                "frames": np.array(frames, np.int64),
                "offset": np.array([r.offset for r in group], np.int64),
                "cache": group[0].state.cache if len(group) == 1 else np.concatenate([r.state.cache for r in group], axis=2),  # alone: no 6 MB copy
                "cache_valid": np.array([r.state.valid for r in group], np.int64),
                "chunked": np.array(1, np.int64),
            }
            emissions, cache = self.session.run(["emissions", "cache_out"], feeds)  # type: ignore[attr-defined]
            if not np.isfinite(emissions).all():
                raise InvalidAudio("the acoustic model produced non-finite scores for this audio")
            self.calls += 1
            self.rows += len(group)
            if cache.shape[3] < keep:
                cache = np.pad(cache, ((0, 0), (0, 0), (0, 0), (keep - cache.shape[3], 0), (0, 0)))
            for row, r in enumerate(group):
                r.state.cache = np.ascontiguousarray(cache[:, :, row : row + 1])
                r.state.valid = min(r.state.valid + frames, keep)
                r.result = emissions[row]


def stream_emissions(graph: ChunkedStreamGraph, wave: np.ndarray, pattern: tuple[int, ...]) -> np.ndarray:
    """Emissions of one waveform fed in pieces of `pattern` samples (cycled), as a stream alone gets them."""
    state = graph.new_state()
    out: list[np.ndarray] = []
    position, i = 0, 0
    while True:
        final = position >= len(wave)
        piece = None if final else wave[position : position + pattern[i % len(pattern)]]
        if piece is not None:
            position += len(piece)
            i += 1
        request = graph.take(state, piece, final=final)
        while request is not None:
            graph.run([request])
            assert request.result is not None
            out.append(request.result)
            request = graph.take(state, final=final)
        if final:
            break
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
