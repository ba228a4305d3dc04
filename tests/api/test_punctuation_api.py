"""Punctuation, casing and ITN through the API: on by default when a punctuation bundle is loaded,
`raw_text` keeps the normalised words, words gain `punctuated_word`, stream partials stay raw."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.asr.text import normalize_text
from app.config import Settings
from app.main import create_app
from tests.api.test_stream import collect, pcm16
from tests.helpers import encode, speechlike


@pytest.fixture(scope="module")
def punctuated(models_dir: Path, punctuation_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("with-punctuation")
    for directory in (models_dir / "tiny-asg", punctuation_bundle):
        (root / directory.name).symlink_to(directory.resolve(), target_is_directory=True)
    with TestClient(create_app(Settings(models_dir=root, default_model="tiny-asg", threads=1, workers=2))) as client:
        yield client


@pytest.fixture(scope="module")
def wav() -> bytes:
    return encode(speechlike(3.0, seed=7), 16000, subtype="PCM_16")


def check_display(body: dict) -> None:
    raw = body["raw_text"]
    assert raw == raw.lower() and " ".join(w["word"] for w in body["words"]) == raw
    shown = [w["punctuated_word"] for w in body["words"]]
    assert all(s is not None for s in shown)
    assert " ".join(s for s in shown if s) == body["text"]
    if raw:
        assert body["text"][0].isupper() or not body["text"][0].isalpha()
        assert body["text"][-1] in ".?!"


def test_punctuated_by_default_and_raw_text_kept(punctuated: TestClient, wav: bytes) -> None:
    body = punctuated.post("/v1/transcribe", content=wav).json()
    assert body["raw_text"], "the tiny model should say something on this audio"
    check_display(body)
    plain = punctuated.post("/v1/transcribe?punctuate=false&itn=false", content=wav).json()
    assert plain["text"] == plain["raw_text"] == body["raw_text"]
    assert all(w["punctuated_word"] is None for w in plain["words"])


def test_nbest_entries_are_punctuated(punctuated: TestClient, wav: bytes) -> None:
    body = punctuated.post("/v1/transcribe?decoder=beam&beam_size=8&nbest=3&lm=false", content=wav).json()
    assert body["nbest"][0]["text"] == body["text"]
    for entry in body["nbest"]:
        assert entry["raw_text"] == entry["raw_text"].lower() and entry["text"][-1:] in (".", "?", "!", "")


def test_punctuate_without_a_bundle_is_refused(client: TestClient, wav: bytes) -> None:
    assert client.post("/v1/transcribe", content=wav).json()["text"] == client.post("/v1/transcribe", content=wav).json()["raw_text"]
    r = client.post("/v1/transcribe?punctuate=true", content=wav)
    assert r.status_code in (400, 422) and "punctuation" in r.json()["error"]["message"]


def test_openai_returns_the_punctuated_text(punctuated: TestClient, wav: bytes) -> None:
    openai = pytest.importorskip("openai")
    api = openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=punctuated)
    direct = punctuated.post("/v1/transcribe", content=wav).json()
    assert api.audio.transcriptions.create(model="default", file=("a.wav", io.BytesIO(wav))).text == direct["text"]
    text = api.audio.transcriptions.create(model="whisper-1", file=("a.wav", io.BytesIO(wav)), response_format="text")
    assert text.strip() == direct["text"]
    srt = api.audio.transcriptions.create(model="default", file=("a.wav", io.BytesIO(wav)), response_format="srt")
    cues = [block.split("\n")[2] for block in srt.strip().split("\n\n")]
    assert " ".join(cues) == direct["text"]


def test_stream_finals_punctuated_partials_raw(punctuated: TestClient) -> None:
    audio = speechlike(3.0, seed=7)
    offline = punctuated.post("/v1/transcribe", content=encode(audio, 16000)).json()
    with punctuated.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"sample_rate": 16000, "encoding": "pcm_s16le", "endpoint_silence": 10, "max_utterance": 60, "interim_results": True}))
        assert json.loads(ws.receive_text())["type"] == "ready"
        data = pcm16(audio)
        for start in range(0, len(data), 3200):
            ws.send_bytes(data[start : start + 3200])
        ws.send_text('{"type": "eof"}')
        messages = collect(ws)
    finals = [m for m in messages if m["type"] == "final" and m["text"]]
    partials = [m for m in messages if m["type"] == "partial"]
    assert finals and " ".join(f["raw_text"] for f in finals) == offline["raw_text"]
    assert all(f["text"][-1] in ".?!" and normalize_text(f["text"]).replace(" ", "") != "" for f in finals)
    assert all(p["text"] == p["text"].lower() and not any(c in p["text"] for c in ".,?!") for p in partials)
