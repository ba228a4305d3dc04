"""Subtitles and OpenAI renderings of a punctuated transcript: display forms, cues ending at sentences."""

from __future__ import annotations

from app.api.formats import segments, shown_words, to_srt, to_verbose_json, to_vtt
from app.asr.recognizer import Transcript, Word

RAW = "he paid twenty five dollars who knew it was so cheap"
SHOWN = ["He", "paid", "$25.", "", "", "Who", "knew", "it", "was", "so", "cheap?"]


def transcript(punctuated: bool = True) -> Transcript:
    words = [Word(w, 0.3 * i, 0.3 * i + 0.25, 0.9, s if punctuated else None) for i, (w, s) in enumerate(zip(RAW.split(), SHOWN, strict=True))]
    text = " ".join(s for s in SHOWN if s) if punctuated else RAW
    return Transcript(text, words, [], 3.5, "m", raw_text=RAW if punctuated else None)


def test_a_number_covers_the_times_of_its_words() -> None:
    shown = shown_words(transcript().words)
    assert [w.text for w in shown] == ["He", "paid", "$25.", "Who", "knew", "it", "was", "so", "cheap?"]
    assert (shown[2].start, shown[2].end) == (0.6, 1.2 + 0.25)


def test_cues_end_at_sentence_ends() -> None:
    cues = segments(transcript())
    assert [c.text for c in cues] == ["He paid $25.", "Who knew it was so cheap?"]
    srt = to_srt(transcript())
    assert "1\n00:00:00,000 --> 00:00:01,450\nHe paid $25.\n" in srt and "2\n00:00:01,500 --> 00:00:03,250\nWho knew it was so cheap?\n" in srt
    assert to_vtt(transcript()).startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.450\nHe paid $25.\n")


def test_verbose_json_shows_display_words() -> None:
    body = to_verbose_json(transcript(), words=True, segment_level=True)
    assert body["text"] == "He paid $25. Who knew it was so cheap?"
    assert [w["word"] for w in body["words"]][:3] == ["He", "paid", "$25."]
    assert len(body["segments"]) == 2


def test_unpunctuated_transcripts_render_as_before() -> None:
    cues = segments(transcript(punctuated=False))
    assert [c.text for c in cues] == [RAW]
    assert transcript(punctuated=False).to_json()["raw_text"] == RAW
