"""KenLM binary language models (the output of KenLM's `build_binary`), behind `NgramLM`'s interface.

A bundle's `decoding.lm` may name an ARPA file (optionally gzipped), which `NgramLM` reads in
pure Python, or a KenLM binary (probing or trie), which loads in milliseconds and takes less
memory for large models. Only KenLM's own C++ code reads the binary format; flashlight-text
ships it, so this class wraps flashlight-text's `KenLM`. That wrapper must be told up front
which words it will be asked about; here they are the bundle's lexicon. A word outside that
list scores as `<unk>`, which is why a binary LM needs a lexicon and suits lexicon search
best: for lexicon-free fusion with arbitrary spellings, ship an ARPA file.

Scores come out in natural log like `NgramLM`'s (KenLM's are log10). States are KenLM's own
state objects, opaque to the beam search.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from app.asr.ngram import BOS, EOS, LN10, UNK, LmScore, NgramLM

KENLM_MAGIC = b"mmap lm http://kheafield.com/code"


def is_kenlm_binary(path: str | Path) -> bool:
    """Whether the file starts with KenLM's binary header."""
    with open(path, "rb") as f:
        return f.read(len(KENLM_MAGIC)) == KENLM_MAGIC


class KenLMBinary:
    """A KenLM binary model asked about `words` (anything else is `<unk>`)."""

    def __init__(self, path: str | Path, words: Iterable[str]) -> None:
        from flashlight.lib.text.decoder.kenlm import KenLM
        from flashlight.lib.text.dictionary import Dictionary

        self.path: Path | None = Path(path)
        self.vocab: tuple[str, ...] = tuple(dict.fromkeys([*words, UNK, BOS, EOS]))
        self._index = {w: i for i, w in enumerate(self.vocab)}
        self.unk_id, self.bos_id, self.eos_id = self._index[UNK], self._index[BOS], self._index[EOS]
        self.order = 0  # unknown from outside KenLM; nothing here needs it
        self.model = KenLM(str(path), Dictionary(list(self.vocab)))  # flashlight-text's; its fast engine searches with it too
        null = self.model.start(True)
        self._unigram = [self.model.score(null, i)[1] * LN10 for i in range(len(self.vocab))]

    def __len__(self) -> int:
        return len(self.vocab)

    def __contains__(self, word: object) -> bool:
        return word in self._index and word != UNK

    def word_id(self, word: str) -> int:
        return self._index.get(word, self.unk_id)

    def unigram_logprob(self, word_id: int) -> float:
        return self._unigram[word_id if word_id >= 0 else self.unk_id]

    def begin_state(self) -> object:
        return self.model.start(False)

    def score_id(self, state: object, word_id: int) -> LmScore:
        new_state, logprob = self.model.score(state, word_id if word_id >= 0 else self.unk_id)
        return LmScore(logprob * LN10, new_state)

    def score_word(self, state: object, word: str) -> LmScore:
        return self.score_id(state, self.word_id(word))

    def end_score(self, state: object) -> float:
        return self.model.finish(state)[1] * LN10

    def score_sentence(self, words: Sequence[str]) -> float:
        """ln p(<s> words </s>)."""
        state, total = self.begin_state(), 0.0
        for word in words:
            logprob, state = self.score_word(state, word)
            total += logprob
        return total + self.end_score(state)


def load_lm(path: str | Path, *, words: Iterable[str] | None = None) -> NgramLM | KenLMBinary:
    """The LM file of a bundle: ARPA (plain or .gz) or a KenLM binary, which needs the lexicon's `words`."""
    if is_kenlm_binary(path):
        if words is None:
            raise ValueError(f"{path}: a KenLM binary LM needs the bundle's lexicon (the words it will be asked about)")
        return KenLMBinary(path, words)
    return NgramLM.from_arpa(path)
