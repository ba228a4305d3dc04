"""The punctuation recipe's pieces: recognition-error injection and mark calibration."""

from __future__ import annotations

import numpy as np

from app.asr.punctuation_text import CAPITAL, COMMA, LOWER, NO_MARK, PERIOD, QUESTION
from models.train.punctuation import Labelled, corrupt
from models.train.punctuation_scores import score, tune_mark_biases


def test_calibration_raises_f1_of_an_under_predicted_mark() -> None:
    rng = np.random.default_rng(0)
    marks = rng.choice(5, size=20_000, p=[0.85, 0.08, 0.05, 0.015, 0.005])
    logits = rng.normal(size=(20_000, 5))
    logits[np.arange(20_000), marks] += 2.0
    logits[:, QUESTION] -= 2.0  # the model is shy of question marks
    before = score(logits.argmax(-1), marks, np.zeros(1), np.zeros(1)).f1["?"]
    bias = tune_mark_biases(logits, marks)
    after = score((logits + bias).argmax(-1), marks, np.zeros(1), np.zeros(1)).f1["?"]
    assert bias[QUESTION] > 0 and after > before + 0.05


def test_corrupt_keeps_length_and_moves_marks_of_deleted_words() -> None:
    n = 40
    source = Labelled(np.arange(2, n + 2, dtype=np.int32), np.ones(n, np.int16), np.full(n, LOWER, np.int8), np.zeros(n, np.int8))
    source.marks[9::10] = PERIOD
    source.cases[10::10] = CAPITAL
    columns = [source.words, source.suffixes, source.cases, source.marks]
    clean = corrupt(columns, source, length=20, rate=0.0, rng=np.random.default_rng(0))
    assert clean.shape == (4, 20) and np.array_equal(clean[0], source.words[:20]) and np.array_equal(clean[3], source.marks[:20])
    noisy = corrupt(columns, source, length=20, rate=0.9, rng=np.random.default_rng(1))
    assert noisy.shape == (4, 20) and set(noisy[3].tolist()) <= {NO_MARK, COMMA, PERIOD}
