"""Dynamic batching: concurrent requests share calls, and padding never changes a result."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from app.asr.batching import InferenceEngine
from app.asr.bundle import load_bundles
from app.asr.options import DecodeOptions
from app.asr.recognizer import Recognizer
from app.asr.runtime import AcousticModel, FrameGeometry, create_session
from tests.helpers import speechlike


def test_batched_equals_single(models_dir: Path) -> None:
    recognizer = Recognizer(load_bundles(models_dir, threads=1), default_model="tiny-asg")
    bundle = recognizer.bundle("tiny-asg")
    model = bundle.models["fp32"]
    clips = [speechlike(seconds, seed=i) for i, seconds in enumerate([0.5, 0.6, 0.7, 1.0, 1.05, 2.0, 2.1, 0.3] * 3)]
    singles = [model.emissions(c) for c in clips]

    async def run() -> tuple[list[np.ndarray], InferenceEngine]:
        with ThreadPoolExecutor(2) as executor:
            engine = InferenceEngine(recognizer, executor, max_batch=8, max_wait_ms=20, max_in_flight=1, batch_on_cpu=True)
            results = await asyncio.gather(*(engine.emissions(model, c) for c in clips))
            transcripts = await asyncio.gather(*(engine.transcribe(bundle, c, DecodeOptions()) for c in clips[:4]))
            assert [t.text for t in transcripts] == [recognizer.transcribe(c, model="tiny-asg", options=DecodeOptions()).text for c in clips[:4]]
            return list(results), engine

    results, engine = asyncio.run(run())
    assert engine.batches_run < engine.items_run  # requests really were grouped
    for single, batched in zip(singles, results, strict=True):
        assert single.shape == batched.shape
        np.testing.assert_allclose(batched, single, atol=1e-4, rtol=1e-4)


def test_convolutional_models_run_alone_on_the_cpu(models_dir: Path) -> None:
    """Batching pays only where it gains: on the CPU a convolutional model's requests each run alone."""
    recognizer = Recognizer(load_bundles(models_dir, threads=1), default_model="tiny-asg")
    model = recognizer.bundle("tiny-asg").models["fp32"]
    clips = [speechlike(0.5, seed=i) for i in range(6)]

    async def run() -> InferenceEngine:
        with ThreadPoolExecutor(2) as executor:
            engine = InferenceEngine(recognizer, executor, max_batch=8, max_wait_ms=20, max_in_flight=1)
            assert not model.on_gpu and not engine.pays(model)
            await asyncio.gather(*(engine.emissions(model, c) for c in clips))
            return engine

    engine = asyncio.run(run())
    assert engine.batches_run == 0 and engine.items_run == 0  # every request took the single path


def _full_context_model(path: Path) -> AcousticModel:
    """A tiny graph in wav2vec 2.0's geometry (400-sample frames every 320) whose every frame
    depends on the whole input (frames minus their mean over time), without an attention mask:
    right padding would change every frame of a row."""
    from onnx import TensorProto, helper, save

    x = helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["batch", "samples"])
    y = helper.make_tensor_value_info("emissions", TensorProto.FLOAT, ["batch", "frames", 5])
    weights = np.random.default_rng(0).standard_normal((5, 1, 400)).astype(np.float32)
    nodes = [helper.make_node("Unsqueeze", ["waveform", "axis1"], ["x3"]),
             helper.make_node("Conv", ["x3", "w"], ["frames"], kernel_shape=[400], strides=[320]),
             helper.make_node("ReduceMean", ["frames"], ["mean"], axes=[2], keepdims=1),
             helper.make_node("Sub", ["frames", "mean"], ["centred"]),
             helper.make_node("Transpose", ["centred"], ["emissions"], perm=[0, 2, 1])]  # fmt: skip
    inits = [helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),
             helper.make_tensor("w", TensorProto.FLOAT, weights.shape, weights.ravel().tolist())]  # fmt: skip
    save(helper.make_model(helper.make_graph(nodes, "full", [x], [y], inits), opset_imports=[helper.make_opsetid("", 17)]), path)
    return AcousticModel(create_session(path, threads=1, providers=["CPUExecutionProvider"]), FrameGeometry(320, 400, 0, 0, False, 400))


def test_full_context_models_batch_only_equal_lengths(tmp_path: Path) -> None:
    """wav2vec 2.0 graphs have no attention mask: requests of one length share a call (no padding,
    so each result equals its single call), other lengths run alone; never padded."""
    model = _full_context_model(tmp_path / "full.onnx")
    clips = [speechlike(seconds, seed=i) for i, seconds in enumerate([1.0, 0.5, 1.0, 0.7, 0.5, 1.0, 0.2])]
    singles = [model.emissions(c) for c in clips]
    calls: list[int] = []
    run = model.run
    model.run = lambda batch: (calls.append(len(batch)), run(batch))[1]  # type: ignore[method-assign]
    batch = model.emissions_batch(clips)
    model.run = run  # type: ignore[method-assign]
    assert sorted(calls) == [1, 1, 2, 3]  # one call per length
    for single, batched in zip(singles, batch, strict=True):
        assert single.shape == batched.shape
        np.testing.assert_allclose(batched, single, atol=1e-5, rtol=1e-5)
    padded = np.zeros((2, len(clips[0])), np.float32)
    padded[0, : len(clips[1])], padded[1] = clips[1], clips[0]
    assert not np.allclose(model.run(padded)[0][: len(singles[1])], singles[1], atol=1e-3)  # padding would have changed the short one

    async def run() -> tuple[list[np.ndarray], InferenceEngine]:
        with ThreadPoolExecutor(2) as executor:
            engine = InferenceEngine(None, executor, max_batch=8, max_wait_ms=20, max_in_flight=1, batch_on_cpu=True)  # type: ignore[arg-type]
            assert engine.pays(model)
            return list(await asyncio.gather(*(engine.emissions(model, c) for c in clips * 3))), engine

    results, engine = asyncio.run(run())
    assert engine.batches_run < engine.items_run  # equal lengths were grouped
    for single, batched in zip(singles * 3, results, strict=True):
        np.testing.assert_allclose(batched, single, atol=1e-5, rtol=1e-5)


def test_nothing_batches_on_the_cpu_by_default(tmp_path: Path) -> None:
    """On the CPU batching gains neither convolutional nor wav2vec 2.0 graphs (docs/benchmarks.md), so it is off for both."""
    model = _full_context_model(tmp_path / "full.onnx")
    with ThreadPoolExecutor(1) as executor:
        assert not InferenceEngine(None, executor, max_batch=16).pays(model)  # type: ignore[arg-type]
