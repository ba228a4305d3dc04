"""asr-bench section 7: the punctuation tagger timed against the acoustic model (run as a command)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def punctuation_section(models_dir: Path, out: Path) -> dict:
    done = subprocess.run([sys.executable, "-m", "bench", "--tiny", "--sections", "punctuation", "--models-dir", str(models_dir), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "bench.json").read_text())["punctuation"]


def test_measure(models_dir: Path, punctuation_bundle: Path, tmp_path: Path) -> None:
    bundles = tmp_path / "bundles"
    shutil.copytree(models_dir / "tiny-asg", bundles / "tiny-asg")
    assert punctuation_section(bundles, tmp_path / "without") == {"skipped": f"no punctuation bundle under {bundles}"}
    shutil.copytree(punctuation_bundle, bundles / "punctuation")
    result = punctuation_section(bundles, tmp_path / "with")
    assert result["words"] == int(result["audio_seconds"] * 2.7)  # the section's speaking rate, 2.7 words per second of audio
    assert result["punctuation_ms_per_audio_second"] > 0 and result["share_of_acoustic"] > 0
