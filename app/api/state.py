"""`AppState`: everything the routes share, typed. It is the application's `state` (`app.state`),
created by `app.main.create_app` and completed by its lifespan; routes reach it through
`app.api.deps`, never as a bag of attributes."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from app.api.metrics import Metrics
from app.asr.batching import InferenceEngine
from app.asr.recognizer import Recognizer
from app.config import Settings


@dataclass(eq=False)
class AppState:
    settings: Settings
    metrics: Metrics
    api_keys: list[str]
    shutting_down: bool = False  # /readyz answers 503 and new work is refused
    active_streams: int = 0  # open WebSocket sessions (/v1/stream and /v1/realtime)
    draining: asyncio.Event = field(default_factory=asyncio.Event)  # set by `app.main.drain`
    stream_sessions: set[Any] = field(default_factory=set)  # open WebSocket sessions, which flush their results when draining
    # Set by the lifespan once the bundles are loaded (absent before: reading one then is a bug).
    recognizer: Recognizer = field(init=False)
    executor: Executor = field(init=False)
    engine: InferenceEngine = field(init=False)  # the acoustic calls of HTTP requests, batched
    request_slots: asyncio.Semaphore = field(init=False)  # at most `max_concurrent_requests` HTTP transcriptions at once
