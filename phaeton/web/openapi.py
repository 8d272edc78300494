"""The OpenAPI 3.1 document of the REST API (served at /api/openapi.json)."""
from __future__ import annotations

from typing import Any

from phaeton.web.control_api import CONTROLS

_ERROR = {"description": "error", "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/Error"}}}}
_WRITE_ERRORS = {
    "400": {**_ERROR, "description": "malformed JSON or missing key"},
    "401": {**_ERROR, "description": "not logged in / wrong password"},
    "403": {**_ERROR, "description": "CSRF token missing or wrong, cross-site, or no password "
                                     "set"},
    "422": {**_ERROR, "description": "wrong type, out of range or invalid config"},
    "429": {**_ERROR, "description": "too many failed logins"},
}
_SAVE_ERRORS = {
    **_WRITE_ERRORS,
    "409": {**_ERROR, "description": "the config file changed since `version` was read; "
                                     "nothing saved (the body has the file's new `version`)"},
    "428": {**_ERROR, "description": "no `version` (or If-Match) sent"},
}
_VERSION = {"type": "string", "description": "`version` from the GET of the same resource "
                                              "(or send it as If-Match)"}
_SECURITY = [{"session": [], "csrf": []}, {"bearer": []}]


def _ok(description: str, schema: dict | None = None, media: str = "application/json") -> dict:
    content = {media: {"schema": schema or {"type": "object"}}}
    return {"200": {"description": description, "content": content}}


def _json_body(schema: dict) -> dict:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _time_params() -> list[dict]:
    return [{"name": name, "in": "query", "required": False,
             "schema": {"type": "number", "minimum": 0},
             "description": f"sessions started {'at or after' if name == 'since_s' else 'before'}"
                            " this unix time"} for name in ("since_s", "until_s")]


_CHARGER_ID = {"name": "charger_id", "in": "path", "required": True,
               "schema": {"type": "string"},
               "description": "a charger's id, one of GET /api/chargers `ids`"}
_CHARGER_FILTER = {"name": "charger_id", "in": "query", "required": False,
                   "schema": {"type": "string", "maxLength": 100},
                   "description": "only this charger's sessions (default: every charger's)"}
_UNKNOWN_CHARGER = {**_ERROR, "description": "no charger with this id (the body lists the "
                                             "`charger_ids`)"}


def _log_params() -> list[dict]:
    return [{"name": "level", "in": "query", "schema": {
                "enum": ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], "default": "INFO"}},
            {"name": "limit", "in": "query", "schema": {
                "type": "integer", "minimum": 1, "maximum": 2000, "default": 500}}]


def build_openapi() -> dict[str, Any]:
    """The document, generated from the same tables the routes are made from."""
    paths: dict[str, Any] = {
        "/api/status": {"get": {"summary": "Live status snapshot (refreshed every tick): the "
                                           "first charger's keys, every charger under "
                                           "`chargers`",
                                "responses": _ok("status")}},
        "/api/events": {"get": {"summary": "Server-Sent Events: `hello` then one `status` "
                                           "per tick", "responses": {**_ok(
                                    "event stream", {"type": "string"}, "text/event-stream"),
                                    "429": {**_ERROR, "description": "this address holds its "
                                                                     "most streams"},
                                    "503": {**_ERROR, "description": "no stream left"}}}},
        "/api/session": {"get": {"summary": "Login state and CSRF token of this browser",
                                 "responses": _ok("login state")}},
        "/api/login": {"post": {"summary": "Log in; sets the session cookie, returns the CSRF "
                                           "token", "requestBody": _json_body({
                                    "type": "object", "required": ["password"],
                                    "properties": {"password": {"type": "string"}}}),
                                "responses": {**_ok("logged in"), **_WRITE_ERRORS}}},
        "/api/logout": {"post": {"summary": "Log out", "responses": _ok("logged out")}},
        "/api/password": {"post": {"summary": "Change the web password", "security": _SECURITY,
                                   "requestBody": _json_body({
                                       "type": "object",
                                       "required": ["current_password", "new_password"],
                                       "properties": {"current_password": {"type": "string"},
                                                      "new_password": {"type": "string",
                                                                       "minLength": 8}}}),
                                   "responses": {**_ok("changed"), **_WRITE_ERRORS}}},
        "/api/chargers": {"get": {"summary": "The chargers' `ids` (config order; the first is "
                                             "the one of the single-charger endpoints) and "
                                             "each one's status (`chargers`)",
                                  "responses": _ok("chargers")}},
        "/api/chargers/{charger_id}/status": {"get": {
            "summary": "One charger's status (its entry of /api/status `chargers`)",
            "parameters": [_CHARGER_ID],
            "responses": {**_ok("status"), "404": _UNKNOWN_CHARGER,
                          "503": {**_ERROR, "description": "a charger just added has no "
                                                          "status yet"}}}},
        "/api/sessions": {"get": {"summary": "Charging sessions, newest first, with totals; "
                                             "each names its charger (`charger_id`)",
                                  "parameters": _time_params() + [_CHARGER_FILTER] + [
                                      {"name": "limit", "in": "query", "schema": {
                                          "type": "integer", "minimum": 0, "maximum": 1000,
                                          "default": 200}},
                                      {"name": "offset", "in": "query", "schema": {
                                          "type": "integer", "minimum": 0, "default": 0}}],
                                  "responses": {**_ok("sessions"), "400": _ERROR}}},
        "/api/sessions.csv": {"get": {"summary": "Sessions as CSV (last column: charger_id)",
                                      "parameters": _time_params() + [_CHARGER_FILTER],
                                      "responses": {**_ok("CSV", {"type": "string"},
                                                          "text/csv"), "400": _ERROR}}},
        "/api/config": {
            "get": {"summary": "The config file's config (secrets shown as '(unchanged)') "
                               "and its `version` (also the ETag)",
                    "responses": _ok("config")},
            "put": {"summary": "Validate, save onto the file as it is now (with .bak) and "
                               "apply the whole config",
                    "security": _SECURITY,
                    "requestBody": _json_body({"type": "object", "required": ["config"],
                                               "properties": {"config": {
                                                   "$ref": "/api/config/schema"},
                                                   "version": _VERSION}}),
                    "responses": {**_ok("saved"), **_SAVE_ERRORS}}},
        "/api/config/schema": {"get": {"summary": "JSON Schema of the config",
                                       "responses": _ok("schema")}},
        "/api/schedule": {
            "get": {"summary": "Scheduled mode windows in the config file, and its `version`",
                    "responses": _ok("windows")},
            "put": {"summary": "Replace the windows", "security": _SECURITY,
                    "requestBody": _json_body({"type": "object", "required": ["windows"],
                                               "properties": {"windows": {"type": "array"},
                                                              "version": _VERSION}}),
                    "responses": {**_ok("saved"), **_SAVE_ERRORS}}},
        "/api/plan": {"get": {"summary": "The planner's plan or null", "responses": _ok("plan")}},
        "/api/realised": {"get": {
            "summary": "What the house paid per day since prices were known, against plain "
                       "self-consumption on the same load and PV, or null",
            "responses": _ok("days and total")}},
        "/api/history": {"get": {
            "summary": "The site's power flow, a row a minute (time_s, pv_w, house_w, battery_w, "
                       "grid_w, soc_pct, ev_w per charger)",
            "parameters": [{"name": "hours", "in": "query", "schema": {
                "type": "number", "minimum": 1, "maximum": 48, "default": 24}}],
            "responses": {**_ok("time_s"), "400": _ERROR}}},
        "/api/logs": {"get": {"summary": "Recent log records", "parameters": _log_params(),
                              "responses": {**_ok("records"), "400": _ERROR}}},
        "/api/logs.txt": {"get": {"summary": "Recent log lines as a text download",
                                  "parameters": _log_params(),
                                  "responses": {**_ok("log", {"type": "string"}, "text/plain"),
                                                "400": _ERROR}}},
        "/api/openapi.json": {"get": {"summary": "This document", "responses": _ok("OpenAPI")}},
        "/api/update": {"get": {"summary": "Self-update (docs/update.md): running, current, "
                                           "previous and available version, channel, last "
                                           "check and the progress of an apply or rollback",
                                "responses": _ok("update state")}},
        "/api/update/check": {"post": {"summary": "Ask the releases index now (changes "
                                                  "nothing); `ok` false with the reason when "
                                                  "offline", "security": _SECURITY,
                                       "responses": {**_ok("check result"), **_WRITE_ERRORS}}},
        "/api/update/apply": {"post": {
            "summary": "Start `phaeton update apply` detached (it restarts the service; poll "
                       "GET /api/update); {} for the channel's newest or {\"version\": \"V\"}",
            "security": _SECURITY,
            "requestBody": {"required": False, "content": {"application/json": {"schema": {
                "type": "object", "properties": {"version": {"type": "string"}}}}}},
            "responses": {"202": {"description": "started"}, **_WRITE_ERRORS,
                          "409": {**_ERROR, "description": "an update runs already, or this "
                                                           "install cannot update itself"}}}},
        "/api/update/rollback": {"post": {
            "summary": "Start `phaeton update rollback` detached (back to the previous "
                       "version, with the health check)", "security": _SECURITY,
            "responses": {"202": {"description": "started"}, **_WRITE_ERRORS,
                          "409": {**_ERROR, "description": "an update runs already, or there "
                                                           "is nothing to roll back to"}}}},
    }
    for control in CONTROLS:
        value_schema: dict[str, Any] = {"type": "number"}
        if control.words:
            value_schema = {"oneOf": [{"type": "number"}, {"enum": list(control.words)}]}
        body = _json_body({"type": "object", "required": [control.key],
                           "additionalProperties": False,
                           "properties": {control.key: value_schema}})
        paths[f"/api/{control.name}"] = {"post": {
            "summary": f"Write {control.path} of the first charger (same as a D-Bus SetValue); "
                       f"allowed: {control.allowed({})}",
            "security": _SECURITY, "requestBody": body,
            "responses": {**_ok("accepted"), **_WRITE_ERRORS}}}
        paths[f"/api/chargers/{{charger_id}}/{control.name}"] = {"post": {
            "summary": f"Write {control.path} of one charger (same as a D-Bus SetValue on its "
                       f"service); allowed: {control.allowed({})}",
            "security": _SECURITY, "parameters": [_CHARGER_ID], "requestBody": body,
            "responses": {**_ok("accepted"), **_WRITE_ERRORS, "404": _UNKNOWN_CHARGER}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "phaeton web API", "version": "1",
                 "description": "Read endpoints are open; writes need a login session plus the "
                                "X-CSRF-Token header, or Authorization: Bearer <password>."},
        "paths": paths,
        "components": {
            "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {
                "error": {"type": "string"}, "problems": {"type": "array"}}}},
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "phaeton_session"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"},
                "bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
