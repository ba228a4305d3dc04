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
