"""Pack the GPU runs for the trip back: each run's best model in float16, without optimiser
state, plus every log, as one tar.gz cut into parts small enough for the device's file limit.

Usage: ``python scripts/gpu/collect.py RUNS_DIR OUT_DIR``; reassemble with
``cat OUT_DIR/runs.tgz.part-* | tar -xz``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import torch

PART_BYTES = 15 * 2**20


def halve(value: object) -> object:
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.detach().cpu().half()
    if isinstance(value, dict):
        return {k: halve(v) for k, v in value.items()}
    return value


def pack_checkpoint(source: Path, target: Path) -> None:
    state = torch.load(source, map_location="cpu", weights_only=False)
    state.pop("optimizer", None)
    state["model"] = halve(state["model"])
    torch.save(state, target)


def pack_hf_directory(source: Path, target: Path) -> None:
    from safetensors.torch import load_file, save_file

    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.pt"))
    weights = target / "model.safetensors"
    if weights.exists():
        save_file({k: v.half() if v.is_floating_point() else v for k, v in load_file(str(weights)).items()}, str(weights), metadata={"format": "pt"})
    for extra in source.glob("*.pt"):  # training state: keep the bookkeeping, drop the optimiser
        state = torch.load(extra, map_location="cpu", weights_only=False)
        state.pop("optimizer", None)
        torch.save(state, target / extra.name)


def main() -> None:
    runs, out = Path(sys.argv[1]), Path(sys.argv[2])
    stage = Path("/tmp/collect/runs")
    shutil.rmtree(stage.parent, ignore_errors=True)
    stage.mkdir(parents=True)
    for run in sorted(p for p in runs.iterdir() if p.is_dir()):
        target = stage / run.name
        target.mkdir()
        for log in [*run.glob("*.jsonl"), *run.glob("*.log"), *run.glob("*.json")]:
            shutil.copy(log, target / log.name)
        best = run / "best.pt" if (run / "best.pt").exists() else run / "last.pt"
        if best.exists():
            try:
                pack_checkpoint(best, target / "best.pt")
            except Exception as error:  # a checkpoint being written right now: the next collect gets it
                print(f"{run.name}: {error}")
        hf = run / "best" if (run / "best").is_dir() else run / "last"
        if hf.is_dir():
            try:
                pack_hf_directory(hf, target / "best")
            except Exception as error:
                print(f"{run.name}: {error}")
    for log in [*runs.glob("*.log"), *runs.glob("*.json")]:
        shutil.copy(log, stage / log.name)
    out.mkdir(parents=True, exist_ok=True)
    archive = Path("/tmp/collect/runs.tgz")
    subprocess.run(["tar", "-czf", str(archive), "-C", str(stage.parent), "runs"], check=True)
    subprocess.run(["split", "-b", str(PART_BYTES), str(archive), str(out / "runs.tgz.part-")], check=True)
    print(f"packed {archive.stat().st_size / 2**20:.1f} MiB into {len(list(out.glob('runs.tgz.part-*')))} parts")


if __name__ == "__main__":
    main()
