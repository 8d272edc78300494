"""The HTML pages and their static assets (hand-written, no build step: the GX may be offline).

Every page is `templates/layout.html` (head, navigation) around the page's own `<main>` content
in `templates/<page>.html`; the pages are put together once, when the routes are added.
"""
from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).with_name("static")
TEMPLATE_DIR = Path(__file__).with_name("templates")

#: URL -> (content file in templates/, page title, the page's script in static/).
PAGES = {
    "/": ("index.html", "Dashboard", "dashboard.js"),
    "/sessions": ("sessions.html", "Sessions", "sessions.js"),
    "/schedule": ("schedule.html", "Schedule", "schedule.js"),
    "/settings": ("settings.html", "Settings", "settings.js"),
    "/logs": ("logs.html", "Logs", "logs.js"),
    "/login": ("login.html", "Log in", "login.js"),
}

#: Pages with charts: they also load the vendored uPlot (static/vendor/, MIT, docs/web.md) and
#: phaeton's chart helpers, before their own script.
CHART_PAGES = frozenset({"dashboard.js", "sessions.js", "schedule.js"})
CHART_HEAD = ('<link rel="stylesheet" href="/static/vendor/uPlot.min.css">\n'
              '<script src="/static/vendor/uPlot.iife.min.js" defer></script>\n'
              '<script src="/static/charts.js" defer></script>\n')

_MARKERS = ("<!--title-->", "<!--head-->", "<!--script-->", "<!--main-->")


def render_page(content_file: str, title: str, script: str, layout: str | None = None) -> bytes:
    """One whole page: the layout (read from templates/ unless given) with the page's title,
    script and content filled in."""
    if layout is None:
        layout = (TEMPLATE_DIR / "layout.html").read_text(encoding="utf-8")
    missing = [m for m in _MARKERS if m not in layout]
    if missing:
        raise RuntimeError(f"templates/layout.html lacks {', '.join(missing)}")
    content = (TEMPLATE_DIR / content_file).read_text(encoding="utf-8")
    head = CHART_HEAD if script in CHART_PAGES else ""
    html = (layout.replace("<!--title-->", title).replace("<!--head-->", head)
            .replace("<!--script-->", script).replace("<!--main-->", content))
    return html.encode("utf-8")


def _page_handler(url: str, body: bytes):
    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=body, headers={"Cache-Control": "no-cache",
                                                "Content-Type": "text/html; charset=utf-8"})
    handle.__name__ = f"page_{url.strip('/') or 'index'}"
    return handle


async def _cache_static(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith("/static/") and response.status == 200:
        response.headers["Cache-Control"] = "no-cache"


def add_routes(app: web.Application) -> None:
    """Register the pages and /static/."""
    layout = (TEMPLATE_DIR / "layout.html").read_text(encoding="utf-8")
    for url, (content_file, title, script) in PAGES.items():
        body = render_page(content_file, title, script, layout)
        app.router.add_get(url, _page_handler(url, body))
    app.router.add_static("/static/", STATIC_DIR, follow_symlinks=False)
    app.on_response_prepare.append(_cache_static)
