"""GET /api/events: the live status as Server-Sent Events.

On connect the client gets `event: hello` (the tick, so it can tell a stale stream) and the
current status, then one `event: status` per published snapshot. A client that falls behind
gets only the newest snapshot (older ones are skipped, never queued without bound). A comment
line every `heartbeat_s` keeps proxies open and finds clients that went away. How many streams
a client may hold: stream_limit.py. An ended stream (to make room for another client) closes at
its next status or heartbeat; the browser then reconnects, or is told there is no room.
"""
from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web

from phaeton.web.client_address import client_of
from phaeton.web.control_api import without_non_finite
from phaeton.web.http_json import fail
from phaeton.web.keys import BACKEND, SSE_HEARTBEAT_S, SSE_LIMIT, SSE_TASKS
from phaeton.web.stream_limit import TooManyStreams

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
    """Stream status snapshots until the client goes away, its stream is ended to make room
    for another client (stream_limit.py), or the server stops."""
    app = request.app
    try:
        stream = app[SSE_LIMIT].open(client_of(request))
    except TooManyStreams as exc:
        fail(exc.status, exc.message)
    tasks: set = app[SSE_TASKS]
    task = asyncio.current_task()
    tasks.add(task)
    backend = app[BACKEND]
    queue = backend.subscribe()
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    try:
        await response.prepare(request)
        tick_s = tick_s_of(backend)
        await response.write(b"retry: 1000\n" + sse_message(
            "hello", {"tick_s": tick_s, "stale_after_s": STALE_TICKS * tick_s}))
        await response.write(sse_message("status", backend.status()))
        heartbeat_s = app[SSE_HEARTBEAT_S]
        while not stream.ended:
            try:
                status = await asyncio.wait_for(queue.get(), heartbeat_s)
            except asyncio.TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if stream.ended:
                break
            while not queue.empty():  # behind: send only the newest
                status = queue.get_nowait()
            await response.write(sse_message("status", status))
    except (ConnectionResetError, ConnectionError):
        pass  # the client went away
    finally:
        backend.unsubscribe(queue)
        app[SSE_LIMIT].close(stream)
        tasks.discard(task)
    return response


async def close_event_streams(app: web.Application) -> None:
    """on_shutdown: end every open stream so the server can stop promptly."""
    for task in list(app[SSE_TASKS]):
        task.cancel()
