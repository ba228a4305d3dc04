"""The Wav2Letter graph that streams with per-layer caches, and the check that it streams exactly.

`export_cached_onnx` writes one graph for both uses (`models.wav2letter.CachedWav2Letter`):
`waveform [B, N]` plus optional cache inputs, `emissions [B, T, V]` plus the updated caches.
The caches default to empty tensors stored in the graph (inputs that are also initializers),
so a caller that feeds only `waveform` runs exactly the offline model: the bundle keeps one
file and one copy of the weights, and the offline contract of acoustic graphs is unchanged.

`check_streaming` runs the graph the way the server does (`app.asr.stream_graph`), in odd
chunk sizes and in a batch of streams, against the offline emissions of the same graph.
`add_streaming` puts the streaming graph into an existing bundle from its checkpoint.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.asr.manifest import CacheEntry, Manifest, StreamingSpec
from export.onnx import ACOUSTIC_INPUT, ACOUSTIC_OUTPUT, OPSET, finish_bundle
from export.verify import ParityError, compare
from models.wav2letter import CachedWav2Letter, Wav2Letter, Wav2LetterConfig

STREAM_TOLERANCE = 1e-4  # relative error of streamed against offline emissions (float summation order only)
SAME_MODEL_TOLERANCE = 1e-2  # `add_streaming`: the checkpoint's graph against the bundle's (greedy output must agree too)
CHUNK_PATTERNS = ((1,), (7, 3), (16, 1, 5), (50,))  # chunk sizes in frames, cycled, for the check


def streaming_spec(model: Wav2Letter, precisions: tuple[str, ...] = ("fp32",)) -> StreamingSpec:
    specs = CachedWav2Letter(model).cache_specs()
    return StreamingSpec(caches=tuple(CacheEntry(s.name, s.shape) for s in specs), precisions=precisions)


def export_cached_onnx(model: Wav2Letter, path: Path, *, example_frames: int = 100) -> StreamingSpec:
    """Export `CachedWav2Letter(model)` with empty default caches; returns the manifest's `streaming`."""
    import onnx
    from onnx import numpy_helper

    cached = CachedWav2Letter(model.eval()).eval()
    specs = cached.cache_specs()
    stride = model.config.frame_stride
    example = (torch.randn(1, example_frames * stride) * 0.1, *(torch.randn(1, *s.shape) for s in specs))
    names = [s.name for s in specs]
    dynamic: dict[str, dict[int, str]] = {ACOUSTIC_INPUT: {0: "batch", 1: "samples"}, ACOUSTIC_OUTPUT: {0: "batch", 1: "frames"}}
    for s in specs:
        time_axis = len(s.shape)  # the last axis; the batch axis comes first
        dynamic[s.name] = {0: "batch", time_axis: f"{s.name}_length"}
        dynamic[s.name + "_out"] = {0: "batch", time_axis: f"{s.name}_out_length"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(cached, example, str(path), input_names=[ACOUSTIC_INPUT, *names], output_names=[ACOUSTIC_OUTPUT, *(n + "_out" for n in names)],
                          dynamic_axes=dynamic, opset_version=OPSET, dynamo=False)
    graph = onnx.load(str(path))
    for s in specs:  # empty defaults: fed only `waveform`, the graph is the offline one
        graph.graph.initializer.append(numpy_helper.from_array(np.zeros((1, *s.shape[:-1], 0), np.float32), s.name))
    onnx.save(graph, str(path))
    return streaming_spec(model)


def check_streaming(onnx_path: Path, manifest: Manifest, spec: StreamingSpec, inputs: list[np.ndarray], *,
                    tolerance: float = STREAM_TOLERANCE) -> dict[str, Any]:
    """Stream each waveform through the graph in several chunk patterns, alone and all in one batch, and
    compare with the graph's own offline emissions; raise `ParityError` past `tolerance`."""
    from app.asr.runtime import AcousticModel, FrameGeometry, create_session
    from app.asr.stream_graph import StreamGraph

    model = AcousticModel(create_session(onnx_path, threads=1, providers=["CPUExecutionProvider"]), FrameGeometry.from_manifest(manifest))
    graph = StreamGraph(model, spec)
    worst_rel = worst_abs = 0.0
    agreement = []
    for pattern in CHUNK_PATTERNS:
        streamed = stream_through(graph, inputs, pattern)
        for waveform, frames in zip(inputs, streamed, strict=True):
            rel, abs_, agree = compare(model.emissions(waveform), frames)
            worst_rel, worst_abs = max(worst_rel, rel), max(worst_abs, abs_)
            agreement.append(agree)
    report = {"cases": len(inputs) * len(CHUNK_PATTERNS), "chunk_patterns": [list(p) for p in CHUNK_PATTERNS], "max_relative_error": worst_rel,
              "max_abs_error": worst_abs, "greedy_agreement": float(np.mean(agreement)), "warmup_frames": graph.warmup_frames,
              "cache_floats": int(sum(np.prod(c.shape) for c in spec.caches))}
    if worst_rel > tolerance:
        raise ParityError(f"{onnx_path.name}: streamed emissions differ from offline by {worst_rel:.2e} (relative), over {tolerance:.0e}")
    return report


def stream_through(graph: Any, waveforms: list[np.ndarray], pattern: tuple[int, ...]) -> list[np.ndarray]:
    """Every waveform streamed at once, message sizes cycling through `pattern` (frames) plus an odd tail,
    chunks of all streams run together: one `StreamGraph.run` per round."""
    states = [graph.new_state() for _ in waveforms]
    out: list[list[np.ndarray]] = [[] for _ in waveforms]
    positions = [0] * len(waveforms)
    step = 0
    while True:
        size = pattern[step % len(pattern)] * graph.stride + 7 * (step % 3)  # not a multiple of the stride
        step += 1
        requests = []
        for i, waveform in enumerate(waveforms):
            done = positions[i] >= len(waveform)
            piece = waveform[positions[i] : positions[i] + size]
            positions[i] += size
            request = graph.take(states[i], piece, final=done)
            if request is not None:
                requests.append((i, request))
        if not requests:
            if all(p >= len(w) for p, w in zip(positions, waveforms, strict=True)) and all(s.finished for s in states):
                break
            continue
        graph.run([r for _, r in requests])
        for i, request in requests:
            out[i].append(request.result)
    return [np.concatenate(frames) if frames else np.zeros((0, 0), np.float32) for frames in out]


def add_streaming(bundle: Path, checkpoint: Path) -> Manifest:
    """Replace an exact-context Wav2Letter bundle's fp32 graph by the graph that also streams, from the
    checkpoint it was exported from: checked against the bundle's own graph offline (the fp16 rounding
    of compacted weights is repeated), and streamed against offline; the int8 graph is kept."""
    from export.checkpoints import load_project_checkpoint
    from export.compact import store_weights_fp16
    from export.verify import check_quantized, test_inputs

    manifest = Manifest.load(bundle)
    if manifest.architecture != "wav2letter" or manifest.context != "exact":
        raise ValueError(f"{bundle}: only exact-context Wav2Letter bundles stream with caches")
    model, *_ = load_project_checkpoint(checkpoint)
    if "config" not in manifest.extra or Wav2LetterConfig.from_json(manifest.extra["config"]) != model.config:
        raise ValueError(f"{checkpoint}: its architecture differs from the bundle's (manifest extra.config)")
    target = bundle / manifest.files["fp32"].path
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "model.onnx"
        spec = export_cached_onnx(model, fresh)
        if manifest.parity.get("fp32_weights_fp16"):
            store_weights_fp16(fresh, fresh)
        pad = ((0, 0), (manifest.left_pad, manifest.right_pad))
        same = check_quantized(target, fresh, [np.pad(b, pad) for b in test_inputs([16000, 48000], [1, 2], seed=5)], max_changed=0.001)
        if same.max_relative_error > SAME_MODEL_TOLERANCE:  # a checkpoint stored in fp16 rounds BatchNorm statistics too
            raise ParityError(f"{checkpoint}: not the checkpoint of {bundle} (relative error {same.max_relative_error:.2e} against its graph)")
        report = check_streaming(fresh, manifest, spec, [b[0] for b in test_inputs([8000, 24000, 41000], [1], seed=6)])
        shutil.move(fresh, target)
    parity = {**manifest.parity, "streaming": report, "streaming_graph_vs_previous": same.to_json()}
    manifest = replace(manifest, streaming=spec, parity=parity)
    print(f"streaming graph in {target.name}: {len(spec.caches)} caches, {report}")
    return finish_bundle(bundle, manifest, onnx_files={p: e.path for p, e in manifest.files.items()}, side_files=tuple(manifest.side_files))
