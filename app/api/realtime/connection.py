"""`WS /v1/realtime` connections: a `Stream` per item under OpenAI's Realtime event protocol."""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
from typing import Any

from fastapi import WebSocket

from app.api.realtime.protocol import (
    NO_ENDPOINT,
    RealtimeError,
    SessionConfig,
    as_object,
    new_id,
    parse_event,
    render_beta,
    render_ga,
    update_beta,
    update_ga,
)
from app.api.websocket import (
    AudioFormat,
    Connection,
    ProtocolError,
    TooFarBehind,
    build_stream,
)
from app.asr.audio import G711_TABLES, g711_to_pcm16
from app.asr.streaming import Stream, StreamResult


class RealtimeSession(Connection):
    """One connection: a `Stream` per item, the protocol state around it."""

    def __init__(self, websocket: WebSocket) -> None:
        super().__init__(websocket)
        self.session_id = new_id("sess")
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
        await self.send({"event_id": new_id("event"), "type": kind, **fields})

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
                event = parse_event(message["text"])
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
        session = as_object(event.get("session"), "session")
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
        if self.config.audio_format in G711_TABLES:
            data = g711_to_pcm16(data, self.config.audio_format)
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
                self.item_id = new_id("item")
            if not self.speaking and result.text and self.config.vad:
                self.speaking = True
                await self.emit("input_audio_buffer.speech_started", audio_start_ms=self.ms(result.start), item_id=self.item_id)
            if result.text.startswith(self.sent_text) and len(result.text) > len(self.sent_text):
                delta, self.sent_text = result.text[len(self.sent_text):], result.text
                await self.emit("conversation.item.input_audio_transcription.delta", item_id=self.item_id, content_index=0, delta=delta)

    async def complete(self, result: StreamResult, *, vad: bool) -> None:
        """One item ends: (speech events), committed, completed."""
        item_id = self.item_id or new_id("item")
        if self.config.vad and (self.speaking or vad):
            if not self.speaking:
                await self.emit("input_audio_buffer.speech_started", audio_start_ms=self.ms(result.start), item_id=item_id)
            await self.emit("input_audio_buffer.speech_stopped", audio_end_ms=self.ms(result.end), item_id=item_id)
        await self.emit("input_audio_buffer.committed", item_id=item_id, previous_item_id=self.previous_item_id)
        await self.emit("conversation.item.input_audio_transcription.completed", item_id=item_id, content_index=0, transcript=result.text,
                        usage={"type": "duration", "seconds": round(max(result.end - result.start, 0.0), 3)})
        self.previous_item_id, self.item_id, self.speaking, self.sent_text = item_id, None, False, ""
        self.pending = 0
