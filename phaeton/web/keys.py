"""Typed keys of what the web application holds (aiohttp AppKeys)."""
from __future__ import annotations

from aiohttp import web

from phaeton.clock import Clock
from phaeton.web.auth import Authenticator
from phaeton.web.backend import WebBackend

BACKEND = web.AppKey("backend", WebBackend)
AUTH = web.AppKey("auth", Authenticator)
CLOCK = web.AppKey("clock", Clock)
SSE_TASKS = web.AppKey("sse_tasks", set)      # set[asyncio.Task]: the open event streams
SSE_HEARTBEAT_S = web.AppKey("sse_heartbeat_s", float)
MAX_SSE_CLIENTS = web.AppKey("max_sse_clients", int)

__all__ = ["BACKEND", "AUTH", "CLOCK", "SSE_TASKS", "SSE_HEARTBEAT_S", "MAX_SSE_CLIENTS"]
