"""Streaming with per-layer caches: compute per chunk proportional to the chunk, emissions exact.

A Wav2Letter bundle whose manifest has `streaming` ships a graph that, besides `waveform`,
takes each layer's cached left context as an input and returns the updated caches beside
`emissions` (`models.wav2letter.CachedWav2Letter`; left out, the caches default to empty and
the graph is the plain offline one). Fed a chunk of `k * frame_stride` new samples and the
caches of the samples before it, it returns exactly the `k` output frames a single pass over
the whole padded input computes at those positions: every layer sees the same inputs, only
split into a cached part and a new part.

Where a stream starts: a cache holds intermediate values of the last `receptive_field -
frame_stride` input samples consumed. The graph is started `warmup_frames` frames *before*
output frame 0, at a point where everything it has consumed lies inside the left zero padding
(extended further left with zeros), so the starting caches are those of an all-zero input:
`initial_state`, computed once per model by running the graph on zeros. A stream then feeds
`lead_zeros` zeros, the audio, and at the end the right padding, and drops its first
`warmup_frames` frames. Nothing depends on how the audio was cut into messages: the stream
cuts it into whole frames itself.

Cross-stream batching: `StreamGraph.run` takes the chunks of several streams and runs every
group of equal chunk length as one ONNX Runtime call, caches stacked along the batch axis.
Rows never mix (convolutions are per row), so a stream's frames do not depend on its company.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from app.asr.errors import InvalidAudio
from app.asr.manifest import StreamingSpec
from app.asr.runtime import AcousticModel

EMISSIONS = "emissions"


@dataclass
class GraphState:
    """One stream's position in the graph: its caches and the input not yet fed."""

    caches: list[np.ndarray]  # each [1, *spec.shape]
    pending: np.ndarray  # graph-input samples not yet fed (less than one chunk, or more when fed in bulk)
    next_frame: int  # global index of the next frame the graph emits (negative during the warm-up)
    audio_samples: int = 0  # audio samples accepted so far
    finished: bool = False


@dataclass
class ChunkRequest:
    """`frames` new frames for one stream: `samples` `[frames * stride]` after `state.caches`."""

    state: GraphState
    samples: np.ndarray
    frames: int
    result: np.ndarray | None = field(default=None, repr=False)  # [frames, V] once run


class StreamGraph:
    """The cached streaming path of one acoustic model (one ONNX session, shared by every stream)."""

    chunk_frames: int | None = None  # the stream's `cached_chunk_frames` decides
    lookahead_samples: int | None = None  # the geometry's right padding
    max_batch: int | None = None  # batching across streams pays: the scheduler's limit

    def __init__(self, model: AcousticModel, spec: StreamingSpec) -> None:
        geometry = model.geometry
        if not geometry.exact:
            raise ValueError("only exact-context (convolutional) bundles stream with caches")
        self.model = model
        self.session = model.session
        self.spec = spec
        self.stride = geometry.stride
        self.cache_names = [c.name for c in spec.caches]
        self.output_names = [EMISSIONS, *(c.name + "_out" for c in spec.caches)]
        inputs = {i.name for i in self.session.get_inputs()} | {i.name for i in self.session.get_overridable_initializers()}
        missing = [n for n in [model.input_name, *self.cache_names] if n not in inputs]
        if missing:
            raise ValueError(f"the graph lacks the streaming inputs {missing}")
        consumed = geometry.receptive_field - self.stride  # input samples a state holds
        self.warmup_frames = max(math.ceil((consumed - geometry.left_pad) / self.stride), 0)
        self.lead_zeros = geometry.left_pad - (consumed - self.warmup_frames * self.stride)
        self.initial = self._zero_state()
        self.calls = 0  # ONNX Runtime calls made
        self.rows = 0  # stream chunks they carried

    def _zero_state(self) -> list[np.ndarray]:
        """Caches after an all-zero input longer than the receptive field: those of any zero prefix."""
        zeros = [np.zeros((1, *c.shape), np.float32) for c in self.spec.caches]
        frames = math.ceil(self.model.geometry.receptive_field / self.stride) + 1
        outputs = self.session.run(self.output_names, self._feed(np.zeros((1, frames * self.stride), np.float32), zeros))
        return [np.ascontiguousarray(c) for c in outputs[1:]]

    def _feed(self, waveform: np.ndarray, caches: list[np.ndarray]) -> dict[str, np.ndarray]:
        return {self.model.input_name: waveform, **dict(zip(self.cache_names, caches, strict=True))}

    def new_state(self) -> GraphState:
        return GraphState(caches=list(self.initial), pending=np.zeros(self.lead_zeros, np.float32), next_frame=-self.warmup_frames)

    def take(self, state: GraphState, samples: np.ndarray | None = None, *, chunk_frames: int = 1, max_frames: int = 1500,
             final: bool = False) -> ChunkRequest | None:
        """Queue `samples` (audio at the model rate) and cut the next chunk, if one is due.

        A chunk is a multiple of `chunk_frames` frames (at most `max_frames`), so that streams
        fed at the same pace have chunks of one length and share calls. `final` appends the
        right padding: the chunks taken then (call until None) end exactly at the offline
        graph's last frame, whatever the audio's length.
        """
        if samples is not None and len(samples):
            state.pending = np.concatenate([state.pending, samples.astype(np.float32, copy=False)])
            state.audio_samples += len(samples)
        if final and not state.finished:
            state.finished = True
            geometry = self.model.geometry
            padded = max(geometry.left_pad + state.audio_samples + geometry.right_pad, geometry.min_samples, geometry.receptive_field)
            needed = (geometry.frames(padded) - state.next_frame) * self.stride
            state.pending = np.pad(state.pending[:needed], (0, max(needed - len(state.pending), 0)))
        ready = len(state.pending) // self.stride
        frames = ready if state.finished else ready - ready % max(chunk_frames, 1)
        frames = min(frames, max(max_frames - max_frames % max(chunk_frames, 1), 1))
        if frames <= 0:
            return None
        chunk, state.pending = state.pending[: frames * self.stride], state.pending[frames * self.stride :]
        return ChunkRequest(state, chunk, frames)

    def restart(self, state: GraphState) -> None:
        """A convolutional cache carries on across finals: nothing to do."""

    def run(self, requests: list[ChunkRequest]) -> None:
        """Compute every request's frames (into `request.result`) and advance its state.

        Requests of equal length run as one call (rows stacked); the frames of the warm-up
        are dropped here, so `result` holds only frames from global index 0 on."""
        groups: dict[int, list[ChunkRequest]] = {}
        for request in requests:
            groups.setdefault(request.frames, []).append(request)
        for group in groups.values():
            waveform = np.stack([r.samples for r in group])  # [B, frames * stride]
            caches = [np.concatenate([r.state.caches[i] for r in group]) for i in range(len(self.cache_names))]
            outputs = self.session.run(self.output_names, self._feed(waveform, caches))
            emissions = outputs[0]  # [B, frames, V]
            if not np.isfinite(emissions).all():
                raise InvalidAudio("the acoustic model produced non-finite scores for this audio")
            self.calls += 1
            self.rows += len(group)
            for row, request in enumerate(group):
                state = request.state
                state.caches = [np.ascontiguousarray(c[row : row + 1]) for c in outputs[1:]]
                drop = max(-state.next_frame, 0)
                state.next_frame += request.frames
                request.result = emissions[row, drop:]
