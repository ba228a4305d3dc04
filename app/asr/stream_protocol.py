"""What `Stream`, the scheduler and the capacity measurement ask of a cached streaming graph.

Two graphs stream with state carried between calls: the convolutional caches of Wav2Letter
(`app.asr.stream_graph.StreamGraph`) and the per-layer key/value cache of chunked Whisper-CTC
(`app.asr.chunked_stream.ChunkedStreamGraph`). They differ in what a chunk is (the stream's option,
or the block the model was trained with), in look-ahead and in whether company in one call pays,
so those are stated here as attributes rather than probed for. This module imports nothing of
either, so `app.asr.runtime` can name the type without an import circle.
"""

from __future__ import annotations

from typing import Any, Protocol


class CachedStreamGraph(Protocol):
    stride: int  # samples per output frame
    chunk_frames: int | None  # frames per call when the graph fixes them (a trained block mask); None: the stream's option
    lookahead_samples: int | None  # samples past a chunk's last frame needed before it runs; None: the geometry's right padding
    max_batch: int | None  # most streams one call should carry; None: the scheduler's limit
    calls: int  # ONNX Runtime calls made
    rows: int  # stream chunks they carried

    def new_state(self) -> Any: ...

    def take(self, state: Any, samples: Any = None, *, chunk_frames: int = ..., max_frames: int = ..., final: bool = ...) -> Any:
        """Queue samples and return the next request due, or None."""

    def run(self, requests: list[Any]) -> None:
        """Compute every request's frames into `request.result`, advancing each state."""

    def restart(self, state: Any) -> None:
        """After a final result: what the next utterance starts from (a new segment, or nothing changes)."""
