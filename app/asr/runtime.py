"""ONNX Runtime sessions for acoustic bundles, and window-by-window emission computation.

One `InferenceSession` per bundle and precision, shared by every request (ORT sessions are
thread-safe for `run`, which releases the GIL). The CUDA execution provider is chosen when
`onnxruntime-gpu` sees a GPU and the settings allow it; otherwise the CPU provider.

Long audio is computed in windows of output frames. For `context == "exact"` bundles
(convolutional) each window gets exactly the input samples its frames depend on, so the
concatenated emissions equal one pass over the whole file: no seams, bounded memory. For
`context == "full"` bundles (attention) each window also computes `overlap` frames of
context on both sides and keeps only its centre.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from app.asr import allocator
from app.asr.errors import InvalidAudio
from app.asr.manifest import Manifest
from app.asr.stream_protocol import CachedStreamGraph

log = logging.getLogger(__name__)


def select_providers(device: str) -> list[str]:
    """`device` is "auto", "cpu" or "cuda"; falls back to the CPU with a log line."""
    available = ort.get_available_providers()
    if device in ("auto", "cuda") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        log.warning("CUDA requested but ONNX Runtime offers only %s; running on the CPU", available)
    return ["CPUExecutionProvider"]


def session_options(*, threads: int) -> ort.SessionOptions:
    """The options of every session the server runs (acoustic models, rescoring and punctuation LMs).

    Memory patterns are off: ONNX Runtime plans and caches one per input shape, and every audio
    length is a new shape. Its CPU arena stays on (buffers reused within and across runs: turning
    it off costs 40-100% more CPU in page faults on long inputs); long inputs give the arena's
    memory back when they end (`SHRINK_FROM_SAMPLES`)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.enable_mem_pattern = False
    return options


# Resident memory stays flat whatever the input lengths. ONNX Runtime's CPU arena grows to the
# largest activations any run of its session has needed (a 30 s clip through wav2vec 2.0 needs
# about 100 MB per layer output; with requests in parallel and a session per model and
# precision, over a gigabyte in all) and keeps them. A run on an input of at least this many
# samples (5 s at 16 kHz) therefore shrinks the arena when it ends, and such runs take turns on
# their session: a shrink frees only regions no run is using, so two long runs overlapping
# would keep each other's memory. The C heap's free pages are then returned too
# (`allocator.trim`). Shorter runs and stream chunks keep reusing what they need.
# Measured in docs/reliability.md ("Memory").
SHRINK_FROM_SAMPLES = 80_000


def shrinking_run_options() -> ort.RunOptions:
    """Run options that give the arena's free regions back when the run ends."""
    options = ort.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


def create_session(path: Path, *, threads: int, providers: list[str]) -> ort.InferenceSession:
    allocator.configure()
    return ort.InferenceSession(str(path), sess_options=session_options(threads=threads), providers=providers)


@dataclass(frozen=True)
class FrameGeometry:
    """How output frames map to input samples (see `app.asr.manifest`)."""

    stride: int
    receptive_field: int
    left_pad: int
    right_pad: int
    exact: bool
    min_samples: int
    max_samples: int | None = None  # longest input one run may take (a positional table's reach); None: any

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> FrameGeometry:
        return cls(manifest.frame_stride, manifest.receptive_field, manifest.left_pad, manifest.right_pad,
                   manifest.context == "exact", manifest.min_samples, manifest.max_samples)

    def frames(self, padded_samples: int) -> int:
        """Output frames for a padded input of `padded_samples` samples."""
        if padded_samples < self.receptive_field:
            return 0
        return (padded_samples - self.receptive_field) // self.stride + 1

    def span(self, first: int, last: int) -> tuple[int, int]:
        """Padded-input sample range `[start, end)` that output frames `[first, last)` depend on."""
        return first * self.stride, (last - 1) * self.stride + self.receptive_field


class AcousticModel:
    """Runs one acoustic ONNX graph: waveform `[B, N]` -> emissions `[B, T, V]`."""

    def __init__(self, session: ort.InferenceSession, geometry: FrameGeometry, *, window_frames: int = 1500, overlap_frames: int = 150) -> None:
        self.session = session
        self.geometry = geometry
        self.overlap_frames = 0 if geometry.exact else overlap_frames
        if geometry.max_samples is not None:  # a window with its overlap on both sides must fit in one run
            fits = geometry.frames(geometry.max_samples) - 2 * self.overlap_frames
            if fits < 1:
                raise ValueError(f"max_samples {geometry.max_samples} leaves no room for a window with {self.overlap_frames} frames of overlap each side")
            window_frames = min(window_frames, fits)
        self.window_frames = window_frames
        self.input_name = session.get_inputs()[0].name
        self.output_name = session.get_outputs()[0].name
        self.long_runs = threading.Lock()  # runs of SHRINK_FROM_SAMPLES or more take turns (see there)
        # the cached streaming path (app.asr.stream_graph or app.asr.chunked_stream), set by app.asr.bundle when the graph has one
        self.streaming: CachedStreamGraph | None = None
        providers = getattr(session, "get_providers", lambda: ["CPUExecutionProvider"])()  # stand-in sessions in tests have none
        self.on_gpu = providers[:1] == ["CUDAExecutionProvider"]

    def run(self, batch: np.ndarray) -> np.ndarray:
        """One ONNX call on an already padded batch `[B, N]` -> `[B, T, V]`.

        Raises `InvalidAudio` rather than return non-finite emissions: input samples are clipped
        where they enter (`app.asr.audio.check_samples`), so this keeps any other cause (a broken
        graph, say) away from the decoders, whose searches assume finite scores."""
        feeds = {self.input_name: batch.astype(np.float32, copy=False)}
        if batch.size >= SHRINK_FROM_SAMPLES:
            with self.long_runs:
                out = self.session.run([self.output_name], feeds, shrinking_run_options())[0]
                allocator.trim()
        else:
            out = self.session.run([self.output_name], feeds)[0]
        if not np.isfinite(out).all():
            raise InvalidAudio("the acoustic model produced non-finite scores for this audio")
        return out

    def pad(self, samples: np.ndarray) -> np.ndarray:
        """The bundle's zero padding around a waveform, and up to the shortest accepted input."""
        g = self.geometry
        padded = np.concatenate([np.zeros(g.left_pad, np.float32), samples.astype(np.float32, copy=False), np.zeros(g.right_pad, np.float32)])
        short = max(g.min_samples, g.receptive_field) - len(padded)
        return np.pad(padded, (0, short)) if short > 0 else padded

    def emissions(self, samples: np.ndarray, progress: Callable[[float], None] | None = None) -> np.ndarray:
        """Emissions `[T, V]` for one waveform, computed in windows of `window_frames` frames.

        `progress` is called with the share of the input (0..1) each window covered."""
        padded = self.pad(samples)
        total = self.geometry.frames(len(padded))
        limit = self.geometry.max_samples
        if total <= self.window_frames + 2 * self.overlap_frames and (limit is None or len(padded) <= limit):
            out = self.run(padded[None])[0]
            return out[:total] if self.geometry.exact else out  # full-context graphs may pad inside
        pieces = []
        for first in range(0, total, self.window_frames):
            last = min(first + self.window_frames, total)
            pieces.append(self.frames_range(padded, first, last, total))
            if progress is not None:
                progress((last - first) / total)
        return np.concatenate(pieces)

    def frames_range(self, padded: np.ndarray, first: int, last: int, total: int) -> np.ndarray:
        """Frames `[first, last)` of the padded input, with overlap context for attention models."""
        lo, hi = max(first - self.overlap_frames, 0), min(last + self.overlap_frames, total)
        start, end = self.geometry.span(lo, hi)
        out = self.run(padded[None, start:end])[0]
        return out[first - lo : first - lo + (last - first)]

    def emissions_batch(self, waveforms: list[np.ndarray]) -> list[np.ndarray]:
        """Emissions of several waveforms in as few calls as stay exact; each equals `emissions(w)`.

        Exact-context bundles batch right-padded with zeros: their frames never see the padding.
        Full-context graphs (wav2vec 2.0, exported without an attention mask) would attend to it,
        so they batch only waveforms of the same length, whose rows hold no padding at all; a
        length seen once runs alone. Long inputs, which are windowed, run one by one.
        """
        if len(waveforms) == 1:
            return [self.emissions(w) for w in waveforms]
        padded = [self.pad(w) for w in waveforms]
        if max(self.geometry.frames(len(p)) for p in padded) > self.window_frames:
            return [self.emissions(w) for w in waveforms]
        if not self.geometry.exact:
            groups: dict[int, list[int]] = {}
            for i, p in enumerate(padded):
                groups.setdefault(len(p), []).append(i)
            results: list[np.ndarray] = [np.zeros(0, np.float32)] * len(padded)
            for rows in groups.values():
                out = self.run(np.stack([padded[i] for i in rows]))
                for j, i in enumerate(rows):
                    results[i] = out[j]
            return results
        width = max(len(p) for p in padded)
        batch = np.zeros((len(padded), width), np.float32)
        for i, p in enumerate(padded):
            batch[i, : len(p)] = p
        out = self.run(batch)
        return [out[i, : self.geometry.frames(len(p))] for i, p in enumerate(padded)]
