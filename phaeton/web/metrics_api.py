"""GET /metrics (Prometheus text format) and GET /health, /health/live (JSON).

Both are read-only and open like every other read on the LAN (docs/web.md, "Security"): a
Prometheus scraper or a monitoring probe has no login, and nothing here writes or shows a
secret. The metrics and the health report come from the backend's `metrics`
(`phaeton.metrics.Metrics`, built by `phaeton.app.Phaeton`); a backend without one answers
503 for both (liveness still 200).
"""
from __future__ import annotations

from aiohttp import web

from phaeton.metrics_text import CONTENT_TYPE
from phaeton.web.http_json import json_response
from phaeton.web.keys import backend_part


async def get_metrics(request: web.Request) -> web.Response:
    """GET /metrics: every metric of docs/metrics.md, built from the last tick's snapshot."""
    text = backend_part(request, "metrics", "metrics are").render()
    return web.Response(body=text.encode("utf-8"), headers={"Content-Type": CONTENT_TYPE})


async def get_health(request: web.Request) -> web.Response:
    """GET /health: 200 when ready, 503 naming the failed checks when not."""
    report = backend_part(request, "metrics", "metrics are").health()
    return json_response(report, status=200 if report["ready"] else 503)


async def get_liveness(request: web.Request) -> web.Response:
    """GET /health/live: 200 whenever the process answers."""
    return json_response({"live": True})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/health", get_health)
    app.router.add_get("/health/live", get_liveness)
