"""`GET /` and `GET /demo`: the browser demo page; `GET /static/{name}`: its files.

The page (`app/static/`) is plain HTML and JavaScript with no build step and no CDN: it records
the microphone through an AudioWorklet, downsamples to the rate of the server's `ready` message
and streams 16-bit PCM to `WS /v1/stream`; a file picker posts to `POST /v1/transcribe`. The page
itself needs no API key; it sends the one typed into it with each request.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

router = APIRouter(include_in_schema=False)
STATIC = Path(__file__).resolve().parent.parent / "static"
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


@router.get("/")
@router.get("/demo")
async def demo_page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type=MEDIA_TYPES[".html"], headers={"Cache-Control": "no-cache"})


@router.get("/static/{name}")
async def static_file(name: str) -> FileResponse:
    """Only the page's own files: a name is looked up among them, never joined into a path."""
    files = {p.name: p for p in STATIC.iterdir() if p.suffix in MEDIA_TYPES and p.is_file()}
    if name not in files:
        raise HTTPException(404, f"no static file {name!r}")
    return FileResponse(files[name], media_type=MEDIA_TYPES[files[name].suffix], headers={"Cache-Control": "no-cache"})
