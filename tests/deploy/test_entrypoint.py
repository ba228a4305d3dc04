"""The image's command, `asr-server` configured by ASR_* variables, run as a real process outside a container:
ready, transcribes, health check (with and without API keys), clean exit 0 on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.deploy.tools import HEALTHCHECK, ROOT
from tests.helpers import encode, speechlike

READY_TIMEOUT = 90.0
STOP_TIMEOUT = 10.0


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    env: dict[str, str]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_command() -> list[str]:
    """The console script the image runs (`CMD ["asr-server"]`) from this interpreter's environment; where the
    project is not pip-installed, the function that script calls."""
    script = Path(sys.executable).parent / "asr-server"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from app.cli import serve; serve()"]


def wait_ready(server: Server, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"asr-server exited with {server.process.returncode} before it was ready:\n{server.output()}")
        try:
            if httpx.get(f"{server.url}/readyz", headers=headers, timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"asr-server not ready after {READY_TIMEOUT} s:\n{server.output()}")


@contextmanager
def running_server(models_dir: Path, tmp_path: Path, *, headers: dict[str, str] | None = None, **settings: str) -> Iterator[Server]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASR_")}
    env.update({"ASR_HOST": "127.0.0.1", "ASR_PORT": str(port), "ASR_MODELS_DIR": str(models_dir), "ASR_DEFAULT_MODEL": "tiny-asg",
                "ASR_THREADS": "1", "ASR_WORKERS": "1", **settings})
    log = tmp_path / f"asr-server-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(server_command(), env=env, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
    server = Server(process, f"http://127.0.0.1:{port}", env, log)
    try:
        wait_ready(server, headers or {})
        yield server
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)


def stop_with_sigterm(server: Server) -> None:
    """What `docker stop` and the kubelet do: SIGTERM, then a grace period."""
    server.process.send_signal(signal.SIGTERM)
    try:
        code = server.process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"asr-server still running {STOP_TIMEOUT} s after SIGTERM:\n{server.output()}")
    assert code == 0, f"exit status {code} after SIGTERM:\n{server.output()}"
    assert "Application shutdown complete" in server.output()


def run_healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(HEALTHCHECK)], env=env, capture_output=True, text=True, timeout=30)


def test_serves_transcribes_and_stops_cleanly_on_sigterm(models_dir: Path, tmp_path: Path) -> None:
    with running_server(models_dir, tmp_path) as server:
        ready = httpx.get(f"{server.url}/readyz").json()
        assert ready["status"] == "ready" and "tiny-asg" in ready["models"]
        wav = encode(speechlike(1.5, 16000), 16000)
        response = httpx.post(f"{server.url}/v1/transcribe", files={"file": ("speech.wav", wav, "audio/wav")}, timeout=60)
        assert response.status_code == 200, response.text
        assert response.json()["model"] == "tiny-asg" and abs(response.json()["duration"] - 1.5) < 0.01
        check = run_healthcheck(server.env)
        assert check.returncode == 0, check.stderr
        stop_with_sigterm(server)


def test_healthcheck_sends_the_first_api_key(models_dir: Path, tmp_path: Path) -> None:
    keys = tmp_path / "api-keys"
    keys.write_text("# probe key first\nprobe-key\nclient-key\n")
    with running_server(models_dir, tmp_path, headers={"Authorization": "Bearer client-key"}, ASR_API_KEYS_FILE=str(keys)) as server:
        assert httpx.get(f"{server.url}/readyz").status_code == 401
        assert httpx.get(f"{server.url}/healthz").status_code == 200, "liveness stays unauthenticated"
        check = run_healthcheck(server.env)
        assert check.returncode == 0, check.stderr
        from_env = run_healthcheck({**{k: v for k, v in server.env.items() if k != "ASR_API_KEYS_FILE"}, "ASR_API_KEYS": "client-key,other"})
        assert from_env.returncode == 0, from_env.stderr
        without = run_healthcheck({k: v for k, v in server.env.items() if k != "ASR_API_KEYS_FILE"})
        assert without.returncode == 1 and "401" in without.stderr
        stop_with_sigterm(server)


def test_sigterm_drains_an_open_stream_before_exiting(models_dir: Path, tmp_path: Path) -> None:
    """What a rolling update does to a live WebSocket stream: final results, `eof` with reason
    `shutdown`, close 1001, then exit 0 (not uvicorn's bare 1012)."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    audio = (speechlike(1.0, 16000) * 32767).astype("<i2").tobytes()
    with running_server(models_dir, tmp_path) as server:
        with connect(f"{server.url.replace('http', 'ws')}/v1/stream", open_timeout=10) as ws:
            ws.send(json.dumps({"type": "config", "model": "tiny-asg", "sample_rate": 16000, "encoding": "pcm_s16le"}))
            assert json.loads(ws.recv(timeout=10))["type"] == "ready"
            ws.send(audio)
            time.sleep(0.3)
            server.process.send_signal(signal.SIGTERM)
            messages = []
            try:
                while True:
                    received = ws.recv(timeout=STOP_TIMEOUT)
                    messages.append(json.loads(received))
            except ConnectionClosed as closed:
                close_code = closed.rcvd.code if closed.rcvd else None
        assert messages and messages[-1] == {"type": "eof", "reason": "shutdown"}, messages
        assert close_code == 1001
        code = server.process.wait(timeout=STOP_TIMEOUT)
        assert code == 0, f"exit status {code} after SIGTERM:\n{server.output()}"
