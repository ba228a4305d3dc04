"""Array helpers the server, export and training share (NumPy only)."""

from __future__ import annotations

import numpy as np


def log_softmax(x: np.ndarray, *, axis: int = -1) -> np.ndarray:
    """Log-probabilities over `axis` (the vocabulary: emissions `[T, V]`, LM logits `[B, T, V]`), shape kept."""
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
