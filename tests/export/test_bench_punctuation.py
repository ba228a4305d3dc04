"""asr-bench section 7: the punctuation tagger timed against the acoustic model."""

from __future__ import annotations

import shutil
from pathlib import Path

from app.asr.manifest import Manifest
from export.bench_models import BuiltBundle
from export.bench_punctuation import find_punctuation_bundle, measure_punctuation


def test_measure(models_dir: Path, punctuation_bundle: Path, tmp_path: Path) -> None:
    acoustic = BuiltBundle(models_dir / "tiny-asg", Manifest.load(models_dir / "tiny-asg"), trained=False, note="tiny")
    assert measure_punctuation(tmp_path, acoustic, seconds=2.0, repeats=1) == {"skipped": f"no punctuation bundle under {tmp_path}"}
    shutil.copytree(punctuation_bundle, tmp_path / "punctuation")
    assert find_punctuation_bundle(tmp_path) == tmp_path / "punctuation"
    result = measure_punctuation(tmp_path, acoustic, seconds=2.0, repeats=1)
    assert result["words"] == 5 and result["punctuation_ms_per_audio_second"] > 0 and result["share_of_acoustic"] > 0
