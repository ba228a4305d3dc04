"""Training and dev manifests over the ready-made speech in ../shared/data, without copying audio.

    python scripts/split_shared_speech.py [--data ../shared/data] [--out data]

- ``kokoro/train.jsonl`` and ``kokoro/dev.jsonl``: the shared Kokoro batch split by sentence with the
  corpus's own hash rule (``is_heldout``), so the dev clips read sentences no training clip reads, in
  blends no training clip uses (every clip has its own blend);
- ``an4_train.jsonl`` and ``test_an4.jsonl``: AN4 without / with only the speakers the corpus builder holds out
  (the same ``test_an4`` as ``data/corpus40/test_an4.jsonl``);
- ``fsdd_train.jsonl`` and ``test_fsdd.jsonl``: FSDD by the corpus builder's held-out speaker;
- ``real_more/train.jsonl`` and ``real_more/dev.jsonl``: ``../shared/data/real_more`` with LibriSpeech speaker 19
  (111 utterances, 23 min, reference transcripts) held out for dev; the pseudo-labelled speakers train only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.asr.text import normalize_text
from models.train.corpus.build import AN4_HELDOUT, DATA_DIR, FSDD_HELDOUT, pick_heldout_speakers
from models.train.corpus.text import is_heldout


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


REAL_MORE_DEV_SPEAKERS = ("ls19",)


def split_by_speaker(manifest: Path, held: set[str], prefix: str) -> tuple[list[dict], list[dict]]:
    """(train, held-out) rows of a shared manifest, audio paths absolute, text normalised, empty texts dropped."""
    train, dev = [], []
    for r in read(manifest):
        text = normalize_text(r["text"])
        if not text:
            continue
        row = {**r, "audio": str((manifest.parent / r["audio"]).resolve()), "text": text, "speaker": f"{prefix}:{r['speaker']}"}
        (dev if r["speaker"] in held else train).append(row)
    return train, dev


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    parser.add_argument("--out", type=Path, default=Path("data"))
    args = parser.parse_args()

    kokoro = args.data / "kokoro" / "manifest.jsonl"
    split: dict[str, list[dict]] = {"train": [], "dev": []}
    for row in read(kokoro):
        text = normalize_text(row["text"])
        row.update(audio=str((kokoro.parent / row["audio"]).resolve()), text=text, speaker=f"kokoro:{row['voice']}")
        split["dev" if is_heldout(text) else "train"].append(row)
    for name, rows in split.items():
        write(args.out / "kokoro" / f"{name}.jsonl", rows)

    an4 = args.data / "an4_train" / "manifest.jsonl"
    held = set(pick_heldout_speakers((r["speaker"] for r in read(an4)), *AN4_HELDOUT))
    train, test = split_by_speaker(an4, held, "an4")
    write(args.out / "an4_train.jsonl", train)
    write(args.out / "test_an4.jsonl", test)
    fsdd = args.data / "fsdd" / "manifest.jsonl"
    fsdd_held = set(pick_heldout_speakers((r["speaker"] for r in read(fsdd)), FSDD_HELDOUT, -1))
    fsdd_train, fsdd_test = split_by_speaker(fsdd, fsdd_held, "fsdd")
    write(args.out / "fsdd_train.jsonl", fsdd_train)
    write(args.out / "test_fsdd.jsonl", fsdd_test)
    more_train, more_dev = [], []
    for manifest in sorted((args.data / "real_more").glob("*/manifest.jsonl")):
        t, d = split_by_speaker(manifest, set(REAL_MORE_DEV_SPEAKERS), manifest.parent.name)
        more_train += t
        more_dev += d
    write(args.out / "real_more" / "train.jsonl", more_train)
    write(args.out / "real_more" / "dev.jsonl", more_dev)
    print(f"kokoro: {len(split['train'])} train, {len(split['dev'])} dev; an4: {len(train)} train, {len(test)} test ({len(held)} speakers held out); "
          f"fsdd: {len(fsdd_train)} train, {len(fsdd_test)} test; real_more: {len(more_train)} train, {len(more_dev)} dev")


if __name__ == "__main__":
    main()
