"""Dynamic batching: concurrent requests for the same model share one ONNX Runtime call.

Requests wait at most `max_wait_ms` for company, then the queue is cut into batches of
similar length (so padding stays small) of at most `max_batch`. Only exact-context bundles
batch (their frames never see the padding, so a batched result equals a single one); long
inputs, which are windowed anyway, and attention models run on their own. Every call runs
in the inference thread pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from app.asr.bundle import AcousticBundle
from app.asr.options import DecodeOptions
from app.asr.recognizer import Recognizer, Transcript
from app.asr.runtime import AcousticModel

LENGTH_RATIO = 1.5  # a batch's longest input is at most this times its shortest


@dataclass
class _Pending:
    samples: np.ndarray
    future: asyncio.Future[np.ndarray]
    queued: float = field(default_factory=time.perf_counter)


class InferenceEngine:
    def __init__(self, recognizer: Recognizer, executor: Executor, *, max_batch: int = 16, max_wait_ms: float = 5.0) -> None:
        self.recognizer = recognizer
        self.executor = executor
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self._queues: dict[int, list[_Pending]] = {}
        self._wakeups: dict[int, asyncio.Event] = {}
        self._workers: dict[int, asyncio.Task[None]] = {}
        self.batches_run = 0
        self.items_run = 0

    @property
    def batching(self) -> bool:
        return self.max_batch > 1

    async def emissions(self, model: AcousticModel, samples: np.ndarray) -> np.ndarray:
        loop = asyncio.get_running_loop()
        padded_frames = model.geometry.frames(len(samples) + model.geometry.left_pad + model.geometry.right_pad)
        if not self.batching or not model.geometry.exact or padded_frames > model.window_frames:
            return await loop.run_in_executor(self.executor, model.emissions, samples)
        key = id(model)
        pending = _Pending(samples, loop.create_future())
        self._queues.setdefault(key, []).append(pending)
        self._wakeups.setdefault(key, asyncio.Event()).set()
        if key not in self._workers or self._workers[key].done():
            self._workers[key] = asyncio.create_task(self._serve(key, model))
        return await pending.future

    async def transcribe(self, bundle: AcousticBundle, samples: np.ndarray, options: DecodeOptions) -> Transcript:
        started = time.perf_counter()
        emissions = await self.emissions(self.recognizer.acoustic_model(bundle, options), samples)
        acoustic = time.perf_counter() - started
        loop = asyncio.get_running_loop()
        duration = len(samples) / bundle.manifest.sample_rate
        transcript = await loop.run_in_executor(self.executor, lambda: self.recognizer.decode(bundle, emissions, options, duration=duration))
        transcript.timings = {"acoustic": acoustic, "decode": time.perf_counter() - started - acoustic, **transcript.timings}
        return transcript

    async def _serve(self, key: int, model: AcousticModel) -> None:
        """Collect requests for one model, run them in length buckets, until the queue stays empty."""
        queue, wakeup = self._queues[key], self._wakeups[key]
        loop = asyncio.get_running_loop()
        while True:
            if not queue:
                wakeup.clear()
                try:
                    await asyncio.wait_for(wakeup.wait(), timeout=1.0)
                except TimeoutError:
                    return
                continue
            deadline = queue[0].queued + self.max_wait
            while len(queue) < self.max_batch and time.perf_counter() < deadline:
                await asyncio.sleep(min(0.001, max(deadline - time.perf_counter(), 0)))
            taken = sorted(queue[: self.max_batch * 4], key=lambda p: len(p.samples))
            del queue[: len(taken)]
            for batch in _buckets(taken, self.max_batch):
                waves = [p.samples for p in batch]
                try:
                    results = await loop.run_in_executor(self.executor, model.emissions_batch, waves)
                except Exception as e:  # noqa: BLE001 - delivered to each waiting request
                    for p in batch:
                        if not p.future.done():
                            p.future.set_exception(e)
                    continue
                self.batches_run += 1
                self.items_run += len(batch)
                for p, r in zip(batch, results, strict=True):
                    if not p.future.done():
                        p.future.set_result(r)


def _buckets(items: list[_Pending], max_batch: int) -> list[list[_Pending]]:
    """Split length-sorted items into batches of similar length."""
    out: list[list[_Pending]] = []
    for item in items:
        if out and len(out[-1]) < max_batch and len(item.samples) <= LENGTH_RATIO * max(len(out[-1][0].samples), 1):
            out[-1].append(item)
        else:
            out.append([item])
    return out
