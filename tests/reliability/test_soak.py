"""Soak: a few hundred mixed operations (the long command: several thousand) against a real server.

Uploads, streams, refused requests and clients that vanish mid-upload or mid-stream. Resident
memory must stay flat (least-squares slope of VmRSS against requests done, after a warm-up)
and the server's descriptor count must come back to where it was (/proc/PID/fd).
"""

from __future__ import annotations

import asyncio
import os

import pytest

from tests.reliability.conftest import write_result
from tests.reliability.live import Clip, LiveServer
from tests.reliability.workloads import run_soak

REQUESTS = int(os.environ.get("ASR_SOAK_REQUESTS", "300"))
MAX_SLOPE_MB_PER_1000 = 20.0  # a leak of 20 kB per request; a short run's noise is a few MB either way


def test_memory_flat_and_no_descriptor_leak(live_server: LiveServer, audio_clips: list[Clip], references: dict[str, dict[str, str]],
                                            tmp_path_factory: pytest.TempPathFactory) -> None:
    result = asyncio.run(run_soak(live_server, audio_clips, references, requests=REQUESTS))
    write_result(tmp_path_factory, "soak", result)
    assert result["errors"] == 0, result["error_samples"]
    assert result["fd_after"] <= result["fd_before"], result
    assert result["rss_slope_mb_per_1000"] < MAX_SLOPE_MB_PER_1000, result
    assert live_server.ready()
