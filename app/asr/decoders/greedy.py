"""Greedy CTC and Viterbi ASG decoding on `[T, V]` float32 emissions.

Both greedy decoders return frame-level information as well as labels, so word timings and
confidences come from the same alignment the transcript came from.
"""

from __future__ import annotations

import numpy as np


def greedy_ctc(emissions: np.ndarray, blank: int) -> list[int]:
    """Argmax per frame, merge repeats, drop blanks. `emissions` `[T, V]`."""
    return [tok for tok, _ in ctc_segments(np.asarray(emissions).argmax(axis=1), blank)]


def ctc_segments(path: np.ndarray, blank: int) -> list[tuple[int, tuple[int, int]]]:
    """Merged labels of a frame path with the frames `(start, end)` (end exclusive) each occupied."""
    out: list[tuple[int, tuple[int, int]]] = []
    prev = -1
    for t, tok in enumerate(path.tolist()):
        if tok != prev and tok != blank:
            out.append((tok, (t, t + 1)))
        elif tok == prev and tok != blank and out:
            out[-1] = (tok, (out[-1][1][0], t + 1))
        prev = tok
    return out


def viterbi_asg(emissions: np.ndarray, transitions: np.ndarray) -> tuple[list[int], float]:
    """Best frame path over the fully connected ASG graph and its score.

    `transitions[next, prev]` scores entering `next` from `prev`; a path scores the sum of its
    emissions and of the transitions between consecutive frames. Returns the frame-level path
    (merge repeats and expand repetition labels afterwards, see `asg_segments`).
    """
    emissions = np.asarray(emissions, dtype=np.float32)
    frames, vocab = emissions.shape
    if frames == 0:
        return [], 0.0
    transitions = np.asarray(transitions, dtype=np.float32)
    back = np.empty((frames, vocab), dtype=np.int32)
    alpha = emissions[0].copy()
    for t in range(1, frames):
        cand = alpha[None, :] + transitions  # [next, prev]
        back[t] = cand.argmax(axis=1)
        alpha = cand[np.arange(vocab), back[t]] + emissions[t]
    last = int(alpha.argmax())
    path = [last]
    for t in range(frames - 1, 0, -1):
        last = int(back[t, last])
        path.append(last)
    path.reverse()
    return path, float(alpha.max())


def asg_segments(path: list[int] | np.ndarray) -> list[tuple[int, tuple[int, int]]]:
    """Merged labels of an ASG frame path with the frames each occupied (no blank)."""
    return ctc_segments(np.asarray(path), blank=-1)
