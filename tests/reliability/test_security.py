"""Security properties: model names never reach the file system, client input never reaches a log
line raw, CORS is off unless configured, and the request limit answers 429 JSON."""

from __future__ import annotations

import json
import logging
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.reliability.fuzzing import SEEDS

WAV = SEEDS["wav16"]
PATH_NAMES = ["../tiny-asg", "../../etc/passwd", "/etc/passwd", "tiny-asg/../tiny-ctc", "..", ".", "tiny-asg/manifest.json", "tiny-asg/",
              "./tiny-asg", "%2e%2e%2fetc%2fpasswd", "..\\..\\windows\\win.ini", "C:\\Windows\\win.ini", "~root", "tiny-asg\x00", "file:///etc/passwd"]

_OPENED: list[str] | None = None  # paths opened while a test records


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _OPENED is not None and event == "open" and isinstance(args[0], str | bytes):
        _OPENED.append(args[0].decode(errors="replace") if isinstance(args[0], bytes) else args[0])


sys.addaudithook(_audit)  # audit hooks cannot be removed; it records nothing unless `_OPENED` is a list


def test_path_like_model_names_reach_no_file(client: TestClient, models_dir: Path) -> None:
    global _OPENED
    _OPENED = []
    try:
        for name in PATH_NAMES:
            r = client.post("/v1/transcribe", params={"model": name}, content=WAV)
            assert r.status_code in (404, 422), (name, r.text)
            r = client.post("/v1/audio/transcriptions", files={"file": ("a.wav", WAV)}, data={"model": name})
            assert r.status_code in (404, 422), (name, r.text)
            assert r.json()["error"]["code"] in ("unknown_model", "invalid_request")
            with client.websocket_connect("/v1/stream") as ws:
                ws.send_text(json.dumps({"model": name}))
                error = json.loads(ws.receive_text())
                assert error["type"] == "error" and error["code"] == "unknown_model", (name, error)
                assert ws.receive()["code"] == 1008
        opened = list(_OPENED)
    finally:
        _OPENED = None
    suspicious = [p for p in opened if any(mark in p for mark in ("passwd", "win.ini", "manifest.json", "~root")) or p.startswith(str(models_dir))]
    assert not suspicious, f"a request opened {suspicious}"
    assert client.get("/readyz").status_code == 200


HOSTILE = "tiny\r\nFAKE 2099-01-01 CRITICAL app: forged line\x1b[31m red \x1b]0;title\x07"


def raw_in_log(records: list[logging.LogRecord]) -> list[str]:
    """Formatted log messages that carry a raw line break into a forged line, or a terminal escape."""
    out = []
    for record in records:
        text = record.getMessage() + (logging.Formatter().formatException(record.exc_info) if record.exc_info else "")
        if "\x1b" in text or "\x07" in text or "\nFAKE" in text or "\rFAKE" in text:
            out.append(text)
    return out


def test_client_input_never_reaches_a_log_line_raw(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(settings)

    @app.get("/boom/{rest:path}")
    async def boom(rest: str) -> None:  # an internal error on a path the client chose
        raise RuntimeError("boom")

    caplog.set_level(logging.DEBUG)
    with TestClient(app, raise_server_exceptions=False) as client:
        client.post("/v1/transcribe", params={"model": HOSTILE}, content=WAV)
        client.post("/v1/transcribe", params={"hotwords": HOSTILE, "decoder": "beam"}, content=WAV)
        client.post("/v1/audio/transcriptions", files={"file": (HOSTILE, WAV)}, data={"model": HOSTILE, "response_format": HOSTILE})
        client.post("/v1/transcribe", content=HOSTILE.encode())
        with client.websocket_connect("/v1/stream") as ws:
            ws.send_text(json.dumps({"model": HOSTILE}))
            ws.receive_text()
        with client.websocket_connect("/v1/stream") as ws:
            ws.send_text(json.dumps({"encoding": HOSTILE}))
            ws.receive_text()
        r = client.get("/boom/x%0DFAKE%20CRITICAL%1b%5b31m%07")  # (a path with %0A matches no route: 404, nothing logged)
        assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
        assert "boom" not in r.text and "Traceback" not in r.text  # no internals in the answer
    assert any("internal error on" in rec.getMessage() for rec in caplog.records), "the internal error was not logged"
    assert not raw_in_log(caplog.records)


def test_cors_is_off_by_default(client: TestClient) -> None:
    origin = {"origin": "https://evil.example"}
    assert "access-control-allow-origin" not in client.get("/healthz", headers=origin).headers
    preflight = client.options("/v1/transcribe", headers={**origin, "access-control-request-method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-origin" not in client.post("/v1/transcribe", content=WAV, headers=origin).headers


def test_cors_when_configured(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASR_CORS_ORIGINS", "https://app.example, https://other.example")
    configured = Settings(models_dir=settings.models_dir, default_model="tiny-asg", threads=1, workers=2)
    assert configured.cors_origins == ["https://app.example", "https://other.example"]
    with TestClient(create_app(configured)) as client:
        allowed = {"origin": "https://app.example"}
        assert client.get("/healthz", headers=allowed).headers["access-control-allow-origin"] == "https://app.example"
        preflight = client.options("/v1/transcribe", headers={**allowed, "access-control-request-method": "POST",
                                                               "access-control-request-headers": "authorization"})
        assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == "https://app.example"
        assert client.post("/v1/transcribe", content=WAV, headers=allowed).headers["access-control-allow-origin"] == "https://app.example"
        stranger = {"origin": "https://evil.example"}
        assert "access-control-allow-origin" not in client.get("/healthz", headers=stranger).headers
        assert client.options("/v1/transcribe", headers={**stranger, "access-control-request-method": "POST"}).status_code == 400


def test_request_limit_answers_429_json(settings: Settings) -> None:
    """max_concurrent_requests=1: while one request is being transcribed, a second is refused at once."""
    import asyncio

    app = create_app(settings.model_copy(update={"max_concurrent_requests": 1}))
    with TestClient(app) as client:
        original = app.state.engine.transcribe
        entered = threading.Event()
        release = client.portal.call(asyncio.Event)

        async def held(*args: Any, **kwargs: Any) -> Any:
            entered.set()
            await release.wait()
            return await original(*args, **kwargs)

        app.state.engine.transcribe = held
        first: dict[str, Any] = {}
        worker = threading.Thread(target=lambda: first.update(response=client.post("/v1/transcribe", content=WAV)))
        worker.start()
        try:
            assert entered.wait(30), "the first request never reached the model"
            second = client.post("/v1/audio/transcriptions", files={"file": ("a.wav", WAV)})
            assert second.status_code == 429, second.text
            assert second.json()["error"]["code"] == "too_many_requests" and second.headers["retry-after"] == "1"
        finally:
            client.portal.call(release.set)
            worker.join(30)
        assert first["response"].status_code == 200
        app.state.engine.transcribe = original
        assert client.post("/v1/transcribe", content=WAV).status_code == 200
