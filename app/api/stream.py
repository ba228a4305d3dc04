"""`WS /v1/stream`: live transcription over WebSocket.

Protocol
--------
1. The client sends a JSON config (`type` may be left out)::

       {"type": "config", "model": "wav2letter-asg", "sample_rate": 16000, "encoding": "pcm_s16le",
        "channels": 1, "decoder": "greedy", "beam_size": 16, "rescore": false, "hotwords": [],
        "interim_results": true, "endpoint_silence": 0.6, "max_utterance": 20}

   and receives `{"type": "ready", "model": ..., "sample_rate": <model rate>}`.
2. Then binary frames of audio of any size (`pcm_s16le` or `f32le`, interleaved channels).
   The server answers `{"type": "partial", "text"}` while speech goes on and
   `{"type": "final", "text", "raw_text", "words", "start", "end", "nbest"}` at each endpoint (`text` punctuated
   and cased when a punctuation bundle is loaded, `raw_text` the normalised words; partials stay raw).
3. `{"type": "eof"}` flushes the last final result; the server then closes with 1000.
   When the server shuts down (SIGTERM) it flushes every open stream the same way, sends
   `{"type": "eof", "reason": "shutdown"}` and closes with 1001.

Errors are `{"type": "error", "code", "message"}` followed by a close: 1003 for malformed
messages, 1008 for authentication or policy, 1009 for oversized frames, 1013 when the
server is at its stream limit, 1001 after the idle timeout.

Overload. The server reads a client's next frame only once the previous one is processed, so a
client that sends faster than it is served is slowed down by TCP (its sends block). A stream
whose processing falls more than `ASR_STREAM_MAX_LAG_SECONDS` (10 s) behind real time gets
`{"type": "error", "code": "too_far_behind"}` and close 1013; the results sent before stay valid.
On shutdown every frame the client had already sent is transcribed before the last final.

Authentication (when API keys are set): `Authorization: Bearer <key>` header, or the
subprotocol pair `["bearer", "<key>"]` for browsers that cannot set headers. Never a query
string, which lands in access logs. Without a valid key the handshake completes and the
server sends `{"type": "error", "code": "unauthorized"}` and closes with 1008.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import soxr
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from app.api.deps import bearer_token, key_is_valid
from app.api.params import RequestOptions
from app.asr.audio import MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, pcm_to_float
from app.asr.errors import ASRError, EmptyAudio, InvalidAudio
from app.asr.streaming import Stream, StreamOptions, StreamResult

router = APIRouter()
log = logging.getLogger(__name__)


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


def parse_config(text: str) -> dict[str, Any]:
    try:
        config = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ProtocolError("invalid_json", f"config is not valid JSON: {e.msg if hasattr(e, 'msg') else e}") from e
    if not isinstance(config, dict):
        raise ProtocolError("invalid_config", "config must be a JSON object")
    if config.get("type", "config") != "config":
        raise ProtocolError("invalid_config", f"first message must be the config, got type {config.get('type')!r}")
    return config


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


def result_message(result: StreamResult) -> dict[str, Any]:
    if result.kind == "partial":
        return {"type": "partial", "text": result.text, "start": round(result.start, 3)}
    transcript = result.transcript
    assert transcript is not None
    body = transcript.to_json()
    return {"type": "final", "text": result.text, "raw_text": body["raw_text"], "start": round(result.start, 3), "end": round(result.end, 3), "words": body["words"], "nbest": body["nbest"]}


def authorized(websocket: WebSocket) -> tuple[bool, str | None]:
    """Header bearer token or the subprotocol pair ("bearer", key); returns the subprotocol to echo."""
    keys: list[str] = websocket.app.state.api_keys
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    if not keys:  # a browser drops the connection unless an offered subprotocol is echoed
        return True, ("bearer" if "bearer" in offered else None)
    if key_is_valid(bearer_token(websocket.headers.get("authorization")), keys):
        return True, None
    if len(offered) >= 2 and offered[0] == "bearer" and key_is_valid(offered[1], keys):
        return True, "bearer"
    return False, None


UNAUTHORIZED = "missing or invalid API key (send 'Authorization: Bearer <key>' or the subprotocols 'bearer', '<key>')"


async def refuse_unauthorized(websocket: WebSocket, message: dict[str, Any]) -> None:
    """Complete the handshake, send `message` and close with 1008: refused before the handshake, a
    client sees only an HTTP 403 and no reason. A browser completes a handshake only when one of its
    subprotocols is echoed, so one is: `bearer` when offered, else the first that carries no key."""
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    plain = [p for p in offered if not p.startswith("openai-insecure-api-key.")] if "bearer" not in offered else ["bearer"]
    await websocket.accept(subprotocol=plain[0] if plain else None)
    await websocket.send_text(json.dumps(message))
    await websocket.close(1008, reason="missing or invalid API key")


class StreamSession:
    """Runs one connection: all the work of one stream happens in order, in the inference pool."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.state = websocket.app.state
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

    async def flush(self, stream: Stream, audio_format: AudioFormat, **eof: str) -> None:
        """Final results for the audio so far, then `eof`."""
        tail = audio_format.convert(b"", last=True)
        results = await self.run_locked(lambda: self.state.streams.accept_and_finish(stream, tail))
        for result in results:
            await self.send(result_message(result))
        await self.send({"type": "eof", **eof})

    async def serve(self) -> None:
        settings = self.state.settings
        config_message = await self.receive(settings.stream_idle_seconds)
        if config_message is None:
            raise ProtocolError("shutting_down", "the server is shutting down", 1001)
        if config_message["type"] == "websocket.disconnect":
            return
        if config_message.get("text") is None:
            raise ProtocolError("config_expected", "the first message must be a JSON config, not binary audio")
        stream, audio_format = build_stream(self.websocket, parse_config(config_message["text"]))
        await self.send({"type": "ready", "model": stream.bundle.name, "sample_rate": stream.bundle.manifest.sample_rate})
        while True:
            try:
                message = await self.receive(settings.stream_idle_seconds)
            except TimeoutError:
                await self.fail("idle_timeout", f"no message for {settings.stream_idle_seconds:g} s", 1001)
                return
            if message is None:  # the server is shutting down and every frame sent is in: deliver what was heard, then go away
                await self.flush(stream, audio_format, reason="shutdown")
                if self.websocket.client_state == WebSocketState.CONNECTED:
                    await self.websocket.close(1001, reason="server shutting down")
                return
            if message["type"] == "websocket.disconnect":
                return
            data, text = message.get("bytes"), message.get("text")
            if data is not None:
                if len(data) > settings.ws_max_message_bytes:
                    raise ProtocolError("frame_too_large", f"audio frame of {len(data)} bytes exceeds {settings.ws_max_message_bytes}", 1009)
                received = asyncio.get_running_loop().time()
                samples = audio_format.convert(data)
                for result in await self.run_locked(lambda: self.state.streams.accept(stream, samples)):  # noqa: B023 - awaited at once
                    await self.send(result_message(result))
                if self.drain_started is None:  # while draining, everything received is transcribed
                    self.lag.add(audio_seconds=audio_format.seconds(len(data)), took=asyncio.get_running_loop().time() - received)
                continue
            event = _parse_event(text)
            if event.get("type") != "eof":
                raise ProtocolError("unknown_message", f"unknown message type {event.get('type')!r}; send binary audio or {{\"type\": \"eof\"}}")
            await self.flush(stream, audio_format)
            await self.websocket.close(1000)
            return


def _parse_event(text: str | None) -> dict[str, Any]:
    try:
        event = json.loads(text or "")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ProtocolError("invalid_json", "text frame is not valid JSON") from e
    if not isinstance(event, dict):
        raise ProtocolError("invalid_json", "text frame must be a JSON object")
    return event


@contextlib.contextmanager
def registered(state: Any, session: StreamSession) -> Iterator[None]:
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


@router.websocket("/v1/stream")
async def stream_endpoint(websocket: WebSocket) -> None:
    state = websocket.app.state
    ok, subprotocol = authorized(websocket)
    if not ok:
        await refuse_unauthorized(websocket, {"type": "error", "code": "unauthorized", "message": UNAUTHORIZED})
        return
    await websocket.accept(subprotocol=subprotocol)
    session = StreamSession(websocket)
    if state.shutting_down:
        await session.fail("shutting_down", "the server is shutting down", 1001)
        return
    if not state.admission.admit(state.active_streams):  # refused at once: the open streams keep their latency
        state.metrics.streams_refused.inc()
        await session.fail("too_many_streams", state.admission.reason(), 1013)
        return
    with registered(state, session):
        try:
            await session.serve()
        except ProtocolError as e:
            await session.fail(e.code, e.message, e.close_code)
        except (WebSocketDisconnect, TimeoutError):
            pass
        except Exception:  # noqa: BLE001 - one stream's fault must not take the server down
            log.exception("stream failed")
            await session.fail("internal_error", "the stream failed", 1011)
