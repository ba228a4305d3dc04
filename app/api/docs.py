"""`/docs`, `/redoc` and `/openapi.json` behind the API key.

With API keys set every endpoint but `/healthz` needs one, the schema and its pages included;
`ASR_PUBLIC_DOCS=true` serves them openly (FastAPI's own routes). Without keys they are open anyway.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from app.api.deps import require_api_key

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_api_key)])


@router.get("/openapi.json")
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{request.app.title} - Swagger UI")


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(openapi_url="/openapi.json", title=f"{request.app.title} - ReDoc")


def docs_urls(*, protected: bool) -> dict[str, str | None]:
    """FastAPI's own documentation routes: off when `install` serves them behind the key."""
    return {"openapi_url": None, "docs_url": None, "redoc_url": None} if protected else {}


def install(app: FastAPI) -> None:
    app.include_router(router)
