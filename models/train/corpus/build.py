"""Plan, synthesise and write the corpus: clips, manifests per split, LM text and statistics.

Training draws depend on ``--seed``; dev/test draws use EVAL_SEED so evaluation sets are
comparable across training runs. Extra clips (``--high-pitch``, ``--kokoro``) come from their
own random streams, so adding them leaves every other clip of the plan unchanged.

Run: ``python -m models.train.corpus --out data/corpus --sentences 14000 --workers 2``.
Re-running with the same arguments skips clips already on disk (files are written
atomically, so an interrupted build leaves no truncated audio).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from tqdm import tqdm

from app.asr.text import normalize_text
from models.train.corpus import kokoro
from models.train.corpus.engines import (
    ENGINE_SHARE,
    ESPEAK_ACCENTS,
    ESPEAK_PITCH,
    ESPEAK_SPEED_WPM,
    ESPEAK_VARIANTS,
    FESTIVAL_STRETCH,
    FESTIVAL_VOICES,
    FLITE_STRETCH,
    FLITE_VOICES,
    HELDOUT_FESTIVAL_VOICE,
    HELDOUT_FLITE_VOICE,
    HELDOUT_SPEAKERS,
    HIGH_PITCH_F0,
    HIGH_PITCH_VOICES,
    SAMPLE_RATE,
    ClipSpec,
    Wave,
    derived_wave,
    draw_high_pitch_voice,
    draw_training_voice,
    make_synth_spec,
    synth_espeak,
    synth_festival_batch,
    synth_flite,
)
from models.train.corpus.text import TextPools, build_text_pools, write_lines
from models.train.manifest import read_manifest

# The shared data folder sits beside the repository: <repo>/../shared/data.
REPO_ROOT = Path(__file__).resolve().parents[3]
DATA_DIR = REPO_ROOT.parent / "shared" / "data"

MAX_SECONDS = 20.0
MIN_SECONDS = 0.1  # FSDD digits can be as short as 0.14 s
# Evaluation sets must not move when the training seed changes.
EVAL_SEED = 20240531

AN4_HELDOUT = (2, 6)  # (female, male) speakers held out for test_an4
FSDD_HELDOUT = 1
TEST_SLT_CLIPS = (240, 60)  # (flite slt, festival slt hts)
DEV_CLIPS = 300
KOKORO_DEV_CLIPS = 200  # dev_kokoro: new blends reading held-out sentences

HIGH_PITCH_STREAM = 1  # second entropy word of the raised-pitch draws' generator
KOKORO_STREAM = 2  # ... and of the Kokoro draws'

FESTIVAL_CHUNK = 40
SYNTH_CHUNK = 16
KOKORO_CHUNK = 4  # ~1 s of work per clip and core


def write_clip(wave: np.ndarray, sr: int, path: Path) -> float | None:
    """Resample to 16 kHz, reject empty or over-long audio, write 16-bit FLAC atomically.
    Returns the duration in seconds, or None when the clip is dropped."""
    if wave.size == 0:
        return None
    if sr != SAMPLE_RATE:
        wave = np.asarray(soxr.resample(wave, sr, SAMPLE_RATE, quality="HQ"), dtype=np.float32)
    duration = wave.size / SAMPLE_RATE
    peak = float(np.max(np.abs(wave))) if wave.size else 0.0
    if duration < MIN_SECONDS or duration > MAX_SECONDS or peak < 1e-3:
        return None
    if peak > 0.999:
        wave = wave * np.float32(0.999 / peak)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    sf.write(str(part), wave, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    os.replace(part, path)
    return duration


def existing_duration(path: Path) -> float | None:
    try:
        info = sf.info(str(path))
    except (RuntimeError, OSError, sf.LibsndfileError):
        return None
    return info.frames / info.samplerate if info.frames else None


Result = tuple[ClipSpec, float | None]


def run_job(job: tuple[str, Sequence[ClipSpec]]) -> list[Result]:
    """Worker entry point: synthesise or convert a chunk of clips, skipping finished ones."""
    out_dir, specs = Path(job[0]), job[1]
    results: list[Result] = []
    todo: list[ClipSpec] = []
    for spec in specs:
        done = existing_duration(out_dir / "clips" / spec.rel_path)
        if done is not None:
            results.append((spec, done))
        else:
            todo.append(spec)
    if not todo:
        return results
    with tempfile.TemporaryDirectory(prefix="corpus_") as tmp_name:
        tmp = Path(tmp_name)
        festival_specs = [s for s in todo if s.engine == "festival"]
        festival_out = synth_festival_batch(festival_specs, tmp) if festival_specs else {}
        for spec in todo:
            loaded: Wave | None
            try:
                if spec.engine == "espeak":
                    loaded = synth_espeak(spec, tmp)
                elif spec.engine == "flite":
                    loaded = synth_flite(spec, tmp)
                elif spec.engine == "festival":
                    loaded = festival_out.get(spec.rel_path)
                elif spec.engine == "kokoro":
                    loaded = kokoro.synth_kokoro(spec)
                else:
                    loaded = derived_wave(spec)
            except (subprocess.SubprocessError, OSError, RuntimeError):  # RuntimeError: espeak-ng or ONNX Runtime on one clip
                loaded = None
            duration = write_clip(loaded[0], loaded[1], out_dir / "clips" / spec.rel_path) if loaded else None
            results.append((spec, duration))
    return results


# --- real speech -----------------------------------------------------------------------------


def pick_heldout_speakers(speakers: Iterable[str], n_female: int, n_male: int) -> list[str]:
    """Hash order, not the seed: the real-speech test sets stay fixed across training runs.
    AN4 ids start with the speaker's sex (f/m); with n_male < 0 the sex is ignored."""
    ordered = sorted(set(speakers), key=lambda s: hashlib.sha1(s.encode()).hexdigest())
    if n_male < 0:
        return ordered[:n_female]
    female = [s for s in ordered if s.startswith("f")][:n_female]
    male = [s for s in ordered if s.startswith("m")][:n_male]
    return sorted(female + male)


def real_specs(
    source: str, data_dir: Path, heldout: Sequence[str], train_split: str, test_split: str
) -> list[ClipSpec]:
    specs = []
    for row in read_manifest(data_dir / "manifest.jsonl"):
        text = normalize_text(row["text"])
        if not text:
            continue
        split = test_split if row["speaker"] in heldout else train_split
        rel = f"{source}/{Path(row['audio']).stem}.flac"
        specs.append(
            ClipSpec(split, rel, text, f"{source}:{row['speaker']}", "copy", source=row["audio"])
        )
    return specs


# --- planning --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    specs: list[ClipSpec]
    heldout_speakers: dict[str, list[str]]


def plan_corpus(
    pools: TextPools,
    n_sentences: int,
    seed: int,
    data_dir: Path = DATA_DIR,
    voices: int = 1,
    high_pitch: int = 0,
    kokoro_clips: int = 0,
    kokoro_dev: int = KOKORO_DEV_CLIPS,
) -> Plan:
    """All clips of the first pass. Each training sentence is spoken by ``voices``
    independently drawn voice settings. ``high_pitch`` more training clips (random training
    sentences, raised-pitch voices) and ``kokoro_clips`` Kokoro training clips (random training
    sentences, a new voice each) come from their own random streams; with Kokoro clips the plan
    also holds ``kokoro_dev`` clips of new voices reading held-out sentences (split
    ``dev_kokoro``)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pools.train))[: min(n_sentences, len(pools.train))]
    specs = [draw_training_voice("train", pools.train[i], rng) for i in sorted(order) for _ in range(voices)]
    if high_pitch:
        hi_rng = np.random.default_rng([seed, HIGH_PITCH_STREAM])
        picks = hi_rng.choice(len(pools.train), size=high_pitch, replace=high_pitch > len(pools.train))
        specs += [draw_high_pitch_voice("train", pools.train[i], hi_rng) for i in picks]
    if kokoro_clips:
        k_rng = np.random.default_rng([seed, KOKORO_STREAM])
        picks = k_rng.choice(len(pools.train), size=kokoro_clips, replace=kokoro_clips > len(pools.train))
        specs += [kokoro.draw_kokoro_voice("train", pools.train[i], k_rng) for i in picks]

    eval_rng = np.random.default_rng(EVAL_SEED)
    n_slt = sum(TEST_SLT_CLIPS)
    picked = eval_rng.permutation(len(pools.heldout))[: DEV_CLIPS + n_slt]
    dev_texts = [pools.heldout[i] for i in picked[:DEV_CLIPS]]
    slt_texts = [pools.heldout[i] for i in picked[DEV_CLIPS:]]
    specs += [draw_training_voice("dev", t, eval_rng) for t in dev_texts]
    for i, text in enumerate(slt_texts):
        if i < TEST_SLT_CLIPS[0]:
            specs.append(make_synth_spec("test_slt", text, "flite", HELDOUT_FLITE_VOICE))
        else:
            specs.append(make_synth_spec("test_slt", text, "festival", HELDOUT_FESTIVAL_VOICE))
    if kokoro_clips and kokoro_dev:
        k_eval = np.random.default_rng([EVAL_SEED, KOKORO_STREAM])
        picked = k_eval.permutation(len(pools.heldout))[:kokoro_dev]
        specs += [kokoro.draw_kokoro_voice("dev_kokoro", pools.heldout[i], k_eval) for i in picked]

    an4_dir, fsdd_dir = data_dir / "an4_train", data_dir / "fsdd"
    an4_held = pick_heldout_speakers((r["speaker"] for r in read_manifest(an4_dir / "manifest.jsonl")), *AN4_HELDOUT)
    fsdd_held = pick_heldout_speakers((r["speaker"] for r in read_manifest(fsdd_dir / "manifest.jsonl")), FSDD_HELDOUT, -1)
    specs += real_specs("an4", an4_dir, an4_held, "train", "test_an4")
    specs += real_specs("fsdd", fsdd_dir, fsdd_held, "train", "test_fsdd")
    return Plan(specs, {"an4": an4_held, "fsdd": fsdd_held})


def derived_specs(test_slt: Sequence[ClipSpec], out_dir: Path) -> list[ClipSpec]:
    """Noisy and telephone copies of the finished held-out-voice clips."""
    specs = []
    for i, spec in enumerate(test_slt):
        source = str(out_dir / "clips" / spec.rel_path)
        stem = Path(spec.rel_path).stem
        specs.append(replace(spec, split="test_slt_noisy", rel_path=f"test_slt_noisy/{stem}.flac", engine="noisy", source=source, seed=i))
        specs.append(replace(spec, split="test_slt_8k", rel_path=f"test_slt_8k/{stem}.flac", engine="tel8k", source=source, seed=i))
    return specs


def chunk_jobs(specs: Sequence[ClipSpec], out_dir: Path) -> list[tuple[str, list[ClipSpec]]]:
    """Festival clips go in large per-voice chunks (start-up cost), Kokoro clips in small ones
    (slow), the rest in between; slow jobs come first so the pool does not end on a straggler."""
    by_festival_voice: dict[str, list[ClipSpec]] = defaultdict(list)
    kokoro_specs: list[ClipSpec] = []
    rest: list[ClipSpec] = []
    for spec in specs:
        if spec.engine == "festival":
            by_festival_voice[spec.voice].append(spec)
        elif spec.engine == "kokoro":
            kokoro_specs.append(spec)
        else:
            rest.append(spec)
    jobs: list[tuple[str, list[ClipSpec]]] = []
    jobs += [(str(out_dir), kokoro_specs[i : i + KOKORO_CHUNK]) for i in range(0, len(kokoro_specs), KOKORO_CHUNK)]
    for voice in sorted(by_festival_voice):
        group = by_festival_voice[voice]
        jobs += [(str(out_dir), group[i : i + FESTIVAL_CHUNK]) for i in range(0, len(group), FESTIVAL_CHUNK)]
    jobs += [(str(out_dir), rest[i : i + SYNTH_CHUNK]) for i in range(0, len(rest), SYNTH_CHUNK)]
    return jobs


def execute(specs: Sequence[ClipSpec], out_dir: Path, workers: int, desc: str) -> dict[str, float | None]:
    """Run all jobs, returning duration (or None when dropped) per rel_path. Each worker
    process runs one clip at a time (Kokoro's session gets one thread per worker; with a single
    worker it gets every core)."""
    if any(s.engine == "kokoro" for s in specs):
        kokoro.prepare(threads=1 if workers > 1 else kokoro.default_threads())
    jobs = chunk_jobs(specs, out_dir)
    durations: dict[str, float | None] = {}
    with tqdm(total=len(specs), desc=desc, unit="clip", mininterval=5.0, file=sys.stderr) as bar:
        if workers <= 1:
            results: Iterator[list[Result]] = map(run_job, jobs)
            for chunk in results:
                durations.update((s.rel_path, d) for s, d in chunk)
                bar.update(len(chunk))
        else:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                for chunk in pool.imap_unordered(run_job, jobs):
                    durations.update((s.rel_path, d) for s, d in chunk)
                    bar.update(len(chunk))
    return durations


# --- outputs ---------------------------------------------------------------------------------


def source_of(spec: ClipSpec) -> str:
    return spec.speaker.split(":", 1)[0]


def voice_family(spec: ClipSpec) -> str:
    """espeak settings are grouped by accent; every other voice is its own family (Kokoro's
    blends are one family)."""
    if spec.engine == "espeak":
        return "espeak:" + spec.voice.split("+", 1)[0]
    return spec.speaker if source_of(spec) in ("flite", "festival") else source_of(spec)


def write_manifests(specs: Sequence[ClipSpec], durations: dict[str, float | None], out_dir: Path) -> dict[str, list[dict]]:
    """One ``<split>.jsonl`` per split: audio, text, speaker, duration (and for Kokoro clips
    the voice hash, blend weights and speed)."""
    rows: dict[str, list[dict]] = defaultdict(list)
    for spec in specs:
        duration = durations.get(spec.rel_path)
        if duration is None:
            continue
        row = {
            "audio": str((out_dir / "clips" / spec.rel_path).resolve()),
            "text": spec.text,
            "speaker": spec.speaker,
            "duration": round(duration, 3),
        }
        if spec.engine == "kokoro":
            row.update(kokoro.manifest_fields(spec))
        rows[spec.split].append(row)
    for split, items in rows.items():
        part = out_dir / f"{split}.jsonl.part"
        with part.open("w", encoding="utf-8") as f:
            for item in items:
                f.write(json.dumps(item) + "\n")
        os.replace(part, out_dir / f"{split}.jsonl")
    return rows


def corpus_stats(
    specs: Sequence[ClipSpec], durations: dict[str, float | None], pools: TextPools, plan: Plan, seed: int
) -> dict:
    hours_by_source: dict[str, float] = defaultdict(float)
    hours_by_family: dict[str, float] = defaultdict(float)
    manifests: dict[str, dict[str, float]] = defaultdict(lambda: {"clips": 0, "hours": 0.0})
    failures: dict[str, int] = defaultdict(int)
    for spec in specs:
        duration = durations.get(spec.rel_path)
        if duration is None:
            failures[spec.speaker] += 1
            continue
        manifests[spec.split]["clips"] += 1
        manifests[spec.split]["hours"] += duration / 3600
        if spec.split == "train":
            hours_by_source[source_of(spec)] += duration / 3600
            hours_by_family[voice_family(spec)] += duration / 3600

    def rounded(d: dict[str, float]) -> dict[str, float]:
        return {k: round(v, 3) for k, v in sorted(d.items())}

    stats = {
        "seed": seed,
        "sentences": {"train_pool": len(pools.train), "heldout_pool": len(pools.heldout)},
        "lm": {"lm_train_sentences": len(pools.lm_train), "lm_heldout_sentences": len(pools.lm_heldout)},
        "manifests": {k: {"clips": v["clips"], "hours": round(v["hours"], 3)} for k, v in sorted(manifests.items())},
        "train_hours_by_source": rounded(hours_by_source),
        "train_hours_by_voice_family": rounded(hours_by_family),
        "dropped_clips_by_speaker": dict(sorted(failures.items())),
        "heldout_speakers": plan.heldout_speakers,
        "heldout_tts_voices": sorted(HELDOUT_SPEAKERS),
        "voice_table": {
            "engine_share": ENGINE_SHARE,
            "espeak_accents": list(ESPEAK_ACCENTS),
            "espeak_variants": list(ESPEAK_VARIANTS),
            "espeak_speed_wpm": list(ESPEAK_SPEED_WPM),
            "espeak_pitch": list(ESPEAK_PITCH),
            "flite_voices": list(FLITE_VOICES),
            "flite_duration_stretch": list(FLITE_STRETCH),
            "festival_voices": list(FESTIVAL_VOICES),
            "festival_duration_stretch": list(FESTIVAL_STRETCH),
            "high_pitch_voices": [f"{e}:{v}" for e, v in HIGH_PITCH_VOICES],
            "high_pitch_f0_hz": list(HIGH_PITCH_F0),
        },
        "high_pitch_clips": sum(1 for s in specs if s.split == "train" and s.engine in ("flite", "festival") and s.pitch),
    }
    kokoro_train = sum(1 for s in specs if s.split == "train" and s.engine == "kokoro")
    if kokoro_train:  # absent otherwise, so a corpus without Kokoro keeps its stats.json
        stats["kokoro_clips"] = kokoro_train
        stats["voice_table"]["kokoro"] = {
            "style_vectors": list(kokoro.KOKORO_VOICES),
            "dirichlet_alpha": kokoro.KOKORO_DIRICHLET,
            "noise_share_of_spread": kokoro.KOKORO_NOISE,
            "speed": list(kokoro.KOKORO_SPEED),
            "peak": list(kokoro.KOKORO_PEAK),
        }
    return stats


def build(
    out_dir: Path,
    n_sentences: int,
    workers: int,
    seed: int,
    data_dir: Path = DATA_DIR,
    voices: int = 1,
    high_pitch: int = 0,
    kokoro_clips: int = 0,
    kokoro_dev: int = KOKORO_DEV_CLIPS,
) -> dict:
    """The whole pipeline; returns the stats also written to ``stats.json``."""
    started = time.time()
    if kokoro_clips:  # fail before hours of other synthesis, not after
        kokoro.prepare()
    out_dir.mkdir(parents=True, exist_ok=True)
    pools = build_text_pools(data_dir / "text")
    write_lines(out_dir / "lm_train.txt", pools.lm_train)
    write_lines(out_dir / "lm_heldout.txt", pools.lm_heldout)
    plan = plan_corpus(pools, n_sentences, seed, data_dir, voices, high_pitch, kokoro_clips, kokoro_dev)
    assert not any(s.split == "train" and s.speaker in HELDOUT_SPEAKERS for s in plan.specs)
    durations = execute(plan.specs, out_dir, workers, "corpus")
    finished_slt = [s for s in plan.specs if s.split == "test_slt" and durations.get(s.rel_path) is not None]
    derived = derived_specs(finished_slt, out_dir)
    durations.update(execute(derived, out_dir, workers, "test variants"))
    all_specs = list(plan.specs) + derived
    write_manifests(all_specs, durations, out_dir)
    stats = corpus_stats(all_specs, durations, pools, plan, seed)
    stats["elapsed_s"] = round(time.time() - started, 1)
    (out_dir / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    return stats


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the training corpus: synthetic speech from offline TTS engines plus real recordings.")
    parser.add_argument("--out", type=Path, required=True, help="output folder (clips/, *.jsonl, lm_*.txt, stats.json)")
    parser.add_argument("--sentences", type=int, default=14000, help="training sentences to synthesise (one voice each)")
    parser.add_argument("--workers", type=int, default=2, help="processes (use the machine's cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--voices", type=int, default=1, help="voice settings drawn per training sentence")
    parser.add_argument("--high-pitch", type=int, default=0, help="extra training clips from raised-pitch male voices")
    parser.add_argument("--kokoro", type=int, default=0, metavar="N",
                        help="extra training clips from Kokoro-82M, each in a new blended voice (needs the tts extra)")
    parser.add_argument("--kokoro-dev", type=int, default=KOKORO_DEV_CLIPS, metavar="N",
                        help="with --kokoro: dev_kokoro clips, new voices reading held-out sentences")
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="shared data folder (default: ../shared/data beside the repository)")
    args = parser.parse_args(argv)
    stats = build(args.out, args.sentences, args.workers, args.seed, args.data, args.voices, args.high_pitch, args.kokoro, args.kokoro_dev)
    print(json.dumps({k: stats[k] for k in ("manifests", "train_hours_by_source", "elapsed_s")}, indent=2))
