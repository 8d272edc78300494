"""API of the live controls: status, the D-Bus writes (the six of a Victron charger and the
car's SoC entered by hand), login/logout and the password.

A write goes through `backend.write(path, value, charger_id)`, the same path as a D-Bus
SetValue on that charger's evcharger service, so it gets the same coercion, range checks and
effect. `/api/<control>` acts on the first charger (the single-charger API);
`/api/chargers/<id>/<control>` on the charger with that id (404 for an unknown id).
"""
from __future__ import annotations

import asyncio
import logging
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

log = logging.getLogger(__name__)

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


def _amps(low_key: str, high_key: str) -> Callable[[dict], str]:
    def describe(status: dict) -> str:
        low, high = status.get(low_key), status.get(high_key)
        if low is None or high is None:
            return "the charger's current range"
        return f"{low:g}..{high:g} A"
    return describe


def _charge_current(status: dict) -> str:
    """/SetCurrent: 0 pauses; below the charger's minimum a car does not charge."""
    low, high = status.get("min_current_a"), status.get("charger_max_current_a")
    if low is None or high is None:
        return "0 (pause) or the charger's current range"
    return f"0 (pause) or {low:g}..{high:g} A"


CONTROLS = (
    Control("mode", "mode", "/Mode", MODE_NAMES, _fixed("0 manual, 1 auto, 2 scheduled")),
    Control("startstop", "start_stop", "/StartStop", START_STOP_NAMES, _fixed("0 stop, 1 start")),
    Control("current", "current_a", "/SetCurrent", {}, _charge_current),
    Control("max_current", "max_current_a", "/MaxCurrent", {},
            _amps("min_current_a", "charger_max_current_a")),
    Control("phases", "phases", "/SetPhases", {}, _fixed("1 or 3")),
    Control("autostart", "auto_start", "/AutoStart", {}, _fixed("0 off, 1 on")),
    Control("vehicle_soc", "soc_pct", "/Vehicle/ManualSoc", {},
            _fixed("0..100 %, with a car at the charger (docs/vehicles.md)")),
)


async def get_status(request: web.Request) -> web.Response:
    """GET /api/status: the latest status snapshot."""
    return json_response(without_non_finite(request.app[BACKEND].status()))


def known_charger(request: web.Request) -> str:
    """The `charger_id` of the URL, or a 404 naming the chargers there are."""
    charger_id = request.match_info["charger_id"]
    ids = request.app[BACKEND].charger_ids()
    if charger_id not in ids:
        fail(404, f"no charger with id {charger_id[:100]!r}; the chargers are "
                  f"{', '.join(map(repr, ids))}", charger_ids=ids)
    return charger_id


def charger_status_of(status: dict, charger_id: str) -> dict | None:
    """The entry of `charger_id` in the status's "chargers" (None when it has none)."""
    for entry in status.get("chargers") or ():
        if isinstance(entry, dict) and entry.get("id") == charger_id:
            return entry
    return None


async def get_chargers(request: web.Request) -> web.Response:
    """GET /api/chargers: the chargers' ids (config order) and each one's status."""
    backend = request.app[BACKEND]
    status = backend.status()
    return json_response(without_non_finite({"ids": backend.charger_ids(),
                                             "chargers": status.get("chargers") or [],
                                             "time": status.get("time")}))


async def get_charger_status(request: web.Request) -> web.Response:
    """GET /api/chargers/{charger_id}/status: one charger's part of the status."""
    charger_id = known_charger(request)
    entry = charger_status_of(request.app[BACKEND].status(), charger_id)
    if entry is None:
        fail(503, f"charger {charger_id!r} has no status yet; try again after the next tick")
    return json_response(without_non_finite(entry))


def make_write_handler(control: Control, *, by_id: bool = False):
    """The POST handler of one control: {"<key>": value} -> backend.write(path, value).

    `by_id`: the handler of /api/chargers/{charger_id}/<control>, for that charger (404 for an
    unknown id, checked after the login and before the body); else the first charger's."""

    async def handle(request: web.Request) -> web.Response:
        await request.app[AUTH].require_writer(request)
        charger_id = known_charger(request) if by_id else None
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
            fail(422, f"{control.key} must be a number{words}, got {json_kind(value)}"
                      f"{_echo(value)}")
        backend = request.app[BACKEND]
        if charger_id is None:
            code = await backend.write(control.path, value)
        else:
            try:
                code = await backend.write(control.path, value, charger_id)
            except KeyError:  # the charger went away since the check (a config change)
                fail(404, f"no charger with id {charger_id[:100]!r}",
                     charger_ids=backend.charger_ids())
        if code == WRITE_ACCEPTED:
            done = {"ok": True, "path": control.path, "value": value}
            return json_response(done if charger_id is None
                                 else {**done, "charger_id": charger_id})
        status = backend.status()
        if charger_id is not None:
            status = charger_status_of(status, charger_id) or {}
        allowed = control.allowed(status)
        where = {} if charger_id is None else {"charger_id": charger_id}
        if code == WRITE_REFUSED:
            fail(422, f"{control.key} = {value:g} refused: allowed is {allowed}",
                 path=control.path, code=code, **where)
        fail(422, f"{control.key} = {value:g} is not accepted by {control.path} "
                  f"(wrong type or not writeable); allowed is {allowed}",
             path=control.path, code=code, **where)

    handle.__name__ = f"post_{'charger_' if by_id else ''}{control.name}"
    return handle


def _echo(value: Any) -> str:
    """The refused text, quoted and cut short (other kinds say enough by their kind)."""
    return f" {value[:40]!r}" if isinstance(value, str) else ""


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

    Saved as web.password_hash in the config (comments and the rest of the file kept); every
    browser is logged out afterwards. While the config has no password at all, the first one
    is set with {"new_password"} alone (as evcc does; install.sh sets one at install)."""
    auth = request.app[AUTH]
    if auth.first_password_allowed and not auth.password_set:
        return await _first_password(request, auth)
    await auth.require_writer(request)
    body = await read_json_object(request)
    await auth.check_password(client_of(request), body.get("current_password"))
    new_hash = await _new_hash(body)
    await _save_hash(request, new_hash)
    auth.end_all_sessions()
    response = json_response({"ok": True, "message": "password changed; log in again"})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def _first_password(request: web.Request, auth) -> web.Response:
    refuse_cross_site(request)
    body = await read_json_object(request)
    unknown = sorted(set(body) - {"new_password", "current_password"})
    if unknown:
        fail(400, f"unknown key(s) {', '.join(map(repr, unknown))}; only 'new_password'")
    new_hash = await _new_hash(body)
    async with auth.first_password_lock:
        if auth.password_set:         # another browser was first
            fail(409, "a web password was set meanwhile; log in with it")
        await _save_hash(request, new_hash)
        auth.first_password_allowed = False
    log.warning("the first web password was set from the web UI by %s", client_of(request))
    return json_response({"ok": True, "message": "password set; log in with it"})


async def _new_hash(body: dict) -> str:
    """The hash of the body's new_password, made in a worker thread (scrypt takes 16 MB and a
    good part of a second on a GX: the control tick must not wait for it)."""
    new = body.get("new_password")
    if not isinstance(new, str):
        fail(422, f"new_password must be text, got {json_kind(new)}")
    try:
        return await asyncio.to_thread(hash_password, new)
    except ValueError as exc:
        fail(422, str(exc))


async def _save_hash(request: web.Request, new_hash: str) -> None:
    """web.password_hash into the config file as it is now (hand edits included)."""
    backend = request.app[BACKEND]
    data = read_file_config(backend).config
    data.setdefault("web", {})["password_hash"] = new_hash
    problems = await backend.apply_config(data)
    if problems:
        fail(422, "the password could not be saved", problems=problems_json(problems))
    request.app[AUTH].password_hash = new_hash


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
    app.router.add_get("/api/chargers", get_chargers)
    app.router.add_get("/api/chargers/{charger_id}/status", get_charger_status)
    for control in CONTROLS:
        app.router.add_post(f"/api/chargers/{{charger_id}}/{control.name}",
                            make_write_handler(control, by_id=True))
    app.router.add_get("/api/session", get_session)
    app.router.add_post("/api/login", post_login)
    app.router.add_post("/api/logout", post_logout)
    app.router.add_post("/api/password", post_password)
