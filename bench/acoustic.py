"""Section 1 of `asr-bench`: the acoustic model on ONNX Runtime (fp32, int8) against PyTorch
eager on the same architecture, input and thread count; and fp16 on a GPU when there is one.

Each engine computes the bundle's whole graph on one padded 5-second waveform `[1, N]`.
Engines are timed in turn, round after round, so slow drifts of a shared machine fall on
all of them alike; the figure kept is the median of the rounds.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import onnxruntime as ort

from app.asr.runtime import AcousticModel, FrameGeometry, create_session
from bench.inputs import BuiltBundle


def median_seconds(fns: dict[str, Callable[[], object]], *, repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median wall time of each function, timed round-robin."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def ort_model(bundle: BuiltBundle, precision: str, *, threads: int, providers: list[str] | None = None) -> AcousticModel:
    path = bundle.directory / bundle.manifest.files[precision].path
    session = create_session(path, threads=threads, providers=providers or ["CPUExecutionProvider"])
    return AcousticModel(session, FrameGeometry.from_manifest(bundle.manifest))


def measure_engines(bundle: BuiltBundle, torch_model: Any, samples: np.ndarray, *, threads: list[int], repeats: int) -> dict[str, Any]:
    """RTF of PyTorch eager, ORT fp32 and ORT int8 at each thread count, and ORT's speed-ups."""
    import torch

    rate = bundle.manifest.sample_rate
    seconds = len(samples) / rate
    result: dict[str, Any] = {"bundle": bundle.directory.name, "note": bundle.note, "audio_seconds": seconds, "repeats": repeats, "threads": {}}
    saved_threads = torch.get_num_threads()
    try:
        for n in threads:
            fp32 = ort_model(bundle, "fp32", threads=n)
            padded = fp32.pad(samples)[None]  # [1, N]: the bundle's own zero padding
            engines: dict[str, Callable[[], object]] = {"torch_eager": partial(_torch_run, torch_model, torch.from_numpy(padded), n),
                                                        "ort_fp32": partial(fp32.run, padded)}  # fmt: skip
            if "int8" in bundle.manifest.files:
                engines["ort_int8"] = partial(ort_model(bundle, "int8", threads=n).run, padded)
            times = median_seconds(engines, repeats=repeats)
            row: dict[str, Any] = {name: {"seconds": t, "rtf": t / seconds} for name, t in times.items()}
            row["speedup_fp32_vs_torch"] = times["torch_eager"] / times["ort_fp32"]
            if "ort_int8" in times:
                row["speedup_int8_vs_torch"] = times["torch_eager"] / times["ort_int8"]
                row["speedup_int8_vs_fp32"] = times["ort_fp32"] / times["ort_int8"]
            result["threads"][str(n)] = row
    finally:
        torch.set_num_threads(saved_threads)
    return result


def _torch_run(model: Any, tensor: Any, threads: int) -> object:
    import torch

    torch.set_num_threads(threads)
    with torch.inference_mode():
        return model(tensor)


def cuda_available() -> bool:
    return "CUDAExecutionProvider" in ort.get_available_providers()


def measure_gpu(fp16_bundle: BuiltBundle, samples: np.ndarray, *, batches: tuple[int, ...] = (1, 32), repeats: int) -> dict[str, Any]:
    """fp32 and fp16 wav2vec 2.0 on the CUDA execution provider at each batch size.

    Written for GPU hosts; not exercised on the CPU-only machines this was developed on."""
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    seconds = len(samples) / fp16_bundle.manifest.sample_rate
    models = {p: ort_model(fp16_bundle, p, threads=1, providers=providers) for p in ("fp32", "fp16") if p in fp16_bundle.manifest.files}
    result: dict[str, Any] = {"device": ort.get_device(), "audio_seconds": seconds, "batches": {}}
    for batch in batches:
        inputs = np.repeat(samples[None], batch, axis=0).astype(np.float32)
        times = median_seconds({p: partial(m.run, inputs) for p, m in models.items()}, repeats=repeats, warmup=2)
        row: dict[str, Any] = {p: {"seconds": t, "audio_seconds_per_second": batch * seconds / t} for p, t in times.items()}
        if "fp16" in times:
            row["speedup_fp16_vs_fp32"] = times["fp32"] / times["fp16"]
        result["batches"][str(batch)] = row
    return result
