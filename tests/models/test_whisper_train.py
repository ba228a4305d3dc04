"""The Whisper-CTC fine-tuning recipe (`models.train.whisper_ctc`) end to end on a tiny random Whisper converted to
CTranslate2 in-process: a first run of 3 steps, a resumed one to step 5, the best checkpoint loaded back over its
`--init`, and `asr-export whisper` on it. Training: the integration tier."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

from app.asr.bundle import load_bundles
from app.asr.manifest import Manifest
from export.cli import main as export_main
from models.train.whisper_ctc import load_checkpoint, main, trained_state
from models.whisper_ct2 import load_whisper_ctc
from models.whisper_ctc import WhisperCTC
from tests.whisper_helpers import build_ct2_whisper, tones

pytestmark = pytest.mark.integration

torch.set_num_threads(1)

TEXTS = ("yes", "no", "yes no", "no yes")
FREEZE = 1  # of the tiny model's 2 layers


@dataclass(frozen=True)
class Run:
    out: Path
    model_bin: Path
    clips: list[np.ndarray]
    printed: str
    log: list[dict[str, Any]]
    last: dict[str, Any]
    cache: dict[str, float]  # shard path -> mtime


def train(argv: list[str]) -> str:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        main(argv)
    return printed.getvalue()


def snapshot(out: Path, model_bin: Path, clips: list[np.ndarray], printed: str) -> Run:
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    cache = {str(p.relative_to(out)): p.stat().st_mtime for p in sorted((out / "cache").rglob("*.pt"))}
    return Run(out, model_bin, clips, printed, log, torch.load(out / "last.pt", weights_only=False), cache)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[np.ndarray], list[str]]:
    root = tmp_path_factory.mktemp("whisper-train")
    model_bin = build_ct2_whisper(root / "whisper-tiny-random")
    (root / "clips").mkdir()
    clips, rows = [], []
    for i, text in enumerate(TEXTS):
        wave = tones(0.6 + 0.3 * i, seed=i)
        sf.write(root / "clips" / f"{i}.flac", wave, 16000, format="FLAC", subtype="PCM_16")
        clips.append(wave)
        rows.append(json.dumps({"audio": f"clips/{i}.flac", "text": text}))
    (root / "train.jsonl").write_text("\n".join(rows) + "\n")
    (root / "heldout.jsonl").write_text("\n".join(rows[:2]) + "\n")
    argv = ["--init", str(model_bin), "--train", str(root / "train.jsonl"), "--dev", str(root / "heldout.jsonl"), "--out", str(root / "run"),
            "--freeze", str(FREEZE), "--minutes", "5", "--threads", "1", "--load-workers", "1", "--eval-minutes", "0", "--log-every", "1"]  # fmt: skip
    return root, model_bin, clips, argv


@pytest.fixture(scope="module")
def first(workdir: tuple[Path, Path, list[np.ndarray], list[str]]) -> Run:
    root, model_bin, clips, argv = workdir
    return snapshot(root / "run", model_bin, clips, train([*argv, "--max-steps", "3"]))


@pytest.fixture(scope="module")
def resumed(first: Run, workdir: tuple[Path, Path, list[np.ndarray], list[str]]) -> Run:
    *_, argv = workdir
    return snapshot(first.out, first.model_bin, first.clips, train([*argv, "--max-steps", "5", "--resume"]))


def test_first_run_logs_checkpoints_and_caches(first: Run) -> None:
    losses = [e for e in first.log if "loss" in e]
    assert [e["step"] for e in losses] == [1, 2, 3]
    assert all(np.isfinite(e["loss"]) and e["loss"] > 0 and e["lr"] > 0 for e in losses)
    evals = [e for e in first.log if "score" in e]
    assert evals and evals[-1]["step"] == 3
    assert set(evals[-1]["dev:heldout"]) == {"wer", "cer"} and 0 <= evals[-1]["dev:heldout"]["wer"] <= 100
    assert (first.out / "last.pt").is_file() and (first.out / "best.pt").is_file()
    assert first.last["step"] == 3 and first.last["config"]["freeze"] == FREEZE and "optimizer" in first.last
    names = set(first.last["model"])
    assert names and all(
        n.startswith(("blocks.1.", "ln_post.", "head.")) for n in names
    )  # the frozen layer is not saved
    assert {n.split("/")[1].split("-")[0] for n in first.cache} == {
        "train",
        "dev",
    } and "cached 4/4 clips" in first.printed


def test_cache_holds_the_frozen_layers_outputs(first: Run) -> None:
    """One shard per set: each clip's states after the frozen layer, fp16, as the model computes them on the clip alone."""
    shard = next(first.out / p for p in first.cache if p.split("/")[1].startswith("train"))
    states = torch.load(shard, weights_only=True)
    assert len(states) == len(first.clips)
    model = load_whisper_ctc(first.model_bin).eval()
    for state, wave in zip(states, first.clips, strict=True):
        assert state.dtype == torch.float16 and state.shape == (WhisperCTC.output_frames(len(wave)), 64)
    wave = sf.read(str(first.out.parent / "clips" / "0.flac"), dtype="int16")[0]  # as the recipe holds it: int16
    with torch.no_grad():
        x = model.stem(model.frontend(torch.from_numpy(wave.astype(np.float32) / 32768.0)[None]))
        expected = model.encode(x, torch.tensor([x.shape[1]]), stop=FREEZE)[0]
    torch.testing.assert_close(states[0].float(), expected, atol=2e-2 * float(expected.abs().max()), rtol=1e-2)


def test_resume_continues_from_the_last_step(first: Run, resumed: Run) -> None:
    assert "resumed from" in resumed.printed and "at step 3" in resumed.printed
    assert "cached" not in resumed.printed  # the frozen layers' outputs came from the cache
    assert resumed.cache == first.cache  # the same shards, not rewritten
    assert [e["step"] for e in resumed.log if "loss" in e] == [1, 2, 3, 4, 5]
    assert resumed.log[: len(first.log)] == first.log  # appended to
    assert [e for e in resumed.log if "score" in e][-1]["step"] == 5
    assert resumed.last["step"] == 5 and resumed.last["elapsed"] >= first.last["elapsed"]


def test_load_checkpoint_puts_the_trained_layers_over_init(resumed: Run) -> None:
    best = resumed.out / "best.pt"
    saved = torch.load(best, weights_only=False)
    assert "optimizer" not in saved and all(v.dtype == torch.float16 for v in saved["model"].values())
    model = load_checkpoint(best, init=resumed.model_bin)
    state = model.state_dict()
    assert set(saved["model"]) == set(trained_state(model, FREEZE))
    for name, value in saved["model"].items():
        torch.testing.assert_close(state[name], value.float(), rtol=0, atol=0, msg=name)
    init = load_whisper_ctc(resumed.model_bin).state_dict()
    for name in (n for n in state if n.startswith("blocks.0.") or n in ("conv1.weight", "conv2.weight", "positional")):
        torch.testing.assert_close(state[name], init[name], rtol=0, atol=0, msg=name)  # the frozen part is --init's
    moved = resumed.last["model"]["blocks.1.mlp.0.weight"]
    assert float((moved - init["blocks.1.mlp.0.weight"]).abs().max()) > 0  # and training did change the trained layer
    again = load_checkpoint(best).state_dict()  # the init recorded in the checkpoint
    assert all(torch.equal(again[n], state[n]) for n in state)


def test_export_of_the_checkpoint(resumed: Run, tmp_path: Path) -> None:
    out = tmp_path / "models" / "tiny-whisper-trained"
    assert export_main(["whisper", str(resumed.out / "best.pt"), "--init", str(resumed.model_bin), "-o", str(out)]) == 0
    manifest = Manifest.load(out)
    assert manifest.architecture == "whisper_ctc" and set(manifest.files) == {"int8"}
    assert manifest.source["kind"] == "whisper_ctc_checkpoint" and manifest.source["init"] == resumed.model_bin.name
    assert manifest.extra["train_config"]["freeze"] == FREEZE and manifest.parity["int8"]["greedy_agreement"] >= 0.95
    bundle = load_bundles(out.parent, threads=1).acoustic["tiny-whisper-trained"]
    emissions = bundle.model().emissions(resumed.clips[0])
    assert emissions.shape == (WhisperCTC.output_frames(len(resumed.clips[0])), 29) and np.isfinite(emissions).all()


@pytest.fixture(scope="module")
def dual(workdir: tuple[Path, Path, list[np.ndarray], list[str]]) -> Run:
    """A dual-mode run (full attention and the block mask, fixed mel floor): 2 steps, then resumed to 3."""
    root, model_bin, clips, argv = workdir
    argv = [a if a != str(root / "run") else str(root / "dual") for a in argv]
    extra = ["--chunk-frames", "4", "--left-chunks", "2", "--mel-floor", "-7", "--chunk-share", "0.5"]
    train([*argv, *extra, "--max-steps", "2"])
    return snapshot(root / "dual", model_bin, clips, train([*argv, "--max-steps", "3", "--resume"]))  # the flags come back from last.pt


def test_dual_mode_caches_both_masks_and_scores_both(dual: Run, tmp_path: Path) -> None:
    assert dual.last["config"]["chunk_frames"] == 4 and dual.last["model_config"]["mel_floor"] == -7.0
    evals = [e for e in dual.log if "score" in e]
    assert {"dev:heldout", "chunked:dev:heldout"} <= set(evals[-1])
    assert evals[-1]["score"] == pytest.approx((evals[-1]["dev:heldout"]["wer"] + evals[-1]["chunked:dev:heldout"]["wer"]) / 2, abs=1e-3)
    assert len({p.split("/")[1] for p in dual.cache}) == 4  # train and dev, each with full attention and with the block mask
    # the chunked cache is the frozen layer under the block mask and the fixed floor
    model = load_checkpoint(dual.out / "best.pt", init=dual.model_bin)
    assert model.config.chunk_frames == 4 and model.config.mel_floor == -7.0
    wave = sf.read(str(dual.out.parent / "clips" / "3.flac"), dtype="int16")[0]
    with torch.no_grad():
        x = model.stem(model.frontend(torch.from_numpy(wave.astype(np.float32) / 32768.0)[None]))
        full = model.encode(x, torch.tensor([x.shape[1]]), stop=FREEZE)[0]
        chunked = model.encode(x, torch.tensor([x.shape[1]]), stop=FREEZE, chunked=True)[0]
    shards = {p.split("/")[1]: torch.load(dual.out / p, weights_only=True) for p in dual.cache if p.split("/")[1].startswith("train")}
    got = sorted(shards.values(), key=lambda s: float((s[3].float() - full).abs().max()))
    torch.testing.assert_close(got[0][3].float(), full, atol=2e-2 * float(full.abs().max()), rtol=1e-2)
    torch.testing.assert_close(got[1][3].float(), chunked, atol=2e-2 * float(chunked.abs().max()), rtol=1e-2)
    out = tmp_path / "models" / "tiny-dual"
    assert export_main(["whisper", str(dual.out / "best.pt"), "--init", str(dual.model_bin), "-o", str(out)]) == 0
    manifest = Manifest.load(out)
    assert manifest.chunked_streaming is not None and manifest.chunked_streaming.chunk_frames == 4
    assert manifest.parity["fp32"]["streaming"]["max_relative_error"] <= 1e-4


@pytest.fixture(scope="module")
def augmented(workdir: tuple[Path, Path, list[np.ndarray], list[str]]) -> Run:
    root, model_bin, clips, argv = workdir
    argv = [a if a != str(root / "run") else str(root / "augmented") for a in argv]
    return snapshot(root / "augmented", model_bin, clips, train([*argv, "--max-steps", "3", "--augment", "--augment-workers", "0"]))


def test_augmented_run_trains_on_the_fly_without_a_training_cache(augmented: Run) -> None:
    assert augmented.last["config"]["augment"] is True and augmented.last["step"] == 3
    assert [e["step"] for e in augmented.log if "loss" in e] == [1, 2, 3]
    assert all(np.isfinite(e["loss"]) for e in augmented.log if "loss" in e)
    assert {p.split("/")[1].split("-")[0] for p in augmented.cache} == {"dev"}  # augmented clips are never cached


def test_frozen_batch_equals_the_cached_states_of_each_clip(first: Run) -> None:
    from models.train.whisper_ctc import frozen_batch

    model = load_checkpoint(first.out / "best.pt", init=first.model_bin)
    waves = [sf.read(str(first.out.parent / "clips" / f"{i}.flac"), dtype="float32")[0] for i in (0, 3)]  # 0.6 s and 1.5 s: one row padded
    x, frames = frozen_batch(model, waves, FREEZE, chunked=False)
    for row, wave in enumerate(waves):
        with torch.no_grad():
            alone = model.encode(model.stem(model.frontend(torch.from_numpy(wave)[None])), torch.tensor([int(frames[row])]), stop=FREEZE)[0]
        assert x[row].shape[0] >= int(frames[row]) == alone.shape[0]
        torch.testing.assert_close(x[row, : int(frames[row])], alone, atol=1e-4 * float(alone.abs().max()), rtol=1e-4)


def test_packed_init_carries_the_whole_model_and_trains_every_block(first: Run, tmp_path: Path) -> None:
    """What travels to a GPU machine (`scripts/gpu/pack_whisper_ctc.py`): one small file that replaces
    both `--init` and `--start`, and a run from it whose checkpoint loads back over the original model.bin."""
    from models.train.whisper_ctc import load_init, pack_init

    model = load_checkpoint(first.out / "best.pt", init=first.model_bin)
    pack_init(model, tmp_path / "init.pt")
    packed = load_init(tmp_path / "init.pt")
    original, loaded = model.state_dict(), packed.state_dict()
    assert set(original) == set(loaded)
    for name in ("conv1.weight", "conv2.weight", "positional", "head.weight"):  # float16 as in Whisper's file: exact
        torch.testing.assert_close(loaded[name], original[name].half().float())
    for name, value in original.items():
        if name.startswith("blocks.") and value.dim() == 2:  # int8 per row: within half a step of each row's scale
            step = value.abs().amax(dim=1, keepdim=True) / 127
            assert bool(((loaded[name] - value).abs() <= step * 0.5 + 1e-3 * step).all()), name
    out = tmp_path / "run"
    train(["--init", str(tmp_path / "init.pt"), "--train", str(first.out.parent / "train.jsonl"), "--dev", str(first.out.parent / "heldout.jsonl"),
           "--out", str(out), "--freeze", "0", "--max-steps", "2", "--minutes", "5", "--threads", "1", "--load-workers", "1", "--eval-minutes", "0",
           "--augment", "--augment-workers", "0"])  # fmt: skip
    saved = torch.load(out / "best.pt", weights_only=False)
    assert {k.split(".")[1] for k in saved["model"] if k.startswith("blocks.")} == {"0", "1"}  # every block trained
    back = load_checkpoint(out / "best.pt", init=first.model_bin)  # over the original model.bin, as on the way back
    torch.testing.assert_close(back.state_dict()["conv2.weight"], original["conv2.weight"])
    head_before = packed.state_dict()["head.weight"]
    assert float((back.state_dict()["head.weight"] - head_before).abs().max()) < 0.1  # the head came with the init, not fresh
