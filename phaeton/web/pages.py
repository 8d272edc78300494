"""The HTML pages and their static assets (hand-written, shipped in phaeton/web/static)."""
from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).with_name("static")

#: URL -> HTML file of every page.
PAGES = {
    "/": "index.html",
    "/sessions": "sessions.html",
    "/schedule": "schedule.html",
    "/settings": "settings.html",
    "/logs": "logs.html",
    "/login": "login.html",
}


def _page_handler(filename: str):
    path = STATIC_DIR / filename

    async def handle(request: web.Request) -> web.FileResponse:
        return web.FileResponse(path, headers={"Cache-Control": "no-cache",
                                               "Content-Type": "text/html; charset=utf-8"})
    handle.__name__ = f"page_{path.stem}"
    return handle


async def _cache_static(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith("/static/") and response.status == 200:
        response.headers["Cache-Control"] = "no-cache"


def add_routes(app: web.Application) -> None:
    """Register the pages and /static/."""
    for url, filename in PAGES.items():
        app.router.add_get(url, _page_handler(filename))
    app.router.add_static("/static/", STATIC_DIR, follow_symlinks=False)
    app.on_response_prepare.append(_cache_static)
