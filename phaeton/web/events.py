"""GET /api/events: the live status as Server-Sent Events.

On connect the client gets `event: hello` (the tick, so it can tell a stale stream) and the
current status, then one `event: status` per published snapshot. A client that falls behind
gets only the newest snapshot (older ones are skipped, never queued without bound). A comment
line every `heartbeat_s` keeps proxies open and finds clients that went away.
"""
from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web

from phaeton.web.control_api import without_non_finite
from phaeton.web.http_json import fail
from phaeton.web.keys import BACKEND, MAX_SSE_CLIENTS, SSE_HEARTBEAT_S, SSE_TASKS

log = logging.getLogger(__name__)

STALE_TICKS = 3


def sse_message(event: str, data: object) -> bytes:
    """One SSE message: `event: NAME` and the JSON data on one line."""
    text = json.dumps(without_non_finite(data), separators=(",", ":"), allow_nan=False,
                      default=str)
    return f"event: {event}\ndata: {text}\n\n".encode()


def tick_s_of(backend) -> float:
    """The control tick from the backend's config (2 s when it cannot be read)."""
    try:
        tick = float(backend.config()["control"]["tick_s"])
    except (KeyError, TypeError, ValueError):
        return 2.0
    return tick if tick > 0 else 2.0


async def get_events(request: web.Request) -> web.StreamResponse:
    """Stream status snapshots until the client goes away or the server stops."""
    app = request.app
    tasks: set = app[SSE_TASKS]
    if len(tasks) >= app[MAX_SSE_CLIENTS]:
        fail(503, f"too many live connections (at most {app[MAX_SSE_CLIENTS]}); close a tab")
    backend = app[BACKEND]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    task = asyncio.current_task()
    tasks.add(task)
    queue = backend.subscribe()
    try:
        tick_s = tick_s_of(backend)
        await response.write(b"retry: 1000\n" + sse_message(
            "hello", {"tick_s": tick_s, "stale_after_s": STALE_TICKS * tick_s}))
        await response.write(sse_message("status", backend.status()))
        heartbeat_s = app[SSE_HEARTBEAT_S]
        while True:
            try:
                status = await asyncio.wait_for(queue.get(), heartbeat_s)
            except asyncio.TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            while not queue.empty():  # behind: send only the newest
                status = queue.get_nowait()
            await response.write(sse_message("status", status))
    except (ConnectionResetError, ConnectionError):
        pass  # the client went away
    finally:
        backend.unsubscribe(queue)
        tasks.discard(task)
    return response


async def close_event_streams(app: web.Application) -> None:
    """on_shutdown: end every open stream so the server can stop promptly."""
    for task in list(app[SSE_TASKS]):
        task.cancel()
