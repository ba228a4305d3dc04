"""`POST /v1/audio/transcriptions` messages: the response formats and the form's OpenAPI description."""

from __future__ import annotations

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")


OPENAI_BODY = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "model": {"type": "string"},
                        "response_format": {"type": "string", "enum": list(RESPONSE_FORMATS)},
                        "timestamp_granularities[]": {"type": "array", "items": {"type": "string", "enum": ["word", "segment"]}},
                    },
                    "required": ["file"],
                }
            }
        },
        "required": True,
    }
}
