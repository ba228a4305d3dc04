"""A Whisper-style encoder with a CTC head over the project's letters.

Why this family: a model trained from scratch on synthetic voices never learned what people sound
like, while Whisper's encoder was pretrained on 680k hours of real speech. Fine-tuning its top
layers with CTC (the wav2vec 2.0 recipe) turns it into a fast non-autoregressive recognizer.

The module reads top to bottom like Whisper's `AudioEncoder`, with three differences:
- the log-mel front end is inside the module (so export puts it in the ONNX graph and the server
  stays torch-free), matching `WhisperFeatureExtractor` / faster-whisper's `FeatureExtractor`;
- inputs of any length up to 30 s: the positional table is sliced to the input, no 30 s padding;
- an optional block attention mask (`chunk_frames`, `encode(chunked=True)`): frame t attends to its
  own chunk and at most `left_chunks` chunks before it, which is what exact chunked streaming
  needs (`models.whisper_stream`). A model trained both ways serves files with full attention.

Forwards return `(x, lengths)` like torchaudio's models.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
N_MELS = 80
FRAME_STRIDE = 2 * HOP  # samples per encoder frame (the second convolution has stride 2)
MAX_FRAMES = 1500  # positional table length: 30 s


@dataclass(frozen=True)
class WhisperCTCConfig:
    """Architecture sizes, saved with the weights (as openai/whisper's ModelDimensions)."""

    n_mels: int = N_MELS
    d_model: int = 512
    n_heads: int = 8
    n_layers: int = 6
    n_tokens: int = 29  # CTC vocabulary, blank first
    max_frames: int = MAX_FRAMES
    head: str = "linear"  # "linear": one projection; "conv": a depthwise-separable convolution then projection
    chunk_frames: int = 0  # the block mask's chunk in encoder frames (0: none); `encode(chunked=True)` uses it, files use full attention
    left_chunks: int = 0  # chunks of left context each chunk sees (block mask only; 0 = unbounded)
    mel_floor: float | None = None  # None: Whisper's clamp at the utterance's peak - 8; else this fixed log10 floor (causal, streamable)

    def to_json(self) -> dict:
        return asdict(self)


def slaney_mel_filters(*, sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> Tensor:
    """librosa's `filters.mel(htk=False, norm="slaney")`, as Whisper uses: `[n_mels, n_fft // 2 + 1]`."""
    n_freqs = n_fft // 2 + 1
    fft_freqs = torch.linspace(0, sample_rate / 2, n_freqs, dtype=torch.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0

    def hz_to_mel(f: Tensor) -> Tensor:
        mel = f / f_sp
        return torch.where(f >= min_log_hz, min_log_mel + torch.log(f.clamp(min=1e-10) / min_log_hz) / logstep, mel)

    def mel_to_hz(m: Tensor) -> Tensor:
        return torch.where(m >= min_log_mel, min_log_hz * torch.exp(logstep * (m - min_log_mel)), f_sp * m)

    mels = torch.linspace(float(hz_to_mel(torch.tensor(0.0, dtype=torch.float64))), float(hz_to_mel(torch.tensor(sample_rate / 2, dtype=torch.float64))), n_mels + 2, dtype=torch.float64)
    hz = mel_to_hz(mels)
    fdiff = hz[1:] - hz[:-1]
    ramps = hz[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = torch.clamp(torch.minimum(lower, upper), min=0.0)
    enorm = 2.0 / (hz[2 : n_mels + 2] - hz[:n_mels])
    return (weights * enorm[:, None]).float()


class WhisperLogMel(nn.Module):
    """Waveform `[B, N]` -> Whisper log-mel `[B, 80, N // 160 + 1]`.

    Faster-whisper's recipe: 160 zeros appended, a centred STFT (reflect padding, periodic Hann
    window of 400), the last frame dropped, power, slaney mel, log10 of at least 1e-10, clamped at
    the utterance's maximum - 8, then (x + 4) / 4. That clamp looks at the whole utterance, so a
    streamable model (`mel_floor`) clamps at a fixed floor instead: every frame then depends on
    its own 400 samples only. The STFT is a strided `Conv1d` with a windowed
    DFT basis so that it exports to a plain ONNX `Conv`. `lengths` (valid samples per row) keeps
    padded rows of a batch from raising their own maximum.
    """

    def __init__(self, floor: float | None = None) -> None:
        super().__init__()
        self.floor = floor
        n_freqs = N_FFT // 2 + 1
        window = torch.hann_window(N_FFT, periodic=True, dtype=torch.float64)
        k = torch.arange(n_freqs, dtype=torch.float64)[:, None]
        n = torch.arange(N_FFT, dtype=torch.float64)[None, :]
        angle = 2 * math.pi * k * n / N_FFT
        basis = torch.cat([torch.cos(angle), -torch.sin(angle)]) * window  # [2K, n_fft]
        self.register_buffer("basis", basis.float()[:, None, :], persistent=False)
        self.register_buffer("mel", slaney_mel_filters(), persistent=False)

    @staticmethod
    def frames(n_samples: Tensor | int) -> Tensor | int:
        return n_samples // HOP + 1

    def forward(self, waveform: Tensor, lengths: Tensor | None = None) -> Tensor:
        x = nn.functional.pad(waveform, (0, HOP))[:, None, :]  # faster-whisper's padding=160
        x = nn.functional.pad(x, (N_FFT // 2, N_FFT // 2), mode="reflect")
        spec = nn.functional.conv1d(x, self.basis, stride=HOP)[..., :-1]  # [B, 2K, F]
        real, imag = spec.chunk(2, dim=1)
        mel = torch.matmul(self.mel, real * real + imag * imag)  # [B, 80, F]
        log_spec = torch.log10(mel.clamp(min=1e-10))
        if self.floor is not None:
            return (log_spec.clamp(min=self.floor) + 4.0) / 4.0
        if lengths is None:
            peak = log_spec.amax(dim=(1, 2), keepdim=True)
        else:
            valid = torch.arange(log_spec.shape[-1], device=x.device)[None, :] < self.frames(lengths)[:, None]
            peak = log_spec.masked_fill(~valid[:, None, :], -1e4).amax(dim=(1, 2), keepdim=True)
        log_spec = torch.maximum(log_spec, peak - 8.0)
        return (log_spec + 4.0) / 4.0


class MultiHeadAttention(nn.Module):
    """Whisper's attention: Q, K, V projections (K without bias), scaled dot product, output projection."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model, bias=False)
        self.value = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        b, t, d = x.shape
        h = self.n_heads
        q = self.query(x).view(b, t, h, d // h).transpose(1, 2)  # [B, H, T, Dh]
        k = self.key(x).view(b, t, h, d // h).transpose(1, 2)
        v = self.value(x).view(b, t, h, d // h).transpose(1, 2)
        y = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class ResidualAttentionBlock(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.attn_ln = nn.LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, n_heads)
        self.mlp_ln = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        x = x + self.attn(self.attn_ln(x), mask)
        return x + self.mlp(self.mlp_ln(x))


def block_mask(frames: int, valid: Tensor, *, chunk: int, left_chunks: int) -> Tensor:
    """Boolean attention mask `[B, 1, T, T]`: key frames each query may see (True = attend).

    Padded keys are hidden. With `chunk > 0` a query sees its own chunk and `left_chunks` chunks
    before it (all before it when 0), never later ones, so a chunk's outputs are final once it is in.
    """
    idx = torch.arange(frames, device=valid.device)
    keys_ok = idx[None, :] < valid[:, None]  # [B, T]
    mask = keys_ok[:, None, None, :].expand(-1, 1, frames, frames)
    if chunk > 0:
        qc, kc = idx[:, None] // chunk, idx[None, :] // chunk
        allowed = kc <= qc
        if left_chunks > 0:
            allowed = allowed & (kc >= qc - left_chunks)
        mask = mask & allowed[None, None]
    return mask


class WhisperCTC(nn.Module):
    """Waveform `[B, N]` (16 kHz) -> CTC log-probabilities `[B, T, V]`, T = ceil((N // 160 + 1) / 2)."""

    def __init__(self, config: WhisperCTCConfig) -> None:
        super().__init__()
        c = self.config = config
        self.frontend = WhisperLogMel(c.mel_floor)
        self.conv1 = nn.Conv1d(c.n_mels, c.d_model, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(c.d_model, c.d_model, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positional", torch.zeros(c.max_frames, c.d_model))
        self.blocks = nn.ModuleList(ResidualAttentionBlock(c.d_model, c.n_heads) for _ in range(c.n_layers))
        self.ln_post = nn.LayerNorm(c.d_model)
        if c.head == "conv":
            self.head = nn.Sequential(
                nn.Conv1d(c.d_model, c.d_model, kernel_size=5, padding=2, groups=c.d_model), nn.GELU(), nn.Conv1d(c.d_model, c.n_tokens, 1)
            )
        else:
            self.head = nn.Linear(c.d_model, c.n_tokens)

    @staticmethod
    def output_frames(n_samples: Tensor | int) -> Tensor | int:
        mel = n_samples // HOP + 1
        return (mel + 1) // 2

    def stem(self, mel: Tensor) -> Tensor:
        """Log-mel `[B, 80, F]` -> `[B, T, D]` with positions added (T <= 1500)."""
        x = nn.functional.gelu(self.conv1(mel))
        x = nn.functional.gelu(self.conv2(x)).transpose(1, 2)
        return x + self.positional[: x.shape[1]]

    def mask(self, frames: int, lengths: Tensor, *, chunked: bool = False) -> Tensor:
        """The attention mask: padded keys hidden, and with `chunked` the block mask of `chunk_frames`."""
        if chunked and not self.config.chunk_frames:
            raise ValueError("this model has no chunk size for the block mask")
        return block_mask(frames, lengths, chunk=self.config.chunk_frames if chunked else 0, left_chunks=self.config.left_chunks)

    def encode(self, x: Tensor, lengths: Tensor, *, start: int = 0, stop: int | None = None, chunked: bool = False) -> Tensor:
        """Run blocks `[start, stop)` on hidden states `[B, T, D]` (the stem's or a cached layer's).

        A model trained both ways (full attention and the block mask, as WeNet's dynamic chunk
        training) serves files with `chunked=False` and streams with `chunked=True`."""
        mask = self.mask(x.shape[1], lengths, chunked=chunked)
        for block in self.blocks[start:stop]:
            x = block(x, mask)
        return x

    def logits(self, hidden: Tensor) -> Tensor:
        x = self.ln_post(hidden)
        if self.config.head == "conv":
            return self.head(x.transpose(1, 2)).transpose(1, 2)
        return self.head(x)

    def forward(self, waveform: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if lengths is None:
            lengths = torch.full((waveform.shape[0],), waveform.shape[1], dtype=torch.long, device=waveform.device)
        mel = self.frontend(waveform, lengths)
        out_lengths = self.output_frames(lengths)
        hidden = self.encode(self.stem(mel), out_lengths)
        return torch.log_softmax(self.logits(hidden), dim=-1), out_lengths
