"""Every error leaves as JSON `{"error": {"code", "message"}}`; client faults are 4xx, never 500."""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.asr.errors import ASRError

log = logging.getLogger(__name__)


OBJECT_REPR = re.compile(r"<[^<>]*? at 0x[0-9a-fA-F]+>")


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody


ERRORS = {code: {"model": ErrorOut} for code in (400, 401, 404, 413, 415, 422, 429)}  # the statuses of client faults, for the OpenAPI schema of every route


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON error; a Python object repr in `message` (it carries a heap address) becomes `<object>`."""
    return JSONResponse({"error": {"code": code, "message": OBJECT_REPR.sub("<object>", message)}}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ASRError)
    async def _asr_error(request: Request, exc: ASRError) -> JSONResponse:
        request.app.state.metrics.errors.labels(code=exc.code).inc()
        headers = {"Retry-After": "1"} if exc.status in (429, 503) else None
        return error_response(exc.status, exc.code, exc.message, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        request.app.state.metrics.errors.labels(code="invalid_request").inc()
        parts = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ()))
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
        return error_response(422, "invalid_request", "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}
        return error_response(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %r", request.url.path)  # %r: the path is client input (no raw newlines or escapes in the log)
        request.app.state.metrics.errors.labels(code="internal_error").inc()
        return error_response(500, "internal_error", "the server failed to process the request")
