"""Dynamic batching: concurrent requests for the same model share one ONNX Runtime call.

Only the acoustic model call is batched: the emissions of each request then go through the
recognizer's own decoding step (`Recognizer.finish`), the same one the command-line tools run.

Requests wait at most `max_wait_ms` for company, then the queue is cut into batches of
similar length (so padding stays small) of at most `max_batch`: exact-context bundles pad
(their frames never see the padding, so a batched result equals a single one), attention
models (no attention mask in the graph) share a call only between inputs of one length. Long
inputs, which are windowed anyway, run on their own. On the CPU nothing batches (`pays`).
Every call runs in the inference thread pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from app.asr.bundle import AcousticBundle
from app.asr.options import DecodeOptions, resolve
from app.asr.recognizer import Recognizer, Transcript
from app.asr.runtime import AcousticModel
from app.asr.vtln import most_confident, warp_spectrum

LENGTH_RATIO = 1.5  # a batch's longest input is at most this times its shortest


@dataclass
class _Pending:
    samples: np.ndarray
    future: asyncio.Future[np.ndarray]
    queued: float = field(default_factory=time.perf_counter)


@dataclass
class _Lane:
    """The queue of one model and the batches it has running."""

    queue: list[_Pending] = field(default_factory=list)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    collector: asyncio.Task[None] | None = None


class InferenceEngine:
    """Schedules acoustic-model calls: batched per model when that is exact, else one by one.

    Up to `max_in_flight` batches of one model run at once; while they run, new requests
    queue up and leave together as the next batch, so batches grow with the load by
    themselves. An idle model runs a lone request at once; a busy one gives late arrivals
    up to `max_wait_ms` to join.
    """

    def __init__(self, recognizer: Recognizer, executor: Executor, *, max_batch: int = 16, max_wait_ms: float = 5.0, max_in_flight: int = 2,
                 batch_on_cpu: bool = False) -> None:
        self.recognizer = recognizer
        self.executor = executor
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.max_in_flight = max(1, max_in_flight)
        self.batch_on_cpu = batch_on_cpu
        self._lanes: dict[int, _Lane] = {}
        self.batches_run = 0
        self.items_run = 0

    @property
    def batching(self) -> bool:
        return self.max_batch > 1

    def pays(self, model: AcousticModel) -> bool:
        """Whether `model`'s calls are batched: only where batching gains throughput, which on the
        CPU is nowhere (measured in `docs/benchmarks.md`, "Batching").

        A convolution in ONNX Runtime runs each row of a batch as its own GEMM, so a batch of a
        convolutional model costs the sum of its rows plus the padding: 0.82x the throughput of
        no batching at 16 clients on 2 cores. wav2vec 2.0 graphs have no attention mask, so they
        batch only requests of one length (`AcousticModel.emissions_batch`); even then, on the CPU
        a batch costs what its rows cost one by one (0.98-1.03x with two workers, wav2vec2-small).
        On a GPU both batch."""
        return self.batching and (model.on_gpu or self.batch_on_cpu)

    async def emissions(self, model: AcousticModel, samples: np.ndarray) -> np.ndarray:
        loop = asyncio.get_running_loop()
        padded_frames = model.geometry.frames(len(samples) + model.geometry.left_pad + model.geometry.right_pad)
        if not self.pays(model) or padded_frames > model.window_frames:
            return await loop.run_in_executor(self.executor, model.emissions, samples)
        lane = self._lanes.setdefault(id(model), _Lane())
        pending = _Pending(samples, loop.create_future())
        lane.queue.append(pending)
        lane.wakeup.set()
        if lane.collector is None or lane.collector.done():
            lane.collector = asyncio.create_task(self._collect(lane, model))
        return await pending.future

    async def transcribe(self, bundle: AcousticBundle, samples: np.ndarray, options: DecodeOptions) -> Transcript:
        """The recognizer's path for one file, its acoustic model call batched with other requests'."""
        started = time.perf_counter()
        resolved = resolve(options, bundle)
        model = bundle.models[resolved.precision]
        loop = asyncio.get_running_loop()
        warp = None
        if resolved.vtln_warps:  # every warped copy goes through the batcher at once, so they share batches
            warped = await asyncio.gather(*(loop.run_in_executor(self.executor, warp_spectrum, samples, w) for w in resolved.vtln_warps))
            candidates = await asyncio.gather(*(self.emissions(model, x) for x in warped))
            warp, emissions = most_confident(resolved.vtln_warps, candidates)
        else:
            emissions = await self.emissions(model, samples)
        finish = functools.partial(self.recognizer.finish, bundle, emissions, resolved, samples=len(samples), warp=warp, started=started)
        return await loop.run_in_executor(self.executor, finish)

    async def _collect(self, lane: _Lane, model: AcousticModel) -> None:
        """Cut the queue into length buckets and start them, until the queue stays empty."""
        while True:
            if not lane.queue:
                lane.wakeup.clear()
                try:
                    await asyncio.wait_for(lane.wakeup.wait(), timeout=1.0)
                except TimeoutError:
                    return
                continue
            while lane.in_flight >= self.max_in_flight:
                await asyncio.sleep(0.0005)
            if lane.in_flight > 0:  # busy: late arrivals may still join this batch
                deadline = lane.queue[0].queued + self.max_wait
                while len(lane.queue) < self.max_batch and time.perf_counter() < deadline:
                    await asyncio.sleep(0.0005)
            taken = sorted(lane.queue[: self.max_batch * 4], key=lambda p: len(p.samples))
            del lane.queue[: len(taken)]
            first, *rest = _buckets(taken, self.max_batch, LENGTH_RATIO if model.geometry.exact else 1.0)
            lane.queue[:0] = [p for bucket in rest for p in bucket]
            lane.in_flight += 1
            task = asyncio.create_task(self._run(lane, model, first))
            lane.tasks.add(task)
            task.add_done_callback(lane.tasks.discard)

    async def _run(self, lane: _Lane, model: AcousticModel, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self.executor, model.emissions_batch, [p.samples for p in batch])
        except Exception as e:  # noqa: BLE001 - delivered to each waiting request
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(e)
            return
        finally:
            lane.in_flight -= 1
        self.batches_run += 1
        self.items_run += len(batch)
        for p, r in zip(batch, results, strict=True):
            if not p.future.done():
                p.future.set_result(r)


def _buckets(items: list[_Pending], max_batch: int, ratio: float = LENGTH_RATIO) -> list[list[_Pending]]:
    """Split length-sorted items into batches whose longest input is at most `ratio` times the shortest."""
    out: list[list[_Pending]] = []
    for item in items:
        if out and len(out[-1]) < max_batch and len(item.samples) <= ratio * max(len(out[-1][0].samples), 1):
            out[-1].append(item)
        else:
            out.append([item])
    return out
