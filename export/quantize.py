"""int8 dynamic quantization and fp16 conversion of exported graphs.

The feature front-end (the DFT convolution and the mel projection) stays in float: its
inputs span a dynamic range that 8 bits cannot hold without wrecking the spectrum, and
it is a small share of the compute.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np


def quantize_int8(source: Path, target: Path, *, exclude_first: int = 0,
                  op_types: Sequence[str] | None = ("Conv", "MatMul", "Gemm"), per_channel: bool = False) -> Path:  # fmt: skip
    """Dynamic int8 quantization of weights (activations stay float); the first `exclude_first` nodes of
    `op_types` stay float. `op_types=None`: every op type ONNX Runtime quantizes dynamically.
    `per_channel`: one scale per output channel instead of per tensor (transformers keep more of fp32's words)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    exclude: list[str] = []
    if exclude_first:
        import onnx

        assert op_types is not None, "exclude_first counts nodes of the op_types given"
        exclude = [node.name for node in onnx.load(str(source)).graph.node if node.op_type in op_types][:exclude_first]
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, op_types_to_quantize=list(op_types) if op_types else None,
                     nodes_to_exclude=exclude, per_channel=per_channel, extra_options={"MatMulConstBOnly": True})
    return target


def quantize_per_row(source: Path, target: Path, *, keep_float: Sequence[str] = ()) -> Path:
    """int8 MatMuls whose activations are quantized per row: every MatMul with a constant 2-D weight
    becomes `MatMulInteger` on int8 weights (one scale per output column) and uint8 activations
    (one scale per row, symmetric around the zero point 128).

    Why not `quantize_int8` for streamed graphs: ONNX Runtime's dynamic quantization takes one
    activation scale per tensor per call, so a frame's result depends on what else is in the call
    (the rest of its chunk, the other streams of a batch). Per row, each frame depends on itself
    only: chunked streaming stays exact, rows of different streams never share a scale, and the
    finer scales keep more of fp32's accuracy. The cost, measured on one 500x512x2048 MatMul:
    1.9 ms against 1.4 ms for per-tensor dynamic, 9.5 ms for fp32 (weight-only `MatMulNBits`
    ran no faster than fp32 here). `keep_float`: names of MatMul nodes left in fp32."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    consts = {"qr_127": np.array(127, np.float32), "qr_eps": np.array(1e-12, np.float32), "qr_128": np.array(128, np.float32),
              "qr_0": np.array(0, np.float32), "qr_255": np.array(255, np.float32), "qr_zp": np.array(128, np.uint8)}  # fmt: skip
    nodes, used = [], set()
    for node in graph.node:
        w = weights.get(node.input[1]) if node.op_type == "MatMul" else None
        if w is None or len(w.dims) != 2 or node.name in keep_float:
            nodes.append(node)
            continue
        array = numpy_helper.to_array(w).astype(np.float32)
        column_scale = np.maximum(np.abs(array).max(axis=0), 1e-12) / 127
        used.add(w.name)
        base = f"qr{len(used)}"
        graph.initializer.extend([numpy_helper.from_array(np.round(array / column_scale).astype(np.int8), f"{base}_w"),
                                  numpy_helper.from_array(np.zeros(array.shape[1], np.int8), f"{base}_wz"),
                                  numpy_helper.from_array(column_scale.astype(np.float32), f"{base}_ws")])  # fmt: skip
        x, y = node.input[0], node.output[0]
        steps = [("Abs", [x], {}), ("ReduceMax", None, {"axes": [-1], "keepdims": 1}), ("Max", ["@", "qr_eps"], {}), ("Div", ["@", "qr_127"], {})]
        names = []
        for i, (op, inputs, attrs) in enumerate(steps):
            out = f"{base}_s{i}"
            nodes.append(helper.make_node(op, [names[-1] if a == "@" else a for a in inputs] if inputs else [names[-1]], [out], **attrs))
            names.append(out)
        scale = names[-1]
        nodes += [
            helper.make_node("Div", [x, scale], [f"{base}_r"]),
            helper.make_node("Round", [f"{base}_r"], [f"{base}_rr"]),
            helper.make_node("Add", [f"{base}_rr", "qr_128"], [f"{base}_ra"]),
            helper.make_node("Clip", [f"{base}_ra", "qr_0", "qr_255"], [f"{base}_rc"]),
            helper.make_node("Cast", [f"{base}_rc"], [f"{base}_q"], to=TensorProto.UINT8),
            helper.make_node("MatMulInteger", [f"{base}_q", f"{base}_w", "qr_zp", f"{base}_wz"], [f"{base}_i"]),
            helper.make_node("Cast", [f"{base}_i"], [f"{base}_f"], to=TensorProto.FLOAT),
            helper.make_node("Mul", [f"{base}_f", scale], [f"{base}_m"]),
            helper.make_node("Mul", [f"{base}_m", f"{base}_ws"], [y]),
        ]
    if not used:
        raise ValueError(f"{source}: no MatMul with a constant 2-D weight to quantize")
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items())
    still_used = {i for n in nodes for i in n.input}
    keep = [init for init in graph.initializer if init.name not in used or init.name in still_used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return target


def convert_fp16(source: Path, target: Path) -> Path:
    """fp16 weights and activations for GPU inference, with float32 inputs and outputs kept."""
    import onnx
    from onnxconverter_common import float16  # type: ignore[import-not-found]

    model = onnx.load(str(source))
    converted = float16.convert_float_to_float16(model, keep_io_types=True)
    _retarget_float_casts(converted)
    onnx.save(converted, str(target))
    return target


def _retarget_float_casts(model: object) -> None:
    """Cast-to-float nodes the converter moved into the fp16 region now cast to fp16.

    onnxconverter-common types their outputs float16 but keeps `to=FLOAT`, which ONNX
    Runtime refuses to load (e.g. wav2vec2's `position_embeddings.to(hidden_states.dtype)`).
    """
    from onnx import TensorProto

    fp16_values = {v.name for v in model.graph.value_info if v.type.tensor_type.elem_type == TensorProto.FLOAT16}  # type: ignore[attr-defined]
    for node in model.graph.node:  # type: ignore[attr-defined]
        if node.op_type == "Cast" and node.output[0] in fp16_values:
            for attribute in node.attribute:
                if attribute.name == "to" and attribute.i == TensorProto.FLOAT:
                    attribute.i = TensorProto.FLOAT16


def quantize_static_int8(source: Path, target: Path, calibration: Sequence[np.ndarray], *, input_name: str = "waveform", exclude_first: int = 0) -> Path:
    """Static int8 (QDQ) quantization of the convolutions, calibrated on `calibration` inputs.

    For convolutional models this is the fast path: ONNX Runtime runs QDQ convolutions as
    `QLinearConv` on int8 kernels, while dynamic quantization leaves them as the much slower
    `ConvInteger`. The first `exclude_first` Conv/MatMul nodes (the feature front-end) stay float.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{input_name: np.asarray(x, dtype=np.float32)} for x in calibration])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    model = onnx.load(str(source))
    exclude = [node.name for node in model.graph.node if node.op_type in ("Conv", "MatMul")][:exclude_first]
    quantize_static(str(source), str(target), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"], nodes_to_exclude=exclude)
    return target


@contextlib.contextmanager
def quiet_root_logger() -> Iterator[None]:
    """onnxruntime's quantizer advises "pre-processing" on the root logger at every call."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
