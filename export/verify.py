"""Parity checks: the exported graph must compute what the checkpoint computes.

fp32 graphs must agree with PyTorch to a relative error under 1e-4 (max absolute error over
the largest magnitude of the reference), on several lengths and batch sizes; quantized
graphs are measured against fp32 by greedy-token agreement and max logit error, and
refused when they change more than `max_changed` of the greedy outputs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from export.onnx import run_onnx
from export.onnx_utils import ParityError, relative_error

FP32_TOLERANCE = 1e-4


@dataclass(frozen=True)
class ParityReport:
    cases: int
    max_relative_error: float
    max_abs_error: float
    greedy_agreement: float  # share of frames whose argmax token agrees

    def to_json(self) -> dict[str, float]:
        return asdict(self)


def test_inputs(lengths: Sequence[int], batch_sizes: Sequence[int], *, seed: int = 0) -> list[np.ndarray]:
    """Random and speech-like (modulated harmonic) waveforms, `[B, N]` float32."""
    rng = np.random.default_rng(seed)
    batches = []
    for n in lengths:
        for b in batch_sizes:
            t = np.arange(n) / 16000
            rows = []
            for _ in range(b):
                f0 = rng.uniform(90, 250)
                voiced = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
                rows.append(0.1 * voiced + 0.02 * rng.standard_normal(n))
            batches.append(np.asarray(rows, dtype=np.float32))
    return batches


def compare(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, float, float]:
    if reference.shape != candidate.shape:
        raise ParityError(f"shape mismatch: reference {reference.shape}, exported {candidate.shape}")
    abs_err = float(np.abs(reference - candidate).max()) if reference.size else 0.0
    rel_err = relative_error(candidate, reference)
    agree = float((reference.argmax(-1) == candidate.argmax(-1)).mean()) if reference.size else 1.0
    return rel_err, abs_err, agree


def check_parity(reference_fn: Callable[[np.ndarray], np.ndarray], onnx_path: Path, inputs: list[np.ndarray], *, tolerance: float = FP32_TOLERANCE) -> ParityReport:
    """Run both on every input batch; raise `ParityError` when the relative error exceeds `tolerance`."""
    worst_rel = worst_abs = 0.0
    agreements = []
    for batch in tqdm(inputs, desc=f"parity {onnx_path.name}", unit="case", leave=False, file=sys.stderr, disable=not sys.stderr.isatty()):
        rel, abs_, agree = compare(reference_fn(batch), run_onnx(onnx_path, batch))
        worst_rel, worst_abs = max(worst_rel, rel), max(worst_abs, abs_)
        agreements.append(agree)
    report = ParityReport(len(inputs), worst_rel, worst_abs, float(np.mean(agreements)))
    if worst_rel > tolerance:
        raise ParityError(f"{onnx_path.name}: relative error {worst_rel:.2e} exceeds {tolerance:.0e} (max abs {worst_abs:.2e})")
    return report


def check_quantized(fp32_path: Path, quantized_path: Path, inputs: list[np.ndarray], *, max_changed: float) -> ParityReport:
    """Greedy agreement of a quantized graph with its fp32 graph; raise when too many frames change."""
    worst_abs = worst_rel = 0.0
    agreements = []
    for batch in tqdm(inputs, desc=f"parity {quantized_path.name}", unit="case", leave=False, file=sys.stderr, disable=not sys.stderr.isatty()):
        rel, abs_, agree = compare(run_onnx(fp32_path, batch), run_onnx(quantized_path, batch))
        worst_rel, worst_abs = max(worst_rel, rel), max(worst_abs, abs_)
        agreements.append(agree)
    report = ParityReport(len(inputs), worst_rel, worst_abs, float(np.mean(agreements)))
    if 1.0 - report.greedy_agreement > max_changed:
        raise ParityError(f"{quantized_path.name}: changes {100 * (1 - report.greedy_agreement):.1f}% of greedy outputs, over the {100 * max_changed:.0f}% allowed")
    return report
