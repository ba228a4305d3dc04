"""Streams past capacity are refused at once (1013, with the reason); /metrics shows capacity, open streams, refusals."""

from __future__ import annotations

import json
import re

from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app


def metric(client: TestClient, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", client.get("/metrics").text, re.MULTILINE)
    assert match, f"{name} missing from /metrics"
    return float(match.group(1))


def test_refused_past_capacity_with_the_reason(settings: Settings) -> None:
    with TestClient(create_app(settings.model_copy(update={"max_streams": 1}))) as client:
        assert metric(client, "asr_stream_capacity") == 1
        with client.websocket_connect("/v1/stream") as first:
            first.send_text(json.dumps({"type": "config"}))
            assert json.loads(first.receive_text())["type"] == "ready"
            with client.websocket_connect("/v1/stream") as second:
                error = json.loads(second.receive_text())
                assert error["code"] == "too_many_streams" and "capacity of 1 concurrent streams" in error["message"]
                assert second.receive()["code"] == 1013
            with client.websocket_connect("/v1/realtime?intent=transcription") as third:
                event = json.loads(third.receive_text())
                assert event["error"]["code"] == "too_many_streams" and third.receive()["code"] == 1013
            assert metric(client, "asr_active_streams") == 1
            assert metric(client, "asr_streams_refused_total") == 2
            first.send_text(json.dumps({"type": "eof"}))
            while json.loads(first.receive_text())["type"] != "eof":
                pass


def test_capacity_is_measured_when_not_set(settings: Settings) -> None:
    assert settings.max_streams is None
    with TestClient(create_app(settings)) as client:
        capacity = client.app.state.admission.capacity  # type: ignore[attr-defined]
        assert capacity.source == "measured" and capacity.streams >= 1
        assert metric(client, "asr_stream_capacity") == capacity.streams
