"""Training and dev manifests over the ready-made speech in ../shared/data, without copying audio.

    python scripts/split_shared_speech.py [--data ../shared/data] [--out data]

- ``kokoro/train.jsonl`` and ``kokoro/dev.jsonl``: the shared Kokoro batch split by sentence with the
  corpus's own hash rule (``is_heldout``), so the dev clips read sentences no training clip reads, in
  blends no training clip uses (every clip has its own blend);
- ``an4_train.jsonl``: AN4 without the speakers ``test_an4`` holds out (the corpus builder's rule).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.asr.text import normalize_text
from models.train.corpus.build import AN4_HELDOUT, DATA_DIR, pick_heldout_speakers
from models.train.corpus.text import is_heldout


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


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
    rows = read(an4)
    held = set(pick_heldout_speakers((r["speaker"] for r in rows), *AN4_HELDOUT))
    train = [{"audio": str((an4.parent / r["audio"]).resolve()), "text": normalize_text(r["text"]), "speaker": f"an4:{r['speaker']}"}
             for r in rows if r["speaker"] not in held and normalize_text(r["text"])]  # fmt: skip
    write(args.out / "an4_train.jsonl", train)
    print(f"kokoro: {len(split['train'])} train, {len(split['dev'])} dev; an4: {len(train)} train ({len(held)} speakers held out)")


if __name__ == "__main__":
    main()
