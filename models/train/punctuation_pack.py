"""Carry the punctuation recipe's prepared arrays to a lent GPU machine: `pack` here, `unpack` there.

`prepare` takes about 20 minutes on one core, more than a lent machine's whole budget, and its
output (`data/punct`, 198 MB of `.npy`) is three times the 64 MiB that may travel. Most of
those bytes are redundant, so the arrays are stored compactly and restored exactly:

- word ids (vocabulary of 16,000 + 2) as uint16;
- suffix buckets only where the word is unknown (id 0 or 1): a vocabulary word's bucket is a
  function of the word (`prepare` hashes the word's own letters), so one table per vocabulary
  id gives the rest; `pack` checks that this holds and refuses arrays where it does not;
- case (4 values) and mark (5 values) in one byte, `case << 4 | mark`;

all in one xz-compressed tar (about 6 bytes per 10 words at preset 6). `unpack` writes the
same `.npy` files (same dtypes and shapes, so byte-identical) and the side files as they were.

The held-out books (`export.punctuation_eval`) are read from `gutenberg_more.txt.gz` by line
number, and that file (52 MB) would not fit either: `pack_heldout` writes a stand-in with
every line before `HELDOUT_FIRST_LINE` left empty (1.3M newlines compress to almost nothing),
so `heldout_sentences` reads the same sentences from it, plus the `real_dev_lj` manifest
(reference texts only; no audio is needed without `--transcribe`).
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT = 1
COLUMNS = ("words", "suffixes", "cases", "marks")
SIDE_FILES = ("vocab.txt", "known.json", "info.json")
UNKNOWN_BELOW = 2  # ids 0 (pad) and 1 (unknown) carry their own suffix bucket
ARCHIVE = "punct.tar.xz"


@dataclass(frozen=True)
class PackSummary:
    archive: Path
    bytes: int  # compressed
    raw_bytes: int  # the .npy files packed
    words: int


def sources_of(prepared: Path) -> list[str]:
    """Source names of a prepared directory (`NAME.words.npy`), sorted."""
    return sorted(p.name[: -len(".words.npy")] for p in prepared.glob("*.words.npy"))


def suffix_table(columns: dict[str, dict[str, np.ndarray]]) -> np.ndarray:
    """Suffix bucket of each word id `[V]` uint16 (0 where unseen or unknown), checked against every occurrence."""
    size = max(int(c["words"].max(initial=0)) for c in columns.values()) + 1
    table = np.zeros(max(size, UNKNOWN_BELOW), np.uint16)
    for c in columns.values():
        known = c["words"] >= UNKNOWN_BELOW
        table[c["words"][known]] = c["suffixes"][known]
    for source, c in columns.items():
        known = c["words"] >= UNKNOWN_BELOW
        if not np.array_equal(table[c["words"][known]], c["suffixes"][known]):
            raise ValueError(f"{source}: a word id occurs with two suffix buckets; these arrays are not from `prepare`")
    return table


def check_range(name: str, values: np.ndarray, *, low: int, high: int) -> None:
    if len(values) and (int(values.min()) < low or int(values.max()) > high):
        raise ValueError(f"{name}: values {int(values.min())}..{int(values.max())} do not fit the packed range {low}..{high}")


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def pack(prepared: Path, archive: Path, *, preset: int = 6) -> PackSummary:
    """`prepared/*.npy` and side files -> one xz tar; checks that `restore` gives the arrays back."""
    names = sources_of(prepared)
    if not names:
        raise FileNotFoundError(f"no *.words.npy in {prepared}: run `prepare` first")
    columns = {s: {c: np.load(prepared / f"{s}.{c}.npy") for c in COLUMNS} for s in names}
    table = suffix_table(columns)
    entries: dict[str, dict[str, object]] = {}
    raw_bytes, words = 0, 0
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(archive.name + ".partial")
    with tarfile.open(partial, "w:xz", preset=preset) as tar:
        _add(tar, "suffix_table.u16", table.astype("<u2").tobytes())
        for source, c in columns.items():
            check_range(f"{source}.words", c["words"], low=0, high=65535)
            check_range(f"{source}.suffixes", c["suffixes"], low=0, high=65535)
            check_range(f"{source}.cases", c["cases"], low=0, high=15)
            check_range(f"{source}.marks", c["marks"], low=0, high=15)
            unknown = c["words"] < UNKNOWN_BELOW
            packed = {"words.u16": c["words"].astype("<u2"), "labels.u8": (c["cases"].astype(np.uint8) << 4) | c["marks"].astype(np.uint8),
                      "unknown_suffixes.u16": c["suffixes"][unknown].astype("<u2")}
            restored = restore(packed, table, {k: str(v.dtype) for k, v in c.items()})
            if any(not np.array_equal(restored[k], c[k]) or restored[k].dtype != c[k].dtype for k in COLUMNS):
                raise ValueError(f"{source}: the packed arrays would not restore exactly")
            for suffix, values in packed.items():
                _add(tar, f"{source}.{suffix}", values.tobytes())
            entries[source] = {"words": len(c["words"]), "dtypes": {k: str(v.dtype) for k, v in c.items()}}
            raw_bytes += sum((prepared / f"{source}.{k}.npy").stat().st_size for k in COLUMNS)
            words += len(c["words"])
        for name in SIDE_FILES:
            if (prepared / name).is_file():
                _add(tar, name, (prepared / name).read_bytes())
        _add(tar, "pack.json", json.dumps({"format": FORMAT, "sources": entries}, indent=1).encode())
    partial.replace(archive)
    return PackSummary(archive, archive.stat().st_size, raw_bytes, words)


def restore(packed: dict[str, np.ndarray], table: np.ndarray, dtypes: dict[str, str]) -> dict[str, np.ndarray]:
    """One source's packed columns -> its `prepare` arrays (words, suffixes, cases, marks)."""
    words = packed["words.u16"].astype(np.int64)
    suffixes = table[words].astype(np.int64)
    suffixes[words < UNKNOWN_BELOW] = packed["unknown_suffixes.u16"]
    labels = packed["labels.u8"]
    values = {"words": words, "suffixes": suffixes, "cases": labels >> 4, "marks": labels & 15}
    return {k: v.astype(dtypes[k]) for k, v in values.items()}


def unpack(archive: Path, out: Path) -> list[Path]:
    """The xz tar of `pack` -> `out/*.npy` and the side files; returns the files written."""
    with tarfile.open(archive, "r:xz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    meta = json.loads(members["pack.json"])
    if meta.get("format") != FORMAT:
        raise ValueError(f"{archive}: pack format {meta.get('format')!r}, this code reads {FORMAT}")
    table = np.frombuffer(members["suffix_table.u16"], "<u2")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for source, entry in meta["sources"].items():
        packed = {"words.u16": np.frombuffer(members[f"{source}.words.u16"], "<u2"), "labels.u8": np.frombuffer(members[f"{source}.labels.u8"], np.uint8),
                  "unknown_suffixes.u16": np.frombuffer(members[f"{source}.unknown_suffixes.u16"], "<u2")}
        if len(packed["words.u16"]) != entry["words"]:
            raise ValueError(f"{archive}: {source} holds {len(packed['words.u16'])} words, pack.json says {entry['words']}")
        for column, values in restore(packed, table, entry["dtypes"]).items():
            np.save(out / f"{source}.{column}.npy", values)
            written.append(out / f"{source}.{column}.npy")
    for name in SIDE_FILES:
        if name in members:
            (out / name).write_bytes(members[name])
            written.append(out / name)
    return written


def pack_heldout(data_dir: Path, out: Path, *, first_line: int) -> int:
    """`out/text/gutenberg_more.txt.gz` with the lines before `first_line` emptied, and the `real_dev_lj`
    manifest: what `export.punctuation_eval` reads (without `--transcribe`). Returns the held-out lines kept."""
    (out / "text").mkdir(parents=True, exist_ok=True)
    kept = 0
    with gzip.open(data_dir / "text" / "gutenberg_more.txt.gz", "rt", encoding="utf-8") as source, \
            gzip.open(out / "text" / "gutenberg_more.txt.gz", "wt", encoding="utf-8", compresslevel=9) as target:
        for number, line in enumerate(source, 1):
            if number >= first_line:
                target.write(line)
                kept += 1
            else:
                target.write("\n")
    manifest = data_dir / "real_dev_lj" / "manifest.jsonl"
    if manifest.is_file():
        (out / "real_dev_lj").mkdir(parents=True, exist_ok=True)
        shutil.copy(manifest, out / "real_dev_lj" / "manifest.jsonl")
    return kept
