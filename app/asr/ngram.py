"""A backoff n-gram language model read from an ARPA file (pure Python, no KenLM).

The beam search asks the model one question, many times: "how likely is word w after
state s, and what is the state after it?" (`score_word`). The tables are plain dicts keyed
by tuples of word ids, so a query is a few dict look-ups; answers are memoised because
the hypotheses of a beam share their histories.

Scores come out in natural log (ARPA files hold log10), the unit of the acoustic scores
they are added to.

A state is the tuple of the last words (as ids), at most `order - 1` of them, cut to the
longest suffix the model still has as a context. Cutting is exact (a context the model
does not know backs off with weight 1) and lets hypotheses with different distant pasts
share one state.
"""

from __future__ import annotations

import gzip
import io
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

LN10 = math.log(10.0)
BOS = "<s>"
EOS = "</s>"
UNK = "<unk>"
# What a word outside the vocabulary scores when the model has no <unk> (KenLM's -100 in log10).
MISSING_UNK_LOGPROB = -100.0 * LN10
_CACHE_LIMIT = 200_000

State = tuple[int, ...]


class LmScore(NamedTuple):
    """A word's natural-log probability and the state after it."""

    logprob: float
    state: State


class ArpaError(ValueError):
    """The ARPA file is malformed."""


class NgramLM:
    """Backoff n-gram model: `probs[k]` maps (k+1)-tuples of ids to ln p, `backoffs[k]` maps
    (k+1)-tuples to ln backoff weight for every n-gram that is a context (weight 0 when the
    file gives none). Unigram probabilities live in a list indexed by word id."""

    def __init__(
        self,
        *,
        vocab: Sequence[str],
        unigram: Sequence[float],
        probs: Sequence[dict[tuple[int, ...], float]],
        backoffs: Sequence[dict[tuple[int, ...], float]],
    ) -> None:
        self.vocab: tuple[str, ...] = tuple(vocab)
        self.order = len(probs)
        self._index = {w: i for i, w in enumerate(self.vocab)}
        self._unigram = list(unigram)
        self._probs = list(probs)
        self._backoffs = list(backoffs)
        self.bos_id = self._index.get(BOS, -1)
        self.eos_id = self._index.get(EOS, -1)
        self.unk_id = self._index.get(UNK, -1)
        if self.eos_id < 0:
            raise ArpaError("the model has no </s> unigram")
        self._cache: dict[tuple[State, int], LmScore] = {}
        self.path: Path | None = None  # the ARPA file it was read from: the fast beam engine reads it with KenLM

    # -- loading -----------------------------------------------------------------------

    @classmethod
    def from_arpa(cls, path: str | Path) -> NgramLM:
        """Read an ARPA file (optionally gzipped). About a second per million n-grams."""
        path = Path(path)
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:  # type: ignore[operator]
            lm = cls._parse(f, str(path))
        lm.path = path
        return lm

    @classmethod
    def from_arpa_text(cls, text: str) -> NgramLM:
        return cls._parse(io.StringIO(text), "<text>")

    @classmethod
    def _parse(cls, f: io.TextIOBase | Iterator[str], name: str) -> NgramLM:
        lines = iter(f)
        counts: list[int] = []
        for line in lines:
            if line.strip() == "\\data\\":
                break
        else:
            raise ArpaError(f"{name}: no \\data\\ section")
        for line in lines:
            line = line.strip()
            if not line:
                if counts:
                    break
                continue
            if not line.startswith("ngram "):
                raise ArpaError(f"{name}: unexpected header line {line!r}")
            k, _, n = line[6:].partition("=")
            if int(k) != len(counts) + 1:
                raise ArpaError(f"{name}: n-gram counts out of order at {line!r}")
            counts.append(int(n))
        if not counts:
            raise ArpaError(f"{name}: the header lists no n-gram counts")
        order = len(counts)
        vocab: list[str] = []
        unigram: list[float] = []
        probs: list[dict[tuple[int, ...], float]] = [{} for _ in range(order)]
        backoffs: list[dict[tuple[int, ...], float]] = [{} for _ in range(order)]
        index: dict[str, int] = {}
        k = 0
        for line in lines:
            line = line.strip()
            if not line:
                continue
            if line.startswith("\\"):
                if line == "\\end\\":
                    break
                if not (line.endswith("-grams:") and line[1:-7].isdigit()):
                    raise ArpaError(f"{name}: unexpected section {line!r}")
                k = int(line[1:-7])
                if not 1 <= k <= order:
                    raise ArpaError(f"{name}: section {line!r} beyond the order {order}")
                continue
            if k == 0:
                raise ArpaError(f"{name}: n-gram line before any section: {line!r}")
            parts = line.split()
            if len(parts) not in (k + 1, k + 2):
                raise ArpaError(f"{name}: a {k}-gram line needs {k + 1} or {k + 2} fields: {line!r}")
            try:
                prob = float(parts[0]) * LN10
                backoff = float(parts[k + 1]) * LN10 if len(parts) == k + 2 else None
            except ValueError as e:
                raise ArpaError(f"{name}: bad number in {line!r}") from e
            if k == 1:
                word = parts[1]
                if word in index:
                    raise ArpaError(f"{name}: unigram {word!r} listed twice")
                index[word] = len(vocab)
                vocab.append(word)
                unigram.append(prob)
                key: tuple[int, ...] = (index[word],)
            else:
                try:
                    key = tuple(index[w] for w in parts[1 : k + 1])
                except KeyError as e:
                    raise ArpaError(f"{name}: {k}-gram {line!r} uses a word missing from the unigrams") from e
                probs[k - 1][key] = prob
                # A context must be known as one even when the file gives no backoff.
                backoffs[k - 2].setdefault(key[:-1], 0.0)
            if backoff is not None and backoff != 0.0:
                backoffs[k - 1][key] = backoff
            elif backoff is not None and k < order:
                backoffs[k - 1].setdefault(key, 0.0)
        for i, (want, got) in enumerate(zip(counts, [len(vocab)] + [len(p) for p in probs[1:]], strict=True)):
            if want != got:
                raise ArpaError(f"{name}: header says {want} {i + 1}-grams, the file has {got}")
        return cls(vocab=vocab, unigram=unigram, probs=probs, backoffs=backoffs)

    # -- queries -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.vocab)

    def __contains__(self, word: object) -> bool:
        return word in self._index

    def word_id(self, word: str) -> int:
        """The id of `word`, `<unk>`'s id for words outside the vocabulary (-1 without <unk>)."""
        return self._index.get(word, self.unk_id)

    def unigram_logprob(self, word_id: int) -> float:
        return MISSING_UNK_LOGPROB if word_id < 0 else self._unigram[word_id]

    def begin_state(self) -> State:
        """The state at the start of a sentence: just `<s>` (empty if the model lacks it)."""
        return (self.bos_id,) if self.bos_id >= 0 and self.order > 1 else ()

    def score_word(self, state: State, word: str) -> LmScore:
        return self.score_id(state, self.word_id(word))

    def end_score(self, state: State) -> float:
        """ln p(</s> | state): the cost of ending the sentence here."""
        return self.score_id(state, self.eos_id).logprob

    def score_id(self, state: State, word_id: int) -> LmScore:
        """ln p(word | state) by backing off, and the (cut) state after the word."""
        key = (state, word_id)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        if word_id < 0:
            result = LmScore(MISSING_UNK_LOGPROB, ())
        else:
            logprob = 0.0
            context = state
            probs, backoffs = self._probs, self._backoffs
            while context:
                p = probs[len(context)].get((*context, word_id))
                if p is not None:
                    logprob += p
                    break
                logprob += backoffs[len(context) - 1].get(context, 0.0)
                context = context[1:]
            else:
                logprob += self._unigram[word_id]
            # (context + word) is the longest suffix of history + word that the model holds.
            new_state = (*context, word_id)[-(self.order - 1) :] if self.order > 1 else ()
            while new_state and new_state not in backoffs[len(new_state) - 1]:
                new_state = new_state[1:]
            result = LmScore(logprob, new_state)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = result
        return result

    def logprob(self, history: Sequence[str], word: str) -> float:
        """ln p(word | history) by the textbook backoff recursion over the full history.

        An independent path from `score_id` (no states, no cache): tests compare the two.
        """
        ids = tuple(self.word_id(w) for w in history)[-(self.order - 1) :] if self.order > 1 else ()
        return self._recursive(ids, self.word_id(word))

    def _recursive(self, history: tuple[int, ...], word_id: int) -> float:
        if word_id < 0:
            return MISSING_UNK_LOGPROB
        if not history:
            return self._unigram[word_id]
        if -1 in history:
            return self._recursive(history[history.index(-1) + 1 :], word_id)
        p = self._probs[len(history)].get((*history, word_id))
        if p is not None:
            return p
        return self._backoffs[len(history) - 1].get(history, 0.0) + self._recursive(history[1:], word_id)

    def score_sentence(self, words: Sequence[str]) -> float:
        """ln p(<s> words </s>), summed word by word with `logprob`."""
        history = [BOS] if self.bos_id >= 0 else []
        total = 0.0
        for word in [*words, EOS]:
            total += self.logprob(history, word)
            history.append(word)
        return total
