"""`WS /v1/stream` connections: one `Stream` over the shared recognizer, fed frame by frame."""

from __future__ import annotations

import asyncio

from starlette.websockets import WebSocketState

from app.api.stream.protocol import parse_config, parse_event, result_message
from app.api.websocket import (
    AudioFormat,
    Connection,
    ProtocolError,
    build_stream,
)
from app.asr.streaming import Stream


class StreamSession(Connection):
    """Runs one connection: all the work of one stream happens in order, in the inference pool."""

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
            event = parse_event(text)
            if event.get("type") != "eof":
                raise ProtocolError("unknown_message", f"unknown message type {event.get('type')!r}; send binary audio or {{\"type\": \"eof\"}}")
            await self.flush(stream, audio_format)
            await self.websocket.close(1000)
            return
