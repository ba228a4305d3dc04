"""Build a word n-gram model (ARPA) with interpolated modified Kneser-Ney, and its lexicon.

    python -m models.lm.build --text data/corpus/lm_train.txt --order 4 \
        --arpa out/lm.arpa --lexicon out/lexicon.txt [--vocab-size 20000] [--prune 1]

Offline only, but torch-free and fast enough for tens of millions of words: counting is
vectorised with NumPy (an n-gram is the row of its prefix (n-1)-gram times V plus its last
word, so every order is one `np.unique` over int64 keys).

The model follows Chen & Goodman's interpolated modified Kneser-Ney, as KenLM's `lmplz`
does: the highest order uses raw counts, lower orders use continuation counts (how many
distinct words precede the n-gram), except n-grams starting with `<s>`, which keep raw
counts since nothing can precede them. Three discounts per order come from the counts of
counts; a tiny corpus where they are undefined falls back to (0.5, 1.0, 1.5) per order, as
`lmplz --discount_fallback` does. Unigrams interpolate with the uniform distribution over
the vocabulary (`<unk>` and `</s>` included, `<s>` excluded).

Pruning (`--prune`) drops n-grams of order >= 3 whose adjusted count is at most the
threshold, keeping every n-gram that is a prefix or suffix of a kept longer one; the mass
of dropped n-grams moves to their context's backoff weight, which is recomputed so that
every context still sums to one.

Input: normalised text (see `app.asr.text.normalize_text`), one sentence per line.

Lexicon file (`--lexicon`): one line per vocabulary word, most frequent first,
`word<TAB>spelling` where the spelling is the word's letters separated by spaces and
followed by the word separator `|`, e.g. `hello\th e l l o |`. Letters are plain (no ASG
repetition labels): the decoder turns a spelling into token ids with its own token table.
"""

from __future__ import annotations

import argparse
import math
import sys
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.asr.ngram import BOS, EOS, UNK

FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)
MAX_ORDER = 6


@dataclass(frozen=True)
class BuildOptions:
    """What to build: order 2-6 (3-5 is the useful range), vocabulary size (words beyond
    the `vocab_size` most frequent become `<unk>`; None keeps all), and pruning thresholds
    per order (`prune[k-1]` for k-grams; orders 1 and 2 are never pruned). A single value
    applies to every order from 3 up."""

    order: int = 4
    vocab_size: int | None = 20000
    prune: tuple[int, ...] = ()
    discount_fallback: tuple[float, float, float] = FALLBACK_DISCOUNTS

    def __post_init__(self) -> None:
        if not 2 <= self.order <= MAX_ORDER:
            raise ValueError(f"order must be 2..{MAX_ORDER}, got {self.order}")
        if self.vocab_size is not None and self.vocab_size < 1:
            raise ValueError(f"vocab_size must be positive or None, got {self.vocab_size}")
        if any(p < 0 for p in self.prune):
            raise ValueError(f"prune thresholds must be >= 0, got {self.prune}")
        if len(self.prune) > 1:
            if len(self.prune) != self.order:
                raise ValueError(f"give one prune threshold, or one per order ({self.order}), got {self.prune}")
            if any(self.prune[:2]):
                raise ValueError(f"orders 1 and 2 cannot be pruned, got {self.prune}")
        d1, d2, d3 = self.discount_fallback
        if not (0 < d1 <= 1 and 0 < d2 <= 2 and 0 < d3 <= 3):
            raise ValueError(f"fallback discounts must lie in (0,1], (0,2], (0,3], got {self.discount_fallback}")

    def threshold(self, k: int) -> int:
        """The pruning threshold for k-grams (0 = keep all)."""
        if k < 3 or not self.prune:
            return 0
        return self.prune[0] if len(self.prune) == 1 else self.prune[k - 1]


@dataclass(frozen=True)
class BuildStats:
    sentences: int
    tokens: int
    vocab: tuple[str, ...]
    ngram_counts: tuple[int, ...]
    discounts: tuple[tuple[float, float, float], ...]
    fallback_orders: tuple[int, ...] = field(default=())


@dataclass
class _Order:
    """The k-grams of one order, rows sorted by (prefix row, last word)."""

    prefix: np.ndarray  # [R] row of the (k-1)-gram prefix (for k=1: unused)
    suffix: np.ndarray  # [R] row of the (k-1)-gram suffix
    last: np.ndarray  # [R] last word id
    raw: np.ndarray  # [R] raw count
    first: np.ndarray  # [R] first word id
    adjusted: np.ndarray | None = None
    kept: np.ndarray | None = None
    prob: np.ndarray | None = None  # [R] interpolated p(last | context)
    backoff: np.ndarray | None = None  # [R] backoff weight as a context (nan: not a context)


def kn_discounts(counts_of_counts: Sequence[int]) -> tuple[float, float, float] | None:
    """Chen & Goodman's discounts D1, D2, D3+ from t1..t4; None where they are undefined."""
    t1, t2, t3, t4 = (float(c) for c in counts_of_counts)
    if min(t1, t2, t3, t4) <= 0:
        return None
    y = t1 / (t1 + 2 * t2)
    d = (1 - 2 * y * t2 / t1, 2 - 3 * y * t3 / t2, 3 - 4 * y * t4 / t3)
    if not (0 < d[0] <= 1 and 0 < d[1] <= 2 and 0 < d[2] <= 3):
        return None
    return d


def count_words(lines: Iterable[str]) -> tuple[Counter[str], int]:
    counts: Counter[str] = Counter()
    sentences = 0
    for line in lines:
        words = line.split()
        if words:
            counts.update(words)
            sentences += 1
    return counts, sentences


def choose_vocab(counts: Counter[str], vocab_size: int | None) -> tuple[str, ...]:
    """Specials first (<unk>, <s>, </s>), then words by falling count, ties alphabetical."""
    words = sorted((w for w in counts if w not in (BOS, EOS, UNK)), key=lambda w: (-counts[w], w))
    if vocab_size is not None:
        words = words[:vocab_size]
    return (UNK, BOS, EOS, *words)


def encode_corpus(lines: Iterable[str], vocab: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Sentences to one flat id array `<s> w.. </s> <s> ...` [N] and their lengths [S]."""
    index = {w: i for i, w in enumerate(vocab)}
    unk, bos, eos = index[UNK], index[BOS], index[EOS]
    tokens = array("q")
    lengths = array("q")
    for line in lines:
        words = line.split()
        if not words:
            continue
        tokens.append(bos)
        tokens.extend([index.get(w, unk) for w in words])
        tokens.append(eos)
        lengths.append(len(words) + 2)
    return np.frombuffer(tokens, dtype=np.int64), np.frombuffer(lengths, dtype=np.int64)


def count_ngrams(tokens: np.ndarray, lengths: np.ndarray, *, order: int, vocab_size: int) -> list[_Order]:
    """Raw counts of every order; rows of order k are unique int64 keys prefix_row*V + word."""
    n = len(tokens)
    starts = np.cumsum(lengths) - lengths
    remaining = np.repeat(lengths, lengths) - (np.arange(n) - np.repeat(starts, lengths))  # [N] tokens left
    ids = np.arange(vocab_size)
    orders = [
        _Order(prefix=ids, suffix=ids, last=ids, raw=np.bincount(tokens, minlength=vocab_size), first=ids)
    ]
    row = tokens.copy()  # [N] row of the window starting at each position (order k)
    for k in range(2, order + 1):
        valid = np.flatnonzero(remaining >= k)
        keys = row[valid] * vocab_size + tokens[valid + k - 1]
        unique, inverse, raw = np.unique(keys, return_inverse=True, return_counts=True)
        prefix = unique // vocab_size
        suffix = np.empty(len(unique), dtype=np.int64)
        suffix[inverse] = row[valid + 1]
        next_row = np.full(n, -1, dtype=np.int64)
        next_row[valid] = inverse
        row = next_row
        prev = orders[-1]
        orders.append(
            _Order(prefix=prefix, suffix=suffix, last=unique % vocab_size, raw=raw, first=prev.first[prefix])
        )
    return orders


def _discount_vector(adjusted: np.ndarray, d: tuple[float, float, float]) -> np.ndarray:
    return np.select([adjusted == 0, adjusted == 1, adjusted == 2], [0.0, d[0], d[1]], d[2])


def estimate(orders: list[_Order], *, bos: int, options: BuildOptions) -> BuildStats:
    """Fill adjusted counts, pruning masks, probabilities and backoffs of every order."""
    top = len(orders)
    for k in range(top, 0, -1):
        o = orders[k - 1]
        if k == top:
            o.adjusted = o.raw
        else:
            continuation = np.bincount(orders[k].suffix, minlength=len(o.raw))
            o.adjusted = np.where(o.first == bos, o.raw, continuation)
        if k == 1:
            o.adjusted = o.adjusted.copy()
            o.adjusted[bos] = 0  # <s> is never predicted
    # Pruning, top-down so that prefixes and suffixes of kept n-grams stay.
    for k in range(top, 0, -1):
        o = orders[k - 1]
        assert o.adjusted is not None
        threshold = options.threshold(k)
        o.kept = o.adjusted > threshold if threshold else np.ones(len(o.raw), dtype=bool)
        if k < top:
            higher = orders[k]
            assert higher.kept is not None
            o.kept[higher.prefix[higher.kept]] = True
            o.kept[higher.suffix[higher.kept]] = True
    o1 = orders[0]
    o1.kept[bos] = True
    discounts: list[tuple[float, float, float]] = []
    fallback: list[int] = []
    for k, o in enumerate(orders, start=1):
        a = o.adjusted
        assert a is not None
        counts_of_counts = [int(np.count_nonzero(a == j)) for j in (1, 2, 3, 4)]
        d = kn_discounts(counts_of_counts)
        if d is None:
            d = options.discount_fallback
            fallback.append(k)
        discounts.append(d)
        discount = _discount_vector(a, d)
        if k == 1:
            total = float(a.sum())
            if total <= 0:
                raise ValueError("the corpus has no words")
            gamma = (d[0] * np.sum(a == 1) + d[1] * np.sum(a == 2) + d[2] * np.sum(a >= 3)) / total
            o.prob = (a - discount) / total + gamma / (len(a) - 1)
            o.prob[bos] = 0.0
            continue
        lower = orders[k - 2]
        assert lower.prob is not None and o.kept is not None
        m = len(lower.raw)
        total = np.bincount(o.prefix, weights=a, minlength=m)
        mass = np.bincount(o.prefix, weights=discount, minlength=m)  # D1*n1 + D2*n2 + D3*n3+
        safe_total = np.where(total > 0, total, 1.0)
        gamma = mass / safe_total
        o.prob = (a - discount) / safe_total[o.prefix] + gamma[o.prefix] * lower.prob[o.suffix]
        kept = o.kept
        kept_prefix = o.prefix[kept]
        has_extension = np.bincount(kept_prefix, minlength=m) > 0
        pruned_any = np.bincount(o.prefix[~kept], minlength=m) > 0
        numerator = 1.0 - np.bincount(kept_prefix, weights=o.prob[kept], minlength=m)
        denominator = 1.0 - np.bincount(kept_prefix, weights=lower.prob[o.suffix[kept]], minlength=m)
        renormalised = np.maximum(numerator, 1e-12) / np.maximum(denominator, 1e-12)
        lower.backoff = np.where(has_extension, np.where(pruned_any, renormalised, gamma), np.nan)
    return BuildStats(
        sentences=0,
        tokens=0,
        vocab=(),
        ngram_counts=tuple(int(np.count_nonzero(o.kept)) for o in orders),
        discounts=tuple(discounts),
        fallback_orders=tuple(fallback),
    )


def write_arpa(orders: list[_Order], vocab: Sequence[str], path: Path, *, bos: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        f.write("\\data\\\n")
        for k, o in enumerate(orders, start=1):
            f.write(f"ngram {k}={int(np.count_nonzero(o.kept))}\n")
        texts: list[str | None] = list(vocab)
        for k, o in enumerate(orders, start=1):
            assert o.kept is not None and o.prob is not None
            f.write(f"\n\\{k}-grams:\n")
            rows = np.flatnonzero(o.kept)
            with np.errstate(divide="ignore"):
                logprob = np.log10(o.prob)
                logbackoff = np.log10(o.backoff) if o.backoff is not None else None
            if k > 1:
                previous = texts
                texts = [None] * len(o.raw)
                for r, p, w in zip(rows.tolist(), o.prefix[rows].tolist(), o.last[rows].tolist(), strict=True):
                    texts[r] = f"{previous[p]} {vocab[w]}"
            lines = []
            bo_values = logbackoff[rows].tolist() if logbackoff is not None else [math.nan] * len(rows)
            for r, lp, bo in zip(rows.tolist(), logprob[rows].tolist(), bo_values, strict=True):
                if k == 1 and r == bos:
                    lp = -99.0
                tail = "" if math.isnan(bo) else f"\t{bo:.6f}"
                lines.append(f"{lp:.6f}\t{texts[r]}{tail}\n")
            f.writelines(lines)
        f.write("\n\\end\\\n")


def write_lexicon(words: Iterable[str], path: Path) -> int:
    """`word<TAB>l e t t e r s |` per word; returns the number of lines written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for word in words:
            if word in (BOS, EOS, UNK):
                continue
            f.write(f"{word}\t{' '.join(word)} |\n")
            n += 1
    return n


def build_lm(
    *, text: Path, arpa: Path, lexicon: Path | None = None, options: BuildOptions | None = None
) -> BuildStats:
    """Count, estimate and write the ARPA model (and the lexicon of its vocabulary)."""
    options = options or BuildOptions()
    with text.open(encoding="utf-8") as f:
        word_counts, _ = count_words(f)
    vocab = choose_vocab(word_counts, options.vocab_size)
    with text.open(encoding="utf-8") as f:
        tokens, lengths = encode_corpus(f, vocab)
    if len(lengths) == 0:
        raise ValueError(f"{text}: no sentences")
    bos = vocab.index(BOS)
    orders = count_ngrams(tokens, lengths, order=options.order, vocab_size=len(vocab))
    stats = estimate(orders, bos=bos, options=options)
    write_arpa(orders, vocab, arpa, bos=bos)
    if lexicon is not None:
        write_lexicon(vocab, lexicon)
    return BuildStats(
        sentences=len(lengths),
        tokens=int(lengths.sum() - 2 * len(lengths)),
        vocab=vocab,
        ngram_counts=stats.ngram_counts,
        discounts=stats.discounts,
        fallback_orders=stats.fallback_orders,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.lm.build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--text", type=Path, required=True, help="normalised text, one sentence per line")
    parser.add_argument("--order", type=int, default=4, help="n-gram order, 3-5 usual (default 4)")
    parser.add_argument("--arpa", type=Path, required=True, help="where to write the ARPA model")
    parser.add_argument("--lexicon", type=Path, help="where to write the lexicon (word<TAB>l e t t e r s |)")
    parser.add_argument("--vocab-size", type=int, default=20000, help="keep the N most frequent words (0: all)")
    parser.add_argument(
        "--prune",
        type=int,
        nargs="+",
        default=[],
        help="drop n-grams of order >= 3 with adjusted count <= T: one T for all, or one per order (KenLM style)",
    )
    args = parser.parse_args(argv)
    try:
        options = BuildOptions(order=args.order, vocab_size=args.vocab_size or None, prune=tuple(args.prune))
        stats = build_lm(text=args.text, arpa=args.arpa, lexicon=args.lexicon, options=options)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{stats.sentences} sentences, {stats.tokens} words, vocabulary {len(stats.vocab) - 3} (+<unk> <s> </s>)")
    for k, (n, d) in enumerate(zip(stats.ngram_counts, stats.discounts, strict=True), start=1):
        note = " (fallback)" if k in stats.fallback_orders else ""
        print(f"  {k}-grams: {n}, discounts {d[0]:.3f} {d[1]:.3f} {d[2]:.3f}{note}")
    print(f"wrote {args.arpa} ({args.arpa.stat().st_size / 1e6:.1f} MB)" + (f" and {args.lexicon}" if args.lexicon else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
