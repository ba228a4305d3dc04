"""64 concurrent clients, uploads and streams mixed, against a real uvicorn server on 127.0.0.1.

Zero errors, and every transcript equals the single-client transcript of the same clip (four
clips with four different transcripts, so an answer delivered to the wrong client shows).
The p95 latency is printed and written to `load.json` (in a tmp dir, or $ASR_RELIABILITY_RESULTS).
"""

from __future__ import annotations

import asyncio
import os

import pytest

from tests.reliability.conftest import write_result
from tests.reliability.live import Clip, LiveServer
from tests.reliability.workloads import run_load

SECONDS = float(os.environ.get("ASR_LOAD_SECONDS", "8"))


def test_64_clients_no_errors_no_cross_talk(live_server: LiveServer, audio_clips: list[Clip], references: dict[str, dict[str, str]],
                                            tmp_path_factory: pytest.TempPathFactory) -> None:
    result = asyncio.run(run_load(live_server, audio_clips, references, clients=64, seconds=SECONDS))
    write_result(tmp_path_factory, "load", result)
    assert result["errors"] == 0, result["error_samples"]
    assert result["mismatches"] == 0, result["mismatch_samples"]
    assert result["uploads"] >= 32 and result["streams"] >= 32
    assert live_server.ready()
