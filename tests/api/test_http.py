"""The REST API end to end on tiny exported bundles: formats, options, errors, OpenAI client."""

from __future__ import annotations

import io
import re
import struct

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from tests.helpers import encode, speechlike


@pytest.fixture(scope="module")
def wav16k() -> bytes:
    return encode(speechlike(2.0), 16000, subtype="PCM_16")


def assert_ready(client: TestClient) -> None:
    assert client.get("/readyz").status_code == 200


def test_health_ready_models(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and set(ready["models"]) == {"tiny-asg", "tiny-ctc"}
    models = client.get("/v1/models").json()["data"]
    by_id = {m["id"]: m for m in models}
    assert by_id["tiny-asg"]["criterion"] == "asg" and by_id["tiny-asg"]["default"]
    assert by_id["tiny-asg"]["precisions"] == ["fp32", "int8"]


@pytest.mark.parametrize("model", ["tiny-asg", "tiny-ctc"])
def test_multipart_and_raw_body_agree(client: TestClient, wav16k: bytes, model: str) -> None:
    multipart = client.post("/v1/transcribe", params={"model": model}, files={"file": ("a.wav", wav16k, "audio/wav")})
    raw = client.post(f"/v1/transcribe?model={model}", content=wav16k, headers={"content-type": "application/octet-stream"})
    assert multipart.status_code == 200, multipart.text
    body = multipart.json()
    assert body["model"] == model and body["duration"] == pytest.approx(2.0)
    assert raw.json()["text"] == body["text"]
    assert set(body["timings"]) >= {"acoustic", "decode", "total"}
    for word in body["words"]:
        assert 0 <= word["start"] < word["end"] <= 2.0 + 0.05
        assert 0 < word["confidence"] <= 1
    assert " ".join(w["word"] for w in body["words"]) == body["text"]


def test_default_model_and_form_options(client: TestClient, wav16k: bytes) -> None:
    r = client.post("/v1/transcribe", files={"file": ("a.wav", wav16k)}, data={"model": "default", "word_timestamps": "false"})
    assert r.status_code == 200 and r.json()["model"] == "tiny-asg" and r.json()["words"] == []


def formats() -> list[tuple[str, str | None, int, int]]:
    return [("WAV", "PCM_U8", 16000, 1), ("WAV", "PCM_16", 8000, 1), ("WAV", "PCM_24", 44100, 2), ("WAV", "PCM_32", 48000, 1),
            ("WAV", "FLOAT", 22050, 2), ("FLAC", "PCM_16", 16000, 6), ("OGG", "VORBIS", 32000, 1), ("OGG", "OPUS", 48000, 1),
            ("MP3", "MPEG_LAYER_III", 44100, 2)]


@pytest.mark.parametrize(("fmt", "subtype", "rate", "channels"), formats())
def test_formats_rates_channels(client: TestClient, fmt: str, subtype: str | None, rate: int, channels: int) -> None:
    data = encode(speechlike(1.5, rate, channels=channels), rate, format=fmt, subtype=subtype)
    r = client.post("/v1/transcribe", files={"file": (f"a.{fmt.lower()}", data)})
    assert r.status_code == 200, r.text
    assert r.json()["duration"] == pytest.approx(1.5, abs=0.06)


def test_resampled_audio_matches_the_model_rate(wav16k: bytes) -> None:
    from app.asr.audio import decode_audio

    original = decode_audio(wav16k, sample_rate=16000, max_seconds=60).samples
    up = decode_audio(encode(speechlike(2.0, 48000), 48000, subtype="FLOAT"), sample_rate=16000, max_seconds=60).samples
    assert len(up) == len(original)
    assert np.corrcoef(original, up)[0, 1] > 0.99


def bad_inputs(wav16k: bytes) -> list[tuple[str, bytes, int, str]]:
    nan = encode(np.array([0.1, np.nan, 0.2] * 1000, np.float32), 16000, subtype="FLOAT")
    huge_header = bytearray(wav16k[:44])
    huge_header[22:24] = struct.pack("<H", 60000)  # channel count far over the limit
    return [
        ("empty", b"", 400, "empty_audio"),
        ("text", b"this is not audio at all, just some words" * 10, 415, "invalid_audio"),
        ("truncated", wav16k[:30], 415, "invalid_audio"),
        ("zero-length", encode(np.zeros(0, np.float32), 16000), 400, "empty_audio"),
        ("nan", nan, 415, "invalid_audio"),
        ("huge-channels", bytes(huge_header) + wav16k[44:2000], 415, "invalid_audio"),
    ]


def test_bad_inputs_get_json_4xx(client: TestClient, wav16k: bytes) -> None:
    for name, data, status, code in bad_inputs(wav16k):
        r = client.post("/v1/transcribe", files={"file": ("x", data)})
        assert r.status_code == status, (name, r.text)
        assert r.json()["error"]["code"] == code, name
        assert "Traceback" not in r.text
        raw = client.post("/v1/transcribe", content=data)
        assert 400 <= raw.status_code < 500, name
        assert_ready(client)


def test_bad_requests(client: TestClient, wav16k: bytes) -> None:
    cases = [
        client.post("/v1/transcribe", params={"model": "nope"}, files={"file": ("a.wav", wav16k)}),
        client.post("/v1/transcribe", params={"model": "../../etc/passwd"}, files={"file": ("a.wav", wav16k)}),
        client.post("/v1/transcribe", files={"other": ("a.wav", wav16k)}),
        client.post("/v1/transcribe", files=[("file", ("a.wav", wav16k)), ("file", ("b.wav", wav16k))]),
        client.post("/v1/transcribe", params={"decoder": "magic"}, content=wav16k),
        client.post("/v1/transcribe", params={"beam_size": 0}, content=wav16k),
        client.post("/v1/transcribe", params={"precision": "fp16"}, content=wav16k),
        client.post("/v1/transcribe", data={"nbest": "many"}, files={"file": ("a.wav", wav16k)}),
    ]
    for r in cases:
        assert 400 <= r.status_code < 500, r.text
        assert set(r.json()["error"]) == {"code", "message"}
    assert cases[0].status_code == 404 and cases[1].status_code == 404
    assert_ready(client)


def test_limits(settings, wav16k: bytes) -> None:  # type: ignore[no-untyped-def]
    from app.main import create_app

    small = settings.model_copy(update={"max_upload_bytes": 1000, "max_audio_seconds": 1.0})
    with TestClient(create_app(small)) as c:
        assert c.post("/v1/transcribe", content=wav16k).json()["error"]["code"] == "audio_too_large"
        assert c.post("/v1/transcribe", files={"file": ("a", wav16k)}).status_code == 413
    longer = settings.model_copy(update={"max_audio_seconds": 1.0})
    with TestClient(create_app(longer)) as c:
        r = c.post("/v1/transcribe", content=wav16k)
        assert r.status_code == 413 and r.json()["error"]["code"] == "audio_too_long"


def test_decompression_bomb_is_refused_from_the_header(settings) -> None:  # type: ignore[no-untyped-def]
    """Ten minutes of silence compress to a few kB of FLAC; the duration limit stops it before decoding."""
    import time

    from app.asr.audio import decode_audio
    from app.asr.errors import AudioTooLong
    from app.main import create_app

    bomb = encode(np.zeros(8000 * 600, np.float32), 8000, format="FLAC", subtype="PCM_16")
    assert len(bomb) < 200_000
    started = time.perf_counter()
    with pytest.raises(AudioTooLong):
        decode_audio(bomb, sample_rate=16000, max_seconds=60)
    assert time.perf_counter() - started < 0.5
    with TestClient(create_app(settings.model_copy(update={"max_audio_seconds": 60.0}))) as c:
        r = c.post("/v1/transcribe", content=bomb)
        assert r.status_code == 413 and r.json()["error"]["code"] == "audio_too_long"


def test_api_keys(settings, wav16k: bytes) -> None:  # type: ignore[no-untyped-def]
    from app.main import create_app

    with TestClient(create_app(settings.model_copy(update={"api_keys": ["s3cret", "other"]}))) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 401
        assert c.post("/v1/transcribe", content=wav16k).status_code == 401
        assert c.post("/v1/transcribe", content=wav16k, headers={"authorization": "Bearer wrong"}).json()["error"]["code"] == "unauthorized"
        assert c.post("/v1/transcribe", content=wav16k, headers={"authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/v1/models", headers={"authorization": "Bearer other"}).status_code == 200


def test_metrics(client: TestClient, wav16k: bytes) -> None:
    client.post("/v1/transcribe", content=wav16k)
    client.post("/v1/transcribe", content=b"junk")
    text = client.get("/metrics").text
    for name in ("asr_requests_total", "asr_errors_total", "asr_audio_seconds_total", "asr_request_latency_seconds_bucket", "asr_real_time_factor_bucket"):
        assert name in text
    assert re.search(r'asr_errors_total\{code="invalid_audio"\} [1-9]', text)


def test_openai_client(client: TestClient, wav16k: bytes) -> None:
    openai = pytest.importorskip("openai")
    api = openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=client)
    direct = client.post("/v1/transcribe", content=wav16k).json()
    result = api.audio.transcriptions.create(model="tiny-asg", file=("a.wav", io.BytesIO(wav16k)))
    assert result.text == direct["text"]
    assert api.audio.transcriptions.create(model="default", file=("a.wav", io.BytesIO(wav16k))).text == direct["text"]
    text = api.audio.transcriptions.create(model="whisper-1", file=("a.wav", io.BytesIO(wav16k)), response_format="text")
    assert text.strip() == direct["text"]
    verbose = api.audio.transcriptions.create(model="tiny-asg", file=("a.wav", io.BytesIO(wav16k)), response_format="verbose_json",
                                              timestamp_granularities=["word", "segment"])
    assert verbose.duration == pytest.approx(2.0) and verbose.text == direct["text"]
    assert [w.word for w in verbose.words] == [w["word"] for w in direct["words"]]
    assert " ".join(s.text for s in verbose.segments) == direct["text"]
    srt = api.audio.transcriptions.create(model="tiny-asg", file=("a.wav", io.BytesIO(wav16k)), response_format="srt")
    vtt = api.audio.transcriptions.create(model="tiny-asg", file=("a.wav", io.BytesIO(wav16k)), response_format="vtt")
    check_srt(srt, direct["text"])
    check_vtt(vtt, direct["text"])
    with pytest.raises(openai.NotFoundError):
        api.audio.transcriptions.create(model="no-such-model", file=("a.wav", io.BytesIO(wav16k)))


def check_srt(srt: str, text: str) -> None:
    blocks = [b for b in srt.strip().split("\n\n") if b]
    words = []
    for i, block in enumerate(blocks, 1):
        lines = block.splitlines()
        assert lines[0] == str(i)
        assert re.fullmatch(r"\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}", lines[1])
        words.append(" ".join(lines[2:]))
    assert " ".join(words) == text


def check_vtt(vtt: str, text: str) -> None:
    assert vtt.startswith("WEBVTT\n\n")
    cues = [b for b in vtt[len("WEBVTT\n\n"):].strip().split("\n\n") if b]
    for cue in cues:
        assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} --> \d\d:\d\d:\d\d\.\d{3}", cue.splitlines()[0])
    assert " ".join(" ".join(c.splitlines()[1:]) for c in cues) == text


def test_audio_reader_handles_soundfile_layouts() -> None:
    buffer = io.BytesIO()
    sf.write(buffer, speechlike(0.5), 16000, format="WAV", subtype="PCM_16")
    assert buffer.getvalue()[:4] == b"RIFF"


@pytest.mark.parametrize("model", ["tiny-asg", "tiny-ctc"])
def test_beam_nbest_lm_and_rescoring(client: TestClient, wav16k: bytes, model: str) -> None:
    beam = client.post("/v1/transcribe", params={"model": model, "decoder": "beam", "beam_size": 8, "nbest": 3})
    assert beam.status_code == 400 and beam.json()["error"]["code"] == "empty_audio"
    r = client.post("/v1/transcribe", params={"model": model, "decoder": "beam", "beam_size": 64, "nbest": 3, "allow_oov": "false"}, content=wav16k)
    assert r.status_code == 200, r.text
    body = r.json()
    assert 1 <= len(body["nbest"]) <= 3
    vocabulary = {w for line in ["the cat sat on the mat a dog ran in park hello world quick brown fox she said to"] for w in line.split()}
    assert set(body["text"].split()) <= vocabulary  # lexicon-constrained, words outside it refused
    scores = [n["score"] for n in body["nbest"]]
    assert scores == sorted(scores, reverse=True)
    assert all(n["lm_score"] is not None for n in body["nbest"])
    rescored = client.post("/v1/transcribe", params={"model": model, "decoder": "beam", "beam_size": 8, "nbest": 3, "rescore": "true"}, content=wav16k).json()
    assert all(n["txl_score"] is not None and n["txl_score"] < 0 for n in rescored["nbest"])
    totals = [n["score"] for n in rescored["nbest"]]
    assert totals == sorted(totals, reverse=True)
    no_lm = client.post("/v1/transcribe", params={"model": model, "decoder": "beam", "lm": "false"}, content=wav16k).json()
    assert no_lm["nbest"][0]["lm_score"] is None


def test_beam_bad_options(client: TestClient, wav16k: bytes) -> None:
    for params in ({"decoder": "beam", "beam_size": 0}, {"decoder": "beam", "beam_size": 100000}, {"decoder": "beam", "hotwords": "cat:notanumber"},
                   {"decoder": "beam", "nbest": 9, "beam_size": 4}):
        r = client.post("/v1/transcribe", params=params, content=wav16k)
        assert 400 <= r.status_code < 500, (params, r.text)
    ok = client.post("/v1/transcribe", params={"decoder": "beam", "hotwords": "zebra:8,quick brown"}, content=wav16k)
    assert ok.status_code == 200, ok.text


def test_option_bounds_hold_for_query_form_and_stream(client: TestClient, wav16k: bytes) -> None:
    """One model of the options: the same bounds however the options arrive (issue 26: a 5 MiB
    `hotwords` form field was decoded for 16 s)."""
    import time

    huge = ",".join(["zebra"] * 5000)  # 30 kB: over the hotwords bound, under any form-field cap
    started = time.perf_counter()
    form = client.post("/v1/transcribe", data={"hotwords": huge, "decoder": "beam"}, files={"file": ("a.wav", wav16k)})
    assert form.status_code == 422 and "hotwords" in form.json()["error"]["message"], form.text
    assert time.perf_counter() - started < 5
    assert client.post("/v1/transcribe", params={"hotwords": "x" * 101}, content=wav16k).status_code == 422
    openai = client.post("/v1/audio/transcriptions", data={"hotwords": huge}, files={"file": ("a.wav", wav16k)})
    assert openai.status_code == 422, openai.text
    assert client.post("/v1/transcribe", data={"beam_size": "1025"}, files={"file": ("a.wav", wav16k)}).status_code == 422
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_text('{"hotwords": ["' + "y" * 101 + '"]}')
        error = ws.receive_json()
        assert error["code"] == "invalid_option" and "hotword" in error["message"]
