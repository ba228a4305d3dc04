"""Wav2Letter checkpoints (the project's own, ASG or CTC, and torchaudio's) to acoustic bundles.

The feature front-end is inside the graph, so every bundle takes the raw waveform. The
project's models use valid convolutions: the manifest records the zero padding the runtime
adds and declares `context = "exact"`. torchaudio's Wav2Letter pads inside its layers, so
its bundles are `context = "full"` (windows with overlap) and decode with CTC, blank at
the index the user names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from app.asr.manifest import DecodingDefaults, Manifest
from app.asr.tokens import TokenTable
from export.checkpoints import CheckpointError, load_project_checkpoint
from export.onnx import describe_source, export_acoustic_onnx, finish_bundle
from export.quantize import quantize_int8, quantize_static_int8, quiet_root_logger
from export.streaming import check_streaming, export_cached_onnx
from export.verify import ParityError, check_parity, check_quantized, test_inputs
from models.wav2letter import Wav2Letter, Wav2LetterConfig, load_torchaudio_state_dict

MAX_INT8_CHANGED = 0.05


def export_wav2letter(checkpoint: Path, out: Path, *, name: str | None = None, int8: bool = False, torchaudio_tokens: Path | None = None,
                      torchaudio_input: str = "waveform", torchaudio_features: int = 1, blank: str = "<blank>",
                      decoding: DecodingDefaults | None = None, calibration: list[np.ndarray] | None = None, log: bool = True) -> Manifest:
    """Write a bundle for a project checkpoint, or for a torchaudio state dict when `torchaudio_tokens` is given."""
    out.mkdir(parents=True, exist_ok=True)
    if torchaudio_tokens is not None:
        model, table, criterion, transitions = _load_torchaudio(checkpoint, torchaudio_tokens, torchaudio_input, torchaudio_features, blank)
    else:
        model, table, criterion, transitions = load_project_checkpoint(checkpoint)
    config = model.config
    exact = config.is_valid_conv and config.frontend == "logmel"
    left, right = config.padding() if exact else (0, 0)
    streaming = None
    if exact:  # one graph for both: fed `waveform` alone it is the offline model, fed caches too it streams
        offline_path = export_acoustic_onnx(model, out / "model.offline.onnx")  # what int8 is quantized from
        onnx_path = out / "model.onnx"
        streaming = export_cached_onnx(model, onnx_path)
    else:
        offline_path = onnx_path = export_acoustic_onnx(model, out / "model.onnx")

    padded_inputs = [np.pad(b, ((0, 0), (left, right))) for b in test_inputs([1600, 16000, 56000], [1, 3])]

    def reference(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(batch)).numpy()

    parity = check_parity(reference, onnx_path, padded_inputs)
    report = {"fp32": parity.to_json()}
    _say(log, f"parity fp32 vs PyTorch: {parity.cases} cases, max relative error {parity.max_relative_error:.2e}, greedy agreement {parity.greedy_agreement:.4f}")
    files = {"fp32": "model.onnx"}
    side: tuple[str, ...] = ()
    if transitions is not None:
        np.save(out / "transitions.npy", transitions)
        side = ("transitions.npy",)
    if int8:
        with quiet_root_logger():
            if exact:  # convolutions: static QDQ int8 runs fast; calibrated on real audio when given
                calibration_inputs = [np.pad(w, (left, right))[None] for w in calibration] if calibration else padded_inputs
                int8_path = quantize_static_int8(offline_path, out / "model.int8.onnx", calibration_inputs, exclude_first=2)
            else:
                int8_path = quantize_int8(offline_path, out / "model.int8.onnx", exclude_first=1 if config.frontend == "logmel" else 0)
        checks = [np.pad(w, (left, right))[None] for w in calibration[:8]] if calibration else padded_inputs
        q = check_quantized(onnx_path, int8_path, checks, max_changed=MAX_INT8_CHANGED)
        report["int8"] = q.to_json()
        files["int8"] = "model.int8.onnx"
        _say(log, f"parity int8 vs fp32: greedy agreement {q.greedy_agreement:.4f}, max logit error {q.max_abs_error:.3f}")
    if offline_path != onnx_path:
        offline_path.unlink()
    manifest = Manifest(
        name=name or out.name, kind="acoustic", architecture="wav2letter", tokens=table, files={}, criterion=criterion,  # type: ignore[arg-type]
        transitions="transitions.npy" if transitions is not None else None, sample_rate=config.sample_rate,
        # Padded layers (torchaudio's model) keep about one frame per stride: windows are placed by that.
        frame_stride=config.frame_stride, receptive_field=config.receptive_field if exact else config.frame_stride,
        left_pad=left, right_pad=right, context="exact" if exact else "full", min_samples=0 if exact else config.frame_stride,
        decoding=decoding or DecodingDefaults(), parity=report,
        source=describe_source(kind="torchaudio" if torchaudio_tokens else "project", checkpoint=checkpoint.name),
        extra={"config": config.to_json()}, streaming=streaming,
    )
    if streaming is not None:
        report["streaming"] = check_streaming(onnx_path, manifest, streaming, [b[0] for b in test_inputs([8000, 24000, 41000], [1], seed=6)])
        _say(log, f"parity streamed vs offline: {report['streaming']['cases']} cases, max relative error {report['streaming']['max_relative_error']:.2e}")
    return finish_bundle(out, manifest, onnx_files=files, side_files=side)


def _load_torchaudio(checkpoint: Path, tokens_file: Path, input_type: str, num_features: int, blank: str) -> tuple[Wav2Letter, TokenTable, str, None]:
    if not checkpoint.is_file() or not tokens_file.is_file():
        raise CheckpointError(f"need both a state dict ({checkpoint}) and a token list ({tokens_file})")
    tokens = tuple(line.strip() for line in tokens_file.read_text().splitlines() if line.strip())
    if blank not in tokens:
        raise CheckpointError(f"{tokens_file}: the blank token {blank!r} is not in the token list")
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if input_type != "waveform":
        raise CheckpointError("only input_type='waveform' torchaudio Wav2Letter models can run on raw audio in the server")
    config = Wav2LetterConfig.torchaudio(len(tokens), input_type=input_type, num_features=num_features)
    try:
        model = load_torchaudio_state_dict(state, config)
    except (KeyError, RuntimeError, ValueError) as e:
        raise CheckpointError(f"{checkpoint}: does not fit torchaudio Wav2Letter with {len(tokens)} classes: {str(e).splitlines()[0]}") from e
    return model.eval(), TokenTable(tokens, blank=blank), "ctc", None


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, flush=True)


__all__ = ["CheckpointError", "ParityError", "export_wav2letter"]
