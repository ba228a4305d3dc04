"""Punctuation labels from written text, and the torch-free tagger of a punctuation bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.asr.bundle import BundleSet
from app.asr.errors import InvalidOption
from app.asr.manifest import Manifest, ManifestError
from app.asr.options import DecodeOptions
from app.asr.punctuation import Labels, Punctuator, join_display, render
from app.asr.punctuation_text import (
    CAPITAL,
    CASES,
    COMMA,
    KNOWN,
    LOWER,
    MARKS,
    PERIOD,
    QUESTION,
    UPPER,
    case_of,
    display,
    label_text,
)
from app.asr.recognizer import NBestEntry, Recognizer, Transcript, Word
from app.asr.text import normalize_text


@pytest.mark.parametrize("text", [
    '"Who is it? Oh! come in!" gasped the youth, falling back faint--and dizzy.',
    "Mr. McDonald met O'Brien at 10:30 in 1914; the BBC said \"no.\"",
    "The new-comer, to-day... I'm here?--yes!",
    "Emile's dogs' bones, etc., were 1,000 strong.",
    "(See Plates LII and LIII.",
])
def test_label_words_are_the_normalised_words(text: str) -> None:
    assert [w.word for w in label_text(text)] == normalize_text(text).split()


def test_labels() -> None:
    got = [(w.word, CASES[w.case], MARKS[w.mark]) for w in label_text('"Who is it? Oh! come in," said Mr. McDonald--the BBC man; fine.')]
    assert got == [("who", "capital", ""), ("is", "lower", ""), ("it", "lower", "?"), ("oh", "capital", "!"), ("come", "lower", ""),
                   ("in", "lower", ","), ("said", "lower", ""), ("mr", "known", ""), ("mcdonald", "known", ","), ("the", "lower", ""),
                   ("bbc", "upper", ""), ("man", "lower", ","), ("fine", "lower", ".")]


def test_case_classes_and_display() -> None:
    assert [case_of(f) for f in ("the", "The", "I", "BBC", "McDonald", "iPhone")] == [LOWER, CAPITAL, CAPITAL, UPPER, KNOWN, KNOWN]
    known = {"mcdonald": "McDonald", "mr": "Mr."}
    assert display("gregson", case=CAPITAL, mark=COMMA, known=known) == "Gregson,"
    assert display("mcdonald", case=KNOWN, mark=QUESTION, known=known) == "McDonald?"
    assert display("mr", case=KNOWN, mark=PERIOD, known=known) == "Mr."
    assert display("smith", case=KNOWN, mark=0, known=known) == "Smith"
    assert display("bbc", case=UPPER, mark=0, known=known) == "BBC"


def test_render_rules_and_itn() -> None:
    words = "i paid twenty five dollars who knew it was so cheap".split()
    marks = np.array([0, 0, 0, 0, PERIOD, 0, 0, 0, 0, 0, 0])
    shown = render(words, Labels(np.zeros(len(words), np.int64), marks), known={}, itn=True, close=True)
    assert shown == ["I", "paid", "$25.", "", "", "Who", "knew", "it", "was", "so", "cheap."]
    assert join_display(shown) == "I paid $25. Who knew it was so cheap."
    plain = render(words, Labels(np.zeros(len(words), np.int64), marks), known={}, itn=False, close=False)
    assert plain[2:5] == ["twenty", "five", "dollars."] and plain[-1] == "cheap"
    assert render([], Labels(np.zeros(0, np.int64), np.zeros(0, np.int64)), known={}, itn=True, close=True) == []


@pytest.fixture(scope="module")
def bundle(punctuation_bundle: Path) -> Path:
    return punctuation_bundle


def test_bundle_manifest(bundle: Path) -> None:
    manifest = Manifest.load(bundle)
    assert manifest.kind == "punctuation" and manifest.punctuation is not None
    assert set(manifest.files) == {"int8"} and manifest.parity["int8_label_agreement"] >= 0.97
    assert manifest.punctuation.marks == MARKS


def test_manifest_refuses_a_punctuation_bundle_without_its_side_files(bundle: Path) -> None:
    data = Manifest.load(bundle).to_json()
    data["side_files"] = {}
    with pytest.raises(ManifestError, match="side file"):
        Manifest.from_json(data)


def test_punctuator_one_form_per_word(bundle: Path) -> None:
    punctuator = Punctuator.from_bundle(bundle, Manifest.load(bundle))
    words = normalize_text("he turned sharply and faced gregson across the table who is it").split()
    shown = punctuator.punctuate(words)
    assert len(shown) == len(words)
    assert [normalize_text(s) for s in shown] == words  # display forms normalise back to the words
    assert shown[0][0].isupper() and shown[-1][-1] in ".?!"
    assert punctuator.punctuate([]) == []


def test_long_transcripts_run_in_windows(bundle: Path) -> None:
    """Windowed labels cover every word; a window's centre matches a pass over that window alone."""
    punctuator = Punctuator.from_bundle(bundle, Manifest.load(bundle))
    spec = punctuator.spec
    words = ("the children were playing in the garden and the dog slept who is it " * 40).split()
    assert len(words) > 2 * spec.window
    labels = punctuator.labels(words)
    assert len(labels.cases) == len(words) == len(labels.marks)
    step = spec.window - 2 * spec.overlap
    _, mark_logits = punctuator.run(words[step : step + spec.window])
    centre = slice(step + spec.overlap, step + spec.window - spec.overlap)
    assert np.array_equal(labels.marks[centre], mark_logits[spec.overlap : spec.window - spec.overlap].argmax(-1))


def test_the_tiny_tagger_learnt_its_corpus(bundle: Path) -> None:
    punctuator = Punctuator.from_bundle(bundle, Manifest.load(bundle))
    text = punctuator.punctuate_text("where did you find that apple she walked to the store to buy some bread")
    assert "?" in text and text.endswith("."), text


def make_transcript(text: str) -> Transcript:
    words = [Word(w, 0.5 * i, 0.5 * i + 0.4, 0.9) for i, w in enumerate(text.split())]
    return Transcript(text, words, [NBestEntry(text, -1.0, -1.0), NBestEntry("he paid twenty dollars", -2.0, -2.0)], 5.0, "m")


def test_recognizer_presents_text_words_and_nbest(bundle: Path) -> None:
    punctuator = Punctuator.from_bundle(bundle, Manifest.load(bundle))
    recognizer = Recognizer(BundleSet(punctuation={"p": punctuator}))
    transcript = recognizer.present(make_transcript("he paid twenty five dollars who knew"), DecodeOptions())
    assert transcript.raw_text == "he paid twenty five dollars who knew"
    shown = [w.punctuated_word for w in transcript.words]
    assert shown[2].startswith("$25") and shown[3:5] == ["", ""]
    assert transcript.text == join_display(shown) and transcript.text[0] == "H" and transcript.text[-1] in ".?!"
    assert [e.raw_text for e in transcript.nbest] == ["he paid twenty five dollars who knew", "he paid twenty dollars"]
    assert transcript.nbest[0].text == transcript.text and "$20" in transcript.nbest[1].text
    assert transcript.to_json()["raw_text"] == transcript.raw_text and "punctuation" in transcript.timings
    off = recognizer.present(make_transcript("he paid twenty dollars"), DecodeOptions(punctuate=False))
    assert off.text == off.raw_text == "he paid twenty dollars" and all(w.punctuated_word is None for w in off.words)


def test_itn_alone_and_punctuation_without_a_bundle() -> None:
    recognizer = Recognizer(BundleSet())
    plain = recognizer.present(make_transcript("he paid twenty dollars"), DecodeOptions())
    assert plain.text == "he paid twenty dollars"
    numbers = recognizer.present(make_transcript("he paid twenty dollars"), DecodeOptions(itn=True))
    assert numbers.text == "he paid $20" and [w.punctuated_word for w in numbers.words] == ["he", "paid", "$20", ""]
    with pytest.raises(InvalidOption, match="punctuation bundle"):
        recognizer.present(make_transcript("he paid"), DecodeOptions(punctuate=True))
