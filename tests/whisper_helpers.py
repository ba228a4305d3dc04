"""Tiny random Whisper models for the Whisper-CTC tests, and test audio.

`write_ct2_whisper` builds a random `transformers` Whisper of a few layers and converts it with
ctranslate2's own Transformers loader (`WhisperLoader`, the code `ct2-transformers-converter`
runs) into a CTranslate2 directory: `model.bin`, `config.json`, `vocabulary.json`, the layout of
the published conversions that `models.whisper_ct2` reads. Nothing is downloaded: the tokenizer
the converter asks for is a stand-in with a few dozen tokens (the encoder never sees them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

# Whisper's special tokens, so that ctranslate2 finds the ids it looks up when it loads a model
SPECIAL_TOKENS = ("<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>", "<|startoflm|>",
                  "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>")  # fmt: skip
TEXT_TOKENS = tuple(" abcdefghijklmnopqrstuvwxyz'")
VOCAB_SIZE = 48  # the rest are timestamp tokens, as the converter writes them
TINY = {
    "d_model": 64,
    "encoder_layers": 2,
    "encoder_attention_heads": 4,
}  # 4 heads: not d_model // 64, so it must be read


class StandInTokenizer:
    """What ctranslate2's `WhisperLoader` reads from a Whisper tokenizer: the vocabulary and the
    extra special tokens (none: the language ids come from the generation config)."""

    additional_special_tokens: list[str] = []

    def __init__(self) -> None:
        self.vocab = {token: i for i, token in enumerate(TEXT_TOKENS + SPECIAL_TOKENS)}

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab)


def tiny_hf_whisper(*, seed: int = 0, max_source_positions: int = 1500, **sizes: int) -> Any:
    """A random `WhisperForConditionalGeneration` with `TINY` sizes (or `sizes`), every weight drawn
    so that a swapped or dropped tensor changes the encoder's output (not the near-identity of
    transformers' 0.02 initialisation). The encoder's positional table stays sinusoidal."""
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    dims = {**TINY, **sizes}
    vocab = StandInTokenizer().vocab
    eot, sot = vocab["<|endoftext|>"], vocab["<|startoftranscript|>"]
    config = WhisperConfig(vocab_size=VOCAB_SIZE, num_mel_bins=80, encoder_ffn_dim=4 * dims["d_model"], decoder_layers=1, decoder_attention_heads=2,
                           decoder_ffn_dim=2 * dims["d_model"], max_source_positions=max_source_positions, max_target_positions=32,
                           pad_token_id=eot, bos_token_id=eot, eos_token_id=eot, decoder_start_token_id=sot, suppress_tokens=[],
                           begin_suppress_tokens=[eot], **dims)  # fmt: skip
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "embed_positions" in name:
                continue
            noise = torch.randn(param.shape, generator=generator)
            if name.endswith("layer_norm.weight"):
                param.copy_(1.0 + 0.2 * noise)
            elif param.dim() == 1:
                param.copy_(0.1 * noise)
            else:
                param.copy_(noise / param[0].numel() ** 0.5)  # unit gain: std 1 / sqrt(fan-in)
    model.generation_config.suppress_tokens = []
    model.generation_config.begin_suppress_tokens = [eot]
    model.generation_config.lang_to_id = {"<|en|>": vocab["<|en|>"]}
    return model


def write_ct2_whisper(directory: Path, model: Any, *, quantization: str = "float32") -> Path:
    """Convert `model` (a transformers Whisper) into a CTranslate2 directory, its weights stored as
    `quantization` (float32, float16, bfloat16, int8 ...); the `model.bin` path."""
    import torch
    from ctranslate2.converters.transformers import WhisperLoader

    with torch.no_grad():
        spec = WhisperLoader()(model, StandInTokenizer())
    spec.validate()
    spec.optimize(quantization=quantization)
    directory.mkdir(parents=True, exist_ok=True)
    spec.save(str(directory))
    return directory / "model.bin"


def build_ct2_whisper(directory: Path, *, seed: int = 0, **sizes: int) -> Path:
    """A tiny random Whisper converted to CTranslate2 in `directory`; the `model.bin` path."""
    return write_ct2_whisper(directory, tiny_hf_whisper(seed=seed, **sizes))


def tones(seconds: float, *, seed: int = 0, rate: int = 16000) -> np.ndarray:
    """Noise and a few gliding, amplitude-modulated tones `[N]` float32, about 0.3 peak."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    wave = 0.02 * rng.standard_normal(n)
    for _ in range(3):
        f0, glide, am = rng.uniform(150, 2500), rng.uniform(-200, 200), rng.uniform(1, 6)
        wave += (
            rng.uniform(0.03, 0.1) * np.sin(2 * np.pi * (f0 + glide * t) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * am * t))
        )
    return wave.astype(np.float32)


def tiny_whisper_ctc(*, seed: int = 0, **config: Any) -> Any:
    """A random `WhisperCTC` of width 32 over the project's letters, with outputs confident and varied enough
    that int8's greedy agreement means something (positions spread, the head scaled up)."""
    import torch

    from app.asr.tokens import ctc_letters
    from models.whisper_ctc import WhisperCTC, WhisperCTCConfig

    torch.manual_seed(seed)
    model = WhisperCTC(WhisperCTCConfig(**{"d_model": 32, "n_heads": 2, "n_layers": 1, "n_tokens": len(ctc_letters()), **config})).eval()
    with torch.no_grad():
        model.positional.normal_(0.0, 0.3)
        model.head.weight.mul_(8.0)
    return model
