"""`asr-bench` end to end in its tiny mode: tiny random models, a few iterations, every section.

Checks the shape of what it writes (every section in the JSON, the PNG, the table), not the
figures: timings on a shared test machine prove nothing. The real numbers come from `asr-bench`.
The benchmark runs as a command (`python -m bench`, what `asr-bench` runs): tests import no
benchmark code.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("matplotlib")
pytest.importorskip("websockets")

from bench.inputs import synthetic_emissions  # noqa: E402  (the benchmark's own generator is what this tests)

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("acoustic", "overhead", "throughput", "decoders", "streaming", "memory", "punctuation", "whisper")


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`bench.json` of one tiny run, with the PNG's path and the printed table beside it."""
    out = tmp_path_factory.mktemp("bench")
    done = bench("--tiny", "--out", str(out), "--models-dir", str(out / "no-bundles"))
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads((out / "bench.json").read_text())
    return {**data, "png": str(out / "bench.png"), "table": (out / "bench.txt").read_text()}


def test_every_section_is_written(results: dict) -> None:
    data = results
    for section in SECTIONS:
        assert section in data, section
    assert {"cpu", "cores", "date"} <= set(data["machine"])
    assert data["models"]["wav2letter"]["trained"] is False


def test_plot_and_table(results: dict) -> None:
    png = Path(results["png"])
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = results["table"]
    headings = ("1. acoustic", "2. POST", "3. throughput", "4. decoders", "5. streaming", "6. server memory", "8. Whisper-CTC")
    for heading in (*headings, "targets"):
        assert heading in text


def test_acoustic_ratios(results: dict) -> None:
    for name in ("wav2letter", "wav2vec2"):
        row = results["acoustic"][name]["threads"]["1"]
        for engine in ("torch_eager", "ort_fp32", "ort_int8"):
            assert row[engine]["rtf"] > 0
        assert row["speedup_fp32_vs_torch"] > 0


def test_server_sections(results: dict) -> None:
    assert {name: o["http_seconds"] > 0 for name, o in results["overhead"].items()} == {"batching": True, "no_batching": True}
    runs = results["throughput"]["runs"]
    assert set(runs) == {"batching", "no_batching"}
    assert all(r["ok"] > 0 for rs in runs.values() for r in rs)
    assert set(results["throughput"]["batching_speedup"]) == {"1", "4"}
    ws = results["streaming"]["websocket"]
    assert ws["levels"] and ws["levels"][0]["errors"] == 0
    accept = results["streaming"]["accept"]
    assert accept["chunks"] > 0 and accept["accept_over_offline"] > 0 and accept["look_ahead_seconds"] > 0
    assert accept["cached_graph"] and accept["windows_median"] > 0  # the tiny bundle streams with caches; the old path measured beside it
    assert {"accepted", "refused", "speech_end_to_final"} <= set(ws["levels"][0])
    memory = results["memory"]
    assert memory["failed"] == 0 and memory["after_peak_mib"] >= memory["start_peak_mib"] > 0


def test_decoders(results: dict) -> None:
    names = [r["name"] for r in results["decoders"]["ours"]]
    assert names == ["greedy", "beam1", "beam16", "beam16+lm", "beam16+lm python", "beam16+lm+oov", "beam16+lm all-tokens", "beam16+lm+txl8"]
    assert all(r["seconds_per_audio_second"] > 0 for r in results["decoders"]["ours"])
    theirs = results["decoders"]["pyctcdecode"]
    if theirs["available"]:
        assert {r["name"] for r in results["decoders"]["comparison"]} <= set(names)
    else:
        assert theirs["reason"]


def test_targets_name_their_values(results: dict) -> None:
    rows = results["targets"]
    names = [row["name"] for row in rows]
    assert len(names) == len(set(names)) >= 11
    assert {"real-time streams within 500 ms p95 partial latency", "Stream.accept per chunk over offline acoustic time"} <= set(names)
    assert all(row["met"] in (True, False, None) for row in rows)


def test_synthetic_emissions_are_log_probabilities() -> None:
    em = synthetic_emissions(["hello world", "the cat"], source="test")
    for e in em.emissions:
        assert np.allclose(np.exp(e).sum(axis=1), 1.0, atol=1e-4)
    clean = synthetic_emissions(["hello world", "the cat"], source="test", confusion=0.0, noise=0.1)
    for e, reference in zip(clean.emissions, clean.references, strict=True):  # without noise, greedy reads the reference back
        path = e.argmax(axis=1)
        merged = [int(t) for i, t in enumerate(path) if (i == 0 or t != path[i - 1]) and t != clean.tokens.blank_id]
        assert clean.tokens.decode(merged) == reference


def test_cli_rejects_unknown_section(tmp_path: Path) -> None:
    done = bench("--tiny", "--sections", "nonsense", "--out", str(tmp_path))
    assert done.returncode == 2 and "nonsense" in done.stderr
