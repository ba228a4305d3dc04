"""Export of the Whisper-CTC graph that serves files and streams (`models.whisper_stream`), and its checks.

One ONNX file: fed only `waveform` it is the offline full-attention model (the acoustic contract
every bundle keeps); its optional inputs, stored as initializers holding the offline defaults,
turn it into one chunk of a stream with the per-layer key/value cache. The checks, as the
capacity issue asks:
- offline: the graph against `WhisperCTC.forward` (full attention), by `export.verify.check_parity`;
- chunked: the graph driven the way the server drives it (`app.asr.chunked_stream`), audio cut
  in pieces of 1 to 100,000 samples, against one masked pass of PyTorch over the whole input,
  at most `STREAM_TOLERANCE` relative error (fp32); int8 against its own masked pass in one call,
  within `INT8_STREAM_TOLERANCE` and with the same best token on `MIN_STREAM_AGREEMENT` of frames.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from app.asr.chunked_stream import MIN_SAMPLES
from app.asr.manifest import ChunkedStreamingSpec
from export.onnx import OPSET
from export.verify import ParityError, compare
from models.whisper_ctc import WhisperCTC
from models.whisper_stream import INPUTS, OUTPUTS, StreamingWhisperCTC, cache_frames

STREAM_TOLERANCE = 1e-4  # fp32: float summation order only
# int8: a frame's activations are rounded to 8 bits per row, and a summation-order difference of 1e-7 upstream
# (a softmax over another number of keys) can move a value across a rounding boundary: one quantization step
# (1/254 of the row's range) for that value, carried on by the layers above. Measured: at most 0.5% of the
# largest log-probability on random tiny models, 2.6% on the shipped base model, against 21% between int8
# and fp32 themselves; the greedy path is what the agreement bound checks.
INT8_STREAM_TOLERANCE = 5e-2
MIN_STREAM_AGREEMENT = 0.99  # int8: frames whose best token is the masked pass's
PIECE_PATTERNS = ((1, 7, 311), (4000,), (100_000,), (333, 12_345))  # sample counts per message, cycled


def chunked_spec(model: WhisperCTC, precisions: tuple[str, ...]) -> ChunkedStreamingSpec:
    c = model.config
    return ChunkedStreamingSpec(chunk_frames=c.chunk_frames, left_chunks=c.left_chunks, cache_frames=cache_frames(model), layers=c.n_layers,
                                width=c.d_model, max_frames=c.max_frames, precisions=precisions)  # fmt: skip


def export_streaming_onnx(model: WhisperCTC, path: Path, *, example_samples: int = 32000) -> Path:
    """Write the dual-use graph; optional inputs default to the offline call (see the module docstring)."""
    import onnx
    from onnx import numpy_helper

    module = StreamingWhisperCTC(model.eval()).eval()
    c = model.config
    keep = cache_frames(model)
    example = {"waveform": torch.randn(2, example_samples) * 0.1, "skip": torch.tensor(2), "frames": torch.tensor(c.chunk_frames),
               "offset": torch.tensor([c.chunk_frames, 3 * c.chunk_frames]), "cache": torch.randn(c.n_layers, 2, 2, keep, c.d_model),
               "cache_valid": torch.tensor([c.chunk_frames, keep]), "chunked": torch.tensor(1)}  # fmt: skip
    dynamic = {"waveform": {0: "batch", 1: "samples"}, "offset": {0: "rows"}, "cache": {2: "rows", 3: "past"}, "cache_valid": {0: "rows"},
               "emissions": {0: "batch", 1: "frames"}, "cache_out": {2: "batch", 3: "kept"}}  # fmt: skip
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, tuple(example[n] for n in INPUTS), str(path), input_names=list(INPUTS), output_names=list(OUTPUTS),
                          dynamic_axes=dynamic, opset_version=OPSET, dynamo=False)  # fmt: skip
    graph = onnx.load(str(path))
    for name, value in module.defaults().items():  # inputs that are also initializers: optional, offline by default
        graph.graph.initializer.append(numpy_helper.from_array(value.numpy(), name))
    onnx.save(graph, str(path))
    return path


def check_streaming(model: WhisperCTC | None, onnx_path: Path, spec: ChunkedStreamingSpec, waveforms: list[np.ndarray], *,
                    tolerance: float = STREAM_TOLERANCE, min_agreement: float = 1.0) -> dict[str, float | int]:  # fmt: skip
    """Stream each waveform through the graph in every piece pattern; compare with one masked pass over
    the whole input: PyTorch's when `model` is given (fp32), else the graph's own (int8: its weights differ)."""
    from app.asr.chunked_stream import ChunkedStreamGraph, stream_emissions
    from export.onnx_utils import cpu_session

    session = cpu_session(onnx_path, threads=2)
    graph = ChunkedStreamGraph(session, spec)
    worst, cases, same, frames = 0.0, 0, 0, 0
    for wave in waveforms:
        reference = masked_emissions(model, wave) if model is not None else graph_masked_emissions(session, wave)
        for pattern in PIECE_PATTERNS:
            streamed = stream_emissions(graph, wave, pattern)
            if streamed.shape != reference.shape:
                raise ParityError(f"streamed {streamed.shape} frames, the masked pass {reference.shape} ({len(wave)} samples, pieces {pattern})")
            error, _, agree = compare(reference, streamed)
            worst, cases = max(worst, error), cases + 1
            same, frames = same + round(agree * len(reference)), frames + len(reference)
            if error > tolerance:
                raise ParityError(f"streamed emissions differ from the masked pass by {error:.2e} relative ({len(wave)} samples, pieces {pattern})")
    agreement = same / max(frames, 1)
    if agreement < min_agreement:
        raise ParityError(f"streamed frames keep the masked pass's best token on {100 * agreement:.2f}% of frames, under {100 * min_agreement:.0f}%")
    return {"cases": cases, "max_relative_error": worst, "greedy_agreement": round(agreement, 5)}


def masked_emissions(model: WhisperCTC, wave: np.ndarray) -> np.ndarray:
    """One PyTorch pass over the whole (min-length padded) waveform under the block mask: what streams must equal."""
    with torch.no_grad():
        x = model.stem(model.frontend(torch.from_numpy(padded(wave))[None]))
        hidden = model.encode(x, torch.tensor([x.shape[1]]), chunked=True)
        return torch.log_softmax(model.logits(hidden), dim=-1)[0].numpy()


def graph_masked_emissions(session: object, wave: np.ndarray) -> np.ndarray:
    """One call of the graph over the whole (min-length padded) waveform with the block mask on."""
    return session.run(["emissions"], {"waveform": padded(wave)[None], "chunked": np.array(1, np.int64)})[0][0]  # type: ignore[attr-defined]


def padded(wave: np.ndarray) -> np.ndarray:
    """The waveform zero-padded to the shortest input, as `AcousticModel.pad` and the stream's last window do."""
    return np.pad(wave, (0, max(MIN_SAMPLES - len(wave), 0))).astype(np.float32)
