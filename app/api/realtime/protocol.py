"""`WS /v1/realtime` events: the session configuration (beta and GA forms), its updates and renderings,
and the event parser. The protocol itself is described in `app.api.realtime.router`."""

from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import dataclass
from typing import Any

from app.api.params import bundle_name
from app.asr.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

FORMAT_RATES = {"pcm16": 24000, "g711_ulaw": 8000, "g711_alaw": 8000}


GA_FORMATS = {"audio/pcm": "pcm16", "audio/pcmu": "g711_ulaw", "audio/pcma": "g711_alaw"}


MANUAL_MAX_ITEM = 120.0  # seconds: without turn detection an item is committed on its own after this long


VAD_MAX_ITEM = 20.0


NO_ENDPOINT = 1e9  # seconds of silence: never reached, so only commits end an item


class RealtimeError(Exception):
    """A client fault answered with an `error` event; the connection stays open."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


@dataclass(frozen=True)
class SessionConfig:
    """The effective session; `model` is what the client asked for (None: the default model)."""

    audio_format: str = "pcm16"
    sample_rate: int = 24000
    model: str | None = None
    language: str | None = None
    prompt: str | None = None
    vad: bool = True
    silence_ms: int = 500
    threshold: float = 0.5
    prefix_padding_ms: int = 300

    def stream_config(self) -> dict[str, Any]:
        """The `/v1/stream` config this session runs as."""
        model = bundle_name(self.model)  # like POST /v1/audio/transcriptions
        return {"model": model, "sample_rate": self.sample_rate, "encoding": "pcm_s16le", "channels": 1, "interim_results": True,
                "endpoint_silence": self.silence_ms / 1000 if self.vad else 10.0, "max_utterance": VAD_MAX_ITEM if self.vad else MANUAL_MAX_ITEM}


def as_object(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RealtimeError("invalid_value", f"{param} must be an object", param)
    return value


def _update_transcription(fields: dict[str, Any], value: Any, param: str) -> None:
    if value is None:
        return
    for name in ("model", "language", "prompt"):
        item = as_object(value, param).get(name)
        if item is not None and not isinstance(item, str):
            raise RealtimeError("invalid_value", f"{param}.{name} must be a string", f"{param}.{name}")
        if name in value:
            fields[name] = item or None


def _update_turn_detection(fields: dict[str, Any], value: Any, param: str) -> None:
    if value is None:
        fields["vad"] = False
        return
    value = as_object(value, param)
    kind = value.get("type", "server_vad")
    if kind not in ("server_vad", "semantic_vad"):
        raise RealtimeError("invalid_value", f"{param}.type={kind!r} is unknown; use 'server_vad', or null for manual commits", f"{param}.type")
    fields["vad"] = True
    silence = value.get("silence_duration_ms")
    if silence is not None:
        if isinstance(silence, bool) or not isinstance(silence, int | float) or not 100 <= silence <= 10000:
            raise RealtimeError("invalid_value", f"{param}.silence_duration_ms={silence!r} must be a number of milliseconds in 100..10000",
                                f"{param}.silence_duration_ms")
        fields["silence_ms"] = int(silence)
    for name, kind_ in (("threshold", float), ("prefix_padding_ms", int)):
        if isinstance(value.get(name), int | float) and not isinstance(value.get(name), bool):
            fields[name] = kind_(value[name])


def update_beta(config: SessionConfig, session: dict[str, Any]) -> SessionConfig:
    """Apply a `transcription_session.update` session object."""
    fields: dict[str, Any] = {}
    if "input_audio_format" in session:
        audio_format = session["input_audio_format"]
        if audio_format not in FORMAT_RATES:
            raise RealtimeError("invalid_value", f"input_audio_format={audio_format!r} is unknown; use 'pcm16', 'g711_ulaw' or 'g711_alaw'",
                                "session.input_audio_format")
        fields.update(audio_format=audio_format, sample_rate=FORMAT_RATES[audio_format])
    if "input_audio_transcription" in session:
        _update_transcription(fields, session["input_audio_transcription"], "session.input_audio_transcription")
    if "turn_detection" in session:
        _update_turn_detection(fields, session["turn_detection"], "session.turn_detection")
    return dataclasses.replace(config, **fields)


def update_ga(config: SessionConfig, session: dict[str, Any]) -> SessionConfig:
    """Apply a GA `session.update` session object (`type: "transcription"`)."""
    if session.get("type", "transcription") != "transcription":
        raise RealtimeError("invalid_value", f"session.type={session.get('type')!r}: this server runs only 'transcription' sessions", "session.type")
    fields: dict[str, Any] = {}
    audio_input = as_object(as_object(session.get("audio") or {}, "session.audio").get("input") or {}, "session.audio.input")
    if audio_input.get("format") is not None:
        audio = as_object(audio_input["format"], "session.audio.input.format")
        kind = audio.get("type", "audio/pcm")
        if kind not in GA_FORMATS:
            raise RealtimeError("invalid_value", f"format type {kind!r} is unknown; use 'audio/pcm', 'audio/pcmu' or 'audio/pcma'", "session.audio.input.format.type")
        rate = audio.get("rate", 24000) if kind == "audio/pcm" else 8000
        if isinstance(rate, bool) or not isinstance(rate, int) or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
            raise RealtimeError("invalid_value", f"rate={rate!r} must be an integer in {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE}", "session.audio.input.format.rate")
        fields.update(audio_format=GA_FORMATS[kind], sample_rate=rate)
    if "transcription" in audio_input:
        _update_transcription(fields, audio_input["transcription"], "session.audio.input.transcription")
    if "turn_detection" in audio_input:
        _update_turn_detection(fields, audio_input["turn_detection"], "session.audio.input.turn_detection")
    return dataclasses.replace(config, **fields)


def render_beta(config: SessionConfig, session_id: str, model: str) -> dict[str, Any]:
    return {"id": session_id, "object": "realtime.transcription_session", "modalities": ["text"], "input_audio_format": config.audio_format,
            "input_audio_transcription": {"model": model, "language": config.language, "prompt": config.prompt},
            "turn_detection": _turn_detection(config), "input_audio_noise_reduction": None, "include": []}


def render_ga(config: SessionConfig, session_id: str, model: str) -> dict[str, Any]:
    kind = next(k for k, v in GA_FORMATS.items() if v == config.audio_format)
    audio_format = {"type": kind, "rate": config.sample_rate} if kind == "audio/pcm" else {"type": kind}
    return {"type": "transcription", "id": session_id, "object": "realtime.transcription_session", "include": [],
            "audio": {"input": {"format": audio_format, "transcription": {"model": model, "language": config.language, "prompt": config.prompt},
                                "turn_detection": _turn_detection(config), "noise_reduction": None}}}


def _turn_detection(config: SessionConfig) -> dict[str, Any] | None:
    if not config.vad:
        return None
    return {"type": "server_vad", "threshold": config.threshold, "prefix_padding_ms": config.prefix_padding_ms, "silence_duration_ms": config.silence_ms}


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def parse_event(text: str) -> dict[str, Any]:
    try:
        event = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RealtimeError("invalid_json", f"the event is not valid JSON: {e}") from e
    if not isinstance(event, dict):
        raise RealtimeError("invalid_json", "the event must be a JSON object")
    return event
