"""Headers every response carries: no version in `Server`, and the security headers.

They are added when a response is prepared (aiohttp's on_response_prepare signal), not by a
middleware: a streaming response (/api/events) sends its headers from inside the handler,
before a middleware could see it, and static files and error pages are prepared the same way.
"""
from __future__ import annotations

import aiohttp.web_response
from aiohttp import web

SERVER_NAME = "phaeton"

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'"),
}


async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: the security headers (unless the handler set its own) and
    `Server: phaeton`."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers["Server"] = SERVER_NAME


def hide_server_version() -> None:
    """Make aiohttp name no version in `Server` even where no application is involved (the
    error it answers to a request it cannot parse). aiohttp has no setting for this; its
    default is the module constant read for every response, so set that."""
    aiohttp.web_response.SERVER_SOFTWARE = SERVER_NAME


def add_to(app: web.Application) -> None:
    """Put the headers on every response of `app`."""
    hide_server_version()
    app.on_response_prepare.append(add_headers)
