"""Streams under overload and at shutdown: a stream that falls too far behind real time is closed with
1013 and a reason, pauses never count as lag, accepted streams keep their results under load, and the
drain transcribes every frame a client had sent before its last final."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soxr
from fastapi.testclient import TestClient

from app.api.websocket import AudioFormat, Lag, TooFarBehind
from app.config import Settings
from app.main import create_app, drain
from tests.helpers import encode, speechlike
from tests.reliability.conftest import write_result
from tests.reliability.live import MODEL, STREAM_CONFIG, Clip, LiveServer, start_server, stream_clip

CONFIG = {"model": MODEL, "sample_rate": 16000, "encoding": "pcm_s16le", "endpoint_silence": 10, "max_utterance": 60}


def test_lag_counts_processing_beyond_real_time_and_never_pauses() -> None:
    lag = Lag(limit=1.0)
    for _ in range(100):  # processing faster than real time, however long the pauses between pieces: no lag
        lag.add(audio_seconds=0.1, took=0.02)
    assert lag.behind == 0.0
    lag.add(audio_seconds=0.1, took=0.5)  # one slow piece: 0.4 s behind ...
    lag.add(audio_seconds=0.1, took=0.0)  # ... and catching up
    assert lag.behind == pytest.approx(0.3)
    with pytest.raises(TooFarBehind) as refused:
        for _ in range(10):
            lag.add(audio_seconds=0.1, took=0.3)
    assert refused.value.close_code == 1013 and "behind real time" in refused.value.message


@pytest.fixture()
def slow_convert(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """Processing that takes `factor[0]` times the audio's duration (the conversion sleeps)."""
    factor = [3.0]
    convert = AudioFormat.convert

    def slow(self: AudioFormat, data: bytes, *, last: bool = False) -> np.ndarray:
        time.sleep(len(data) / (self.width * self.channels * self.sample_rate) * factor[0])
        return convert(self, data, last=last)

    monkeypatch.setattr(AudioFormat, "convert", slow)
    yield factor


def collect(ws: Any) -> tuple[list[dict[str, Any]], int | None]:
    messages = []
    while (message := ws.receive())["type"] != "websocket.close":
        messages.append(json.loads(message["text"]))
    return messages, message.get("code")


def test_a_stream_too_far_behind_is_closed_with_1013(settings: Settings, audio_clips: list[Clip], slow_convert: list[float]) -> None:
    """Before: no bound; under overload streams ended after about 30 s with 1011 'keepalive ping timeout'."""
    app = create_app(settings.model_copy(update={"stream_max_lag_seconds": 0.5}))
    data = audio_clips[3].pcm16
    with TestClient(app) as client, client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps(CONFIG))
        assert json.loads(ws.receive_text())["type"] == "ready"
        for start in range(0, len(data), 3200):  # 0.1 s frames, processed in 0.3 s each
            ws.send_bytes(data[start : start + 3200])
        messages, code = collect(ws)
    assert code == 1013, messages
    assert messages[-1]["type"] == "error" and messages[-1]["code"] == "too_far_behind" and "behind real time" in messages[-1]["message"]


def test_a_realtime_session_too_far_behind_is_closed_with_1013(settings: Settings, audio_clips: list[Clip], slow_convert: list[float]) -> None:
    app = create_app(settings.model_copy(update={"stream_max_lag_seconds": 0.5}))
    samples = np.frombuffer(audio_clips[3].pcm16, dtype="<i2").astype(np.float32) / 32768
    pcm24 = (soxr.resample(samples, 16000, 24000) * 32767).astype("<i2").tobytes()
    with TestClient(app) as client, client.websocket_connect("/v1/realtime?intent=transcription") as ws:
        assert json.loads(ws.receive_text())["type"] == "transcription_session.created"
        for start in range(0, len(pcm24), 4800):
            ws.send_text(json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm24[start : start + 4800]).decode()}))
        messages, code = collect(ws)
    assert code == 1013, [m["type"] for m in messages]
    errors = [m["error"] for m in messages if m["type"] == "error"]
    assert errors and errors[-1]["code"] == "too_far_behind"


def test_pauses_between_frames_are_not_lag(settings: Settings, audio_clips: list[Clip], slow_convert: list[float]) -> None:
    """A client that pauses longer than its frames take to process is never behind, however long it streams."""
    slow_convert[0] = 0.5  # processing at twice real time
    app = create_app(settings.model_copy(update={"stream_max_lag_seconds": 0.3}))
    data = audio_clips[1].pcm16
    with TestClient(app) as client, client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps(CONFIG))
        assert json.loads(ws.receive_text())["type"] == "ready"
        for start in range(0, len(data), 6400):
            ws.send_bytes(data[start : start + 6400])
            time.sleep(0.25)
        ws.send_text('{"type": "eof"}')
        messages, code = collect(ws)
    assert code == 1000 and messages[-1] == {"type": "eof"}, messages


def offline_text(client: TestClient, clip: Clip) -> str:
    r = client.post("/v1/transcribe", params={"model": MODEL}, content=clip.wav)
    assert r.status_code == 200, r.text
    return str(r.json()["text"])


def test_drain_transcribes_every_frame_already_sent(settings: Settings, audio_clips: list[Clip], slow_convert: list[float]) -> None:
    """Before: frames the server had received but not yet processed were dropped: finals of one word."""
    slow_convert[0] = 0.4
    app = create_app(settings)
    clip = audio_clips[3]
    with TestClient(app) as client:
        expected = offline_text(client, clip)
        with client.websocket_connect("/v1/stream") as ws:
            ws.send_text(json.dumps(CONFIG))
            assert json.loads(ws.receive_text())["type"] == "ready"
            data = clip.pcm16
            for start in range(0, len(data), 1600):  # all of it at once: most frames still queued when the drain begins
                ws.send_bytes(data[start : start + 1600])
            client.portal.call(functools.partial(drain, app, timeout=30))
            messages, code = collect(ws)
    assert code == 1001 and messages[-1] == {"type": "eof", "reason": "shutdown"}, messages[-3:]
    assert " ".join(m["text"] for m in messages if m["type"] == "final" and m["text"]) == expected


def test_drain_commits_every_realtime_append_already_sent(settings: Settings, audio_clips: list[Clip], slow_convert: list[float]) -> None:
    slow_convert[0] = 0.4
    app = create_app(settings)
    samples = np.frombuffer(audio_clips[3].pcm16, dtype="<i2").astype(np.float32) / 32768
    pcm24 = (soxr.resample(samples, 16000, 24000) * 32767).astype("<i2").tobytes()

    def open_manual(ws: Any) -> None:
        assert json.loads(ws.receive_text())["type"] == "transcription_session.created"
        ws.send_text(json.dumps({"type": "transcription_session.update", "session": {"turn_detection": None}}))
        assert json.loads(ws.receive_text())["type"] == "transcription_session.updated"
        for start in range(0, len(pcm24), 2400):
            ws.send_text(json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm24[start : start + 2400]).decode()}))

    with TestClient(app) as client:
        with client.websocket_connect("/v1/realtime?intent=transcription") as ws:  # the reference: appended and committed
            open_manual(ws)
            ws.send_text(json.dumps({"type": "input_audio_buffer.commit"}))
            while (expected := json.loads(ws.receive_text()))["type"] != "conversation.item.input_audio_transcription.completed":
                pass
        with client.websocket_connect("/v1/realtime?intent=transcription") as ws:  # appended, then the server drains
            open_manual(ws)
            client.portal.call(functools.partial(drain, app, timeout=30))
            messages, code = collect(ws)
    assert code == 1001
    completed = [m for m in messages if m["type"] == "conversation.item.input_audio_transcription.completed"]
    assert completed and completed[-1]["transcript"] == expected["transcript"]
    assert completed[-1]["usage"]["seconds"] == pytest.approx(expected["usage"]["seconds"], abs=0.05)


# --- a real server under more streams than it can compute ---------------------------------------

STREAMS = 20
SPEED = 10.0  # times real time
SECONDS = 12.0  # of audio per stream: 240 s in all, sent in about 1.2 s


@pytest.fixture(scope="module")
def overload_server(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # One inference thread and a short lag limit, so that 20 streams at 10x real time overload it.
    env = {"ASR_WORKERS": "1", "ASR_STREAM_MAX_LAG_SECONDS": "2", "ASR_MAX_STREAMS": str(STREAMS + 2)}
    server = start_server(models_dir, tmp_path_factory.mktemp("overload") / "server.log", env=env)
    yield server
    assert server.stop() == 0, server.log()[-3000:]


def test_accepted_streams_keep_their_results_under_overload(overload_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every accepted stream ends with its whole transcript or with the documented 1013; never 1011, never
    a wrong transcript, and the server answers pings meanwhile."""
    audio = [Clip(f"long{i}", wave, encode(wave, 16000, subtype="PCM_16")) for i, wave in enumerate(speechlike(SECONDS, seed=200 + i) for i in range(4))]

    async def scenario() -> tuple[dict[str, str], list[Any], list[float]]:
        references = {clip.name: (await stream_clip(overload_server.ws_url, clip)).text for clip in audio}
        chunk = 3200
        delay = chunk / 32000 / SPEED
        pings = asyncio.create_task(ping_times())

        async def timed(clip: Clip) -> Any:
            began = time.perf_counter()
            outcome = await stream_clip(overload_server.ws_url, clip, chunk=chunk, delay=delay, timeout=120)
            speeds.append(SECONDS / (time.perf_counter() - began))
            return outcome

        outcomes = await asyncio.gather(*(timed(audio[i % len(audio)]) for i in range(STREAMS)), return_exceptions=True)
        return references, list(outcomes), await pings

    async def ping_times() -> list[float]:
        """Pings answered by the server while streams send: the round trip of each."""
        from websockets.asyncio.client import connect

        times = []
        async with connect(overload_server.ws_url) as ws:
            await ws.send(json.dumps(STREAM_CONFIG))
            await ws.recv()
            for _ in range(5):  # while the streams send
                await asyncio.sleep(0.3)
                started = time.perf_counter()
                await asyncio.wait_for(await ws.ping(), timeout=20)
                times.append(time.perf_counter() - started)
        return times

    speeds: list[float] = []  # audio seconds per wall second each stream achieved (it asked for SPEED)
    started = time.perf_counter()
    references, outcomes, pings = asyncio.run(scenario())
    finished, behind, wrong = 0, 0, []
    for i, outcome in enumerate(outcomes):
        assert not isinstance(outcome, BaseException), f"stream {i}: {outcome!r}"
        clip = audio[i % len(audio)]
        if outcome.close_code == 1000:
            finished += 1
            if outcome.text != references[clip.name]:
                wrong.append((clip.name, outcome.text, references[clip.name]))
        else:
            assert outcome.close_code == 1013, (i, outcome.close_code, outcome.messages[-2:])
            assert outcome.errors and outcome.errors[-1]["code"] == "too_far_behind", outcome.messages[-2:]
            behind += 1
    write_result(tmp_path_factory, "overload", {"streams": STREAMS, "speed": SPEED, "audio_seconds": SECONDS, "finished": finished, "closed_1013": behind,
                                                "seconds": round(time.perf_counter() - started, 1), "ping_s": [round(p, 3) for p in pings],
                                                "achieved_speed_min": round(min(speeds, default=0), 1), "achieved_speed_max": round(max(speeds, default=0), 1)})
    assert not wrong, wrong
    assert finished > 0
    assert max(pings) < 20
    assert overload_server.ready()
