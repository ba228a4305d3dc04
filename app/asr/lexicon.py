"""The word-level structures of the beam search: the lexicon trie and the hotword graph.

A lexicon lists the words the decoder may output and their spellings. The search walks a
trie of the spellings (as token ids of the model's token table, so an ASG table's
repetition labels are part of the path: "hello" is h e l 1 o), which keeps every
hypothesis inside some word. Each trie node remembers the best unigram log-probability
below it: the search adds it while a word is unfinished (LM look-ahead, "smearing"), so
that hypotheses about to finish an unlikely word are pruned early instead of all at once
at the word's end.

Hotwords are phrases to favour (names, jargon). They form an Aho-Corasick graph over
words, in the spirit of the context graphs of k2/icefall/sherpa: see `HotwordGraph`.

Lexicon file format (written by `models.lm.build`, also wav2letter's): one entry per line,
`word<TAB>spelling`, the spelling being the word's letters separated by spaces, optionally
ending with the word separator `|`: `hello\th e l l o |`. A word may have several lines
(several spellings); the first line wins where two words share a spelling. A file whose
name ends in `.gz` is read through gzip (the shipped 100k-word lexicon is 2.6 MB plain, 0.9 MB
compressed).
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app.asr.ngram import NgramLM
from app.asr.text import normalize_text
from app.asr.tokens import TokenTable


class TrieNode:
    """One spelling prefix. `row` caches the search's per-token score deltas as one
    (settings, array) tuple, read and written whole so that concurrent searches are safe."""

    __slots__ = ("children", "word", "lm_id", "max_unigram", "hot_best", "row")

    def __init__(self) -> None:
        self.children: dict[int, TrieNode] = {}
        self.word: str | None = None  # the word spelled by the path to this node, if any
        self.lm_id = -1
        self.max_unigram = 0.0  # best ln p(w) of the words below (0 without an LM)
        self.hot_best = -math.inf  # best (lm_weight*ln p(w) + hotword credit) of hotwords below
        self.row: tuple[object, object] | None = None

    def copy(self) -> TrieNode:
        node = TrieNode()
        node.children = dict(self.children)
        node.word, node.lm_id, node.max_unigram = self.word, self.lm_id, self.max_unigram
        node.hot_best = self.hot_best
        return node


@dataclass(frozen=True)
class LexiconTrie:
    """The spellings of one lexicon in one token table, scored by one LM (or none)."""

    root: TrieNode
    skipped: tuple[str, ...]  # words whose spelling the token table cannot write
    lm: NgramLM | None


@dataclass(frozen=True, eq=False)
class Lexicon:
    """Words and their spellings (letters, without the trailing separator)."""

    entries: tuple[tuple[str, tuple[str, ...]], ...]
    _tries: dict[tuple[TokenTable, int], LexiconTrie] = field(default_factory=dict, repr=False)

    @classmethod
    def from_words(cls, words: Iterable[str]) -> Lexicon:
        """Each word spelled by its own letters."""
        return cls(tuple((w, tuple(w)) for w in words))

    @classmethod
    def from_file(cls, path: str | Path, *, word_separator: str = "|") -> Lexicon:
        entries: list[tuple[str, tuple[str, ...]]] = []
        opener = gzip.open if str(path).endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                parts = line.split()
                if not parts:
                    continue
                word, spelling = parts[0], parts[1:]
                if spelling and spelling[-1] == word_separator:
                    spelling = spelling[:-1]
                if not spelling:
                    raise ValueError(f"{path}:{number}: no spelling for {word!r} (want 'word<TAB>w o r d |')")
                entries.append((word, tuple(spelling)))
        return cls(tuple(entries))

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(w for w, _ in self.entries))

    def __len__(self) -> int:
        return len(self.entries)

    def trie(self, tokens: TokenTable, lm: NgramLM | None) -> LexiconTrie:
        """The trie for this token table and LM, built once (about 0.1 s per 10k words)."""
        key = (tokens, id(lm))
        cached = self._tries.get(key)
        if cached is not None and cached.lm is lm:
            return cached
        trie = _build_trie(self.entries, tokens, lm)
        self._tries[key] = trie
        return trie


def spell(word_letters: str, tokens: TokenTable) -> tuple[int, ...] | None:
    """Token ids of a spelling, or None when the table cannot write it. Without repetition
    labels (CTC) a double letter is simply two ids; with them, `TokenTable.encode` applies."""
    try:
        if tokens.repetition_labels:
            ids = tokens.encode(word_letters)
        else:
            index = tokens.index
            ids = [index[c] for c in word_letters]
    except (ValueError, KeyError):
        return None
    bad = {tokens.separator_id, tokens.blank_id}
    if not ids or any(i in bad for i in ids):
        return None
    return tuple(ids)


def _build_trie(entries: Sequence[tuple[str, tuple[str, ...]]], tokens: TokenTable, lm: NgramLM | None) -> LexiconTrie:
    root = TrieNode()
    skipped: list[str] = []
    for word, letters in entries:
        ids = spell("".join(letters), tokens)
        if ids is None:
            skipped.append(word)
            continue
        node = root
        for i in ids:
            child = node.children.get(i)
            if child is None:
                child = node.children[i] = TrieNode()
            node = child
        if node.word is None:
            node.word = word
            node.lm_id = lm.word_id(word) if lm is not None else -1
    if lm is not None:
        _fill_max_unigram(root, lm)
    return LexiconTrie(root=root, skipped=tuple(skipped), lm=lm)


def _fill_max_unigram(root: TrieNode, lm: NgramLM) -> None:
    order: list[TrieNode] = []
    stack = [root]
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(node.children.values())
    for node in reversed(order):  # children before parents
        best = lm.unigram_logprob(node.lm_id) if node.word is not None else -math.inf
        for child in node.children.values():
            best = max(best, child.max_unigram)
        node.max_unigram = best


def overlay_words(
    root: TrieNode,
    words: dict[str, float],
    *,
    tokens: TokenTable,
    lm: NgramLM | None,
    lm_weight: float,
) -> TrieNode:
    """A new root whose trie also holds `words` (word -> hotword credit earned from the
    graph's root), with their look-ahead. Only the nodes on their paths are copied: the
    shared trie is never modified, so concurrent searches may use it."""
    if not words:
        return root
    copies: dict[int, TrieNode] = {}

    def own(node: TrieNode) -> TrieNode:
        if id(node) in copies:
            return node
        new = node.copy()
        copies[id(new)] = new
        return new

    new_root = own(root)
    for word, credit in words.items():
        ids = spell(word, tokens)
        if ids is None:
            continue
        uni = lm.unigram_logprob(lm.word_id(word)) if lm is not None else 0.0
        value = lm_weight * uni + credit
        path = [new_root]
        for i in ids:
            parent = path[-1]
            child = parent.children.get(i)
            if child is None:
                child = TrieNode()
                child.max_unigram = -math.inf
                copies[id(child)] = child
            else:
                child = own(child)
            parent.children[i] = child
            path.append(child)
        end = path[-1]
        if end.word is None:
            end.word = word
            end.lm_id = lm.word_id(word) if lm is not None else -1
        for node in path[1:]:
            node.max_unigram = max(node.max_unigram, uni)
            node.hot_best = max(node.hot_best, value)
    return new_root


# -- hotwords -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hotword:
    """A phrase to favour and its boost: every matched word of the phrase adds `boost`
    (natural-log units, the scale of acoustic scores), so a complete k-word phrase earns
    k x boost. The text is normalised like transcripts."""

    text: str
    boost: float

    def __post_init__(self) -> None:
        text = normalize_text(self.text)
        if not text:
            raise ValueError(f"hotword {self.text!r} has no letters")
        if not math.isfinite(self.boost):
            raise ValueError(f"hotword {self.text!r}: boost must be a finite number, got {self.boost}")
        object.__setattr__(self, "text", text)


def parse_hotwords(items: Sequence[str], default_boost: float) -> list[Hotword]:
    """Request strings `"phrase"` or `"phrase:boost"` to hotwords; ValueError names the bad one."""
    if not math.isfinite(default_boost):
        raise ValueError(f"default hotword boost must be a finite number, got {default_boost}")
    hotwords: list[Hotword] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"hotword {item!r} is not a string")
        phrase, colon, boost_text = item.rpartition(":")
        if not colon:
            phrase, boost = item, default_boost
        else:
            try:
                boost = float(boost_text)
            except ValueError as e:
                raise ValueError(f"hotword {item!r}: boost {boost_text!r} is not a number (want 'phrase:2.5')") from e
            if not math.isfinite(boost):
                raise ValueError(f"hotword {item!r}: boost must be finite")
        if not normalize_text(phrase):
            raise ValueError(f"hotword {item!r} has no phrase (want 'phrase' or 'phrase:2.5')")
        hotwords.append(Hotword(phrase, boost))
    return hotwords


class HotNode:
    __slots__ = ("children", "fail", "credit", "is_end")

    def __init__(self, credit: float) -> None:
        self.children: dict[str, HotNode] = {}
        self.fail: HotNode | None = None
        self.credit = credit  # sum of the boosts of the words on the path from the root
        self.is_end = False


class HotwordGraph:
    """Aho-Corasick over hotword phrases, one word per arc.

    A hypothesis carries (node, banked, offset); its hotword score is
    `banked + node.credit - offset`. Matching the next word of a phrase earns its boost
    (provisionally); a word that leaves the phrase falls back along the failure links to the
    longest suffix that starts a phrase, withdrawing the credit of the abandoned part. A
    completed phrase banks its credit for good; matching then restarts from the root, or
    continues when a longer phrase extends the completed one. Where phrases share leading
    words the larger boost applies to the shared words.
    """

    def __init__(self, hotwords: Sequence[Hotword]) -> None:
        self.root = HotNode(0.0)
        for hotword in hotwords:
            node = self.root
            for word in hotword.text.split():
                child = node.children.get(word)
                if child is None:
                    child = node.children[word] = HotNode(node.credit + hotword.boost)
                elif child.credit < node.credit + hotword.boost:
                    _raise_credit(child, node.credit + hotword.boost - child.credit)
                node = child
            node.is_end = True
        queue = [self.root]
        for node in queue:  # breadth first: failure links of shorter paths come first
            for word, child in node.children.items():
                fail = node.fail
                while fail is not None and word not in fail.children:
                    fail = fail.fail
                child.fail = self.root if fail is None else fail.children[word]
                queue.append(child)

    @property
    def words(self) -> set[str]:
        found: set[str] = set()
        stack = [self.root]
        while stack:
            node = stack.pop()
            found.update(node.children)
            stack.extend(node.children.values())
        return found

    def first_word_credits(self) -> dict[str, float]:
        return {w: child.credit for w, child in self.root.children.items()}

    def step(self, node: HotNode, banked: float, offset: float, word: str) -> tuple[HotNode, float, float]:
        """(node, banked, offset) after `word`."""
        child = node.children.get(word)
        if child is None:
            offset = 0.0
            fallback = node.fail
            while fallback is not None and word not in fallback.children:
                fallback = fallback.fail
            child = self.root if fallback is None else fallback.children[word]
        if child.is_end:
            banked += child.credit - offset
            offset = child.credit
            if not child.children:
                child, offset = self.root, 0.0
        return child, banked, offset


def _raise_credit(node: HotNode, delta: float) -> None:
    stack = [node]
    while stack:
        n = stack.pop()
        n.credit += delta
        stack.extend(n.children.values())
