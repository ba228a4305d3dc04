"""REST routes: `POST /v1/transcribe`, `GET /v1/models`, health, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.deps import RecognizerDep, UploadDep, require_api_key
from app.api.errors import ERRORS
from app.api.params import TranscribeOptionsDep
from app.api.rest.protocol import AUDIO_BODY, ModelList, ModelOut, TranscriptionOut
from app.api.service import transcribe_bytes

router = APIRouter()
protected = APIRouter(dependencies=[Depends(require_api_key)])


@protected.post("/v1/transcribe", response_model=TranscriptionOut, responses=ERRORS, openapi_extra=AUDIO_BODY)
async def transcribe(request: Request, upload: UploadDep, options: TranscribeOptionsDep) -> TranscriptionOut:
    """Transcribe one audio file sent as multipart field `file` or as the raw request body.

    Options come as query parameters or as form fields of the same name (a form field wins)."""
    transcript = await transcribe_bytes(request, upload.data, model=options.model, options=options.decode_options(), endpoint="transcribe")
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
    data += [ModelOut(id=name, kind="punctuation", architecture="punctuation_tagger", precisions=[p.precision]) for name, p in sorted(recognizer.bundles.punctuation.items())]
    return ModelList(data=data)


@router.head("/healthz", include_in_schema=False)
@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Alive: the process answers (`HEAD` too, for probes that send it)."""
    return {"status": "ok"}


@protected.get("/readyz")
async def readyz(request: Request, recognizer: RecognizerDep) -> JSONResponse:
    """Ready when at least one acoustic model is loaded and the server is not shutting down; lists refused bundles."""
    ready = bool(recognizer.bundles.acoustic) and not request.app.state.shutting_down
    body = {"status": "ready" if ready else "not_ready", "models": sorted(recognizer.bundles.acoustic), "lms": sorted(recognizer.bundles.lms),
            "punctuation": sorted(recognizer.bundles.punctuation),
            "failed": recognizer.bundles.failures}
    return JSONResponse(body, status_code=200 if ready else 503)


@protected.get("/metrics")
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
