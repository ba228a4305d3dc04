"""`POST /v1/audio/transcriptions`, compatible with the official `openai` client.

`model` takes a bundle name; `default`, an empty value, or OpenAI's own model names
(`whisper-1`, `gpt-4o-transcribe`, ...) select the server's default model so unchanged
clients work. `language`, `prompt` and `temperature` are accepted and ignored (English
letter models). Extra fields (the client's `extra_body`) reach the decoder: `decoder`,
`beam_size`, `nbest`, `lm`, `rescore`, `hotwords`.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from app.api.deps import UploadDep, require_api_key
from app.api.errors import ERRORS
from app.api.formats import to_srt, to_verbose_json, to_vtt
from app.api.openai.protocol import OPENAI_BODY, RESPONSE_FORMATS
from app.api.params import FormOptionsDep, bundle_name
from app.api.service import transcribe_bytes
from app.asr.errors import InvalidOption

router = APIRouter(dependencies=[Depends(require_api_key)])


@router.post("/v1/audio/transcriptions", responses=ERRORS, openapi_extra=OPENAI_BODY)
async def create_transcription(request: Request, upload: UploadDep, options: FormOptionsDep) -> Response:
    """OpenAI's transcription endpoint on this server's models."""
    fields = upload.fields
    response_format = (fields.get("response_format") or ["json"])[-1]
    if response_format not in RESPONSE_FORMATS:
        raise InvalidOption(f"response_format={response_format!r} is unknown; use one of {', '.join(RESPONSE_FORMATS)}")
    granularities = set(fields.get("timestamp_granularities[]", []) + fields.get("timestamp_granularities", [])) or {"segment"}
    unknown = granularities - {"word", "segment"}
    if unknown:
        raise InvalidOption(f"timestamp_granularities {sorted(unknown)} unknown; use 'word' and/or 'segment'")
    model = bundle_name(options.model)
    transcript = await transcribe_bytes(request, upload.data, model=model, options=options.decode_options(), endpoint="audio_transcriptions")
    request.app.state.metrics.requests.labels(endpoint="audio_transcriptions", status="200").inc()
    if response_format == "text":
        return PlainTextResponse(transcript.text + "\n")
    if response_format == "srt":
        return PlainTextResponse(to_srt(transcript), media_type="application/x-subrip")
    if response_format == "vtt":
        return PlainTextResponse(to_vtt(transcript), media_type="text/vtt")
    if response_format == "verbose_json":
        return JSONResponse(to_verbose_json(transcript, words="word" in granularities, segment_level="segment" in granularities))
    return JSONResponse({"text": transcript.text})
