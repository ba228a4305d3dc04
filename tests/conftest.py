"""Session-wide fixtures: tiny ASG and CTC Wav2Letter bundles exported through the real export step."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.helpers import save_wav2letter_checkpoint


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from export.bundle_files import attach_decoding_files
    from export.txl import export_transformer_xl
    from export.wav2letter import export_wav2letter

    root = tmp_path_factory.mktemp("models")
    work = tmp_path_factory.mktemp("checkpoints")
    export_wav2letter(save_wav2letter_checkpoint(work / "asg.pt", criterion="asg"), root / "tiny-asg", int8=True, log=False)
    export_wav2letter(save_wav2letter_checkpoint(work / "ctc.pt", criterion="ctc", seed=1), root / "tiny-ctc", log=False)
    lm, lexicon = build_tiny_ngram(work)
    attach_decoding_files(root / "tiny-asg", lm=lm, lexicon=lexicon)
    attach_decoding_files(root / "tiny-ctc", lm=lm, lexicon=lexicon)
    save_txl_checkpoint(work / "txl.pt")
    export_transformer_xl(work / "txl.pt", root / "tiny-txl")
    return root


TINY_TEXT = ["the cat sat on the mat", "a dog ran in the park", "hello world", "the quick brown fox", "she said hello to the cat"] * 3


def build_tiny_ngram(work: Path) -> tuple[Path, Path]:
    from app.asr.lmbuild import BuildOptions, build_lm

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


@pytest.fixture(scope="session")
def settings(models_dir: Path) -> Settings:
    return Settings(models_dir=models_dir, default_model="tiny-asg", threads=1, workers=2)


@pytest.fixture()
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c
