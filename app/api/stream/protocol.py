"""`WS /v1/stream` messages: the client's config and events in, partial and final results out."""

from __future__ import annotations

import json
from typing import Any

from app.api.websocket import (
    ProtocolError,
)
from app.asr.streaming import StreamResult


def parse_config(text: str) -> dict[str, Any]:
    try:
        config = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ProtocolError("invalid_json", f"config is not valid JSON: {e.msg if hasattr(e, 'msg') else e}") from e
    if not isinstance(config, dict):
        raise ProtocolError("invalid_config", "config must be a JSON object")
    if config.get("type", "config") != "config":
        raise ProtocolError("invalid_config", f"first message must be the config, got type {config.get('type')!r}")
    return config


def result_message(result: StreamResult) -> dict[str, Any]:
    if result.kind == "partial":
        return {"type": "partial", "text": result.text, "start": round(result.start, 3)}
    transcript = result.transcript
    assert transcript is not None
    body = transcript.to_json()
    return {"type": "final", "text": result.text, "raw_text": body["raw_text"], "start": round(result.start, 3), "end": round(result.end, 3), "words": body["words"], "nbest": body["nbest"]}


def parse_event(text: str | None) -> dict[str, Any]:
    try:
        event = json.loads(text or "")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ProtocolError("invalid_json", "text frame is not valid JSON") from e
    if not isinstance(event, dict):
        raise ProtocolError("invalid_json", "text frame must be a JSON object")
    return event
