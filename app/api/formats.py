"""Transcript renderings for the OpenAI-compatible endpoint: segments, SRT and WebVTT.

Everything here shows words as displayed (`punctuated_word`: cased, punctuated, numbers written)
when the transcript was punctuated, and cues end at sentence ends.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.asr.recognizer import Transcript, Word

SEGMENT_PAUSE = 0.8  # seconds of silence between words that starts a new segment
SEGMENT_MAX = 15.0  # longest segment in seconds


SENTENCE_END = (".", "?", "!")


@dataclass(frozen=True)
class Shown:
    """A word as displayed: its punctuated form, over the times of the words it stands for
    (a number written on its first word also covers the words that show "")."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    words: tuple[Shown, ...]


def shown_words(words: list[Word]) -> list[Shown]:
    """Display forms with times: `punctuated_word` when the transcript was punctuated, else the word."""
    out: list[Shown] = []
    for word in words:
        text = word.word if word.punctuated_word is None else word.punctuated_word
        if text == "" and out:  # part of the number written on the word before
            out[-1] = Shown(out[-1].text, out[-1].start, word.end)
        elif text:
            out.append(Shown(text, word.start, word.end))
    return out


def segments(transcript: Transcript) -> list[Segment]:
    """Words grouped into cues: a new one after a sentence end, a pause of `SEGMENT_PAUSE`, or
    `SEGMENT_MAX` seconds; one segment without word times."""
    if not transcript.words:
        return [Segment(0.0, transcript.duration, transcript.text, ())] if transcript.text else []
    groups: list[list[Shown]] = [[]]
    for word in shown_words(transcript.words):
        current = groups[-1]
        if current and (current[-1].text.endswith(SENTENCE_END) or word.start - current[-1].end > SEGMENT_PAUSE
                        or word.end - current[0].start > SEGMENT_MAX):
            groups.append([])
        groups[-1].append(word)
    return [Segment(g[0].start, g[-1].end, " ".join(w.text for w in g), tuple(g)) for g in groups if g]


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
        out["words"] = [{"word": w.text, "start": w.start, "end": w.end} for w in shown_words(transcript.words)]
    return out
