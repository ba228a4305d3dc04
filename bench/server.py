"""Sections 2, 3, 5 and 6 of `asr-bench`: the real server (`asr-server` in a subprocess on
127.0.0.1, so that the load generator never competes with it for the GIL) under requests
and WebSocket streams sent from this process. Every loop is bounded in count and time.

- overhead: `POST /v1/transcribe` latency against the same recognizer called in-process;
- throughput: closed-loop clients at each concurrency, with and without dynamic batching;
- streaming: per-chunk `Stream.accept` time, then N real-time WebSocket streams, with the
  latency of each partial measured from the send time of the chunk that produced it;
- memory: the server's peak resident set (VmHWM) at start and after a run of requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from app.asr.bundle import load_bundles
from app.asr.options import DecodeOptions
from app.asr.recognizer import Recognizer
from app.asr.streaming import Stream, StreamOptions
from bench.inputs import speechlike, wav_bytes

ROOT = Path(__file__).resolve().parent.parent
CHUNK_SECONDS = 0.16


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def latency_summary(values: list[float]) -> dict[str, float]:
    return {"p50": percentile(values, 50), "p95": percentile(values, 95), "max": max(values) if values else float("nan"), "count": len(values)}


# --- the server process -----------------------------------------------------------------------
@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def memory(self) -> dict[str, float]:
        """VmHWM (peak) and VmRSS of the server process in MiB, from /proc."""
        fields: dict[str, float] = {}
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("VmHWM", "VmRSS"):
                    fields[key] = int(value.split()[0]) / 1024
        return fields


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def run_server(models_dir: Path, *, model: str, log_dir: Path, batch_max_size: int = 16, batch_max_wait_ms: float = 5.0,
               threads: int = 0, extra_env: dict[str, str] | None = None, ready_timeout: float = 180.0) -> Iterator[Server]:
    """`asr-server` on 127.0.0.1 at a free port, waited for until `/readyz`, stopped on exit."""
    port = free_port()
    env = {**os.environ, "ASR_BATCH_MAX_SIZE": str(batch_max_size), "ASR_BATCH_MAX_WAIT_MS": str(batch_max_wait_ms), "ASR_THREADS": str(threads),
           "ASR_DEFAULT_MODEL": model, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])), **(extra_env or {})}  # fmt: skip
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"server-{port}.log"
    command = [sys.executable, "-c", "from app.cli import serve; serve()", "--host", "127.0.0.1", "--port", str(port), "--models-dir", str(models_dir),
               "--log-level", "warning"]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"asr-server exited with {process.returncode} before it was ready; see {log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{server.url}/readyz", timeout=2.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"asr-server not ready after {ready_timeout:.0f} s; see {log}")
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- section 2: overhead ----------------------------------------------------------------------
def measure_overhead(server: Server, recognizer: Recognizer, *, model: str, samples: np.ndarray, rate: int, repeats: int) -> dict[str, Any]:
    """Median `POST /v1/transcribe` latency (greedy) against `Recognizer.transcribe` on the same audio, alternated."""
    body = wav_bytes(samples, rate)
    options = DecodeOptions(decoder="greedy")
    params = {"model": model, "decoder": "greedy"}
    raw, e2e, reported = [], [], []
    with httpx.Client(timeout=120.0) as client:
        for i in range(repeats + 1):  # the first round warms both up
            started = time.perf_counter()
            recognizer.transcribe(samples, model=model, options=options)
            raw_seconds = time.perf_counter() - started
            started = time.perf_counter()
            response = client.post(f"{server.url}/v1/transcribe", params=params, files={"file": ("audio.wav", body, "audio/wav")})
            e2e_seconds = time.perf_counter() - started
            response.raise_for_status()
            if i:
                raw.append(raw_seconds)
                e2e.append(e2e_seconds)
                reported.append(response.json()["timings"])
    raw_median, e2e_median = statistics.median(raw), statistics.median(e2e)
    timings = {k: statistics.median(t[k] for t in reported) for k in reported[0]} if reported else {}
    return {"audio_seconds": len(samples) / rate, "repeats": repeats, "model_seconds": raw_median, "http_seconds": e2e_median,
            "overhead_seconds": e2e_median - raw_median, "overhead_share": (e2e_median - raw_median) / raw_median,
            "server_reported": timings, "request": "multipart WAV, decoder=greedy"}  # fmt: skip


# --- section 3: throughput --------------------------------------------------------------------
async def closed_loop(url: str, *, clients: int, body: bytes, params: dict[str, str], seconds: float, max_requests: int) -> dict[str, Any]:
    """`clients` loops each sending one request after the other for `seconds` (at most `max_requests` in all)."""
    latencies: list[float] = []
    counts = {"ok": 0, "busy": 0, "error": 0}
    sent = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120.0, limits=limits) as client:
        started = time.perf_counter()
        deadline = started + seconds

        async def loop() -> None:
            nonlocal sent
            while time.perf_counter() < deadline and sent < max_requests:
                sent += 1
                t0 = time.perf_counter()
                try:
                    response = await client.post("/v1/transcribe", params=params, files={"file": ("audio.wav", body, "audio/wav")})
                except httpx.HTTPError:
                    counts["error"] += 1
                    continue
                if response.status_code == 200:
                    counts["ok"] += 1
                    latencies.append(time.perf_counter() - t0)
                elif response.status_code == 429:
                    counts["busy"] += 1
                    await asyncio.sleep(0.05)  # the server asked to retry shortly
                else:
                    counts["error"] += 1

        await asyncio.gather(*(loop() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return {"clients": clients, "seconds": elapsed, **counts, "requests_per_second": counts["ok"] / elapsed, **latency_summary(latencies),
            "latencies": latencies}  # fmt: skip


def merge_loops(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Closed loops of one level on one server, run at different moments, as one: requests over total time."""
    seconds = sum(r["seconds"] for r in runs)
    latencies = [x for r in runs for x in r.pop("latencies")]
    counts = {k: sum(r[k] for r in runs) for k in ("ok", "busy", "error")}
    return {"clients": runs[0]["clients"], "seconds": seconds, **counts, "requests_per_second": counts["ok"] / seconds, **latency_summary(latencies),
            "rounds": len(runs)}  # fmt: skip


def measure_throughput(servers: dict[str, Server], *, model: str, samples: np.ndarray, rate: int, levels: tuple[int, ...], seconds: float,
                       max_requests: int) -> dict[str, Any]:
    """Each concurrency level on each server in turn, in the order A B B A (two rounds of half the
    time each): a drift of the machine during the level then falls on both servers alike, which
    one round in the order A B does not ensure (the second server always ran later)."""
    body = wav_bytes(samples, rate)
    params = {"model": model, "decoder": "greedy"}
    audio = len(samples) / rate
    result: dict[str, Any] = {"model": model, "audio_seconds": audio, "seconds_per_level": seconds, "levels": list(levels), "runs": {name: [] for name in servers}}
    for url in (s.url for s in servers.values()):  # warm-up
        asyncio.run(closed_loop(url, clients=2, body=body, params=params, seconds=0.5, max_requests=4))
    for clients in levels:
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
        for order in (list(servers), list(servers)[::-1]):
            for name in order:
                rounds[name].append(asyncio.run(closed_loop(servers[name].url, clients=clients, body=body, params=params, seconds=seconds / 2,
                                                            max_requests=max(1, max_requests // 2))))  # fmt: skip
        for name, runs in rounds.items():
            run = merge_loops(runs)
            run["audio_seconds_per_second"] = run["requests_per_second"] * audio
            result["runs"][name].append(run)
    if {"batching", "no_batching"} <= set(servers):
        result["batching_speedup"] = {str(a["clients"]): a["requests_per_second"] / max(b["requests_per_second"], 1e-9)
                                      for a, b in zip(result["runs"]["batching"], result["runs"]["no_batching"], strict=True)}  # fmt: skip
    return result


# --- section 5: streaming ---------------------------------------------------------------------
def chunks_of(samples: np.ndarray, rate: int) -> list[bytes]:
    """`pcm_s16le` chunks of `CHUNK_SECONDS`, as a client sends them."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    size = int(CHUNK_SECONDS * rate)
    return [pcm[i : i + size].tobytes() for i in range(0, len(pcm), size)]


def expected_messages(recognizer: Recognizer, model: str, chunks: list[bytes]) -> list[tuple[int, str, str]]:
    """`(chunk index, kind, text)` of every result the server will send for these chunks (index -1: after `eof`).

    The server's `Stream` is deterministic, so the same stream run here says which chunk
    produced each message a client receives."""
    bundle = recognizer.bundle(model)
    options = DecodeOptions()
    stream = Stream(recognizer, bundle, recognizer.acoustic_model(bundle, options), options)
    out = []
    for i, chunk in enumerate(chunks):
        samples = np.frombuffer(chunk, dtype="<i2").astype(np.float32) / 32768.0
        out += [(i, r.kind, r.text) for r in stream.accept(samples)]
    out += [(-1, r.kind, r.text) for r in stream.finish()]
    return out


def accept_times(recognizer: Recognizer, model: str, samples: np.ndarray, rate: int, *, cached: bool = True,
                 options: DecodeOptions | None = None, whole_finals: bool = True) -> tuple[list[float], float]:
    """`Stream.accept` time of every 160 ms chunk, and the `finish` time (default: the bundle's default options)."""
    bundle = recognizer.bundle(model)
    options = options or DecodeOptions()
    stream = Stream(recognizer, bundle, recognizer.acoustic_model(bundle, options), options, StreamOptions(cached=cached, whole_finals=whole_finals))
    size = int(CHUNK_SECONDS * rate)
    times = []
    for i in range(0, len(samples), size):
        started = time.perf_counter()
        stream.accept(samples[i : i + size])
        times.append(time.perf_counter() - started)
    started = time.perf_counter()
    stream.finish()
    return times, time.perf_counter() - started


def look_ahead_seconds(recognizer: Recognizer, model: str) -> float:
    """Audio a frame waits for after its own start before it can be computed (exact models: the right padding;
    windowed models: the stream's right context), not counting the wait for a whole chunk."""
    bundle = recognizer.bundle(model)
    acoustic = recognizer.acoustic_model(bundle, DecodeOptions())
    geometry = acoustic.geometry
    samples = geometry.right_pad if geometry.exact else StreamOptions().right_context * geometry.stride
    if acoustic.streaming is not None and acoustic.streaming.lookahead_samples is not None:  # chunked transformer: the stem's reach past a chunk
        samples = acoustic.streaming.lookahead_samples
    return samples / bundle.manifest.sample_rate


def measure_accept(recognizer: Recognizer, model: str, samples: np.ndarray, rate: int, *, rounds: int = 3) -> dict[str, Any]:
    """Per-chunk `Stream.accept` time at 160 ms chunks against the offline acoustic model's time for the same
    audio, in-process, alternated `rounds` times: `accept_over_offline` is the mean chunk time over the offline
    time of 160 ms of audio, with greedy finals (the beam search of a final costs what it costs offline, so it
    is left out of this ratio; `mean`, `median`, `p95` are with the bundle's default decoder). Measured with
    the cached streaming graph and, for comparison, with receptive-field windows."""
    acoustic = recognizer.acoustic_model(recognizer.bundle(model), DecodeOptions())
    has_graph = acoustic.streaming is not None
    greedy = DecodeOptions(decoder="greedy")
    cached: list[float] = []
    cached_greedy: list[float] = []
    windows: list[float] = []
    chunk_finals: list[float] = []  # finals from the streamed emissions (no pass over each utterance again)
    offline: list[float] = []
    finish: list[float] = []
    for _ in range(rounds):
        started = time.perf_counter()
        acoustic.emissions(samples)
        offline.append(time.perf_counter() - started)
        times, finished = accept_times(recognizer, model, samples, rate, cached=True)
        cached += times
        finish.append(finished)
        cached_greedy += accept_times(recognizer, model, samples, rate, cached=True, options=greedy)[0]
        if has_graph:
            windows += accept_times(recognizer, model, samples, rate, cached=False, options=greedy)[0]
        if not acoustic.geometry.exact:
            chunk_finals += accept_times(recognizer, model, samples, rate, cached=True, options=greedy, whole_finals=False)[0]
    audio = len(samples) / rate
    offline_chunk = min(offline) * CHUNK_SECONDS / audio
    median, mean = statistics.median(cached), statistics.fmean(cached)
    # the mean, not the median: the cached graph computes 320 ms at a time, so every other 160 ms message costs next to nothing
    result = {"chunk_seconds": CHUNK_SECONDS, "chunks": len(cached), "median": median, "mean": mean, "p95": percentile(cached, 95), "max": max(cached),
              "finish_seconds": statistics.median(finish), "share_of_real_time": mean / CHUNK_SECONDS, "cached_graph": has_graph,
              "offline_acoustic_seconds": min(offline), "offline_acoustic_per_chunk": offline_chunk, "greedy_mean": statistics.fmean(cached_greedy),
              "accept_over_offline": statistics.fmean(cached_greedy) / offline_chunk,
              "look_ahead_seconds": look_ahead_seconds(recognizer, model)}  # fmt: skip
    if chunk_finals:
        result["without_whole_finals_over_offline"] = statistics.fmean(chunk_finals) / offline_chunk
    if windows:
        result["windows_median"] = statistics.median(windows)
        result["windows_mean"] = statistics.fmean(windows)
        result["windows_over_offline"] = statistics.fmean(windows) / offline_chunk
    return result


@dataclass
class StreamRecord:
    partial: list[float] = field(default_factory=list)
    final: list[float] = field(default_factory=list)
    speech_end_to_final: list[float] = field(default_factory=list)  # from the chunk holding a final's last word end to the final
    eof_to_final: float | None = None
    matched: int = 0
    received: int = 0
    error: str | None = None
    refused: bool = False  # closed at once with 1013: the server was at its stream capacity


async def one_stream(url: str, model: str, chunks: list[bytes], expected: list[tuple[int, str, str]], *, delay: float, timeout: float) -> StreamRecord:
    from websockets.asyncio.client import connect

    record = StreamRecord()
    sent_at: list[float] = []
    eof_at = 0.0
    await asyncio.sleep(delay)
    try:
        async with connect(url.replace("http://", "ws://") + "/v1/stream", max_size=None, open_timeout=timeout) as ws:
            await ws.send(json.dumps({"type": "config", "model": model, "sample_rate": 16000, "encoding": "pcm_s16le"}))
            ready = json.loads(await asyncio.wait_for(ws.recv(), timeout))
            if ready.get("type") != "ready":
                record.refused = ready.get("code") == "too_many_streams"
                record.error = None if record.refused else f"no ready: {ready}"
                return record

            async def sender() -> None:
                nonlocal eof_at
                start = time.perf_counter()
                for i, chunk in enumerate(chunks):
                    await asyncio.sleep(max(0.0, start + i * CHUNK_SECONDS - time.perf_counter()))
                    sent_at.append(time.perf_counter())
                    await ws.send(chunk)
                await asyncio.sleep(max(0.0, start + len(chunks) * CHUNK_SECONDS - time.perf_counter()))
                eof_at = time.perf_counter()
                await ws.send(json.dumps({"type": "eof"}))

            send_task = asyncio.create_task(sender())
            aligned = True
            last_final = None
            async for raw in ws:
                now = time.perf_counter()
                message = json.loads(raw)
                if message["type"] == "eof":
                    break
                if message["type"] == "error":
                    record.error = message.get("message", "error")
                    break
                if message["type"] == "final":
                    last_final = now
                    words = message.get("words") or []
                    if words and sent_at:  # the end of speech: the last word's end, as the chunk holding it was sent
                        index = min(int(words[-1]["end"] / CHUNK_SECONDS), len(sent_at) - 1)
                        record.speech_end_to_final.append(now - sent_at[index])
                k = record.received
                record.received += 1
                if aligned and k < len(expected) and expected[k][1:] == (message["type"], message.get("text", "")):
                    index = expected[k][0]
                    record.matched += 1
                    if 0 <= index < len(sent_at):
                        (record.partial if message["type"] == "partial" else record.final).append(now - sent_at[index])
                else:
                    aligned = False  # a different result (a near tie decided otherwise): stop attributing
            await send_task
            end = last_final if last_final is not None and last_final >= eof_at else time.perf_counter()
            record.eof_to_final = end - eof_at
    except Exception as e:  # noqa: BLE001 - a failed stream is a result at this level
        code = getattr(getattr(e, "rcvd", None), "code", None)
        if code == 1013 and not sent_at:  # refused at capacity before its config was read: not a failure
            record.refused = True
        else:
            record.error = f"{type(e).__name__}: {str(e)[:200]}"
    return record


async def stream_level(url: str, model: str, chunks: list[bytes], expected: list[tuple[int, str, str]], streams: int, *, timeout: float) -> dict[str, Any]:
    rng = np.random.default_rng(streams)
    limit = timeout + len(chunks) * CHUNK_SECONDS + 60.0  # a stream that never ends is a failure, not a hang

    async def bounded(delay: float) -> StreamRecord:
        try:
            return await asyncio.wait_for(one_stream(url, model, chunks, expected, delay=delay, timeout=timeout), limit)
        except TimeoutError:
            return StreamRecord(error=f"no eof within {limit:.0f} s")

    records = await asyncio.gather(*(bounded(float(rng.uniform(0, CHUNK_SECONDS))) for _ in range(streams)))
    partial = [x for r in records for x in r.partial]
    final = [x for r in records for x in r.final]
    speech_end = [x for r in records for x in r.speech_end_to_final]
    eof = [r.eof_to_final for r in records if r.eof_to_final is not None]
    errors = [r.error for r in records if r.error]
    refused = sum(r.refused for r in records)
    return {"streams": streams, "accepted": streams - refused, "refused": refused, "partial_latency": latency_summary(partial),
            "final_latency": latency_summary(final), "speech_end_to_final": latency_summary(speech_end), "eof_to_last_final": latency_summary(eof),
            "errors": len(errors), "first_error": errors[0] if errors else None,
            "matched_share": sum(r.matched for r in records) / max(sum(r.received for r in records), 1)}  # fmt: skip


def measure_streams(server: Server, recognizer: Recognizer, *, model: str, samples: np.ndarray, rate: int, levels: tuple[int, ...],
                    limit_seconds: float = 0.5) -> dict[str, Any]:
    """Raise the number of real-time streams until the p95 partial latency of the accepted ones passes `limit_seconds`
    (or a stream fails). Streams the server refuses past its capacity (1013) are counted, not failures:
    `sustained_streams` is the most streams accepted at once within the limit."""
    chunks = chunks_of(samples, rate)
    expected = expected_messages(recognizer, model, chunks)
    result: dict[str, Any] = {"audio_seconds": len(samples) / rate, "chunk_seconds": CHUNK_SECONDS, "limit_seconds": limit_seconds,
                              "look_ahead_seconds": look_ahead_seconds(recognizer, model), "endpoint_silence": StreamOptions().endpoint_silence,
                              "expected_partials": sum(1 for e in expected if e[1] == "partial"), "levels": [], "sustained_streams": 0}  # fmt: skip
    for streams in levels:
        level = asyncio.run(stream_level(server.url, model, chunks, expected, streams, timeout=30.0 + len(samples) / rate))
        result["levels"].append(level)
        measured = next((level[k] for k in ("partial_latency", "final_latency", "eof_to_last_final") if level[k]["count"]), level["partial_latency"])
        p95 = measured["p95"]  # without partials on this audio (a trained model hearing no speech), the finals' latency
        ok = not level["errors"] and p95 == p95 and p95 <= limit_seconds
        level["within_limit"] = ok
        if not ok:
            break
        result["sustained_streams"] = max(result["sustained_streams"], level["accepted"])
    return result


# --- section 6: memory ------------------------------------------------------------------------
MEMORY_FORMATS = (("WAV", "PCM_16", "wav"), ("FLAC", "PCM_16", "flac"), ("OGG", "VORBIS", "ogg"), ("MP3", "MPEG_LAYER_III", "mp3"))
HOTWORDS = ("cat", "hello world", "the park", "quick brown fox", "she said")


def memory_clips(count: int, *, max_seconds: float, seed: int = 0) -> list[tuple[str, bytes, float]]:
    """`count` encoded clips of 0.5..`max_seconds` s at assorted rates, WAV/FLAC/OGG/MP3 in turn: (name, bytes, seconds)."""
    import io

    import soundfile as sf
    import soxr

    rng = np.random.default_rng(seed)
    clips = []
    for i in range(count):
        seconds = float(rng.uniform(0.5, max_seconds))
        rate = int(rng.choice([8000, 16000, 22050, 44100]))
        wave = speechlike(seconds, 16000, seed=seed + i)
        if rate != 16000:
            wave = soxr.resample(wave, 16000, rate).astype(np.float32)
        fmt, subtype, ext = MEMORY_FORMATS[i % len(MEMORY_FORMATS)]
        buffer = io.BytesIO()
        sf.write(buffer, wave, rate, format=fmt, subtype=subtype)
        clips.append((f"clip{i}.{ext}", buffer.getvalue(), seconds))
    return clips


def memory_request(i: int, clips: list[tuple[str, bytes, float]], models: list[dict[str, Any]], *, rescoring: bool) -> tuple[dict[str, str], tuple[str, bytes]]:
    """Request `i` of the mixed memory run: its query parameters and file, chosen by a generator seeded with `i`."""
    rng = np.random.default_rng(i)
    name, data, _ = clips[int(rng.integers(len(clips)))]
    model = models[int(rng.integers(len(models)))]
    params = {"model": model["id"], "precision": str(rng.choice(model["precisions"])), "decoder": str(rng.choice(["greedy", "beam"]))}
    if params["decoder"] == "beam":
        params["beam_size"] = str(rng.choice([8, 16, 32]))
        if rescoring and rng.random() < 0.5:
            params.update(rescore="true", nbest="2")
        if rng.random() < 0.1:
            params["hotwords"] = ",".join(rng.choice(HOTWORDS, size=int(rng.integers(1, 4)), replace=False))
    return params, (name, data)


def measure_memory(server: Server, *, requests: int, clients: int = 4, max_seconds: float = 30.0, checkpoint: int | None = None,
                   sample_every: int = 50, progress: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Resident memory over `requests` mixed requests: clips of 0.5..`max_seconds` s in WAV, FLAC, OGG and MP3
    at assorted rates, every acoustic model and precision served, greedy and beam search (n-gram where the
    bundle has one, a few with hotwords), Transformer-XL rescoring on and off, `clients` at a time.

    VmRSS is sampled every `sample_every` requests, between phases, with no request in flight (what stays
    resident, not the buffers of the requests running); the figure is VmRSS after all requests against
    VmRSS after `checkpoint` (default: a sixth of them, request 500 of 3000), i.e. after the warm-up."""
    checkpoint = checkpoint or max(requests // 6, 1)
    listed = httpx.get(f"{server.url}/v1/models", timeout=60).json()["data"]
    models = [m for m in listed if m.get("kind") == "acoustic"]
    rescoring = any(m.get("kind") == "lm" for m in listed)
    clips = memory_clips(24, max_seconds=max_seconds)
    start = server.memory()
    samples: list[tuple[int, float]] = []
    state = {"next": 0, "done": 0, "failed": 0}
    errors: list[str] = []

    async def run() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=600.0) as client:

            async def loop(stop: int) -> None:
                while state["next"] < stop:
                    i = state["next"]
                    state["next"] += 1
                    params, (name, data) = memory_request(i, clips, models, rescoring=rescoring)
                    response = await client.post("/v1/transcribe", params=params, files={"file": (name, data)})
                    if response.status_code != 200:
                        state["failed"] += 1
                        errors.append(f"{params} {name}: {response.status_code} {response.text[:200]}")
                    state["done"] += 1

            stops = sorted({*range(sample_every, requests, sample_every), checkpoint, requests})
            for stop in stops:  # sampled between phases, with no request in flight: what stays resident
                await asyncio.gather(*(loop(stop) for _ in range(clients)))
                samples.append((state["done"], server.memory().get("VmRSS", 0.0)))
                if progress is not None:
                    progress(state["done"], samples[-1][1])

    started = time.perf_counter()
    asyncio.run(run())
    after = server.memory()
    at_checkpoint = next((rss for done, rss in samples if done >= checkpoint), None)
    return {"requests": requests, "clients": clients, "failed": state["failed"], "seconds": time.perf_counter() - started,
            "max_clip_seconds": max_seconds, "models": [m["id"] for m in models], "rescoring": rescoring,
            "start_peak_mib": start.get("VmHWM"), "start_rss_mib": start.get("VmRSS"), "after_peak_mib": after.get("VmHWM"),
            "after_rss_mib": after.get("VmRSS"), "growth_mib": (after.get("VmHWM", 0) - start.get("VmHWM", 0)),
            "checkpoint": checkpoint, "checkpoint_rss_mib": at_checkpoint,
            "rss_end_over_checkpoint": (after.get("VmRSS", 0) / at_checkpoint) if at_checkpoint else None,
            "rss_samples": samples, "error_samples": errors[:5]}  # fmt: skip


def local_recognizer(models_dir: Path, *, model: str, threads: int) -> Recognizer:
    """The server's recognizer, loaded in this process with the server's settings."""
    bundles = load_bundles(models_dir, threads=threads, precisions=("fp32", "int8"))
    recognizer = Recognizer(bundles, default_model=model, threads=threads)
    recognizer.warm_up()
    return recognizer
