"""Whisper-encoder CTC models to acoustic bundles: a checkpoint of `models.train.whisper_ctc`, or a
CTranslate2 `model.bin` (the pretrained encoder with an untrained head: for tests and plumbing).

The graph is `waveform [B, N] -> emissions [B, T, V]` (CTC log-probabilities) with Whisper's log-mel
front end inside it, so the server needs nothing but ONNX Runtime. Frame t is centred on sample
320 t; the positional table is sliced to the input, so any length up to 30 s runs in one call, and
the runtime windows longer files with overlap (`context = "full"`: the encoder attends over its
whole input, and the log-mel clamps at the input's maximum).

Checks, as the accuracy issue asks: the fp32 graph against PyTorch (at most 1e-4 relative error
on log-probabilities, lengths 0.1-20 s, batch 1-2); int8 (dynamic, weights only, the DFT and mel
projections left in float) against fp32 by greedy agreement on the test waveforms, and, with
`dev`, by the share of words its greedy transcripts keep from fp32's on real speech (at least
97%). The bundle ships the precisions asked for (`precisions`), by default int8 alone, the one
the server runs, with the fp32 graph used for the checks and then dropped. Whisper's MIT notice
goes into the bundle (`LICENSE-whisper.txt`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from app.asr.decoders.greedy import ctc_segments
from app.asr.manifest import DecodingDefaults, Manifest
from app.asr.metrics import error_rates
from app.asr.tokens import ctc_letters
from export.onnx import describe_source, export_acoustic_onnx, finish_bundle
from export.verify import ParityError, check_parity, check_quantized, test_inputs
from models.whisper_ctc import FRAME_STRIDE, N_FFT, WhisperCTC

PARITY_LENGTHS = (1600, 7123, 32000, 80000, 320000)  # 0.1 s to 20 s, one not a multiple of the stride
PARITY_BATCHES = (1, 2)
STREAM_LENGTHS = (150, 7123, 80000)  # streamed against one masked pass: shorter than the STFT window, odd, 5 s
MAX_INT8_CHANGED = 0.10  # greedy frames on the synthetic test waveforms: near ties there, so loose; real speech decides (below)
MIN_INT8_WORD_AGREEMENT = 0.97  # words of fp32's greedy transcripts int8 keeps, on real speech (`min_agreement`)
LICENSE_FILE = "LICENSE-whisper.txt"
WHISPER_LICENSE = """The encoder weights of this bundle derive from OpenAI's Whisper (https://github.com/openai/whisper),
converted to CTranslate2 by SYSTRAN (faster-whisper) and fine-tuned with a CTC head by this project.

MIT License

Copyright (c) 2022 OpenAI

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


class EmissionsGraph(nn.Module):
    """`waveform [B, N] -> log-probabilities [B, T, V]`; rows of a batch are whole inputs (no padding mask)."""

    def __init__(self, model: WhisperCTC) -> None:
        super().__init__()
        self.model = model

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.model(waveform)[0]


def load_source(source: Path, init: Path | None = None) -> tuple[WhisperCTC, dict[str, Any]]:
    """A model and its description from a recipe checkpoint (`.pt`) or a CTranslate2 `model.bin`."""
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such checkpoint or model.bin")
    if source.suffix == ".pt":
        from models.train.whisper_ctc import load_checkpoint

        saved = torch.load(source, map_location="cpu", weights_only=False)
        model = load_checkpoint(source, init)
        return model, {"kind": "whisper_ctc_checkpoint", "checkpoint": source.name, "init": Path(init or saved["init"]).name,
                       "step": saved.get("step"), "minutes": round(float(saved.get("elapsed", 0.0)) / 60, 1), "train_config": saved.get("config")}  # fmt: skip
    from models.whisper_ct2 import load_whisper_ctc

    model = load_whisper_ctc(source, n_tokens=len(ctc_letters())).eval()
    return model, {"kind": "ctranslate2", "model": source.name, "head": "untrained"}


def greedy_texts(path: Path, waves: Sequence[np.ndarray]) -> list[str]:
    from export.onnx_utils import cpu_session

    table = ctc_letters()
    session = cpu_session(path, threads=2)  # one session for every clip
    name = session.get_inputs()[0].name
    texts = []
    for wave in waves:
        emissions = session.run(None, {name: wave[None].astype(np.float32)})[0][0]
        texts.append(table.decode([t for t, _ in ctc_segments(emissions.argmax(-1), table.blank_id)]))
    return texts


def dev_waves(dev: Path, limit: int) -> tuple[list[np.ndarray], list[str]]:
    from app.asr.audio import decode_audio
    from models.train.manifest import read_manifest

    rows = read_manifest(dev, limit=limit)
    return [decode_audio(Path(r["audio"]).read_bytes(), sample_rate=16000, max_seconds=30).samples for r in rows], [r["text"] for r in rows]


def export_whisper_ctc(source: Path, out: Path, *, init: Path | None = None, **options: Any) -> Manifest:
    """Write a bundle for a checkpoint or model.bin (`write_bundle`'s options); raise `ParityError` when a graph fails its check."""
    model, description = load_source(source, init)
    return write_bundle(model, out, description=description, **options)


def write_bundle(model: WhisperCTC, out: Path, *, description: dict[str, Any], name: str | None = None, precisions: Sequence[str] = ("int8",),
                 dev: Path | None = None, dev_limit: int = 60, decoding: DecodingDefaults | None = None, default: bool = False,
                 min_agreement: float = MIN_INT8_WORD_AGREEMENT, log: bool = True) -> Manifest:  # fmt: skip
    """Export `model`, check every graph, and write the bundle with the precisions asked for."""
    unknown = set(precisions) - {"fp32", "int8"}
    if unknown or not precisions:
        raise ValueError(f"precisions must be fp32 and/or int8, got {list(precisions)}")
    model = model.eval()
    if model.config.n_tokens != len(ctc_letters()):
        raise ValueError(f"the head has {model.config.n_tokens} outputs, the project's CTC letters are {len(ctc_letters())}")
    graph = EmissionsGraph(model).eval()
    out.mkdir(parents=True, exist_ok=True)
    fp32_path = out / "model.onnx"
    streams = streamable(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if streams:  # one graph for files (only `waveform` fed) and for chunked streams (models.whisper_stream)
            from export.whisper_stream import export_streaming_onnx

            export_streaming_onnx(model, fp32_path)
        else:
            export_acoustic_onnx(graph, fp32_path)

    def reference(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return graph(torch.from_numpy(batch)).numpy()

    inputs = test_inputs(PARITY_LENGTHS, PARITY_BATCHES)
    report: dict[str, Any] = {"fp32": check_parity(reference, fp32_path, inputs).to_json()}
    _say(log, f"parity fp32 vs PyTorch: {report['fp32']['cases']} cases (0.1-20 s, batch 1-2), max relative error {report['fp32']['max_relative_error']:.2e}")
    files: dict[str, str] = {}
    if "int8" in precisions:
        from export.quantize import quantize_int8, quantize_per_row, quiet_root_logger

        int8_path = out / "model.int8.onnx"
        # float: the DFT convolution and mel projection (the spectrum's range needs it) and the two stem convolutions;
        # per-channel scales: on an early checkpoint they kept 92.5% of fp32's greedy words against 87.6% per tensor
        with quiet_root_logger():
            if streams:  # activations quantized per row: chunks and batches stay exact (export.quantize.quantize_per_row)
                quantize_per_row(fp32_path, int8_path)
            else:
                quantize_int8(fp32_path, int8_path, exclude_first=4, per_channel=True)
        # an untrained head's outputs are near ties, so its greedy agreement says nothing: reported, not enforced
        trained = description["kind"] != "ctranslate2"
        q = check_quantized(fp32_path, int8_path, inputs, max_changed=MAX_INT8_CHANGED if trained else 1.0)
        report["int8"] = q.to_json()
        _say(log, f"parity int8 vs fp32: greedy agreement {q.greedy_agreement:.4f} on the test waveforms")
        if dev is not None:
            waves, refs = dev_waves(dev, dev_limit)
            full, quant = greedy_texts(fp32_path, waves), greedy_texts(int8_path, waves)
            change, _ = error_rates(list(zip(full, quant, strict=True)))
            fp32_wer, _ = error_rates(list(zip(refs, full, strict=True)))
            int8_wer, _ = error_rates(list(zip(refs, quant, strict=True)))
            report["int8"] |= {"dev": dev.parent.name if dev.stem == "manifest" else dev.stem, "dev_clips": len(waves), "word_agreement": round(1 - change / 100, 4),
                               "dev_greedy_wer_fp32": round(fp32_wer, 2), "dev_greedy_wer_int8": round(int8_wer, 2)}  # fmt: skip
            _say(log, f"int8 vs fp32 greedy transcripts on {len(waves)} dev clips: {100 * (1 - change / 100):.2f}% of words agree (WER fp32 {fp32_wer:.2f}, int8 {int8_wer:.2f})")
            if trained and 1 - change / 100 < min_agreement:
                raise ParityError(f"int8 keeps only {100 - change:.1f}% of fp32's words on {dev}, under {100 * min_agreement:.0f}%")
        files["int8"] = int8_path.name
    if "fp32" in precisions:
        files["fp32"] = fp32_path.name
    chunked = None
    if streams:
        from export.whisper_stream import (
            INT8_STREAM_TOLERANCE,
            MIN_STREAM_AGREEMENT,
            STREAM_TOLERANCE,
            check_streaming,
            chunked_spec,
        )

        chunked = chunked_spec(model, tuple(files))
        waves = [w[0] for w in test_inputs(STREAM_LENGTHS, (1,))]
        for precision, file in {"fp32": fp32_path.name, **files}.items():  # fp32 against PyTorch even when it is not shipped
            exact = precision == "fp32"
            report[precision]["streaming"] = check_streaming(model if exact else None, out / file, chunked, waves, tolerance=STREAM_TOLERANCE if exact else INT8_STREAM_TOLERANCE,
                                                             min_agreement=1.0 if exact else MIN_STREAM_AGREEMENT)  # fmt: skip
            _say(log, f"streamed {precision} in pieces of 1-100,000 samples: {report[precision]['streaming']['cases']} cases, max relative error "
                      f"{report[precision]['streaming']['max_relative_error']:.2e} against {'PyTorch' if precision == 'fp32' else 'its own masked pass'}")  # fmt: skip
    if "fp32" not in precisions:
        fp32_path.unlink()
    (out / LICENSE_FILE).write_text(WHISPER_LICENSE)
    c = model.config
    manifest = Manifest(
        name=name or out.name, kind="acoustic", architecture="whisper_ctc", tokens=ctc_letters(), files={}, criterion="ctc",
        sample_rate=16000, frame_stride=FRAME_STRIDE, receptive_field=N_FFT, left_pad=0, right_pad=0, context="full", input_normalize=False,
        min_samples=N_FFT, max_samples=max_samples(c.max_frames), decoding=decoding or DecodingDefaults(), default=default, parity=report, source=describe_source(**{k: v for k, v in description.items() if k != "train_config"}),
        chunked_streaming=chunked,
        extra={"config": c.to_json(), "frontend": {"kind": "whisper_log_mel", "n_fft": N_FFT, "hop": 160, "n_mels": c.n_mels, "mel": "slaney",
                                                   "log": "log10, max - 8, (x + 4) / 4" if c.mel_floor is None else f"log10, floor {c.mel_floor}, (x + 4) / 4"},
               "emissions": "log_softmax", "license": LICENSE_FILE, "train_config": description.get("train_config")},
    )  # fmt: skip
    return finish_bundle(out, manifest, onnx_files=files, side_files=(LICENSE_FILE,))


def streamable(model: WhisperCTC) -> bool:
    """Trained with the block mask and a fixed mel floor: the bundle's graph also streams in chunks."""
    return model.config.mel_floor is not None and model.config.chunk_frames > 0


def max_samples(max_frames: int) -> int:
    """The longest waveform whose frames fit the positional table: `output_frames(N) = N // 320 + 1 <= max_frames`."""
    return FRAME_STRIDE * max_frames - 1


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, flush=True)
