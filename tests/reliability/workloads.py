"""Load and soak workloads against a `LiveServer`, shared by the tests (short) and
`python -m tests.reliability.soak` (long). Each returns a dict of figures."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from typing import Any

import httpx

from tests.reliability.live import HOST, MODEL, Clip, LiveServer, percentile, rss_slope_mb_per_1000, stream_clip

CHUNKS = [3200, 3001, 1601, 8000]


async def upload(client: httpx.AsyncClient, clip: Clip, style: int) -> str:
    """One transcription of `clip` in one of three request styles; returns the text or raises."""
    if style == 0:
        r = await client.post("/v1/transcribe", params={"model": MODEL}, content=clip.wav, headers={"content-type": "application/octet-stream"})
    elif style == 1:
        r = await client.post("/v1/transcribe", files={"file": (f"{clip.name}.wav", clip.wav, "audio/wav")}, data={"model": MODEL})
    else:
        r = await client.post("/v1/audio/transcriptions", files={"file": (f"{clip.name}.wav", clip.wav)}, data={"model": MODEL})
    if r.status_code != 200:
        raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")
    return str(r.json()["text"])


async def run_load(server: LiveServer, clips: list[Clip], references: dict[str, dict[str, str]], *, clients: int = 64,
                   seconds: float = 10.0) -> dict[str, Any]:
    """`clients` concurrent clients for `seconds`: even ones upload, odd ones stream; every answer checked against its own clip."""
    upload_latency: list[float] = []
    stream_final: list[float] = []
    stream_total: list[float] = []
    errors: list[str] = []
    mismatches: list[str] = []
    deadline = time.perf_counter() + seconds
    start_line = asyncio.Event()

    async def client_loop(index: int, http: httpx.AsyncClient) -> None:
        await start_line.wait()
        for turn in itertools.count():
            if turn and time.perf_counter() >= deadline:
                return
            clip = clips[(index // 2 + turn) % len(clips)]
            started = time.perf_counter()
            try:
                if index % 2 == 0:
                    text = await upload(http, clip, (index // 2 + turn) % 3)
                    upload_latency.append(time.perf_counter() - started)
                    expected = references["upload"][clip.name]
                else:
                    outcome = await stream_clip(server.ws_url, clip, chunk=CHUNKS[(index + turn) % len(CHUNKS)])
                    stream_total.append(time.perf_counter() - started)
                    stream_final.append(outcome.final_latency)
                    if outcome.close_code != 1000 or outcome.errors:
                        raise RuntimeError(f"stream closed {outcome.close_code}: {outcome.errors}")
                    text, expected = outcome.text, references["stream"][clip.name]
            except Exception as e:  # noqa: BLE001 - counted, reported, and the test fails on any
                errors.append(f"client {index} {clip.name}: {type(e).__name__}: {e}")
                continue
            if text != expected:
                mismatches.append(f"client {index} {clip.name}: {text!r} != {expected!r}")

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=server.url, timeout=120, limits=limits) as http:
        tasks = [asyncio.create_task(client_loop(i, http)) for i in range(clients)]
        began = time.perf_counter()
        deadline = began + seconds
        start_line.set()
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - began
    done = len(upload_latency) + len(stream_total)
    return {
        "clients": clients, "seconds": round(elapsed, 1), "uploads": len(upload_latency), "streams": len(stream_total),
        "errors": len(errors), "mismatches": len(mismatches), "throughput_per_s": round(done / elapsed, 1),
        "upload_p50_s": round(percentile(upload_latency, 50), 3), "upload_p95_s": round(percentile(upload_latency, 95), 3),
        "stream_final_p95_s": round(percentile(stream_final, 95), 3), "stream_total_p95_s": round(percentile(stream_total, 95), 3),
        "all_p95_s": round(percentile(upload_latency + stream_total, 95), 3),
        "error_samples": errors[:5], "mismatch_samples": mismatches[:5],
    }


def abort_upload(server: LiveServer, clip: Clip) -> None:
    """A client that vanishes mid-upload: headers promise the whole multipart body, a part is sent, the socket closes."""
    body = b'--xYzZy\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n' + clip.wav + b"\r\n--xYzZy--\r\n"
    head = (f"POST /v1/transcribe HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: multipart/form-data; boundary=xYzZy\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection((HOST, server.port), timeout=10) as s:
        s.sendall(head + body[: len(body) // 3])


async def abort_stream(server: LiveServer, clip: Clip) -> None:
    """A client that vanishes mid-stream: config and some audio, then the TCP connection is dropped without a close frame."""
    from websockets.asyncio.client import connect

    async with asyncio.timeout(30):
        ws = await connect(server.ws_url)
        await ws.send('{"type": "config", "sample_rate": 16000}')
        await ws.recv()
        await ws.send(clip.pcm16[: len(clip.pcm16) // 2])
        ws.transport.abort()


async def settle_fds(server: LiveServer, target: int, *, timeout: float = 10.0) -> int:
    """The server's descriptor count once it stops falling (connections closing) or reaches `target`."""
    deadline = time.monotonic() + timeout
    count = server.fd_count()
    while count > target and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        count = server.fd_count()
    return count


async def run_soak(server: LiveServer, clips: list[Clip], references: dict[str, dict[str, str]], *, requests: int = 300, concurrency: int = 8,
                   warmup: int = 60, sample_every: int = 20) -> dict[str, Any]:
    """`requests` mixed operations (uploads, streams, refused requests, aborted uploads and streams), `concurrency` at a time.

    Resident memory is sampled every `sample_every` operations after `warmup`; descriptors are
    counted after the warm-up and at the end, both with no client connected."""
    issued = 0
    done = 0
    errors: list[str] = []
    samples: list[tuple[int, float]] = []
    state: dict[str, Any] = {}

    async def one(i: int, http: httpx.AsyncClient) -> None:
        clip = clips[i % len(clips)]
        kind = i % 10
        if kind <= 4:
            text = await upload(http, clip, i % 3)
            if text != references["upload"][clip.name]:
                raise AssertionError(f"{clip.name}: {text!r}")
        elif kind <= 6:
            outcome = await stream_clip(server.ws_url, clip, chunk=CHUNKS[i % len(CHUNKS)])
            if outcome.close_code != 1000 or outcome.text != references["stream"][clip.name]:
                raise AssertionError(f"stream {clip.name}: {outcome.close_code} {outcome.text!r}")
        elif kind == 7:
            r = await http.post("/v1/transcribe", content=b"not audio " * 50)
            assert r.status_code == 415, r.text
            r = await http.post("/v1/transcribe", params={"model": "missing"}, content=clip.wav)
            assert r.status_code == 404, r.text
        elif kind == 8:
            await asyncio.to_thread(abort_upload, server, clip)
        else:
            await abort_stream(server, clip)

    async def worker(http: httpx.AsyncClient, stop: int) -> None:
        nonlocal done, issued
        while issued < stop:
            i, issued = issued, issued + 1
            try:
                await one(i, http)
            except Exception as e:  # noqa: BLE001 - reported
                errors.append(f"op {i}: {type(e).__name__}: {e}"[:300])
            done += 1
            if done >= warmup and done % sample_every == 0:
                samples.append((done, server.rss_mb()))

    async def phase(stop: int) -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
            await asyncio.gather(*(worker(http, stop) for _ in range(concurrency)))

    started = time.perf_counter()
    await phase(warmup)  # warm-up: arenas, caches and the thread pool reach their working size
    await asyncio.sleep(0.5)
    state["fd_before"] = await settle_fds(server, 0, timeout=2)
    state["rss_start"] = server.rss_mb()
    samples.append((done, state["rss_start"]))
    await phase(requests)
    state["fd_after"] = await settle_fds(server, state["fd_before"])
    state["rss_end"] = server.rss_mb()
    samples.append((done, state["rss_end"]))
    return {
        "requests": done, "concurrency": concurrency, "seconds": round(time.perf_counter() - started, 1), "errors": len(errors),
        "rss_start_mb": round(state["rss_start"], 1), "rss_end_mb": round(state["rss_end"], 1),
        "rss_slope_mb_per_1000": round(rss_slope_mb_per_1000(samples), 2), "rss_samples": len(samples),
        "fd_before": state["fd_before"], "fd_after": state["fd_after"], "error_samples": errors[:5],
    }
