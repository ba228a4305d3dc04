"""The punctuation and casing tagger: one pass over the words of a transcript, two labels per word.

Each word enters as the sum of a word embedding (a vocabulary of frequent words, id 1 for
the rest) and an embedding of its hashed last three letters (so unknown words still carry
a hint: "-son", "-ly", "-ing"). An encoder mixes context, and two linear heads give per
word the case logits (`app.asr.punctuation_text.CASES`) and the logits of the mark that
follows (`MARKS`).

Two encoders, chosen by `TaggerConfig.encoder`:

- `transformer`: pre-norm self-attention over the whole window (learnt absolute positions,
  no causal mask: the tagger sees the words after each one, which decide its mark);
- `conv`: residual blocks of a dilated 1-D convolution (same padding) and a feed-forward
  layer; the receptive field grows with the dilations.

Windows are unpadded at inference (one transcript window at a time), so neither encoder
takes a mask; training batches hold windows of one length.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class TaggerConfig:
    """Architecture sizes; saved with the weights and written into the bundle manifest."""

    vocab_size: int
    suffix_buckets: int = 2048
    encoder: Literal["transformer", "conv"] = "transformer"
    d_embed: int = 128  # word embeddings are this wide, projected to d_model (a smaller table)
    d_model: int = 256
    n_layer: int = 4
    n_head: int = 4
    d_inner: int = 1024
    kernel: int = 5  # conv encoder
    max_words: int = 256  # longest window (learnt positions)
    dropout: float = 0.1
    n_cases: int = 4
    n_marks: int = 5

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class ConvBlock(nn.Module):
    def __init__(self, config: TaggerConfig, dilation: int) -> None:
        super().__init__()
        d = config.d_model
        self.norm1 = nn.LayerNorm(d)
        self.conv = nn.Conv1d(d, d, config.kernel, padding=dilation * (config.kernel // 2), dilation=dilation)
        self.norm2 = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, config.d_inner), nn.GELU(), nn.Linear(config.d_inner, d))
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm1(x).transpose(1, 2)  # [B, d, T]
        x = x + self.drop(torch.nn.functional.gelu(self.conv(h)).transpose(1, 2))  # [B, T, d]
        return x + self.drop(self.ff(self.norm2(x)))


class SelfAttentionBlock(nn.Module):
    """Pre-norm block: multi-head self-attention over the whole window, then a feed-forward layer."""

    def __init__(self, config: TaggerConfig) -> None:
        super().__init__()
        d = config.d_model
        self.n_head = config.n_head
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, config.d_inner), nn.GELU(), nn.Linear(config.d_inner, d))
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        B, T, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(B, T, 3, self.n_head, d // self.n_head).permute(2, 0, 3, 1, 4)  # 3 x [B, H, T, d_head]
        weights = torch.softmax(q @ k.transpose(-1, -2) * (d // self.n_head) ** -0.5, dim=-1)  # [B, H, T, T]
        attended = (self.drop(weights) @ v).transpose(1, 2).reshape(B, T, d)  # [B, T, d]
        x = x + self.drop(self.out(attended))
        return x + self.drop(self.ff(self.norm2(x)))


class PunctuationTagger(nn.Module):
    def __init__(self, config: TaggerConfig) -> None:
        super().__init__()
        self.config = config
        self.words = nn.Embedding(config.vocab_size, config.d_embed, padding_idx=0)
        self.suffixes = nn.Embedding(config.suffix_buckets + 1, config.d_embed, padding_idx=0)
        self.project = nn.Linear(config.d_embed, config.d_model)
        self.drop = nn.Dropout(config.dropout)
        if config.encoder == "transformer":
            self.positions = nn.Embedding(config.max_words, config.d_model)
            self.encoder: nn.Module = nn.Sequential(*[SelfAttentionBlock(config) for _ in range(config.n_layer)])
        else:
            self.encoder = nn.Sequential(*[ConvBlock(config, 2 ** (i % 4)) for i in range(config.n_layer)])
        self.norm = nn.LayerNorm(config.d_model)
        self.case_head = nn.Linear(config.d_model, config.n_cases)
        self.mark_head = nn.Linear(config.d_model, config.n_marks)

    def forward(self, words: Tensor, suffixes: Tensor) -> tuple[Tensor, Tensor]:
        """Word ids and suffix ids `[B, T]` -> case logits `[B, T, n_cases]`, mark logits `[B, T, n_marks]`."""
        x = self.project(self.words(words) + self.suffixes(suffixes))  # [B, T, d_model]
        if self.config.encoder == "transformer":
            positions = torch.arange(words.shape[1], device=words.device)
            x = x + self.positions(positions)[None]
        x = self.norm(self.encoder(self.drop(x)))
        return self.case_head(x), self.mark_head(x)


def build_tagger(config: TaggerConfig) -> PunctuationTagger:
    return PunctuationTagger(config)


def load_checkpoint(path: str | object) -> tuple[PunctuationTagger, dict[str, Any]]:
    """A tagger from `models.train.punctuation`'s checkpoint, in eval mode, with the checkpoint dict."""
    checkpoint = torch.load(str(path), map_location="cpu", weights_only=False)
    model = PunctuationTagger(TaggerConfig(**checkpoint["config"]))
    model.load_state_dict(checkpoint["model"])
    return model.eval(), checkpoint
