"""Attaching decoding side files to a bundle: a replaced LM or lexicon leaves the bundle."""

from __future__ import annotations

from pathlib import Path

from app.asr.manifest import Manifest
from export.bundle_files import attach_decoding_files
from export.wav2letter import export_wav2letter
from tests.helpers import build_tiny_ngram, save_wav2letter_checkpoint

TRIE = Path(__file__).resolve().parents[1] / "asr" / "data" / "tiny-trie.klm"


def test_a_replaced_lm_leaves_the_bundle(tmp_path: Path) -> None:
    bundle = tmp_path / "tiny-asg"
    export_wav2letter(save_wav2letter_checkpoint(tmp_path / "asg.pt"), bundle, log=False)
    arpa, lexicon = build_tiny_ngram(tmp_path)
    manifest = attach_decoding_files(bundle, lm=arpa, lexicon=lexicon, lm_weight=0.5)
    assert manifest.decoding.lm == "lm.arpa" and "lm.arpa" in manifest.side_files and (bundle / "lm.arpa").is_file()

    klm = tmp_path / "lm.klm"
    klm.write_bytes(TRIE.read_bytes())
    manifest = attach_decoding_files(bundle, lm=klm)
    assert manifest.decoding.lm == "lm.klm" and manifest.decoding.lexicon == "lexicon.txt" and manifest.decoding.lm_weight == 0.5
    assert set(manifest.side_files) == {"transitions.npy", "lexicon.txt", "lm.klm"}
    assert not (bundle / "lm.arpa").exists()
    assert Manifest.load(bundle).side_files["lm.klm"].sha256 == manifest.side_files["lm.klm"].sha256

    again = attach_decoding_files(bundle, lm=bundle / "lm.klm", lexicon=bundle / "lexicon.txt")  # the bundle's own files: a no-op
    assert again.side_files == manifest.side_files
