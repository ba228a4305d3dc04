"""Recover a Transformer-XL training checkpoint from an exported LM bundle.

    python -m export.txl_recover models/bundles/txl-char runs/txl-init.pt

The first Transformer-XL was trained on a lent GPU and only its ONNX graph was kept. To go on
training it (on new text, on the CPU), its weights are read back from the graph: the exporter
renames or transposes many of them (`val_87` is `key_value.weight` transposed), so a model of
the same configuration with known random weights is exported once, and each of its
initializers is matched by value to the parameter (plain, transposed or reshaped) it came from.
The same names in the bundle's graph then give the trained values. The result is checked by
running both the bundle's graph and the rebuilt PyTorch model on the same text.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.asr.manifest import Manifest
from export.compact import FP16_SUFFIX
from export.onnx_utils import cpu_session, relative_error
from export.txl import ExportableTransformerXL, export_onnx
from models.train.txl import save_checkpoint
from models.transformer_xl import TransformerXL, TransformerXLConfig


def _initializers(path: Path) -> dict[str, np.ndarray]:
    """Initializers by their fp32 name, float ones as float32 (fp16-stored weights included)."""
    import onnx
    from onnx import TensorProto, numpy_helper

    out = {}
    for tensor in onnx.load(str(path)).graph.initializer:
        value = numpy_helper.to_array(tensor)
        floating = tensor.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16)
        out[tensor.name.removesuffix(FP16_SUFFIX)] = value.astype(np.float32) if floating else value
    return out


def _config(manifest: Manifest, initializers: dict[str, np.ndarray]) -> TransformerXLConfig:
    extra = manifest.extra
    d_inner = int(initializers["model.layers.0.ff.0.bias"].shape[0])
    return TransformerXLConfig(vocab_size=extra["vocab_size"], d_model=extra["d_model"], n_head=extra["n_head"], d_head=extra["d_head"],
                               d_inner=d_inner, n_layer=extra["n_layer"], mem_len=extra["mem_len"])  # fmt: skip


def _mapping(config: TransformerXLConfig) -> dict[str, tuple[str, str]]:
    """Initializer name -> (parameter name, 'plain' | 'transposed' | 'reshaped') for this configuration."""
    torch.manual_seed(1234)
    probe = TransformerXL.from_config(config).eval()
    with torch.no_grad():
        for parameter in probe.parameters():  # distinct values everywhere (zero biases would all look alike)
            parameter.copy_(torch.randn_like(parameter))
    params = {name: p.detach().numpy() for name, p in probe.named_parameters()}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "probe.onnx"
        export_onnx(ExportableTransformerXL(probe).eval(), path)
        exported = _initializers(path)
    mapping: dict[str, tuple[str, str]] = {}
    for init_name, value in exported.items():
        for name, param in params.items():
            if value.shape == param.shape and np.array_equal(value, param):
                mapping[init_name] = (name, "plain")
            elif param.ndim == 2 and value.shape == param.T.shape and np.array_equal(value, param.T):
                mapping[init_name] = (name, "transposed")
            elif value.size == param.size and value.shape != param.shape and np.array_equal(value.reshape(param.shape), param):
                mapping[init_name] = (name, "reshaped")
    missing = set(params) - {name for name, _ in mapping.values()}
    if missing:
        raise ValueError(f"parameters not found among the exported initializers: {sorted(missing)}")
    return mapping


def recover(bundle: Path) -> TransformerXL:
    """The bundle's model as PyTorch weights (in eval mode), from its fp32 graph (an int8 graph has
    lost the weights); checked against the graph."""
    manifest = Manifest.load(bundle)
    graph = bundle / manifest.files["fp32"].path
    trained = _initializers(graph)
    config = _config(manifest, trained)
    model = TransformerXL.from_config(config)
    state = {name: p.detach().clone() for name, p in model.named_parameters()}
    for init_name, (name, how) in _mapping(config).items():
        value = torch.from_numpy(trained[init_name].copy())
        state[name] = value.T.contiguous() if how == "transposed" else value.reshape(state[name].shape)
    model.load_state_dict(state, strict=False)  # the tied output layer is the embedding, listed once
    model.eval()
    error = _check(model, graph)
    if not error < 1e-3:
        raise ValueError(f"rebuilt model differs from {graph}: relative error {error:.2e}")
    return model


def _check(model: TransformerXL, graph: Path) -> float:
    rng = np.random.default_rng(0)
    config = model.config
    tokens = rng.integers(1, config.vocab_size, size=(2, 40), dtype=np.int64)
    mems = rng.standard_normal((config.n_layer, 2, 17, config.d_model)).astype(np.float32)
    with torch.no_grad():
        expected = ExportableTransformerXL(model)(torch.from_numpy(tokens), torch.from_numpy(mems))[0].numpy()
    actual = cpu_session(graph).run(["logits"], {"tokens": tokens, "mems_in": mems})[0]
    return relative_error(actual, expected)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.txl_recover", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", type=Path)
    parser.add_argument("out", type=Path, help="a checkpoint of models.train.txl (weights only)")
    args = parser.parse_args(argv)
    model = recover(args.bundle)
    save_checkpoint(args.out, model)
    source: dict[str, Any] = Manifest.load(args.bundle).source
    print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters from {args.bundle} (step {source.get('step')}) -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
