"""Build the training corpus: synthetic speech from offline TTS engines plus real recordings.

Speaker diversity, not compute, limits what the acoustic model learns from synthetic
speech, so every training sentence gets a freshly drawn voice setting (engine, voice,
accent, speed, pitch). One speaker (slt: flite's clustergen voice and festival's HTS
voice are the same person) is never synthesised for training, so ``test_slt*`` measures
generalisation to a new speaker. Held-out sentences are chosen by a hash of the
normalised text, so the split is the same for every seed, every text source and the LM
files: a sentence held out once is held out everywhere.

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
import re
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
from models.train.augment import add_noise as mix_noise
from models.train.augment import coloured_noise

SAMPLE_RATE = 16000
DATA_DIR = Path("/work/shared/data")
MIN_WORDS, MAX_WORDS = 3, 25
HELDOUT_PER_MILLE = 50  # ~5% of sentences
MAX_SECONDS = 20.0
MIN_SECONDS = 0.1  # FSDD digits can be as short as 0.14 s
# Evaluation sets must not move when the training seed changes.
EVAL_SEED = 20240531

SYNTH_TEXT_FILES = ("common_voice_sentences.txt", "lj_speech.txt")
GUTENBERG_GLOB = "gutenberg_*.txt"

# --- voice table (the README quotes this) -----------------------------------------------

ENGINE_SHARE: dict[str, float] = {"espeak": 0.6, "flite": 0.3, "festival": 0.1}
ESPEAK_ACCENTS: tuple[str, ...] = (
    "en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
)  # fmt: skip
ESPEAK_VARIANTS: tuple[str, ...] = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "Annie", "Alicia", "Andrea", "Andy", "belinda", "benjamin", "Denis", "edward", "john", "linda", "max",
    "michel", "paul", "quincy", "rob", "robert", "steph", "travis", "victor", "norbert", "Henrique", "Hugo",
    "Marco", "grandma", "grandpa", "aunty", "klatt", "klatt2", "klatt3", "Storm", "ed", "Lee", "Mike", "anika",
    "Gene", "zac", "caleb", "david",
)  # fmt: skip
ESPEAK_SPEED_WPM: tuple[int, int] = (130, 210)
ESPEAK_PITCH: tuple[int, int] = (25, 75)
FLITE_VOICES: tuple[str, ...] = ("kal", "kal16", "awb", "rms")
FLITE_STRETCH: tuple[float, float] = (0.85, 1.2)
FESTIVAL_VOICES: tuple[str, ...] = ("kal_diphone", "ked_diphone")
FESTIVAL_STRETCH: tuple[float, float] = (0.85, 1.2)
# Raised-pitch copies (``--high-pitch``): the flite and festival training voices are all male,
# while the held-out voice and half of real users are not. These voices take a target F0 mean
# (flite's ``int_f0_target_mean``, festival's ``int_lr_params``); flite's rms ignores it.
HIGH_PITCH_VOICES: tuple[tuple[str, str], ...] = (
    ("flite", "kal16"), ("flite", "awb"), ("flite", "kal"), ("festival", "kal_diphone"), ("festival", "ked_diphone"),
)  # fmt: skip
HIGH_PITCH_F0: tuple[int, int] = (165, 240)
HIGH_PITCH_F0_SPREAD = 0.15  # F0 standard deviation as a share of the target mean
# Held-out speaker: never used for training.
HELDOUT_FLITE_VOICE = "slt"
HELDOUT_FESTIVAL_VOICE = "cmu_us_slt_arctic_hts"
HELDOUT_SPEAKERS = frozenset({f"flite:{HELDOUT_FLITE_VOICE}", f"festival:{HELDOUT_FESTIVAL_VOICE}"})

AN4_HELDOUT = (2, 6)  # (female, male) speakers held out for test_an4
FSDD_HELDOUT = 1
TEST_SLT_CLIPS = (240, 60)  # (flite slt, festival slt hts)
DEV_CLIPS = 300
NOISY_SNR_DB = 10.0

HIGH_PITCH_STREAM = 1  # second entropy word of the raised-pitch draws' generator

FESTIVAL_CHUNK = 40
SYNTH_CHUNK = 16


@dataclass(frozen=True)
class ClipSpec:
    """One output clip. ``engine`` is a TTS engine or a transform of existing audio
    (``copy`` for real recordings, ``noisy``/``tel8k`` for test-set variants)."""

    split: str
    rel_path: str
    text: str
    speaker: str
    engine: str
    voice: str = ""
    speed: int = 0
    pitch: int = 0
    stretch: float = 1.0
    source: str = ""
    seed: int = 0


# --- text ----------------------------------------------------------------------------------


def text_hash(text: str) -> int:
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:12], 16)


def is_heldout(text: str) -> bool:
    """Hash-based, so the split needs no state and agrees across sources and runs."""
    return text_hash(text) % 1000 < HELDOUT_PER_MILLE


def dedup(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


_BOILERPLATE = re.compile(r"project gutenberg|^\s*produced by\b", flags=re.IGNORECASE)


def gutenberg_body(raw: str) -> str:
    """Text between the ``*** START OF`` and ``*** END OF`` markers (the licence
    boilerplate would otherwise pollute the LM)."""
    start = re.search(r"^\*\*\* ?START OF.*$", raw, flags=re.MULTILINE)
    end = re.search(r"^\*\*\* ?END OF.*$", raw, flags=re.MULTILINE)
    body = raw[start.end() if start else 0 : end.start() if end else len(raw)]
    # Credits and "End of the Project Gutenberg EBook" lines sit inside the markers.
    return "\n".join(line for line in body.splitlines() if not _BOILERPLATE.search(line))


_ABBREVIATIONS = re.compile(r"\b(Mr|Mrs|Ms|Dr|St|Jr|Sr|Mt|No|vs)\.", flags=re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'\u201d\u2019)\]]*\s+")


def split_sentences(body: str) -> list[str]:
    """Paragraphs are joined and split after ``.!?``; common abbreviations are protected."""
    sentences: list[str] = []
    for paragraph in re.split(r"\n\s*\n", body):
        flat = " ".join(paragraph.split())
        if not flat:
            continue
        flat = _ABBREVIATIONS.sub(r"\1", flat)
        sentences.extend(s for s in _SENTENCE_END.split(flat) if s.strip())
    return sentences


@dataclass(frozen=True)
class TextPools:
    train: list[str]  # 3-25 words, for synthesis
    heldout: list[str]  # 3-25 words, never synthesised for training
    lm_train: list[str]
    lm_heldout: list[str]


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8-sig", errors="replace").splitlines()


def build_text_pools(text_dir: Path) -> TextPools:
    """Normalise, filter and split all text. The LM keeps sentences of any length from every
    file (Gutenberg included) but drops every hash-held-out sentence, so lm_train can never
    contain a dev/test transcript."""
    synth: list[str] = []
    for name in SYNTH_TEXT_FILES:
        synth.extend(normalize_text(line) for line in read_lines(text_dir / name))
    synth = dedup(s for s in synth if MIN_WORDS <= len(s.split()) <= MAX_WORDS)
    train = [s for s in synth if not is_heldout(s)]
    heldout = [s for s in synth if is_heldout(s)]

    lm_all: list[str] = []
    for name in SYNTH_TEXT_FILES:
        lm_all.extend(normalize_text(line) for line in read_lines(text_dir / name))
    for path in sorted(text_dir.glob(GUTENBERG_GLOB)):
        body = gutenberg_body(path.read_text(encoding="utf-8-sig", errors="replace"))
        lm_all.extend(normalize_text(s) for s in split_sentences(body))
    lm_train = dedup(s for s in lm_all if s and not is_heldout(s))
    return TextPools(train=train, heldout=heldout, lm_train=lm_train, lm_heldout=heldout)


# --- voices ----------------------------------------------------------------------------------


def clip_rel_path(engine: str, key: str) -> str:
    digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]
    return f"{engine}/{digest[:2]}/{digest}.flac"


def make_synth_spec(
    split: str, text: str, engine: str, voice: str, speed: int = 0, pitch: int = 0, stretch: float = 1.0
) -> ClipSpec:
    speaker = f"{engine}:{voice}"
    key = f"{engine}|{voice}|{speed}|{pitch}|{stretch:.3f}|{text}"
    return ClipSpec(split, clip_rel_path(engine, key), text, speaker, engine, voice, speed, pitch, round(stretch, 3))


def draw_high_pitch_voice(split: str, text: str, rng: np.random.Generator) -> ClipSpec:
    """A flite or festival training voice with its F0 mean raised into the female range
    (``pitch`` holds the target in Hz; formants stay male, which training's spectral warp covers)."""
    engine, voice = HIGH_PITCH_VOICES[int(rng.integers(len(HIGH_PITCH_VOICES)))]
    pitch = int(rng.integers(HIGH_PITCH_F0[0], HIGH_PITCH_F0[1] + 1))
    stretch = float(rng.uniform(*(FLITE_STRETCH if engine == "flite" else FESTIVAL_STRETCH)))
    return make_synth_spec(split, text, engine, voice, pitch=pitch, stretch=stretch)


def draw_training_voice(split: str, text: str, rng: np.random.Generator) -> ClipSpec:
    """One random training-voice setting for ``text`` (engine by ENGINE_SHARE)."""
    engines = list(ENGINE_SHARE)
    shares = np.asarray([ENGINE_SHARE[e] for e in engines])
    engine = engines[int(rng.choice(len(engines), p=shares / shares.sum()))]
    if engine == "espeak":
        accent = ESPEAK_ACCENTS[int(rng.integers(len(ESPEAK_ACCENTS)))]
        variant = ESPEAK_VARIANTS[int(rng.integers(len(ESPEAK_VARIANTS)))]
        speed = int(rng.integers(ESPEAK_SPEED_WPM[0], ESPEAK_SPEED_WPM[1] + 1))
        pitch = int(rng.integers(ESPEAK_PITCH[0], ESPEAK_PITCH[1] + 1))
        return make_synth_spec(split, text, "espeak", f"{accent}+{variant}", speed=speed, pitch=pitch)
    if engine == "flite":
        voice = FLITE_VOICES[int(rng.integers(len(FLITE_VOICES)))]
        return make_synth_spec(split, text, "flite", voice, stretch=float(rng.uniform(*FLITE_STRETCH)))
    voice = FESTIVAL_VOICES[int(rng.integers(len(FESTIVAL_VOICES)))]
    return make_synth_spec(split, text, "festival", voice, stretch=float(rng.uniform(*FESTIVAL_STRETCH)))


# --- synthesis -------------------------------------------------------------------------------


def _read_wav(path: Path) -> tuple[np.ndarray, int] | None:
    try:
        wave, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, sf.LibsndfileError):
        return None
    return wave.mean(axis=1), int(sr)


def synth_espeak(spec: ClipSpec, tmp: Path) -> tuple[np.ndarray, int] | None:
    out = tmp / "espeak.wav"
    cmd = ["espeak-ng", "-v", spec.voice, "-s", str(spec.speed), "-p", str(spec.pitch), "-w", str(out), spec.text]
    if subprocess.run(cmd, capture_output=True, timeout=60).returncode != 0:
        return None
    return _read_wav(out)


def synth_flite(spec: ClipSpec, tmp: Path) -> tuple[np.ndarray, int] | None:
    out = tmp / "flite.wav"
    cmd = ["flite", "-voice", spec.voice, "--setf", f"duration_stretch={spec.stretch}"]
    if spec.pitch:
        cmd += ["--setf", f"int_f0_target_mean={spec.pitch}", "--setf", f"int_f0_target_stddev={spec.pitch * HIGH_PITCH_F0_SPREAD:.1f}"]
    cmd += ["-t", spec.text, "-o", str(out)]
    if subprocess.run(cmd, capture_output=True, timeout=60).returncode != 0:
        return None
    return _read_wav(out)


def synth_festival_batch(specs: Sequence[ClipSpec], tmp: Path) -> dict[str, tuple[np.ndarray, int]]:
    """One festival process for many sentences (its start-up costs ~0.4 s). Each utterance
    is wrapped in ``unwind-protect`` so one failure does not lose the rest of the batch."""
    lines: list[str] = []
    current: tuple[str, int] = ("", 0)
    outputs: dict[str, Path] = {}
    for i, spec in enumerate(specs):
        if (spec.voice, spec.pitch) != current:
            lines.append(f"(voice_{spec.voice})")  # also restores the voice's own int_lr_params
            if spec.pitch:
                lines.append(
                    f"(set! int_lr_params '((target_f0_mean {spec.pitch}) (target_f0_std {spec.pitch * HIGH_PITCH_F0_SPREAD:.1f}) "
                    "(model_f0_mean 170) (model_f0_std 34)))"
                )
            current = (spec.voice, spec.pitch)
        wav = tmp / f"fest_{i}.wav"
        outputs[spec.rel_path] = wav
        lines.append(
            f"(unwind-protect (begin (Parameter.set 'Duration_Stretch {spec.stretch}) "
            f'(set! u (Utterance Text "{spec.text}")) (utt.synth u) '
            f'(utt.save.wave u "{wav}" \'riff)) nil)'
        )
    script = tmp / "batch.scm"
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        subprocess.run(["festival", "--batch", str(script)], capture_output=True, timeout=30 + 5 * len(specs))
    except subprocess.TimeoutExpired:
        pass
    results: dict[str, tuple[np.ndarray, int]] = {}
    for rel, wav in outputs.items():
        loaded = _read_wav(wav) if wav.exists() else None
        if loaded is not None:
            results[rel] = loaded
    return results


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


def _derived_wave(spec: ClipSpec) -> tuple[np.ndarray, int] | None:
    loaded = _read_wav(Path(spec.source))
    if loaded is None:
        return None
    wave, sr = loaded
    if spec.engine == "copy":
        return wave, sr
    if sr != SAMPLE_RATE:
        wave = np.asarray(soxr.resample(wave, sr, SAMPLE_RATE, quality="HQ"), dtype=np.float32)
    if spec.engine == "noisy":
        rng = np.random.default_rng(spec.seed)
        kind = ("white", "pink", "brown")[spec.seed % 3]
        return mix_noise(wave, coloured_noise(wave.size, kind, rng), NOISY_SNR_DB), SAMPLE_RATE
    if spec.engine == "tel8k":
        down = np.asarray(soxr.resample(wave, SAMPLE_RATE, 8000, quality="HQ"), dtype=np.float32)
        return np.asarray(soxr.resample(down, 8000, SAMPLE_RATE, quality="HQ"), dtype=np.float32), SAMPLE_RATE
    raise ValueError(f"unknown engine {spec.engine}")


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
            loaded: tuple[np.ndarray, int] | None
            try:
                if spec.engine == "espeak":
                    loaded = synth_espeak(spec, tmp)
                elif spec.engine == "flite":
                    loaded = synth_flite(spec, tmp)
                elif spec.engine == "festival":
                    loaded = festival_out.get(spec.rel_path)
                else:
                    loaded = _derived_wave(spec)
            except (subprocess.SubprocessError, OSError):
                loaded = None
            duration = write_clip(loaded[0], loaded[1], out_dir / "clips" / spec.rel_path) if loaded else None
            results.append((spec, duration))
    return results


# --- real speech -----------------------------------------------------------------------------


def read_manifest(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


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
            ClipSpec(split, rel, text, f"{source}:{row['speaker']}", "copy", source=str(data_dir / row["audio"]))
        )
    return specs


# --- planning --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    specs: list[ClipSpec]
    heldout_speakers: dict[str, list[str]]


def plan_corpus(
    pools: TextPools, n_sentences: int, seed: int, data_dir: Path = DATA_DIR, voices: int = 1, high_pitch: int = 0
) -> Plan:
    """All clips of the first pass. Training draws depend on ``seed``; dev/test draws use
    EVAL_SEED so evaluation sets are comparable across training runs. Each training
    sentence is spoken by ``voices`` independently drawn voice settings. ``high_pitch``
    more training clips (random training sentences, raised-pitch voices) come from their
    own random stream, so adding them leaves every other clip of the plan unchanged."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pools.train))[: min(n_sentences, len(pools.train))]
    specs = [draw_training_voice("train", pools.train[i], rng) for i in sorted(order) for _ in range(voices)]
    if high_pitch:
        hi_rng = np.random.default_rng([seed, HIGH_PITCH_STREAM])
        picks = hi_rng.choice(len(pools.train), size=high_pitch, replace=high_pitch > len(pools.train))
        specs += [draw_high_pitch_voice("train", pools.train[i], hi_rng) for i in picks]

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
    """Festival clips go in large per-voice chunks (start-up cost), the rest in small ones;
    slow festival jobs come first so the pool does not end on one straggler."""
    by_festival_voice: dict[str, list[ClipSpec]] = defaultdict(list)
    rest: list[ClipSpec] = []
    for spec in specs:
        if spec.engine == "festival":
            by_festival_voice[spec.voice].append(spec)
        else:
            rest.append(spec)
    jobs: list[tuple[str, list[ClipSpec]]] = []
    for voice in sorted(by_festival_voice):
        group = by_festival_voice[voice]
        jobs += [(str(out_dir), group[i : i + FESTIVAL_CHUNK]) for i in range(0, len(group), FESTIVAL_CHUNK)]
    jobs += [(str(out_dir), rest[i : i + SYNTH_CHUNK]) for i in range(0, len(rest), SYNTH_CHUNK)]
    return jobs


def execute(specs: Sequence[ClipSpec], out_dir: Path, workers: int, desc: str) -> dict[str, float | None]:
    """Run all jobs, returning duration (or None when dropped) per rel_path."""
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
    """espeak settings are grouped by accent; every other voice is its own family."""
    if spec.engine == "espeak":
        return "espeak:" + spec.voice.split("+", 1)[0]
    return spec.speaker if source_of(spec) in ("flite", "festival") else source_of(spec)


def write_manifests(specs: Sequence[ClipSpec], durations: dict[str, float | None], out_dir: Path) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = defaultdict(list)
    for spec in specs:
        duration = durations.get(spec.rel_path)
        if duration is None:
            continue
        rows[spec.split].append(
            {
                "audio": str((out_dir / "clips" / spec.rel_path).resolve()),
                "text": spec.text,
                "speaker": spec.speaker,
                "duration": round(duration, 3),
            }
        )
    for split, items in rows.items():
        part = out_dir / f"{split}.jsonl.part"
        with part.open("w", encoding="utf-8") as f:
            for item in items:
                f.write(json.dumps(item) + "\n")
        os.replace(part, out_dir / f"{split}.jsonl")
    return rows


def write_lines(path: Path, lines: Iterable[str]) -> int:
    items = list(lines)
    path.write_text("".join(line + "\n" for line in items), encoding="utf-8")
    return len(items)


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

    return {
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


def build(
    out_dir: Path,
    n_sentences: int,
    workers: int,
    seed: int,
    data_dir: Path = DATA_DIR,
    voices: int = 1,
    high_pitch: int = 0,
) -> dict:
    """The whole pipeline; returns the stats also written to ``stats.json``."""
    started = time.time()
    out_dir.mkdir(parents=True, exist_ok=True)
    pools = build_text_pools(data_dir / "text")
    write_lines(out_dir / "lm_train.txt", pools.lm_train)
    write_lines(out_dir / "lm_heldout.txt", pools.lm_heldout)
    plan = plan_corpus(pools, n_sentences, seed, data_dir, voices, high_pitch)
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder (clips/, *.jsonl, lm_*.txt, stats.json)")
    parser.add_argument("--sentences", type=int, default=14000, help="training sentences to synthesise (one voice each)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--voices", type=int, default=1, help="voice settings drawn per training sentence")
    parser.add_argument("--high-pitch", type=int, default=0, help="extra training clips from raised-pitch male voices")
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="shared data folder")
    args = parser.parse_args(argv)
    stats = build(args.out, args.sentences, args.workers, args.seed, args.data, args.voices, args.high_pitch)
    print(json.dumps({k: stats[k] for k in ("manifests", "train_hours_by_source", "elapsed_s")}, indent=2))


if __name__ == "__main__":
    main()
