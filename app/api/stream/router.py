"""`WS /v1/stream`: live transcription over WebSocket.

Protocol
--------
1. The client sends a JSON config (`type` may be left out)::

       {"type": "config", "model": "wav2letter-asg", "sample_rate": 16000, "encoding": "pcm_s16le",
        "channels": 1, "decoder": "greedy", "beam_size": 16, "rescore": false, "hotwords": [],
        "interim_results": true, "endpoint_silence": 0.6, "max_utterance": 20}

   and receives `{"type": "ready", "model": ..., "sample_rate": <model rate>}`.
2. Then binary frames of audio of any size (`pcm_s16le` or `f32le`, interleaved channels).
   The server answers `{"type": "partial", "text"}` while speech goes on and
   `{"type": "final", "text", "raw_text", "words", "start", "end", "nbest"}` at each endpoint (`text` punctuated
   and cased when a punctuation bundle is loaded, `raw_text` the normalised words; partials stay raw).
3. `{"type": "eof"}` flushes the last final result; the server then closes with 1000.
   When the server shuts down (SIGTERM) it flushes every open stream the same way, sends
   `{"type": "eof", "reason": "shutdown"}` and closes with 1001.

Errors are `{"type": "error", "code", "message"}` followed by a close: 1003 for malformed
messages, 1008 for authentication or policy, 1009 for oversized frames, 1013 when the
server is at its stream limit, 1001 after the idle timeout.

Overload. The server reads a client's next frame only once the previous one is processed, so a
client that sends faster than it is served is slowed down by TCP (its sends block). A stream
whose processing falls more than `ASR_STREAM_MAX_LAG_SECONDS` (10 s) behind real time gets
`{"type": "error", "code": "too_far_behind"}` and close 1013; the results sent before stay valid.
On shutdown every frame the client had already sent is transcribed before the last final.

Authentication (when API keys are set; `app.api.deps.require_api_key`, as for every route):
`Authorization: Bearer <key>` header, or the subprotocol pair `["bearer", "<key>"]` for browsers
that cannot set headers (or OpenAI's `openai-insecure-api-key.<key>`). Never a query
string, which lands in access logs. Without a valid key the handshake completes and the
server sends `{"type": "error", "code": "unauthorized"}` and closes with 1008.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from app.api.deps import UNAUTHORIZED, ApiKeyDep
from app.api.stream.connection import StreamSession
from app.api.websocket import (
    ProtocolError,
    refuse_unauthorized,
    registered,
)

router = APIRouter()
log = logging.getLogger(__name__)


@router.websocket("/v1/stream")
async def stream_endpoint(websocket: WebSocket, access: ApiKeyDep) -> None:
    state = websocket.app.state
    if not access.granted:
        await refuse_unauthorized(websocket, {"type": "error", "code": "unauthorized", "message": UNAUTHORIZED})
        return
    await websocket.accept(subprotocol="bearer" if "bearer" in access.subprotocols else None)  # a browser needs one it offered echoed
    session = StreamSession(websocket)
    if state.shutting_down:
        await session.fail("shutting_down", "the server is shutting down", 1001)
        return
    if not state.admission.admit(state.active_streams):  # refused at once: the open streams keep their latency
        state.metrics.streams_refused.inc()
        await session.fail("too_many_streams", state.admission.reason(), 1013)
        return
    with registered(state, session):
        try:
            await session.serve()
        except ProtocolError as e:
            await session.fail(e.code, e.message, e.close_code)
        except (WebSocketDisconnect, TimeoutError):
            pass
        except Exception:  # noqa: BLE001 - one stream's fault must not take the server down
            log.exception("stream failed")
            await session.fail("internal_error", "the stream failed", 1011)
