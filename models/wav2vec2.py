"""wav2vec 2.0 for the project: Hugging Face `Wav2Vec2ForCTC` with a small configuration.

The model is Hugging Face's own class, so the project's checkpoints are `save_pretrained`
directories in exactly the layout of published models (config.json, model.safetensors,
vocab.json, tokenizer_config.json, preprocessor_config.json) and `asr-export wav2vec2`
exports them like any model from the Hub.

Vocabulary: the project's CTC letters (`app.asr.tokens.ctc_letters`): `<blank>` at id 0
(the tokenizer's pad token, which Hugging Face uses as the CTC blank), `|` the word
delimiter, the apostrophe and lowercase a-z; no `<s>`, `</s>` or `<unk>`. Transcripts are
the project's normalised text, so the tokenizer needs no lowercasing either way.

`small_config`: 6 layers of 256 (4 heads, feed-forward 1024) over a 7-layer convolutional
feature encoder of 256 channels: 6.13M parameters with the CTC head (6.44M as
`Wav2Vec2ForPreTraining`, with the quantizer and projections). The feature encoder
uses layer norm and the transformer is pre-LN (`do_stable_layer_norm`, as in
wav2vec2-large-lv60): both train from scratch more stably than the base model's group norm,
and every frame is computed from its own utterance only, so padded batches equal single
calls. Input: 16 kHz waveform, normalised to zero mean and unit variance per utterance
(`do_normalize`, which the exporter moves inside the ONNX graph); 20 ms frames.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import (
    Wav2Vec2Config,
    Wav2Vec2CTCTokenizer,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2ForCTC,
    Wav2Vec2Processor,
)

from app.asr.tokens import BLANK, WORD_SEPARATOR, TokenTable, ctc_letters

SAMPLE_RATE = 16000
NORMALIZE_EPS = 1e-7  # Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm


def small_config(vocab_size: int, **overrides: Any) -> Wav2Vec2Config:
    """The project's small wav2vec 2.0 (6.13M parameters with the 29-letter CTC head).

    `overrides` replace any `Wav2Vec2Config` field (tests use hidden_size=32 and the like).
    The quantizer settings matter only for pretraining (`Wav2Vec2ForPreTraining`).
    """
    settings: dict[str, Any] = {
        "vocab_size": vocab_size, "pad_token_id": 0,
        "hidden_size": 256, "num_hidden_layers": 6, "num_attention_heads": 4, "intermediate_size": 1024,
        "conv_dim": (256,) * 7, "conv_kernel": (10, 3, 3, 3, 3, 2, 2), "conv_stride": (5, 2, 2, 2, 2, 2, 2), "conv_bias": True,
        "feat_extract_norm": "layer", "do_stable_layer_norm": True,
        "num_conv_pos_embeddings": 64, "num_conv_pos_embedding_groups": 16,
        "hidden_dropout": 0.1, "attention_dropout": 0.1, "activation_dropout": 0.0, "feat_proj_dropout": 0.0,
        "final_dropout": 0.0, "layerdrop": 0.05,
        "mask_time_prob": 0.05, "mask_time_length": 10, "mask_feature_prob": 0.0,
        "ctc_loss_reduction": "mean", "ctc_zero_infinity": True,
        "num_codevector_groups": 2, "num_codevectors_per_group": 320, "codevector_dim": 256, "proj_codevector_dim": 128,
        "num_negatives": 100, "diversity_loss_weight": 0.1,
    }  # fmt: skip
    settings.update(overrides)
    return Wav2Vec2Config(**settings)


def project_tokens() -> TokenTable:
    """The vocabulary of the project's wav2vec 2.0 models: `<blank>`, `|`, `'`, a-z."""
    return ctc_letters()


def build_tokenizer(table: TokenTable | None = None) -> Wav2Vec2CTCTokenizer:
    """A `Wav2Vec2CTCTokenizer` whose ids are the table's: blank as pad token, no bos/eos/unk."""
    table = table or project_tokens()
    with tempfile.TemporaryDirectory() as tmp:
        vocab = Path(tmp) / "vocab.json"
        vocab.write_text(json.dumps(table.index, ensure_ascii=False))
        tokenizer = Wav2Vec2CTCTokenizer(str(vocab), pad_token=table.blank or BLANK, word_delimiter_token=table.word_separator or WORD_SEPARATOR,
                                         bos_token=None, eos_token=None, unk_token=None, do_lower_case=False)  # fmt: skip
    if tokenizer.get_vocab() != table.index:
        raise ValueError("the tokenizer's vocabulary does not reproduce the token table")
    return tokenizer


def build_feature_extractor(*, do_normalize: bool = True) -> Wav2Vec2FeatureExtractor:
    return Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0, do_normalize=do_normalize,
                                    return_attention_mask=True)  # fmt: skip


def build_processor(table: TokenTable | None = None, *, do_normalize: bool = True) -> Wav2Vec2Processor:
    return Wav2Vec2Processor(feature_extractor=build_feature_extractor(do_normalize=do_normalize), tokenizer=build_tokenizer(table))


def save_exportable(model: torch.nn.Module, processor: Wav2Vec2Processor, directory: Path) -> Path:
    """`save_pretrained` the model with the tokenizer and feature extractor files next to it,
    in the published layout (preprocessor_config.json, tokenizer_config.json, vocab.json)."""
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(directory))  # type: ignore[operator]
    processor.feature_extractor.save_pretrained(str(directory))
    processor.tokenizer.save_pretrained(str(directory))
    return directory


def conv_geometry(kernels: Sequence[int], strides: Sequence[int]) -> tuple[int, int]:
    """`(frame_stride, receptive_field)` of a stack of valid 1-D convolutions (320 and 400 here).

    Frame t reads input samples `[t * stride, t * stride + receptive_field)`; an input of N
    samples gives `(N - receptive_field) // stride + 1` frames (0 below the receptive field).
    """
    if len(kernels) != len(strides) or not kernels:
        raise ValueError(f"need one stride per kernel, got kernels {list(kernels)} and strides {list(strides)}")
    receptive, jump = 1, 1
    for kernel, stride in zip(kernels, strides, strict=True):
        receptive += (kernel - 1) * jump
        jump *= stride
    return jump, receptive


def output_frames(config: Wav2Vec2Config, samples: int) -> int:
    stride, receptive = conv_geometry(config.conv_kernel, config.conv_stride)
    return 0 if samples < receptive else (samples - receptive) // stride + 1


def normalize_waveform(wave: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance: what `do_normalize` does to each utterance."""
    wave = wave.astype(np.float32, copy=False)
    return ((wave - wave.mean()) / np.sqrt(wave.var() + NORMALIZE_EPS)).astype(np.float32)


def waveform_batch(waves: Sequence[np.ndarray], *, normalize: bool = True, min_samples: int = 400) -> tuple[torch.Tensor, torch.Tensor]:
    """`(input_values [B, N], attention_mask [B, N])`: each wave normalised over its own samples,
    then right-padded with zeros (as the feature extractor does with an attention mask)."""
    width = max(max((len(w) for w in waves), default=0), min_samples)
    values = torch.zeros(len(waves), width)
    mask = torch.zeros(len(waves), width, dtype=torch.long)
    for i, wave in enumerate(waves):
        row = normalize_waveform(wave) if normalize and len(wave) else wave.astype(np.float32, copy=False)
        values[i, : len(row)] = torch.from_numpy(row)
        mask[i, : max(len(row), min_samples)] = 1  # the runtime pads short inputs up to min_samples too
    return values, mask


def build_model(config: Wav2Vec2Config) -> Wav2Vec2ForCTC:
    return Wav2Vec2ForCTC(config)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["build_feature_extractor", "build_model", "build_processor", "build_tokenizer", "conv_geometry", "count_parameters",
           "normalize_waveform", "output_frames", "project_tokens", "save_exportable", "small_config", "waveform_batch"]
