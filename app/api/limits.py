"""Request-body limits enforced while the body arrives: the byte count whatever the framing, and
the size of each multipart text field.

`BodyLimitMiddleware` is pure ASGI, so it sees every `http.request` message uvicorn delivers, with
a `Content-Length` or `Transfer-Encoding: chunked` alike. A declared length over the limit is
refused before a byte of the body is read; an undeclared one is counted as it comes and the
read stops at the first chunk past the limit. Either way the client gets a JSON 413
`request_too_large` with `Connection: close`, so uvicorn closes the connection instead of
reading the rest of the body to keep it alive.

`parse_form` is Starlette's multipart parser with a cap on text fields (`MAX_FIELD_BYTES`,
64 KiB): Starlette's own cap is one number for every part, and the files need the upload limit.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.datastructures import FormData
from starlette.formparsers import MultiPartParser
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.asr.errors import ASRError

MAX_FIELD_BYTES = 64 * 1024  # one multipart text field (hotwords, model, ...)
ENVELOPE_BYTES = 64 * 1024  # room for the multipart framing and the option fields around the audio


class BodyTooLarge(ASRError):
    code, status = "request_too_large", 413


class FieldTooLarge(ASRError):
    code, status = "field_too_large", 413


def body_limit(max_upload_bytes: int) -> int:
    """The most bytes a request body may carry: the audio limit plus the multipart envelope."""
    return max_upload_bytes + ENVELOPE_BYTES


class BodyLimitMiddleware:
    """Counts request-body bytes as they arrive; past `max_bytes`, a 413 and the connection closes."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _send_413(send, f"request body of {declared} bytes exceeds the limit of {self.max_bytes} bytes")
            return
        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:  # the app asks again after the refusal: nothing more is read
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise BodyTooLarge(f"request body exceeds the limit of {self.max_bytes} bytes")
            return message

        async def closing_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if exceeded:  # the rest of the body stays unread: end the connection with this response
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, counting_receive, closing_send)
        except BodyTooLarge as e:  # raised where no exception handler turned it into a response
            if started:
                raise
            await _send_413(send, e.message)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


async def _send_413(send: Send, message: str) -> None:
    body = json.dumps({"error": {"code": BodyTooLarge.code, "message": message}}).encode()
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class FieldLimitedParser(MultiPartParser):
    """Starlette's multipart parser; a text field over `max_field_bytes` raises `FieldTooLarge` naming it.
    (Starlette's `max_part_size` bounds text fields only, with a message that names no field.)"""

    def __init__(self, *args: Any, max_field_bytes: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_field_bytes = max_field_bytes

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._current_part
        if part.file is None and len(part.data) + (end - start) > self.max_field_bytes:
            name = part.field_name if len(part.field_name) <= 100 else part.field_name[:100] + "..."
            raise FieldTooLarge(f"form field {name!r} exceeds {self.max_field_bytes} bytes; "
                                "text fields carry options, send audio in the 'file' field")
        super().on_part_data(data, start, end)


async def parse_form(request: Request, *, max_files: int, max_fields: int, max_field_bytes: int = MAX_FIELD_BYTES) -> FormData:
    """The multipart form of `request`, text fields up to `max_field_bytes` (files are bounded by the body limit)."""
    parser = FieldLimitedParser(request.headers, request.stream(), max_files=max_files, max_fields=max_fields, max_field_bytes=max_field_bytes)
    return await parser.parse()
