"""API of self-update (docs/update.md): the state, check now, apply, roll back.

    GET  /api/update           running and available version, channel, last check, progress
    POST /api/update/check     ask the releases index now (changes nothing)
    POST /api/update/apply     {} or {"version": "V"}: start `phaeton update apply` detached
    POST /api/update/rollback  start `phaeton update rollback` detached

The POSTs need the login like every control. apply and rollback restart the service, so they
run as a process of their own that outlives the restart and writes its progress to
`<data_dir>/update-status.json`; GET /api/update shows it (poll it). The work is done by the
service's `updates` object (`phaeton.update.in_service.UpdateService`); a backend without one
says so in GET's `unavailable` and answers the POSTs with 503.
"""
from __future__ import annotations

from aiohttp import web

from phaeton import __version__
from phaeton.web.http_json import fail, json_kind, json_response, read_json_object
from phaeton.web.keys import AUTH, BACKEND, backend_part


async def get_update(request: web.Request) -> web.Response:
    """GET /api/update: the install's versions, the last check and the progress of a run
    (from a service without an updater: the running version and why not)."""
    updates = getattr(request.app[BACKEND], "updates", None)
    if updates is None:
        return json_response({"running": __version__, "busy": None, "progress": {},
                              "unavailable": "self-update is not available from this service"})
    return json_response(updates.state())


async def post_check(request: web.Request) -> web.Response:
    """POST /api/update/check: ask the index; `ok` false with the reason when offline."""
    await request.app[AUTH].require_writer(request)
    return json_response(await backend_part(request, "updates", "self-update is").check())


async def _start(request: web.Request, action: str, version: str | None = None) -> web.Response:
    started = backend_part(request, "updates", "self-update is").start(action, version=version)
    if not started["ok"]:
        fail(409, started["message"])
    return json_response({"ok": True, "pid": started["pid"],
                          "message": f"{action} started; GET /api/update shows its progress "
                                     f"(the service restarts on the way)"}, status=202)


async def post_apply(request: web.Request) -> web.Response:
    """POST /api/update/apply: {} for the channel's newest, {"version": "V"} for that one."""
    await request.app[AUTH].require_writer(request)
    version = None
    if request.can_read_body and (await request.read()).strip():
        body = await read_json_object(request)
        unknown = sorted(set(body) - {"version"})
        if unknown:
            fail(400, f"unknown key(s) {', '.join(map(repr, unknown))}; only 'version'")
        version = body.get("version")
        if version is not None and not isinstance(version, str):
            fail(422, f"version must be text such as \"0.2.0\", got {json_kind(version)}")
    return await _start(request, "apply", version)


async def post_rollback(request: web.Request) -> web.Response:
    """POST /api/update/rollback: back to the previous version."""
    await request.app[AUTH].require_writer(request)
    return await _start(request, "rollback")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/update", get_update)
    app.router.add_post("/api/update/check", post_check)
    app.router.add_post("/api/update/apply", post_apply)
    app.router.add_post("/api/update/rollback", post_rollback)
