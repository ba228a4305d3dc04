"""Per-connection streaming state: the shared recognizer does the work, a `Stream` holds the rest.

`Stream.accept(samples)` takes audio at the model rate in pieces of any size and computes
emissions as soon as enough input exists:

- exact-context bundles whose graph streams with per-layer caches (`app.asr.stream_graph`,
  Wav2Letter exported by this project): every `cached_chunk_frames` frames of new audio run through
  the graph with the caches of what came before, so a chunk costs what its own frames cost,
  and the emissions equal the offline ones whatever the piece sizes. `take` and `give` split
  that step in two, so that a scheduler can run the chunks of many streams in one call
  (`app.asr.stream_batching`);
- other exact-context bundles: frame `t` is computed once its whole receptive field
  has arrived, from exactly the samples it depends on (the whole receptive field per chunk);
- Whisper-CTC bundles trained with a block mask (`app.asr.chunked_stream`): chunks of 640 ms with
  a per-layer key/value cache through the same `take`/`give` path, emissions exact against a
  masked pass; each final comes from the utterance run again with full attention, as a file
  would be (`whole_finals`), and the next utterance starts a new segment;
- other full-context bundles (wav2vec 2.0, Whisper-CTC without a mask): a sliding window with `left_context` frames of
  history and `right_context` frames of look-ahead gives the partials and the endpoints; only
  frames with their look-ahead in hand are committed, so nothing is duplicated or dropped at
  window seams. With `whole_finals` (the default) each final is decoded from its whole
  utterance computed again in one pass, as a file would be: on `real_dev_lj` the sliding window
  alone cost Whisper-CTC 2.5-3 points of WER against offline decoding, and most of it came back
  this way (docs/streaming.md), for one more pass over each utterance.

Endpointing comes from the emissions themselves (as Riva does): when the utterance has
speech and its last `endpoint_silence` seconds of frames are all blank or word separator,
or it reaches `max_utterance` seconds, the utterance is decoded into a final result and a
new one begins. Transformer-XL memory (when rescoring) follows the sequence of finals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from app.asr.bundle import AcousticBundle
from app.asr.options import DecodeOptions, resolve
from app.asr.partial import BestPath
from app.asr.recognizer import Recognizer, Transcript, quiet_frames
from app.asr.runtime import AcousticModel
from app.asr.stream_graph import ChunkRequest, GraphState


@dataclass(frozen=True)
class StreamOptions:
    chunk_frames: int = 8  # compute once this many new frames can be committed (160 ms at 50 fps)
    # the same for the cached graph: 16 frames (320 ms) cost one ONNX Runtime call as much as 8 do (a GEMM of 8
    # columns runs at half the speed of one of 16 or more), so a stream costs half as much for 160 ms more wait at most
    cached_chunk_frames: int = 16
    left_context: int = 200  # full-context models: frames of history each window sees
    # full-context models: look-ahead frames before a frame is committed (0.6 s: the first partial comes within a second
    # of speech; finals do not depend on it when `whole_finals` decodes each utterance again in one pass)
    right_context: int = 30
    endpoint_silence: float = 0.6  # seconds of blank/separator frames that end an utterance
    max_utterance: float = 20.0  # seconds: an utterance is cut into a final after this long
    interim_results: bool = True
    cached: bool = True  # use the graph's per-layer caches when the bundle has them (False: recompute each receptive field)
    whole_finals: bool = True  # full-context models: a final is decoded from its whole utterance run again in one pass


@dataclass
class StreamResult:
    kind: str  # "partial" or "final"
    text: str
    transcript: Transcript | None = None
    start: float = 0.0
    end: float = 0.0


@dataclass
class Stream:
    recognizer: Recognizer
    bundle: AcousticBundle
    model: AcousticModel
    options: DecodeOptions
    stream_options: StreamOptions = field(default_factory=StreamOptions)
    # input state: padded-input samples from global index `offset` on
    buffer: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    offset: int = 0
    committed: int = 0  # frames committed so far (global)
    ended: bool = False
    # utterance state
    emissions: list[np.ndarray] = field(default_factory=list)
    utterance_start: int = 0  # global frame index where the current utterance begins
    last_partial: str = ""
    memory: object | None = None  # Transformer-XL memory carried from final to final (rescoring)
    history: list[np.ndarray] | None = None  # every committed frame, when a caller asks to keep them

    def __post_init__(self) -> None:
        self.resolved = resolve(self.options, self.bundle)  # checked once, when the stream opens
        self.recognizer.punctuation_flags(self.options)  # punctuate=true without a punctuation bundle: refused now, not at the first final
        self.buffer = np.zeros(self.model.geometry.left_pad, np.float32)
        geometry = self.model.geometry
        self.frame_seconds = geometry.stride / self.bundle.manifest.sample_rate
        self.left_context = 0 if geometry.exact else self.stream_options.left_context
        self.right_context = 0 if geometry.exact else self.stream_options.right_context
        self.best_path = BestPath(self.bundle)  # the partial text's path, extended as frames come
        self.last_loud = -1  # utterance frame index of the last frame that is neither blank nor separator
        self.graph = self.model.streaming if self.stream_options.cached else None  # the cached path, when the bundle's graph has one
        self.graph_state: GraphState | None = self.graph.new_state() if self.graph is not None else None

    @property
    def _reach(self) -> int:
        """Most frames one window may commit: with its left context and look-ahead it must fit in one run
        (a positional table's length, `max_samples`); unbounded for graphs without such a limit."""
        limit = self.model.geometry.max_samples
        if limit is None:
            return self.model.window_frames
        return max(self.model.geometry.frames(limit) - self.left_context - self.right_context - 1, 1)

    @property
    def utterance_frames(self) -> int:
        return sum(len(e) for e in self.emissions)

    def accept(self, samples: np.ndarray) -> list[StreamResult]:
        """Add audio at the model rate; returns partial/final results it produced."""
        if self.graph is not None:
            results: list[StreamResult] = []
            request = self.take(samples)
            while request is not None:
                self.graph.run([request])
                results += self.give(request)
                request = self.take()
            return results
        if len(samples):
            self.buffer = np.concatenate([self.buffer, samples.astype(np.float32, copy=False)])
        return self._advance(final=False)

    def take(self, samples: np.ndarray | None = None, *, final: bool = False) -> ChunkRequest | None:
        """Cached path, first half of `accept`: queue `samples`, return the next chunk due (or None).

        Run it (`StreamGraph.run`, alone or with other streams' chunks), hand it to `give`, and
        call `take()` again until None: one message may hold several chunks."""
        assert self.graph is not None and self.graph_state is not None, "take/give need a bundle whose graph streams with caches"
        if self._whole_finals and samples is not None and len(samples):  # chunked Whisper-CTC: the utterance's audio stays for its final pass
            self.buffer = np.concatenate([self.buffer, samples.astype(np.float32, copy=False)])
        return self.graph.take(self.graph_state, samples, chunk_frames=self.stream_options.cached_chunk_frames, max_frames=self.model.window_frames,
                               final=final)

    def give(self, request: ChunkRequest) -> list[StreamResult]:
        """Cached path, second half of `accept`: commit the chunk's frames; endpoints, finals and the partial."""
        assert request.result is not None, "the chunk has not been run"
        frames = request.result
        results: list[StreamResult] = []
        while len(frames):
            room = max(self._max_utterance_frames - self.utterance_frames, 1)  # a final never passes max_utterance
            self._commit(frames[:room])
            frames = frames[room:]
            results.extend(self._check_endpoint())
        if self.stream_options.interim_results and self.utterance_frames and not self.ended:
            results.extend(self._partial())
        return results

    def finish(self) -> list[StreamResult]:
        """End of input: the right padding, the last frames, the last final result."""
        if self.ended:
            return []
        self.ended = True
        if self.graph is not None:
            results = []
            while (request := self.take(final=True)) is not None:
                self.graph.run([request])
                results += self.give(request)
            return results + self.flush()
        geometry = self.model.geometry
        total = self.offset + len(self.buffer) + geometry.right_pad
        short = max(geometry.min_samples, geometry.receptive_field) - total
        self.buffer = np.concatenate([self.buffer, np.zeros(geometry.right_pad + max(short, 0), np.float32)])
        results = self._advance(final=True)
        return results + self.flush()

    def flush(self) -> list[StreamResult]:
        """The final result of the utterance in progress, if it has frames (after the last chunk at the end)."""
        return [self._final()] if self.utterance_frames else []

    def _advance(self, *, final: bool) -> list[StreamResult]:
        geometry = self.model.geometry
        available = geometry.frames(self.offset + len(self.buffer))
        target = available if (final or geometry.exact) else max(available - self.right_context, self.committed)
        if target - self.committed < (1 if final else self.stream_options.chunk_frames):
            return []
        results: list[StreamResult] = []
        while self.committed < target:
            # Never run past max_utterance inside one window: a client that sends a minute at once
            # still gets finals no longer than it asked for.
            room = max(self._max_utterance_frames - self.utterance_frames, 1)
            step = min(target, self.committed + self.model.window_frames, self.committed + room, self.committed + self._reach)
            self._compute(step, available)
            results.extend(self._check_endpoint())
        if self.stream_options.interim_results and self.utterance_frames and not final:
            results.extend(self._partial())
        return results

    def _partial(self) -> list[StreamResult]:
        text = self._greedy_text()
        if text == self.last_partial:
            return []
        self.last_partial = text
        return [StreamResult("partial", text, start=self.utterance_start * self.frame_seconds)]

    def _commit(self, frames: np.ndarray) -> None:
        loud = np.flatnonzero(~quiet_frames(frames, self.bundle.manifest.tokens))
        if len(loud):
            self.last_loud = self.utterance_frames + int(loud[-1])
        self.best_path.extend(frames)
        self.emissions.append(frames)
        if self.history is not None:
            self.history.append(frames)
        self.committed += len(frames)

    def _compute(self, target: int, available: int) -> None:
        """Commit frames `[committed, target)`; drop input no later window needs."""
        geometry = self.model.geometry
        lo = max(self.committed - self.left_context, 0)
        hi = target if geometry.exact else min(available, target + self.right_context)  # look-ahead beyond `target` only
        start, end = geometry.span(lo, hi)
        window = self.buffer[start - self.offset : end - self.offset]
        frames = self.model.run(window[None])[0]
        self._commit(frames[self.committed - lo : target - lo])
        keep_from = geometry.span(max(self.committed - self.left_context, 0), self.committed + 1)[0]
        if self._whole_finals:  # the utterance's audio stays for its final pass
            keep_from = min(keep_from, geometry.span(self.utterance_start, self.utterance_start + 1)[0])
        if keep_from > self.offset:
            self.buffer = self.buffer[keep_from - self.offset :]
            self.offset = keep_from

    def _check_endpoint(self) -> list[StreamResult]:
        frames = self.utterance_frames
        if frames == 0:
            return []
        if frames >= self._max_utterance_frames:
            return [self._final()]
        silence = int(self.stream_options.endpoint_silence / self.frame_seconds)
        if frames <= silence:
            return []
        if self.last_loud < 0:  # nothing said yet: slide the utterance start instead of growing it
            self.utterance_start += frames
            self._new_utterance()
        elif self.last_loud < frames - silence:  # the last `silence` frames are all quiet
            return [self._final()]
        return []

    def _new_utterance(self) -> None:
        self.emissions = []
        self.best_path.reset()
        self.last_loud = -1

    @property
    def _max_utterance_frames(self) -> int:
        return max(math.ceil(self.stream_options.max_utterance / self.frame_seconds - 1e-6), 1)

    def _greedy_text(self) -> str:
        return self.bundle.manifest.tokens.decode(self.best_path.tokens())

    @property
    def _whole_finals(self) -> bool:
        return self.stream_options.whole_finals and not self.model.geometry.exact

    def _utterance_pass(self, start: int, frames: int) -> np.ndarray | None:
        """Emissions of utterance frames `[start, start + frames)` from one pass over their audio, or None
        when the audio is no longer held (it always is while `_whole_finals`)."""
        first, end = self.model.geometry.span(start, start + frames)
        if self.ended:  # chunked streams emit a file's frame count, whose last frames reach into the end padding
            end = min(end, self.offset + len(self.buffer))
        if first < self.offset or end > self.offset + len(self.buffer):
            return None
        redone = self.model.emissions(self.buffer[first - self.offset : end - self.offset])[:frames]
        return redone if len(redone) == frames else None

    def _final(self) -> StreamResult:
        emissions = np.concatenate(self.emissions) if self.emissions else np.zeros((0, len(self.bundle.manifest.tokens)), np.float32)
        start = self.utterance_start
        if self._whole_finals and len(emissions):
            emissions = redone if (redone := self._utterance_pass(start, len(emissions))) is not None else emissions
        transcript = self.recognizer.decode(self.bundle, emissions, self.resolved, duration=len(emissions) * self.frame_seconds, frame_offset=start,
                                            memory=self.memory)
        if transcript.memory is not None:
            self.memory = transcript.memory
        self._new_utterance()
        self.utterance_start = start + len(emissions)
        self.last_partial = ""
        if self.graph is not None:  # chunked streaming: the next utterance is a new segment (a convolutional cache carries on)
            self.graph.restart(self.graph_state)
            keep_from = self.model.geometry.span(self.utterance_start, self.utterance_start + 1)[0]
            if self._whole_finals and keep_from > self.offset:  # the finished utterance's audio is no longer needed
                self.buffer = self.buffer[keep_from - self.offset :]
                self.offset = keep_from
        self.recognizer.present(transcript, self.options)  # finals punctuated; partials (_greedy_text) stay raw
        return StreamResult("final", transcript.text, transcript, start=start * self.frame_seconds, end=self.utterance_start * self.frame_seconds)

