"""`create_app(settings)`: the FastAPI application. Bundles load in the lifespan, not at import."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app import __version__
from app.api import demo, docs
from app.api.errors import install_error_handlers
from app.api.limits import BodyLimitMiddleware, body_limit
from app.api.metrics import Metrics
from app.api.openai import router as openai
from app.api.realtime import router as realtime
from app.api.rest import router as rest
from app.api.state import AppState
from app.api.stream import router as stream
from app.asr.batching import InferenceEngine
from app.asr.bundle import load_bundles
from app.asr.capacity import Admission, StreamCapacity, capacity_from_setting, measure_stream_capacity
from app.asr.recognizer import Recognizer
from app.asr.stream_batching import StreamScheduler
from app.config import Settings

log = logging.getLogger("app")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        bundles = load_bundles(settings.models_dir, threads=settings.resolved_threads(), device=settings.device, precisions=tuple(settings.precisions))
        for name, reason in bundles.failures.items():
            log.error("bundle %s failed to load: %s", name, reason)
        recognizer = Recognizer(bundles, default_model=settings.default_model, threads=settings.resolved_threads())
        await asyncio.get_running_loop().run_in_executor(None, recognizer.warm_up)
        gc.freeze()  # the loaded LMs are long-lived: keep them out of every later collection
        executor = ThreadPoolExecutor(max_workers=settings.resolved_workers(), thread_name_prefix="asr-infer")
        app.state.recognizer = recognizer
        app.state.executor = executor
        app.state.engine = InferenceEngine(recognizer, executor, max_batch=settings.batch_max_size, max_wait_ms=settings.batch_max_wait_ms,
                                           max_in_flight=settings.resolved_workers())
        app.state.request_slots = asyncio.Semaphore(settings.max_concurrent_requests)
        app.state.streams = StreamScheduler(executor)  # every stream's chunks, batched across streams
        app.state.admission = Admission(stream_capacity(settings, recognizer))
        app.state.metrics.stream_capacity.set(app.state.admission.limit)
        log.info("stream capacity: %s", app.state.admission.capacity.describe())
        app.state.draining = asyncio.Event()  # set by `drain` when the server starts shutting down
        app.state.shutting_down = False  # a restarted lifespan (the same app served again) is ready again
        log.info("serving %d acoustic and %d LM bundles from %s", len(bundles.acoustic), len(bundles.lms), settings.models_dir)
        try:
            yield
        finally:
            app.state.shutting_down = True
            executor.shutdown(wait=True, cancel_futures=False)

    api_keys = settings.all_api_keys()
    protect_docs = bool(api_keys) and not settings.public_docs
    app = FastAPI(title="asr-server", version=__version__, lifespan=lifespan, **docs.docs_urls(protected=protect_docs),
                  description="Speech recognition on ONNX Runtime: Wav2Letter (ASG/CTC) and wav2vec 2.0, beam search, Transformer-XL rescoring.")
    app.state = AppState(settings=settings, metrics=Metrics(), api_keys=api_keys)  # typed: what every route reaches through app.api.deps
    app.add_middleware(BodyLimitMiddleware, max_bytes=body_limit(settings.max_upload_bytes))
    if settings.cors_origins:  # outside the body limit, so its 413s carry CORS headers too
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"], allow_headers=["*"])
    install_error_handlers(app)
    app.include_router(rest.router)
    app.include_router(rest.protected)
    app.include_router(openai.router)
    app.include_router(stream.router)
    app.include_router(realtime.router)
    app.include_router(demo.router)
    if protect_docs:
        docs.install(app)
    return app


def stream_capacity(settings: Settings, recognizer: Recognizer) -> StreamCapacity:
    """`ASR_MAX_STREAMS` when set, else what the default model's streams cost here, measured now."""
    setting = capacity_from_setting(settings.max_streams)
    if setting is not None:
        return setting
    try:
        bundle = recognizer.bundle(None)
    except Exception:  # noqa: BLE001 - no model loaded: /readyz says so; streams are refused when they name one
        return StreamCapacity(1, "measured")
    return measure_stream_capacity(recognizer, bundle, workers=settings.resolved_workers())


async def drain(app: FastAPI, *, timeout: float) -> None:
    """Begin a graceful shutdown: /readyz turns 503, new streams are refused, and every open
    `WS /v1/stream` session flushes its final results, sends `eof` and closes with 1001.
    Returns when none is left (`app.state.stream_sessions`; another WebSocket route joins by
    registering there and watching `app.state.draining`) or after `timeout` seconds.
    `app.server.GracefulServer` calls it before uvicorn's own shutdown, which would cut open
    WebSockets with 1012 and no final result."""
    app.state.shutting_down = True
    app.state.draining.set()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while app.state.stream_sessions and loop.time() < deadline:
        await asyncio.sleep(0.05)
