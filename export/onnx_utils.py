"""Small ONNX helpers every exporter needs: a CPU session, the parity measure, int8 quantization."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort


class ParityError(RuntimeError):
    """The exported graph disagrees with the PyTorch model beyond the tolerance."""


def cpu_session(path: Path, *, threads: int = 1) -> ort.InferenceSession:
    """An ONNX Runtime CPU session with full graph optimisation, as the server would run it."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |actual - expected| / max |expected|: one number that does not depend on the scale."""
    if actual.shape != expected.shape:
        raise ParityError(f"shape mismatch: exported {actual.shape}, reference {expected.shape}")
    if expected.size == 0:
        return 0.0
    scale = max(float(np.abs(expected).max()), 1e-12)
    return float(np.abs(actual.astype(np.float64) - expected.astype(np.float64)).max()) / scale


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantization of the MatMul/Gemm weights (activations stay float)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quiet the "consider pre-processing" advice on every call
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
