"""Cross-stream batching: the chunks that streams have ready at the same moment share one call.

Every WebSocket connection owns a `Stream`; this scheduler is shared. For a stream whose graph
streams with caches (`app.asr.stream_graph`), `accept` cuts the stream's due chunks on the event
loop (cheap), queues them per graph and awaits their frames; a collector per graph runs what
is queued as one `StreamGraph.run` in the inference pool, and while a call runs the next
chunks queue up and leave together, so batches grow with the load by themselves (no timer:
an idle graph runs a lone chunk at once). The frames then go back to their own stream
(`Stream.give`: endpointing, partial text, the final decode), also in the pool, never on the
event loop. Streams without a cached graph run `Stream.accept` in the pool as before.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from app.asr.stream_graph import ChunkRequest, StreamGraph
from app.asr.streaming import Stream, StreamResult


@dataclass
class _Lane:
    queue: list[tuple[ChunkRequest, asyncio.Future[None]]] = field(default_factory=list)
    in_flight: int = 0
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    collector: asyncio.Task[None] | None = None


class StreamScheduler:
    """Runs the chunks of every open stream; a graph's ready chunks go in one call (up to `max_batch`)."""

    def __init__(self, executor: Executor, *, max_batch: int = 64, max_in_flight: int = 1) -> None:
        self.executor = executor
        self.max_batch = max(1, max_batch)
        self.max_in_flight = max(1, max_in_flight)
        self._lanes: dict[int, _Lane] = {}
        self.calls = 0
        self.chunks = 0

    async def accept(self, stream: Stream, samples: np.ndarray) -> list[StreamResult]:
        """`stream.accept(samples)`, its model calls shared with other streams'."""
        loop = asyncio.get_running_loop()
        if stream.graph is None:
            return await loop.run_in_executor(self.executor, stream.accept, samples)
        return await self._drive(stream, stream.take(samples), final=False)

    async def finish(self, stream: Stream) -> list[StreamResult]:
        """`stream.finish()`, its last chunks shared with other streams'."""
        loop = asyncio.get_running_loop()
        if stream.graph is None or stream.ended:
            return await loop.run_in_executor(self.executor, stream.finish)
        stream.ended = True
        results = await self._drive(stream, stream.take(final=True), final=True)
        return results + await loop.run_in_executor(self.executor, stream.flush)

    async def accept_and_finish(self, stream: Stream, samples: np.ndarray) -> list[StreamResult]:
        """The last samples, then the end of input: what a stream's `eof` runs."""
        return await self.accept(stream, samples) + await self.finish(stream)

    async def _drive(self, stream: Stream, request: ChunkRequest | None, *, final: bool) -> list[StreamResult]:
        loop = asyncio.get_running_loop()
        results: list[StreamResult] = []
        while request is not None:
            assert stream.graph is not None
            await self._run(stream.graph, request)
            results += await loop.run_in_executor(self.executor, stream.give, request)
            request = stream.take(final=final)
        return results

    async def _run(self, graph: StreamGraph, request: ChunkRequest) -> None:
        lane = self._lanes.setdefault(id(graph), _Lane())
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        lane.queue.append((request, future))
        lane.wakeup.set()
        if lane.collector is None or lane.collector.done():
            lane.collector = asyncio.create_task(self._collect(graph, lane))
        await future

    async def _collect(self, graph: StreamGraph, lane: _Lane) -> None:
        loop = asyncio.get_running_loop()
        while lane.queue:
            if lane.in_flight >= self.max_in_flight:
                lane.wakeup.clear()
                await lane.wakeup.wait()
                continue
            size = min(self.max_batch, graph.max_batch or self.max_batch)  # a graph may gain nothing from company (chunked_stream)
            batch, lane.queue = lane.queue[:size], lane.queue[size:]
            lane.in_flight += 1
            task = loop.run_in_executor(self.executor, graph.run, [r for r, _ in batch])
            task.add_done_callback(lambda done, batch=batch: self._deliver(lane, batch, done))  # type: ignore[misc]
            await asyncio.sleep(0)

    def _deliver(self, lane: _Lane, batch: list[tuple[ChunkRequest, asyncio.Future[None]]], done: asyncio.Future[None]) -> None:
        lane.in_flight -= 1
        lane.wakeup.set()
        self.calls += 1
        self.chunks += len(batch)
        error: BaseException | None = asyncio.CancelledError() if done.cancelled() else done.exception()
        for _, future in batch:
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(None)
