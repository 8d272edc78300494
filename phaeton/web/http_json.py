"""JSON in and out for the API: error responses, body parsing and the middleware that makes
every failure (unknown route, wrong method, oversized body, a bug) a JSON error, never a crash.
"""
from __future__ import annotations

import json
import logging
from typing import Any, NoReturn

from aiohttp import web

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024


def json_response(data: Any, status: int = 200, **kwargs: Any) -> web.Response:
    """A JSON response (no NaN/Infinity: those are not JSON)."""
    return web.Response(text=json.dumps(data, allow_nan=False, default=str), status=status,
                        content_type="application/json", **kwargs)


class ApiError(web.HTTPException):
    """An HTTP error with a JSON body {"error": message, ...extra}."""

    def __init__(self, status: int, message: str, *, headers: dict | None = None,
                 **extra: Any):
        self.status_code = status
        super().__init__(headers=headers, text=json.dumps({"error": message, **extra}),
                         content_type="application/json")
        self.message = message


def fail(status: int, message: str, **extra: Any) -> NoReturn:
    """Raise an ApiError."""
    raise ApiError(status, message, **extra)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a valid JSON number")


async def read_json_object(request: web.Request) -> dict:
    """The request body as a JSON object, or a 400/413/415 ApiError saying what is wrong."""
    content_type = request.content_type
    if content_type not in ("application/json", "text/plain", "application/octet-stream") \
            and request.can_read_body:
        fail(415, f"send the body as application/json, not {content_type}")
    raw = await request.read()
    if not raw.strip():
        fail(400, "the request body is empty; send a JSON object")
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        fail(400, "the request body is not UTF-8 text")
    except json.JSONDecodeError as exc:
        fail(400, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    except (ValueError, RecursionError) as exc:
        fail(400, f"malformed JSON: {exc}" if isinstance(exc, ValueError)
             else "malformed JSON: nested too deeply")
    if not isinstance(data, dict):
        fail(400, f"the body must be a JSON object {{...}}, got {json_kind(data)}")
    return data


def json_kind(value: Any) -> str:
    """What a JSON value is, in words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    return "an object"


_STATUS_WORDS = {
    404: "no such page or API endpoint: {path}",
    405: "{method} is not allowed on {path}",
    413: "the request body is too large (at most {limit} bytes)",
}


@web.middleware
async def json_errors(request: web.Request, handler) -> web.StreamResponse:
    """Turn any error into a JSON body with the right status; log unexpected exceptions."""
    try:
        return await handler(request)
    except ApiError:
        raise
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        template = _STATUS_WORDS.get(exc.status)
        message = template.format(path=request.path, method=request.method,
                                  limit=MAX_BODY_BYTES) if template else exc.reason
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        raise ApiError(exc.status, message, headers=headers) from None
    except (ConnectionResetError, ConnectionError):
        raise
    except Exception:
        log.exception("web request %s %s failed", request.method, request.path)
        raise ApiError(500, "internal error; see the logs page for details") from None
