"""Store a bundle's float weights as float16: half the bytes on disk, fp32 arithmetic.

Git keeps every version of a shipped model, so bytes on disk matter more than they would
in a model registry. Each large float initializer becomes a float16 initializer followed by
a `Cast` to float32; ONNX Runtime's constant folding runs those casts once when the session
is created, so inference runs exactly the fp32 kernels on weights rounded to 11 significant
bits (relative error <= 2^-11). The rounding is measured, not assumed: an acoustic graph
must keep its greedy output on speech-like input, and an LM graph its per-character
log-probabilities, against the original fp32 graph before the file is replaced.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from app.asr.manifest import Manifest
from export.onnx import finish_bundle
from export.onnx_utils import ParityError

FP16_SUFFIX = "__fp16"  # an initializer stored in half precision is renamed NAME__fp16, cast back to NAME
MIN_ELEMENTS = 1024  # small tensors (biases, norms) stay fp32: they save nothing
MAX_CHANGED = 0.01  # share of greedy frames allowed to change (acoustic bundles)
MAX_LOGPROB_DIFF = 0.01  # mean |log-prob difference| per character in nats (LM bundles)


def store_weights_fp16(source: Path, target: Path, *, min_elements: int = MIN_ELEMENTS) -> int:
    """Rewrite `source` to `target`; returns how many initializers were converted."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    kept, casts, converted = [], [], 0
    for tensor in graph.initializer:
        if tensor.data_type != TensorProto.FLOAT or int(np.prod(tensor.dims)) < min_elements:
            kept.append(tensor)
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float16), tensor.name + FP16_SUFFIX)
        kept.append(half)
        casts.append(helper.make_node("Cast", [half.name], [tensor.name], to=TensorProto.FLOAT, name=tensor.name + "__cast"))
        converted += 1
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)  # casts first keeps the graph topologically sorted
    onnx.save(model, str(target))
    return converted


def _acoustic_check(original: Path, compact: Path, manifest: Manifest) -> dict[str, Any]:
    from export.verify import check_quantized, test_inputs

    pad = ((0, 0), (manifest.left_pad, manifest.right_pad))  # what the runtime adds around every input
    inputs = [np.pad(batch, pad) for batch in test_inputs([16000, 48000], [1, 2], seed=3)]
    report = check_quantized(original, compact, inputs, max_changed=MAX_CHANGED)
    return report.to_json()


def _lm_check(original: Path, compact: Path) -> dict[str, Any]:
    import onnx

    from export.txl import check_int8

    graph = onnx.load(str(original), load_external_data=False).graph
    mems = next(i for i in graph.input if i.name.startswith("mems"))
    dims = [d.dim_value for d in mems.type.tensor_type.shape.dim]
    result = check_int8(original, compact, n_layer=dims[0], d_model=dims[-1])
    if not result["mean_abs_logprob_diff_per_char"] < MAX_LOGPROB_DIFF:
        raise ParityError(f"fp16 weights move log-probabilities by {result['mean_abs_logprob_diff_per_char']:.4f} nats/char")
    return result


def compact_bundle(bundle: Path, precisions: tuple[str, ...] = ("fp32", "int8")) -> Manifest:
    """Store the float weights of the bundle's fp32 graph (and the float weights an int8 graph
    keeps, e.g. wav2vec 2.0's convolutions under dynamic quantization) as fp16, each graph
    checked against its original first. A graph other than fp32 that fails its check is kept as
    it was (the fp32 graph, compacted first, fails the whole command)."""
    manifest = Manifest.load(bundle)
    if "fp32" not in manifest.files:
        raise ValueError(f"{bundle}: no fp32 graph to compact")
    if manifest.parity.get("fp32_weights_fp16"):
        raise ValueError(f"{bundle}: the fp32 graph already stores fp16 weights")
    parity = dict(manifest.parity)
    for precision in (p for p in precisions if p in manifest.files):
        path = bundle / manifest.files[precision].path
        with tempfile.TemporaryDirectory() as tmp:
            compact = Path(tmp) / path.name
            converted = store_weights_fp16(path, compact)
            if converted == 0:
                continue
            try:
                check = _lm_check(path, compact) if manifest.kind == "lm" else _acoustic_check(path, compact, manifest)
            except ParityError as e:
                if precision == "fp32":  # the first graph: nothing has been replaced yet
                    raise
                print(f"{path.name} kept as it was: {e}")  # an int8 graph's leftover floats are small anyway
                continue
            before, after = path.stat().st_size, compact.stat().st_size
            compact.replace(path)
        check |= {"initializers": converted, "bytes_before": before, "bytes_after": after}
        print(f"fp16 weights in {path.name}: {before / 2**20:.1f} -> {after / 2**20:.1f} MiB, {check}")
        parity[f"{precision}_weights_fp16"] = check
    manifest = replace(manifest, parity=parity)
    return finish_bundle(bundle, manifest, onnx_files={p: e.path for p, e in manifest.files.items()}, side_files=tuple(manifest.side_files))
