"""Transcript renderings for the OpenAI-compatible endpoint: segments, SRT and WebVTT."""

from __future__ import annotations

from dataclasses import dataclass

from app.asr.recognizer import Transcript, Word

SEGMENT_PAUSE = 0.8  # seconds of silence between words that starts a new segment
SEGMENT_MAX = 15.0  # longest segment in seconds


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    words: tuple[Word, ...]


def segments(transcript: Transcript) -> list[Segment]:
    """Words grouped at pauses (or every `SEGMENT_MAX` seconds); one segment without word times."""
    if not transcript.words:
        return [Segment(0.0, transcript.duration, transcript.text, ())] if transcript.text else []
    groups: list[list[Word]] = [[]]
    for word in transcript.words:
        current = groups[-1]
        if current and (word.start - current[-1].end > SEGMENT_PAUSE or word.end - current[0].start > SEGMENT_MAX):
            groups.append([])
        groups[-1].append(word)
    return [Segment(g[0].start, g[-1].end, " ".join(w.word for w in g), tuple(g)) for g in groups if g]


def _timestamp(seconds: float, separator: str) -> str:
    millis = int(round(max(seconds, 0.0) * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def to_srt(transcript: Transcript) -> str:
    blocks = [f"{i}\n{_timestamp(s.start, ',')} --> {_timestamp(s.end, ',')}\n{s.text}\n" for i, s in enumerate(segments(transcript), 1)]
    return "\n".join(blocks)


def to_vtt(transcript: Transcript) -> str:
    blocks = [f"{_timestamp(s.start, '.')} --> {_timestamp(s.end, '.')}\n{s.text}\n" for s in segments(transcript)]
    return "WEBVTT\n\n" + "\n".join(blocks)


def to_verbose_json(transcript: Transcript, *, words: bool, segment_level: bool) -> dict[str, object]:
    """OpenAI's `verbose_json` shape (`TranscriptionVerbose`): language, duration, text, segments, words."""
    out: dict[str, object] = {"task": "transcribe", "language": "english", "duration": transcript.duration, "text": transcript.text}
    if segment_level:
        out["segments"] = [
            {"id": i, "seek": 0, "start": s.start, "end": s.end, "text": s.text, "tokens": [], "temperature": 0.0,
             "avg_logprob": 0.0, "compression_ratio": 1.0, "no_speech_prob": 0.0}
            for i, s in enumerate(segments(transcript))
        ]
    if words:
        out["words"] = [{"word": w.word, "start": w.start, "end": w.end} for w in transcript.words]
    return out
