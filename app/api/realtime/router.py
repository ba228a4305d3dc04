"""`WS /v1/realtime?intent=transcription`: OpenAI Realtime transcription sessions on the streaming engine.

The same `Stream` that serves `WS /v1/stream` runs under OpenAI's Realtime event protocol, so
clients written for OpenAI's transcription sessions work unchanged. Only transcription
sessions exist here: no responses, no audio output, no conversation items besides the
transcribed input.

Protocol
--------
Every message is a JSON text frame with a `type`. On connect the server sends
`transcription_session.created` with the effective session (in the beta form whatever the
client: nothing in a GA client's handshake tells it apart; GA clients get `session.updated`
in the GA form once they send `session.update`).

Client events (an optional `event_id` is echoed in the errors it causes):

- `transcription_session.update` {session: {input_audio_format, input_audio_transcription:
  {model, language, prompt}, turn_detection}} (the beta form), or `session.update`
  {session: {type: "transcription", audio: {input: {format, transcription, turn_detection}}}}
  (the GA form). Only the fields present change. The answer is `transcription_session.updated`
  or `session.updated`, in the form of the request.
  - `input_audio_format`: `pcm16` (16-bit little-endian mono at 24 kHz), `g711_ulaw` or
    `g711_alaw` (8 kHz). GA: `{"type": "audio/pcm", "rate": 24000}`, `audio/pcmu`,
    `audio/pcma`; as an extension `audio/pcm` takes any `rate` from 8000 to 192000.
  - `model`: a bundle name, or one of OpenAI's transcription models (`whisper-1`,
    `gpt-4o-transcribe`, `gpt-4o-mini-transcribe`) for the server's default model; any other
    name is refused with `unknown_model`, as over HTTP. `language` and `prompt` are accepted and ignored.
  - `turn_detection`: `{"type": "server_vad", "silence_duration_ms": 500}` (the default;
    `semantic_vad` runs as `server_vad`; `threshold` and `prefix_padding_ms` are ignored because
    endpoints come from the model's own blank frames) or `null` for manual commits only.
  The model or the audio format can change only while the buffer holds no uncommitted audio.
- `input_audio_buffer.append` {audio: base64}: audio in the session format, any length up to
  the server's message limit (`ASR_WS_MAX_MESSAGE_BYTES`, 1 MiB of base64 text by default).
- `input_audio_buffer.commit`: the audio since the last commit becomes an item and is
  transcribed in full (the stream's end-of-input flush); the next item starts a new stream that
  keeps the Transformer-XL rescoring memory.
- `input_audio_buffer.clear`: drops the uncommitted audio.

Server events (each with a unique `event_id`):

- `input_audio_buffer.speech_started` {audio_start_ms, item_id} and
  `input_audio_buffer.speech_stopped` {audio_end_ms, item_id}: server VAD only.
- `conversation.item.input_audio_transcription.delta` {item_id, content_index: 0, delta}: live
  text growth while audio arrives (before the commit, unlike OpenAI's batch models); the
  `completed` transcript is authoritative and may differ from the concatenated deltas.
- `input_audio_buffer.committed` {item_id, previous_item_id}, on an explicit commit and at each
  server-VAD endpoint, followed by `conversation.item.input_audio_transcription.completed`
  {item_id, content_index: 0, transcript, usage: {type: "duration", seconds}}.
- `input_audio_buffer.cleared`.
- `error` {error: {type, code, message, param, event_id}}. Bad JSON, unknown events, bad base64,
  bad session values, oversized events, binary frames and empty commits leave the connection
  open. The idle timeout closes it
  with 1001, the stream limit with 1013.

Without turn detection an item is also committed on its own after 120 s of audio, and with
server VAD after 20 s of continuous speech.

Authentication (when API keys are set): `Authorization: Bearer <key>`, the subprotocol pair
`["bearer", "<key>"]`, or OpenAI's browser form, a subprotocol `openai-insecure-api-key.<key>`.
Without a valid key the handshake completes, an `error` event with code `unauthorized` follows and
the server closes with 1008.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from app.api.deps import KEY_PROTOCOL, UNAUTHORIZED, ApiKeyDep
from app.api.realtime.connection import RealtimeSession
from app.api.realtime.protocol import (
    new_id,
)
from app.api.websocket import (
    ProtocolError,
    refuse_unauthorized,
    registered,
)

router = APIRouter()
log = logging.getLogger(__name__)


def subprotocol(offered: tuple[str, ...]) -> str | None:
    """The subprotocol to echo: browsers fail the handshake unless the server picks one of those they
    offered, so one is always echoed when any was offered, never the one that carries the key if another exists."""
    plain = [p for p in offered if not p.startswith(KEY_PROTOCOL)]
    if offered and offered[0] == "bearer":
        return "bearer"
    preferred = [p for p in ("realtime", "openai-beta.realtime-v1") if p in plain] + plain + list(offered)
    return preferred[0] if preferred else None


@router.websocket("/v1/realtime")
async def realtime_endpoint(websocket: WebSocket, access: ApiKeyDep) -> None:
    state = websocket.app.state
    if not access.granted:
        await refuse_unauthorized(websocket, {"event_id": new_id("event"), "type": "error", "error": {
            "type": "invalid_request_error", "code": "unauthorized", "message": UNAUTHORIZED, "param": None, "event_id": None}})
        return
    await websocket.accept(subprotocol=subprotocol(access.subprotocols))
    session = RealtimeSession(websocket)
    intent = websocket.query_params.get("intent", "transcription")
    if intent != "transcription":
        await session.error("unsupported_intent", f"intent={intent!r}: this server runs only transcription sessions (?intent=transcription)", param="intent")
        await websocket.close(1008)
        return
    if state.shutting_down or not state.admission.admit(state.active_streams):
        state.metrics.streams_refused.inc()
        reason = "the server is shutting down" if state.shutting_down else state.admission.reason()
        await session.error("too_many_streams", reason, kind="server_error")
        await websocket.close(1013)
        return
    with registered(state, session):  # `app.main.drain` waits for it to commit and close on shutdown
        try:
            await session.serve()
        except ProtocolError as e:  # the default model could not be opened
            await session.error(e.code, e.message, kind="server_error")
            await websocket.close(1011)
        except (WebSocketDisconnect, TimeoutError):
            pass
        except Exception:  # noqa: BLE001 - one session's fault must not take the server down
            log.exception("realtime session failed")
            await session.error("internal_error", "the session failed", kind="server_error")
            await websocket.close(1011)
