"""A real `asr-server` in a subprocess on 127.0.0.1, and the clients the reliability tests drive it with.

The server runs the real entry point (`app.cli.serve` -> uvicorn with `GracefulServer`), so
signals, sockets, uvicorn's protocol code and the process's memory and descriptors are the
real ones. Only loopback addresses are used.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tests.helpers import build_tiny_bundles, encode, speechlike

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"


def build_models(root: Path, work: Path) -> Path:
    """The same tiny bundles as the `models_dir` fixture, for commands run outside pytest."""
    return build_tiny_bundles(root, work)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}/v1/stream"

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_mb(self) -> float:
        """Resident memory of the server process (VmRSS), in MB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS line")

    def fd_count(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, *, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise


def start_server(models_dir: Path, log_path: Path, *, env: dict[str, str] | None = None, startup_timeout: float = 90) -> LiveServer:
    """Start `asr-server` on a free loopback port and wait until /readyz answers 200."""
    port = free_port()
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "ASR_WORKERS": "2", "ASR_STREAM_IDLE_SECONDS": "30", "ASR_DRAIN_DELAY_SECONDS": "0", **(env or {})}
    command = [sys.executable, "-c", "from app.cli import serve; serve()", "--host", HOST, "--port", str(port), "--models-dir", str(models_dir),
               "--default-model", "tiny-asg", "--threads", "1", "--log-level", "warning"]
    log = log_path.open("wb")
    process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    server = LiveServer(process, port, log_path)
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} during startup:\n{server.log()[-3000:]}")
        if server.ready():
            return server
        time.sleep(0.2)
    server.stop(sig=signal.SIGKILL)
    raise RuntimeError(f"server not ready after {startup_timeout} s:\n{server.log()[-3000:]}")


# --- audio and references ------------------------------------------------------------------

@dataclass(frozen=True)
class Clip:
    name: str
    wave: np.ndarray  # float32 mono at 16 kHz
    wav: bytes

    @property
    def pcm16(self) -> bytes:
        return (np.clip(self.wave, -1, 1) * 32767).astype("<i2").tobytes()


def clips(count: int = 4) -> list[Clip]:
    """Different audio per clip (seed and length), so a transcript delivered to the wrong client shows."""
    out = []
    for i in range(count):
        wave = speechlike(0.8 + 0.45 * i, seed=100 + i)
        out.append(Clip(f"clip{i}", wave, encode(wave, 16000, subtype="PCM_16")))
    return out


# tiny-ctc gives every clip a different transcript (tiny-asg's random weights give only a few), so cross-talk shows.
MODEL = "tiny-ctc"
STREAM_CONFIG = {"type": "config", "model": MODEL, "sample_rate": 16000, "encoding": "pcm_s16le", "endpoint_silence": 10, "max_utterance": 60, "interim_results": True}


@dataclass
class StreamOutcome:
    messages: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    final_latency: float = 0.0  # seconds from our eof to the server's eof

    @property
    def text(self) -> str:
        return " ".join(m["text"] for m in self.messages if m.get("type") == "final" and m["text"])

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == "error"]


async def stream_clip(url: str, clip: Clip, *, chunk: int = 3200, delay: float = 0.0, send_eof: bool = True, config: dict[str, Any] | None = None,
                      timeout: float = 60) -> StreamOutcome:
    """Stream one clip over WebSocket in `chunk`-byte frames (`delay` s apart) and collect every message until the close."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    outcome = StreamOutcome()
    async with asyncio.timeout(timeout), connect(url, max_size=None, open_timeout=timeout) as ws:
        await ws.send(json.dumps(config or STREAM_CONFIG))
        ready = json.loads(await ws.recv())
        outcome.messages.append(ready)
        if ready.get("type") != "ready":
            outcome.close_code = await _close_code(ws)
            return outcome
        receiver = asyncio.create_task(_collect(ws, outcome))
        data = clip.pcm16
        try:
            for start in range(0, len(data), chunk):
                await ws.send(data[start : start + chunk])
                if delay:
                    await asyncio.sleep(delay)
            if send_eof:
                outcome.final_latency = time.perf_counter()
                await ws.send(json.dumps({"type": "eof"}))
        except ConnectionClosed:
            pass
        await receiver
        if outcome.final_latency:
            outcome.final_latency = time.perf_counter() - outcome.final_latency
    return outcome


async def _collect(ws: Any, outcome: StreamOutcome) -> None:
    from websockets.exceptions import ConnectionClosed

    try:
        async for message in ws:
            outcome.messages.append(json.loads(message))
    except ConnectionClosed:
        pass
    outcome.close_code = ws.close_code


async def _close_code(ws: Any) -> int | None:
    from websockets.exceptions import ConnectionClosed

    try:
        async for _ in ws:
            pass
    except ConnectionClosed:
        pass
    return ws.close_code


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")


def rss_slope_mb_per_1000(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of (requests done, RSS MB) in MB per 1000 requests."""
    if len(points) < 2:
        return 0.0
    x = np.array([p[0] for p in points], dtype=np.float64)
    y = np.array([p[1] for p in points], dtype=np.float64)
    return float(np.polyfit(x, y, 1)[0] * 1000)


@contextlib.contextmanager
def thread_server(app: Any) -> Iterator[str]:
    """`app` under uvicorn on a free loopback port, in a thread of this process; yields `host:port`."""
    import threading

    import uvicorn

    sock = socket.socket()
    sock.bind((HOST, 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.05)
        yield f"{HOST}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
