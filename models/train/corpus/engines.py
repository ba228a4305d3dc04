"""The voice table and Debian's offline TTS engines (espeak-ng, flite, festival), plus the
transforms that make test-set variants of finished clips.

Speaker diversity, not compute, limits what the acoustic model learns from synthetic speech,
so every training sentence gets a freshly drawn voice setting (engine, voice, accent, speed,
pitch). One speaker (slt: flite's clustergen voice and festival's HTS voice are the same
person) is never synthesised for training, so ``test_slt*`` measures generalisation to a new
speaker. Kokoro, the neural engine, lives in ``kokoro.py``.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from models.train.augment import add_noise as mix_noise
from models.train.augment import coloured_noise

SAMPLE_RATE = 16000
NOISY_SNR_DB = 10.0

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


@dataclass(frozen=True)
class ClipSpec:
    """One output clip. ``engine`` is a TTS engine or a transform of existing audio
    (``copy`` for real recordings, ``noisy``/``tel8k`` for test-set variants). Kokoro clips
    keep their speed in ``stretch`` and the seed their whole voice is drawn from in ``seed``."""

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


Wave = tuple[np.ndarray, int]  # (samples [n] float32, sample rate)


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


def read_wav(path: Path) -> Wave | None:
    try:
        wave, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, sf.LibsndfileError):
        return None
    return wave.mean(axis=1), int(sr)


def synth_espeak(spec: ClipSpec, tmp: Path) -> Wave | None:
    out = tmp / "espeak.wav"
    cmd = ["espeak-ng", "-v", spec.voice, "-s", str(spec.speed), "-p", str(spec.pitch), "-w", str(out), spec.text]
    if subprocess.run(cmd, capture_output=True, timeout=60).returncode != 0:
        return None
    return read_wav(out)


def synth_flite(spec: ClipSpec, tmp: Path) -> Wave | None:
    out = tmp / "flite.wav"
    cmd = ["flite", "-voice", spec.voice, "--setf", f"duration_stretch={spec.stretch}"]
    if spec.pitch:
        cmd += ["--setf", f"int_f0_target_mean={spec.pitch}", "--setf", f"int_f0_target_stddev={spec.pitch * HIGH_PITCH_F0_SPREAD:.1f}"]
    cmd += ["-t", spec.text, "-o", str(out)]
    if subprocess.run(cmd, capture_output=True, timeout=60).returncode != 0:
        return None
    return read_wav(out)


def synth_festival_batch(specs: Sequence[ClipSpec], tmp: Path) -> dict[str, Wave]:
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
    results: dict[str, Wave] = {}
    for rel, wav in outputs.items():
        loaded = read_wav(wav) if wav.exists() else None
        if loaded is not None:
            results[rel] = loaded
    return results


def derived_wave(spec: ClipSpec) -> Wave | None:
    """A real recording copied as is (``copy``), or a test-set variant of a finished clip:
    coloured noise at NOISY_SNR_DB (``noisy``) or an 8 kHz telephone round trip (``tel8k``)."""
    loaded = read_wav(Path(spec.source))
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
