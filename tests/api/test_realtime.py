"""`WS /v1/realtime?intent=transcription`: OpenAI Realtime transcription events on the streaming engine.

Every server event is validated against the installed `openai` package's own pydantic models,
GA (`openai.types.realtime`) and beta (`openai.types.beta.realtime`) alike. Two fields of the beta
session object are relaxed, and only those: the SDK's beta `TranscriptionSession` is the REST
create-response model, which requires `client_secret` (OpenAI itself omits it over the
WebSocket, and so do we) and restricts `model` to OpenAI's names (we report the bundle that
serves the session). The GA session model takes any model name and needs no relaxing.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from openai.types import realtime as ga
from openai.types.beta import realtime as beta
from openai.types.beta.realtime import transcription_session as beta_session

from app.asr.audio import G711_TABLES
from app.config import Settings
from tests.helpers import encode, speechlike

URL = "/v1/realtime?intent=transcription"


class _Transcription(beta_session.InputAudioTranscription):
    model: str | None = None  # type: ignore[assignment]  # a bundle name, not only OpenAI's three


class _WebSocketSession(beta_session.TranscriptionSession):
    client_secret: beta_session.ClientSecret | None = None  # type: ignore[assignment]  # REST only
    input_audio_transcription: _Transcription | None = None  # type: ignore[assignment]


class _BetaSessionEvent(beta.TranscriptionSessionUpdatedEvent):
    session: _WebSocketSession  # type: ignore[assignment]


SHARED = ("conversation.item.input_audio_transcription.completed", "conversation.item.input_audio_transcription.delta", "input_audio_buffer.committed",
          "input_audio_buffer.cleared", "input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped")
GA_EVENTS: dict[str, Any] = {
    "conversation.item.input_audio_transcription.completed": ga.ConversationItemInputAudioTranscriptionCompletedEvent,
    "conversation.item.input_audio_transcription.delta": ga.ConversationItemInputAudioTranscriptionDeltaEvent,
    "input_audio_buffer.committed": ga.InputAudioBufferCommittedEvent,
    "input_audio_buffer.cleared": ga.InputAudioBufferClearedEvent,
    "input_audio_buffer.speech_started": ga.InputAudioBufferSpeechStartedEvent,
    "input_audio_buffer.speech_stopped": ga.InputAudioBufferSpeechStoppedEvent,
    "error": ga.RealtimeErrorEvent,
    "session.updated": ga.SessionUpdatedEvent,
}
BETA_EVENTS: dict[str, Any] = {
    "conversation.item.input_audio_transcription.completed": beta.ConversationItemInputAudioTranscriptionCompletedEvent,
    "conversation.item.input_audio_transcription.delta": beta.ConversationItemInputAudioTranscriptionDeltaEvent,
    "input_audio_buffer.committed": beta.InputAudioBufferCommittedEvent,
    "input_audio_buffer.cleared": beta.InputAudioBufferClearedEvent,
    "input_audio_buffer.speech_started": beta.InputAudioBufferSpeechStartedEvent,
    "input_audio_buffer.speech_stopped": beta.InputAudioBufferSpeechStoppedEvent,
    "error": beta.ErrorEvent,
    "transcription_session.updated": _BetaSessionEvent,
}


def validate(event: dict[str, Any]) -> dict[str, Any]:
    """Check one server event against the openai package's models (both flavours where both exist)."""
    kind = event["type"]
    assert isinstance(event.get("event_id"), str) and event["event_id"], event
    if kind == "transcription_session.created":  # the SDK has no class for it: same session object as `updated`
        _BetaSessionEvent.model_validate({**event, "type": "transcription_session.updated"})
    elif kind == "session.updated":
        parsed = ga.SessionUpdatedEvent.model_validate(event)
        assert isinstance(parsed.session, ga.RealtimeTranscriptionSessionCreateRequest)
    else:
        assert kind in GA_EVENTS or kind in BETA_EVENTS, f"unexpected event type {kind}"
        for table in (GA_EVENTS, BETA_EVENTS):
            if kind in table:
                table[kind].model_validate(event)
    return event


def receive(ws) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return validate(json.loads(ws.receive_text()))


def receive_until(ws, kind: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    events = [receive(ws)]
    while events[-1]["type"] != kind:
        events.append(receive(ws))
    return events


def pcm16(wave: np.ndarray) -> bytes:
    return (np.clip(wave, -1, 1) * 32767).astype("<i2").tobytes()


def append_all(ws, data: bytes, piece: int = 4801) -> None:  # type: ignore[no-untyped-def]
    for start in range(0, len(data), piece):  # odd sizes: samples split across appends
        ws.send_text(json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(data[start : start + piece]).decode()}))


def manual(model: str = "gpt-4o-transcribe", audio_format: str = "pcm16") -> str:
    return json.dumps({"type": "transcription_session.update", "session": {
        "input_audio_format": audio_format, "input_audio_transcription": {"model": model, "language": "en", "prompt": "ignored"}, "turn_detection": None}})


def test_commit_matches_offline_transcript(client: TestClient) -> None:
    """Manual commits: each item is the whole audio since the last commit, transcribed like the offline path."""
    waves = [speechlike(2.0, 24000, seed=4), speechlike(1.3, 24000, seed=6)]
    offline = [client.post("/v1/transcribe", content=encode(w, 24000, subtype="PCM_16")).json()["text"] for w in waves]
    assert all(offline)
    with client.websocket_connect(URL) as ws:
        created = receive(ws)
        assert created["type"] == "transcription_session.created"
        assert created["session"]["input_audio_transcription"]["model"] == "tiny-asg"
        assert created["session"]["turn_detection"]["type"] == "server_vad"
        ws.send_text(manual())
        updated = receive(ws)
        assert updated["type"] == "transcription_session.updated" and updated["session"]["turn_detection"] is None
        items = []
        for wave in waves:
            append_all(ws, pcm16(wave))
            ws.send_text('{"type": "input_audio_buffer.commit", "event_id": "c1"}')
            items.append(receive_until(ws, "conversation.item.input_audio_transcription.completed"))
    previous = None
    for events, text in zip(items, offline, strict=True):
        kinds = [e["type"] for e in events]
        assert "input_audio_buffer.speech_started" not in kinds  # no VAD events without turn detection
        committed, completed = events[-2], events[-1]
        assert committed["type"] == "input_audio_buffer.committed" and committed["previous_item_id"] == previous
        assert completed["item_id"] == committed["item_id"] and completed["content_index"] == 0
        assert completed["transcript"] == text
        assert all(e["item_id"] == committed["item_id"] for e in events if e["type"].endswith(".delta"))
        previous = committed["item_id"]
    assert items[0][-1]["usage"] == {"type": "duration", "seconds": pytest.approx(2.0, abs=0.05)}


def tone(seconds: float, rate: int) -> np.ndarray:
    """A 500 Hz tone that the tiny CTC model hears as silence: every frame is blank or separator."""
    return (0.1 * np.sin(2 * np.pi * 500 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def test_server_vad_items_equal_stream_finals(client: TestClient) -> None:
    """Server VAD: each endpoint of the shared engine is a committed item, with the `/v1/stream` final's text and times.

    The same 24 kHz bytes in the same pieces go to both endpoints, so the engine sees the same audio.
    """
    rate = 24000
    audio = np.concatenate([speechlike(1.0, rate, seed=1), tone(1.0, rate), speechlike(1.2, rate, seed=2), tone(1.0, rate)])
    data, piece = pcm16(audio), 4800
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"model": "tiny-ctc", "endpoint_silence": 0.3, "sample_rate": rate}))
        ws.receive_text()
        for start in range(0, len(data), piece):
            ws.send_bytes(data[start : start + piece])
        ws.send_text('{"type": "eof"}')
        messages = []
        while not messages or messages[-1]["type"] != "eof":
            messages.append(json.loads(ws.receive_text()))
    endpoints = [m for m in messages if m["type"] == "final" and m["end"] < len(audio) / rate - 0.01]  # not the flush at eof
    assert len(endpoints) == 2, messages
    with client.websocket_connect(URL) as ws:
        receive(ws)
        ws.send_text(json.dumps({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": 24000}, "transcription": {"model": "tiny-ctc"},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 300}}}}}))
        updated = receive(ws)
        assert updated["session"]["audio"]["input"]["transcription"]["model"] == "tiny-ctc"
        append_all(ws, data, piece)
        ws.send_text('{"type": "input_audio_buffer.commit"}')  # after the last endpoint: tone only, an empty item
        events: list[dict[str, Any]] = []
        while sum(e["type"].endswith(".completed") for e in events) <= len(endpoints):
            events.append(receive(ws))
        append_all(ws, data, piece)  # again, in the stream that the commit started: times go on from the session's start
        again = receive_until(ws, "conversation.item.input_audio_transcription.completed")
    events = [e for e in events if not e["type"].endswith(".delta")]
    items = [events[i : i + 4] for i in range(0, 4 * len(endpoints), 4)]
    assert [e["type"] for e in events[4 * len(endpoints) :]] == ["input_audio_buffer.committed", "conversation.item.input_audio_transcription.completed"]
    previous = None
    for final, item in zip(endpoints, items, strict=True):
        assert [e["type"] for e in item] == ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped", "input_audio_buffer.committed",
                                             "conversation.item.input_audio_transcription.completed"]
        started, stopped, committed, completed = item
        assert started["item_id"] == stopped["item_id"] == committed["item_id"] == completed["item_id"]
        assert committed["previous_item_id"] == previous
        assert completed["transcript"] == final["text"]
        assert stopped["audio_end_ms"] == round(final["end"] * 1000) and round(final["start"] * 1000) <= started["audio_start_ms"] < stopped["audio_end_ms"]
        previous = committed["item_id"]
    assert events[-1]["transcript"] == "" and events[-2]["previous_item_id"] == previous
    stopped = next(e for e in again if e["type"] == "input_audio_buffer.speech_stopped")
    assert stopped["audio_end_ms"] == round(len(audio) / rate * 1000 + endpoints[0]["end"] * 1000)
    assert again[-1]["transcript"] == endpoints[0]["text"] and again[-2]["previous_item_id"] == events[-1]["item_id"]


def test_ga_pcm_rate_extension(client: TestClient) -> None:
    """`audio/pcm` at another rate than OpenAI's 24 kHz: accepted and reported (outside the SDK's `Literal[24000]`)."""
    with client.websocket_connect(URL) as ws:
        receive(ws)
        ws.send_text(json.dumps({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}}}))
        updated = json.loads(ws.receive_text())
        assert updated["type"] == "session.updated" and updated["session"]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 16000}


def ulaw_encode(wave: np.ndarray) -> bytes:
    """Nearest μ-law code for each sample, by search over the decoding table."""
    table = G711_TABLES["g711_ulaw"].astype(np.int32)
    order = np.argsort(table)
    samples = (np.clip(wave, -1, 1) * 32767).astype(np.int32)
    index = np.clip(np.searchsorted(table[order], samples), 1, 255)
    nearer = np.where(np.abs(table[order][index - 1] - samples) <= np.abs(table[order][index] - samples), index - 1, index)
    return order[nearer].astype(np.uint8).tobytes()


def test_g711_tables() -> None:
    ulaw, alaw = G711_TABLES["g711_ulaw"], G711_TABLES["g711_alaw"]
    assert (ulaw[0xFF], ulaw[0x7F], ulaw[0x00], ulaw[0x80]) == (0, 0, -32124, 32124)
    assert (alaw[0xD5], alaw[0x55], alaw[0xAA], alaw[0x2A]) == (8, -8, 32256, -32256)
    assert len(set(ulaw.tolist())) == 255 and len(set(alaw.tolist())) == 256  # μ-law has +0 and -0


def test_g711_ulaw_matches_offline_of_decoded_audio(client: TestClient) -> None:
    wave = speechlike(1.5, 8000, seed=3)
    codes = ulaw_encode(wave)
    decoded = G711_TABLES["g711_ulaw"][np.frombuffer(codes, np.uint8)]
    offline = client.post("/v1/transcribe", content=encode(decoded, 8000, subtype="PCM_16")).json()["text"]
    with client.websocket_connect(URL) as ws:
        receive(ws)
        ws.send_text(manual(audio_format="g711_ulaw"))
        assert receive(ws)["session"]["input_audio_format"] == "g711_ulaw"
        append_all(ws, codes, 1001)
        ws.send_text('{"type": "input_audio_buffer.commit"}')
        assert receive_until(ws, "conversation.item.input_audio_transcription.completed")[-1]["transcript"] == offline


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("{not json", "invalid_json"),
        ("[1, 2]", "invalid_json"),
        ('{"type": "response.create", "event_id": "e1"}', "unknown_event"),
        ('{"type": "input_audio_buffer.append", "audio": "***not base64***", "event_id": "e2"}', "invalid_base64"),
        ('{"type": "input_audio_buffer.append", "audio": 5}', "invalid_value"),
        ('{"type": "input_audio_buffer.commit"}', "input_audio_buffer_commit_empty"),
        ('{"type": "transcription_session.update", "session": {"input_audio_format": "mp3"}}', "invalid_value"),
        ('{"type": "transcription_session.update", "session": {"input_audio_transcription": {"model": "missing"}}}', "unknown_model"),
        ('{"type": "transcription_session.update", "session": {"turn_detection": {"silence_duration_ms": 5}}}', "invalid_value"),
        ('{"type": "session.update", "session": {"type": "realtime"}}', "invalid_value"),
        ('{"type": "session.update", "session": {"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcm", "rate": 3}}}}}', "invalid_value"),
        ('{"type": "transcription_session.update", "session": 7}', "invalid_value"),
        (b"\x00\x01", "invalid_event"),
    ],
)
def test_errors_leave_the_session_open(client: TestClient, message: str | bytes, code: str) -> None:
    with client.websocket_connect(URL) as ws:
        receive(ws)
        ws.send_bytes(message) if isinstance(message, bytes) else ws.send_text(message)
        error = receive(ws)
        assert error["type"] == "error" and error["error"]["code"] == code, error
        assert error["error"]["type"] == "invalid_request_error" and error["error"]["message"]
        if isinstance(message, str) and '"event_id"' in message:
            assert error["error"]["event_id"] == json.loads(message)["event_id"]
        ws.send_text('{"type": "input_audio_buffer.clear"}')  # still serving
        assert receive(ws)["type"] == "input_audio_buffer.cleared"


def test_clear_and_format_change_with_pending_audio(client: TestClient) -> None:
    with client.websocket_connect(URL) as ws:
        receive(ws)
        ws.send_text(manual())
        receive(ws)
        append_all(ws, pcm16(speechlike(0.5, 24000)))
        ws.send_text(manual(audio_format="g711_alaw"))
        error = receive_until(ws, "error")[-1]
        assert error["error"]["code"] == "buffer_not_empty"
        ws.send_text('{"type": "input_audio_buffer.clear"}')
        assert receive_until(ws, "input_audio_buffer.cleared")
        ws.send_text('{"type": "input_audio_buffer.commit"}')
        assert receive(ws)["error"]["code"] == "input_audio_buffer_commit_empty"
        ws.send_text(manual(audio_format="g711_alaw"))
        assert receive(ws)["session"]["input_audio_format"] == "g711_alaw"


def test_intent_limits(settings: Settings) -> None:
    from app.main import create_app

    with TestClient(create_app(settings.model_copy(update={"max_streams": 1, "ws_max_message_bytes": 1000}))) as c:
        with c.websocket_connect("/v1/realtime?intent=conversation") as ws:
            assert receive(ws)["error"]["code"] == "unsupported_intent" and ws.receive()["code"] == 1008
        with c.websocket_connect(URL) as ws, c.websocket_connect(URL) as second:
            receive(ws)
            assert receive(second)["error"]["code"] == "too_many_streams" and second.receive()["code"] == 1013
            append_all(ws, bytes(1000), 1000)  # 1336 characters of base64 in one event
            assert receive(ws)["error"]["code"] == "frame_too_large"
            append_all(ws, bytes(600), 600)
            ws.send_text('{"type": "input_audio_buffer.commit"}')
            assert receive_until(ws, "conversation.item.input_audio_transcription.completed")


def test_idle_timeout(settings: Settings) -> None:
    from app.main import create_app

    with TestClient(create_app(settings.model_copy(update={"stream_idle_seconds": 0.3}))) as c, c.websocket_connect(URL) as ws:
        receive(ws)
        assert receive(ws)["error"]["code"] == "idle_timeout" and ws.receive()["code"] == 1001


def test_auth(settings: Settings) -> None:
    from app.main import create_app

    with TestClient(create_app(settings.model_copy(update={"api_keys": ["k1"]}))) as c:
        for protocols in ([], ["realtime", "openai-insecure-api-key.wrong"]):
            with c.websocket_connect(URL, subprotocols=protocols) as ws:  # the handshake completes; an error and close 1008 follow
                assert receive(ws)["error"]["code"] == "unauthorized" and ws.receive()["code"] == 1008
        with c.websocket_connect(URL, headers={"authorization": "Bearer k1"}) as ws:
            assert receive(ws)["type"] == "transcription_session.created"
        with c.websocket_connect(URL, subprotocols=["bearer", "k1"]) as ws:
            assert ws.accepted_subprotocol == "bearer" and receive(ws)["type"] == "transcription_session.created"
        browser = ["realtime", "openai-insecure-api-key.k1", "openai-beta.realtime-v1"]  # what OpenAI's browser clients offer
        with c.websocket_connect(URL, subprotocols=browser) as ws:
            assert ws.accepted_subprotocol == "realtime" and receive(ws)["type"] == "transcription_session.created"


@contextmanager
def live_server(settings: Settings) -> Iterator[str]:
    """The app under uvicorn on a free local port, in a thread; yields `host:port`."""
    import uvicorn

    from app.main import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.mark.filterwarnings("ignore:connect\\(\\) must be used as a context manager:DeprecationWarning")  # inside the openai package
def test_official_openai_client(settings: Settings, client: TestClient) -> None:
    """The `openai` package's own realtime client, GA and beta, against a running server."""
    from openai import OpenAI

    wave = speechlike(1.2, 24000, seed=8)
    offline = client.post("/v1/transcribe", content=encode(wave, 24000, subtype="PCM_16")).json()["text"]
    audio = base64.b64encode(pcm16(wave)).decode()
    with live_server(settings.model_copy(update={"api_keys": ["sk-test"]})) as address:
        openai_client = OpenAI(api_key="sk-test", base_url=f"http://{address}/v1", websocket_base_url=f"ws://{address}/v1")  # the beta client assumes wss otherwise
        with openai_client.realtime.connect(extra_query={"intent": "transcription"}) as connection:
            connection.send({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {"turn_detection": None}}}})
            connection.send({"type": "input_audio_buffer.append", "audio": audio})
            connection.send({"type": "input_audio_buffer.commit"})
            events = []
            while not events or events[-1].type != "conversation.item.input_audio_transcription.completed":
                events.append(connection.recv())
        assert "session.updated" in [e.type for e in events]
        assert events[-1].transcript == offline
        with openai_client.beta.realtime.connect(model="gpt-4o-transcribe", extra_query={"intent": "transcription"}) as connection:
            connection.send({"type": "transcription_session.update", "session": {"turn_detection": None}})
            connection.input_audio_buffer.append(audio=audio)
            connection.input_audio_buffer.commit()
            events = []
            while not events or events[-1].type != "conversation.item.input_audio_transcription.completed":
                events.append(connection.recv())
        assert events[-1].transcript == offline
