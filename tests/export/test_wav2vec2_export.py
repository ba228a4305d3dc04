"""wav2vec 2.0 export: Hugging Face directories and torchaudio state dicts to bundles the server runs.

Tiny random models stand in for published ones: the same files, the same vocabulary
(uppercase letters, `<pad>` blank, `|`, `<s>`, `</s>`, `<unk>`), built in-process.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
torchaudio = pytest.importorskip("torchaudio")

from transformers import (  # noqa: E402
    Wav2Vec2Config,
    Wav2Vec2CTCTokenizer,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2ForCTC,
    Wav2Vec2Processor,
)

from app.asr.decoders import ctc_segments  # noqa: E402
from app.asr.manifest import Manifest  # noqa: E402
from app.asr.runtime import AcousticModel, FrameGeometry, create_session  # noqa: E402
from export.cli import main  # noqa: E402
from export.wav2vec2 import ctc_token_table  # noqa: E402

torch.set_num_threads(1)

LETTERS = "ETAOINSHRDLUCMWFGYPBVKXJQZ'"
VOCAB = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, **{c: i + 5 for i, c in enumerate(LETTERS)}}
SPECIAL_TEXT = re.compile(r"<s>|</s>|<unk>")
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64, "conv_dim": (32,) * 7,
        "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4}  # fmt: skip


def write_hf_model(directory: Path, *, do_normalize: bool, published_layout: bool, seed: int = 0, **config: object) -> Path:
    """A random Wav2Vec2ForCTC with tokenizer and feature-extractor files.

    `published_layout`: the files as on the Hub for facebook/wav2vec2-base-960h (hand-written
    tokenizer_config.json, special_tokens_map.json, preprocessor_config.json); otherwise
    what `Wav2Vec2Processor.save_pretrained` writes today.
    """
    directory.mkdir(parents=True)
    torch.manual_seed(seed)
    model = Wav2Vec2ForCTC(Wav2Vec2Config(vocab_size=len(VOCAB), pad_token_id=0, **{**TINY, **config}))
    with torch.no_grad():  # confident, varied outputs, as a trained model has (random heads are nearly flat)
        model.lm_head.weight.normal_(0.0, 1.0)
        model.lm_head.bias[4] += 8.0  # word separators often enough to matter
    model.save_pretrained(directory)
    (directory / "vocab.json").write_text(json.dumps(VOCAB))
    if published_layout:
        (directory / "tokenizer_config.json").write_text(json.dumps({"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>",
                                                                     "do_lower_case": False, "word_delimiter_token": "|"}))  # fmt: skip
        (directory / "special_tokens_map.json").write_text(json.dumps({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}))
        (directory / "preprocessor_config.json").write_text(json.dumps({"do_normalize": do_normalize, "feature_size": 1, "padding_side": "right",
                                                                        "padding_value": 0.0, "return_attention_mask": False, "sampling_rate": 16000}))  # fmt: skip
    else:
        tokenizer = Wav2Vec2CTCTokenizer(str(directory / "vocab.json"))
        extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=do_normalize, return_attention_mask=False)
        Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(directory)
    return directory


def speech_like(samples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 16000
    f0 = rng.uniform(100, 220)
    voiced = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 6)) * (0.6 + 0.4 * np.sin(2 * np.pi * 2.5 * t))
    return (0.2 * voiced + 0.05 * rng.standard_normal(samples)).astype(np.float32)


def runtime_model(bundle: Path, precision: str = "fp32") -> tuple[Manifest, AcousticModel]:
    manifest = Manifest.load(bundle)
    session = create_session(bundle / manifest.files[precision].path, threads=1, providers=["CPUExecutionProvider"])
    return manifest, AcousticModel(session, FrameGeometry.from_manifest(manifest))


def greedy_text(manifest: Manifest, emissions: np.ndarray) -> str:
    return manifest.tokens.decode([tok for tok, _ in ctc_segments(emissions.argmax(-1), manifest.tokens.blank_id or 0)])


LAYER_NORM = {"feat_extract_norm": "layer", "do_stable_layer_norm": True, "conv_bias": True}  # the wav2vec2-large-lv60 family


@pytest.mark.parametrize(("do_normalize", "published_layout", "config"), [(True, True, {}), (False, False, LAYER_NORM)])
def test_hf_bundle_matches_hugging_face(tmp_path: Path, do_normalize: bool, published_layout: bool, config: dict[str, object],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """base-960h-like (group norm, normalised input) and lv60-like (layer norm, here raw input)."""
    source = write_hf_model(tmp_path / "hf", do_normalize=do_normalize, published_layout=published_layout, **config)
    out = tmp_path / "bundle"
    assert main(["wav2vec2", str(source), "-o", str(out), "--int8"]) == 0
    printed = capsys.readouterr().out
    assert "parity fp32 vs PyTorch" in printed and "parity int8 vs fp32" in printed

    manifest, acoustic = runtime_model(out)
    assert manifest.architecture == "wav2vec2" and manifest.criterion == "ctc" and manifest.context == "full"
    assert (manifest.frame_stride, manifest.receptive_field, manifest.min_samples) == (320, 400, 400)
    assert manifest.input_normalize is do_normalize and set(manifest.files) == {"fp32", "int8"}
    assert manifest.parity["fp32"]["max_relative_error"] < 1e-4 and manifest.parity["int8"]["greedy_agreement"] >= 0.95
    tokens = manifest.tokens
    assert tokens.blank == "<pad>" and tokens.word_separator == "|" and set(tokens.special) == {"<s>", "</s>", "<unk>"}
    assert tokens.tokens[5:] == tuple(LETTERS.lower()) and manifest.extra["source_tokens"][5:] == list(LETTERS)

    model = Wav2Vec2ForCTC.from_pretrained(source).eval()
    processor = Wav2Vec2Processor.from_pretrained(source)
    seen = set()
    for samples in (400, 1600, 12345, 48000):
        wave = speech_like(samples, samples)
        emissions = acoustic.emissions(wave)
        values = processor(wave, sampling_rate=16000, return_tensors="pt").input_values
        with torch.no_grad():
            logits = model(values).logits
        np.testing.assert_allclose(emissions, logits.log_softmax(-1)[0].numpy(), atol=1e-4)
        if samples == 12345 and config:  # the normalisation choice is visible in the output
            with torch.no_grad():
                other = model(torch.from_numpy((wave - wave.mean()) / wave.std())[None] if not do_normalize else torch.from_numpy(wave)[None]).logits
            assert np.abs(other.log_softmax(-1)[0].numpy() - emissions).max() > 1e-2
        ids = logits.argmax(-1)
        seen.update(ids[0].tolist())
        reference = processor.batch_decode(ids)[0]  # keeps "<unk>" and friends as text, uppercase
        assert greedy_text(manifest, emissions) == " ".join(SPECIAL_TEXT.sub("", reference).lower().split())
    assert seen & {1, 2, 3} and 4 in seen and len(seen) > 10  # the comparison saw specials, separators and letters


def test_hf_fp16_graph(tmp_path: Path) -> None:
    """An fp16 graph next to fp32: ONNX Runtime's CPU provider runs it, so the exporter verifies it."""
    source = write_hf_model(tmp_path / "hf", do_normalize=True, published_layout=True, seed=1, **LAYER_NORM)
    out = tmp_path / "bundle"
    assert main(["wav2vec2", str(source), "-o", str(out), "--fp16", "--name", "tiny-lv60"]) == 0
    manifest, acoustic = runtime_model(out)
    assert manifest.name == "tiny-lv60" and set(manifest.files) == {"fp32", "fp16"}
    assert manifest.parity["fp16"]["verified"] and manifest.parity["fp16"]["greedy_agreement"] >= 0.95
    model = Wav2Vec2ForCTC.from_pretrained(source).eval()
    wave = speech_like(20000, 3)
    with torch.no_grad():
        normalised = (wave - wave.mean()) / np.sqrt(wave.var() + 1e-7)
        reference = model(torch.from_numpy(normalised)[None]).logits.log_softmax(-1)[0].numpy()
    np.testing.assert_allclose(acoustic.emissions(wave), reference, atol=1e-4)
    _, half = runtime_model(out, "fp16")
    assert (half.emissions(wave).argmax(-1) == reference.argmax(-1)).mean() >= 0.95


TORCHAUDIO_TINY = {
    "extractor_mode": "group_norm", "extractor_conv_layer_config": [[32, 10, 5]] + [[32, 3, 2]] * 4 + [[32, 2, 2]] * 2,
    "extractor_conv_bias": False, "encoder_embed_dim": 32, "encoder_projection_dropout": 0.1, "encoder_pos_conv_kernel": 16,
    "encoder_pos_conv_groups": 4, "encoder_num_layers": 2, "encoder_num_heads": 2, "encoder_attention_dropout": 0.1,
    "encoder_ff_interm_features": 64, "encoder_ff_interm_dropout": 0.1, "encoder_dropout": 0.1, "encoder_layer_norm_first": False,
    "encoder_layer_drop": 0.1,
}  # fmt: skip
TORCHAUDIO_TOKENS = ["-", "|", *LETTERS]  # torchaudio's ASR bundles: "-" is the blank


@pytest.mark.parametrize("input_normalize", [False, True])
def test_torchaudio_bundle_matches_torchaudio(tmp_path: Path, input_normalize: bool) -> None:
    spec = tmp_path / "builder.json"
    spec.write_text(json.dumps({**TORCHAUDIO_TINY, "input_normalize": input_normalize}))
    kwargs = {**TORCHAUDIO_TINY, "extractor_conv_layer_config": [tuple(c) for c in TORCHAUDIO_TINY["extractor_conv_layer_config"]]}
    torch.manual_seed(2)
    model = torchaudio.models.wav2vec2_model(**kwargs, aux_num_out=len(TORCHAUDIO_TOKENS)).eval()
    with torch.no_grad():
        model.aux.weight.normal_(0.0, 1.0)
    checkpoint = tmp_path / "state.pt"
    torch.save(model.state_dict(), checkpoint)
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("\n".join(TORCHAUDIO_TOKENS) + "\n")
    out = tmp_path / "bundle"
    assert main(["wav2vec2-torchaudio", str(checkpoint), "--builder", str(spec), "--tokens", str(tokens), "--blank", "-", "-o", str(out), "--int8"]) == 0

    manifest, acoustic = runtime_model(out)
    assert manifest.tokens.blank == "-" and manifest.tokens.tokens[2:] == tuple(LETTERS.lower()) and manifest.tokens.special == ()
    assert manifest.input_normalize is input_normalize and (manifest.frame_stride, manifest.receptive_field) == (320, 400)
    assert manifest.extra["config"]["builder"] == "wav2vec2_model"
    for samples in (400, 9999, 40000):
        wave = speech_like(samples, samples)
        x = torch.from_numpy(wave)[None]
        if input_normalize:
            x = torch.nn.functional.layer_norm(x, x.shape)  # what torchaudio's large-model bundles do
        with torch.no_grad():
            emissions, _ = model(x)
        reference = emissions.log_softmax(-1)[0].numpy()
        np.testing.assert_allclose(acoustic.emissions(wave), reference, atol=1e-4)
        letters = [TORCHAUDIO_TOKENS[i] for i, _ in ctc_segments(reference.argmax(-1), 0)]
        assert greedy_text(manifest, reference) == " ".join("".join(" " if t == "|" else t for t in letters).lower().split())


def test_token_table_lowercases_and_marks_specials() -> None:
    table = ctc_token_table(["<pad>", "<s>", "|", "A", "B", "'", "<unk>"], blank="<pad>", special=["<s>"])
    assert table.tokens == ("<pad>", "<s>", "|", "a", "b", "'", "<unk>") and table.special == ("<s>", "<unk>")
    assert table.decode([3, 1, 4, 2, 6, 3]) == "ab a"
    cased = ctc_token_table(["<pad>", "a", "A"], blank="<pad>")  # lowercasing would merge two tokens: keep as is
    assert cased.tokens == ("<pad>", "a", "A")


def hf_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) != 0
    return capsys.readouterr().err


def test_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "out")
    source = write_hf_model(tmp_path / "hf", do_normalize=True, published_layout=True)
    (source / "vocab.json").unlink()
    assert "no vocab.json" in hf_error(["wav2vec2", str(source), "-o", out], capsys)

    assert "no config.json" in hf_error(["wav2vec2", str(tmp_path), "-o", out], capsys)
    assert "no such directory" in hf_error(["wav2vec2", str(tmp_path / "missing"), "-o", out], capsys)

    other = tmp_path / "hubert"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "hubert", "architectures": ["HubertForCTC"]}))
    assert "model_type 'hubert' is not wav2vec2" in hf_error(["wav2vec2", str(other), "-o", out], capsys)

    pretraining = tmp_path / "pretraining"
    pretraining.mkdir()
    (pretraining / "config.json").write_text(json.dumps({"model_type": "wav2vec2", "architectures": ["Wav2Vec2ForPreTraining"]}))
    assert "not Wav2Vec2ForCTC" in hf_error(["wav2vec2", str(pretraining), "-o", out], capsys)

    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text(json.dumps({"model_type": "wav2vec2", "architectures": ["Wav2Vec2ForCTC"]}))
    assert "no weights" in hf_error(["wav2vec2", str(no_weights), "-o", out], capsys)

    tokens = tmp_path / "tokens.txt"
    tokens.write_text("<blank>\n|\na\n")
    state = tmp_path / "state.pt"
    torch.save({"not": torch.zeros(1)}, state)
    assert "unknown torchaudio builder 'wav2vec3'" in hf_error(["wav2vec2-torchaudio", str(state), "--builder", "wav2vec3", "--tokens", str(tokens), "-o", out], capsys)
    spec = tmp_path / "builder.json"
    spec.write_text(json.dumps(TORCHAUDIO_TINY))
    assert "does not fit torchaudio wav2vec2_model with 3 output classes" in hf_error(
        ["wav2vec2-torchaudio", str(state), "--builder", str(spec), "--tokens", str(tokens), "-o", out], capsys)
    assert "blank token '-' is not in the token list" in hf_error(
        ["wav2vec2-torchaudio", str(state), "--builder", str(spec), "--tokens", str(tokens), "--blank", "-", "-o", out], capsys)
