"""Re-encode the shared real recordings (AN4, FSDD) as Ogg/Opus for a GPU machine.

The FLAC originals are too large to travel with the TTS engines under the device's
64 MiB transfer limit; Opus at ~32 kbit/s keeps them intelligible and small. The
manifests keep the shared folder's layout, so `models.train.corpus --data` reads them
unchanged. Usage: ``python scripts/gpu/pack_real_speech.py ../shared/data .gpu/data``.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import soundfile as sf


def main() -> None:
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    for name in ("an4_train", "fsdd"):
        (target / name).mkdir(parents=True, exist_ok=True)
        rows = []
        for line in (source / name / "manifest.jsonl").read_text().splitlines():
            row = json.loads(line)
            wave, rate = sf.read(str(source / name / row["audio"]), dtype="float32")
            audio = Path(row["audio"]).with_suffix(".ogg").name
            sf.write(str(target / name / audio), wave, rate, format="OGG", subtype="OPUS", compression_level=0.9)
            rows.append({**row, "audio": audio})
        (target / name / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    shutil.copytree(source / "text", target / "text", dirs_exist_ok=True)


if __name__ == "__main__":
    main()
