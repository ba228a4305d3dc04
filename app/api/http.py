"""REST routes: `POST /v1/transcribe`, `GET /v1/models`, health, readiness and metrics."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.deps import RecognizerDep, SettingsDep, require_api_key
from app.api.schemas import ErrorOut, ModelList, ModelOut, TranscriptionOut
from app.api.service import read_upload, transcribe_bytes
from app.asr.errors import InvalidOption
from app.asr.options import DecodeOptions

router = APIRouter()
protected = APIRouter(dependencies=[Depends(require_api_key)])

AUDIO_BODY = {
    "requestBody": {
        "content": {
            "multipart/form-data": {"schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}, "required": ["file"]}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
        "required": True,
    }
}
ERRORS = {code: {"model": ErrorOut} for code in (400, 401, 404, 413, 415, 422, 429)}


def parse_bool(name: str, value: str | bool | None) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise InvalidOption(f"{name}={value!r} is not a boolean; use true or false")


def parse_number(name: str, value: str | None, kind: type[int] | type[float]) -> int | float | None:
    if value is None or value == "":
        return None
    try:
        return kind(value)
    except ValueError as e:
        raise InvalidOption(f"{name}={value!r} is not a valid {kind.__name__}") from e


def options_from(fields: dict[str, list[str]], query: dict[str, str | None]) -> tuple[str | None, DecodeOptions]:
    """Decoding options from query parameters, overridden by form fields of the same name."""

    def get(name: str) -> str | None:
        values = fields.get(name)
        return values[-1] if values else query.get(name)

    hotwords = [h for v in fields.get("hotwords", []) for h in v.split(",")] or ([h for h in (query.get("hotwords") or "").split(",")] if query.get("hotwords") else [])
    decoder = get("decoder")
    precision = get("precision")
    options = DecodeOptions(
        decoder=decoder or None,  # type: ignore[arg-type]
        beam_size=parse_number("beam_size", get("beam_size"), int),  # type: ignore[arg-type]
        nbest=parse_number("nbest", get("nbest"), int) or 1,  # type: ignore[arg-type]
        lm=parse_bool("lm", get("lm")),
        rescore=bool(parse_bool("rescore", get("rescore"))),
        lm_weight=parse_number("lm_weight", get("lm_weight"), float),
        word_score=parse_number("word_score", get("word_score"), float),
        allow_oov=parse_bool("allow_oov", get("allow_oov")),
        word_timestamps=parse_bool("word_timestamps", get("word_timestamps")) is not False,
        vtln=parse_bool("vtln", get("vtln")),
        hotwords=tuple(h.strip() for h in hotwords if h.strip()),
        precision=precision or None,  # type: ignore[arg-type]
    )
    return get("model"), options


@protected.post("/v1/transcribe", response_model=TranscriptionOut, responses=ERRORS, openapi_extra=AUDIO_BODY)
async def transcribe(
    request: Request,
    settings: SettingsDep,
    model: Annotated[str | None, Query(max_length=200, description="bundle name; empty or 'default' for the default model")] = None,
    decoder: Annotated[Literal["greedy", "beam"] | None, Query()] = None,
    beam_size: Annotated[int | None, Query(ge=1, le=512)] = None,
    nbest: Annotated[int | None, Query(ge=1, le=32)] = None,
    lm: Annotated[bool | None, Query(description="n-gram shallow fusion (beam only)")] = None,
    rescore: Annotated[bool | None, Query(description="Transformer-XL n-best rescoring")] = None,
    lm_weight: Annotated[float | None, Query(ge=-100, le=100)] = None,
    word_score: Annotated[float | None, Query(ge=-100, le=100)] = None,
    allow_oov: Annotated[bool | None, Query(description="beam with lexicon: allow words outside the lexicon")] = None,
    word_timestamps: Annotated[bool | None, Query()] = None,
    vtln: Annotated[bool | None, Query(description="speaker normalisation by frequency warping (default: the bundle's)")] = None,
    hotwords: Annotated[str | None, Query(max_length=10000, description="comma-separated words or phrases, each optionally 'phrase:boost'")] = None,
    precision: Annotated[Literal["fp32", "int8", "fp16"] | None, Query()] = None,
) -> TranscriptionOut:
    """Transcribe one audio file sent as multipart field `file` or as the raw request body."""
    upload = await read_upload(request, max_bytes=settings.max_upload_bytes)
    query = {k: (None if v is None else str(v).lower() if isinstance(v, bool) else str(v)) for k, v in {
        "model": model, "decoder": decoder, "beam_size": beam_size, "nbest": nbest, "lm": lm, "rescore": rescore, "lm_weight": lm_weight,
        "word_score": word_score, "allow_oov": allow_oov, "word_timestamps": word_timestamps, "vtln": vtln, "hotwords": hotwords, "precision": precision}.items()}
    name, options = options_from(upload.fields, query)
    transcript = await transcribe_bytes(request, upload.data, model=name, options=options, endpoint="transcribe")
    request.app.state.metrics.requests.labels(endpoint="transcribe", status="200").inc()
    return TranscriptionOut.model_validate(transcript.to_json())


@protected.get("/v1/models", response_model=ModelList)
async def list_models(recognizer: RecognizerDep) -> ModelList:
    data = [
        ModelOut(id=name, kind="acoustic", architecture=b.manifest.architecture, criterion=b.manifest.criterion, sample_rate=b.manifest.sample_rate,
                 precisions=sorted(b.models), default=name == recognizer.default_model)
        for name, b in sorted(recognizer.bundles.acoustic.items())
    ]
    data += [ModelOut(id=name, kind="lm", architecture=b.manifest.architecture, precisions=sorted(b.manifest.files)) for name, b in sorted(recognizer.bundles.lms.items())]
    return ModelList(data=data)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Alive: the process answers."""
    return {"status": "ok"}


@protected.get("/readyz")
async def readyz(request: Request, recognizer: RecognizerDep) -> JSONResponse:
    """Ready when at least one acoustic model is loaded and the server is not shutting down; lists refused bundles."""
    ready = bool(recognizer.bundles.acoustic) and not request.app.state.shutting_down
    body = {"status": "ready" if ready else "not_ready", "models": sorted(recognizer.bundles.acoustic), "lms": sorted(recognizer.bundles.lms),
            "failed": recognizer.bundles.failures}
    return JSONResponse(body, status_code=200 if ready else 503)


@protected.get("/metrics")
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
