"""Small ONNX helpers every exporter needs: a CPU session set up as the server sets up its own, the parity
measure and its error. (Quantization: `export.quantize`.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from app.asr.runtime import session_options


class ParityError(RuntimeError):
    """The exported graph does not reproduce the source model (or its quantized copy strays too far)."""


def cpu_session(path: Path, *, threads: int = 1) -> ort.InferenceSession:
    """An ONNX Runtime CPU session with the server's options (`app.asr.runtime.session_options`)."""
    return ort.InferenceSession(str(path), sess_options=session_options(threads=threads), providers=["CPUExecutionProvider"])


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |actual - expected| / max |expected|: one number that does not depend on the scale."""
    if actual.shape != expected.shape:
        raise ParityError(f"shape mismatch: exported {actual.shape}, reference {expected.shape}")
    if expected.size == 0:
        return 0.0
    scale = max(float(np.abs(expected).max()), 1e-12)
    return float(np.abs(actual.astype(np.float64) - expected.astype(np.float64)).max()) / scale

