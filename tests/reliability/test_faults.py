"""Faults: clients that vanish mid-upload or mid-stream, clients slower than real time, and a
bundle that fails to load next to good ones."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.reliability.live import MODEL, Clip, LiveServer, stream_clip
from tests.reliability.workloads import abort_stream, abort_upload, settle_fds, upload


def active_streams(server: LiveServer) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    match = re.search(r"^asr_active_streams (\S+)$", text, re.MULTILINE)
    assert match, "asr_active_streams missing from /metrics"
    return float(match.group(1))


def test_clients_vanishing_mid_upload_and_mid_stream(live_server: LiveServer, audio_clips: list[Clip], references: dict[str, dict[str, str]]) -> None:
    async def scenario() -> None:
        baseline = await settle_fds(live_server, 0, timeout=1)
        await asyncio.gather(*(asyncio.to_thread(abort_upload, live_server, clip) for clip in audio_clips * 3))
        await asyncio.gather(*(abort_stream(live_server, clip) for clip in audio_clips * 3))
        deadline = time.monotonic() + 10
        while active_streams(live_server) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert active_streams(live_server) == 0, "a vanished stream is still counted as open"
        assert await settle_fds(live_server, baseline) <= baseline, "descriptors of vanished clients were not closed"
        async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as http:
            for clip in audio_clips:
                assert await upload(http, clip, 1) == references["upload"][clip.name]

    asyncio.run(scenario())
    assert live_server.ready()


def test_clients_slower_than_real_time(live_server: LiveServer, audio_clips: list[Clip], references: dict[str, dict[str, str]]) -> None:
    """A stream that trickles audio at half real time and an upload that trickles its body: both answered right,
    and a normal request made meanwhile is not held up by them."""
    clip = audio_clips[3]  # 2.15 s of audio: the stream takes 4.3 s, the upload about 3.5 s

    async def slow_body() -> AsyncIterator[bytes]:
        for start in range(0, len(clip.wav), 1000):
            yield clip.wav[start : start + 1000]
            await asyncio.sleep(0.05)

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as http:
            # 320 bytes = 10 ms of 16 kHz PCM every 20 ms: the stream takes twice as long as its audio
            slow_stream = asyncio.create_task(stream_clip(live_server.ws_url, clip, chunk=320, delay=0.02))
            slow_upload = asyncio.create_task(http.post("/v1/transcribe", params={"model": MODEL}, content=slow_body(),
                                                        headers={"content-type": "application/octet-stream"}))
            await asyncio.sleep(0.3)
            quick = await upload(http, audio_clips[1], 0)
            overtaken = not slow_stream.done() and not slow_upload.done()
            outcome, slow = await slow_stream, await slow_upload
        assert quick == references["upload"][audio_clips[1].name]
        assert overtaken, "the quick request waited for the slow clients"
        assert outcome.close_code == 1000 and outcome.text == references["stream"][clip.name], outcome.messages
        assert any(m["type"] == "partial" for m in outcome.messages), "a slow stream gets interim results while it goes"
        assert slow.status_code == 200 and slow.json()["text"] == references["upload"][clip.name]

    asyncio.run(scenario())


def broken_models_dir(models_dir: Path, root: Path) -> Path:
    """The good bundles (linked) next to three broken ones: bad JSON, a corrupted ONNX file, an unknown format version."""
    root.mkdir(parents=True, exist_ok=True)
    for good in ("tiny-asg", "tiny-ctc", "tiny-txl"):
        (root / good).symlink_to(models_dir / good, target_is_directory=True)
    (root / "broken-json").mkdir()
    (root / "broken-json" / "manifest.json").write_text("{not json")
    corrupt = root / "broken-checksum"
    shutil.copytree(models_dir / "tiny-ctc", corrupt)
    manifest = json.loads((corrupt / "manifest.json").read_text())
    manifest["name"] = "broken-checksum"
    (corrupt / "manifest.json").write_text(json.dumps(manifest))
    onnx = corrupt / manifest["files"]["fp32"]["path"]
    onnx.write_bytes(onnx.read_bytes()[:-64] + bytes(64))
    future = root / "broken-version"
    shutil.copytree(models_dir / "tiny-ctc", future)
    manifest["name"], manifest["format_version"] = "broken-version", 999
    (future / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_broken_bundle_next_to_good_ones(settings: Settings, models_dir: Path, tmp_path: Path, audio_clips: list[Clip]) -> None:
    root = broken_models_dir(models_dir, tmp_path / "models")
    with TestClient(create_app(settings.model_copy(update={"models_dir": root}))) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["models"] == ["tiny-asg", "tiny-ctc"] and body["lms"] == ["tiny-txl"]
        assert set(body["failed"]) == {"broken-json", "broken-checksum", "broken-version"}
        assert all(isinstance(reason, str) and reason for reason in body["failed"].values())
        assert "sha256" in body["failed"]["broken-checksum"].lower() or "checksum" in body["failed"]["broken-checksum"].lower()
        assert "999" in body["failed"]["broken-version"]
        for model in ("tiny-asg", "tiny-ctc"):
            assert client.post("/v1/transcribe", params={"model": model}, content=audio_clips[0].wav).status_code == 200
        refused = client.post("/v1/transcribe", params={"model": "broken-checksum"}, content=audio_clips[0].wav)
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "unknown_model"
        assert {m["id"] for m in client.get("/v1/models").json()["data"]} == {"tiny-asg", "tiny-ctc", "tiny-txl"}


def test_only_broken_bundles_means_not_ready(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("[]")
    with TestClient(create_app(settings.model_copy(update={"models_dir": tmp_path, "default_model": None}))) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["failed"].keys() == {"broken"}
        assert client.get("/healthz").status_code == 200
        r = client.post("/v1/transcribe", content=b"RIFF")
        assert 400 <= r.status_code < 500 and "error" in r.json()
