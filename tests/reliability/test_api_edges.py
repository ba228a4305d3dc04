"""Smaller edges of the API: HEAD /healthz, the documentation behind the key, no heap addresses in
errors, OpenAI model names checked alike over HTTP and Realtime, WebSocket auth failures as close 1008."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.helpers import encode, speechlike
from tests.reliability.live import thread_server

KEY = "sk-edges"


def test_head_healthz(client: TestClient) -> None:
    """Before: 405."""
    r = client.head("/healthz")
    assert r.status_code == 200 and not r.content


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_docs_need_the_key_when_keys_are_set(settings: Settings, path: str) -> None:
    """Before: open to anyone, while every other endpoint but /healthz needed a key."""
    with TestClient(create_app(settings.model_copy(update={"api_keys": [KEY]}))) as client:
        refused = client.get(path)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
        assert client.get(path, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        assert client.get("/healthz").status_code == 200
    with TestClient(create_app(settings.model_copy(update={"api_keys": [KEY], "public_docs": True}))) as client:
        assert client.get(path).status_code == 200
    with TestClient(create_app(settings)) as client:
        assert client.get(path).status_code == 200


def test_openapi_schema_behind_the_key_is_the_same(settings: Settings) -> None:
    with TestClient(create_app(settings)) as open_client:
        public = open_client.get("/openapi.json").json()
    with TestClient(create_app(settings.model_copy(update={"api_keys": [KEY]}))) as client:
        protected = client.get("/openapi.json", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert protected == public and "/v1/transcribe" in protected["paths"]


def test_error_messages_carry_no_heap_addresses(client: TestClient) -> None:
    """Before: `could not decode the audio: Error opening <_io.BytesIO object at 0x7f...>: ...`."""
    for body in (b"not audio at all " * 20, b"RIFF\x00\x00\x00\x00WAVEfmt " + b"\x00" * 40, b"fLaC" + b"\x00" * 60):
        r = client.post("/v1/transcribe", content=body)
        assert r.status_code == 415, r.text
        message = r.json()["error"]["message"]
        assert " at 0x" not in message and "object at" not in message, message
        r = client.post("/v1/audio/transcriptions", files={"file": ("a.wav", body)})
        assert " at 0x" not in r.json()["error"]["message"]


def test_unknown_openai_model_names_are_refused_in_realtime_as_over_http(client: TestClient) -> None:
    """Before: any `gpt-*` or `whisper-*` name was taken as the default model by Realtime, while HTTP refused it."""
    wav = encode(speechlike(0.5, seed=3), 16000)
    for name, known in (("gpt-4o-transcribe", True), ("whisper-1", True), ("gpt-5-imaginary", False), ("whisper-2", False)):
        r = client.post("/v1/audio/transcriptions", files={"file": ("a.wav", wav)}, data={"model": name})
        assert (r.status_code == 200) == known, (name, r.text)
        if not known:
            assert r.json()["error"]["code"] == "unknown_model"
        with client.websocket_connect("/v1/realtime?intent=transcription") as ws:
            assert json.loads(ws.receive_text())["type"] == "transcription_session.created"
            ws.send_text(json.dumps({"type": "transcription_session.update", "session": {"input_audio_transcription": {"model": name}}}))
            event = json.loads(ws.receive_text())
            if known:
                assert event["type"] == "transcription_session.updated", event
            else:
                assert event["type"] == "error" and event["error"]["code"] == "unknown_model", event


def test_websocket_without_key_is_closed_with_1008(settings: Settings) -> None:
    """Before: refused during the handshake, which a client sees as HTTP 403 with no reason."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async def attempt(url: str, **kwargs: object) -> tuple[int | None, list[dict[str, object]]]:
        messages: list[dict[str, object]] = []
        async with connect(url, **kwargs) as ws:  # type: ignore[arg-type]
            try:
                async for message in ws:
                    messages.append(json.loads(message))
            except ConnectionClosed:
                pass
            return ws.close_code, messages

    app = create_app(settings.model_copy(update={"api_keys": [KEY]}))
    with thread_server(app) as address:
        for path in ("/v1/stream", "/v1/realtime?intent=transcription"):
            for kwargs in ({}, {"additional_headers": {"Authorization": "Bearer wrong"}}, {"subprotocols": ["bearer", "wrong"]}):
                code, messages = asyncio.run(attempt(f"ws://{address}{path}", **kwargs))
                assert code == 1008, (path, kwargs, code)
                assert messages and json.dumps(messages[-1]).count("unauthorized") == 1, messages
        code, messages = asyncio.run(attempt(f"ws://{address}/v1/realtime?intent=transcription", subprotocols=["realtime", "openai-insecure-api-key.bad"]))
        assert code == 1008
