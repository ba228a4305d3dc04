"""Running the app under uvicorn with a graceful shutdown that WebSocket streams survive.

uvicorn's own shutdown (0.29 to 0.54 at least) stops listening, then calls `shutdown()` on
every connection: HTTP requests in flight finish, but open WebSockets are closed at once
with 1012 and the stream's last words are lost. `GracefulServer` first stops listening and
runs `app.main.drain`, which has every open stream send its final results and close with
1001, and only then hands over to uvicorn's shutdown.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading

import uvicorn
from fastapi import FastAPI

from app.main import drain

GRACEFUL_SECONDS = 30.0


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in getattr(self, "servers", []):
            server.close()  # stop accepting; uvicorn's shutdown closes them again, harmlessly
        if not self.force_exit:
            await drain(self.app, timeout=self.config.timeout_graceful_shutdown or GRACEFUL_SECONDS)
        await super().shutdown(sockets=sockets)


def run(app: FastAPI, *, host: str, port: int, log_level: str = "info", ws_max_size: int = 1 << 20,
        timeout_graceful_shutdown: float = GRACEFUL_SECONDS) -> None:
    """`uvicorn.run` for an app object, with `GracefulServer`; exits 3 when startup fails, like uvicorn."""
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, ws_max_size=ws_max_size,
                            timeout_graceful_shutdown=int(timeout_graceful_shutdown))
    server = GracefulServer(config, app)
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
