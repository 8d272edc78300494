"""`create_web_app(backend, web_config)`: the aiohttp application of the web UI and REST API."""
from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from phaeton.clock import Clock
from phaeton.web import control_api, data_api, headers, metrics_api, pages, update_api
from phaeton.web.auth import Authenticator
from phaeton.web.backend import WebBackend
from phaeton.web.events import close_event_streams, get_events
from phaeton.web.http_json import MAX_BODY_BYTES, json_errors, json_response
from phaeton.web.keys import AUTH, BACKEND, CLOCK, SSE_HEARTBEAT_S, SSE_LIMIT, SSE_TASKS
from phaeton.web.login_limit import LoginRateLimiter
from phaeton.web.openapi import build_openapi
from phaeton.web.passwords import PasswordHashError, check_hash_format
from phaeton.web.stream_limit import StreamLimit

log = logging.getLogger(__name__)


def create_web_app(backend: WebBackend, web_config: dict[str, Any], *,
                   clock: Clock | None = None) -> web.Application:
    """The web application for `backend`.

    `web_config` is the config's `web` section; used here: `password_hash` (None = writes
    disabled), and optionally `sse_heartbeat_s` (15), `max_sse_clients` (50 over all),
    `max_sse_per_client` (4 per address), `login_free_failures` (5: failures per address before
    it is blocked, see login_limit.py). Host and port are the caller's business (AppRunner/TCPSite).
    """
    clock = clock or Clock()
    password_hash = web_config.get("password_hash") or None
    if password_hash is not None:
        try:
            check_hash_format(password_hash)
        except PasswordHashError as exc:
            log.error("web.password_hash is unusable, web writes are disabled: %s", exc)
            password_hash = None
    else:
        log.warning("no web password set: the web UI is read-only until one is set on its "
                    "login page or with `python -m phaeton.web.set_password --config PATH`")
    limiter = LoginRateLimiter(clock, per_client=int(web_config.get(
        "login_free_failures", 5)))
    app = web.Application(middlewares=[json_errors], client_max_size=MAX_BODY_BYTES)
    headers.add_to(app)
    app[BACKEND] = backend
    app[CLOCK] = clock
    app[AUTH] = Authenticator(password_hash, clock, limiter=limiter,
                              first_password_allowed=not web_config.get("password_hash"))
    app[SSE_TASKS] = set()
    app[SSE_HEARTBEAT_S] = float(web_config.get("sse_heartbeat_s", 15.0))
    app[SSE_LIMIT] = StreamLimit(per_client=int(web_config.get("max_sse_per_client", 4)),
                                 total=int(web_config.get("max_sse_clients", 50)))
    openapi = build_openapi()

    async def get_openapi(request: web.Request) -> web.Response:
        return json_response(openapi)

    control_api.add_routes(app)
    data_api.add_routes(app)
    metrics_api.add_routes(app)          # /metrics, /health: read-only, open like every read
    update_api.add_routes(app)           # /api/update: self-update (docs/update.md)
    app.router.add_get("/api/events", get_events)
    app.router.add_get("/api/openapi.json", get_openapi)
    pages.add_routes(app)
    app.on_shutdown.append(close_event_streams)
    return app
