"""Audio manifests held in memory for training: one int16 array per clip, length buckets.

The corpus is a few GB of 16 kHz audio at most, so holding it as int16 in RAM makes every
epoch free of decoding; batches are drawn from length-sorted buckets so padding stays small.
On a GPU the waveform augmentation, not the model, is the slow part, so
:func:`batch_stream` runs it in data-loader worker processes (forked, so the clips are
shared copy-on-write) and the training loop only pads and uploads.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch
from tqdm import tqdm

from models.train.manifest import read_manifest


@dataclass
class Clip:
    audio: np.ndarray  # int16 [N] at the training rate
    text: str
    speaker: str


def load_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """float32 mono at `sample_rate`."""
    wave, rate = sf.read(str(path), dtype="float32", always_2d=True)
    wave = wave.mean(axis=1)
    if rate != sample_rate:
        wave = soxr.resample(wave, rate, sample_rate, quality="HQ").astype(np.float32)
    return wave


def _load_row(job: tuple[dict[str, str], int, float]) -> Clip | None:
    row, sample_rate, max_seconds = job
    wave = load_audio(row["audio"], sample_rate)
    if 0 < len(wave) <= max_seconds * sample_rate and row["text"].strip():
        return Clip(np.clip(wave * 32767, -32768, 32767).astype(np.int16), row["text"], row.get("speaker", ""))
    return None


def load_clips(
    paths: list[Path], *, sample_rate: int = 16000, max_seconds: float = 20.0, limit: int | None = None, workers: int = 1
) -> list[Clip]:
    """Decode every clip of the manifests (in `workers` processes: 100 h of FLAC takes a core ten minutes)."""
    rows = [row for path in paths for row in read_manifest(path)]
    if limit is not None:
        rows = rows[:limit]
    # A manifest listed several times (to weight a source) is decoded once: its clips share arrays.
    unique = list(dict.fromkeys((row["audio"], row["text"]) for row in rows))
    by_key = {(row["audio"], row["text"]): row for row in rows}
    jobs = [(by_key[key], sample_rate, max_seconds) for key in unique]
    if workers <= 1:
        loaded = [_load_row(job) for job in tqdm(jobs, desc="loading audio", mininterval=5)]
    else:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            loaded = list(tqdm(pool.imap(_load_row, jobs, chunksize=64), total=len(jobs), desc="loading audio", mininterval=5))
    clips = dict(zip(unique, loaded, strict=True))
    return [clip for clip in (clips[(row["audio"], row["text"])] for row in rows) if clip is not None]


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


class _AugmentedBatches(torch.utils.data.IterableDataset):
    """Endless (clip indices, float32 waveforms) batches; each worker draws its own batches."""

    def __init__(self, clips: Sequence[Clip], *, max_samples: int, max_batch: int, augment: object | None, seed: int) -> None:
        self.clips, self.max_samples, self.max_batch, self.augment, self.seed = clips, max_samples, max_batch, augment, seed

    def __iter__(self) -> Iterator[tuple[list[int], list[np.ndarray]]]:
        from models.train.augment import Augmenter

        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info is not None else 0])
        augmenter = Augmenter(self.augment) if self.augment is not None else None  # type: ignore[arg-type]
        lengths = [len(c.audio) for c in self.clips]
        for idx in length_batches(lengths, max_samples=self.max_samples, rng=rng, max_batch=self.max_batch):
            waves = [self.clips[i].audio.astype(np.float32) / 32768 for i in idx]
            if augmenter is not None:
                waves = [augmenter(w, rng) for w in waves]
            yield idx, waves


def batch_stream(
    clips: Sequence[Clip], *, batch_seconds: float, max_batch: int = 64, augment: object | None = None, seed: int = 0, workers: int = 0
) -> Iterator[tuple[list[int], list[np.ndarray]]]:
    """Endless training batches, augmented with `augment` (an `AugmentConfig`, or None for clean audio).

    With `workers` > 0 the batches come from that many loader processes; the order then
    depends on their timing, which training does not care about."""
    dataset = _AugmentedBatches(clips, max_samples=int(batch_seconds * 16000), max_batch=max_batch, augment=augment, seed=seed)
    if workers <= 0:
        yield from dataset
        return
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=workers, prefetch_factor=4, persistent_workers=True)
    for idx, waves in loader:
        yield [int(i) for i in idx], [np.asarray(w, dtype=np.float32) for w in waves]
