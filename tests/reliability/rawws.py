"""A deliberately permissive WebSocket client on a plain socket: it sends any frame (invalid UTF-8
in text frames, reserved opcodes, fragments, frames larger than the server's limit, truncated
frames) and reads the server's frames with a deadline, so a fuzz example can never hang."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True) -> bytes:
    head = bytes([(0x80 if fin else 0) | (opcode & 0x0F)])
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([bit | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if n < 4096 else _mask_fast(payload, key)
    return head + key + masked


def _mask_fast(payload: bytes, key: bytes) -> bytes:
    import numpy as np

    data = np.frombuffer(payload, dtype=np.uint8)
    keys = np.resize(np.frombuffer(key, dtype=np.uint8), len(data))
    return (data ^ keys).tobytes()


@dataclass
class Received:
    messages: list[dict[str, Any]] = field(default_factory=list)  # JSON text frames from the server
    close_code: int | None = None  # None: no close frame (the server dropped the TCP connection)
    bad_text: list[bytes] = field(default_factory=list)  # server text frames that were not JSON objects
    timed_out: bool = False


class RawWebSocket:
    def __init__(self, host: str, port: int, path: str = "/v1/stream", *, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(request.encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"handshake refused: {head[:200]!r}")

    def send_raw(self, data: bytes) -> bool:
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def send(self, opcode: int, payload: bytes, *, fin: bool = True) -> bool:
        return self.send_raw(frame(opcode, payload, fin=fin))

    def _read(self, n: int, deadline: float) -> bytes | None:
        while len(self.buffer) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                return None
            if not chunk:
                return None
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def next_frame(self, deadline: float) -> tuple[int, bytes] | None:
        head = self._read(2, deadline)
        if head is None:
            return None
        opcode, n = head[0] & 0x0F, head[1] & 0x7F
        if n == 126:
            ext = self._read(2, deadline)
            n = struct.unpack(">H", ext)[0] if ext else 0
        elif n == 127:
            ext = self._read(8, deadline)
            n = struct.unpack(">Q", ext)[0] if ext else 0
        payload = self._read(n, deadline) if n else b""
        return None if payload is None else (opcode, payload)

    def receive_all(self, timeout: float = 10.0) -> Received:
        """Every frame until the server's close frame (answered) or the end of the connection."""
        received = Received()
        deadline = time.monotonic() + timeout
        try:
            while True:
                got = self.next_frame(deadline)
                if got is None:
                    return received
                opcode, payload = got
                if opcode == TEXT:
                    try:
                        message = json.loads(payload)
                        assert isinstance(message, dict)
                        received.messages.append(message)
                    except (ValueError, AssertionError):
                        received.bad_text.append(payload)
                elif opcode == CLOSE:
                    received.close_code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005
                    self.send_raw(frame(CLOSE, payload[:2]))
                    return received
                elif opcode == PING:
                    self.send_raw(frame(PONG, payload))
        except TimeoutError:
            received.timed_out = True
            return received
        finally:
            self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
