"""One recognizer path: the command line, `POST /v1/transcribe` and `WS /v1/stream` decode alike.

A rescored recording longer than `SEGMENT_FRAMES` is decoded in pieces, each rescored after the
Transformer-XL memory of the piece before. That used to happen in `asr-transcribe` only: the HTTP
path decoded the whole file at once without any memory.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app import cli
from app.asr import recognizer as recognizer_module
from app.asr.bundle import load_bundles
from app.asr.options import DecodeOptions
from app.asr.recognizer import SEGMENT_FRAMES, Recognizer
from tests.helpers import encode, speechlike

LONG_SECONDS = 24.0  # 1200 frames at the tiny models' 50 per second: more than SEGMENT_FRAMES


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("recognizer") / "long.wav"
    path.write_bytes(encode(speechlike(LONG_SECONDS, seed=21), 16000))
    return path


@pytest.fixture(scope="module")
def recognizer(models_dir: Path) -> Recognizer:
    return Recognizer(load_bundles(models_dir, threads=1), default_model="tiny-asg")


def cli_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    with pytest.raises(SystemExit) as done:
        cli.transcribe([*argv, "--format", "json"])
    assert done.value.code == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("rescore", [False, True])
@pytest.mark.parametrize("model", ["tiny-asg", "tiny-ctc"])
def test_cli_and_http_give_the_same_transcript(models_dir: Path, client: TestClient, long_wav: Path, recognizer: Recognizer,
                                               capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, model: str,
                                               rescore: bool) -> None:  # fmt: skip
    bundle = recognizer.bundle(model)
    assert len(bundle.models["fp32"].emissions(speechlike(LONG_SECONDS, seed=21))) > SEGMENT_FRAMES  # long enough to be cut
    pieces: list[int] = []
    original = recognizer_module.pause_segments
    monkeypatch.setattr(recognizer_module, "pause_segments", lambda *a, **k: pieces.append(1) or original(*a, **k))
    params = {"model": model, "decoder": "beam", "beam_size": 8, "nbest": 3, "allow_oov": "false", "rescore": str(rescore).lower()}
    argv = [str(long_wav), "--models-dir", str(models_dir), "--model", model, "--decoder", "beam", "--beam-size", "8", "--nbest", "3",
            "--no-allow-oov", *(["--rescore"] if rescore else [])]  # fmt: skip
    offline = cli_json(argv, capsys)
    served = client.post("/v1/transcribe", params=params, content=long_wav.read_bytes())
    assert served.status_code == 200, served.text
    body = served.json()
    assert body["text"] == offline["text"]
    assert body["words"] == offline["words"]
    assert body["nbest"] == offline["nbest"]
    assert len(pieces) == (2 if rescore else 0)  # cut into pieces (once per path) exactly when rescoring
    if rescore:
        assert all(n["txl_score"] is None for n in body["nbest"]) and len(body["nbest"]) == 1  # joined pieces: one entry


def test_memory_is_carried_across_pieces(models_dir: Path, recognizer: Recognizer) -> None:
    """The pieces of a long rescored file are rescored in order, each after the memory the previous one left."""
    bundle = recognizer.bundle("tiny-ctc")
    emissions = bundle.models["fp32"].emissions(speechlike(LONG_SECONDS, seed=21))
    options = DecodeOptions(decoder="beam", beam_size=8, allow_oov=False, rescore=True)
    whole = recognizer.decode(bundle, emissions, options, duration=LONG_SECONDS)
    memory = None
    texts = []
    for start, end in recognizer_module.pause_segments(emissions, bundle, max_frames=SEGMENT_FRAMES):
        part = recognizer.decode(bundle, emissions[start:end], options, duration=0.0, frame_offset=start, memory=memory)
        assert part.memory is not None
        memory = part.memory
        texts.append(part.text)
    assert whole.text == " ".join(t for t in texts if t)
    assert whole.memory is not None and np.array_equal(whole.memory, memory)


@pytest.mark.parametrize("rescore", [False, True])
def test_stream_finals_equal_offline_decoding_of_their_segments(client: TestClient, recognizer: Recognizer, rescore: bool) -> None:
    """Joined finals of `WS /v1/stream` equal the offline decoding of the same endpointed segments,
    with the rescoring memory carried from one final to the next."""
    audio = speechlike(5.0, seed=8)
    config = {"model": "tiny-ctc", "sample_rate": 16000, "encoding": "f32le", "decoder": "beam", "beam_size": 8, "nbest": 2,
              "allow_oov": False, "rescore": rescore, "endpoint_silence": 0.3, "max_utterance": 1.2, "interim_results": False}
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps(config))
        assert ws.receive_json()["type"] == "ready"
        data = audio.astype("<f4").tobytes()
        for start in range(0, len(data), 6400):
            ws.send_bytes(data[start : start + 6400])
        ws.send_text('{"type": "eof"}')
        finals = []
        while (message := ws.receive_json())["type"] != "eof":
            finals.append(message)
    assert len(finals) >= 4  # max_utterance cuts at least every 1.2 s

    bundle = recognizer.bundle("tiny-ctc")
    emissions = bundle.models["fp32"].emissions(audio)  # exact-context model: the streamed emissions equal these
    options = DecodeOptions(decoder="beam", beam_size=8, nbest=2, allow_oov=False, rescore=rescore)
    per_second = bundle.manifest.sample_rate / bundle.manifest.frame_stride
    memory = None
    for final in finals:
        start, end = round(final["start"] * per_second), round(final["end"] * per_second)
        offline = recognizer.decode(bundle, emissions[start:end], options, duration=(end - start) / per_second, frame_offset=start, memory=memory)
        memory = offline.memory if offline.memory is not None else memory
        body = offline.to_json()  # streamed emissions equal the offline ones to float rounding: scores agree to it
        assert final["text"] == body["text"]
        assert [(w["word"], w["start"], w["end"]) for w in final["words"]] == [(w["word"], w["start"], w["end"]) for w in body["words"]]
        assert [w["confidence"] for w in final["words"]] == pytest.approx([w["confidence"] for w in body["words"]], abs=1e-3)
        assert [n["text"] for n in final["nbest"]] == [n["text"] for n in body["nbest"]]
        for key in ("score", "acoustic_score", "lm_score", "txl_score"):
            streamed, expected = [n[key] for n in final["nbest"]], [n[key] for n in body["nbest"]]
            assert [v is None for v in streamed] == [v is None for v in expected]
            assert [v for v in streamed if v is not None] == pytest.approx([v for v in expected if v is not None], rel=1e-5, abs=1e-4)
    assert (memory is not None) == rescore
