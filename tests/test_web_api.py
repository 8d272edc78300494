"""The REST API against a real-parts backend: every endpoint, its errors and the auth rules."""
from __future__ import annotations

import asyncio
import json

import pytest
import yaml

from phaeton.store.sessions import ChargingSession
from tests.web_fixtures import (PASSWORD, backend, client, config_and_version,  # noqa: F401
                                login, start_client)


# ---- reading -----------------------------------------------------------------------------

async def test_status_is_open_and_follows_the_backend(client, backend):
    backend.publish(power={"pv_w": 1234.0}, reason="surplus 1.2 kW")
    response = await client.get("/api/status")
    assert response.status == 200
    data = await response.json()
    assert data["power"]["pv_w"] == 1234.0
    assert data["reason"] == "surplus 1.2 kW"
    assert data["mode"] == 0


async def test_status_with_a_nan_reading_is_still_valid_json(client, backend):
    backend.publish(power={"house_w": float("nan")})
    response = await client.get("/api/status")
    assert json.loads(await response.text())["power"]["house_w"] is None


async def test_unknown_route_is_a_json_404(client):
    response = await client.get("/api/nothing-here")
    assert response.status == 404
    assert "no such page or API endpoint: /api/nothing-here" in (await response.json())["error"]


async def test_wrong_method_is_a_json_405(client):
    response = await client.delete("/api/status")
    assert response.status == 405
    assert "DELETE is not allowed" in (await response.json())["error"]


async def test_openapi_lists_every_api_route(client):
    response = await client.get("/api/openapi.json")
    doc = await response.json()
    assert doc["openapi"].startswith("3.")
    routes = {r.resource.canonical for r in client.app.router.routes()
              if r.resource is not None and r.resource.canonical.startswith("/api/")}
    assert routes <= set(doc["paths"]), routes - set(doc["paths"])


async def test_pages_are_served_with_a_strict_content_policy(client):
    for url in ("/", "/sessions", "/schedule", "/settings", "/logs", "/login"):
        response = await client.get(url)
        assert response.status == 200, url
        assert "text/html" in response.headers["Content-Type"]
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"
    response = await client.get("/static/app.css")
    assert response.status == 200


async def test_every_page_is_whole_with_its_own_title_script_and_the_shared_navigation(client):
    pages = {"/": ("Dashboard", "dashboard.js", 'id="live"'),
             "/sessions": ("Sessions", "sessions.js", "<main>"),
             "/schedule": ("Schedule", "schedule.js", "<main>"),
             "/settings": ("Settings", "settings.js", "<main>"),
             "/logs": ("Logs", "logs.js", 'id="level"'),
             "/login": ("Log in", "login.js", "<form")}
    for url, (title, script, content) in pages.items():
        html = await (await client.get(url)).text()
        assert f"<title>{title} · phaeton</title>" in html, url
        assert f'<script src="/static/{script}" defer></script>' in html, url
        assert '<a data-page href="/settings">Settings</a>' in html, url
        assert content in html and html.rstrip().endswith("</html>"), url
        assert "<!--" not in html, f"{url}: a template marker was left unfilled"


async def test_static_path_traversal_is_refused(client):
    response = await client.get("/static/../app.py")
    assert response.status in (403, 404)
    response = await client.get("/static/%2e%2e/app.py")
    assert response.status in (403, 404)


# ---- writes and auth -----------------------------------------------------------------------

async def test_unauthenticated_write_is_401_and_changes_nothing(client, backend):
    response = await client.post("/api/mode", json={"mode": 1})
    assert response.status == 401
    assert "log in" in (await response.json())["error"]
    assert backend.service["/Mode"] == 0
    assert backend.writes == []


async def test_logged_in_write_without_csrf_token_is_403(client, backend):
    await login(client)
    response = await client.post("/api/mode", json={"mode": 1})
    assert response.status == 403
    assert "X-CSRF-Token" in (await response.json())["error"]
    response = await client.post("/api/mode", json={"mode": 1},
                                 headers={"X-CSRF-Token": "forged"})
    assert response.status == 403
    assert backend.service["/Mode"] == 0


async def test_cross_site_origin_is_refused_even_with_a_session(client, backend):
    headers = await login(client)
    response = await client.post("/api/mode", json={"mode": 1},
                                 headers={**headers, "Origin": "http://evil.example"})
    assert response.status == 403
    assert "cross-site" in (await response.json())["error"]
    assert backend.service["/Mode"] == 0


async def test_mode_write_changes_the_dbus_path_and_the_status(client, backend):
    headers = await login(client)
    response = await client.post("/api/mode", json={"mode": "auto"}, headers=headers)
    assert response.status == 200, await response.text()
    assert backend.service["/Mode"] == 1
    assert (await (await client.get("/api/status")).json())["mode"] == 1


async def test_a_bad_mode_is_refused_with_the_value_and_what_is_allowed(client, backend):
    headers = await login(client)
    response = await client.post("/api/mode", json={"mode": "turbo"}, headers=headers)
    assert response.status == 422
    assert (await response.json())["error"] == (
        "mode must be a number or one of manual, auto, scheduled, got text 'turbo'")
    response = await client.post("/api/mode", json={"mode": 7}, headers=headers)
    assert response.status == 422
    assert (await response.json())["error"] == (
        "mode = 7 refused: allowed is 0 manual, 1 auto, 2 scheduled")
    assert backend.service["/Mode"] == 0


@pytest.mark.parametrize("url, body, path, expected", [
    ("/api/startstop", {"start_stop": "stop"}, "/StartStop", 0),
    ("/api/current", {"current_a": 10.5}, "/SetCurrent", 10.5),
    ("/api/max_current", {"max_current_a": 13}, "/MaxCurrent", 13.0),
    ("/api/phases", {"phases": 1}, "/SetPhases", 1),
    ("/api/autostart", {"auto_start": 0}, "/AutoStart", 0),
    ("/api/vehicle_soc", {"soc_pct": 45}, "/Vehicle/ManualSoc", 45.0),
])
async def test_each_control_writes_its_dbus_path(client, backend, url, body, path, expected):
    headers = await login(client)
    response = await client.post(url, json=body, headers=headers)
    assert response.status == 200, await response.text()
    assert backend.service[path] == expected


async def test_bearer_password_writes_without_a_session(client, backend):
    response = await client.post("/api/current", json={"current_a": 8},
                                 headers={"Authorization": f"Bearer {PASSWORD}"})
    assert response.status == 200
    assert backend.service["/SetCurrent"] == 8.0
    response = await client.post("/api/current", json={"current_a": 9},
                                 headers={"Authorization": "Bearer wrong-password"})
    assert response.status == 401
    assert backend.service["/SetCurrent"] == 8.0


@pytest.mark.parametrize("body, status, words", [
    ({"current_a": 40}, 422, "current_a = 40 refused: allowed is 0 (pause) or 6..16 A"),
    ({"current_a": -1}, 422, "refused"),
    ({"current_a": "ten"}, 422, "current_a must be a number, got text 'ten'"),
    ({"current_a": True}, 422, "got true/false"),
    ({"current_a": None}, 422, "got null"),
    ({"current_a": [6]}, 422, "got a list"),
    ({"amps": 6}, 400, "must have the key 'current_a'"),
    ({"current_a": 6, "extra": 1}, 400, "unknown key(s) 'extra'"),
])
async def test_bad_current_values_get_a_clear_message(client, backend, body, status, words):
    headers = await login(client)
    response = await client.post("/api/current", json=body, headers=headers)
    assert response.status == status
    assert words in (await response.json())["error"]
    assert backend.service["/SetCurrent"] == 16.0


@pytest.mark.parametrize("body, words", [
    ({"soc_pct": 140}, "soc_pct = 140 refused: allowed is 0..100 %"),
    ({"soc_pct": -5}, "refused"),
    ({"soc_pct": "full"}, "soc_pct must be a number, got text 'full'"),
])
async def test_a_typed_in_car_soc_that_is_no_soc_is_refused(client, backend, body, words):
    headers = await login(client)
    response = await client.post("/api/vehicle_soc", json=body, headers=headers)
    assert response.status == 422
    assert words in (await response.json())["error"]
    assert backend.service["/Vehicle/ManualSoc"] is None


async def test_phase_count_two_is_refused_by_the_service(client, backend):
    headers = await login(client)
    response = await client.post("/api/phases", json={"phases": 2}, headers=headers)
    assert response.status == 422
    assert "allowed is 1 or 3" in (await response.json())["error"]
    assert backend.service["/SetPhases"] == 3


@pytest.mark.parametrize("raw, words", [
    (b"{not json", "malformed JSON"),
    (b"", "body is empty"),
    (b"[1, 2]", "must be a JSON object"),
    (b'{"mode": NaN}', "NaN is not a valid JSON number"),
    (b"\xff\xfe", "not UTF-8"),
    (b"[" * 100000, "malformed JSON"),
])
async def test_malformed_bodies_are_400(client, backend, raw, words):
    headers = await login(client)
    response = await client.post("/api/mode", data=raw,
                                 headers={**headers, "Content-Type": "application/json"})
    assert response.status == 400
    assert words in (await response.json())["error"]
    assert backend.service["/Mode"] == 0


async def test_oversized_body_is_413_json(client):
    headers = await login(client)
    response = await client.post("/api/mode", data=b"{" + b" " * 300_000 + b"}",
                                 headers={**headers, "Content-Type": "application/json"})
    assert response.status == 413
    assert "too large" in (await response.json())["error"]


async def test_form_posts_are_refused_as_unsupported(client):
    headers = await login(client)
    response = await client.post("/api/mode", data={"mode": "1"}, headers=headers)
    assert response.status == 415


async def test_without_a_password_every_write_is_refused(backend):
    client = await start_client(backend, password_hash=None)
    try:
        response = await client.post("/api/mode", json={"mode": 1})
        assert response.status == 403
        assert "no web password is set" in (await response.json())["error"]
        response = await client.post("/api/login", json={"password": "anything"})
        assert response.status == 403
        assert (await (await client.get("/api/session")).json())["password_set"] is False
    finally:
        await client.close()
    assert backend.service["/Mode"] == 0


# ---- login ---------------------------------------------------------------------------------

async def test_failed_login_is_refused(client):
    response = await client.post("/api/login", json={"password": "guess"})
    assert response.status == 401
    assert (await response.json())["error"] == "wrong password"
    state = await (await client.get("/api/session")).json()
    assert state == {"logged_in": False, "csrf_token": None, "password_set": True}


async def test_login_sets_an_httponly_strict_cookie(client):
    response = await client.post("/api/login", json={"password": PASSWORD})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    state = await (await client.get("/api/session")).json()
    assert state["logged_in"] is True
    assert state["csrf_token"] == (await response.json())["csrf_token"]


async def test_logout_ends_the_session(client, backend):
    headers = await login(client)
    await client.post("/api/logout", headers=headers)
    response = await client.post("/api/mode", json={"mode": 2}, headers=headers)
    assert response.status == 401
    assert backend.service["/Mode"] == 0


async def test_logins_are_rate_limited(client):
    for _ in range(5):
        response = await client.post("/api/login", json={"password": "guess"})
        assert response.status == 401
    response = await client.post("/api/login", json={"password": PASSWORD})
    assert response.status == 429
    assert int(response.headers["Retry-After"]) > 0
    assert "too many failed logins" in (await response.json())["error"]
    response = await client.post("/api/mode", json={"mode": 1},
                                 headers={"Authorization": f"Bearer {PASSWORD}"})
    assert response.status == 429


async def test_password_change_needs_the_current_one_and_logs_everyone_out(client, backend):
    headers = await login(client)
    response = await client.post("/api/password", headers=headers, json={
        "current_password": "wrong one", "new_password": "another long one"})
    assert response.status == 401
    response = await client.post("/api/password", headers=headers, json={
        "current_password": PASSWORD, "new_password": "short"})
    assert response.status == 422
    assert "at least 8 characters" in (await response.json())["error"]
    response = await client.post("/api/password", headers=headers, json={
        "current_password": PASSWORD, "new_password": "another long one"})
    assert response.status == 200, await response.text()
    stored = yaml.safe_load(backend.config_file.read_text())["web"]["password_hash"]
    assert stored.startswith("scrypt$") and "another long one" not in stored
    assert (await client.post("/api/mode", json={"mode": 1}, headers=headers)).status == 401
    assert (await client.post("/api/login", json={"password": PASSWORD})).status == 401
    assert (await client.post("/api/login", json={"password": "another long one"})).status == 200


# ---- sessions ------------------------------------------------------------------------------

def _add_sessions(store) -> None:
    for day, (energy, share, cost) in enumerate([(10.0, 0.5, 2.5), (20.0, 0.25, 5.0),
                                                 (5.0, 1.0, 0.0)]):
        start = 1_700_000_000 + day * 86400
        store.add(ChargingSession(start_s=start, end_s=start + 3600, energy_kwh=energy,
                                  duration_s=3600, peak_w=11000, cost=cost, currency="EUR",
                                  solar_share=share))


async def test_sessions_with_totals_and_date_filter(client, backend):
    _add_sessions(backend.store)
    data = await (await client.get("/api/sessions")).json()
    assert [s["energy_kwh"] for s in data["sessions"]] == [5.0, 20.0, 10.0]
    assert data["totals"]["count"] == 3
    assert data["totals"]["energy_kwh"] == 35.0
    assert data["totals"]["solar_energy_kwh"] == pytest.approx(15.0)
    assert data["totals"]["cost_by_currency"] == {"EUR": 7.5}
    data = await (await client.get("/api/sessions", params={
        "since_s": 1_700_000_000 + 86400, "until_s": 1_700_000_000 + 2 * 86400})).json()
    assert [s["energy_kwh"] for s in data["sessions"]] == [20.0]
    assert data["totals"]["energy_kwh"] == 20.0


async def test_sessions_csv_download(client, backend):
    _add_sessions(backend.store)
    response = await client.get("/api/sessions.csv", params={"since_s": 1_700_000_000 + 1})
    assert response.status == 200
    assert "attachment" in response.headers["Content-Disposition"]
    lines = (await response.text()).strip().split("\n")
    assert lines[0].startswith("id,start_utc")
    assert len(lines) == 3


@pytest.mark.parametrize("params, words", [
    ({"since_s": "yesterday"}, "since_s must be a number"),
    ({"until_s": "inf"}, "must be finite"),
    ({"limit": "-3"}, "limit must be within 0..1000"),
    ({"limit": "2.5"}, "must be a whole number"),
    ({"since_s": "200", "until_s": "100"}, "is before since_s"),
])
async def test_bad_session_queries_are_400(client, params, words):
    response = await client.get("/api/sessions", params=params)
    assert response.status == 400
    assert words in (await response.json())["error"]


# ---- config and schedule -------------------------------------------------------------------

async def test_config_hides_secrets_and_serves_the_schema(client, backend):
    data = await (await client.get("/api/config")).json()
    assert data["path"] == str(backend.config_file)
    assert data["config"]["site"]["fuse_a"] == 25
    assert data["config"]["web"]["password_hash"] is None  # the test backend's file has none
    schema = await (await client.get("/api/config/schema")).json()
    assert "fuse_a" in schema["properties"]["site"]["properties"]


async def test_config_put_saves_atomically_with_a_backup(client, backend):
    headers = await login(client)
    original = backend.config_file.read_text()
    config, version = await config_and_version(client)
    config["site"]["fuse_a"] = 32
    response = await client.put("/api/config", json={"config": config, "version": version},
                                headers=headers)
    assert response.status == 200, await response.text()
    assert yaml.safe_load(backend.config_file.read_text())["site"]["fuse_a"] == 32
    assert backend.config_file.with_name("config.yaml.bak").read_text() == original
    assert backend.config()["site"]["fuse_a"] == 32


async def test_invalid_config_is_422_with_check_config_messages(client, backend):
    headers = await login(client)
    before = backend.config_file.read_text()
    config, version = await config_and_version(client)
    config["site"]["fuse_a"] = "lots"
    config["charger"]["min_current_a"] = 20  # above max_current_a 16
    response = await client.put("/api/config", json={"config": config, "version": version},
                                headers=headers)
    assert response.status == 422
    data = await response.json()
    assert "2 problem(s)" in data["error"]
    keys = {p["key_path"] for p in data["problems"]}
    assert keys == {"site.fuse_a", "charger.min_current_a"}
    assert any("must be ≤ charger.max_current_a (16), got 20" in p["message"]
               for p in data["problems"])
    assert backend.config_file.read_text() == before


async def test_config_put_cannot_smuggle_a_password_hash(client, backend):
    headers = await login(client)
    config, version = await config_and_version(client)
    config["web"]["password_hash"] = "scrypt$2$1$1$00$00"
    response = await client.put("/api/config", json={"config": config, "version": version},
                                headers=headers)
    assert response.status == 200
    assert "password_hash" not in backend.config_file.read_text()  # nothing else changed


async def test_config_put_unauthenticated_is_401(client, backend):
    before = backend.config_file.read_text()
    response = await client.put("/api/config", json={"config": {}})
    assert response.status == 401
    assert backend.config_file.read_text() == before


async def test_config_put_wrong_shape_is_422(client):
    headers = await login(client)
    response = await client.put("/api/config", json={"config": [1]}, headers=headers)
    assert response.status == 422
    assert "got a list" in (await response.json())["error"]


async def test_schedule_round_trip_and_validation(client, backend):
    headers = await login(client)
    windows = [{"days": ["mon", "tue"], "start": "22:00", "end": "06:00", "current_a": 10}]
    version = (await (await client.get("/api/schedule")).json())["version"]
    response = await client.put("/api/schedule", json={"windows": windows, "version": version},
                                headers=headers)
    assert response.status == 200, await response.text()
    got = await (await client.get("/api/schedule")).json()
    assert got["windows"] == windows
    assert got["version"] == (await response.json())["version"] != version
    response = await client.put("/api/schedule", headers=headers, json={
        "windows": [{"start": "25:00", "end": "06:00"}, {"start": "07:00", "end": "07:00"}],
        "version": got["version"]})
    assert response.status == 422
    problems = (await response.json())["problems"]
    assert [p["key_path"] for p in problems] == ["schedule.windows[0].start",
                                                 "schedule.windows[1].end"]
    assert backend.schedule() == windows
    response = await client.put("/api/schedule", json={"windows": "22-06"}, headers=headers)
    assert response.status == 422


async def test_plan_is_null_until_the_planner_has_one(client, backend):
    assert await (await client.get("/api/plan")).json() == {"plan": None}
    backend.plan_data = {"slots": [{"start_s": 0, "import_eur_per_kwh": float("nan")}],
                         "total_cost_eur": 1.5}
    plan = (await (await client.get("/api/plan")).json())["plan"]
    assert plan == {"slots": [{"start_s": 0, "import_eur_per_kwh": None}], "total_cost_eur": 1.5}


async def test_what_the_house_paid_is_null_until_there_are_priced_quarter_hours(client, backend):
    assert await (await client.get("/api/realised")).json() == {"realised": None}
    backend.realised_data = {"days": [{"date": "2026-12-01", "paid": 1.2,
                                       "self_consumption": 1.5, "saved": 0.3}],
                             "total": {"paid": 1.2, "self_consumption": 1.5, "saved": 0.3},
                             "currency": "EUR"}
    answer = (await (await client.get("/api/realised")).json())["realised"]
    assert answer["total"]["saved"] == 0.3 and answer["days"][0]["date"] == "2026-12-01"


# ---- logs ----------------------------------------------------------------------------------

async def test_logs_filter_by_level_and_download(client):
    import logging
    logging.getLogger("phaeton.test").warning("fuse limit reached on L2")
    logging.getLogger("phaeton.test").info("tick done")
    records = (await (await client.get("/api/logs", params={"level": "WARNING"})).json())
    messages = [r["message"] for r in records["records"]]
    assert "fuse limit reached on L2" in messages and "tick done" not in messages
    response = await client.get("/api/logs.txt", params={"level": "INFO"})
    text = await response.text()
    assert "WARNING phaeton.test: fuse limit reached on L2" in text
    assert "INFO phaeton.test: tick done" in text
    response = await client.get("/api/logs", params={"level": "LOUD"})
    assert response.status == 400
    assert "must be one of DEBUG" in (await response.json())["error"]


# ---- live events ---------------------------------------------------------------------------

async def _next_event(stream) -> tuple[str, dict]:
    event, data = None, None
    while True:
        line = (await asyncio.wait_for(stream.readline(), 5)).decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = json.loads(line[6:])
        elif line == "" and event:
            return event, data


async def test_events_stream_each_published_status(client, backend):
    response = await client.get("/api/events")
    assert response.headers["Content-Type"] == "text/event-stream"
    event, hello = await _next_event(response.content)
    assert event == "hello" and hello["tick_s"] == 2 and hello["stale_after_s"] == 6
    event, status = await _next_event(response.content)
    assert event == "status" and status["power"]["pv_w"] == 4200.0
    backend.publish(power={"pv_w": 777.0})
    event, status = await _next_event(response.content)
    assert status["power"]["pv_w"] == 777.0
    response.close()
    for _ in range(100):
        if backend.subscriber_count == 0:
            break
        await asyncio.sleep(0.01)
        backend.publish()  # a write to a closed client ends its stream
    assert backend.subscriber_count == 0


async def test_too_many_event_streams_is_503(backend):
    client = await start_client(backend, max_sse_clients=1)
    try:
        first = await client.get("/api/events")
        await _next_event(first.content)
        second = await client.get("/api/events")
        assert second.status == 503
        assert "too many live connections" in (await second.json())["error"]
        first.close()
    finally:
        await client.close()


async def test_a_config_file_that_cannot_be_written_is_a_clear_500(client, backend):
    headers = await login(client)
    config, version = await config_and_version(client)
    before = backend.config_file.read_text()
    blocker = backend.config_file.with_name("config.yaml.bak")
    blocker.mkdir()
    (blocker / "keep").write_text("a directory where the backup should go")
    response = await client.put("/api/config", json={"config": config, "version": version},
                                headers=headers)
    assert response.status == 500
    assert "could not write the config file" in (await response.json())["error"]
    assert backend.config_file.read_text() == before


async def test_concurrent_guesses_cannot_slip_past_the_login_limit(client):
    responses = await asyncio.gather(*(client.post("/api/login", json={"password": f"guess{n}"})
                                       for n in range(12)))
    statuses = sorted(r.status for r in responses)
    assert statuses == [401] * 5 + [429] * 7


async def test_successful_logins_do_not_use_up_the_limit(client):
    for _ in range(8):
        assert (await client.post("/api/login", json={"password": PASSWORD})).status == 200
    assert (await client.post("/api/login", json={"password": "guess"})).status == 401


async def test_history_serves_the_window_asked_for_and_refuses_a_bad_one(client, backend):
    now = (await (await client.get("/api/status")).json())["time"]
    backend.history_rows = [{"t": now - 3600 * hours, "pv_w": float(hours), "ev_w": {"0": 1.0}}
                            for hours in (47, 30, 1)]
    data = await (await client.get("/api/history")).json()
    assert data["pv_w"] == [1.0] and data["hours"] == 24 and data["now_s"] == now
    assert data["ev_w"] == {"0": [1.0]} and data["step_s"] == 60
    data = await (await client.get("/api/history", params={"hours": 48})).json()
    assert data["pv_w"] == [47.0, 30.0, 1.0]
    for bad in ("0", "49", "a day"):
        response = await client.get("/api/history", params={"hours": bad})
        assert response.status == 400 and "hours" in (await response.json())["error"]
