"""Wav2Letter: torchaudio equivalence, frame geometry, and the training recipe learning."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torchaudio.models import Wav2Letter as TorchaudioWav2Letter

from models.wav2letter import Wav2Letter, Wav2LetterConfig, load_torchaudio_state_dict

torch.set_num_threads(1)


def test_loads_torchaudio_state_dicts_with_identical_output() -> None:
    torch.manual_seed(0)
    reference = TorchaudioWav2Letter(num_classes=29, input_type="waveform").eval()
    ours = load_torchaudio_state_dict(reference.state_dict(), Wav2LetterConfig.torchaudio(29)).eval()
    x = torch.randn(2, 16000)
    with torch.no_grad():
        expected = reference(x[:, None, :])  # [B, V, T] log-probabilities
        got = ours(x)  # [B, T, V]
    torch.testing.assert_close(got.transpose(1, 2), expected, rtol=1e-5, atol=1e-5)


def test_loads_torchaudio_mfcc_models() -> None:
    torch.manual_seed(0)
    reference = TorchaudioWav2Letter(num_classes=10, input_type="mfcc", num_features=13).eval()
    ours = load_torchaudio_state_dict(reference.state_dict(), Wav2LetterConfig.torchaudio(10, input_type="mfcc", num_features=13)).eval()
    features = torch.randn(1, 13, 200)
    with torch.no_grad():
        torch.testing.assert_close(ours(features).transpose(1, 2), reference(features), rtol=1e-5, atol=1e-5)


def test_paper_size_and_small_default() -> None:
    paper = Wav2Letter(Wav2LetterConfig.paper(30))
    small = Wav2Letter(Wav2LetterConfig.small(30))
    assert sum(p.numel() for p in paper.parameters()) > 20e6
    assert sum(p.numel() for p in small.parameters()) < 8e6


@pytest.mark.parametrize("samples", [400, 1600, 16000, 33333])
def test_frame_geometry_matches_the_module(samples: int) -> None:
    config = Wav2LetterConfig.small(30, channels=16, depth=2)
    model = Wav2Letter(config).eval()
    left, right = config.padding()
    with torch.no_grad():
        out = model(torch.zeros(1, samples + left + right))
    assert out.shape[1] == config.output_frames(samples + left + right) == samples // config.frame_stride + 1


def test_output_frame_depends_only_on_its_receptive_field() -> None:
    config = Wav2LetterConfig.small(30, channels=16, depth=2)
    model = Wav2Letter(config).eval()
    x = torch.randn(1, config.receptive_field + 5 * config.frame_stride)
    with torch.no_grad():
        full = model(x)[0]
        first = model(x[:, : config.receptive_field])[0]
    torch.testing.assert_close(full[0], first[0], rtol=1e-5, atol=1e-5)


@pytest.mark.integration  # trains
@pytest.mark.parametrize("criterion", ["asg", "ctc"])
def test_training_recipe_loss_goes_down(tmp_path: Path, criterion: str) -> None:
    """A few steps on a handful of clips of real AN4 speech (or synthetic tones without it)."""
    from models.train.wav2letter import main

    an4 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "an4_train" / "manifest.jsonl"
    rows = []
    if an4.exists():
        for line in an4.read_text().splitlines()[:6]:
            row = json.loads(line)
            rows.append({"audio": str(an4.parent / row["audio"]), "text": row["text"]})
    else:
        for i, text in enumerate(["yes", "no", "go", "stop"]):
            path = tmp_path / f"{i}.wav"
            sf.write(path, np.sin(np.arange(16000) * (0.05 + 0.02 * i)).astype(np.float32) * 0.3, 16000)
            rows.append({"audio": str(path), "text": text})
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "run"
    main(["--train", str(manifest), "--dev", str(manifest), "--out", str(out), "--criterion", criterion, "--channels", "32", "--depth", "2",
          "--kernel", "5", "--max-steps", "50", "--eval-every", "1000", "--log-every", "10", "--batch-seconds", "30", "--lr", "3e-3", "--warmup", "5",
          "--no-augment", "--threads", "1"])
    losses = [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines() if "loss" in json.loads(line)]
    assert losses[-1] < 0.7 * losses[0]
    state = torch.load(out / "last.pt", weights_only=False)
    assert state["criterion"] == criterion and (state["transitions"] is not None) == (criterion == "asg")


def test_warm_start_inherits_the_architecture_and_refuses_a_different_one(tmp_path: Path) -> None:
    """`--init` without sizes trains the checkpoint's own network, every weight copied (the
    scoring layer row by row, CTC to ASG here); sizes that do not fit stop the run instead of
    quietly training a network that kept only the layers that happened to match."""
    from app.asr.tokens import asg_letters, ctc_letters
    from models.train.wav2letter import main
    from tests.helpers import save_wav2letter_checkpoint, speechlike

    source = save_wav2letter_checkpoint(tmp_path / "ctc.pt", criterion="ctc", channels=24, depth=1, kernel=3)
    manifest = tmp_path / "train.jsonl"
    path = tmp_path / "a.wav"
    sf.write(path, speechlike(1.0), 16000)
    manifest.write_text(json.dumps({"audio": str(path), "text": "go"}))
    common = ["--train", str(manifest), "--dev", str(manifest), "--criterion", "asg", "--init", str(source), "--max-steps", "0",
              "--eval-every", "1000", "--no-augment", "--threads", "1"]  # fmt: skip
    main([*common, "--out", str(tmp_path / "warm")])
    warm, ctc = torch.load(tmp_path / "warm" / "last.pt", weights_only=False), torch.load(source, weights_only=False)
    assert warm["config"]["layers"] == ctc["config"]["layers"]  # 24 channels, 64-wide 1x1 layer: not the defaults
    for name, value in ctc["model"].items():
        if not name.startswith("head."):
            assert torch.equal(warm["model"][name], value), name
    asg_tokens, ctc_tokens = asg_letters().tokens, ctc_letters().tokens
    row = asg_tokens.index("e")
    assert torch.equal(warm["model"]["head.weight"][row], ctc["model"]["head.weight"][ctc_tokens.index("e")])
    with pytest.raises(SystemExit, match="architecture differs"):
        main([*common, "--out", str(tmp_path / "wrong"), "--channels", "32"])


@pytest.mark.integration  # a whole export, then the runtime
def test_torchaudio_wav2letter_exports_and_serves(tmp_path: Path) -> None:
    """A torchaudio Wav2Letter state dict through `asr-export`, then the server's runtime: same greedy output."""
    from app.asr.bundle import load_bundles
    from app.asr.decoders import greedy_ctc
    from export.cli import main
    from tests.helpers import speechlike

    tokens = ["<blank>", "|", "'", *"abcdefghijklmnopqrstuvwxyz"]
    (tmp_path / "tokens.txt").write_text("\n".join(tokens))
    torch.manual_seed(0)
    reference = TorchaudioWav2Letter(num_classes=len(tokens), input_type="waveform").eval()
    torch.save(reference.state_dict(), tmp_path / "ta.pt")
    assert main(["wav2letter", str(tmp_path / "ta.pt"), "--torchaudio-tokens", str(tmp_path / "tokens.txt"), "-o", str(tmp_path / "b" / "ta-w2l")]) == 0
    bundle = load_bundles(tmp_path / "b", threads=1).acoustic["ta-w2l"]
    audio = speechlike(1.5)
    with torch.no_grad():
        expected = reference(torch.from_numpy(audio)[None, None])[0].T.numpy()  # [T, V]
    got = bundle.models["fp32"].emissions(audio)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
    assert greedy_ctc(got, 0) == greedy_ctc(expected, 0)


def test_asg_targets_are_surrounded_by_the_separator() -> None:
    """ASG has no blank: leading and trailing silence belong to a separator label that decodes to
    nothing; CTC targets keep the plain spelling (its blank absorbs silence)."""
    from app.asr.tokens import asg_letters, ctc_letters
    from models.train.wav2letter import target_ids

    asg, ctc = asg_letters(), ctc_letters()
    sep = asg.index["|"]
    ids = target_ids("to be", asg)
    assert ids[0] == ids[-1] == sep and ids[1:-1] == asg.encode("to be")
    assert asg.decode(ids) == "to be"
    assert target_ids("to be", ctc) == ctc.encode("to be")
