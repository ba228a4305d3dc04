"""The project's wav2vec 2.0: tokenizer and config, CTC fine-tuning and pretraining recipes, export of their checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

pytest.importorskip("transformers")

from app.asr.manifest import Manifest  # noqa: E402
from app.asr.tokens import ctc_letters  # noqa: E402
from models.train.data import Clip  # noqa: E402
from models.train.wav2vec2 import FinetuneConfig, finetune, greedy_transcripts, main  # noqa: E402
from models.train.wav2vec2_pretrain import PretrainConfig, pretrain  # noqa: E402
from models.wav2vec2 import build_tokenizer, conv_geometry, output_frames, small_config, waveform_batch  # noqa: E402

torch.set_num_threads(1)

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64, "conv_dim": (32,) * 7,
        "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4, "layerdrop": 0.0, "hidden_dropout": 0.0,
        "attention_dropout": 0.0, "mask_time_prob": 0.0, "num_codevectors_per_group": 16, "codevector_dim": 32,
        "proj_codevector_dim": 16, "num_negatives": 10}  # fmt: skip
LETTER_HZ = {c: 300 + 90 * i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")}
WORDS = ["cab", "bad", "dab", "ace", "fed"]


def speak(text: str, rng: np.random.Generator) -> np.ndarray:
    """A letter-per-tone rendering: each letter 0.1 s of its own frequency, pauses between words."""
    t = np.arange(1600) / 16000
    pieces = []
    for c in text:
        if c == " ":
            pieces.append(np.zeros(1600))
        else:
            pieces.append(0.3 * np.sin(2 * np.pi * LETTER_HZ[c] * t) * np.hanning(1600))
    wave = np.concatenate([np.zeros(800), *pieces, np.zeros(800)])
    return (wave + 0.005 * rng.standard_normal(len(wave))).astype(np.float32)


def clips(count: int, seed: int) -> list[Clip]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        text = " ".join(rng.choice(WORDS, size=2))
        out.append(Clip((speak(text, rng) * 32767).astype(np.int16), text, "tone"))
    return out


def test_geometry_and_tokenizer() -> None:
    from transformers import Wav2Vec2ForCTC

    config = small_config(29, **TINY)
    assert conv_geometry(config.conv_kernel, config.conv_stride) == (320, 400)
    model = Wav2Vec2ForCTC(config)
    for samples in (400, 719, 720, 16000, 16123):  # Hugging Face's own frame count agrees
        assert output_frames(config, samples) == int(model._get_feat_extract_output_lengths(samples))
    assert output_frames(config, 399) == 0
    tokenizer = build_tokenizer()
    assert tokenizer.get_vocab() == ctc_letters().index and tokenizer.pad_token == "<blank>" and len(tokenizer) == 29
    ids = ctc_letters().encode("he a")
    assert tokenizer.decode([ids[0], ids[0], 0, *ids[1:]]) == "he a"  # merges repeats, drops the blank, | -> space


def test_batch_rows_equal_single_calls() -> None:
    """Layer-norm feature encoder + attention mask: a padded row equals the row alone."""
    from transformers import Wav2Vec2ForCTC

    torch.manual_seed(0)
    model = Wav2Vec2ForCTC(small_config(29, **TINY)).eval()
    waves = [np.random.default_rng(i).standard_normal(n).astype(np.float32) * 0.1 for i, n in enumerate((16000, 9000))]
    values, mask = waveform_batch(waves)
    with torch.no_grad():
        batch = model(values, attention_mask=mask).logits
        for i, wave in enumerate(waves):
            single_values, single_mask = waveform_batch([wave])
            single = model(single_values, attention_mask=single_mask).logits[0]
            frames = output_frames(model.config, len(wave))
            np.testing.assert_allclose(batch[i, :frames].numpy(), single[:frames].numpy(), atol=1e-4)


def test_finetune_loss_goes_down_resumes_and_exports(tmp_path: Path) -> None:
    train, dev = clips(16, 0), clips(4, 1)
    config = FinetuneConfig(max_steps=30, minutes=10, batch_seconds=8, lr=3e-3, warmup=3, log_every=1, eval_every=1000,
                            augment=False, checkpoint_minutes=100)  # fmt: skip
    out = tmp_path / "run"
    finetune(train, dev, out, config=config, model_config=small_config(29, **TINY), echo=lambda _: None)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    losses = [entry["loss"] for entry in log if "loss" in entry]
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    assert any("dev_cer" in entry for entry in log)
    for name in ("config.json", "model.safetensors", "vocab.json", "tokenizer_config.json", "preprocessor_config.json", "trainer_state.pt"):
        assert (out / "last" / name).is_file(), name
    assert (out / "best" / "config.json").is_file()

    longer = FinetuneConfig(**{**config.__dict__, "max_steps": 33})
    model = finetune(train, dev, out, config=longer, resume=True, echo=lambda _: None)
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines() if "loss" in line]
    assert steps[-3:] == [31, 32, 33]
    assert torch.load(out / "last" / "trainer_state.pt", weights_only=False)["step"] == 33

    # The checkpoint directory exports as it is; the bundle decodes like the recipe does.
    from app.asr.runtime import AcousticModel, FrameGeometry, create_session
    from export.wav2vec2 import export_wav2vec2_hf

    bundle = tmp_path / "bundle"
    export_wav2vec2_hf(out / "last", bundle, log=False)
    manifest = Manifest.load(bundle)
    assert manifest.input_normalize and manifest.tokens.blank == "<blank>" and manifest.tokens.tokens == ctc_letters().tokens
    acoustic = AcousticModel(create_session(bundle / "model.onnx", threads=1, providers=["CPUExecutionProvider"]), FrameGeometry.from_manifest(manifest))
    from app.asr.decoders import ctc_segments

    wave = dev[0].audio.astype(np.float32) / 32768
    emissions = acoustic.emissions(wave)
    text = manifest.tokens.decode([tok for tok, _ in ctc_segments(emissions.argmax(-1), manifest.tokens.blank_id or 0)])
    assert text == greedy_transcripts(model, [wave], ctc_letters())[0]


def test_cli_runs_from_manifests(tmp_path: Path) -> None:
    rows = []
    for i, clip in enumerate(clips(4, 2)):
        path = tmp_path / f"clip{i}.wav"
        sf.write(path, clip.audio, 16000, subtype="PCM_16")
        rows.append(json.dumps({"audio": path.name, "text": clip.text}))
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("\n".join(rows) + "\n")
    sizes = ["--hidden", "32", "--layers", "1", "--heads", "2", "--intermediate", "64", "--conv-dim", "16", "--threads", "1"]
    main(["finetune", "--train", str(manifest), "--dev", str(manifest), "--out", str(tmp_path / "ft"), "--max-steps", "2",
          "--no-augment", "--batch-seconds", "4", *sizes])  # fmt: skip
    assert (tmp_path / "ft" / "last" / "model.safetensors").is_file()
    main(["pretrain", "--train", str(manifest), "--out", str(tmp_path / "pt"), "--max-steps", "2", "--mask-time-length", "4",
          "--batch-seconds", "4", *sizes])  # fmt: skip
    assert (tmp_path / "pt" / "last" / "model.safetensors").is_file()
    # Fine-tuning starts from the pretraining checkpoint (a fresh CTC head on its encoder).
    main(["finetune", "--train", str(manifest), "--dev", str(manifest), "--out", str(tmp_path / "ft2"), "--max-steps", "1",
          "--no-augment", "--batch-seconds", "4", "--init", str(tmp_path / "pt" / "last"), "--threads", "1"])  # fmt: skip
    from transformers import Wav2Vec2ForCTC, Wav2Vec2ForPreTraining

    pre = Wav2Vec2ForPreTraining.from_pretrained(tmp_path / "pt" / "last")
    tuned = Wav2Vec2ForCTC.from_pretrained(tmp_path / "ft2" / "last")
    assert tuned.config.vocab_size == 29 and tuned.config.hidden_size == 32
    assert torch.equal(pre.wav2vec2.feature_extractor.conv_layers[0].conv.weight, tuned.wav2vec2.feature_extractor.conv_layers[0].conv.weight)


def test_pretraining_loss_is_finite_with_both_terms_and_goes_down(tmp_path: Path) -> None:
    waves = [c.audio for c in clips(12, 3)]
    config = PretrainConfig(max_steps=60, minutes=10, batch_seconds=6, lr=2e-3, warmup=3, log_every=1, mask_time_length=4,
                            checkpoint_minutes=100)  # fmt: skip
    out = tmp_path / "pre"
    pretrain(waves, out, config=config, model_config=small_config(29, **TINY), echo=lambda _: None)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(log) == 60
    for entry in log:
        assert np.isfinite(entry["loss"]) and entry["contrastive_loss"] > 0 and 0 <= entry["diversity_loss"] <= 1
        assert entry["loss"] == pytest.approx(entry["contrastive_loss"] + 0.1 * entry["diversity_loss"], rel=1e-4)
    # ln(1 + num_negatives) is the loss of a model that cannot tell the target from its
    # distractors; training goes below it (about 2.5 -> 2.25 over these 60 steps; seeds 0-3
    # end between 2.15 and 2.32).
    losses = [entry["loss"] for entry in log]
    assert np.mean(losses[-10:]) < min(np.mean(losses[:10]), np.log(1 + TINY["num_negatives"]) - 0.04)
    assert (out / "last" / "trainer_state.pt").is_file()
