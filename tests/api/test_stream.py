"""`WS /v1/stream`: protocol, results equal to offline, malformed messages, limits, auth."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soxr
from fastapi.testclient import TestClient

from tests.helpers import encode, speechlike


def pcm16(wave: np.ndarray) -> bytes:
    return (np.clip(wave, -1, 1) * 32767).astype("<i2").tobytes()


def collect(ws) -> list[dict]:  # type: ignore[no-untyped-def]
    messages = []
    while True:
        msg = ws.receive()
        if msg["type"] == "websocket.close":
            messages.append({"type": "closed", "code": msg.get("code")})
            return messages
        messages.append(json.loads(msg["text"]))
        if messages[-1]["type"] == "eof":
            closing = ws.receive()
            messages.append({"type": "closed", "code": closing.get("code")})
            return messages


def test_stream_final_matches_offline(client: TestClient) -> None:
    audio = speechlike(2.0, seed=4)
    offline = client.post("/v1/transcribe", content=encode(audio, 16000)).json()
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"type": "config", "sample_rate": 16000, "encoding": "pcm_s16le", "endpoint_silence": 10, "max_utterance": 60}))
        assert json.loads(ws.receive_text())["type"] == "ready"
        data = pcm16(audio)
        for start in range(0, len(data), 3001):  # odd sizes: samples split across frames
            ws.send_bytes(data[start : start + 3001])
        ws.send_text(json.dumps({"type": "eof"}))
        messages = collect(ws)
    finals = [m for m in messages if m["type"] == "final"]
    assert [m["type"] for m in messages[-2:]] == ["eof", "closed"] and messages[-1]["code"] == 1000
    assert " ".join(f["text"] for f in finals if f["text"]) == offline["text"]
    assert all(set(f) >= {"text", "words", "start", "end", "nbest"} for f in finals)


def test_stream_resamples_and_downmixes(client: TestClient) -> None:
    audio = speechlike(1.5, seed=5)
    at_48k = soxr.resample(audio, 16000, 48000).astype(np.float32)
    stereo = np.stack([at_48k, at_48k], axis=1).astype("<f4").tobytes()
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"sample_rate": 48000, "encoding": "f32le", "channels": 2}))
        assert json.loads(ws.receive_text())["type"] == "ready"
        for start in range(0, len(stereo), 4099):
            ws.send_bytes(stereo[start : start + 4099])
        ws.send_text('{"type": "eof"}')
        messages = collect(ws)
    assert messages[-1] == {"type": "closed", "code": 1000}
    finals = [m for m in messages if m["type"] == "final"]
    assert finals and finals[-1]["end"] == pytest.approx(1.5, abs=0.05)


@pytest.mark.parametrize(
    ("first", "code", "close"),
    [
        (b"\x00\x01binary first", "config_expected", 1003),
        ("{not json", "invalid_json", 1003),
        ("[1, 2]", "invalid_config", 1003),
        ('{"model": "missing"}', "unknown_model", 1008),
        ('{"sample_rate": 5}', "invalid_config", 1003),
        ('{"encoding": "mp3"}', "invalid_config", 1003),
        ('{"channels": 0}', "invalid_config", 1003),
        ('{"beam_size": 0}', "invalid_option", 1008),
        ('{"type": "eof"}', "invalid_config", 1003),
    ],
)
def test_bad_config(client: TestClient, first: bytes | str, code: str, close: int) -> None:
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_bytes(first) if isinstance(first, bytes) else ws.send_text(first)
        error = json.loads(ws.receive_text())
        assert error["type"] == "error" and error["code"] == code, error
        assert ws.receive()["code"] == close
    assert client.get("/readyz").status_code == 200


def test_bad_messages_after_config(client: TestClient) -> None:
    for message, code in ((b"\xff\xfe\x00", None), ("not json", "invalid_json"), ('{"type": "dance"}', "unknown_message")):
        with client.websocket_connect("/v1/stream") as ws:
            ws.send_text("{}")
            ws.receive_text()
            if isinstance(message, bytes):  # 3 bytes: one whole sample and a half, no error
                ws.send_bytes(message)
                ws.send_text('{"type": "eof"}')
                assert collect(ws)[-1]["code"] == 1000
                continue
            ws.send_text(message)
            error = json.loads(ws.receive_text())
            assert error["code"] == code and ws.receive()["code"] == 1003


def test_oversized_frame_and_stream_limit(settings) -> None:  # type: ignore[no-untyped-def]
    from app.main import create_app

    with TestClient(create_app(settings.model_copy(update={"ws_max_message_bytes": 1000, "max_streams": 1}))) as c:
        with c.websocket_connect("/v1/stream") as ws:
            ws.send_text("{}")
            ws.receive_text()
            with c.websocket_connect("/v1/stream") as second:
                error = json.loads(second.receive_text())
                assert error["code"] == "too_many_streams" and second.receive()["code"] == 1013
            ws.send_bytes(b"\x00" * 2000)
            error = json.loads(ws.receive_text())
            assert error["code"] == "frame_too_large" and ws.receive()["code"] == 1009
        assert c.get("/readyz").status_code == 200


def test_idle_timeout(settings) -> None:  # type: ignore[no-untyped-def]
    from app.main import create_app

    with TestClient(create_app(settings.model_copy(update={"stream_idle_seconds": 0.3}))) as c, c.websocket_connect("/v1/stream") as ws:
        ws.send_text("{}")
        ws.receive_text()
        error = json.loads(ws.receive_text())
        assert error["code"] == "idle_timeout" and ws.receive()["code"] == 1001


def test_stream_auth(settings) -> None:  # type: ignore[no-untyped-def]
    from app.main import create_app

    with TestClient(create_app(settings.model_copy(update={"api_keys": ["k1"]}))) as c:
        with c.websocket_connect("/v1/stream") as ws:  # the handshake completes; an error and close 1008 follow
            assert json.loads(ws.receive_text())["code"] == "unauthorized" and ws.receive()["code"] == 1008
        with c.websocket_connect("/v1/stream", headers={"authorization": "Bearer k1"}) as ws:
            ws.send_text("{}")
            assert json.loads(ws.receive_text())["type"] == "ready"
        with c.websocket_connect("/v1/stream", subprotocols=["bearer", "k1"]) as ws:
            ws.send_text("{}")
            assert json.loads(ws.receive_text())["type"] == "ready"


def test_client_vanishing_mid_stream_leaves_server_healthy(client: TestClient) -> None:
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_text("{}")
        ws.receive_text()
        ws.send_bytes(pcm16(speechlike(0.5)))
    assert client.get("/readyz").status_code == 200
    assert client.post("/v1/transcribe", content=encode(speechlike(0.5), 16000)).status_code == 200
