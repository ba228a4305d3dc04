"""Tiny models built in-process and exported to bundles; synthetic audio in any format.

Importing this module needs no torch (the torch-free tests import its audio helpers); building
the tiny bundles does."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from app.asr.numerics import log_softmax
from app.asr.tokens import TokenTable, asg_letters, ctc_letters


def save_wav2letter_checkpoint(path: Path, *, criterion: str = "asg", channels: int = 32, depth: int = 2, kernel: int = 5, seed: int = 0) -> Path:
    """A random small Wav2Letter saved exactly the way `models.train.wav2letter` saves one."""
    import torch

    from models.asg import ASGLoss
    from models.wav2letter import Wav2Letter, Wav2LetterConfig

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
    """Harmonic bursts with pauses, varied enough that random models emit varied tokens (as `asr-bench`'s);
    several channels are scaled copies."""
    wave = _speechlike(seconds, rate, seed=seed)
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
    from models.lm.build import BuildOptions, build_lm

    text = work / "text.txt"
    text.write_text("\n".join(TINY_TEXT) + "\n")
    build_lm(text=text, arpa=work / "lm.arpa", lexicon=work / "lexicon.txt", options=BuildOptions(order=3, vocab_size=None))
    return work / "lm.arpa", work / "lexicon.txt"


def save_txl_checkpoint(path: Path) -> Path:
    import torch

    from app.asr.tokens import lm_letters
    from models.train.txl import save_checkpoint
    from models.transformer_xl import TransformerXL

    torch.manual_seed(0)
    model = TransformerXL(vocab_size=len(lm_letters()), d_model=32, n_head=2, d_head=16, d_inner=64, n_layer=2, mem_len=64, dropout=0.0)
    save_checkpoint(path, model.eval(), step=1)
    return path


# --- the benchmark's synthetic inputs (asr-bench has its own: tests import no benchmark code) -------
def _speechlike(seconds: float, rate: int = 16000, *, seed: int = 0) -> np.ndarray:
    """Harmonic bursts with pauses `[N]` float32: varied enough that random models emit varied tokens."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase) * rng.uniform(0.2, 1.0) / k for k in range(1, 10))
    envelope = (np.sin(2 * np.pi * 2.1 * t) > -0.3).astype(np.float64) * (0.5 + 0.5 * np.sin(2 * np.pi * 5.3 * t) ** 2)
    wave = 0.3 * voiced * envelope + 0.01 * rng.standard_normal(n)
    return (wave / np.abs(wave).max() * 0.8).astype(np.float32)


SYNTHETIC_SENTENCES = ("the cat sat on the mat", "a dog ran in the park", "she said hello to the old man", "the quick brown fox jumps over the lazy dog",
                       "we will meet again in the morning", "it was a cold and dark night", "he opened the door and walked in",
                       "there is no place like home", "they sold their house last year", "my brother reads a book every week")  # fmt: skip


@dataclass(frozen=True)
class EmissionSet:
    """CTC log-probabilities `[T, V]` per utterance over `tokens`, with their reference texts."""

    emissions: list[np.ndarray]
    references: list[str]
    tokens: TokenTable
    frame_rate: float
    note: str

    @property
    def seconds(self) -> float:
        return sum(len(e) for e in self.emissions) / self.frame_rate


def synthetic_emissions(sentences: list[str], *, seed: int = 0, peak: float = 7.0, noise: float = 1.2, confusion: float = 0.03,
                        frame_rate: float = 50.0, source: str = "") -> EmissionSet:
    """Peaky CTC emissions as a trained model's look: each reference letter takes 1-4 frames with
    blanks between, its logit `peak` above the others, Gaussian logit noise `noise`, and a share
    `confusion` of letter frames peaking on a wrong letter. Greedy decoding then makes a
    realistic share of letter errors, which a lexicon and an LM repair."""
    rng = np.random.default_rng(seed)
    table = ctc_letters()
    blank, separator = table.blank_id, table.separator_id
    assert blank is not None and separator is not None
    letters = [i for i in range(len(table)) if i not in (blank, separator)]
    out = []
    for sentence in sentences:
        labels: list[int] = [blank] * int(rng.integers(3, 10))
        ids = table.encode(sentence)
        for i, token in enumerate(ids):
            labels += [token] * int(rng.integers(1, 4)) if token != separator else [separator] * int(rng.integers(1, 3))
            labels += [blank] * int(rng.integers(0 if i + 1 < len(ids) and ids[i + 1] != token else 1, 4))
        labels += [blank] * int(rng.integers(3, 10))
        logits = rng.normal(0.0, noise, size=(len(labels), len(table))).astype(np.float32)
        for t, label in enumerate(labels):
            if label not in (blank, separator) and rng.random() < confusion:
                label = int(rng.choice(letters))
            logits[t, label] += peak
            logits[t, blank] += peak * 0.3  # blank is always a strong second, as in trained CTC models
        out.append(log_softmax(logits))
    return EmissionSet(out, list(sentences), table, frame_rate, f"synthetic peaky CTC emissions of {len(sentences)} sentences from {source}")
