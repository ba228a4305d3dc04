"""Partial texts: the best path extended chunk by chunk equals the whole-utterance greedy reading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.asr.bundle import load_bundles
from app.asr.partial import BestPath
from app.asr.recognizer import greedy_segments


@pytest.mark.parametrize("model", ["tiny-asg", "tiny-ctc"])
@pytest.mark.parametrize("chunk", [1, 3, 8, 100])
def test_extended_path_equals_the_whole_utterance_path(models_dir: Path, model: str, chunk: int) -> None:
    bundle = load_bundles(models_dir, threads=1).acoustic[model]
    rng = np.random.default_rng(chunk)
    emissions = (rng.standard_normal((157, len(bundle.manifest.tokens))) * 3).astype(np.float32)
    path = BestPath(bundle)
    for start in range(0, len(emissions), chunk):
        path.extend(emissions[start : start + chunk])
        whole, _ = greedy_segments(emissions[: start + chunk], bundle)
        assert path.tokens() == [token for token, _ in whole]
    path.reset()
    assert path.tokens() == []
