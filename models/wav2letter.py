"""Wav2Letter (Collobert et al., 2016): a 1-D ConvNet from audio to letter scores.

The paper's layout: a strided first convolution instead of pooling, a stack of wide
convolutions, two 1x1 layers, and a last layer scoring every token. The feature front-end
runs inside the model, so the exported graph takes the raw 16 kHz waveform.

Two presets share one module:
- `Wav2LetterConfig.small()`: the project's CPU default. Every convolution is *valid*
  (unpadded), so output frame `t` depends exactly on input samples
  `[t * frame_stride, t * frame_stride + receptive_field)`; the runtime pads the waveform
  itself (`left_pad`, `right_pad` in the manifest), which makes window-by-window and
  streaming inference equal to one pass. BatchNorm and GELU, residual connections.
- `Wav2LetterConfig.torchaudio(...)`: exactly `torchaudio.models.Wav2Letter` (the paper's
  full size, padded convolutions, ReLU, log-softmax), so its state dicts load unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

from models.features import LogMel, SpecAugment


@dataclass(frozen=True)
class ConvSpec:
    out_channels: int
    kernel: int
    stride: int = 1
    padding: int = 0


@dataclass(frozen=True)
class Wav2LetterConfig:
    num_tokens: int
    frontend: Literal["logmel", "waveform", "none"] = "logmel"
    n_mels: int = 80  # features per frame for "logmel" (and the input width for "none")
    sample_rate: int = 16000
    n_fft: int = 400
    hop: int = 160
    layers: tuple[ConvSpec, ...] = field(default_factory=tuple)  # all but the last scoring layer
    activation: Literal["gelu", "relu"] = "gelu"
    batch_norm: bool = True
    residual: bool = True
    dropout: float = 0.1
    final_activation: bool = False  # torchaudio applies ReLU to the scores too
    log_softmax: bool = False  # ASG models emit unnormalised scores
    specaugment: bool = True

    @classmethod
    def small(cls, num_tokens: int, *, channels: int = 256, kernel: int = 11, depth: int = 8, hidden: int = 512) -> Wav2LetterConfig:
        layers = (ConvSpec(channels, kernel, 2), *[ConvSpec(channels, kernel) for _ in range(depth)], ConvSpec(hidden, 1))
        return cls(num_tokens=num_tokens, layers=layers)

    @classmethod
    def paper(cls, num_tokens: int) -> Wav2LetterConfig:
        """The paper's size on log-mel input: 250 channels, kernel 48/7/32, 2000-wide 1x1 layers."""
        layers = (ConvSpec(250, 48, 2), *[ConvSpec(250, 7) for _ in range(7)], ConvSpec(2000, 32), ConvSpec(2000, 1))
        return cls(num_tokens=num_tokens, layers=layers, residual=False)

    @classmethod
    def torchaudio(cls, num_tokens: int, *, input_type: str = "waveform", num_features: int = 1) -> Wav2LetterConfig:
        """`torchaudio.models.Wav2Letter(num_tokens, input_type, num_features)`, layer for layer."""
        body = (ConvSpec(250, 48, 2, 23), *[ConvSpec(250, 7, 1, 3) for _ in range(7)], ConvSpec(2000, 32, 1, 16), ConvSpec(2000, 1))
        if input_type == "waveform":
            return cls(num_tokens=num_tokens, frontend="waveform", layers=(ConvSpec(250, 250, 160, 45), *body), activation="relu",
                       batch_norm=False, residual=False, dropout=0.0, final_activation=True, log_softmax=True, specaugment=False)
        return cls(num_tokens=num_tokens, frontend="none", n_mels=num_features, layers=body, activation="relu", batch_norm=False,
                   residual=False, dropout=0.0, final_activation=True, log_softmax=True, specaugment=False)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Wav2LetterConfig:
        data = dict(data)
        data["layers"] = tuple(ConvSpec(**spec) for spec in data["layers"])
        return cls(**data)

    # --- frame geometry (valid convolutions only) -------------------------------------------
    @property
    def frame_stride(self) -> int:
        stride = self.hop if self.frontend == "logmel" else 1
        for spec in self.layers:
            stride *= spec.stride
        return stride

    @property
    def receptive_field(self) -> int:
        """Input samples one output frame sees (for padded layers: the unpadded extent)."""
        field_, jump = (self.n_fft, self.hop) if self.frontend == "logmel" else (1, 1)
        for spec in self.layers:
            field_ += (spec.kernel - 1) * jump
            jump *= spec.stride
        return field_

    @property
    def is_valid_conv(self) -> bool:
        return all(spec.padding == 0 for spec in self.layers)

    def padding(self) -> tuple[int, int]:
        """Zeros the runtime puts around the waveform so frame t is centred on sample t * stride + stride / 2."""
        left = max(self.receptive_field // 2 - self.frame_stride // 2, 0)
        return left, self.receptive_field - left

    def output_frames(self, samples: int) -> int:
        """Output frames for `samples` input samples (as fed to the module, padding included)."""
        n = samples
        if self.frontend == "logmel":
            n = (n - self.n_fft) // self.hop + 1 if n >= self.n_fft else 0
        for spec in self.layers:
            n = (n + 2 * spec.padding - spec.kernel) // spec.stride + 1 if n + 2 * spec.padding >= spec.kernel else 0
        return max(n, 0)


class ConvBlock(nn.Module):
    def __init__(self, in_channels: int, spec: ConvSpec, config: Wav2LetterConfig, *, residual: bool) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, spec.out_channels, spec.kernel, stride=spec.stride, padding=spec.padding)
        self.norm = nn.BatchNorm1d(spec.out_channels) if config.batch_norm else nn.Identity()
        self.act = nn.GELU() if config.activation == "gelu" else nn.ReLU()
        self.drop = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        self.residual = residual and in_channels == spec.out_channels and spec.stride == 1
        self.crop = (spec.kernel - 1) // 2 if spec.padding == 0 else 0

    def forward(self, x: Tensor) -> Tensor:
        y = self.drop(self.act(self.norm(self.conv(x))))
        if self.residual:
            skip = x[:, :, self.crop : -self.crop] if self.crop else x  # a constant slice in the exported graph
            y = y + skip
        return y


class Wav2Letter(nn.Module):
    """`forward(waveform [B, N]) -> emissions [B, T, num_tokens]` (or features `[B, C, F]` when frontend == "none")."""

    def __init__(self, config: Wav2LetterConfig) -> None:
        super().__init__()
        self.config = config
        if config.frontend == "logmel":
            self.frontend: nn.Module = LogMel(sample_rate=config.sample_rate, n_fft=config.n_fft, hop=config.hop, n_mels=config.n_mels)
            self.input_norm: nn.Module = nn.BatchNorm1d(config.n_mels)
            in_channels = config.n_mels
        else:
            self.frontend, self.input_norm = nn.Identity(), nn.Identity()
            in_channels = 1 if config.frontend == "waveform" else config.n_mels
        self.specaugment = SpecAugment() if config.specaugment else nn.Identity()
        blocks = []
        for spec in config.layers:
            blocks.append(ConvBlock(in_channels, spec, config, residual=config.residual))
            in_channels = spec.out_channels
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv1d(in_channels, config.num_tokens, 1)

    def forward(self, x: Tensor) -> Tensor:
        if self.config.frontend == "waveform":
            x = x[:, None, :]  # [B, 1, N]
        x = self.specaugment(self.input_norm(self.frontend(x)))  # [B, C, F]
        for block in self.blocks:
            x = block(x)
        return self.scores(x)

    def scores(self, x: Tensor) -> Tensor:
        """Last layer's features `[B, C, T]` -> emissions `[B, T, V]`."""
        x = self.head(x)  # [B, V, T]
        if self.config.final_activation:
            x = torch.relu(x)
        if self.config.log_softmax:
            x = torch.log_softmax(x, dim=1)
        return x.transpose(1, 2)  # [B, T, V]


@dataclass(frozen=True)
class CacheSpec:
    """One cached left context of the streaming graph: ONNX input `name`, output `name + "_out"`."""

    name: str
    shape: tuple[int, ...]  # without the batch axis: (samples,) before the front-end, (channels, frames) after


class CachedWav2Letter(nn.Module):
    """The same valid-convolution model over a chunk of new samples plus each layer's cached left context.

    `forward(waveform [B, N], *caches) -> (emissions [B, T, V], *new_caches)`. Every layer
    concatenates its cache (the last `kernel - stride` frames of its input so far) before its
    new input frames and returns the last `kernel - stride` frames of that as the new cache.
    When `N` is a multiple of `frame_stride`, each layer gets a multiple of its stride in new
    frames, the caches keep their shapes (`cache_specs`) and the chunk's frames are exactly the
    frames a single pass over the whole input computes at those positions. With empty caches
    (time length 0) it computes what `Wav2Letter.forward` does, so one graph serves both.
    """

    def __init__(self, model: Wav2Letter) -> None:
        super().__init__()
        config = model.config
        if not (config.is_valid_conv and config.frontend == "logmel"):
            raise ValueError("only log-mel Wav2Letter models with valid (unpadded) convolutions stream with caches")
        self.model = model

    def cache_specs(self) -> list[CacheSpec]:
        config = self.model.config
        specs = [CacheSpec("cache_frontend", (config.n_fft - config.hop,))]
        channels = config.n_mels
        for i, spec in enumerate(config.layers):
            if spec.kernel > spec.stride:
                specs.append(CacheSpec(f"cache_{i}", (channels, spec.kernel - spec.stride)))
            channels = spec.out_channels
        return specs

    def forward(self, waveform: Tensor, *caches: Tensor) -> tuple[Tensor, ...]:
        model, specs = self.model, self.cache_specs()
        if len(caches) != len(specs):
            raise ValueError(f"expected {len(specs)} caches, got {len(caches)}")
        batch = waveform.shape[0]
        cached = iter(caches)
        new_caches = []
        x = torch.cat([next(cached).expand(batch, -1), waveform], dim=1)  # [B, L0 + N]
        new_caches.append(x[:, -specs[0].shape[0] :])
        x = model.input_norm(model.frontend(x))  # [B, C, F]
        for block, spec in zip(model.blocks, model.config.layers, strict=True):
            if spec.kernel > spec.stride:
                x = torch.cat([next(cached).expand(batch, -1, -1), x], dim=2)  # [B, C, L + F]
                new_caches.append(x[:, :, -(spec.kernel - spec.stride) :])
            x = block(x)
        return (model.scores(x), *new_caches)


def load_torchaudio_state_dict(state_dict: dict[str, Tensor], config: Wav2LetterConfig) -> Wav2Letter:
    """Build a `Wav2Letter` from a `torchaudio.models.Wav2Letter` state dict.

    torchaudio keeps its convolutions in (nested) `nn.Sequential`s under `acoustic_model`,
    interleaved with ReLUs; taken in order, the last one is our `head`.
    """
    model = Wav2Letter(config)
    prefixes = sorted({k.rsplit(".", 1)[0] for k in state_dict if k.startswith("acoustic_model.") and k.endswith(".weight")},
                      key=lambda name: tuple(int(part) for part in name.split(".")[1:]))
    if len(prefixes) != len(model.blocks) + 1:
        raise ValueError(f"state dict has {len(prefixes)} convolutions, the config expects {len(model.blocks) + 1}")
    mapped: dict[str, Tensor] = {}
    for i, source in enumerate(prefixes):
        target = "head" if i == len(model.blocks) else f"blocks.{i}.conv"
        for name in ("weight", "bias"):
            mapped[f"{target}.{name}"] = state_dict[f"{source}.{name}"]
    model.load_state_dict(mapped, strict=True)
    return model
