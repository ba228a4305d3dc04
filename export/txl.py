"""Export a Transformer-XL character LM checkpoint to an LM bundle, with a parity check.

The graph (opset 18, exported with the torch.export-based exporter, `dynamo=True`):

    inputs   tokens    [B, T]              int64
             mems_in   [n_layer, B, M, d]  float32   (M = 0 for the first segment)
    outputs  logits    [B, T, V]           float32
             mems_out  [n_layer, B, M', d] float32   M' = min(M + T, mem_len)
             hiddens   [n_layer, B, T, d]  float32   each layer's input at the T positions

B, T and M are dynamic. `mems_out` is what a caller carrying memory from segment to segment
needs; `hiddens` lets a batched scorer build each text's own memory when the texts of one
batch have different lengths (padding sits at the end, so `mems_out` would hold padding).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from app.asr.manifest import Manifest, file_entry
from app.asr.numerics import log_softmax
from app.asr.tokens import EOS, encode_sentences, lm_letters
from export import EXPORTER_VERSION
from export.onnx_utils import ParityError, cpu_session, relative_error
from export.quantize import quantize_int8, quiet_root_logger
from models.transformer_xl import TransformerXL, checkpoint_model

FP32_FILE = "transformer_xl.fp32.onnx"
INT8_FILE = "transformer_xl.int8.onnx"
INPUT_NAMES = ("tokens", "mems_in")
OUTPUT_NAMES = ("logits", "mems_out", "hiddens")
OPSET = 18
PARITY_TOLERANCE = 1e-4
PARITY_SENTENCES = ("the quick brown fox jumps over the lazy dog", "she sells sea shells", "it's a test")


class ExportableTransformerXL(nn.Module):
    """The model with stacked memories in and out, as the ONNX graph presents it."""

    def __init__(self, model: TransformerXL) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor, mems_in: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """tokens `[B, T]`, mems_in `[L, B, M, d]` -> logits `[B, T, V]`, mems_out `[L, B, M', d]`, hiddens `[L, B, T, d]`."""
        mems = list(mems_in.unbind(0))
        logits, hiddens = self.model.forward_hiddens(tokens, mems)
        return logits, torch.stack(self.model.extend_mems(mems, hiddens)), torch.stack(hiddens)


def parity_cases(mem_len: int) -> list[tuple[int, int, int]]:
    """(batch, time, memory) triples: first segments (M = 0), single tokens, full and partial memories."""
    half = max(1, mem_len // 2)
    return [(1, 1, 0), (2, 7, 0), (3, 5, half), (1, 1, mem_len), (4, 3, mem_len), (2, mem_len + 5, half)]


def _run_onnx(session: Any, tokens: np.ndarray, mems: np.ndarray) -> list[np.ndarray]:
    return session.run(list(OUTPUT_NAMES), {"tokens": tokens, "mems_in": mems})


def check_parity(wrapper: ExportableTransformerXL, path: Path, *, seed: int = 0) -> dict[str, Any]:
    """Relative error of every output of `path` against PyTorch on random inputs of several shapes."""
    config = wrapper.model.config
    session = cpu_session(path)
    rng = np.random.default_rng(seed)
    cases = []
    for batch, time, memory in parity_cases(config.mem_len):
        tokens = rng.integers(0, config.vocab_size, size=(batch, time), dtype=np.int64)
        mems = rng.standard_normal((config.n_layer, batch, memory, config.d_model)).astype(np.float32)
        with torch.no_grad():
            expected = [t.numpy() for t in wrapper(torch.from_numpy(tokens), torch.from_numpy(mems))]
        actual = _run_onnx(session, tokens, mems)
        errors = {name: relative_error(a, e) for name, a, e in zip(OUTPUT_NAMES, actual, expected, strict=True)}
        cases.append({"batch": batch, "time": time, "memory": memory, **errors})
    worst = max(max(case[name] for name in OUTPUT_NAMES) for case in cases)
    return {"max_relative_error": worst, "tolerance": PARITY_TOLERANCE, "cases": cases}


def check_int8(fp32: Path, int8: Path, *, n_layer: int, d_model: int) -> dict[str, Any]:
    """How far the int8 graph is from fp32 on real sentences: logits, top-1 choice, log-prob per char."""
    table = lm_letters()
    results = {"max_relative_error": 0.0, "top1_agreement": 0.0, "mean_abs_logprob_diff_per_char": 0.0}
    sessions = cpu_session(fp32), cpu_session(int8)
    agree, diffs, count = 0, [], 0
    for sentence in PARITY_SENTENCES:
        ids = np.asarray(encode_sentences(table, [sentence]), dtype=np.int64)[None]  # [1, T+1]
        mems = np.zeros((n_layer, 1, 0, d_model), dtype=np.float32)
        reference, quantized = (_run_onnx(s, ids[:, :-1], mems)[0] for s in sessions)
        results["max_relative_error"] = max(results["max_relative_error"], relative_error(quantized, reference))
        agree += int((reference.argmax(-1) == quantized.argmax(-1)).sum())
        count += reference.shape[1]
        targets = ids[0, 1:]
        logprobs = [log_softmax(x[0])[np.arange(len(targets)), targets] for x in (reference, quantized)]
        diffs.append(np.abs(logprobs[0] - logprobs[1]))
    results["top1_agreement"] = agree / count
    results["mean_abs_logprob_diff_per_char"] = float(np.concatenate(diffs).mean())
    return results


def export_onnx(wrapper: ExportableTransformerXL, path: Path) -> None:
    """Write the graph with dynamic batch, time and memory length (memory may be empty)."""
    config = wrapper.model.config
    # Example sizes all different and above 1, so that no dimension is specialised.
    example = (torch.zeros(2, 5, dtype=torch.long), torch.zeros(config.n_layer, 2, 3, config.d_model))
    batch, time, memory = torch.export.Dim("batch"), torch.export.Dim("time"), torch.export.Dim("memory", min=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # axis-name notices of the exporter
        torch.onnx.export(
            wrapper,
            example,
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
            dynamic_shapes={"tokens": {0: batch, 1: time}, "mems_in": {1: batch, 2: memory}},
            verbose=False,
        )


def export_transformer_xl(checkpoint: Path, out: Path, *, int8: bool = False) -> Manifest:
    """Write an LM bundle for the recipe checkpoint `checkpoint` into directory `out`.

    Raises `ParityError` when the fp32 graph differs from PyTorch by more than
    `PARITY_TOLERANCE` (relative) on any output of any test shape. The int8 graph is lossy:
    its agreement is measured and stored, not enforced.
    """
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model = checkpoint_model(state).eval()
    config = model.config
    table = lm_letters()
    if config.vocab_size != len(table):
        raise ValueError(
            f"{checkpoint}: vocabulary of {config.vocab_size} does not match the LM token table ({len(table)})"
        )
    wrapper = ExportableTransformerXL(model).eval()
    out.mkdir(parents=True, exist_ok=True)

    export_onnx(wrapper, out / FP32_FILE)
    parity: dict[str, Any] = {"fp32": check_parity(wrapper, out / FP32_FILE)}
    print(
        f"fp32 parity: max relative error {parity['fp32']['max_relative_error']:.2e} over {len(parity['fp32']['cases'])} shapes"
    )
    if not parity["fp32"]["max_relative_error"] < PARITY_TOLERANCE:  # also catches NaN
        raise ParityError(f"ONNX graph differs from PyTorch: {parity['fp32']}")
    files = {"fp32": file_entry(out, FP32_FILE)}
    if int8:
        with quiet_root_logger():
            quantize_int8(out / FP32_FILE, out / INT8_FILE, op_types=None)
        parity["int8"] = check_int8(out / FP32_FILE, out / INT8_FILE, n_layer=config.n_layer, d_model=config.d_model)
        print(
            f"int8 against fp32: max relative error {parity['int8']['max_relative_error']:.2e}, "
            f"top-1 agreement {parity['int8']['top1_agreement']:.3f}, "
            f"mean |log-prob diff| {parity['int8']['mean_abs_logprob_diff_per_char']:.4f} nats/char"
        )
        files["int8"] = file_entry(out, INT8_FILE)

    manifest = Manifest(
        name=out.name,
        kind="lm",
        architecture="transformer_xl",
        tokens=table,
        files=files,
        parity=parity,
        source={
            "checkpoint": str(checkpoint),
            "step": int(state.get("step", 0)),
            "exporter": f"torch.onnx dynamo opset {OPSET}",
            "torch": torch.__version__,
            "exporter_version": EXPORTER_VERSION,
        },
        extra={
            "n_layer": config.n_layer,
            "d_model": config.d_model,
            "n_head": config.n_head,
            "d_head": config.d_head,
            "mem_len": config.mem_len,
            "vocab_size": config.vocab_size,
            "eos_id": table.index[EOS],
            "inputs": list(INPUT_NAMES),
            "outputs": list(OUTPUT_NAMES),
            "parameters": sum(p.numel() for p in model.parameters()),
        },
    )
    manifest.validate()
    manifest.write(out)
    return manifest
