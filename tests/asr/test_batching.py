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
