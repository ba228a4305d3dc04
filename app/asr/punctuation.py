"""Punctuation, casing and written numbers for transcripts: the tagger of a punctuation bundle, torch-free.

`Punctuator.punctuate(words)` takes the normalised words of one transcript (what the
recognizer outputs) and returns one display form per word ("gregson" -> "Gregson,"). The
words themselves never change, so timestamps and word error rates stay as they were; the
display forms join into the readable text. With `itn`, spoken numbers are written as digits
(`app.asr.itn`): the written number goes on the first word of its span, "" on the others.

Long transcripts run in windows of `spec.window` words that overlap by `spec.overlap` on
each side; each word takes the labels of the window in which it sits farthest from an edge.

Two rules sit on top of the tagger's labels, because a transcript is a unit of speech:
its first word and every word after a sentence-final mark are capitalised, and its last
word ends a sentence (a period unless the tagger chose "?" or "!"); `close=False` leaves the
last word's mark to the tagger (for text that goes on).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from app.asr.itn import apply_itn, find_numbers
from app.asr.manifest import Manifest, PunctuationSpec
from app.asr.punctuation_text import CAPITAL, EXCLAMATION, LOWER, MARKS, PERIOD, QUESTION, Vocabulary, display
from app.asr.runtime import create_session

SENTENCE_END = (PERIOD, QUESTION, EXCLAMATION)
PRONOUN_I = frozenset({"i", "i'm", "i'll", "i've", "i'd"})


@dataclass(frozen=True)
class Labels:
    cases: np.ndarray  # [N] int, index into CASES
    marks: np.ndarray  # [N] int, index into MARKS


class Punctuator:
    """One shared tagger (ONNX Runtime sessions are safe to call from several threads)."""

    def __init__(self, session: ort.InferenceSession, spec: PunctuationSpec, vocabulary: Vocabulary, known: dict[str, str], *, name: str,
                 precision: str = "fp32") -> None:
        if tuple(spec.marks) != MARKS:
            raise ValueError(f"punctuation bundle {name!r} has marks {spec.marks}, this server knows {MARKS}")
        self.session = session
        self.spec = spec
        self.vocabulary = vocabulary
        self.known = known
        self.name = name
        self.precision = precision

    @classmethod
    def from_bundle(cls, directory: Path, manifest: Manifest, *, threads: int = 1, providers: list[str] | None = None, precision: str | None = None) -> Punctuator:
        spec = manifest.punctuation
        if spec is None:
            raise ValueError(f"{directory}: not a punctuation bundle")
        precision = precision or ("int8" if "int8" in manifest.files else "fp32")
        session = create_session(directory / manifest.files[precision].path, threads=threads, providers=providers or ["CPUExecutionProvider"])
        vocabulary = Vocabulary.from_file(directory / spec.vocabulary, suffix_buckets=spec.suffix_buckets)
        known = json.loads((directory / spec.known_forms).read_text(encoding="utf-8"))
        return cls(session, spec, vocabulary, known, name=manifest.name, precision=precision)

    # --- labels ------------------------------------------------------------------------------
    def run(self, words: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """One window (at most `max_words`) -> case logits `[T, C]`, mark logits `[T, M]`."""
        ids, suffixes = self.vocabulary.ids(words)
        case_logits, mark_logits = self.session.run(["case_logits", "mark_logits"], {"words": np.array([ids], np.int64), "suffixes": np.array([suffixes], np.int64)})
        return case_logits[0], mark_logits[0]

    def labels(self, words: Sequence[str]) -> Labels:
        """The tagger's case and mark for every word, windowed for long transcripts."""
        n = len(words)
        cases, marks = np.zeros(n, np.int64), np.zeros(n, np.int64)
        if n == 0:
            return Labels(cases, marks)
        window, overlap = self.spec.window, self.spec.overlap
        step = window - 2 * overlap
        start = 0
        while True:
            end = min(start + window, n)
            case_logits, mark_logits = self.run(words[start:end])
            keep_from = start if start == 0 else start + overlap
            keep_to = end if end == n else end - overlap
            cases[keep_from:keep_to] = case_logits[keep_from - start : keep_to - start].argmax(-1)
            marks[keep_from:keep_to] = mark_logits[keep_from - start : keep_to - start].argmax(-1)
            if end == n:
                return Labels(cases, marks)
            start += step

    # --- display forms -----------------------------------------------------------------------
    def punctuate(self, words: Sequence[str], *, itn: bool = True, close: bool = True) -> list[str]:
        """One display form per word: cased, followed by its mark, numbers written out ("" inside a number)."""
        labels = self.labels(words)
        return render(words, labels, known=self.known, itn=itn, close=close)

    def punctuate_text(self, text: str, *, itn: bool = True, close: bool = True) -> str:
        return join_display(self.punctuate(text.split(), itn=itn, close=close))


def transcript_labels(words: Sequence[str], labels: Labels, *, close: bool) -> Labels:
    """The tagger's labels with the transcript rules: capital first word, capital after a sentence end
    and for "I", and (with `close`) a sentence-final mark on the last word."""
    cases, marks = labels.cases.copy(), labels.marks.copy()
    if len(words) == 0:
        return Labels(cases, marks)
    if close and marks[-1] not in SENTENCE_END:
        marks[-1] = PERIOD
    for i, word in enumerate(words):
        if cases[i] == LOWER and (i == 0 or marks[i - 1] in SENTENCE_END or word in PRONOUN_I):
            cases[i] = CAPITAL
    return Labels(cases, marks)


def render(words: Sequence[str], labels: Labels, *, known: dict[str, str], itn: bool, close: bool) -> list[str]:
    """Display forms from the tagger's labels, with the transcript rules and ITN."""
    final = transcript_labels(words, labels, close=close)
    shown = [display(w, case=int(c), mark=int(m), known=known) for w, c, m in zip(words, final.cases, final.marks, strict=True)]
    if itn:
        for span in find_numbers(words, [MARKS[m] for m in final.marks]):
            mark = MARKS[final.marks[span.end - 1]]
            shown[span.start] = span.text + ("" if span.text.endswith(".") and mark == "." else mark)
            for k in range(span.start + 1, span.end):
                shown[k] = ""
    return shown


def punctuate_words(punctuator: Punctuator | None, words: Sequence[str], *, punctuate: bool, itn: bool) -> list[str]:
    """Display forms of a transcript's words: the tagger's (with `punctuate`), numbers written (with `itn`)."""
    if punctuate and punctuator is not None:
        return punctuator.punctuate(words, itn=itn)
    if itn:
        return apply_itn(words)
    return list(words)


def present(transcript: Any, punctuator: Punctuator | None, *, punctuate: bool, itn: bool) -> Any:
    """A recognizer `Transcript` as shown: `text` and every n-best entry punctuated, each word's
    `punctuated_word` set; `raw_text` (transcript and entries) keeps the normalised words.
    Changes the transcript in place and returns it; the time spent goes to `timings["punctuation"]`."""
    transcript.raw_text = transcript.text
    if not (punctuate or itn):
        return transcript
    started = time.perf_counter()
    words = transcript.text.split()
    shown = punctuate_words(punctuator, words, punctuate=punctuate, itn=itn)
    transcript.text = join_display(shown)
    if [w.word for w in transcript.words] == words:
        transcript.words = [dataclasses.replace(w, punctuated_word=s) for w, s in zip(transcript.words, shown, strict=True)]
    entries = []
    for entry in transcript.nbest:
        text = transcript.text if entry.text == transcript.raw_text else join_display(
            punctuate_words(punctuator, entry.text.split(), punctuate=punctuate, itn=itn))
        entries.append(dataclasses.replace(entry, text=text, raw_text=entry.text))
    transcript.nbest = entries
    transcript.timings["punctuation"] = time.perf_counter() - started
    return transcript


def join_display(shown: Sequence[str]) -> str:
    return " ".join(s for s in shown if s)


def time_per_word(punctuator: Punctuator, words: Sequence[str], *, repeats: int = 5) -> float:
    """Seconds per word of `punctuate` (best of `repeats`), for benchmarks."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        punctuator.punctuate(words)
        best = min(best, time.perf_counter() - started)
    return best / max(len(words), 1)

