"""Measure a punctuation bundle: F1 per mark and casing accuracy, on books and on speech transcripts.

    python -m export.punctuation_eval --bundle models/bundles/punctuation --data ../shared/data \\
        --hypotheses runs/punct/real_dev_lj.hyp.jsonl --json runs/punct/eval.json

Three measures, each over word slots of the tagger's output after the transcript rules
(`app.asr.punctuation.transcript_labels`: capital first word, a closing mark on the last):

- `books`: the held-out books (`models.train.punctuation.HELDOUT_FIRST_LINE` on), lowercased
  and unpunctuated, cut into passages of whole consecutive sentences of at least
  `--passage-words` words, each punctuated as one transcript;
- `real_dev_lj_reference`: each clip's normalised reference words, one transcript per clip;
  the `raw` field gives the targets;
- `real_dev_lj_recognized`: the recognizer's transcript of each clip (from `--hypotheses`,
  written by `--transcribe`), aligned word by word with the reference (Levenshtein); the
  targets of aligned words (same or substituted) are scored.

Marks are scored inside passages and clips only: the last word's mark is left out (the clips
are fragments, and the transcript rule closes the last word for free). Casing counts every
word. The time the tagger takes per second of audio is compared with the acoustic model's.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from app.asr.manifest import Manifest
from app.asr.punctuation import Punctuator, transcript_labels
from app.asr.punctuation_text import LabeledWord, label_text
from models.train.punctuation import heldout_sentences
from models.train.punctuation_scores import Scores, score


def heldout_passages(text_dir: Path, *, min_words: int) -> list[list[LabeledWord]]:
    passages, current = [], []
    for sentence in heldout_sentences(text_dir):
        current += label_text(sentence)
        if len(current) >= min_words:
            passages.append(current)
            current = []
    return passages + ([current] if current else [])


def score_transcripts(punctuator: Punctuator, transcripts: Sequence[tuple[list[str], list[LabeledWord | None]]]) -> Scores:
    """Each transcript: its words and, per word, the reference label (None: not scored).
    Marks are scored on all but the last word; cases on every word with a label."""
    predicted_marks, true_marks, predicted_cases, true_cases = [], [], [], []
    for words, targets in transcripts:
        if not words:
            continue
        labels = transcript_labels(words, punctuator.labels(words), close=True)
        for i, target in enumerate(targets):
            if target is None:
                continue
            predicted_cases.append(labels.cases[i])
            true_cases.append(target.case)
            if i < len(words) - 1:
                predicted_marks.append(labels.marks[i])
                true_marks.append(target.mark)
    return score(np.array(predicted_marks), np.array(true_marks), np.array(predicted_cases), np.array(true_cases))


def align(reference: Sequence[str], hypothesis: Sequence[str]) -> list[int | None]:
    """For each hypothesis word, the index of the reference word it is aligned with (match or
    substitution), or None for an insertion: a Levenshtein alignment."""
    n, m = len(reference), len(hypothesis)
    cost = np.zeros((n + 1, m + 1), np.int32)
    cost[:, 0], cost[0, :] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = min(cost[i - 1, j] + 1, cost[i, j - 1] + 1, cost[i - 1, j - 1] + (reference[i - 1] != hypothesis[j - 1]))
    out: list[int | None] = [None] * m
    i, j = n, m
    while i > 0 and j > 0:
        if cost[i, j] == cost[i - 1, j - 1] + (reference[i - 1] != hypothesis[j - 1]):
            out[j - 1] = i - 1
            i, j = i - 1, j - 1
        elif cost[i, j] == cost[i, j - 1] + 1:
            j -= 1
        else:
            i -= 1
    return out


def real_dev_rows(manifest: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]


def transcribe(manifest: Path, out: Path, *, models_dir: Path, model: str | None, decoder: str | None) -> None:
    """Run the recognizer over the manifest once; store hypotheses and acoustic time per clip."""
    from app.asr.audio import decode_audio
    from app.asr.bundle import load_bundles
    from app.asr.options import DecodeOptions
    from app.asr.recognizer import Recognizer

    recognizer = Recognizer(load_bundles(models_dir, threads=1), default_model=model, threads=1)
    bundle = recognizer.bundle(model)
    options = DecodeOptions(decoder=decoder) if decoder else DecodeOptions()  # type: ignore[arg-type]
    with out.open("w") as f:
        for row in real_dev_rows(manifest):
            audio = decode_audio((manifest.parent / row["audio"]).read_bytes(), sample_rate=bundle.manifest.sample_rate, max_seconds=600)
            transcript = recognizer.transcribe(audio.samples, model=bundle.name, options=options)
            text = getattr(transcript, "raw_text", None) or transcript.text
            f.write(json.dumps({"audio": row["audio"], "hypothesis": text, "seconds": len(audio.samples) / bundle.manifest.sample_rate,
                                "acoustic": transcript.timings.get("acoustic", 0.0), "model": bundle.name}) + "\n")


def evaluate(bundle: Path, *, data_dir: Path, hypotheses: Path | None, passage_words: int, threads: int = 1) -> dict[str, Any]:
    punctuator = Punctuator.from_bundle(bundle, Manifest.load(bundle), threads=threads)
    result: dict[str, Any] = {"bundle": str(bundle)}
    passages = heldout_passages(data_dir / "text", min_words=passage_words)
    started = time.perf_counter()
    books = score_transcripts(punctuator, [([w.word for w in p], list(p)) for p in passages])
    result["books"] = asdict(books) | {"passages": len(passages), "seconds": round(time.perf_counter() - started, 1)}
    print(f"held-out books ({len(passages)} passages): {books.line()}")
    manifest = data_dir / "real_dev_lj" / "manifest.jsonl"
    rows = real_dev_rows(manifest)
    references = {row["audio"]: label_text(row["raw"]) for row in rows}
    reference = score_transcripts(punctuator, [([w.word for w in r], list(r)) for r in references.values()])
    result["real_dev_lj_reference"] = asdict(reference)
    print(f"real_dev_lj reference text: {reference.line()}")
    if hypotheses is not None and hypotheses.is_file():
        hyps = real_dev_rows(hypotheses)
        transcripts, aligned = [], 0
        for row in hyps:
            ref = references[row["audio"]]
            words = row["hypothesis"].split()
            pairs = align([w.word for w in ref], words)
            aligned += sum(p is not None for p in pairs)
            transcripts.append((words, [ref[p] if p is not None else None for p in pairs]))
        recognized = score_transcripts(punctuator, transcripts)
        audio = sum(r["seconds"] for r in hyps)
        started = time.perf_counter()
        for words, _ in transcripts:
            punctuator.punctuate(words)
        tagger = time.perf_counter() - started
        acoustic = sum(r["acoustic"] for r in hyps)
        result["real_dev_lj_recognized"] = asdict(recognized) | {"model": hyps[0]["model"], "aligned_words": aligned,
                                                                 "hypothesis_words": sum(len(t[0]) for t in transcripts)}
        result["timing"] = {"audio_seconds": round(audio, 1), "punctuation_ms_per_audio_second": round(1000 * tagger / audio, 3),
                            "acoustic_ms_per_audio_second": round(1000 * acoustic / audio, 3), "share_of_acoustic": round(tagger / max(acoustic, 1e-9), 4)}
        print(f"real_dev_lj recognized ({hyps[0]['model']}): {recognized.line()}")
        print(f"timing: {result['timing']}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.punctuation_eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=Path("models/bundles/punctuation"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--hypotheses", type=Path, help="JSONL of recognizer transcripts of real_dev_lj (written by --transcribe)")
    parser.add_argument("--transcribe", action="store_true", help="write --hypotheses first with the recognizer")
    parser.add_argument("--models-dir", type=Path, default=Path("models/bundles"))
    parser.add_argument("--model", help="acoustic model (default: the server's default)")
    parser.add_argument("--decoder", choices=["greedy", "beam"])
    parser.add_argument("--passage-words", type=int, default=40)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads of the tagger (the timing row assumes 1, as the server runs it)")
    args = parser.parse_args(argv)
    if args.transcribe:
        if args.hypotheses is None:
            parser.error("--transcribe needs --hypotheses")
        transcribe(args.data / "real_dev_lj" / "manifest.jsonl", args.hypotheses, models_dir=args.models_dir, model=args.model, decoder=args.decoder)
    result = evaluate(args.bundle, data_dir=args.data, hypotheses=args.hypotheses, passage_words=args.passage_words, threads=args.threads)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
