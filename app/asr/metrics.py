"""Word and character error rates (Levenshtein distance over words or characters)."""

from __future__ import annotations

from collections.abc import Sequence


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def error_counts(ref: str, hyp: str) -> tuple[int, int, int, int]:
    """(word errors, reference words, char errors, reference chars)."""
    return (edit_distance(ref.split(), hyp.split()), len(ref.split()), edit_distance(list(ref), list(hyp)), len(ref))


def error_rates(pairs: Sequence[tuple[str, str]]) -> tuple[float, float]:
    """(WER %, CER %) over (reference, hypothesis) pairs, pooled over the whole set."""
    we = wn = ce = cn = 0
    for ref, hyp in pairs:
        a, b, c, d = error_counts(ref, hyp)
        we, wn, ce, cn = we + a, wn + b, ce + c, cn + d
    return 100.0 * we / max(wn, 1), 100.0 * ce / max(cn, 1)
