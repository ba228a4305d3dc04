"""Request dependencies: the shared recognizer and settings, API-key checking, request limits."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from app.api.service import Upload, read_upload
from app.asr.recognizer import Recognizer
from app.config import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_recognizer(request: Request) -> Recognizer:
    return request.app.state.recognizer


def key_is_valid(presented: str | None, keys: list[str]) -> bool:
    """Constant-time comparison against every configured key (no early exit on a match)."""
    if presented is None:
        return False
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(presented.encode(), key.encode())
    return ok


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def require_api_key(request: Request) -> None:
    keys: list[str] = request.app.state.api_keys
    if keys and not key_is_valid(bearer_token(request.headers.get("authorization")), keys):
        raise HTTPException(401, "missing or invalid API key (send 'Authorization: Bearer <key>')", headers={"WWW-Authenticate": "Bearer"})


SettingsDep = Annotated[Settings, Depends(get_settings)]
RecognizerDep = Annotated[Recognizer, Depends(get_recognizer)]


async def get_upload(request: Request, settings: SettingsDep) -> Upload:
    """The request's audio (multipart `file` or raw body) and its other form fields, within the upload limit."""
    return await read_upload(request, max_bytes=settings.max_upload_bytes)


UploadDep = Annotated[Upload, Depends(get_upload)]
