"""Graceful shutdown: SIGTERM during load lets in-flight HTTP requests finish with 200, gives every
open stream its final result, `{"type": "eof", "reason": "shutdown"}` and a 1001 close, and the
process exits 0. Readiness turns 503 as soon as the drain begins."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app, drain
from tests.reliability.conftest import LIVE_ENV
from tests.reliability.live import MODEL, Clip, StreamOutcome, start_server, stream_clip
from tests.reliability.test_faults import broken_models_dir


def test_sigterm_during_load(models_dir: Path, tmp_path: Path, audio_clips: list[Clip], references: dict[str, dict[str, str]]) -> None:
    root = broken_models_dir(models_dir, tmp_path / "models")
    server = start_server(root, tmp_path / "server.log", env=LIVE_ENV)
    try:
        ready = httpx.get(f"{server.url}/readyz", timeout=10).json()
        assert set(ready["failed"]) == {"broken-json", "broken-checksum", "broken-version"} and ready["models"] == ["tiny-asg", "tiny-ctc"]
        signalled = asyncio.Event()

        async def slow_body(clip: Clip) -> AsyncIterator[bytes]:
            half = len(clip.wav) // 2
            yield clip.wav[:half]
            await signalled.wait()  # the rest of the body arrives after the SIGTERM
            await asyncio.sleep(0.2)
            yield clip.wav[half:]

        async def scenario() -> tuple[list[httpx.Response], list[StreamOutcome], list[StreamOutcome]]:
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
                uploads = [asyncio.create_task(http.post("/v1/transcribe", params={"model": MODEL}, content=slow_body(clip),
                                                         headers={"content-type": "application/octet-stream", "content-length": str(len(clip.wav))}))
                           for clip in audio_clips]
                # whole clips sent, no eof: the final result is still owed when the signal comes
                waiting = [asyncio.create_task(stream_clip(server.ws_url, clip, send_eof=False)) for clip in audio_clips]
                # still sending (10 ms of audio every 20 ms) when the signal comes
                trickling = [asyncio.create_task(stream_clip(server.ws_url, clip, chunk=320, delay=0.02)) for clip in audio_clips[2:]]
                await asyncio.sleep(1.0)
                assert not any(t.done() for t in uploads + waiting + trickling), "the load ended before the signal"
                server.process.send_signal(signal.SIGTERM)
                signalled.set()
                return list(await asyncio.gather(*uploads)), list(await asyncio.gather(*waiting)), list(await asyncio.gather(*trickling))

        started = time.perf_counter()
        responses, waiting, trickling = asyncio.run(scenario())
        code = server.process.wait(timeout=30)
        took = time.perf_counter() - started
    finally:
        if server.process.poll() is None:
            server.stop(sig=signal.SIGKILL)
    log = server.log()
    assert code == 0, f"exit status {code}:\n{log[-3000:]}"
    for clip, response in zip(audio_clips, responses, strict=True):
        assert response.status_code == 200, response.text
        assert response.json()["text"] == references["upload"][clip.name]
    for clip, outcome in zip(audio_clips, waiting, strict=True):
        assert outcome.close_code == 1001, outcome.messages
        assert outcome.messages[-1] == {"type": "eof", "reason": "shutdown"}
        assert outcome.text == references["stream"][clip.name]
    for outcome in trickling:
        assert outcome.close_code == 1001 and outcome.messages[-1] == {"type": "eof", "reason": "shutdown"}, outcome.messages
        assert any(m["type"] == "final" for m in outcome.messages), "the audio heard before the signal gets its final result"
    assert "Traceback" not in log, log[-3000:]
    assert took < 20


def test_drain_flushes_streams_and_turns_readiness_off(settings: Settings, audio_clips: list[Clip]) -> None:
    app = create_app(settings)
    clip = audio_clips[1]
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
        with client.websocket_connect("/v1/stream") as ws:
            ws.send_text(json.dumps({"model": MODEL, "sample_rate": 16000, "endpoint_silence": 10, "max_utterance": 60}))
            assert json.loads(ws.receive_text())["type"] == "ready"
            ws.send_bytes(clip.pcm16)
            client.portal.call(functools.partial(drain, app, timeout=10))
            messages = []
            while (message := ws.receive())["type"] != "websocket.close":
                messages.append(json.loads(message["text"]))
            assert message["code"] == 1001
        finals = [m for m in messages if m["type"] == "final"]
        assert finals and messages[-1] == {"type": "eof", "reason": "shutdown"}
        assert app.state.active_streams == 0
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "not_ready"
        with client.websocket_connect("/v1/stream") as late:
            error = json.loads(late.receive_text())
            assert error["code"] == "shutting_down" and late.receive()["code"] == 1001
        # new work is refused with a clear error (requests already on their way are served: test_sigterm_during_load)
        refused = client.post("/v1/transcribe", params={"model": MODEL}, content=clip.wav)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "shutting_down"


@pytest.mark.parametrize("phase", ["before-config", "after-config"])
def test_drain_with_idle_streams(settings: Settings, phase: str) -> None:
    """A stream that has sent nothing (or no audio) closes at once with 1001, not after the idle timeout."""
    app = create_app(settings.model_copy(update={"stream_idle_seconds": 30.0}))
    with TestClient(app) as client, client.websocket_connect("/v1/stream") as ws:
        if phase == "after-config":
            ws.send_text("{}")
            assert json.loads(ws.receive_text())["type"] == "ready"
        started = time.perf_counter()
        client.portal.call(functools.partial(drain, app, timeout=10))
        assert time.perf_counter() - started < 5
        messages = []
        while (message := ws.receive())["type"] != "websocket.close":
            messages.append(json.loads(message["text"]))
        assert message["code"] == 1001
        assert messages[-1] in ({"type": "eof", "reason": "shutdown"}, {"type": "error", "code": "shutting_down", "message": "the server is shutting down"})


def test_drain_commits_realtime_sessions(settings: Settings, audio_clips: list[Clip]) -> None:
    """An OpenAI Realtime session with uncommitted audio gets its transcription, then a 1001 close."""
    import base64

    import numpy as np
    import soxr

    app = create_app(settings)
    samples = np.frombuffer(audio_clips[1].pcm16, dtype="<i2").astype(np.float32) / 32768
    pcm24 = (soxr.resample(samples, 16000, 24000) * 32767).astype("<i2").tobytes()
    with TestClient(app) as client, client.websocket_connect("/v1/realtime?intent=transcription") as ws:
        assert json.loads(ws.receive_text())["type"] == "transcription_session.created"
        ws.send_text(json.dumps({"type": "transcription_session.update", "session": {"turn_detection": None}}))
        assert json.loads(ws.receive_text())["type"] == "transcription_session.updated"
        ws.send_text(json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm24).decode()}))
        client.portal.call(functools.partial(drain, app, timeout=10))
        kinds = []
        while (message := ws.receive())["type"] != "websocket.close":
            kinds.append(json.loads(message["text"])["type"])
        assert message["code"] == 1001
        assert "conversation.item.input_audio_transcription.completed" in kinds
        assert app.state.active_streams == 0


def test_drain_delay_keeps_listening_while_readiness_is_off(models_dir: Path, tmp_path: Path, audio_clips: list[Clip]) -> None:
    """Before: the listening socket closed at SIGTERM, so a load balancer never saw `/readyz` turn 503."""
    delay = 6.0  # the checks below take well under this, even on a loaded machine
    server = start_server(models_dir, tmp_path / "server.log", env={**LIVE_ENV, "ASR_DRAIN_DELAY_SECONDS": str(delay)})
    try:
        clip = audio_clips[0]
        with httpx.Client(base_url=server.url, timeout=10) as http:
            assert http.get("/readyz").status_code == 200
        server.process.send_signal(signal.SIGTERM)
        signalled = time.perf_counter()
        time.sleep(0.3)
        with httpx.Client(base_url=server.url, timeout=10) as http:  # new connections: still accepted
            ready = http.get("/readyz")
            assert ready.status_code == 503 and ready.json()["status"] == "not_ready"
            assert http.get("/healthz").status_code == 200
            refused = http.post("/v1/transcribe", params={"model": MODEL}, content=clip.wav)
            assert refused.status_code == 503 and refused.json()["error"]["code"] == "shutting_down"
            assert refused.headers.get("retry-after")
        code_seen, message = asyncio.run(first_message(server.ws_url))
        assert message.get("code") == "shutting_down" and code_seen == 1001, message
        while time.perf_counter() - signalled < delay - 0.3:
            with httpx.Client(base_url=server.url, timeout=10) as http:
                assert http.get("/readyz").status_code == 503
            time.sleep(0.2)
        code = server.process.wait(timeout=30)
        assert time.perf_counter() - signalled >= delay
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/healthz", timeout=2)
    finally:
        if server.process.poll() is None:
            server.stop(sig=signal.SIGKILL)
    assert code == 0, server.log()[-3000:]


async def first_message(url: str) -> tuple[int | None, dict[str, object]]:
    """The first message a new WebSocket gets (sending nothing) and the close code that follows."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async with connect(url) as ws:
        message = json.loads(await ws.recv())
        with contextlib.suppress(ConnectionClosed):
            await ws.recv()
        return ws.close_code, message
