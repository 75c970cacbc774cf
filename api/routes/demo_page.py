"""The demo page at `/`: static HTML, CSS and JS (no build step) that call the public routes."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
# Only the files shipped with the app are served: a fixed list, no path from the URL is opened.
ASSETS = {path.name: path for path in STATIC_DIR.iterdir() if path.suffix in {".css", ".js"}}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def demo_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/static/{name}")
async def demo_asset(name: str) -> FileResponse:
    path = ASSETS.get(name)
    if path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not found")
    return FileResponse(path, headers={"Cache-Control": "no-cache"})
