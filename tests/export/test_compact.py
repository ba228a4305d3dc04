"""`asr-export compact`: fp16 weight storage halves the fp32 graph and keeps its outputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from app.asr.manifest import Manifest
from export.cli import main as export_main
from export.onnx_utils import cpu_session
from tests.helpers import build_tiny_bundles


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bundles")
    return build_tiny_bundles(root, tmp_path_factory.mktemp("work"))


def _copy(bundles: Path, name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(bundles / name, target)
    return target


def test_acoustic_bundle_halves_and_keeps_its_output(bundles: Path, tmp_path: Path) -> None:
    bundle = _copy(bundles, "tiny-ctc", tmp_path)
    before = Manifest.load(bundle)
    path = bundle / before.files["fp32"].path
    size = path.stat().st_size
    x = (np.random.default_rng(0).standard_normal((1, 24000 + before.left_pad + before.right_pad)) * 0.1).astype(np.float32)
    session = cpu_session(path)
    reference = session.run(None, {session.get_inputs()[0].name: x})[0]

    assert export_main(["compact", str(bundle)]) == 0
    after = Manifest.load(bundle)  # re-checksummed: the server's loader accepts it
    assert path.stat().st_size < size  # tiny graphs are mostly front-end constants; real ones halve
    assert after.parity["fp32_weights_fp16"]["greedy_agreement"] >= 0.99
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in onnx.load(str(path)).graph.initializer)
    session = cpu_session(path)
    compact = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert compact.dtype == np.float32
    np.testing.assert_allclose(compact, reference, atol=2e-2 * np.abs(reference).max())
    assert not np.array_equal(compact, reference)  # the weights really were rounded

    assert export_main(["compact", str(bundle)]) == 2  # twice is refused


def test_lm_bundle_keeps_its_logprobs(bundles: Path, tmp_path: Path) -> None:
    bundle = _copy(bundles, "tiny-txl", tmp_path)
    assert export_main(["compact", str(bundle)]) == 0
    check = Manifest.load(bundle).parity["fp32_weights_fp16"]
    assert check["mean_abs_logprob_diff_per_char"] < 0.01
    assert check["bytes_after"] < check["bytes_before"]



def test_a_failing_int8_check_keeps_that_graph_and_finishes_the_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The int8 graph of a real Transformer-XL keeps float weights that fp16 moves too far: the
    command must keep that graph and still write a whole bundle (it once stopped half-way)."""
    import export.compact as compact
    from export.txl import export_transformer_xl
    from tests.helpers import save_txl_checkpoint

    bundle = tmp_path / "txl"
    export_transformer_xl(save_txl_checkpoint(tmp_path / "txl.pt"), bundle, int8=True)
    int8 = bundle / Manifest.load(bundle).files["int8"].path
    original = int8.read_bytes()
    real_store, real_check, refused = compact.store_weights_fp16, compact._lm_check, []
    monkeypatch.setattr(compact, "store_weights_fp16", lambda source, target: real_store(source, target, min_elements=1))  # tiny graphs

    def check(original_path: Path, compacted: Path) -> dict:
        if original_path == int8:
            refused.append(original_path.name)
            raise compact.ParityError("int8 moved too far")
        return real_check(original_path, compacted)

    monkeypatch.setattr(compact, "_lm_check", check)
    assert export_main(["compact", str(bundle)]) == 0
    after = Manifest.load(bundle)  # checksums match the files: the bundle is whole
    assert "fp32_weights_fp16" in after.parity and "int8_weights_fp16" not in after.parity
    assert int8.read_bytes() == original and refused
