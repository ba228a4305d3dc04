"""asr-bench section 8 `whisper`: the default Whisper-CTC bundle against Whisper tiny.en as
faster-whisper runs it, on the same audio and on one core each.

- ours: the bundle's int8 graph on one thread (`create_session` + `AcousticModel`, as section 1),
  emissions alone (`AcousticModel.emissions`, the server's windowing included); and the whole
  offline recognizer path (`Recognizer.transcribe`: emissions, search, word alignment) with greedy
  decoding, and with beam search and the n-gram LM where the bundle ships one;
- theirs: `WhisperModel(tiny.en, device="cpu", compute_type="int8", cpu_threads=1)` and
  `transcribe(samples, beam_size=5, language="en")`, its segments consumed to the end (the same
  call as `asr-eval-whisper`, whose accuracy figures sit in the README).

Every engine first transcribes the first clip once (warm-up); then each pass runs one engine over
every clip, and the engines take turns in an order reversed every other round (A B B A ...), so a
slow drift of a shared machine falls on all of them alike. The figure kept is the median pass.
RTF is its time over the seconds of audio; the speed-up of an engine of ours is Whisper's time
over its own. WER is scored on the last round's transcripts when the clips have references.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.inputs import BuiltBundle, speechlike

REFERENCE = "tiny.en"
BEAM_SIZE = 5  # faster-whisper's beam, as in bench.whisper_reference
SAMPLE_RATE = 16000


@dataclass(frozen=True)
class Clips:
    """The audio both sides transcribe: waveforms `[N]` float32 at 16 kHz, references when known."""

    samples: list[np.ndarray]
    references: list[str] | None
    source: str

    @property
    def seconds(self) -> float:
        return sum(len(s) for s in self.samples) / SAMPLE_RATE


def load_clips(manifest: Path | None, count: int, *, fallback_seconds: float) -> Clips:
    """The first `count` readable clips of a `{"audio", "text"}` manifest, else `count` clips of
    `fallback_seconds` of speech-like audio (no references)."""
    if manifest is not None and manifest.is_file():
        from app.asr.audio import decode_audio
        from app.asr.text import normalize_text
        from models.train.manifest import read_manifest

        samples, references = [], []
        for row in read_manifest(manifest):
            if len(samples) >= count:
                break
            try:
                audio = decode_audio(Path(row["audio"]).read_bytes(), sample_rate=SAMPLE_RATE, max_seconds=60.0)
            except Exception:  # noqa: BLE001 - a missing or unreadable clip is skipped
                continue
            samples.append(audio.samples.astype(np.float32))
            references.append(normalize_text(row.get("text", "")))
        if samples:
            return Clips(samples, references if all(references) else None, f"{len(samples)} clips of {manifest}")
    where = f"no clips at {manifest}" if manifest is not None else "no manifest"
    return Clips([speechlike(fallback_seconds, SAMPLE_RATE, seed=i) for i in range(count)], None,
                 f"{count} x {fallback_seconds:g} s of synthetic speech-like audio ({where})")  # fmt: skip


def reference_missing() -> str | None:
    """Why faster-whisper's tiny.en cannot run here (the `eval` extra), or None."""
    try:
        import faster_whisper  # noqa: F401
    except ImportError as e:
        return f"faster-whisper is not installed ({e}): pip install -e '.[eval]'"
    from models.whisper_weights import model_dir

    try:
        path = model_dir(REFERENCE)
    except (FileNotFoundError, ValueError) as e:
        return f"no Whisper {REFERENCE} weights: {e}"
    if not (path / "model.bin").is_file():
        return f"no Whisper {REFERENCE} weights at {path}: pip install -e '.[eval]'"
    return None


def alternating_seconds(
    passes: dict[str, Callable[[], list[object]]], *, rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[object]]]:
    """Wall time of each pass per round, the order reversed every other round (A B B A ...);
    and each pass's last output."""
    times: dict[str, list[float]] = {name: [] for name in passes}
    outputs: dict[str, list[object]] = {}
    names = list(passes)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            started = time.perf_counter()
            outputs[name] = passes[name]()
            times[name].append(time.perf_counter() - started)
    return times, outputs


def measure_whisper(bundle: BuiltBundle, clips: Clips, *, rounds: int) -> dict[str, Any]:
    """RTF of our engines and of Whisper tiny.en on `clips`, one core each, and Whisper's time over ours;
    `{"skipped": reason}` without faster-whisper or its weights."""
    missing = reference_missing()
    if missing is not None:
        return {"skipped": missing}
    import faster_whisper

    from app.asr.bundle import BundleSet, load_acoustic
    from app.asr.metrics import error_rates
    from app.asr.options import DecodeOptions
    from app.asr.recognizer import Recognizer
    from bench.acoustic import ort_model
    from bench.whisper_reference import load_whisper, normalize_whisper, transcribe

    manifest = bundle.manifest
    if "int8" not in manifest.files:
        return {"skipped": f"{bundle.directory} has no int8 graph"}
    acoustic = ort_model(bundle, "int8", threads=1)
    loaded = load_acoustic(
        bundle.directory, manifest, threads=1, providers=["CPUExecutionProvider"], precisions=("int8",)
    )
    recognizer = Recognizer(BundleSet(acoustic={manifest.name: loaded}), default_model=manifest.name, threads=1)
    recognizer.warm_up()  # the n-gram LM and lexicon, if any, load before the clock starts
    whisper = load_whisper(threads=1, name=REFERENCE)

    def decoded(options: DecodeOptions) -> Callable[[np.ndarray], str]:
        def run(samples: np.ndarray) -> str:
            t = recognizer.transcribe(samples, model=manifest.name, options=options)
            return t.text if t.raw_text is None else t.raw_text

        return run

    engines: dict[str, Callable[[np.ndarray], object]] = {"emissions": acoustic.emissions,
                                                          "greedy": decoded(DecodeOptions(decoder="greedy", precision="int8", punctuate=False))}  # fmt: skip
    if loaded.lm_path is not None or manifest.decoding.decoder == "beam":  # the bundle's beam search, its LM if any
        engines["beam"] = decoded(DecodeOptions(decoder="beam", precision="int8", punctuate=False))
    engines["whisper"] = lambda samples: transcribe(whisper, samples)  # raw text, normalised after the clock
    for engine in engines.values():  # warm-up: sessions, arenas, CTranslate2's first decode
        engine(clips.samples[0])
    times, outputs = alternating_seconds(
        {name: (lambda e=engine: [e(s) for s in clips.samples]) for name, engine in engines.items()}, rounds=rounds
    )

    seconds = clips.seconds
    rows: dict[str, Any] = {}
    for name, values in times.items():
        median = statistics.median(values)
        row: dict[str, Any] = {"seconds": median, "rtf": median / seconds, "rounds": values}
        if name != "emissions" and clips.references is not None:
            texts = [normalize_whisper(str(t)) if name == "whisper" else str(t) for t in outputs[name]]
            row["wer"], row["cer"] = error_rates(list(zip(clips.references, texts, strict=True)))
        rows[name] = row
    theirs = rows["whisper"]["seconds"]
    beam = manifest.decoding
    return {
        "bundle": manifest.name, "directory": str(bundle.directory), "trained": bundle.trained, "note": bundle.note,
        "default_decoder": beam.decoder, "beam": {"beam_size": beam.beam_size, "lm": beam.lm} if "beam" in rows else None,
        "audio": clips.source, "clips": len(clips.samples), "audio_seconds": seconds, "rounds": rounds, "threads": 1,
        "reference": {"model": f"whisper {REFERENCE}", "engine": f"faster-whisper {faster_whisper.__version__}", "compute_type": "int8",
                      "beam_size": BEAM_SIZE, "language": "en", "cpu_threads": 1},
        "engines": rows,
        "speedup": {name: theirs / row["seconds"] for name, row in rows.items() if name != "whisper"},
    }  # fmt: skip
