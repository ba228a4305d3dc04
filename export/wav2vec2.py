"""wav2vec 2.0 checkpoints to acoustic bundles: Hugging Face `Wav2Vec2ForCTC` directories and
torchaudio `Wav2Vec2Model` state dicts (wav2vec2_*, hubert_*, wavlm_* builders).

The graph is `waveform [B, N] -> emissions [B, T, V]` where the emissions are CTC
log-probabilities (log_softmax is inside the graph, so beam search and confidences read
them directly; greedy decoding is unchanged by it). When the source model expects
zero-mean unit-variance input (`do_normalize` in a Hugging Face feature extractor, or
`"input_normalize": true` in a torchaudio builder file) the normalisation is computed in
the graph over the whole input it is given (for files longer than one runtime window, over
that window), and the manifest records `input_normalize`.

The feature encoder's convolutions fix the geometry: `frame_stride` is the product of the
strides (320 for every published model) and `receptive_field` follows from the kernels
(400). The transformer sees the whole input, so bundles are `context = "full"`: the
runtime computes long files in overlapping windows, one utterance per call. Models with
`feat_extract_norm == "group"` (wav2vec2-base) normalise over time per utterance, so a
padded batch would change their results: parity compares each batch row against the
source model run on that row alone.

Token tables: published vocabularies are UPPERCASE letters plus `<pad>` (the CTC blank),
`|` (the word delimiter) and `<s>`, `</s>`, `<unk>`. The manifest lists the letters in
lowercase (when that creates no duplicates), so transcripts come out in the project's
normalised form, and names the other `<...>` tokens in `TokenTable.special`, which
`TokenTable.decode` drops. The source's own spelling is kept in `extra["source_tokens"]`.
"""

from __future__ import annotations

import inspect
import json
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from app.asr.manifest import Manifest
from app.asr.tokens import WORD_SEPARATOR, TokenTable
from export.onnx import describe_source, export_acoustic_onnx, finish_bundle
from export.verify import ParityError, ParityReport, check_parity, check_quantized, test_inputs
from export.wav2letter import CheckpointError
from models.wav2vec2 import NORMALIZE_EPS as HF_NORMALIZE_EPS
from models.wav2vec2 import conv_geometry

MAX_INT8_CHANGED = 0.05
MAX_FP16_CHANGED = 0.05
PARITY_LENGTHS = (1600, 7123, 32000, 80000)  # 0.1 s to 5 s, one not a multiple of the stride
PARITY_BATCHES = (1, 2)
TORCHAUDIO_NORMALIZE_EPS = 1e-5  # torchaudio's bundles: layer_norm over the whole waveform
HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")
TORCHAUDIO_BUILDERS = ("wav2vec2_base", "wav2vec2_large", "wav2vec2_large_lv60k", "wav2vec2_xlsr_300m", "wav2vec2_xlsr_1b",
                       "wav2vec2_xlsr_2b", "hubert_base", "hubert_large", "hubert_xlarge", "wavlm_base", "wavlm_large")
TORCHAUDIO_FACTORIES = ("wav2vec2_model", "wavlm_model")
SPECIAL_TOKEN = re.compile(r"^<[^<>]*>$")


# --- pieces both sources share ---------------------------------------------------------------
def ctc_token_table(tokens: Sequence[str], *, blank: str, separator: str = WORD_SEPARATOR, special: Iterable[str] = ()) -> TokenTable:
    """The manifest's table for a source vocabulary (ordered by id).

    Letters are lowercased unless that would merge two tokens; the blank and separator keep
    their role; `special` and any other `<...>` token are marked special (never text).
    """
    if blank not in tokens:
        raise CheckpointError(f"the blank token {blank!r} is not in the vocabulary")
    kept = {blank, separator}
    marked = (set(special) | {t for t in tokens if SPECIAL_TOKEN.match(t)}) - kept  # "<unk>", and "[UNK]" when the tokenizer says so
    lowered = [t if t in marked or t in kept else t.lower() for t in tokens]
    if len(set(lowered)) != len(lowered):
        lowered = list(tokens)  # the vocabulary is cased on purpose ("a" and "A" both exist)
    specials = tuple(t for t in tokens if t in marked)
    return TokenTable(tuple(lowered), word_separator=separator, blank=blank, special=specials)


class CTCGraph(nn.Module):
    """What the bundle computes: optional per-utterance normalisation, the model, log_softmax.

    `acoustic` maps a waveform batch `[B, N]` to logits `[B, T, V]`.
    """

    def __init__(self, acoustic: Callable[[torch.Tensor], torch.Tensor], *, normalize: bool, eps: float) -> None:
        super().__init__()
        self.acoustic = acoustic
        self.normalize = normalize
        self.eps = eps

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if self.normalize:  # zero mean, unit (population) variance over each row: [B, N]
            mean = waveform.mean(dim=1, keepdim=True)
            var = waveform.var(dim=1, keepdim=True, unbiased=False)
            waveform = (waveform - mean) / torch.sqrt(var + self.eps)
        return self.acoustic(waveform).log_softmax(dim=-1)  # [B, T, V]


class _HFLogits(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.model(waveform).logits


class _TorchaudioLogits(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        emissions, _ = self.model(waveform)
        return emissions


def _write_bundle(graph: CTCGraph, reference: Callable[[np.ndarray], np.ndarray], out: Path, *, table: TokenTable,
                  source_tokens: Sequence[str], frame_stride: int, receptive_field: int, sample_rate: int, name: str | None,
                  int8: bool, fp16: bool, source: dict[str, Any], extra: dict[str, Any], log: bool) -> Manifest:
    """Export, check parity (fp32 against `reference`, int8/fp16 against fp32), write the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = export_acoustic_onnx(graph, out / "model.onnx")
    inputs = test_inputs(PARITY_LENGTHS, PARITY_BATCHES)
    parity = check_parity(reference, onnx_path, inputs)
    report: dict[str, Any] = {"fp32": parity.to_json()}
    _say(log, f"parity fp32 vs PyTorch: {parity.cases} cases (0.1-5 s, batch 1-2), max relative error "
              f"{parity.max_relative_error:.2e}, greedy agreement {parity.greedy_agreement:.4f}")  # fmt: skip
    files = {"fp32": "model.onnx"}
    if int8:
        from export.quantize import quantize_int8, quiet_root_logger

        # Transformer and projections only: the convolutional feature encoder reads the raw
        # waveform and its activations span a range 8 bits hold badly (on a random test model,
        # greedy agreement fell from 98% to 94% when the convolutions were quantized too).
        with quiet_root_logger():
            int8_path = quantize_int8(onnx_path, out / "model.int8.onnx", op_types=("MatMul", "Gemm"))
        q = check_quantized(onnx_path, int8_path, inputs, max_changed=MAX_INT8_CHANGED)
        report["int8"] = q.to_json()
        files["int8"] = "model.int8.onnx"
        _say(log, f"parity int8 vs fp32: greedy agreement {q.greedy_agreement:.4f}, max logit error {q.max_abs_error:.3f}")
    if fp16:
        from export.quantize import convert_fp16

        with warnings.catch_warnings():  # "the float32 number 1e-07 will be truncated": the eps, harmlessly
            warnings.simplefilter("ignore", UserWarning)
            fp16_path = convert_fp16(onnx_path, out / "model.fp16.onnx")
        report["fp16"] = _check_fp16(onnx_path, fp16_path, inputs, log=log)
        files["fp16"] = "model.fp16.onnx"
    extra = {**extra, "emissions": "log_softmax"}
    if list(source_tokens) != list(table.tokens):
        extra["source_tokens"] = list(source_tokens)
    manifest = Manifest(
        name=name or out.name, kind="acoustic", architecture="wav2vec2", tokens=table, files={}, criterion="ctc",
        sample_rate=sample_rate, frame_stride=frame_stride, receptive_field=receptive_field, left_pad=0, right_pad=0,
        context="full", input_normalize=graph.normalize, min_samples=receptive_field, parity=report, source=source, extra=extra,
    )  # fmt: skip
    return finish_bundle(out, manifest, onnx_files=files)


def _check_fp16(fp32_path: Path, fp16_path: Path, inputs: list[np.ndarray], *, log: bool) -> dict[str, Any]:
    """Greedy agreement of the fp16 graph on the CPU when ONNX Runtime runs it there."""
    try:
        q: ParityReport = check_quantized(fp32_path, fp16_path, inputs, max_changed=MAX_FP16_CHANGED)
    except ParityError:
        raise
    except Exception as e:  # onnxruntime raises its own types for kernels the CPU provider lacks
        _say(log, f"fp16 graph written but not verified: the CPU provider cannot run it ({str(e).splitlines()[0]})")
        return {"verified": False, "reason": str(e).splitlines()[0][:300]}
    _say(log, f"parity fp16 vs fp32 (CPU): greedy agreement {q.greedy_agreement:.4f}, max logit error {q.max_abs_error:.3f}")
    return {**q.to_json(), "verified": True, "provider": "CPUExecutionProvider"}


# --- Hugging Face -----------------------------------------------------------------------------
def load_hf_directory(model_dir: Path) -> tuple[Any, Any, Any | None]:
    """`(Wav2Vec2ForCTC in eval mode, tokenizer, feature extractor or None)` from a local directory."""
    if not model_dir.is_dir():
        raise CheckpointError(f"{model_dir}: no such directory (expected a Wav2Vec2ForCTC save_pretrained directory)")
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{model_dir}: no config.json (expected a Wav2Vec2ForCTC save_pretrained directory)")
    try:
        config_json = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{config_path}: not valid JSON ({e})") from e
    model_type = config_json.get("model_type")
    architectures = config_json.get("architectures") or []
    if model_type != "wav2vec2":
        raise CheckpointError(f"{model_dir}: model_type {model_type!r} is not wav2vec2 (architectures {architectures})")
    if architectures and "Wav2Vec2ForCTC" not in architectures:
        raise CheckpointError(f"{model_dir}: holds {architectures}, not Wav2Vec2ForCTC: export needs a model fine-tuned with a CTC head")
    if not any((model_dir / f).is_file() for f in HF_WEIGHTS):
        raise CheckpointError(f"{model_dir}: no weights ({' or '.join(HF_WEIGHTS[:2])})")
    if not (model_dir / "vocab.json").is_file():
        raise CheckpointError(f"{model_dir}: no vocab.json: the CTC vocabulary is needed to name the model's outputs")

    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        tokenizer = Wav2Vec2CTCTokenizer.from_pretrained(str(model_dir))
    except Exception as e:
        raise CheckpointError(f"{model_dir}: cannot read the tokenizer files ({str(e).splitlines()[0]})") from e
    feature_extractor = None
    if any((model_dir / f).is_file() for f in ("preprocessor_config.json", "processor_config.json")):
        try:
            feature_extractor = Wav2Vec2FeatureExtractor.from_pretrained(str(model_dir))
        except Exception as e:
            raise CheckpointError(f"{model_dir}: cannot read the feature extractor config ({str(e).splitlines()[0]})") from e
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = Wav2Vec2ForCTC.from_pretrained(str(model_dir), attn_implementation="eager")
    except Exception as e:
        raise CheckpointError(f"{model_dir}: cannot load Wav2Vec2ForCTC ({str(e).splitlines()[0]})") from e
    return model.eval(), tokenizer, feature_extractor


def hf_token_table(tokenizer: Any, vocab_size: int) -> tuple[TokenTable, list[str]]:
    """`(manifest table, source tokens)`: tokens ordered by id, blank = pad token, separator = word delimiter."""
    by_id = {int(i): t for t, i in tokenizer.get_vocab().items()}
    if max(by_id, default=-1) >= vocab_size:
        raise CheckpointError(f"the tokenizer has ids up to {max(by_id)} but the model outputs only {vocab_size} classes")
    tokens = [by_id.get(i, f"<unused_{i}>") for i in range(vocab_size)]  # ids no token names: never text
    if tokenizer.pad_token is None:
        raise CheckpointError("the tokenizer names no pad token (the CTC blank)")
    separator = tokenizer.word_delimiter_token or WORD_SEPARATOR
    special = [t for t in tokenizer.all_special_tokens if t not in (tokenizer.pad_token, separator)]
    return ctc_token_table(tokens, blank=tokenizer.pad_token, separator=separator, special=special), tokens


def export_wav2vec2_hf(model_dir: Path, out: Path, *, name: str | None = None, int8: bool = False, fp16: bool = False,
                       log: bool = True) -> Manifest:
    """Write a bundle for a local Hugging Face `Wav2Vec2ForCTC` directory (weights, config, tokenizer files)."""
    model, tokenizer, feature_extractor = load_hf_directory(model_dir)
    config = model.config
    normalize = bool(getattr(feature_extractor, "do_normalize", True))  # the feature extractor's default when absent
    sample_rate = int(getattr(feature_extractor, "sampling_rate", 16000))
    if feature_extractor is None:
        _say(log, "no preprocessor_config.json: assuming do_normalize=True and 16 kHz (the Wav2Vec2FeatureExtractor defaults)")
    table, source_tokens = hf_token_table(tokenizer, config.vocab_size)
    frame_stride, receptive_field = conv_geometry(config.conv_kernel, config.conv_stride)
    graph = CTCGraph(_HFLogits(model), normalize=normalize, eps=HF_NORMALIZE_EPS).eval()

    def reference(batch: np.ndarray) -> np.ndarray:
        """The Hugging Face pipeline itself, one row at a time (group norm sees the row alone)."""
        rows = []
        with torch.no_grad():
            for row in batch:
                if feature_extractor is not None:
                    values = feature_extractor(row, sampling_rate=sample_rate, return_tensors="pt").input_values
                else:
                    values = torch.from_numpy((row - row.mean()) / np.sqrt(row.var() + HF_NORMALIZE_EPS))[None]
                rows.append(model(values.float()).logits.log_softmax(-1)[0].numpy())
        return np.stack(rows)

    extra = {
        "config": {k: _jsonable(getattr(config, k)) for k in (
            "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "conv_dim", "conv_kernel",
            "conv_stride", "feat_extract_norm", "do_stable_layer_norm", "vocab_size")},
        "normalize_eps": HF_NORMALIZE_EPS,
    }  # fmt: skip
    return _write_bundle(graph, reference, out, table=table, source_tokens=source_tokens, frame_stride=frame_stride,
                         receptive_field=receptive_field, sample_rate=sample_rate, name=name, int8=int8, fp16=fp16,
                         source=describe_source(kind="huggingface", model=model_dir.name), extra=extra, log=log)  # fmt: skip


# --- torchaudio -------------------------------------------------------------------------------
def build_torchaudio_model(builder: str | Path, num_tokens: int) -> tuple[Any, bool, dict[str, Any]]:
    """`(model, input_normalize, description)` for a builder name or a JSON file of factory kwargs.

    The JSON file holds `torchaudio.models.wav2vec2_model` keyword arguments, or names
    another builder/factory in `"builder"`; `"input_normalize": true` marks models trained
    on normalised waveforms (torchaudio's large lv60k and XLS-R bundles).
    """
    import torchaudio.models as ta_models  # type: ignore[import-untyped]

    kwargs: dict[str, Any] = {}
    normalize = False
    name = str(builder)
    if name.endswith(".json") or Path(name).is_file():
        path = Path(name)
        try:
            kwargs = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{path}: not a readable JSON builder file ({e})") from e
        if not isinstance(kwargs, dict):
            raise CheckpointError(f"{path}: a builder file must hold a JSON object of keyword arguments")
        normalize = bool(kwargs.pop("input_normalize", False))
        name = str(kwargs.pop("builder", "wav2vec2_model"))
    if name not in TORCHAUDIO_BUILDERS + TORCHAUDIO_FACTORIES:
        raise CheckpointError(f"unknown torchaudio builder {name!r}; expected one of {', '.join(TORCHAUDIO_BUILDERS)} "
                              f"or a JSON file of {'/'.join(TORCHAUDIO_FACTORIES)} keyword arguments")  # fmt: skip
    factory = getattr(ta_models, name)
    if "extractor_conv_layer_config" in kwargs and kwargs["extractor_conv_layer_config"] is not None:
        kwargs["extractor_conv_layer_config"] = [tuple(layer) for layer in kwargs["extractor_conv_layer_config"]]
    try:
        inspect.signature(factory).bind(**kwargs, aux_num_out=num_tokens)
        model = factory(**kwargs, aux_num_out=num_tokens)
    except TypeError as e:
        raise CheckpointError(f"torchaudio {name}: bad keyword arguments ({e})") from e
    return model.eval(), normalize, {"builder": name, **{k: _jsonable(v) for k, v in kwargs.items()}}


def load_torchaudio_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Strict load; also takes state dicts saved before weight norm became a parametrization."""
    if not isinstance(state, dict):
        raise CheckpointError("the checkpoint is not a state dict")
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    renamed = {}
    for key, value in state.items():
        key = key.replace("pos_conv_embed.conv.weight_g", "pos_conv_embed.conv.parametrizations.weight.original0")
        key = key.replace("pos_conv_embed.conv.weight_v", "pos_conv_embed.conv.parametrizations.weight.original1")
        renamed[key] = value
    expected = model.state_dict()
    if any(k.endswith("weight_g") for k in expected):  # a torchaudio that still uses the old hooks
        renamed = {k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1", "weight_v"): v
                   for k, v in renamed.items()}  # fmt: skip
    model.load_state_dict(renamed)


def export_wav2vec2_torchaudio(checkpoint: Path, out: Path, *, builder: str | Path = "wav2vec2_base", tokens: Path,
                               blank: str = "<blank>", name: str | None = None, int8: bool = False, fp16: bool = False,
                               log: bool = True) -> Manifest:
    """Write a bundle for a torchaudio `Wav2Vec2Model` state dict with a CTC head of `len(tokens)` classes."""
    if not checkpoint.is_file():
        raise CheckpointError(f"{checkpoint}: no such state dict file")
    if not tokens.is_file():
        raise CheckpointError(f"{tokens}: no such token list")
    source_tokens = [line.strip() for line in tokens.read_text().splitlines() if line.strip()]
    if blank not in source_tokens:
        raise CheckpointError(f"{tokens}: the blank token {blank!r} is not in the token list (set --blank)")
    table = ctc_token_table(source_tokens, blank=blank)
    model, normalize, description = build_torchaudio_model(builder, len(source_tokens))
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{checkpoint}: not a PyTorch state dict ({str(e).splitlines()[0]})") from e
    try:
        load_torchaudio_state_dict(model, state)
    except RuntimeError as e:
        detail = "; ".join(line.strip() for line in str(e).splitlines()[:2])
        raise CheckpointError(f"{checkpoint}: does not fit torchaudio {description['builder']} with {len(source_tokens)} output classes: {detail}") from e
    model.eval()
    convs = [m for m in model.feature_extractor.modules() if isinstance(m, nn.Conv1d)]
    frame_stride, receptive_field = conv_geometry([c.kernel_size[0] for c in convs], [c.stride[0] for c in convs])
    graph = CTCGraph(_TorchaudioLogits(model), normalize=normalize, eps=TORCHAUDIO_NORMALIZE_EPS).eval()

    def reference(batch: np.ndarray) -> np.ndarray:
        """torchaudio's model, one row at a time, with its bundles' `layer_norm` input normalisation."""
        rows = []
        with torch.no_grad():
            for row in batch:
                x = torch.from_numpy(row)[None]
                if normalize:
                    x = torch.nn.functional.layer_norm(x, x.shape, eps=TORCHAUDIO_NORMALIZE_EPS)
                emissions, _ = model(x)
                rows.append(emissions.log_softmax(-1)[0].numpy())
        return np.stack(rows)

    extra = {"config": description, "normalize_eps": TORCHAUDIO_NORMALIZE_EPS}
    return _write_bundle(graph, reference, out, table=table, source_tokens=source_tokens, frame_stride=frame_stride,
                         receptive_field=receptive_field, sample_rate=16000, name=name, int8=int8, fp16=fp16,
                         source=describe_source(kind="torchaudio", checkpoint=checkpoint.name, builder=description["builder"]),
                         extra=extra, log=log)  # fmt: skip



def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, flush=True)


__all__ = ["CTCGraph", "CheckpointError", "ParityError", "conv_geometry", "ctc_token_table", "export_wav2vec2_hf",
           "export_wav2vec2_torchaudio", "hf_token_table", "load_hf_directory"]
