"""Writing acoustic ONNX graphs and bundles: the parts every exporter shares."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.asr.manifest import FileEntry, Manifest, file_entry

ACOUSTIC_INPUT = "waveform"
ACOUSTIC_OUTPUT = "emissions"
OPSET = 17


def export_acoustic_onnx(module: torch.nn.Module, path: Path, *, example_samples: int = 32000) -> Path:
    """Export `waveform [B, N] -> emissions [B, T, V]` with dynamic batch and time axes."""
    module = module.eval()
    example = torch.randn(1, example_samples) * 0.1
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=[ACOUSTIC_INPUT],
            output_names=[ACOUSTIC_OUTPUT],
            dynamic_axes={ACOUSTIC_INPUT: {0: "batch", 1: "samples"}, ACOUSTIC_OUTPUT: {0: "batch", 1: "frames"}},
            opset_version=OPSET,
            dynamo=False,
        )
    return path


def run_onnx(path: Path, batch: np.ndarray, *, threads: int = 1) -> np.ndarray:
    from export.onnx_utils import cpu_session

    session = cpu_session(path, threads=threads)
    return session.run(None, {session.get_inputs()[0].name: batch.astype(np.float32)})[0]


def finish_bundle(out: Path, manifest: Manifest, *, onnx_files: dict[str, str], side_files: tuple[str, ...] = ()) -> Manifest:
    """Checksum the files, write `manifest.json`, and re-read it as the server will."""
    files = {precision: file_entry(out, name) for precision, name in onnx_files.items()}
    side: dict[str, FileEntry] = {name: file_entry(out, name) for name in side_files}
    final = Manifest(**{**manifest.__dict__, "files": files, "side_files": side})
    final.write(out)
    return Manifest.load(out)


def describe_source(**fields: Any) -> dict[str, Any]:
    from export import EXPORTER_VERSION

    return {"exporter_version": EXPORTER_VERSION, "torch": torch.__version__, **{k: str(v) for k, v in fields.items()}}
