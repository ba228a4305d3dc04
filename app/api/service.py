"""Serving logic shared by the HTTP routes: read the upload within limits, decode audio and
transcribe off the event loop, count metrics. Routes stay thin."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from fastapi import Request
from starlette.datastructures import UploadFile

from app.api.limits import body_limit, parse_form
from app.asr.audio import decode_audio
from app.asr.errors import ASRError, AudioTooLarge, Busy, EmptyAudio, InvalidOption, ShuttingDown
from app.asr.options import DecodeOptions
from app.asr.recognizer import Transcript


@dataclass
class Upload:
    data: bytes
    fields: dict[str, list[str]]  # form fields other than the file (multipart only)


async def read_upload(request: Request, *, max_bytes: int, file_field: str = "file") -> Upload:
    """The audio bytes from a multipart `file` field or a raw body, refusing more than `max_bytes`.

    A request that arrives once the server is shutting down is refused here, before its body is
    read (503 `shutting_down`); one whose body was arriving when the shutdown began is served."""
    if request.app.state.shutting_down:
        raise ShuttingDown("the server is shutting down; retry on another instance")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > body_limit(max_bytes):
        raise AudioTooLarge(f"request body of {declared} bytes exceeds the limit of {max_bytes} bytes")
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        try:
            form = await parse_form(request, max_files=2, max_fields=100)
        except ASRError:  # the body or a text field over its limit
            raise
        except Exception as e:  # noqa: BLE001 - malformed multipart from the client
            raise InvalidOption(f"malformed multipart body: {str(e)[:200]}") from e
        files = [v for k, v in form.multi_items() if k == file_field and isinstance(v, UploadFile)]
        if not files:
            raise InvalidOption(f"multipart body has no '{file_field}' file field")
        if len(files) > 1:
            raise InvalidOption(f"multipart body has {len(files)} '{file_field}' fields; send exactly one")
        data = await files[0].read(max_bytes + 1)
        fields: dict[str, list[str]] = {}
        for key, value in form.multi_items():
            if isinstance(value, str):
                fields.setdefault(key, []).append(value)
        await form.close()
    else:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise AudioTooLarge(f"request body exceeds the limit of {max_bytes} bytes")
            chunks.append(chunk)
        data, fields = b"".join(chunks), {}
    if len(data) > max_bytes:
        raise AudioTooLarge(f"upload exceeds the limit of {max_bytes} bytes")
    if not data:
        raise EmptyAudio("the request carries no audio (empty body or file)")
    return Upload(data, fields)


async def transcribe_bytes(request: Request, data: bytes, *, model: str | None, options: DecodeOptions, endpoint: str) -> Transcript:
    """Decode and transcribe in the inference pool; at most `max_concurrent_requests` at once."""
    state = request.app.state
    semaphore: asyncio.Semaphore = state.request_slots
    if semaphore.locked():
        raise Busy(f"the server is handling {state.settings.max_concurrent_requests} requests; retry shortly")
    started = time.perf_counter()
    async with semaphore:
        state.metrics.in_flight.inc()
        try:
            recognizer = state.recognizer
            bundle = recognizer.bundle(model)
            loop = asyncio.get_running_loop()
            audio = await loop.run_in_executor(state.executor, lambda: decode_audio(data, sample_rate=bundle.manifest.sample_rate,
                                                                                     max_seconds=state.settings.max_audio_seconds))
            transcript = await state.engine.transcribe(bundle, audio.samples, options)
        finally:
            state.metrics.in_flight.dec()
    elapsed = time.perf_counter() - started
    state.metrics.audio_seconds.labels(model=bundle.name).inc(transcript.duration)
    state.metrics.latency.labels(endpoint=endpoint).observe(elapsed)
    state.metrics.rtf.labels(model=bundle.name).observe(elapsed / max(transcript.duration, 1e-6))
    transcript.timings["total"] = elapsed
    return transcript
