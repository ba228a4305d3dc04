"""Packing the punctuation recipe's prepared arrays for a GPU machine: the round trip is byte-exact."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from models.train.punctuation import main
from models.train.punctuation_pack import ARCHIVE, COLUMNS, SIDE_FILES, pack, pack_heldout, unpack


def write_prepared(directory: Path, *, seed: int = 0) -> Path:
    """Arrays shaped like `prepare`'s: a vocabulary word's suffix bucket follows from the word, an unknown word's does not."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    bucket_of = rng.integers(1, 2049, 300).astype(np.int16)  # a small vocabulary: words recur
    for source, n in (("gutenberg", 5000), ("dev", 700), ("vctk", 1)):
        words = rng.integers(0, 300, n).astype(np.int32)
        words[rng.random(n) < 0.1] = 1
        suffixes = bucket_of[words]
        unknown = words < 2
        suffixes[unknown] = rng.integers(1, 2049, int(unknown.sum()))
        columns = {"words": words, "suffixes": suffixes, "cases": rng.integers(0, 4, n).astype(np.int8), "marks": rng.integers(0, 5, n).astype(np.int8)}
        for column, values in columns.items():
            np.save(directory / f"{source}.{column}.npy", values)
    (directory / "vocab.txt").write_text("the\nand\n", encoding="utf-8")
    (directory / "known.json").write_text(json.dumps({"mr": "Mr."}) + "\n", encoding="utf-8")
    (directory / "info.json").write_text(json.dumps({"suffix_buckets": 2048}) + "\n")
    return directory


def test_unpack_restores_byte_identical_files(tmp_path: Path) -> None:
    prepared = write_prepared(tmp_path / "prepared")
    summary = pack(prepared, tmp_path / "pack" / ARCHIVE)
    assert summary.words == 5701 and summary.bytes < summary.raw_bytes / 2  # random labels: far from the 0.16 of real ones
    written = unpack(tmp_path / "pack" / ARCHIVE, tmp_path / "restored")
    expected = sorted([f"{s}.{c}.npy" for s in ("dev", "gutenberg", "vctk") for c in COLUMNS] + list(SIDE_FILES))
    assert sorted(p.name for p in written) == expected
    for name in expected:
        assert (tmp_path / "restored" / name).read_bytes() == (prepared / name).read_bytes(), name


def test_pack_refuses_arrays_it_cannot_restore(tmp_path: Path) -> None:
    prepared = write_prepared(tmp_path / "prepared")
    words = np.load(prepared / "dev.words.npy")
    suffixes = np.load(prepared / "dev.suffixes.npy")
    word = int(words[words >= 2][0])
    suffixes[np.nonzero(words == word)[0][0]] += 1  # one occurrence of a vocabulary word with another bucket
    np.save(prepared / "dev.suffixes.npy", suffixes)
    with pytest.raises(ValueError, match="two suffix buckets"):
        pack(prepared, tmp_path / ARCHIVE)
    prepared = write_prepared(tmp_path / "prepared2")
    np.save(prepared / "vctk.marks.npy", np.array([16], np.int8))
    with pytest.raises(ValueError, match="vctk.marks"):
        pack(prepared, tmp_path / ARCHIVE)
    assert not (tmp_path / ARCHIVE).exists()


def test_heldout_stand_in_keeps_the_line_numbers(tmp_path: Path) -> None:
    lines = [f"Sentence number {i}." for i in range(1, 51)]
    (tmp_path / "data" / "text").mkdir(parents=True)
    with gzip.open(tmp_path / "data" / "text" / "gutenberg_more.txt.gz", "wt", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))
    (tmp_path / "data" / "real_dev_lj").mkdir()
    (tmp_path / "data" / "real_dev_lj" / "manifest.jsonl").write_text('{"audio": "a.flac", "raw": "Hello."}\n')
    assert pack_heldout(tmp_path / "data", tmp_path / "out", first_line=41) == 10
    with gzip.open(tmp_path / "out" / "text" / "gutenberg_more.txt.gz", "rt", encoding="utf-8") as f:
        stand_in = f.read().split("\n")[:-1]
    assert stand_in[40:] == lines[40:] and stand_in[:40] == [""] * 40
    assert (tmp_path / "out" / "real_dev_lj" / "manifest.jsonl").read_text() == '{"audio": "a.flac", "raw": "Hello."}\n'


def test_pack_and_unpack_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prepared = write_prepared(tmp_path / "prepared")
    assert main(["pack", "--prepared", str(prepared), "--out", str(tmp_path / "carry"), "--no-heldout"]) == 0
    assert main(["unpack", "--archive", str(tmp_path / "carry" / ARCHIVE), "--out", str(tmp_path / "restored")]) == 0
    assert "packed 5701 words" in capsys.readouterr().out
    assert all((tmp_path / "restored" / p.name).read_bytes() == p.read_bytes() for p in prepared.iterdir())
