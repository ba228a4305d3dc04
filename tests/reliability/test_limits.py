"""Bounded uploads and connections on a real server: body bytes counted whatever the framing, text
fields capped, a connection bound, header and body timeouts, and uvicorn's own errors in JSON."""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.helpers import encode, speechlike
from tests.reliability.live import HOST, LiveServer, start_server

UPLOAD_LIMIT = 1_000_000
MAX_CONNECTIONS = 24
HEADER_TIMEOUT = 3.0
IDLE_TIMEOUT = 2.0
LIMITS_ENV = {"ASR_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT), "ASR_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
              "ASR_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT), "ASR_IDLE_TIMEOUT_SECONDS": str(IDLE_TIMEOUT)}


@pytest.fixture(scope="module")
def limited(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(models_dir, tmp_path_factory.mktemp("limits") / "server.log", env=LIMITS_ENV)
    yield server
    assert server.stop() == 0, server.log()[-3000:]


def connect(server: LiveServer, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection((HOST, server.port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of the one response on `sock`, read until the server closes it."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines[0].startswith("HTTP/") else 0
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    return status, headers, body


def error_code(headers: dict[str, str], body: bytes) -> str:
    assert headers.get("content-type", "").startswith("application/json"), (headers, body[:200])
    return str(json.loads(body)["error"]["code"])


# --- request bodies ------------------------------------------------------------------------

def test_chunked_upload_is_refused_once_past_the_limit(limited: LiveServer) -> None:
    """Before: a chunked multipart body was read to its end (1 GiB: a 1 GiB temp file) before the limit was checked."""
    sock = connect(limited)
    sock.sendall(b"POST /v1/transcribe HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                 b"Content-Type: multipart/form-data; boundary=xyz\r\n\r\n")
    head = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n'
    sock.sendall(b"%x\r\n%s\r\n" % (len(head), head))
    chunk, sent, total = b"\0" * 65536, 0, 60 * UPLOAD_LIMIT
    started = time.monotonic()
    try:
        while sent < total and not select.select([sock], [], [], 0)[0]:
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    status, headers, body = read_response(sock)
    assert status == 413 and error_code(headers, body) == "request_too_large"
    assert headers.get("connection") == "close"
    assert sent < total, "the whole body was read before the refusal"
    assert time.monotonic() - started < 10


def test_declared_length_over_the_limit_is_refused_before_the_body(limited: LiveServer) -> None:
    sock = connect(limited)
    sock.sendall(b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=xyz\r\n"
                 b"Content-Length: %d\r\n\r\n" % (50 * UPLOAD_LIMIT))
    status, headers, body = read_response(sock)
    assert status == 413 and error_code(headers, body) == "request_too_large"


def test_text_fields_are_capped_and_named(client: TestClient) -> None:
    """Before: text fields were held in memory up to the upload limit (100 MiB) each, 100 of them a request."""
    wav = encode(speechlike(0.5, seed=1), 16000)
    big = "x" * (64 * 1024 + 1)
    for path, field in (("/v1/audio/transcriptions", "language"), ("/v1/transcribe", "hotwords")):
        r = client.post(path, files={"file": ("a.wav", wav, "audio/wav")}, data={field: big})
        assert r.status_code == 413, r.text
        assert r.json()["error"]["code"] == "field_too_large" and repr(field) in r.json()["error"]["message"]
    fine = client.post("/v1/audio/transcriptions", files={"file": ("a.wav", wav, "audio/wav")}, data={"language": "x" * 60_000})
    assert fine.status_code == 200, fine.text


def test_a_request_body_that_pauses_is_closed(limited: LiveServer) -> None:
    sock = connect(limited)
    sock.sendall(b"POST /v1/transcribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 5000\r\n\r\n" + b"\0" * 100)
    started = time.monotonic()
    status, _, _ = read_response(sock)  # the application never answers: the connection just ends
    assert status == 0 and IDLE_TIMEOUT - 0.5 < time.monotonic() - started < IDLE_TIMEOUT + 5


def test_a_slow_but_steady_body_is_served(limited: LiveServer) -> None:
    """Pieces arriving more often than the idle timeout keep the request going, however long it lasts."""
    wav = encode(speechlike(0.5, seed=2), 16000)
    sock = connect(limited)
    sock.sendall(b"POST /v1/transcribe HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: audio/wav\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(wav))
    pieces = [wav[i : i + len(wav) // 4 + 1] for i in range(0, len(wav), len(wav) // 4 + 1)]
    for piece in pieces:
        time.sleep(IDLE_TIMEOUT * 0.6)
        sock.sendall(piece)
    status, _, body = read_response(sock)
    assert status == 200, body[:300]


# --- request line and headers -----------------------------------------------------------

def test_a_silent_connection_gets_408(limited: LiveServer) -> None:
    """Before: a connection that sent nothing stayed open for ever (20,000 of them took the server down)."""
    started = time.monotonic()
    status, headers, body = read_response(connect(limited))
    assert status == 408 and error_code(headers, body) == "request_timeout"
    assert HEADER_TIMEOUT - 0.5 < time.monotonic() - started < HEADER_TIMEOUT + 5


def test_trickled_header_lines_get_408(limited: LiveServer) -> None:
    sock = connect(limited)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    try:
        while time.monotonic() - started < HEADER_TIMEOUT + 5 and not select.select([sock], [], [], 0.3)[0]:
            sock.sendall(b"X-Slow: 1\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    status, headers, body = read_response(sock)
    assert status == 408 and error_code(headers, body) == "request_timeout"
    assert time.monotonic() - started < HEADER_TIMEOUT + 3


def test_oversized_headers_get_431(limited: LiveServer) -> None:
    sock = connect(limited)
    try:
        sock.sendall(b"GET /" + b"a" * 300_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    status, headers, body = read_response(sock)
    assert status == 431 and error_code(headers, body) == "headers_too_large"


def test_uvicorn_400s_are_json(limited: LiveServer) -> None:
    """Before: uvicorn's own 400 was `text/plain`."""
    for request in (b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", b"NOT-HTTP\x00\r\n\r\n",
                    b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"):
        sock = connect(limited)
        sock.sendall(request)
        status, headers, body = read_response(sock)
        assert status == 400 and error_code(headers, body) == "bad_request", request


# --- the connection bound ------------------------------------------------------------------

def test_connections_past_the_bound_are_refused_at_once(limited: LiveServer) -> None:
    """Before: every connection was accepted until the process ran out of file descriptors."""
    sockets = [connect(limited) for _ in range(MAX_CONNECTIONS + 4)]  # quickly: well within the header timeout
    try:
        time.sleep(0.5)
        answered = set(select.select(sockets, [], [], 0)[0])  # answered before they asked anything: refused
        opened = [s for s in sockets if s not in answered]
        assert answered and len(opened) >= MAX_CONNECTIONS - 2, f"{len(opened)} of {len(sockets)} connections accepted"
        first = min(sockets.index(s) for s in answered)
        assert all(s in answered for s in sockets[first:]), "only connections past the bound are refused"
        for sock in answered:
            status, headers, body = read_response(sock)
            assert status == 503 and error_code(headers, body) == "too_many_connections"
        # Those already accepted are untouched: the first one is served.
        opened[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, _, body = read_response(opened[0])
        assert status == 200 and json.loads(body) == {"status": "ok"}
    finally:
        for sock in sockets:
            sock.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not limited.ready():
        time.sleep(0.1)
    assert limited.ready()
