"""The greedy reading of an utterance, extended chunk by chunk: what a stream's partial results show.

`recognizer.greedy_segments` reads a whole utterance at once: the argmax path (CTC) or the
Viterbi path over the fully connected ASG graph. A stream asked that of its whole utterance at
every chunk, which made each chunk cost more the longer the utterance (the ASG Viterbi is a
Python loop over frames). `BestPath` carries the Viterbi state (`alpha`, back-pointers) from
chunk to chunk instead: extending it costs the new frames only, and reading the path is a
back-trace over integers. The path is the same one `viterbi_asg` finds (the same float32
operations in the same order), so partial texts do not change.
"""

from __future__ import annotations

import numpy as np

from app.asr.bundle import AcousticBundle
from app.asr.decoders.greedy import ctc_segments


class BestPath:
    """Best path of the frames seen so far (`extend`), as token ids (`tokens`); `reset` for a new utterance."""

    def __init__(self, bundle: AcousticBundle) -> None:
        manifest = bundle.manifest
        self.asg = manifest.criterion == "asg"
        self.transitions = np.asarray(bundle.transitions, dtype=np.float32) if self.asg else None
        self.blank = -1 if self.asg else manifest.tokens.blank_id
        self.reset()

    def reset(self) -> None:
        self.alpha: np.ndarray | None = None  # ASG: best score of a path ending in each token [V]
        self.back: list[np.ndarray] = []  # ASG: back-pointers of frames 1.. [V] each
        self.best: list[int] = []  # CTC: argmax of every frame

    def extend(self, emissions: np.ndarray) -> None:
        """Frames `[n, V]` after those already seen."""
        if self.transitions is None:
            self.best.extend(emissions.argmax(axis=1).tolist())
            return
        emissions = np.asarray(emissions, dtype=np.float32)
        rows = np.arange(emissions.shape[1])
        for row in emissions:
            if self.alpha is None:
                self.alpha = row.copy()
                continue
            cand = self.alpha[None, :] + self.transitions  # [next, prev]
            back = cand.argmax(axis=1)
            self.back.append(back)
            self.alpha = cand[rows, back] + row

    def path(self) -> list[int]:
        if self.transitions is None:
            return self.best
        if self.alpha is None:
            return []
        last = int(self.alpha.argmax())
        path = [last]
        for back in reversed(self.back):
            last = int(back[last])
            path.append(last)
        path.reverse()
        return path

    def tokens(self) -> list[int]:
        """Merged labels of the path (repeats merged, CTC blanks dropped)."""
        return [token for token, _ in ctc_segments(np.asarray(self.path(), dtype=np.int64), self.blank if self.blank is not None else -1)]
