"""The Whisper-CTC graph that serves files with full attention and streams in chunks with a key/value cache.

One module, one set of weights, two uses (so a bundle ships the encoder once):

- fed only `waveform`, it is the offline model: every frame attends to the whole input;
- fed a window of audio plus each layer's cached keys and values (`cache`), it computes `frames`
  new frames that attend to the cache and to each other under the block mask the model was
  trained with (`chunked = 1`: a frame sees its own chunk and `left_chunks` chunks before it).
  Run chunk by chunk, that equals one masked pass over the whole input
  (`WhisperCTC.encode(..., chunked=True)`), which `app.asr.chunked_stream` relies on.

Why audio goes in rather than stem frames: the log-mel and the stem look two mel frames (and
200 samples) to each side, and the first and last frames see Whisper's edge padding (reflect
for the STFT, zeros for the convolutions). The caller feeds a window that starts two encoder
frames before the first new one (`skip = 2`; `skip = 0` and the window starting at the
stream's first sample at the start) and ends 200 samples after the last one (or at the
end of the audio for the last chunk), so every kept frame sees what a pass over the whole
waveform gives it. That needs a front end without a whole-utterance statistic: streamable
models clamp the log-mel at a fixed floor (`WhisperCTCConfig.mel_floor`).

Inputs (all but `waveform` optional, with defaults stored in the graph):
`waveform [B, N]`; `skip` and `frames` (scalars: stem frames to drop, then to keep; -1 = all);
`offset [B]` (position of the first kept frame in its segment); `cache [L, 2, B, P, D]`
(keys and values of the P frames before, the newest last); `cache_valid [B]` (how many of the
P are real: the rest are padding of streams that just started); `chunked` (0 full attention,
1 the block mask). Outputs: `emissions [B, T, V]` (log-probabilities) and `cache_out`, the
last `cache_frames` keys and values.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from models.whisper_ctc import WhisperCTC

INPUTS = ("waveform", "skip", "frames", "offset", "cache", "cache_valid", "chunked")
OUTPUTS = ("emissions", "cache_out")


def cache_frames(model: WhisperCTC) -> int:
    """Frames of keys and values a stream keeps per layer: its left context."""
    c = model.config
    return c.chunk_frames * c.left_chunks if c.chunk_frames and c.left_chunks else c.max_frames


class StreamingWhisperCTC(nn.Module):
    def __init__(self, model: WhisperCTC) -> None:
        super().__init__()
        if model.config.mel_floor is None or not model.config.chunk_frames:
            raise ValueError("only models with a fixed mel floor and a chunk size (trained with the block mask) stream in chunks")
        self.model = model
        self.keep = cache_frames(model)

    def attention_mask(self, offset: Tensor, past: int, frames: int, cache_valid: Tensor, chunked: Tensor) -> Tensor:
        """`[B, 1, T, P + T]`, True where a new frame may attend (cache slots first, then the new frames)."""
        c = self.model.config
        device = offset.device
        query = offset[:, None] + torch.arange(frames, device=device)[None, :]  # [B, T] positions in the segment
        key = offset[:, None] + torch.arange(frames + past, device=device)[None, :] - past  # [B, P + T]
        slot = torch.arange(frames + past, device=device)[None, :]
        real = (slot >= past - cache_valid[:, None]) | (slot >= past)
        qc, kc = query[:, :, None] // c.chunk_frames, key[:, None, :] // c.chunk_frames
        block = (kc <= qc) & (kc >= qc - c.left_chunks) if c.left_chunks else kc <= qc
        allowed = block | (chunked <= 0)  # (ONNX Runtime has no boolean Where)
        return (allowed & real[:, None, :])[:, None]

    def forward(self, waveform: Tensor, skip: Tensor, frames: Tensor, offset: Tensor, cache: Tensor, cache_valid: Tensor, chunked: Tensor) -> tuple[Tensor, Tensor]:
        m = self.model
        batch = waveform.shape[0]
        mel = m.frontend(waveform)
        x = nn.functional.gelu(m.conv1(mel))
        x = nn.functional.gelu(m.conv2(x)).transpose(1, 2)  # [B, F, D], no positions yet
        end = torch.where(frames < 0, torch._shape_as_tensor(x)[1], skip + frames)
        x = x.index_select(1, torch.arange(skip, end))  # type: ignore[call-overload]
        t = x.shape[1]
        offset = offset.expand(batch)
        cache_valid = cache_valid.expand(batch)
        positions = (offset[:, None] + torch.arange(t)[None, :]).clamp(max=m.config.max_frames - 1)
        x = x + m.positional[positions]
        past = cache.shape[3]
        mask = self.attention_mask(offset, past, t, cache_valid, chunked)
        kept = []
        for layer, block in enumerate(m.blocks):
            attn = block.attn
            h = block.attn_ln(x)
            d, heads = h.shape[-1], attn.n_heads
            keys = torch.cat([cache[layer, 0].expand(batch, past, d), attn.key(h)], dim=1)  # [B, P + T, D]
            values = torch.cat([cache[layer, 1].expand(batch, past, d), attn.value(h)], dim=1)
            kept.append(torch.stack([keys, values])[:, :, -self.keep :])
            q = attn.query(h).view(batch, t, heads, d // heads).transpose(1, 2)
            k = keys.view(batch, past + t, heads, d // heads).transpose(1, 2)
            v = values.view(batch, past + t, heads, d // heads).transpose(1, 2)
            scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(d // heads)
            scores = scores.masked_fill(~mask, float("-inf"))
            y = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2).reshape(batch, t, d)
            x = x + attn.out(y)
            x = x + block.mlp(block.mlp_ln(x))
        return torch.log_softmax(m.logits(x), dim=-1), torch.stack(kept)

    def defaults(self) -> dict[str, Tensor]:
        """What the optional inputs are when left out: the offline call."""
        c = self.model.config
        return {
            "skip": torch.tensor(0),
            "frames": torch.tensor(-1),
            "offset": torch.zeros(1, dtype=torch.long),
            "cache": torch.zeros(c.n_layers, 2, 1, 0, c.d_model),
            "cache_valid": torch.zeros(1, dtype=torch.long),
            "chunked": torch.tensor(0),
        }
