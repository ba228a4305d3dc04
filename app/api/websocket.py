"""What the WebSocket routes share (`/v1/stream`, `/v1/realtime`): the connection base, client audio
conversion, protocol errors, stream opening from a config, and registration for the drain."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import soxr
from fastapi import WebSocket
from starlette.websockets import WebSocketState

from app.api.deps import KEY_PROTOCOL
from app.api.params import RequestOptions
from app.api.state import AppState
from app.asr.audio import MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, pcm_to_float
from app.asr.errors import ASRError, EmptyAudio, InvalidAudio
from app.asr.streaming import Stream, StreamOptions


class ProtocolError(Exception):
    def __init__(self, code: str, message: str, close_code: int = 1003) -> None:
        super().__init__(message)
        self.code, self.message, self.close_code = code, message, close_code


DRAIN_WAIT = 0.2  # s: on shutdown, how long a frame already on its way may take to arrive...


DRAIN_ARRIVALS = 1.0  # s: ...during this long after the drain began; then only frames already here are read


DRAIN_BUFFERED = 0.01


class TooFarBehind(ProtocolError):
    def __init__(self, behind: float, limit: float) -> None:
        super().__init__("too_far_behind", f"the stream fell {behind:.1f} s behind real time (limit {limit:g} s): the server is overloaded; "
                         "retry later, or send audio no faster than real time", 1013)


@dataclass
class Lag:
    """How far a stream's processing runs behind real time, in seconds.

    Each piece of audio adds the wall time it took to process (from taking it off the socket to
    sending its results: queueing for the inference pool included) and subtracts its duration,
    never going below zero: Lindley's recursion, the wait a real-time client's next piece would
    have. Time spent waiting for the client counts for nothing, so pauses never look like lag."""

    limit: float
    behind: float = 0.0

    def add(self, *, audio_seconds: float, took: float) -> None:
        self.behind = max(0.0, self.behind + took - audio_seconds)
        if self.behind > self.limit:
            raise TooFarBehind(self.behind, self.limit)


@dataclass
class AudioFormat:
    """Turns client frames into mono float32 at the model rate, across frame boundaries."""

    sample_rate: int
    encoding: str
    channels: int
    model_rate: int

    def __post_init__(self) -> None:
        self.width = 2 if self.encoding == "pcm_s16le" else 4
        self.leftover = b""
        self.resampler = soxr.ResampleStream(self.sample_rate, self.model_rate, 1, dtype="float32", quality="HQ") if self.sample_rate != self.model_rate else None

    def seconds(self, size: int) -> float:
        """Duration of `size` bytes of client audio."""
        return size / (self.width * self.channels * self.sample_rate)

    def convert(self, data: bytes, *, last: bool = False) -> np.ndarray:
        data = self.leftover + data
        frame = self.width * self.channels
        whole = len(data) - len(data) % frame
        self.leftover = data[whole:]
        try:
            samples = pcm_to_float(data[:whole], self.encoding)  # checked and clipped like every other path
        except InvalidAudio as e:
            raise ProtocolError(e.code, f"audio frame: {e.message}") from e
        if self.channels > 1:
            samples = samples.reshape(-1, self.channels).mean(axis=1)
        if self.resampler is not None:
            samples = self.resampler.resample_chunk(samples, last=last)
        return samples.astype(np.float32, copy=False)


def build_stream(websocket: WebSocket, config: dict[str, Any]) -> tuple[Stream, AudioFormat]:
    state = websocket.app.state
    hotwords = config.get("hotwords", [])
    if not isinstance(hotwords, list) or not all(isinstance(h, str) for h in hotwords):
        raise ProtocolError("invalid_config", "hotwords must be a list of strings")
    try:
        request = RequestOptions.parse({k: v for k, v in config.items() if k in RequestOptions.model_fields and v is not None})
        options = request.decode_options()
        bundle = state.recognizer.bundle(request.model)
        acoustic = state.recognizer.acoustic_model(bundle, options)
        stream_options = StreamOptions(
            interim_results=bool(config.get("interim_results", True)),
            endpoint_silence=_number(config, "endpoint_silence", 0.6, 0.1, 10.0),
            max_utterance=_number(config, "max_utterance", 20.0, 1.0, 120.0),
        )
    except ASRError as e:
        raise ProtocolError(e.code, e.message, 1008) from e
    rate = config.get("sample_rate", bundle.manifest.sample_rate)
    channels = config.get("channels", 1)
    encoding = config.get("encoding", "pcm_s16le")
    if not isinstance(rate, int) or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise ProtocolError("invalid_config", f"sample_rate={rate!r} must be an integer in {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE}")
    if not isinstance(channels, int) or not 1 <= channels <= MAX_CHANNELS:
        raise ProtocolError("invalid_config", f"channels={channels!r} must be an integer in 1..{MAX_CHANNELS}")
    if encoding not in ("pcm_s16le", "f32le"):
        raise ProtocolError("invalid_config", f"encoding={encoding!r} is unknown; use 'pcm_s16le' or 'f32le'")
    stream = Stream(state.recognizer, bundle, acoustic, options, stream_options)
    return stream, AudioFormat(rate, encoding, channels, bundle.manifest.sample_rate)


def _number(config: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = config.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ProtocolError("invalid_config", f"{name}={value!r} must be a number in {low:g}..{high:g}")
    return float(value)


async def refuse_unauthorized(websocket: WebSocket, message: dict[str, Any]) -> None:
    """Complete the handshake, send `message` and close with 1008: refused before the handshake, a
    client sees only an HTTP 403 and no reason. A browser completes a handshake only when one of its
    subprotocols is echoed, so one is: `bearer` when offered, else the first that carries no key."""
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    plain = [p for p in offered if not p.startswith(KEY_PROTOCOL)] if "bearer" not in offered else ["bearer"]
    await websocket.accept(subprotocol=plain[0] if plain else None)
    await websocket.send_text(json.dumps(message))
    await websocket.close(1008, reason="missing or invalid API key")


@contextlib.contextmanager
def registered(state: AppState, session: Connection) -> Iterator[None]:
    """Count an open session (stream limit, metrics) and list it for `app.main.drain` while it runs."""
    state.active_streams += 1
    state.metrics.streams.inc()
    state.stream_sessions.add(session)
    try:
        yield
    finally:
        state.stream_sessions.discard(session)
        state.active_streams -= 1
        state.metrics.streams.dec()


class Connection:
    """One WebSocket connection of any protocol: ordered work in the inference pool, the receive loop
    that honours the idle timeout and the drain, and the send that never writes to a closed socket."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.state: AppState = websocket.app.state
        self.lock = asyncio.Lock()
        self.lag = Lag(self.state.settings.stream_max_lag_seconds)
        self.drain_started: float | None = None  # loop time at which this session saw the drain begin

    async def send(self, message: dict[str, Any]) -> None:
        if self.websocket.client_state == WebSocketState.CONNECTED:
            await self.websocket.send_text(json.dumps(message))

    async def fail(self, code: str, message: str, close_code: int) -> None:
        await self.send({"type": "error", "code": code, "message": message})
        if self.websocket.client_state == WebSocketState.CONNECTED:
            await self.websocket.close(close_code)

    async def run_in_pool(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await self.run_locked(lambda: loop.run_in_executor(self.state.executor, fn, *args))

    async def run_locked(self, work: Callable[[], Awaitable[Any]]) -> Any:
        """`work()` awaited in this connection's order, its ASR errors mapped to protocol errors."""
        async with self.lock:
            try:
                return await work()
            except (InvalidAudio, EmptyAudio) as e:
                raise ProtocolError(e.code, e.message, 1003) from e
            except ASRError as e:
                raise ProtocolError(e.code, e.message, 1008) from e

    async def receive(self, timeout: float) -> MutableMapping[str, Any] | None:
        """The next client message; TimeoutError after `timeout` s. Once the server starts draining,
        only what the client has already sent (`receive_sent`): None when that is all read."""
        draining: asyncio.Event = self.state.draining
        if draining.is_set():
            return await self.receive_sent()
        receive = asyncio.ensure_future(self.websocket.receive())
        drain = asyncio.ensure_future(draining.wait())
        try:
            done, _ = await asyncio.wait((receive, drain), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            drain.cancel()
            if not receive.done():
                receive.cancel()
        if receive in done:
            return receive.result()
        if drain in done:
            return await self.receive_sent()
        raise TimeoutError

    async def receive_sent(self) -> MutableMapping[str, Any] | None:
        """While draining: the next message the client had already sent, or None. A frame may take up
        to `DRAIN_WAIT` to arrive during the first `DRAIN_ARRIVALS` s of the drain (it was on its way);
        after that only frames already received are read, however many there are."""
        loop = asyncio.get_running_loop()
        if self.drain_started is None:
            self.drain_started = loop.time()
        wait = DRAIN_WAIT if loop.time() - self.drain_started < DRAIN_ARRIVALS else DRAIN_BUFFERED
        try:
            return await asyncio.wait_for(self.websocket.receive(), wait)
        except TimeoutError:
            return None
