"""Fixtures for the reliability tests: a real server subprocess on 127.0.0.1, audio clips and their
single-client references, and the hook that keeps every input a fuzz test failed on."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.reliability.fuzzing import RECORDER
from tests.reliability.live import MODEL, Clip, LiveServer, clips, start_server, stream_clip

# The shared server: small WebSocket frame limit so oversized frames are cheap to send.
LIVE_ENV = {"ASR_WS_MAX_MESSAGE_BYTES": "65536", "ASR_MAX_AUDIO_SECONDS": "120", "ASR_STREAM_IDLE_SECONDS": "10"}


@pytest.fixture(scope="session")
def live_server(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(models_dir, tmp_path_factory.mktemp("live") / "server.log", env=LIVE_ENV)
    yield server
    code = server.stop()
    assert code == 0, f"server exited with {code}:\n{server.log()[-3000:]}"


@pytest.fixture(scope="module")
def fuzz_client(settings: Settings) -> Iterator[TestClient]:
    """The app in process, for request fuzzing: server exceptions become 500 responses, which the tests refuse."""
    app = create_app(settings.model_copy(update={"max_audio_seconds": 60.0, "max_upload_bytes": 2_000_000}))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="session")
def audio_clips() -> list[Clip]:
    return clips(4)


@pytest.fixture(scope="session")
def references(live_server: LiveServer, audio_clips: list[Clip]) -> dict[str, dict[str, str]]:
    """Each clip's transcript from one client alone: {"upload": {clip: text}, "stream": {clip: text}}."""

    async def collect() -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {"upload": {}, "stream": {}}
        async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as client:
            for clip in audio_clips:
                r = await client.post("/v1/transcribe", params={"model": MODEL}, content=clip.wav)
                assert r.status_code == 200, r.text
                out["upload"][clip.name] = r.json()["text"]
                outcome = await stream_clip(live_server.ws_url, clip)
                assert outcome.close_code == 1000 and not outcome.errors, outcome.messages
                out["stream"][clip.name] = outcome.text
        return out

    refs = asyncio.run(collect())
    assert len(set(refs["upload"].values())) == len(audio_clips), f"every clip must transcribe differently, or cross-talk could hide: {refs}"
    return refs


def write_result(tmp_path_factory: pytest.TempPathFactory, name: str, result: dict[str, Any]) -> Path:
    """A measured figure as JSON in a tmp dir (and in $ASR_RELIABILITY_RESULTS when set)."""
    folder = Path(os.environ["ASR_RELIABILITY_RESULTS"]) if os.environ.get("ASR_RELIABILITY_RESULTS") else tmp_path_factory.mktemp("results")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{name}: {json.dumps(result)}\n  -> {path}")
    return path


@pytest.fixture(autouse=True)
def _reset_recorder() -> None:
    RECORDER.last = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        saved = RECORDER.save()
        if saved is not None:
            report.sections.append(("regression", f"failing input saved to {saved}; commit it so test_regressions replays it"))
