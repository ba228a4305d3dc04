"""Running the app under uvicorn: bounded connections and a graceful shutdown that streams survive.

Connections. uvicorn (0.29 to 0.54 at least) closes idle keep-alive connections, but a
connection that sends nothing, or trickles header lines, stays open for ever, and it accepts
connections until the process runs out of file descriptors. `LimitedHttpProtocol`, a subclass of
uvicorn's httptools protocol, adds what a server facing the open network needs (`ConnectionLimits`):

- at most `max_connections` open connections, HTTP and WebSocket together; one past the bound is
  answered 503 `too_many_connections` and closed at once, without touching those already open;
- the request line and headers must arrive within `header_timeout` (a silent or trickling
  connection gets 408 `request_timeout` and is closed) and hold at most `MAX_HEADER_BYTES`
  (431 `headers_too_large`);
- a request body may pause at most `idle_timeout` between two pieces (then the connection is
  closed; time the server itself stops reading, because the application is busy, does not count);
- uvicorn's own 400s (a malformed request, a `Content-Length` that does not match the body) are
  the JSON error format, like every other error.

Shutdown. uvicorn's own shutdown stops listening at once, then calls `shutdown()` on every
connection: HTTP requests in flight finish, but open WebSockets are closed at once with 1012 and
the stream's last words are lost. On SIGTERM `GracefulServer` first marks the app as shutting
down (`/readyz` answers 503, new work is refused with 503 `shutting_down`) and keeps listening
for `drain_delay` seconds, so a load balancer sees the 503 and moves traffic away; then it stops
listening and runs `app.main.drain`, which has every open stream transcribe what it received,
send its final results and close with 1001; only then does uvicorn's shutdown proceed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from typing import Any, ClassVar

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.main import drain

log = logging.getLogger(__name__)

GRACEFUL_SECONDS = 30.0
MAX_HEADER_BYTES = 64 * 1024  # request line and headers together
RESERVED_DESCRIPTORS = 128  # kept free for model files, logs, the executor, pipes


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = 1000
    header_timeout: float = 10.0
    idle_timeout: float = 30.0
    max_header_bytes: int = MAX_HEADER_BYTES


def effective_max_connections(requested: int) -> int:
    """`requested`, lowered to stay `RESERVED_DESCRIPTORS` under the process's file limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return requested
    ceiling = max(soft - RESERVED_DESCRIPTORS, 16)
    if requested > ceiling:
        log.warning("max_connections=%d lowered to %d: the process may open %d files", requested, ceiling, soft)
    return min(requested, ceiling)


def _json_response(status: int, reason: str, code: str, message: str) -> bytes:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n").encode("ascii")
    return head + body


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a connection bound, header and body timeouts, JSON 400s."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timer: asyncio.TimerHandle | None = None
        self.body_timer: asyncio.TimerHandle | None = None
        self.reading_headers = True  # from the connection's start or a request's first byte to its headers' end
        self.header_bytes = 0
        self.last_data = 0.0  # loop time of the last bytes received
        self.refused = False

    # --- connection bound -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self.refused = True
            self._reply_and_close(503, "Service Unavailable", "too_many_connections",
                                  f"the server has {self.limits.max_connections} connections open; retry shortly")
            return
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    # --- headers: size and time -------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        self.last_data = self.loop.time()
        if self.reading_headers:
            self.header_bytes += len(data)
        super().data_received(data)
        if self.reading_headers and self.header_bytes > self.limits.max_header_bytes and not self.transport.is_closing():
            self._reply_and_close(431, "Request Header Fields Too Large", "headers_too_large",
                                  f"the request line and headers exceed {self.limits.max_header_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.reading_headers = True
        if self.header_timer is None:  # a new request on a kept-alive connection
            self.header_bytes = 0
            self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self.reading_headers = False
        self.header_bytes = 0
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None
        super().on_headers_complete()
        if self.cycle is not None and self.cycle.scope is self.scope and self.cycle.more_body:
            self._arm_body_timer()

    def on_message_complete(self) -> None:
        if self.body_timer is not None:
            self.body_timer.cancel()
            self.body_timer = None
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._cancel_timers()  # the WebSocket protocol takes over; its idle limits are the application's
        super().handle_websocket_upgrade()

    def _arm_header_timer(self) -> None:
        self.header_timer = self.loop.call_later(self.limits.header_timeout, self._header_timeout)

    def _header_timeout(self) -> None:
        self.header_timer = None
        if self.reading_headers and not self.transport.is_closing():
            self._reply_and_close(408, "Request Timeout", "request_timeout",
                                  f"the request line and headers did not arrive within {self.limits.header_timeout:g} s")

    # --- body: pauses -----------------------------------------------------------------------
    def _arm_body_timer(self, delay: float | None = None) -> None:
        self.body_timer = self.loop.call_later(self.limits.idle_timeout if delay is None else delay, self._body_timeout)

    def _body_timeout(self) -> None:
        self.body_timer = None
        if self.transport.is_closing() or self.cycle is None or not self.cycle.more_body:
            return
        quiet = self.loop.time() - self.last_data
        if quiet < self.limits.idle_timeout:  # bytes came meanwhile: wait out the rest of the pause from the last ones
            self._arm_body_timer(self.limits.idle_timeout - quiet)
            return
        if self.flow.read_paused:  # the server stopped reading (the application is behind): not the client's pause
            self._arm_body_timer()
            return
        log.info("closing a connection whose request body paused for %g s", self.limits.idle_timeout)
        self.transport.close()

    # --- errors -----------------------------------------------------------------------------
    def send_400_response(self, msg: str) -> None:
        self._reply_and_close(400, "Bad Request", "bad_request", msg)

    def _reply_and_close(self, status: int, reason: str, code: str, message: str) -> None:
        self._cancel_timers()
        if not self.transport.is_closing():
            self.transport.write(_json_response(status, reason, code, message))
            self.transport.close()

    def _cancel_timers(self) -> None:
        for timer in (self.header_timer, self.body_timer):
            if timer is not None:
                timer.cancel()
        self.header_timer = self.body_timer = None


def limited_protocol(limits: ConnectionLimits) -> type[LimitedHttpProtocol]:
    """`LimitedHttpProtocol` bound to `limits` (uvicorn builds protocols from a class)."""
    return type("LimitedHttpProtocol", (LimitedHttpProtocol,), {"limits": limits})


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI, *, drain_delay: float = 0.0) -> None:
        super().__init__(config)
        self.app = app
        self.drain_delay = drain_delay

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.app.state.shutting_down = True  # /readyz answers 503 and new work is refused, still listening
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.drain_delay
        while not self.force_exit and loop.time() < deadline:
            await asyncio.sleep(min(0.05, max(deadline - loop.time(), 0)))
        for server in getattr(self, "servers", []):
            server.close()  # stop accepting; uvicorn's shutdown closes them again, harmlessly
        if not self.force_exit:
            await drain(self.app, timeout=self.config.timeout_graceful_shutdown or GRACEFUL_SECONDS)
        await super().shutdown(sockets=sockets)


def run(app: FastAPI, *, host: str, port: int, log_level: str = "info", ws_max_size: int = 1 << 20,
        timeout_graceful_shutdown: float = GRACEFUL_SECONDS, limits: ConnectionLimits | None = None,
        keep_alive: float = 5.0, drain_delay: float = 0.0) -> None:
    """`uvicorn.run` for an app object, with `GracefulServer`; exits 3 when startup fails, like uvicorn."""
    limits = limits or ConnectionLimits()
    limits = ConnectionLimits(effective_max_connections(limits.max_connections), limits.header_timeout, limits.idle_timeout,
                              limits.max_header_bytes)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, ws_max_size=ws_max_size, http=limited_protocol(limits),
                            timeout_keep_alive=keep_alive, timeout_graceful_shutdown=int(timeout_graceful_shutdown))
    server = GracefulServer(config, app, drain_delay=drain_delay)
    if threading.current_thread() is threading.main_thread():
        # uvicorn re-raises the SIGTERM it handled once its shutdown is done, which would kill the
        # process with status 143 after a clean drain; a no-op handler makes that a normal exit 0.
        signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    if not server.started:
        sys.exit(3)
