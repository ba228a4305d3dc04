"""Typed dependencies of every route: the application state and its parts, the API-key check, the upload."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.requests import HTTPConnection

from app.api.service import Upload, read_upload
from app.api.state import AppState
from app.asr.recognizer import Recognizer
from app.config import Settings

KEY_PROTOCOL = "openai-insecure-api-key."  # OpenAI's browser form: the key as a WebSocket subprotocol
UNAUTHORIZED = "missing or invalid API key (send 'Authorization: Bearer <key>' or the subprotocols 'bearer', '<key>')"


def get_state(connection: HTTPConnection) -> AppState:
    return connection.app.state  # type: ignore[no-any-return]


StateDep = Annotated[AppState, Depends(get_state)]


def get_settings(state: StateDep) -> Settings:
    return state.settings


def get_recognizer(state: StateDep) -> Recognizer:
    return state.recognizer


SettingsDep = Annotated[Settings, Depends(get_settings)]
RecognizerDep = Annotated[Recognizer, Depends(get_recognizer)]


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


@dataclass(frozen=True)
class Access:
    granted: bool
    subprotocols: tuple[str, ...] = ()  # what a WebSocket client offered (the route echoes one)


def require_api_key(connection: HTTPConnection, state: StateDep) -> Access:
    """The one API-key check, for HTTP and WebSocket routes alike (when keys are configured).

    A key comes as `Authorization: Bearer <key>`; a WebSocket may also offer it as the
    subprotocol pair `["bearer", "<key>"]` or as OpenAI's `openai-insecure-api-key.<key>` (browsers
    cannot set headers). HTTP without a valid key: 401 here. A WebSocket route is told, and refuses
    in its own protocol (it completes the handshake to say why, then closes with 1008)."""
    websocket = connection.scope["type"] == "websocket"
    offered = tuple(p.strip() for p in connection.headers.get("sec-websocket-protocol", "").split(",") if p.strip()) if websocket else ()
    keys = state.api_keys
    granted = (not keys or key_is_valid(bearer_token(connection.headers.get("authorization")), keys)
               or (len(offered) >= 2 and offered[0] == "bearer" and key_is_valid(offered[1], keys))
               or any(key_is_valid(p[len(KEY_PROTOCOL):], keys) for p in offered if p.startswith(KEY_PROTOCOL)))  # fmt: skip
    if not granted and not websocket:
        raise HTTPException(401, "missing or invalid API key (send 'Authorization: Bearer <key>')", headers={"WWW-Authenticate": "Bearer"})
    return Access(granted, offered)


ApiKeyDep = Annotated[Access, Depends(require_api_key)]


async def get_upload(request: Request, settings: SettingsDep) -> Upload:
    """The request's audio (multipart `file` or raw body) and its other form fields, within the upload limit."""
    return await read_upload(request, max_bytes=settings.max_upload_bytes)


UploadDep = Annotated[Upload, Depends(get_upload)]
