"""Running the punctuation recipe on a GPU: the device choice, bf16 autocast, and batches made by
worker processes.

On the project's two CPU cores the model is the bottleneck and `train` makes each batch in
its own process between steps (`workers=0`, the recipe's behaviour since the start). On a lent
GPU the model takes a few milliseconds per batch while `Batcher.batch` (recognition errors
injected word by word in Python) takes a tenth of a second or more, so there batches come from
`workers` processes, each with its own `Batcher` and seed, `workers` batches at a time ahead of
the GPU. The batches then differ from those of `workers=0` (other seeds), which is why the
in-process path stays the default.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset, get_worker_info


class Batches(Protocol):
    """What draws batches (`models.train.punctuation.Batcher`): words, suffixes, cases, marks, each `[B, T]`."""

    def batch(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]: ...


MakeBatcher = Callable[..., Batches]  # called with `seed=`; picklable (a functools.partial of the class) for worker processes

Batch = tuple[Tensor, Tensor, Tensor, Tensor]  # words, suffixes, cases, marks: each [B, T] int64


def autocast(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast on CUDA (the matrix products in bf16, losses and norms in fp32; no loss
    scaling needed, bf16 has fp32's range); nothing on the CPU, so CPU results stay as they were."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class BatchStream(IterableDataset[Batch]):
    """Endless batches of one worker: its own `Batcher` seeded `seed + 1 + worker id`."""

    def __init__(self, make_batcher: MakeBatcher, *, seed: int) -> None:
        self.make_batcher, self.seed = make_batcher, seed

    def __iter__(self) -> Iterator[Batch]:
        torch.set_num_threads(1)
        info = get_worker_info()
        batcher = self.make_batcher(seed=self.seed + 1 + (info.id if info is not None else 0))
        while True:
            words, suffixes, cases, marks = (torch.from_numpy(a) for a in batcher.batch())
            yield words, suffixes, cases, marks


def batches(make_batcher: MakeBatcher, *, seed: int, workers: int, device: torch.device) -> Iterator[Batch]:
    """Training batches on `device`. `workers=0`: one `Batcher` seeded `seed`, in this process
    (the recipe's CPU behaviour, batch for batch); more: that many worker processes."""
    if workers <= 0:
        batcher = make_batcher(seed=seed)
        while True:
            words, suffixes, cases, marks = (torch.from_numpy(a).to(device) for a in batcher.batch())
            yield words, suffixes, cases, marks
    loader = DataLoader(BatchStream(make_batcher, seed=seed), batch_size=None, num_workers=workers,
                        pin_memory=device.type == "cuda", prefetch_factor=4, persistent_workers=True)
    for batch in loader:
        words, suffixes, cases, marks = (t.to(device, non_blocking=True) for t in batch)
        yield words, suffixes, cases, marks
