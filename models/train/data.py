"""Audio manifests held in memory for training: one int16 array per clip, length buckets.

The corpus is a few GB of 16 kHz audio at most, so holding it as int16 in RAM makes every
epoch free of decoding; batches are drawn from length-sorted buckets so padding stays small.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from tqdm import tqdm


@dataclass
class Clip:
    audio: np.ndarray  # int16 [N] at the training rate
    text: str
    speaker: str


def read_manifest(path: Path) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for row in rows:
        audio = Path(row["audio"])
        if not audio.is_absolute():
            row["audio"] = str(path.parent / audio)
    return rows


def load_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """float32 mono at `sample_rate`."""
    wave, rate = sf.read(str(path), dtype="float32", always_2d=True)
    wave = wave.mean(axis=1)
    if rate != sample_rate:
        wave = soxr.resample(wave, rate, sample_rate, quality="HQ").astype(np.float32)
    return wave


def load_clips(paths: list[Path], *, sample_rate: int = 16000, max_seconds: float = 20.0, limit: int | None = None) -> list[Clip]:
    rows = [row for path in paths for row in read_manifest(path)]
    if limit is not None:
        rows = rows[:limit]
    clips = []
    for row in tqdm(rows, desc="loading audio", mininterval=5):
        wave = load_audio(row["audio"], sample_rate)
        if 0 < len(wave) <= max_seconds * sample_rate and row["text"].strip():
            clips.append(Clip(np.clip(wave * 32767, -32768, 32767).astype(np.int16), row["text"], row.get("speaker", "")))
    return clips


def length_batches(lengths: list[int], *, max_samples: int, rng: np.random.Generator, max_batch: int = 64) -> Iterator[list[int]]:
    """Endless batches of clip indices with at most `max_samples` padded samples per batch."""
    order = np.argsort(lengths)
    while True:
        batches, current = [], []
        for idx in order:
            longest = lengths[idx]  # ascending: the newest is the longest
            if current and (longest * (len(current) + 1) > max_samples or len(current) >= max_batch):
                batches.append(current)
                current = []
            current.append(int(idx))
        if current:
            batches.append(current)
        for b in rng.permutation(len(batches)):
            yield batches[b]
