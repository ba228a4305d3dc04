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
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

if TYPE_CHECKING:
    from models.train.punctuation import BatchConfig, Labelled

Batch = tuple[Tensor, Tensor, Tensor, Tensor]  # words, suffixes, cases, marks: each [B, T] int64


def autocast(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast on CUDA (the matrix products in bf16, losses and norms in fp32; no loss
    scaling needed, bf16 has fp32's range); nothing on the CPU, so CPU results stay as they were."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class BatchStream(IterableDataset[Batch]):
    """Endless batches of one worker: its own `Batcher` seeded `seed + 1 + worker id`."""

    def __init__(self, sources: dict[str, Labelled], weights: dict[str, float], config: BatchConfig, *, seed: int) -> None:
        self.sources, self.weights, self.config, self.seed = sources, weights, config, seed

    def __iter__(self) -> Iterator[Batch]:
        from models.train.punctuation import Batcher

        torch.set_num_threads(1)
        info = get_worker_info()
        batcher = Batcher(self.sources, self.weights, self.config, seed=self.seed + 1 + (info.id if info is not None else 0))
        while True:
            words, suffixes, cases, marks = (torch.from_numpy(a) for a in batcher.batch())
            yield words, suffixes, cases, marks


def batches(sources: dict[str, Labelled], weights: dict[str, float], config: BatchConfig, *, seed: int, workers: int,
            device: torch.device) -> Iterator[Batch]:
    """Training batches on `device`. `workers=0`: one `Batcher` seeded `seed`, in this process
    (the recipe's CPU behaviour, batch for batch); more: that many worker processes."""
    if workers <= 0:
        from models.train.punctuation import Batcher

        batcher = Batcher(sources, weights, config, seed=seed)
        while True:
            words, suffixes, cases, marks = (torch.from_numpy(a).to(device) for a in batcher.batch())
            yield words, suffixes, cases, marks
    loader = DataLoader(BatchStream(sources, weights, config, seed=seed), batch_size=None, num_workers=workers,
                        pin_memory=device.type == "cuda", prefetch_factor=4, persistent_workers=True)
    for batch in loader:
        words, suffixes, cases, marks = (t.to(device, non_blocking=True) for t in batch)
        yield words, suffixes, cases, marks
