"""Fuzzing the request handlers: multipart bodies in process, WebSocket frames against a real server.

Multipart: missing, duplicate and unknown fields, odd filenames and part headers, wrong or
missing boundaries, truncated bodies, fuzzed audio in the file part, any option values.
WebSocket: invalid JSON and invalid UTF-8 in text frames, binary frames before the config,
frames of odd byte counts, oversized frames, fragments, control and reserved opcodes.

Every case: a 4xx JSON error (WebSocket: an error message and a close code other than 1011),
the server still ready, and a normal request afterwards still answered correctly.
"""

from __future__ import annotations

import json

import httpx
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from tests.reliability import rawws
from tests.reliability.fuzzing import SEEDS, audio_inputs, count, frames_payload, fuzz_settings, guarded, http_payload
from tests.reliability.live import HOST, MODEL, Clip, LiveServer

ENDPOINTS = ["/v1/transcribe", "/v1/audio/transcriptions"]
FIELDS = ["file", "model", "response_format", "timestamp_granularities[]", "decoder", "beam_size", "nbest", "lm", "rescore", "hotwords",
          "word_timestamps", "precision", "allow_oov", "lm_weight", "word_score", "language", "prompt", "temperature"]
VALUES = ["tiny-asg", "tiny-ctc", "tiny-txl", "default", "whisper-1", "json", "text", "srt", "vtt", "verbose_json", "word", "segment", "greedy", "beam",
          "1", "0", "3", "64", "-1", "1e309", "nan", "true", "false", "fp32", "int8", "fp16", "cat:2,dog", ":::", "../../etc/passwd", "", " ",
          "a" * 5000, "\x00", "line\r\nbreak", "\u202e\u0000\U0001f600"]
WAV = SEEDS["wav16"]
GOOD_VALUES = {"model": ["tiny-asg", "tiny-ctc", "default", "whisper-1"], "response_format": ["json", "text", "srt", "vtt", "verbose_json"],
               "timestamp_granularities[]": ["word", "segment"], "decoder": ["greedy", "beam"], "beam_size": ["1", "8"], "nbest": ["1", "2"],
               "lm": ["true", "false"], "rescore": ["true", "false"], "hotwords": ["cat:2,the dog", "zebra"], "word_timestamps": ["true", "false"],
               "precision": ["fp32", "int8"], "allow_oov": ["true", "false"], "lm_weight": ["0.5"], "word_score": ["-1"], "language": ["en"],
               "prompt": ["hello"], "temperature": ["0"]}


# --- multipart ---------------------------------------------------------------------------

@st.composite
def multipart_requests(draw: st.DrawFn) -> tuple[str, str, bytes]:
    """(path, content-type header, body) of a multipart request that is often, but not always, well formed."""
    if draw(st.booleans()):  # well formed: one good file and a few options, so requests reach the decoder with odd options
        path = draw(st.sampled_from(ENDPOINTS))
        files = [("file", ("a.wav", draw(st.sampled_from([WAV, SEEDS["flac"], SEEDS["ogg-opus"]]))))]
        names = draw(st.lists(st.sampled_from(sorted(GOOD_VALUES)), max_size=4, unique=True))
        fields = [(name, draw(st.sampled_from(GOOD_VALUES[name]) | st.sampled_from(VALUES))) for name in names]
        request = httpx.Request("POST", "http://testserver" + path, files=files, data=dict(fields))
        return path, request.headers["content-type"], request.read()
    boundary = draw(st.sampled_from(["xYzZy", "----WebKitFormBoundary7MA4YWxkTrZu0gW", "a" * 70, "b=c;d", "é"]))
    parts = []
    for _ in range(draw(st.integers(0, 6))):
        name = draw(st.sampled_from(FIELDS) | st.text(max_size=20))
        if name == "file" or draw(st.integers(0, 9)) == 0:
            filename = draw(st.sampled_from(['"a.wav"', '"../x"', '""', '"a\\".wav"', "noquotes.wav", '"\u00e9.mp3"']))
            value = draw(st.sampled_from([WAV, SEEDS["flac"], SEEDS["mp3"]]) | audio_inputs())
            disposition = f'form-data; name="{name}"; filename={filename}'
            header = f"Content-Disposition: {disposition}\r\n" + draw(st.sampled_from(["Content-Type: audio/wav\r\n", "", "Content-Type: \r\n",
                                                                                        "Content-Transfer-Encoding: base64\r\n"]))
        else:
            value = draw(st.sampled_from(VALUES) | st.text(max_size=40)).encode("utf-8", "surrogatepass")
            header = f'Content-Disposition: form-data; name="{name}"\r\n'
        parts.append(header.encode("utf-8", "surrogatepass") + b"\r\n" + value)
    newline = draw(st.sampled_from([b"\r\n", b"\n"]))
    body = b"".join(b"--" + boundary.encode() + newline + part + newline for part in parts)
    ending = draw(st.sampled_from(["close", "none", "truncate", "preamble"]))
    if ending == "close":
        body += b"--" + boundary.encode() + b"--" + newline
    elif ending == "truncate" and body:
        body = body[: draw(st.integers(0, len(body) - 1))]
    elif ending == "preamble":
        body = b"junk before the first boundary\r\n" + body + b"--" + boundary.encode() + b"--\r\n"
    header_boundary = draw(st.sampled_from([boundary, boundary, "other", ""]))
    content_type = draw(st.sampled_from([f"multipart/form-data; boundary={header_boundary}", f'multipart/form-data; boundary="{header_boundary}"',
                                         "multipart/form-data", "multipart/form-data; boundary=", "multipart/mixed; boundary=" + boundary]))
    return draw(st.sampled_from(ENDPOINTS)), content_type, body


def check_http(client: TestClient, path: str, content_type: str, body: bytes) -> None:
    r = client.post(path, content=body, headers={"content-type": content_type.encode("utf-8", "surrogatepass")})
    count(f"status {r.status_code}")
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        error = r.json()["error"]
        assert set(error) == {"code", "message"} and error["code"] != "internal_error"
    elif path == "/v1/transcribe":
        assert isinstance(r.json()["text"], str)
    assert client.get("/readyz").status_code == 200


@fuzz_settings(ci_examples=150)
@given(multipart_requests())
def test_multipart_bodies_get_json_4xx(fuzz_client: TestClient, request_parts: tuple[str, str, bytes]) -> None:
    path, content_type, body = request_parts
    guarded("http", http_payload(path, content_type, body), lambda: check_http(fuzz_client, path, content_type, body), "http")


@fuzz_settings(ci_examples=60)
@given(path=st.sampled_from(ENDPOINTS), content_type=st.sampled_from(["application/octet-stream", "audio/wav", "", "text/plain", "application/json"]),
       body=audio_inputs())
def test_raw_bodies_get_json_4xx(fuzz_client: TestClient, path: str, content_type: str, body: bytes) -> None:
    guarded("http", http_payload(path, content_type, body), lambda: check_http(fuzz_client, path, content_type, body), "http")


def test_multipart_fuzz_leaves_answers_right(fuzz_client: TestClient) -> None:
    """After all of the above, the same app still transcribes normally."""
    first = fuzz_client.post("/v1/transcribe", content=WAV)
    again = fuzz_client.post("/v1/audio/transcriptions", files={"file": ("a.wav", WAV)}, data={"model": "tiny-asg"})
    assert first.status_code == again.status_code == 200 and first.json()["text"] == again.json()["text"]


# --- WebSocket frames against the real server --------------------------------------------

MESSAGE_TYPES = {"ready", "partial", "final", "eof", "error"}
CLOSE_CODES = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1013}  # never 1011 (internal error)
CONFIG_KEYS = ["type", "model", "sample_rate", "encoding", "channels", "decoder", "beam_size", "nbest", "rescore", "hotwords", "interim_results",
               "endpoint_silence", "max_utterance", "lm", "precision"]
json_values = st.recursive(st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)
GOOD_CONFIG = {"type": "config", "sample_rate": 16000, "encoding": "pcm_s16le", "endpoint_silence": 10}
INVALID_UTF8 = [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b'{"type": "eof"\xff}', b"\xf4\x90\x80\x80", b"\xe2\x82"]


@st.composite
def config_frames(draw: st.DrawFn) -> tuple[int, bytes, bool]:
    kind = draw(st.sampled_from(["good", "mutated", "random-json", "text", "invalid-utf8", "binary"]))
    if kind == "good":
        return rawws.TEXT, json.dumps(GOOD_CONFIG).encode(), True
    if kind == "mutated":
        config = {**GOOD_CONFIG, **draw(st.dictionaries(st.sampled_from(CONFIG_KEYS), json_values, max_size=3))}
        return rawws.TEXT, json.dumps(config).encode(), True
    if kind == "random-json":
        return rawws.TEXT, json.dumps(draw(json_values)).encode(), True
    if kind == "text":
        return rawws.TEXT, draw(st.text(max_size=200)).encode("utf-8", "surrogatepass"), True
    if kind == "invalid-utf8":
        return rawws.TEXT, draw(st.sampled_from(INVALID_UTF8)), True
    return rawws.BINARY, draw(st.binary(max_size=400)), True


@st.composite
def later_frames(draw: st.DrawFn) -> tuple[int, bytes, bool]:
    kind = draw(st.sampled_from(["audio", "audio", "odd", "f32-nan", "text", "json", "eof", "invalid-utf8", "oversized", "fragment", "ping", "reserved"]))
    if kind == "audio":
        start = draw(st.integers(0, len(WAV) - 2000))
        return rawws.BINARY, WAV[44:][start : start + draw(st.integers(1, 2000))], True
    if kind == "odd":
        size = 2 * draw(st.integers(0, 150)) + 1
        return rawws.BINARY, draw(st.binary(min_size=size, max_size=size)), True
    if kind == "f32-nan":
        return rawws.BINARY, b"\x00\x00\xc0\x7f" * draw(st.integers(1, 50)), True
    if kind == "text":
        return rawws.TEXT, draw(st.text(max_size=100)).encode("utf-8", "surrogatepass"), True
    if kind == "json":
        return rawws.TEXT, json.dumps({"type": draw(st.sampled_from(["eof", "config", "EOF", "flush", ""]) | st.text(max_size=8)),
                                       **draw(st.dictionaries(st.text(max_size=8), json_values, max_size=2))}).encode(), True
    if kind == "eof":
        return rawws.TEXT, b'{"type": "eof"}', True
    if kind == "invalid-utf8":
        return rawws.TEXT, draw(st.sampled_from(INVALID_UTF8)), True
    if kind == "oversized":
        return rawws.BINARY, b"\x01\x00" * (32768 + draw(st.integers(1, 100))), True  # over the live server's 64 KiB frame limit
    if kind == "fragment":
        return draw(st.sampled_from([rawws.BINARY, rawws.TEXT, rawws.CONTINUATION])), draw(st.binary(max_size=100)), draw(st.booleans())
    if kind == "ping":
        return rawws.PING, draw(st.binary(max_size=125)), True
    return draw(st.sampled_from([0x3, 0x7, 0xB, 0xF])), draw(st.binary(max_size=20)), True


def run_frames(server: LiveServer, frames: list[tuple[int, bytes, bool]]) -> rawws.Received:
    ws = rawws.RawWebSocket(HOST, server.port, timeout=15)
    for opcode, data, fin in frames:
        if not ws.send(opcode, data, fin=fin):
            break
    ws.send(rawws.TEXT, b'{"type": "eof"}')  # a stream the fuzz left open ends here
    return ws.receive_all(timeout=15)


def check_frames(server: LiveServer, frames: list[tuple[int, bytes, bool]]) -> None:
    received = run_frames(server, frames)
    count(f"close {received.close_code}")
    assert not received.timed_out, "the server neither answered nor closed"
    assert not received.bad_text, received.bad_text
    for message in received.messages:
        assert message.get("type") in MESSAGE_TYPES, message
        if message["type"] == "error":
            assert message["code"] != "internal_error" and isinstance(message["message"], str), message
    assert received.close_code in CLOSE_CODES, (received.close_code, received.messages)
    if received.close_code == 1000:
        assert received.messages[-1]["type"] == "eof"
    assert server.ready()


@fuzz_settings(ci_examples=100)
@given(first=config_frames(), rest=st.lists(later_frames(), max_size=6))
def test_websocket_frames_get_error_and_close(live_server: LiveServer, first: tuple[int, bytes, bool], rest: list[tuple[int, bytes, bool]]) -> None:
    frames = [first, *rest]
    guarded("ws", frames_payload(frames), lambda: check_frames(live_server, frames), "json")


def test_websocket_fuzz_leaves_streams_right(live_server: LiveServer, audio_clips: list[Clip], references: dict[str, dict[str, str]]) -> None:
    clip = audio_clips[1]
    frames = [(rawws.TEXT, json.dumps({**GOOD_CONFIG, "model": MODEL, "max_utterance": 60}).encode(), True)]
    frames += [(rawws.BINARY, clip.pcm16[i : i + 3001], True) for i in range(0, len(clip.pcm16), 3001)]
    received = run_frames(live_server, frames)
    assert received.close_code == 1000
    text = " ".join(m["text"] for m in received.messages if m["type"] == "final" and m["text"])
    assert text == references["stream"][clip.name]
    answer = httpx.post(f"{live_server.url}/v1/transcribe", params={"model": MODEL}, content=clip.wav, timeout=30)
    assert answer.json()["text"] == references["upload"][clip.name]
