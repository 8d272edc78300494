"""Typed keys of what the web application holds (aiohttp AppKeys)."""
from __future__ import annotations

from aiohttp import web

from phaeton.clock import Clock
from phaeton.web.auth import Authenticator
from phaeton.web.backend import WebBackend
from phaeton.web.http_json import fail
from phaeton.web.stream_limit import StreamLimit

BACKEND = web.AppKey("backend", WebBackend)
AUTH = web.AppKey("auth", Authenticator)
CLOCK = web.AppKey("clock", Clock)
SSE_TASKS = web.AppKey("sse_tasks", set)      # set[asyncio.Task]: the open event streams
SSE_HEARTBEAT_S = web.AppKey("sse_heartbeat_s", float)
SSE_LIMIT = web.AppKey("sse_limit", StreamLimit)



def backend_part(request: web.Request, name: str, what: str):
    """The backend's optional part `name` (metrics, updates), or a 503 saying `what` is not
    available from this service."""
    part = getattr(request.app[BACKEND], name, None)
    if part is None:
        fail(503, f"{what} not available from this service")
    return part


__all__ = ["BACKEND", "AUTH", "CLOCK", "SSE_TASKS", "SSE_HEARTBEAT_S", "SSE_LIMIT",
           "backend_part"]
