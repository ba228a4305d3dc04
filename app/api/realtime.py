"""`WS /v1/realtime?intent=transcription`: OpenAI Realtime transcription sessions on the streaming engine.

The same `Stream` that serves `WS /v1/stream` runs under OpenAI's Realtime event protocol, so
clients written for OpenAI's transcription sessions work unchanged. Only transcription
sessions exist here: no responses, no audio output, no conversation items besides the
transcribed input.

Protocol
--------
Every message is a JSON text frame with a `type`. On connect the server sends
`transcription_session.created` with the effective session (in the beta form whatever the
client: nothing in a GA client's handshake tells it apart; GA clients get `session.updated`
in the GA form once they send `session.update`).

Client events (an optional `event_id` is echoed in the errors it causes):

- `transcription_session.update` {session: {input_audio_format, input_audio_transcription:
  {model, language, prompt}, turn_detection}} (the beta form), or `session.update`
  {session: {type: "transcription", audio: {input: {format, transcription, turn_detection}}}}
  (the GA form). Only the fields present change. The answer is `transcription_session.updated`
  or `session.updated`, in the form of the request.
  - `input_audio_format`: `pcm16` (16-bit little-endian mono at 24 kHz), `g711_ulaw` or
    `g711_alaw` (8 kHz). GA: `{"type": "audio/pcm", "rate": 24000}`, `audio/pcmu`,
    `audio/pcma`; as an extension `audio/pcm` takes any `rate` from 8000 to 192000.
  - `model`: a bundle name, or one of OpenAI's transcription models (`whisper-1`,
    `gpt-4o-transcribe`, `gpt-4o-mini-transcribe`) for the server's default model; any other
    name is refused with `unknown_model`, as over HTTP. `language` and `prompt` are accepted and ignored.
  - `turn_detection`: `{"type": "server_vad", "silence_duration_ms": 500}` (the default;
    `semantic_vad` runs as `server_vad`; `threshold` and `prefix_padding_ms` are ignored because
    endpoints come from the model's own blank frames) or `null` for manual commits only.
  The model or the audio format can change only while the buffer holds no uncommitted audio.
- `input_audio_buffer.append` {audio: base64}: audio in the session format, any length up to
  the server's message limit (`ASR_WS_MAX_MESSAGE_BYTES`, 1 MiB of base64 text by default).
- `input_audio_buffer.commit`: the audio since the last commit becomes an item and is
  transcribed in full (the stream's end-of-input flush); the next item starts a new stream that
  keeps the Transformer-XL rescoring memory.
- `input_audio_buffer.clear`: drops the uncommitted audio.

Server events (each with a unique `event_id`):

- `input_audio_buffer.speech_started` {audio_start_ms, item_id} and
  `input_audio_buffer.speech_stopped` {audio_end_ms, item_id}: server VAD only.
- `conversation.item.input_audio_transcription.delta` {item_id, content_index: 0, delta}: live
  text growth while audio arrives (before the commit, unlike OpenAI's batch models); the
  `completed` transcript is authoritative and may differ from the concatenated deltas.
- `input_audio_buffer.committed` {item_id, previous_item_id}, on an explicit commit and at each
  server-VAD endpoint, followed by `conversation.item.input_audio_transcription.completed`
  {item_id, content_index: 0, transcript, usage: {type: "duration", seconds}}.
- `input_audio_buffer.cleared`.
- `error` {error: {type, code, message, param, event_id}}. Bad JSON, unknown events, bad base64,
  bad session values, oversized events, binary frames and empty commits leave the connection
  open. The idle timeout closes it
  with 1001, the stream limit with 1013.

Without turn detection an item is also committed on its own after 120 s of audio, and with
server VAD after 20 s of continuous speech.

Authentication (when API keys are set): `Authorization: Bearer <key>`, the subprotocol pair
`["bearer", "<key>"]`, or OpenAI's browser form, a subprotocol `openai-insecure-api-key.<key>`.
Without a valid key the handshake completes, an `error` event with code `unauthorized` follows and
the server closes with 1008.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from app.api.deps import key_is_valid
from app.api.openai import OPENAI_MODEL_ALIASES
from app.api.stream import (
    UNAUTHORIZED,
    AudioFormat,
    ProtocolError,
    StreamSession,
    TooFarBehind,
    authorized,
    build_stream,
    refuse_unauthorized,
    registered,
)
from app.asr.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from app.asr.streaming import Stream, StreamResult

router = APIRouter()
log = logging.getLogger(__name__)

FORMAT_RATES = {"pcm16": 24000, "g711_ulaw": 8000, "g711_alaw": 8000}
GA_FORMATS = {"audio/pcm": "pcm16", "audio/pcmu": "g711_ulaw", "audio/pcma": "g711_alaw"}
MANUAL_MAX_ITEM = 120.0  # seconds: without turn detection an item is committed on its own after this long
VAD_MAX_ITEM = 20.0
NO_ENDPOINT = 1e9  # seconds of silence: never reached, so only commits end an item
KEY_PROTOCOL = "openai-insecure-api-key."


def _ulaw_table() -> np.ndarray:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    magnitude = ((((code & 0x0F) << 3) + 0x84) << ((code >> 4) & 7)) - 0x84
    return np.where(code & 0x80, -magnitude, magnitude).astype("<i2")


def _alaw_table() -> np.ndarray:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    exponent, mantissa = (code >> 4) & 7, code & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    return np.where(code & 0x80, magnitude, -magnitude).astype("<i2")


G711_TABLES = {"g711_ulaw": _ulaw_table(), "g711_alaw": _alaw_table()}


class RealtimeError(Exception):
    """A client fault answered with an `error` event; the connection stays open."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


@dataclass(frozen=True)
class SessionConfig:
    """The effective session; `model` is what the client asked for (None: the default model)."""

    audio_format: str = "pcm16"
    sample_rate: int = 24000
    model: str | None = None
    language: str | None = None
    prompt: str | None = None
    vad: bool = True
    silence_ms: int = 500
    threshold: float = 0.5
    prefix_padding_ms: int = 300

    def stream_config(self) -> dict[str, Any]:
        """The `/v1/stream` config this session runs as."""
        model = None if self.model is None or self.model in OPENAI_MODEL_ALIASES else self.model  # like POST /v1/audio/transcriptions
        return {"model": model, "sample_rate": self.sample_rate, "encoding": "pcm_s16le", "channels": 1, "interim_results": True,
                "endpoint_silence": self.silence_ms / 1000 if self.vad else 10.0, "max_utterance": VAD_MAX_ITEM if self.vad else MANUAL_MAX_ITEM}


def _object(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RealtimeError("invalid_value", f"{param} must be an object", param)
    return value


def _update_transcription(fields: dict[str, Any], value: Any, param: str) -> None:
    if value is None:
        return
    for name in ("model", "language", "prompt"):
        item = _object(value, param).get(name)
        if item is not None and not isinstance(item, str):
            raise RealtimeError("invalid_value", f"{param}.{name} must be a string", f"{param}.{name}")
        if name in value:
            fields[name] = item or None


def _update_turn_detection(fields: dict[str, Any], value: Any, param: str) -> None:
    if value is None:
        fields["vad"] = False
        return
    value = _object(value, param)
    kind = value.get("type", "server_vad")
    if kind not in ("server_vad", "semantic_vad"):
        raise RealtimeError("invalid_value", f"{param}.type={kind!r} is unknown; use 'server_vad', or null for manual commits", f"{param}.type")
    fields["vad"] = True
    silence = value.get("silence_duration_ms")
    if silence is not None:
        if isinstance(silence, bool) or not isinstance(silence, int | float) or not 100 <= silence <= 10000:
            raise RealtimeError("invalid_value", f"{param}.silence_duration_ms={silence!r} must be a number of milliseconds in 100..10000",
                                f"{param}.silence_duration_ms")
        fields["silence_ms"] = int(silence)
    for name, kind_ in (("threshold", float), ("prefix_padding_ms", int)):
        if isinstance(value.get(name), int | float) and not isinstance(value.get(name), bool):
            fields[name] = kind_(value[name])


def update_beta(config: SessionConfig, session: dict[str, Any]) -> SessionConfig:
    """Apply a `transcription_session.update` session object."""
    fields: dict[str, Any] = {}
    if "input_audio_format" in session:
        audio_format = session["input_audio_format"]
        if audio_format not in FORMAT_RATES:
            raise RealtimeError("invalid_value", f"input_audio_format={audio_format!r} is unknown; use 'pcm16', 'g711_ulaw' or 'g711_alaw'",
                                "session.input_audio_format")
        fields.update(audio_format=audio_format, sample_rate=FORMAT_RATES[audio_format])
    if "input_audio_transcription" in session:
        _update_transcription(fields, session["input_audio_transcription"], "session.input_audio_transcription")
    if "turn_detection" in session:
        _update_turn_detection(fields, session["turn_detection"], "session.turn_detection")
    return dataclasses.replace(config, **fields)


def update_ga(config: SessionConfig, session: dict[str, Any]) -> SessionConfig:
    """Apply a GA `session.update` session object (`type: "transcription"`)."""
    if session.get("type", "transcription") != "transcription":
        raise RealtimeError("invalid_value", f"session.type={session.get('type')!r}: this server runs only 'transcription' sessions", "session.type")
    fields: dict[str, Any] = {}
    audio_input = _object(_object(session.get("audio") or {}, "session.audio").get("input") or {}, "session.audio.input")
    if audio_input.get("format") is not None:
        audio = _object(audio_input["format"], "session.audio.input.format")
        kind = audio.get("type", "audio/pcm")
        if kind not in GA_FORMATS:
            raise RealtimeError("invalid_value", f"format type {kind!r} is unknown; use 'audio/pcm', 'audio/pcmu' or 'audio/pcma'", "session.audio.input.format.type")
        rate = audio.get("rate", 24000) if kind == "audio/pcm" else 8000
        if isinstance(rate, bool) or not isinstance(rate, int) or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
            raise RealtimeError("invalid_value", f"rate={rate!r} must be an integer in {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE}", "session.audio.input.format.rate")
        fields.update(audio_format=GA_FORMATS[kind], sample_rate=rate)
    if "transcription" in audio_input:
        _update_transcription(fields, audio_input["transcription"], "session.audio.input.transcription")
    if "turn_detection" in audio_input:
        _update_turn_detection(fields, audio_input["turn_detection"], "session.audio.input.turn_detection")
    return dataclasses.replace(config, **fields)


def render_beta(config: SessionConfig, session_id: str, model: str) -> dict[str, Any]:
    return {"id": session_id, "object": "realtime.transcription_session", "modalities": ["text"], "input_audio_format": config.audio_format,
            "input_audio_transcription": {"model": model, "language": config.language, "prompt": config.prompt},
            "turn_detection": _turn_detection(config), "input_audio_noise_reduction": None, "include": []}


def render_ga(config: SessionConfig, session_id: str, model: str) -> dict[str, Any]:
    kind = next(k for k, v in GA_FORMATS.items() if v == config.audio_format)
    audio_format = {"type": kind, "rate": config.sample_rate} if kind == "audio/pcm" else {"type": kind}
    return {"type": "transcription", "id": session_id, "object": "realtime.transcription_session", "include": [],
            "audio": {"input": {"format": audio_format, "transcription": {"model": model, "language": config.language, "prompt": config.prompt},
                                "turn_detection": _turn_detection(config), "noise_reduction": None}}}


def _turn_detection(config: SessionConfig) -> dict[str, Any] | None:
    if not config.vad:
        return None
    return {"type": "server_vad", "threshold": config.threshold, "prefix_padding_ms": config.prefix_padding_ms, "silence_duration_ms": config.silence_ms}


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


class RealtimeSession(StreamSession):
    """One connection: a `Stream` per item, the protocol state around it."""

    def __init__(self, websocket: WebSocket) -> None:
        super().__init__(websocket)
        self.session_id = _new_id("sess")
        self.config = SessionConfig()
        self.stream: Stream
        self.audio: AudioFormat
        self.pending = 0  # input samples appended since the last commit
        self.stream_samples = 0  # input samples fed to the current stream
        self.base_ms = 0.0  # session time at which the current stream began
        self.item_id: str | None = None  # the item the uncommitted audio will become
        self.previous_item_id: str | None = None
        self.speaking = False  # speech_started sent for the current item
        self.sent_text = ""  # text of the current item already sent as deltas

    async def emit(self, kind: str, **fields: Any) -> None:
        await self.send({"event_id": _new_id("event"), "type": kind, **fields})

    async def error(self, code: str, message: str, *, param: str | None = None, event_id: str | None = None, kind: str = "invalid_request_error") -> None:
        await self.emit("error", error={"type": kind, "code": code, "message": message, "param": param, "event_id": event_id})

    def open_stream(self, config: SessionConfig) -> tuple[Stream, AudioFormat]:
        stream, audio = build_stream(self.websocket, config.stream_config())
        if not config.vad:
            stream.stream_options = dataclasses.replace(stream.stream_options, endpoint_silence=NO_ENDPOINT)
        return stream, audio

    def next_stream(self) -> None:
        """Start a new item's stream after a commit or clear; rescoring memory carries over."""
        memory = self.stream.memory
        self.base_ms += self.stream_samples * 1000 / self.audio.sample_rate
        self.stream, self.audio = self.open_stream(self.config)
        self.stream.memory = memory
        self.stream_samples = self.pending = 0

    def ms(self, seconds: float) -> int:
        return round(self.base_ms + seconds * 1000)

    async def serve(self) -> None:
        settings = self.state.settings
        self.stream, self.audio = self.open_stream(self.config)
        await self.emit("transcription_session.created", session=render_beta(self.config, self.session_id, self.stream.bundle.name))
        while True:
            try:
                message = await self.receive(settings.stream_idle_seconds)
            except TimeoutError:
                await self.error("idle_timeout", f"no message for {settings.stream_idle_seconds:g} s")
                await self.websocket.close(1001)
                return
            if message is None:  # the server is draining and every event sent is in: transcribe what was appended, then close
                if self.pending:
                    await self.commit()
                await self.websocket.close(1001)
                return
            if message["type"] == "websocket.disconnect":
                return
            event_id = None
            try:
                if message.get("text") is None:
                    raise RealtimeError("invalid_event", "binary frames are not part of the protocol; send input_audio_buffer.append with base64 audio")
                if len(message["text"]) > settings.ws_max_message_bytes:
                    raise RealtimeError("frame_too_large", f"event of {len(message['text'])} characters exceeds {settings.ws_max_message_bytes}; send smaller appends")
                event = _parse(message["text"])
                event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
                await self.dispatch(event)
            except RealtimeError as e:
                await self.error(e.code, e.message, param=e.param, event_id=event_id)
            except TooFarBehind as e:  # overloaded: a documented close, not an error the session survives
                await self.error(e.code, e.message, event_id=event_id, kind="server_error")
                await self.websocket.close(e.close_code)
                return
            except ProtocolError as e:  # from build_stream: bad model or options
                await self.error(e.code, e.message, event_id=event_id)

    async def dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind in ("transcription_session.update", "session.update"):
            await self.update(event, ga=kind == "session.update")
        elif kind == "input_audio_buffer.append":
            await self.append(event.get("audio"))
        elif kind == "input_audio_buffer.commit":
            await self.commit()
        elif kind == "input_audio_buffer.clear":
            self.next_stream()
            self.item_id, self.speaking, self.sent_text = None, False, ""
            await self.emit("input_audio_buffer.cleared")
        else:
            raise RealtimeError("unknown_event", f"unknown event type {kind!r}; this server takes transcription_session.update, session.update, "
                                "input_audio_buffer.append, input_audio_buffer.commit and input_audio_buffer.clear", "type")

    async def update(self, event: dict[str, Any], *, ga: bool) -> None:
        session = _object(event.get("session"), "session")
        config = update_ga(self.config, session) if ga else update_beta(self.config, session)
        stream, audio = self.open_stream(config)  # validates the model before anything changes
        if (config.audio_format, config.sample_rate, config.stream_config()["model"]) != (
                self.config.audio_format, self.config.sample_rate, self.config.stream_config()["model"]):
            if self.pending:
                raise RealtimeError("buffer_not_empty", "the model or input audio format can change only with an empty buffer; commit or clear it first", "session")
            stream.memory = self.stream.memory
            self.base_ms += self.stream_samples * 1000 / self.audio.sample_rate
            self.stream, self.audio, self.stream_samples = stream, audio, 0
        else:  # turn detection applies to the running stream at once
            self.stream.stream_options = dataclasses.replace(self.stream.stream_options, endpoint_silence=stream.stream_options.endpoint_silence,
                                                             max_utterance=stream.stream_options.max_utterance)
        self.config = config
        render = render_ga if ga else render_beta
        await self.emit("session.updated" if ga else "transcription_session.updated", session=render(config, self.session_id, self.stream.bundle.name))

    async def append(self, audio: Any) -> None:
        if not isinstance(audio, str):
            raise RealtimeError("invalid_value", "input_audio_buffer.append needs `audio`, a base64 string", "audio")
        try:
            data = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError) as e:
            raise RealtimeError("invalid_base64", f"audio is not valid base64: {e}", "audio") from e
        table = G711_TABLES.get(self.config.audio_format)
        if table is not None:
            data = table[np.frombuffer(data, np.uint8)].tobytes()
        count = (len(self.audio.leftover) + len(data)) // 2  # whole input samples this append completes
        received = asyncio.get_running_loop().time()
        samples = self.audio.convert(data)
        self.pending += count
        self.stream_samples += count
        await self.publish(await self.run_locked(lambda: self.state.streams.accept(self.stream, samples)))
        if self.drain_started is None:
            self.lag.add(audio_seconds=count / self.audio.sample_rate, took=asyncio.get_running_loop().time() - received)

    async def commit(self) -> None:
        if not self.pending:
            raise RealtimeError("input_audio_buffer_commit_empty", "the buffer holds no audio since the last commit")
        stream, tail = self.stream, self.audio.convert(b"", last=True)
        results = await self.run_locked(lambda: self.state.streams.accept_and_finish(stream, tail))
        last = max((i for i, r in enumerate(results) if r.kind == "final"), default=None)
        await self.publish(results[:last] if last is not None else results)
        final = results[last] if last is not None else StreamResult("final", "", start=self.stream_samples / self.audio.sample_rate,
                                                                     end=self.stream_samples / self.audio.sample_rate)
        await self.complete(final, vad=False)
        self.next_stream()

    async def publish(self, results: list[StreamResult]) -> None:
        for result in results:
            if result.kind == "final":
                await self.complete(result, vad=True)
                continue
            if self.item_id is None:
                self.item_id = _new_id("item")
            if not self.speaking and result.text and self.config.vad:
                self.speaking = True
                await self.emit("input_audio_buffer.speech_started", audio_start_ms=self.ms(result.start), item_id=self.item_id)
            if result.text.startswith(self.sent_text) and len(result.text) > len(self.sent_text):
                delta, self.sent_text = result.text[len(self.sent_text):], result.text
                await self.emit("conversation.item.input_audio_transcription.delta", item_id=self.item_id, content_index=0, delta=delta)

    async def complete(self, result: StreamResult, *, vad: bool) -> None:
        """One item ends: (speech events), committed, completed."""
        item_id = self.item_id or _new_id("item")
        if self.config.vad and (self.speaking or vad):
            if not self.speaking:
                await self.emit("input_audio_buffer.speech_started", audio_start_ms=self.ms(result.start), item_id=item_id)
            await self.emit("input_audio_buffer.speech_stopped", audio_end_ms=self.ms(result.end), item_id=item_id)
        await self.emit("input_audio_buffer.committed", item_id=item_id, previous_item_id=self.previous_item_id)
        await self.emit("conversation.item.input_audio_transcription.completed", item_id=item_id, content_index=0, transcript=result.text,
                        usage={"type": "duration", "seconds": round(max(result.end - result.start, 0.0), 3)})
        self.previous_item_id, self.item_id, self.speaking, self.sent_text = item_id, None, False, ""
        self.pending = 0


def _parse(text: str) -> dict[str, Any]:
    try:
        event = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RealtimeError("invalid_json", f"the event is not valid JSON: {e}") from e
    if not isinstance(event, dict):
        raise RealtimeError("invalid_json", "the event must be a JSON object")
    return event


def realtime_authorized(websocket: WebSocket) -> tuple[bool, str | None]:
    """`/v1/stream`'s rules plus OpenAI's `openai-insecure-api-key.<key>` subprotocol; returns the subprotocol to echo.

    Browsers fail the handshake unless the server picks one of the offered subprotocols, so one is
    always echoed when any was offered, never the one that carries the key if another exists.
    """
    protocols = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    plain = [p for p in protocols if not p.startswith(KEY_PROTOCOL)]
    if protocols and protocols[0] == "bearer":
        echo: str | None = "bearer"
    else:
        preferred = [p for p in ("realtime", "openai-beta.realtime-v1") if p in plain] + plain + protocols
        echo = preferred[0] if preferred else None
    ok, _ = authorized(websocket)
    if not ok:
        keys: list[str] = websocket.app.state.api_keys
        ok = any(key_is_valid(p[len(KEY_PROTOCOL):], keys) for p in protocols if p.startswith(KEY_PROTOCOL))
    return ok, echo


@router.websocket("/v1/realtime")
async def realtime_endpoint(websocket: WebSocket) -> None:
    state = websocket.app.state
    ok, subprotocol = realtime_authorized(websocket)
    if not ok:
        await refuse_unauthorized(websocket, {"event_id": _new_id("event"), "type": "error", "error": {
            "type": "invalid_request_error", "code": "unauthorized", "message": UNAUTHORIZED, "param": None, "event_id": None}})
        return
    await websocket.accept(subprotocol=subprotocol)
    session = RealtimeSession(websocket)
    intent = websocket.query_params.get("intent", "transcription")
    if intent != "transcription":
        await session.error("unsupported_intent", f"intent={intent!r}: this server runs only transcription sessions (?intent=transcription)", param="intent")
        await websocket.close(1008)
        return
    if state.shutting_down or not state.admission.admit(state.active_streams):
        state.metrics.streams_refused.inc()
        reason = "the server is shutting down" if state.shutting_down else state.admission.reason()
        await session.error("too_many_streams", reason, kind="server_error")
        await websocket.close(1013)
        return
    with registered(state, session):  # `app.main.drain` waits for it to commit and close on shutdown
        try:
            await session.serve()
        except ProtocolError as e:  # the default model could not be opened
            await session.error(e.code, e.message, kind="server_error")
            await websocket.close(1011)
        except (WebSocketDisconnect, TimeoutError):
            pass
        except Exception:  # noqa: BLE001 - one session's fault must not take the server down
            log.exception("realtime session failed")
            await session.error("internal_error", "the session failed", kind="server_error")
            await websocket.close(1011)
