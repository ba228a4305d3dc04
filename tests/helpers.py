"""Tiny models built in-process and exported to bundles; synthetic audio in any format."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from app.asr.tokens import asg_letters, ctc_letters
from export.bench_models import speechlike as bench_speechlike
from models.asg import ASGLoss
from models.wav2letter import Wav2Letter, Wav2LetterConfig


def save_wav2letter_checkpoint(path: Path, *, criterion: str = "asg", channels: int = 32, depth: int = 2, kernel: int = 5, seed: int = 0) -> Path:
    """A random small Wav2Letter saved exactly the way `models.train.acoustic` saves one."""
    torch.manual_seed(seed)
    table = asg_letters() if criterion == "asg" else ctc_letters()
    config = Wav2LetterConfig.small(len(table), channels=channels, kernel=kernel, depth=depth, hidden=64)
    model = Wav2Letter(config).eval()
    with torch.no_grad():  # give BatchNorm statistics that make the outputs vary with the input
        model.input_norm.running_mean.fill_(-6.0)
        model.input_norm.running_var.fill_(9.0)
        model.head.weight.mul_(5.0)
    transitions = None
    if criterion == "asg":
        loss = ASGLoss(len(table))
        with torch.no_grad():
            loss.transitions.normal_(0, 0.5)
        transitions = loss.transitions.detach().clone()
    torch.save({"architecture": "wav2letter", "criterion": criterion, "config": config.to_json(), "tokens": table.to_json(),
                "model": model.state_dict(), "transitions": transitions}, path)
    return path


def speechlike(seconds: float, rate: int = 16000, *, seed: int = 0, channels: int = 1) -> np.ndarray:
    """The benchmark's harmonic bursts with pauses; several channels are scaled copies."""
    wave = bench_speechlike(seconds, rate, seed=seed)
    return np.stack([wave * (1 - 0.3 * c) for c in range(channels)], axis=1) if channels > 1 else wave


def encode(wave: np.ndarray, rate: int, *, format: str = "WAV", subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, wave, rate, format=format, subtype=subtype)
    return buffer.getvalue()


TINY_TEXT = ["the cat sat on the mat", "a dog ran in the park", "hello world", "the quick brown fox", "she said hello to the cat"] * 3


def build_tiny_bundles(root: Path, work: Path) -> Path:
    """Tiny random bundles through the real export step: "tiny-asg" (int8 too) and "tiny-ctc", both with
    a 3-gram LM and lexicon, and the Transformer-XL LM "tiny-txl". Used by the `models_dir` fixture and
    by the reliability commands that run outside pytest."""
    from export.bundle_files import attach_decoding_files
    from export.txl import export_transformer_xl
    from export.wav2letter import export_wav2letter

    export_wav2letter(save_wav2letter_checkpoint(work / "asg.pt", criterion="asg"), root / "tiny-asg", int8=True, log=False)
    export_wav2letter(save_wav2letter_checkpoint(work / "ctc.pt", criterion="ctc", seed=1), root / "tiny-ctc", log=False)
    lm, lexicon = build_tiny_ngram(work)
    attach_decoding_files(root / "tiny-asg", lm=lm, lexicon=lexicon)
    attach_decoding_files(root / "tiny-ctc", lm=lm, lexicon=lexicon)
    save_txl_checkpoint(work / "txl.pt")
    export_transformer_xl(work / "txl.pt", root / "tiny-txl")
    return root


def build_tiny_ngram(work: Path) -> tuple[Path, Path]:
    from app.asr.lmbuild import BuildOptions, build_lm

    text = work / "text.txt"
    text.write_text("\n".join(TINY_TEXT) + "\n")
    build_lm(text=text, arpa=work / "lm.arpa", lexicon=work / "lexicon.txt", options=BuildOptions(order=3, vocab_size=None))
    return work / "lm.arpa", work / "lexicon.txt"


def save_txl_checkpoint(path: Path) -> Path:
    from app.asr.tokens import lm_letters
    from models.train.txl import save_checkpoint
    from models.transformer_xl import TransformerXL

    torch.manual_seed(0)
    model = TransformerXL(vocab_size=len(lm_letters()), d_model=32, n_head=2, d_head=16, d_inner=64, n_layer=2, mem_len=64, dropout=0.0)
    save_checkpoint(path, model.eval(), step=1)
    return path
