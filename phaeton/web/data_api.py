"""API of the stored data: sessions (JSON and CSV), config (+ its schema), schedule, logs, plan.

Config and schedule are read from the config file as it is now and saved onto it, with a
version check (config_file.py). Secrets in the config (passwords, API tokens, the password
hash) are never sent out: they are replaced by SECRET_KEPT, and a config sent back with
SECRET_KEPT keeps the file's secret. The password hash can only be changed through
POST /api/password.
"""
from __future__ import annotations

import csv
import io
import math
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from phaeton.config_schema import CONFIG_SCHEMA
from phaeton.web.config_file import (problems_text, read_file_config, require_same_version,
                                     version_headers)
from phaeton.web.control_api import problems_json, without_non_finite
from phaeton.web.http_json import fail, json_kind, json_response, read_json_object
from phaeton.web.keys import AUTH, BACKEND

SECRET_KEYS = frozenset({"password", "token", "password_hash", "api_key", "secret", "hmac_key",
                         "refresh_token", "client_secret", "bearer_token"})
SECRET_KEPT = "(unchanged)"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MAX_LOG_LINES = 2000
MAX_SESSION_ROWS = 1000


# ---- query parameters --------------------------------------------------------------------

def query_number(request: web.Request, name: str, *, default: float | None = None,
                 minimum: float | None = None, maximum: float | None = None,
                 integer: bool = False) -> float | None:
    """A numeric query parameter, or 400 saying what is wrong with it."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        fail(400, f"query parameter {name} must be {'a whole number' if integer else 'a number'}"
                  f", got {raw[:40]!r}")
    if not math.isfinite(value):
        fail(400, f"query parameter {name} must be finite, got {raw[:40]!r}")
    if minimum is not None and value < minimum or maximum is not None and value > maximum:
        fail(400, f"query parameter {name} must be within {minimum:g}..{maximum:g}, got {raw}")
    return value


def _time_range(request: web.Request) -> tuple[float | None, float | None]:
    since = query_number(request, "since_s", minimum=0, maximum=1e11)
    until = query_number(request, "until_s", minimum=0, maximum=1e11)
    if since is not None and until is not None and until < since:
        fail(400, f"until_s ({until:g}) is before since_s ({since:g})")
    return since, until


# ---- sessions ------------------------------------------------------------------------------

MAX_CHARGER_ID_CHARS = 100


def _charger_filter(request: web.Request) -> str | None:
    """The `charger_id` query parameter: only that charger's sessions (None: every charger's).
    Any id is allowed, also one no longer in the config: its sessions stay in the history."""
    raw = request.query.get("charger_id")
    if raw is None or raw == "":
        return None
    if len(raw) > MAX_CHARGER_ID_CHARS:
        fail(400, f"query parameter charger_id is too long (at most {MAX_CHARGER_ID_CHARS} "
                  f"characters)")
    return raw


async def get_sessions(request: web.Request) -> web.Response:
    """GET /api/sessions?since_s&until_s&limit&offset&charger_id: sessions (newest first) and
    totals; each session names its charger (`charger_id`)."""
    since, until = _time_range(request)
    limit = int(query_number(request, "limit", default=200, minimum=0,
                             maximum=MAX_SESSION_ROWS, integer=True))
    offset = int(query_number(request, "offset", default=0, minimum=0, maximum=1e9,
                              integer=True))
    charger_id = _charger_filter(request)
    store = request.app[BACKEND].sessions()
    rows = store.list_sessions(since, until, limit=limit, offset=offset, loadpoint=charger_id)
    totals = store.totals(since, until, loadpoint=charger_id)
    every = store.list_sessions(since, until, limit=2 ** 62, loadpoint=charger_id)
    months = sessions_per_month(every, _zone_of(request.app[BACKEND]))
    return json_response(without_non_finite({
        "sessions": [{"id": s.id, "charger_id": s.loadpoint, "start_s": s.start_s,
                      "end_s": s.end_s, "energy_kwh": s.energy_kwh, "duration_s": s.duration_s,
                      "peak_w": s.peak_w, "cost": s.cost, "currency": s.currency,
                      "solar_share": s.solar_share, "co2_kg": s.co2_kg,
                      "extra": dict(s.extra)} for s in rows],
        "totals": {"count": totals.count, "energy_kwh": totals.energy_kwh,
                   "solar_energy_kwh": totals.solar_energy_kwh,
                   "duration_s": totals.duration_s, "cost_by_currency": totals.cost_by_currency,
                   **_co2_sums(every)},
        "months": months,
    }))


def _co2_sums(sessions) -> dict[str, Any]:
    """kg CO2 of the sessions that have it (None: none has) and how many have it."""
    known = [s.co2_kg for s in sessions if s.co2_kg is not None]
    return {"co2_kg": round(sum(known), 6) if known else None, "co2_sessions": len(known)}


def _zone_of(backend) -> ZoneInfo:
    """The site's time zone (planner.site.tz), for the months; UTC when unknown."""
    try:
        config = backend.config()
        tz = ((config.get("planner") or {}).get("site") or {}).get("tz") or "UTC"
        return ZoneInfo(str(tz))
    except Exception:      # noqa: BLE001 - a month table in UTC beats no table
        return ZoneInfo("UTC")


def sessions_per_month(sessions, zone: ZoneInfo) -> list[dict[str, Any]]:
    """Pure: count, energy and kg CO2 of the sessions per local month of their start, newest
    first (`co2_kg` None when no session of the month has it)."""
    months: dict[str, list] = {}
    for s in sessions:
        key = datetime.fromtimestamp(s.start_s, zone).strftime("%Y-%m")
        months.setdefault(key, []).append(s)
    return [{"month": key, "count": len(group),
             "energy_kwh": round(sum(s.energy_kwh for s in group), 6), **_co2_sums(group)}
            for key, group in sorted(months.items(), reverse=True)]


async def get_sessions_csv(request: web.Request) -> web.Response:
    """GET /api/sessions.csv?since_s&until_s&charger_id: the sessions as a CSV download, each
    row naming its charger (`charger_id`, the last column)."""
    since, until = _time_range(request)
    charger_id = _charger_filter(request)
    store = request.app[BACKEND].sessions()
    text = with_charger_column(store.export_csv(since, until, loadpoint=charger_id), store,
                               since, until, charger_id)
    return web.Response(text=text, content_type="text/csv", headers={
        "Content-Disposition": 'attachment; filename="phaeton-sessions.csv"'})


def with_charger_column(text: str, store, since: float | None, until: float | None,
                        charger_id: str | None) -> str:
    """The store's CSV with a last column `charger_id` (looked up by the session id), unless
    the store already names the charger (a `loadpoint` or `charger_id` column)."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or "loadpoint" in rows[0] or "charger_id" in rows[0] or "id" not in rows[0]:
        return text
    id_column = rows[0].index("id")
    charger_of = {str(s.id): s.loadpoint for s in store.list_sessions(
        since, until, limit=2 ** 62, loadpoint=charger_id)}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(rows[0] + ["charger_id"])
    for row in rows[1:]:
        writer.writerow(row + [charger_of.get(row[id_column], "") if id_column < len(row)
                               else ""])
    return out.getvalue()


# ---- config --------------------------------------------------------------------------------

def redact(value: Any) -> Any:
    """A copy of `value` with every set secret replaced by SECRET_KEPT."""
    if isinstance(value, dict):
        return {k: (SECRET_KEPT if k in SECRET_KEYS and v not in (None, "") else redact(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def restore_secrets(sent: Any, stored: Any) -> Any:
    """`sent` with SECRET_KEPT put back to the `stored` secret at the same place; the password
    hash is always the stored one. In a list (the cars, the chargers) an entry takes the secrets
    of the stored entry with the same `name` or `id`, else of the one at its place."""
    if isinstance(sent, list):
        stored_list = stored if isinstance(stored, list) else []
        return [restore_secrets(item, _same_entry(item, index, stored_list))
                for index, item in enumerate(sent)]
    if not isinstance(sent, dict):
        return sent
    out = {}
    for key, value in sent.items():
        old = stored.get(key) if isinstance(stored, dict) else None
        if key in SECRET_KEYS and value == SECRET_KEPT:
            out[key] = old
        else:
            out[key] = restore_secrets(value, old)
    web_section = out.get("web")
    if isinstance(web_section, dict) and isinstance(stored, dict) \
            and isinstance(stored.get("web"), dict):
        web_section["password_hash"] = stored["web"].get("password_hash")
    return out


def _same_entry(item: Any, index: int, stored: list) -> Any:
    for key in ("name", "id"):
        if isinstance(item, dict) and key in item:
            return next((old for old in stored
                         if isinstance(old, dict) and old.get(key) == item[key]), None)
    return stored[index] if index < len(stored) else None


async def get_config(request: web.Request) -> web.Response:
    """GET /api/config: the config file's config as it is now (secrets hidden), the file's
    path, and its version (also the ETag), which a save must send back."""
    backend = request.app[BACKEND]
    current = read_file_config(backend)
    return json_response({"path": backend.config_path(), "config": redact(current.config),
                          "secret_placeholder": SECRET_KEPT, "version": current.version,
                          "file_problems": problems_text(current.problems)},
                         headers=version_headers(current.version))


async def get_config_schema(request: web.Request) -> web.Response:
    """GET /api/config/schema: the JSON Schema the settings form is generated from."""
    return json_response(CONFIG_SCHEMA)


async def put_config(request: web.Request) -> web.Response:
    """PUT /api/config {"config": {...}, "version": "..."}: validate, save onto the file as it
    is now (409 when it is no longer `version`) and apply the whole config."""
    await request.app[AUTH].require_writer(request)
    body = await read_json_object(request)
    data = body.get("config")
    if not isinstance(data, dict):
        fail(422, f"the body must be {{\"config\": {{...}}}} with the config as an object, "
                  f"got {json_kind(data)}")
    backend = request.app[BACKEND]
    current = read_file_config(backend)
    require_same_version(request, body, current)
    data = restore_secrets(data, current.config)
    problems = await _saving(backend.apply_config(data))
    if problems:
        fail(422, f"the config has {len(problems)} problem(s); nothing was saved",
             problems=problems_json(problems))
    saved = read_file_config(backend)
    return json_response({"ok": True, "config": redact(saved.config), "version": saved.version},
                         headers=version_headers(saved.version))


async def _saving(saving) -> list:
    """Await a config save; a file system error becomes a 500 that names it."""
    try:
        return await saving
    except OSError as exc:
        fail(500, f"could not write the config file: {exc.strerror or exc}")


# ---- schedule ------------------------------------------------------------------------------

async def get_schedule(request: web.Request) -> web.Response:
    """GET /api/schedule: the Scheduled mode's windows in the config file, and its version."""
    current = read_file_config(request.app[BACKEND])
    return json_response({"windows": _windows_of(current.config), "version": current.version},
                         headers=version_headers(current.version))


async def put_schedule(request: web.Request) -> web.Response:
    """PUT /api/schedule {"windows": [...], "version": "..."}: replace the windows in the config
    file as it is now (409 when it is no longer `version`), validated like the config."""
    await request.app[AUTH].require_writer(request)
    body = await read_json_object(request)
    windows = body.get("windows")
    if not isinstance(windows, list):
        fail(422, f"the body must be {{\"windows\": [...]}} with a list, got {json_kind(windows)}")
    backend = request.app[BACKEND]
    current = read_file_config(backend)
    require_same_version(request, body, current)
    data = current.config
    if not isinstance(data.get("schedule"), dict):
        data["schedule"] = {}
    data["schedule"]["windows"] = windows
    problems = await _saving(backend.apply_config(data))
    if problems:
        fail(422, f"the schedule has {len(problems)} problem(s); nothing was saved",
             problems=problems_json(problems))
    saved = read_file_config(backend)
    return json_response({"ok": True, "windows": _windows_of(saved.config),
                          "version": saved.version}, headers=version_headers(saved.version))


def _windows_of(config: dict) -> list:
    schedule = config.get("schedule")
    return schedule.get("windows", []) if isinstance(schedule, dict) else []


async def get_plan(request: web.Request) -> web.Response:
    """GET /api/plan: the planner's plan, or null when there is none."""
    return json_response({"plan": without_non_finite(request.app[BACKEND].plan())})


async def get_realised(request: web.Request) -> web.Response:
    """GET /api/realised: what the house paid per day against plain self-consumption, or
    null before the first priced quarter hour."""
    return json_response({"realised": without_non_finite(request.app[BACKEND].realised())})


async def get_history(request: web.Request) -> web.Response:
    """GET /api/history?hours=24 (1..48): the site's power flow, a row a minute."""
    hours = query_number(request, "hours", default=24, minimum=1, maximum=48)
    backend = request.app[BACKEND]
    now_s = backend.status().get("time") or time.time()    # the service's clock (the demo's)
    history = await backend.power_history(now_s - hours * 3600)
    return json_response(without_non_finite({**history, "now_s": now_s, "hours": hours}))


# ---- logs ----------------------------------------------------------------------------------

def _log_query(request: web.Request) -> tuple[str, int]:
    level = request.query.get("level", "INFO").upper()
    if level not in LOG_LEVELS:
        fail(400, f"query parameter level must be one of {', '.join(LOG_LEVELS)}, "
                  f"got {request.query.get('level', '')[:40]!r}")
    limit = int(query_number(request, "limit", default=500, minimum=1, maximum=MAX_LOG_LINES,
                             integer=True))
    return level, limit


async def get_logs(request: web.Request) -> web.Response:
    """GET /api/logs?level&limit: the newest log records at or above `level`."""
    level, limit = _log_query(request)
    return json_response({"records": request.app[BACKEND].log_records(level, limit)})


def format_log_line(record: dict) -> str:
    """One record as `2026-01-31T12:00:00Z WARNING logger: message`."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.get("time") or 0))
    return f"{stamp} {record.get('level')} {record.get('logger')}: {record.get('message')}"


async def get_logs_text(request: web.Request) -> web.Response:
    """GET /api/logs.txt?level&limit: the same records as a text download."""
    level, limit = _log_query(request)
    lines = [format_log_line(r) for r in request.app[BACKEND].log_records(level, limit)]
    return web.Response(text="\n".join(lines) + ("\n" if lines else ""),
                        content_type="text/plain", headers={
                            "Content-Disposition": 'attachment; filename="phaeton.log"'})


def add_routes(app: web.Application) -> None:
    """Register the data endpoints."""
    app.router.add_get("/api/sessions", get_sessions)
    app.router.add_get("/api/sessions.csv", get_sessions_csv)
    app.router.add_get("/api/config", get_config)
    app.router.add_put("/api/config", put_config)
    app.router.add_get("/api/config/schema", get_config_schema)
    app.router.add_get("/api/schedule", get_schedule)
    app.router.add_put("/api/schedule", put_schedule)
    app.router.add_get("/api/plan", get_plan)
    app.router.add_get("/api/realised", get_realised)
    app.router.add_get("/api/history", get_history)
    app.router.add_get("/api/logs", get_logs)
    app.router.add_get("/api/logs.txt", get_logs_text)
