"""Greedy CTC and Viterbi ASG against brute-force enumeration on tiny random inputs."""

import itertools

import numpy as np
import pytest

from app.asr.decoders import asg_segments, greedy_ctc, viterbi_asg


@pytest.mark.parametrize("seed", range(10))
def test_viterbi_asg_is_the_best_path(seed: int) -> None:
    rng = np.random.default_rng(seed)
    frames, vocab = rng.integers(1, 6), rng.integers(2, 5)
    emissions = rng.standard_normal((frames, vocab)).astype(np.float32)
    transitions = rng.standard_normal((vocab, vocab)).astype(np.float32)
    best_score, best_path = -np.inf, None
    for path in itertools.product(range(vocab), repeat=frames):
        score = emissions[0, path[0]] + sum(emissions[t, path[t]] + transitions[path[t], path[t - 1]] for t in range(1, frames))
        if score > best_score:
            best_score, best_path = score, list(path)
    path, score = viterbi_asg(emissions, transitions)
    assert path == best_path
    assert score == pytest.approx(float(best_score), abs=1e-4)


def test_asg_transitions_are_next_prev() -> None:
    """transitions[next, prev]: a large score for entering 1 from 0 must pull the path 0 -> 1."""
    emissions = np.zeros((2, 2), np.float32)
    transitions = np.zeros((2, 2), np.float32)
    transitions[1, 0] = 5.0
    path, score = viterbi_asg(emissions, transitions)
    assert path == [0, 1] and score == pytest.approx(5.0)


@pytest.mark.parametrize("seed", range(10))
def test_greedy_ctc_matches_brute_force_best_path(seed: int) -> None:
    rng = np.random.default_rng(seed)
    frames, vocab, blank = rng.integers(1, 6), 3, 0
    emissions = rng.standard_normal((frames, vocab)).astype(np.float32)
    best = max(itertools.product(range(vocab), repeat=frames), key=lambda p: sum(emissions[t, p[t]] for t in range(frames)))
    merged = [tok for i, tok in enumerate(best) if (i == 0 or tok != best[i - 1]) and tok != blank]
    assert greedy_ctc(emissions, blank) == merged


def test_segments_carry_frames() -> None:
    assert asg_segments([3, 3, 1, 1, 1, 3]) == [(3, (0, 2)), (1, (2, 5)), (3, (5, 6))]
    assert greedy_ctc(np.zeros((0, 3), np.float32), 0) == []
    assert viterbi_asg(np.zeros((0, 3), np.float32), np.zeros((3, 3), np.float32)) == ([], 0.0)
