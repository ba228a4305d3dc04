"""Scoring the punctuation tagger: F1 per mark, casing accuracy, and the calibration of mark offsets.

Used by the recipe (`models.train.punctuation`: development F1 while training, `calibrate`) and
by `export.punctuation_eval` (the held-out figures).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.asr.punctuation_text import MARKS
from models.train.punctuation_data import Labelled, load_source


# --- evaluation --------------------------------------------------------------------------------
@dataclass
class Scores:
    """Per-mark precision/recall/F1 and casing accuracy over word slots."""

    f1: dict[str, float]
    precision: dict[str, float]
    recall: dict[str, float]
    case_accuracy: float
    words: int

    def line(self) -> str:
        marks = " ".join(f"{MARKS[m]} {self.f1[MARKS[m]]:.3f}" for m in range(1, len(MARKS)))
        return f"F1 {marks} | case {self.case_accuracy:.4f} | {self.words} words"


def score(predicted_marks: np.ndarray, true_marks: np.ndarray, predicted_cases: np.ndarray, true_cases: np.ndarray) -> Scores:
    f1, precision, recall = {}, {}, {}
    for m in range(1, len(MARKS)):
        tp = int(((predicted_marks == m) & (true_marks == m)).sum())
        p = tp / max(int((predicted_marks == m).sum()), 1)
        r = tp / max(int((true_marks == m).sum()), 1)
        precision[MARKS[m]], recall[MARKS[m]] = round(p, 4), round(r, 4)
        f1[MARKS[m]] = round(2 * p * r / (p + r), 4) if p + r else 0.0
    accuracy = float((predicted_cases == true_cases).mean()) if len(true_cases) else 0.0
    return Scores(f1, precision, recall, round(accuracy, 4), int(len(true_cases)))


def clean_windows(source: Labelled, *, length: int, max_words: int) -> np.ndarray:
    """Consecutive windows of about `length` words starting at sentence starts -> `[4, N]` with window ids in a 5th row."""
    starts = source.starts()
    chosen, position = [], 0
    for s in starts:
        if s >= position:
            chosen.append(int(s))
            position = s + length
        if position >= max_words:
            break
    return np.array(chosen, np.int64)


def evaluate(model: Any, source: Labelled, *, length: int = 96, max_words: int = 50_000) -> Scores:
    """Clean (error-free) windows from `source` through the torch model (on its own device), one window at a time."""
    import torch

    starts = clean_windows(source, length=length, max_words=max_words)
    device = next(model.parameters()).device
    predicted_marks, predicted_cases, true_marks, true_cases = [], [], [], []
    model.eval()
    with torch.no_grad():
        for s in starts:
            window = slice(int(s), int(s) + length)
            words = torch.from_numpy(source.words[window].astype(np.int64))[None].to(device)
            suffixes = torch.from_numpy(source.suffixes[window].astype(np.int64))[None].to(device)
            case_logits, mark_logits = model(words, suffixes)
            predicted_cases.append(case_logits[0].argmax(-1).cpu().numpy())
            predicted_marks.append(mark_logits[0].argmax(-1).cpu().numpy())
            true_cases.append(source.cases[window])
            true_marks.append(source.marks[window])
    model.train()
    return score(np.concatenate(predicted_marks), np.concatenate(true_marks), np.concatenate(predicted_cases), np.concatenate(true_cases))


def dev_logits(model: Any, source: Labelled, *, length: int = 96, max_words: int = 60_000) -> tuple[np.ndarray, np.ndarray]:
    """Mark logits `[N, M]` of clean windows of `source` and the true marks `[N]`."""
    import torch

    logits, marks = [], []
    model.eval()
    with torch.no_grad():
        for s in clean_windows(source, length=length, max_words=max_words):
            window = slice(int(s), int(s) + length)
            _, mark_logits = model(torch.from_numpy(source.words[window].astype(np.int64))[None],
                                   torch.from_numpy(source.suffixes[window].astype(np.int64))[None])
            logits.append(mark_logits[0].numpy())
            marks.append(source.marks[window])
    return np.concatenate(logits), np.concatenate(marks)


def tune_mark_biases(logits: np.ndarray, marks: np.ndarray, *, grid: np.ndarray | None = None, rounds: int = 3) -> np.ndarray:
    """Per-mark offsets added to the mark logits that maximise the mean F1 of the comma, period and
    question mark (plus a tenth of the exclamation mark's) on development data: coordinate ascent."""
    grid = np.arange(-2.0, 3.01, 0.25) if grid is None else grid
    weights = np.array([0.0, 1.0, 1.0, 1.0, 0.1])

    def objective(bias: np.ndarray) -> float:
        predicted = (logits + bias).argmax(-1)
        f1 = score(predicted, marks, np.zeros(1), np.zeros(1)).f1
        return float(sum(weights[m] * f1[MARKS[m]] for m in range(1, len(MARKS))))

    bias = np.zeros(logits.shape[1])
    best = objective(bias)
    for _ in range(rounds):
        for m in range(1, logits.shape[1]):
            for value in grid:
                trial = bias.copy()
                trial[m] = value
                result = objective(trial)
                if result > best + 1e-6:
                    best, bias = result, trial
    return bias


def calibrate(checkpoint: Path, prepared: Path, *, max_words: int = 60_000) -> dict[str, Any]:
    """Tune the mark offsets on the development set and fold them into the mark head's bias (in place)."""
    import torch

    from models.punctuation import load_checkpoint

    model, saved = load_checkpoint(checkpoint)
    dev = load_source(prepared, "dev")
    logits, marks = dev_logits(model, dev, max_words=max_words)
    before = score(logits.argmax(-1), marks, np.zeros(1), np.zeros(1)).f1
    bias = tune_mark_biases(logits, marks)
    after = score((logits + bias).argmax(-1), marks, np.zeros(1), np.zeros(1)).f1
    with torch.no_grad():
        model.mark_head.bias += torch.from_numpy(bias.astype(np.float32))
    saved["model"] = model.state_dict()
    saved["mark_offsets"] = {MARKS[m]: float(bias[m]) for m in range(len(MARKS))}
    saved["calibration"] = {"dev_words": int(len(marks)), "f1_before": before, "f1_after": after}
    torch.save(saved, checkpoint)
    return {"offsets": saved["mark_offsets"], "before": before, "after": after}
