"""Transformer-XL n-best rescoring on ONNX Runtime (no torch).

Sentences and memory. Every text scored is one sentence, encoded as in training
(`app.asr.tokens.encode_sentences`): `<eos> h e l l o | w o r l d <eos>`. The model reads
`<eos> hello|world` and predicts `hello|world <eos>`; the text's log-probability (nats) is
the sum of those predictions, so the closing `<eos>` ("the sentence ends here") counts.
The memory after a text holds the layer inputs of what the model *read* (`<eos>` and the
characters, the last `mem_len` positions); the next text starts with its own `<eos>`, which
is exactly the closing `<eos>` of the previous one as the training stream had it. So

    score([s2], mems=score([s1]).mems[0])  ==  one pass over `<eos> s1 <eos> s2 <eos>`,
                                               minus the part of s1 and its `<eos>`,

exactly while the memory still holds all of s1 (len(s1) + 1 <= mem_len), and with the
usual Transformer-XL truncation beyond. In a stream, each final (endpointed) result is one
sentence: rescore its n-best with the stream's memory, keep the winner's memory for the
next final. Partial results are not rescored, or are rescored without keeping the memory.

Batching. All texts of one call run in one ONNX call, padded at the end with `<eos>`; the
causal mask keeps padding out of every real position, and each text's score and memory
are taken from its own positions (the graph's `hiddens` output gives the layer inputs at
every position, so a text's memory is its last `mem_len` real positions, not the padding).
All texts of a call share one input memory (the n-best of one utterance do).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from app.asr.decoders.types import Hypothesis
from app.asr.manifest import Manifest, ManifestError
from app.asr.numerics import log_softmax
from app.asr.runtime import create_session, select_providers
from app.asr.tokens import EOS, TokenTable, encode_sentences

LM_INPUTS = ("tokens", "mems_in")
LM_OUTPUTS = ("logits", "mems_out", "hiddens")


@dataclass(frozen=True, eq=False)
class ScoreResult:
    """Per text i of a `score` call.

    `logprobs` `[B]` float64: log p(text <eos> | <eos>, memory) in nats.
    `lengths` `[B]` int64: tokens predicted (characters, separators included, + 1 for `<eos>`).
    `mems[i]` `[n_layer, 1, M_i, d_model]` float32: the memory to carry after text i, with
    M_i = min(M + lengths[i], mem_len); pass it back as `mems` to score what follows text i.
    """

    logprobs: np.ndarray
    lengths: np.ndarray
    mems: tuple[np.ndarray, ...]


class TransformerXLScorer:
    """Scores sentences with a Transformer-XL LM bundle; one instance is shared by all streams."""

    def __init__(
        self, session: ort.InferenceSession, tokens: TokenTable, *, n_layer: int, d_model: int, mem_len: int
    ) -> None:
        names = tuple(i.name for i in session.get_inputs()), tuple(o.name for o in session.get_outputs())
        if names != (LM_INPUTS, LM_OUTPUTS):
            raise ManifestError(
                f"LM graph has inputs {names[0]} and outputs {names[1]}; expected {LM_INPUTS} and {LM_OUTPUTS}"
            )
        if EOS not in tokens.tokens:
            raise ManifestError(f"LM token table has no {EOS!r}")
        self.session = session
        self.tokens = tokens
        self.eos_id = tokens.index[EOS]
        self.n_layer, self.d_model, self.mem_len = n_layer, d_model, mem_len

    @classmethod
    def from_bundle(
        cls, directory: Path, manifest: Manifest, *, threads: int = 1, precision: str = "fp32", device: str = "cpu"
    ) -> TransformerXLScorer:
        if manifest.kind != "lm" or manifest.architecture != "transformer_xl":
            raise ManifestError(
                f"{directory}: not a Transformer-XL LM bundle ({manifest.kind}, {manifest.architecture})"
            )
        if precision not in manifest.files:
            raise ManifestError(f"{directory}: no {precision} graph; the bundle has {sorted(manifest.files)}")
        try:
            n_layer, d_model, mem_len = (int(manifest.extra[k]) for k in ("n_layer", "d_model", "mem_len"))
        except (KeyError, TypeError, ValueError) as e:
            raise ManifestError(f"{directory}: LM manifest lacks n_layer, d_model or mem_len in `extra` ({e})") from e
        session = create_session(
            directory / manifest.files[precision].path, threads=threads, providers=select_providers(device)
        )
        return cls(session, manifest.tokens, n_layer=n_layer, d_model=d_model, mem_len=mem_len)

    def empty_mems(self) -> np.ndarray:
        """The memory before a stream's first sentence: `[n_layer, 1, 0, d_model]`."""
        return np.zeros((self.n_layer, 1, 0, self.d_model), dtype=np.float32)

    def score(self, texts: Sequence[str], mems: np.ndarray | None = None) -> ScoreResult:
        """Log-probabilities of normalised sentences after the shared memory `mems`, in one ONNX call.

        `mems` is `[n_layer, 1 or B, M, d_model]` (one memory for all texts, or one each of the
        same length M), or None for none. Raises ValueError for characters outside the LM's
        table or a memory of the wrong shape.
        """
        if not texts:
            return ScoreResult(np.zeros(0), np.zeros(0, dtype=np.int64), ())
        B = len(texts)
        encoded = [encode_sentences(self.tokens, [text]) for text in texts]  # <eos> text <eos>
        lengths = np.array([len(ids) - 1 for ids in encoded], dtype=np.int64)  # inputs = predictions
        T = int(lengths.max())
        inputs = np.full((B, T), self.eos_id, dtype=np.int64)
        targets = np.full((B, T), self.eos_id, dtype=np.int64)
        for i, ids in enumerate(encoded):
            inputs[i, : lengths[i]] = ids[:-1]
            targets[i, : lengths[i]] = ids[1:]
        memory = self._batch_mems(mems, B)  # [L, B, M, d]

        logits, hiddens = self.session.run(["logits", "hiddens"], {"tokens": inputs, "mems_in": memory})
        logprobs = log_softmax(logits)  # [B, T, V]
        picked = np.take_along_axis(logprobs, targets[:, :, None], axis=2)[:, :, 0]  # [B, T]
        real = np.arange(T)[None, :] < lengths[:, None]  # [B, T]
        totals = np.where(real, picked, 0.0).astype(np.float64).sum(axis=1)

        new_mems = []
        for i in range(B):
            both = np.concatenate([memory[:, i], hiddens[:, i, : lengths[i]]], axis=1)  # [L, M + len_i, d]
            kept = both[:, both.shape[1] - min(both.shape[1], self.mem_len) :]  # last mem_len (0 keeps none)
            new_mems.append(np.ascontiguousarray(kept[:, None]))  # [L, 1, M_i, d]
        return ScoreResult(totals, lengths, tuple(new_mems))

    def _batch_mems(self, mems: np.ndarray | None, batch_size: int) -> np.ndarray:
        if mems is None:
            return np.zeros((self.n_layer, batch_size, 0, self.d_model), dtype=np.float32)
        if (
            mems.ndim != 4
            or mems.shape[0] != self.n_layer
            or mems.shape[3] != self.d_model
            or mems.shape[1] not in (1, batch_size)
        ):
            raise ValueError(
                f"memory of shape {mems.shape}; expected [{self.n_layer}, 1 or {batch_size}, M, {self.d_model}] "
                "(a `ScoreResult.mems` entry of this scorer)"
            )
        shape = (self.n_layer, batch_size, mems.shape[2], self.d_model)
        return np.ascontiguousarray(np.broadcast_to(mems, shape), dtype=np.float32)


@dataclass(frozen=True)
class RescoredHypothesis:
    hypothesis: Hypothesis
    txl_logprob: float  # log p(text <eos> | memory), nats, unweighted
    words: int
    total: float  # the decoder's score + alpha * txl_logprob + beta * words
    mems: np.ndarray = field(repr=False, compare=False)  # [n_layer, 1, M, d_model]: carry it if this one wins

    @property
    def text(self) -> str:
        return self.hypothesis.text


def count_words(text: str) -> int:
    return len(text.split())


def rescore(
    hypotheses: Sequence[Hypothesis],
    *,
    scorer: TransformerXLScorer,
    alpha: float,
    beta: float,
    mems: np.ndarray | None = None,
) -> list[RescoredHypothesis]:
    """Rerank an n-best list, best first: total = score + alpha * txl_logprob + beta * words, where
    `score` is the decoder's (acoustic + `ngram_score`, the weighted n-gram and word terms).

    The length term counts words (whitespace-separated), like the decoder's word score: a
    character LM charges every character, so `beta` > 0 offsets its bias towards short
    hypotheses at the granularity the decoder already uses. All hypotheses are scored in
    one batched call with the same memory `mems`. Ties keep the decoder's order.
    """
    if not hypotheses:
        return []
    result = scorer.score([h.text for h in hypotheses], mems)
    rescored = []
    for h, logprob, memory in zip(hypotheses, result.logprobs, result.mems, strict=True):
        words = count_words(h.text)
        total = h.acoustic_score + h.ngram_score + alpha * float(logprob) + beta * words  # h.score + the Transformer-XL terms
        rescored.append(RescoredHypothesis(h, float(logprob), words, total, memory))
    return sorted(rescored, key=lambda r: -r.total)
