"""Pack a Whisper-CTC fine-tune for a GPU machine: the model as one small `--init`, the speech as Opus.

The device takes at most 64 MiB with the code: Whisper base's model.bin (145 MB) and the shared
speech as it is (about 135 MB) do not fit. This writes `OUT/init.pt` (`pack_init`: the checkpoint
over its model.bin, blocks int8 per row, 21.4 MiB for base) and every manifest's clips re-encoded as
Ogg/Opus at about 14 kbit/s under `OUT/<name>/` with a manifest of relative paths, then
`scripts/gpu/whisper-ctc.sh` trains on them there (docs/training.md):

    python scripts/gpu/pack_whisper_ctc.py --checkpoint models/checkpoints/whisper-ctc-base.fp16.pt \\
        --init "$(python -m models.whisper_weights base)/model.bin" --out .gpu/wctc \\
        --sets an4_train=data/an4_train.jsonl fsdd_train=data/fsdd_train.jsonl real_more_train=data/real_more/train.jsonl \\
               real_more_dev=data/real_more/dev.jsonl test_an4=data/test_an4.jsonl kokoro_dev=data/kokoro/dev.jsonl

`--every N` keeps one clip in N of a set (`kokoro_train=data/kokoro/train.jsonl:3`) when the whole does not fit.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from models.train.data import load_audio
from models.train.manifest import read_manifest
from models.train.whisper_ctc import load_checkpoint, pack_init

OPUS_LEVEL = 0.97  # libsndfile's Opus compression level: about 14 kbit/s for 16 kHz speech (0.9: 31, 0.98: 12)


def pack_set(manifest: Path, out: Path, *, every: int = 1) -> tuple[int, int]:
    """Re-encode one manifest's clips into `out`; returns (clips, bytes)."""
    out.mkdir(parents=True, exist_ok=True)
    rows, size = [], 0
    for i, row in enumerate(read_manifest(manifest)):
        if i % every:
            continue
        wave = load_audio(row["audio"])
        name = f"{len(rows):06d}.ogg"
        sf.write(str(out / name), np.clip(wave, -1, 1), 16000, format="OGG", subtype="OPUS", compression_level=OPUS_LEVEL)
        size += (out / name).stat().st_size
        rows.append({**row, "audio": name})
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="a models.train.whisper_ctc checkpoint (best.pt)")
    parser.add_argument("--init", type=Path, required=True, help="the model.bin its frozen layers come from")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sets", nargs="+", default=[], help="NAME=MANIFEST[:EVERY]")
    parser.add_argument("--fp16-blocks", action="store_true", help="keep the blocks in float16 (about 41 MB)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    pack_init(load_checkpoint(args.checkpoint, init=args.init), args.out / "init.pt", int8_blocks=not args.fp16_blocks)
    print(f"init.pt {(args.out / 'init.pt').stat().st_size / 2**20:.1f} MiB")
    for spec in args.sets:
        name, _, rest = spec.partition("=")
        path, _, every = rest.partition(":")
        clips, size = pack_set(Path(path), args.out / name, every=int(every or 1))
        print(f"{name}: {clips} clips, {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
