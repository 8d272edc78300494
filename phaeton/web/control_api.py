"""API of the live controls: status, the six D-Bus writes, login/logout and the password.

A write goes through `backend.write(path, value)`, the same path as a D-Bus SetValue on the
evcharger service, so it gets the same coercion, range checks and effect.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from aiohttp import web

from phaeton.web.auth import SESSION_COOKIE, SESSION_LIFETIME_S, refuse_cross_site
from phaeton.web.backend import WRITE_ACCEPTED, WRITE_REFUSED
from phaeton.web.client_address import client_of
from phaeton.web.config_file import read_file_config
from phaeton.web.http_json import fail, json_kind, json_response, read_json_object
from phaeton.web.keys import AUTH, BACKEND
from phaeton.web.passwords import hash_password

MODE_NAMES = {"manual": 0, "auto": 1, "scheduled": 2}
START_STOP_NAMES = {"stop": 0, "start": 1}


@dataclass(frozen=True)
class Control:
    """One writeable control: URL name, JSON key, D-Bus path, allowed words, range text."""

    name: str
    key: str
    path: str
    words: dict[str, int]
    allowed: Callable[[dict], str]


def _fixed(text: str) -> Callable[[dict], str]:
    return lambda _status: text


def _amps(low_key: str | None, high_key: str) -> Callable[[dict], str]:
    def describe(status: dict) -> str:
        low = status.get(low_key) if low_key else 0
        high = status.get(high_key)
        if low is None or high is None:
            return "the charger's current range"
        return f"{low:g}..{high:g} A"
    return describe


CONTROLS = (
    Control("mode", "mode", "/Mode", MODE_NAMES, _fixed("0 manual, 1 auto, 2 scheduled")),
    Control("startstop", "start_stop", "/StartStop", START_STOP_NAMES, _fixed("0 stop, 1 start")),
    Control("current", "current_a", "/SetCurrent", {}, _amps(None, "charger_max_current_a")),
    Control("max_current", "max_current_a", "/MaxCurrent", {},
            _amps("min_current_a", "charger_max_current_a")),
    Control("phases", "phases", "/SetPhases", {}, _fixed("1 or 3")),
    Control("autostart", "auto_start", "/AutoStart", {}, _fixed("0 off, 1 on")),
)


async def get_status(request: web.Request) -> web.Response:
    """GET /api/status: the latest status snapshot."""
    return json_response(without_non_finite(request.app[BACKEND].status()))


def make_write_handler(control: Control):
    """The POST handler of one control: {"<key>": value} -> backend.write(path, value)."""

    async def handle(request: web.Request) -> web.Response:
        await request.app[AUTH].require_writer(request)
        body = await read_json_object(request)
        if control.key not in body:
            fail(400, f"the body must have the key {control.key!r}, e.g. "
                      f"{{\"{control.key}\": 1}}")
        unknown = sorted(set(body) - {control.key})
        if unknown:
            fail(400, f"unknown key(s) {', '.join(map(repr, unknown))}; only {control.key!r}")
        value = body[control.key]
        if isinstance(value, str) and value.strip().lower() in control.words:
            value = control.words[value.strip().lower()]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            words = f" or one of {', '.join(control.words)}" if control.words else ""
            fail(422, f"{control.key} must be a number{words}, got {json_kind(value)}")
        backend = request.app[BACKEND]
        code = await backend.write(control.path, value)
        if code == WRITE_ACCEPTED:
            return json_response({"ok": True, "path": control.path, "value": value})
        allowed = control.allowed(backend.status())
        if code == WRITE_REFUSED:
            fail(422, f"{control.key} = {value:g} refused: allowed is {allowed}",
                 path=control.path, code=code)
        fail(422, f"{control.key} = {value:g} is not accepted by {control.path} "
                  f"(wrong type or not writeable); allowed is {allowed}",
             path=control.path, code=code)

    handle.__name__ = f"post_{control.name}"
    return handle


async def get_session(request: web.Request) -> web.Response:
    """GET /api/session: is this browser logged in, its CSRF token, is a password set."""
    auth = request.app[AUTH]
    session = auth.session_of(request)
    return json_response({"logged_in": session is not None,
                          "csrf_token": session.csrf_token if session else None,
                          "password_set": auth.password_set})


async def post_login(request: web.Request) -> web.Response:
    """POST /api/login {"password"}: start a login session (cookie) and return its CSRF token."""
    refuse_cross_site(request)
    auth = request.app[AUTH]
    body = await read_json_object(request)
    await auth.check_password(client_of(request), body.get("password"))
    token, session = auth.create_session()
    response = json_response({"ok": True, "csrf_token": session.csrf_token})
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Strict", path="/",
                        max_age=SESSION_LIFETIME_S)
    return response


async def post_logout(request: web.Request) -> web.Response:
    """POST /api/logout: end this browser's login session."""
    refuse_cross_site(request)
    request.app[AUTH].end_session(request)
    response = json_response({"ok": True})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def post_password(request: web.Request) -> web.Response:
    """POST /api/password {"current_password", "new_password"}: change the web password.

    Saved as web.password_hash in the config; every browser is logged out afterwards."""
    auth = request.app[AUTH]
    await auth.require_writer(request)
    body = await read_json_object(request)
    await auth.check_password(client_of(request), body.get("current_password"))
    new = body.get("new_password")
    if not isinstance(new, str):
        fail(422, f"new_password must be text, got {json_kind(new)}")
    try:
        new_hash = hash_password(new)
    except ValueError as exc:
        fail(422, str(exc))
    backend = request.app[BACKEND]
    data = read_file_config(backend).config  # the file as it is now, hand edits included
    data.setdefault("web", {})["password_hash"] = new_hash
    problems = await backend.apply_config(data)
    if problems:
        fail(422, "the password could not be saved", problems=problems_json(problems))
    auth.password_hash = new_hash
    auth.end_all_sessions()
    response = json_response({"ok": True, "message": "password changed; log in again"})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


def problems_json(problems: list) -> list[dict]:
    """ConfigProblems as JSON: key_path, line, message and the check-config style text."""
    return [{"key_path": p.key_path, "line": p.line, "message": p.message,
             "text": f"{p.key_path}: {p.message}" if p.key_path else p.message}
            for p in problems]


def without_non_finite(value: Any) -> Any:
    """`value` with NaN/Infinity replaced by None (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: without_non_finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_non_finite(v) for v in value]
    return value


def add_routes(app: web.Application) -> None:
    """Register the control endpoints."""
    app.router.add_get("/api/status", get_status)
    for control in CONTROLS:
        app.router.add_post(f"/api/{control.name}", make_write_handler(control))
    app.router.add_get("/api/session", get_session)
    app.router.add_post("/api/login", post_login)
    app.router.add_post("/api/logout", post_logout)
    app.router.add_post("/api/password", post_password)
