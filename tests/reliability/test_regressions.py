"""Replays every input in `regressions/`: the hand-made adversarial cases and whatever a fuzz run
ever failed on (saved there by the fuzz tests). Each must keep the fuzz tests' properties."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.reliability.fuzzing import REGRESSIONS, parse_frames_payload, parse_http_payload
from tests.reliability.live import LiveServer
from tests.reliability.test_fuzz_api import check_frames, check_http
from tests.reliability.test_fuzz_audio import check_decode


def stored(kind: str, pattern: str) -> list[Path]:
    return sorted((REGRESSIONS / kind).glob(pattern))


@pytest.mark.parametrize("path", stored("audio", "*.bin"), ids=lambda p: p.stem)
def test_audio_regression(fuzz_client: TestClient, path: Path) -> None:
    data = path.read_bytes()
    check_decode(data)
    check_http(fuzz_client, "/v1/transcribe", "application/octet-stream", data)
    check_http(fuzz_client, "/v1/audio/transcriptions", "multipart/form-data; boundary=xYzZy",
               b'--xYzZy\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n' + data + b"\r\n--xYzZy--\r\n")


@pytest.mark.parametrize("path", stored("http", "*.http"), ids=lambda p: p.stem)
def test_http_regression(fuzz_client: TestClient, path: Path) -> None:
    check_http(fuzz_client, *parse_http_payload(path.read_bytes()))


@pytest.mark.parametrize("path", stored("ws", "*.json"), ids=lambda p: p.stem)
def test_websocket_regression(live_server: LiveServer, path: Path) -> None:
    check_frames(live_server, parse_frames_payload(path.read_bytes()))


def test_the_store_is_not_empty() -> None:
    assert stored("audio", "*.bin") and stored("http", "*.http") and stored("ws", "*.json")
