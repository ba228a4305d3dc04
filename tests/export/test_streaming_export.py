"""`asr-export streaming`: an existing bundle (here compacted to fp16 weights) gets the graph that streams with caches."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from app.asr.bundle import load_bundles
from app.asr.manifest import Manifest
from export.cli import main as export_main
from export.onnx import export_acoustic_onnx, finish_bundle
from export.wav2letter import export_wav2letter, load_project_checkpoint
from tests.asr.test_stream_graph import stream_alone
from tests.helpers import save_wav2letter_checkpoint, speechlike


@pytest.fixture(scope="module")
def old_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A bundle as exported before streaming graphs existed: the plain offline graph, no `streaming`, fp16 weights."""
    work = tmp_path_factory.mktemp("work")
    checkpoint = save_wav2letter_checkpoint(work / "asg.pt", seed=3)
    bundle = work / "old-asg"
    manifest = export_wav2letter(checkpoint, bundle, log=False)
    model, *_ = load_project_checkpoint(checkpoint)
    export_acoustic_onnx(model, bundle / "model.onnx")
    parity = {k: v for k, v in manifest.parity.items() if k != "streaming"}
    finish_bundle(bundle, replace(manifest, streaming=None, parity=parity), onnx_files={"fp32": "model.onnx"}, side_files=tuple(manifest.side_files))
    assert export_main(["compact", str(bundle)]) == 0
    return bundle, checkpoint


def test_adds_the_streaming_graph_to_an_existing_bundle(old_bundle: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    source, checkpoint = old_bundle
    bundle = tmp_path / "old-asg"
    shutil.copytree(source, bundle)
    audio = speechlike(2.2, seed=8)
    before = load_bundles(tmp_path).acoustic["old-asg"].models["fp32"]
    assert before.streaming is None
    offline_before = before.emissions(audio)

    assert export_main(["streaming", str(bundle), "--checkpoint", str(checkpoint)]) == 0
    manifest = Manifest.load(bundle)
    assert manifest.streaming is not None and manifest.parity["streaming"]["max_relative_error"] < 1e-4
    assert manifest.parity["fp32_weights_fp16"]  # still compacted: the new graph's weights were rounded the same way
    after = load_bundles(tmp_path).acoustic["old-asg"].models["fp32"]
    assert after.streaming is not None
    offline_after = after.emissions(audio)
    np.testing.assert_allclose(offline_after, offline_before, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(stream_alone(after.streaming, audio, 777), offline_after, atol=1e-4, rtol=1e-4)


def test_refuses_a_checkpoint_of_another_model(old_bundle: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    source, _ = old_bundle
    bundle = tmp_path / "old-asg"
    shutil.copytree(source, bundle)
    other = save_wav2letter_checkpoint(tmp_path / "other.pt", seed=11)
    before = (bundle / "model.onnx").read_bytes()
    assert export_main(["streaming", str(bundle), "--checkpoint", str(other)]) == 2
    assert (bundle / "model.onnx").read_bytes() == before
    assert Manifest.load(bundle).streaming is None
