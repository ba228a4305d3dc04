"""The long reliability runs, outside the CI suite: `python -m tests.reliability.soak [fuzz|load|soak|all]`.

    nice -n 10 python -m tests.reliability.soak all --fuzz-minutes 3 --load-seconds 60 --requests 5000 --out runs/reliability

- `fuzz`: rounds of the fuzz tests (test_fuzz_audio, test_fuzz_api, test_schema) in the `long`
  hypothesis profile, random, until the time is up; a failing input is saved under
  tests/reliability/regressions/ as in CI.
- `load`: 64 concurrent clients, uploads and streams, against a real server for `--load-seconds`.
- `soak`: `--requests` mixed operations; resident memory slope and descriptor counts.

Every figure is printed and written as JSON under `--out`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.reliability.live import MODEL, ROOT, LiveServer, build_models, clips, start_server, stream_clip

FUZZ_TESTS = ["tests/reliability/test_fuzz_audio.py", "tests/reliability/test_fuzz_api.py", "tests/reliability/test_schema.py"]


def run_fuzz(minutes: float, examples: int, out: Path) -> dict[str, Any]:
    """Rounds of the fuzz tests with `examples` examples per test, until `minutes` are spent."""
    database = Path(tempfile.mkdtemp(prefix="asr-fuzz-db-"))
    env = {**os.environ, "ASR_FUZZ_PROFILE": "long", "ASR_FUZZ_EXAMPLES": str(examples), "ASR_FUZZ_DB": str(database), "PYTHONPATH": str(ROOT)}
    deadline = time.monotonic() + minutes * 60
    rounds, failed_rounds, started = 0, 0, time.monotonic()
    while rounds == 0 or time.monotonic() < deadline:
        log = out / f"fuzz-round-{rounds}.log"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestUnraisableExceptionWarning",
                   "--hypothesis-show-statistics", *FUZZ_TESTS]
        remaining = max(deadline - time.monotonic(), 60)
        try:
            with log.open("wb") as f:
                code = subprocess.run(command, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=remaining + 600).returncode
        except subprocess.TimeoutExpired:
            code = -1
        rounds += 1
        failed_rounds += code != 0
        tail = log.read_text(errors="replace").strip().splitlines()[-1:]
        print(f"fuzz round {rounds}: exit {code} {tail}", flush=True)
    found = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests/reliability/regressions").rglob("found-*"))
    return {"rounds": rounds, "examples_per_test_per_round": examples, "tests": FUZZ_TESTS, "failed_rounds": failed_rounds,
            "minutes": round((time.monotonic() - started) / 60, 1), "new_regressions": found}


async def references(server: LiveServer, audio: list[Any]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {"upload": {}, "stream": {}}
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        for clip in audio:
            out["upload"][clip.name] = (await http.post("/v1/transcribe", params={"model": MODEL}, content=clip.wav)).json()["text"]
            out["stream"][clip.name] = (await stream_clip(server.ws_url, clip)).text
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.soak", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["fuzz", "load", "soak", "all"], nargs="?", default="all")
    parser.add_argument("--fuzz-minutes", type=float, default=3.0)
    parser.add_argument("--fuzz-examples", type=int, default=1000, help="examples per fuzz test per round")
    parser.add_argument("--load-seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=None, help="folder for the JSON figures and logs (default: a new temporary folder)")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="asr-reliability-"))
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    if args.what in ("load", "soak", "all"):
        from tests.reliability.conftest import LIVE_ENV
        from tests.reliability.workloads import run_load, run_soak

        work = Path(tempfile.mkdtemp(prefix="asr-reliability-models-"))
        (work / "models").mkdir()
        (work / "checkpoints").mkdir()
        models = build_models(work / "models", work / "checkpoints")
        server = start_server(models, out / "server.log", env=LIVE_ENV)
        try:
            audio = clips(4)
            refs = asyncio.run(references(server, audio))
            if args.what in ("load", "all"):
                results["load"] = asyncio.run(run_load(server, audio, refs, clients=args.clients, seconds=args.load_seconds))
                print("load:", json.dumps(results["load"]), flush=True)
            if args.what in ("soak", "all"):
                results["soak"] = asyncio.run(run_soak(server, audio, refs, requests=args.requests))
                print("soak:", json.dumps(results["soak"]), flush=True)
        finally:
            results["server_exit"] = server.stop()
    if args.what in ("fuzz", "all"):
        results["fuzz"] = run_fuzz(args.fuzz_minutes, args.fuzz_examples, out)
        print("fuzz:", json.dumps(results["fuzz"]), flush=True)
    (out / "reliability.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"figures in {out / 'reliability.json'}")
    failed = (results.get("load", {}).get("errors", 0) or results.get("load", {}).get("mismatches", 0) or results.get("soak", {}).get("errors", 0)
              or results.get("fuzz", {}).get("failed_rounds", 0) or results.get("server_exit", 0))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
