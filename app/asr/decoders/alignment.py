"""Forced alignment: where each label of a known labelling sits in the frames (Viterbi).

The beam search merges paths, so it does not carry one alignment per hypothesis; the
n-best it returns are aligned afterwards, which is exact (the best alignment of that
labelling) and costs one pass over the frames per hypothesis, O(T x labels) in NumPy.
Frames are half-open: label i occupies frames [start, end).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Frames = tuple[tuple[int, int], ...]


def align_ctc(emissions: np.ndarray, blank: int, labels: Sequence[int]) -> Frames:
    """Best CTC alignment of `labels` (no blanks, repeats merged) to `emissions` [T, V]."""
    num_frames = emissions.shape[0]
    n = len(labels)
    if n == 0 or num_frames == 0:
        return ()
    states = np.full(2 * n + 1, blank, dtype=np.int64)  # [S] blank l1 blank l2 ... blank
    states[1::2] = labels
    size = 2 * n + 1
    no_skip = np.ones(size, dtype=bool)  # a label may not be entered from s-2 across a blank
    no_skip[3::2] = states[3::2] == states[1:-2:2]  # ... when both sides carry the same label
    alpha = np.full(size, -np.inf)
    alpha[:2] = emissions[0, states[:2]]
    back = np.zeros((num_frames, size), dtype=np.int8)  # 0 stay, 1 from s-1, 2 from s-2 (no [T, S] floats)
    from1 = np.full(size, -np.inf)
    from2 = np.full(size, -np.inf)
    best = np.empty(size)
    for t in range(1, num_frames):
        from1[1:] = alpha[:-1]
        from2[2:] = alpha[:-2]
        from2[no_skip] = -np.inf
        row = back[t]
        np.greater(from1, alpha, out=row, casting="unsafe")
        np.maximum(alpha, from1, out=best)
        row[from2 > best] = 2
        np.maximum(best, from2, out=alpha)
        alpha += emissions[t, states]
    state = 2 * n if alpha[2 * n] >= alpha[2 * n - 1] else 2 * n - 1
    if alpha[state] == -np.inf:
        raise ValueError(f"{n} labels cannot be aligned to {num_frames} frames")
    path = np.empty(num_frames, dtype=np.int64)
    for t in range(num_frames - 1, -1, -1):
        path[t] = state
        state -= int(back[t, state])
    return _spans(path, n, odd=True)


def align_asg(emissions: np.ndarray, transitions: np.ndarray, labels: Sequence[int]) -> Frames:
    """Best ASG alignment of `labels` (repeats merged) to `emissions` [T, V], with
    `transitions[next, prev]`; every frame belongs to some label."""
    num_frames = emissions.shape[0]
    n = len(labels)
    if n == 0 or num_frames == 0:
        return ()
    lab = np.asarray(labels, dtype=np.int64)
    stay = transitions[lab, lab]  # [N]
    move = np.concatenate(([-np.inf], transitions[lab[1:], lab[:-1]]))  # [N] from label j-1
    alpha = np.full(n, -np.inf)
    alpha[0] = emissions[0, lab[0]]
    back = np.zeros((num_frames, n), dtype=bool)  # True: came from j-1
    for t in range(1, num_frames):
        stayed = alpha + stay
        moved = np.concatenate(([-np.inf], alpha[:-1])) + move
        back[t] = moved > stayed
        alpha = np.maximum(stayed, moved) + emissions[t, lab]
    if alpha[n - 1] == -np.inf:
        raise ValueError(f"{n} labels cannot be aligned to {num_frames} frames")
    path = np.empty(num_frames, dtype=np.int64)
    state = n - 1
    for t in range(num_frames - 1, -1, -1):
        path[t] = state
        state -= int(back[t, state])
    return _spans(path, n, odd=False)


def _spans(path: np.ndarray, n: int, *, odd: bool) -> Frames:
    """Per label, the first and one-past-last frame of its state in the monotone `path` [T]."""
    own = np.flatnonzero(path % 2 == 1) if odd else np.arange(len(path))
    label_of = (path[own] - 1) // 2 if odd else path  # non-decreasing
    wanted = np.arange(n)
    starts = own[np.searchsorted(label_of, wanted, side="left")]
    ends = own[np.searchsorted(label_of, wanted, side="right") - 1] + 1
    return tuple(zip(starts.tolist(), ends.tolist(), strict=True))


def word_spans(labels: Sequence[int], frames: Sequence[tuple[int, int]], separator: int | None) -> Frames:
    """Frames [start, end) of each separator-delimited run of labels."""
    spans: list[tuple[int, int]] = []
    in_word = False
    for label, (first, end) in zip(labels, frames, strict=True):
        if label == separator:
            in_word = False
        elif in_word:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((first, end))
            in_word = True
    return tuple(spans)
