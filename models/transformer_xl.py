"""Transformer-XL character language model (Dai et al. 2019), written to be read top to bottom.

A decoder-only Transformer that attends over the current segment and a memory: the layer
inputs of the previous segments, detached. Positions are relative: the attention score
between query i and key j is

    q_i·k_j  +  q_i·R_{i-j}  +  u·k_j  +  v·R_{i-j}
    (content)   (position)     (global    (global
                                content)   position)

with a sinusoidal R and learnt biases u, v per layer. Because nothing depends on absolute
positions, the memory of one segment can be carried into the next: with a memory long
enough to hold the past, scoring segment by segment equals scoring in one pass (the
property the tests check and the server's streaming rescoring relies on).

Layer norms come after each residual (post-norm), as in the paper. The graph is written to
be ONNX-exportable with dynamic batch, segment and memory lengths (memory length 0
included): masks and positions are built from tensor sizes, the relative shift is a
pad-and-reshape, and no Python value depends on the data.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class TransformerXLConfig:
    """Architecture sizes; saved with the weights so a checkpoint rebuilds its own model."""

    vocab_size: int
    d_model: int = 256
    n_head: int = 4
    d_head: int = 64
    d_inner: int = 1024
    n_layer: int = 4
    mem_len: int = 128
    dropout: float = 0.1
    tie_weights: bool = True


def sinusoid_positions(distances: Tensor, d_model: int) -> Tensor:
    """Sinusoidal encodings of relative distances `[K]` -> `[K, d_model]` (sin half, cos half)."""
    inv_freq = 1.0 / (10000 ** (torch.arange(0, d_model, 2, device=distances.device, dtype=torch.float32) / d_model))
    angles = distances.float()[:, None] * inv_freq[None, :]  # [K, d_model/2]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)  # [K, d_model]


def rel_shift(scores: Tensor) -> Tensor:
    """Turn scores against R-rows ordered by distance `K-1 .. 0` into scores per key position.

    In: `[B, H, T, K]` where column r holds the score of query i against distance K-1-r.
    Out: `[B, H, T, K]` where column j holds the score of query i against distance M+i-j
    (M = K - T, the memory length), i.e. key position j. Entries with j > M+i (the future)
    are garbage and must be masked. The pad-and-reshape moves row i left by T-1-i without a
    gather, which keeps the graph small and exportable.
    """
    B, H, T, K = scores.shape
    padded = F.pad(scores, (1, 0))  # [B, H, T, K+1]
    padded = padded.reshape(B, H, K + 1, T)  # the same memory read in rows of T
    return padded[:, :, 1:].reshape(B, H, T, K)


def causal_mask(*, mem_len: int, qlen: int, device: torch.device) -> Tensor:
    """`[T, M+T]` bool, True where query i must not see key j: j > M + i (the future)."""
    klen = mem_len + qlen
    keys = torch.arange(klen, device=device)[None, :]  # [1, K]
    queries = torch.arange(qlen, device=device)[:, None] + mem_len  # [T, 1]
    return keys > queries


class RelativeAttention(nn.Module):
    """Multi-head attention of the current segment over memory + segment, relative positions."""

    def __init__(self, *, d_model: int, n_head: int, d_head: int, dropout: float) -> None:
        super().__init__()
        self.n_head, self.d_head = n_head, d_head
        self.query = nn.Linear(d_model, n_head * d_head, bias=False)
        self.key_value = nn.Linear(d_model, 2 * n_head * d_head, bias=False)
        self.position = nn.Linear(d_model, n_head * d_head, bias=False)  # R -> W_R R
        self.out = nn.Linear(n_head * d_head, d_model, bias=False)
        self.u = nn.Parameter(torch.zeros(n_head, d_head))  # global content bias
        self.v = nn.Parameter(torch.zeros(n_head, d_head))  # global position bias
        self.drop = nn.Dropout(dropout)
        self.scale = 1.0 / math.sqrt(d_head)

    def forward(self, x: Tensor, positions: Tensor, *, mem: Tensor, mask: Tensor) -> Tensor:
        """x `[B, T, d]`, positions `[K, d]` (distances K-1..0), mem `[B, M, d]`, mask `[T, K]`."""
        B, T, _ = x.shape
        H, D = self.n_head, self.d_head
        context = torch.cat([mem, x], dim=1)  # [B, K, d]
        q = self.query(x).reshape(B, T, H, D).transpose(1, 2)  # [B, H, T, D]
        k, v = self.key_value(context).chunk(2, dim=-1)
        k = k.reshape(B, -1, H, D).permute(0, 2, 3, 1)  # [B, H, D, K]
        v = v.reshape(B, -1, H, D).transpose(1, 2)  # [B, H, K, D]
        r = self.position(positions).reshape(-1, H, D).permute(1, 2, 0)  # [H, D, K]

        content = (q + self.u[:, None, :]) @ k  # [B, H, T, K]: q·k + u·k
        position = rel_shift((q + self.v[:, None, :]) @ r)  # [B, H, T, K]: q·R + v·R
        scores = (content + position) * self.scale
        scores = scores.masked_fill(mask, float("-inf"))  # every row keeps its own position
        weights = self.drop(scores.softmax(dim=-1))
        y = (weights @ v).transpose(1, 2).reshape(B, T, H * D)  # [B, T, H*D]
        return self.drop(self.out(y))


class Block(nn.Module):
    """Relative attention and a feed-forward layer, each with a residual and a post-norm."""

    def __init__(self, *, d_model: int, n_head: int, d_head: int, d_inner: int, dropout: float) -> None:
        super().__init__()
        self.attention = RelativeAttention(d_model=d_model, n_head=n_head, d_head=d_head, dropout=dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(
            nn.Linear(d_model, d_inner),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(d_inner, d_model),
            nn.Dropout(dropout),
        )
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, x: Tensor, positions: Tensor, *, mem: Tensor, mask: Tensor) -> Tensor:
        x = self.norm1(x + self.attention(x, positions, mem=mem, mask=mask))
        return self.norm2(x + self.ff(x))


class TransformerXL(nn.Module):
    """Character LM: `forward(tokens, mems) -> (logits, new_mems)`.

    `mems` is a list of one `[B, M, d_model]` tensor per layer (the inputs of that layer at
    the M positions before `tokens`); None or M = 0 means no past. `new_mems` holds, per
    layer, the last `mem_len` positions of cat(mems, current layer input), detached.
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        d_model: int,
        n_head: int,
        d_head: int,
        d_inner: int,
        n_layer: int,
        mem_len: int,
        dropout: float = 0.1,
        tie_weights: bool = True,
    ) -> None:
        super().__init__()
        self.config = TransformerXLConfig(
            vocab_size=vocab_size, d_model=d_model, n_head=n_head, d_head=d_head, d_inner=d_inner,
            n_layer=n_layer, mem_len=mem_len, dropout=dropout, tie_weights=tie_weights,
        )  # fmt: skip
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            Block(d_model=d_model, n_head=n_head, d_head=d_head, d_inner=d_inner, dropout=dropout)
            for _ in range(n_layer)
        )
        self.head = nn.Linear(d_model, vocab_size)
        self.apply(self._init_weights)
        if tie_weights:
            self.head.weight = self.embedding.weight

    @classmethod
    def from_config(cls, config: TransformerXLConfig) -> TransformerXL:
        return cls(**asdict(config))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, RelativeAttention):
            nn.init.normal_(module.u, std=0.02)
            nn.init.normal_(module.v, std=0.02)

    def empty_mems(self, batch_size: int) -> list[Tensor]:
        """One `[B, 0, d_model]` memory per layer: the state before the first segment."""
        weight = self.embedding.weight
        return [weight.new_zeros(batch_size, 0, self.config.d_model) for _ in self.layers]

    def forward_hiddens(self, tokens: Tensor, mems: list[Tensor] | None = None) -> tuple[Tensor, list[Tensor]]:
        """tokens `[B, T]` -> logits `[B, T, V]` and each layer's input `[B, T, d]` (not detached).

        The export graph and the trainer both need the layer inputs of the current segment
        before they are cut to `mem_len`; `forward` is this plus `extend_mems`.
        """
        if mems is None:
            mems = self.empty_mems(tokens.size(0))
        if len(mems) != len(self.layers):
            raise ValueError(f"expected {len(self.layers)} memories (one per layer), got {len(mems)}")
        T = tokens.size(1)
        M = mems[0].size(1)
        x = self.drop(self.embedding(tokens) * math.sqrt(self.config.d_model))  # [B, T, d]
        distances = M + T - 1 - torch.arange(M + T, device=tokens.device)  # [K]: K-1 .. 0
        positions = self.drop(sinusoid_positions(distances, self.config.d_model))  # [K, d]
        mask = causal_mask(mem_len=M, qlen=T, device=tokens.device)  # [T, K]
        hiddens = []
        for layer, mem in zip(self.layers, mems, strict=True):
            hiddens.append(x)
            x = layer(x, positions, mem=mem, mask=mask)
        logits = self.head(self.drop(x))  # [B, T, V]
        return logits, hiddens

    def extend_mems(self, mems: list[Tensor] | None, hiddens: list[Tensor]) -> list[Tensor]:
        """Per layer: the last `mem_len` positions of cat(mems, hiddens), detached -> `[B, M', d]`."""
        if mems is None:
            mems = self.empty_mems(hiddens[0].size(0))
        mem_len = self.config.mem_len
        new_mems = []
        for mem, hidden in zip(mems, hiddens, strict=True):
            both = torch.cat([mem, hidden], dim=1)  # [B, M+T, d]
            new_mems.append((both[:, -mem_len:] if mem_len > 0 else both[:, :0]).detach())
        return new_mems

    def forward(self, tokens: Tensor, mems: list[Tensor] | None = None) -> tuple[Tensor, list[Tensor]]:
        """tokens `[B, T]`, mems per layer `[B, M, d]` -> logits `[B, T, V]`, new mems `[B, M', d]`.

        M' = min(M + T, mem_len).
        """
        logits, hiddens = self.forward_hiddens(tokens, mems)
        return logits, self.extend_mems(mems, hiddens)


def checkpoint_model(checkpoint: dict[str, Any]) -> TransformerXL:
    """Rebuild the model from a checkpoint dict written by `models.train.txl.save_checkpoint`."""
    model = TransformerXL.from_config(TransformerXLConfig(**checkpoint["config"]))
    model.load_state_dict(checkpoint["model"])
    return model


def load_transformer_xl(path: Path, *, map_location: str | torch.device = "cpu") -> TransformerXL:
    """The model stored at `path` (a recipe checkpoint), in eval mode."""
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    return checkpoint_model(checkpoint).eval()
