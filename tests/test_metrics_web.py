"""GET /metrics, /health and /health/live in the web app (real-parts backend, real server):
open without a login, read-only, 200/503 by readiness, and the rest of the API unchanged."""
from __future__ import annotations

import time

from phaeton.metrics import Metrics
from phaeton.store.sessions import ChargingSession
from tests.test_metrics import FakePlanner, loadpoint, parse, site, value
from tests.web_fixtures import backend, client, login, start_client  # noqa: F401


def attach_metrics(backend, planner=None) -> Metrics:
    """Metrics for the test backend: its real D-Bus service and session store."""
    def names():
        bus = backend.service.bus
        return {"0": bool(bus is not None and bus.connected)}
    metrics = Metrics(clock_time=time.time, charger_names=names, sessions=lambda: backend.store,
                      planner=lambda: planner, tick_s=2.0, replan_s=lambda: 900.0)
    backend.metrics = metrics
    return metrics


async def test_metrics_are_open_in_the_text_format_and_match_the_session_store(client, backend):
    metrics = attach_metrics(backend)
    backend.store.add(ChargingSession(start_s=1000.0, end_s=4600.0, energy_kwh=7.25,
                                      duration_s=3600.0, peak_w=11000.0, cost=2.1,
                                      currency="EUR", solar_share=0.5))
    metrics.observe(site(time.time()))
    response = await client.get("/metrics")          # no login, no password
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    samples, _ = parse(await response.text())
    sessions = await (await client.get("/api/sessions")).json()
    assert value(samples, "phaeton_sessions_finished_energy_kwh", charger="0") == \
        sessions["sessions"][0]["energy_kwh"] == 7.25
    assert value(samples, "phaeton_sessions_finished_cost", charger="0", currency="EUR") == 2.1
    assert value(samples, "phaeton_dbus_name_owned", charger="0") == 1


async def test_health_is_200_when_ready_and_503_naming_the_failed_check(client, backend):
    metrics = attach_metrics(backend, planner=FakePlanner())
    response = await client.get("/health")
    assert response.status == 503
    body = await response.json()
    assert body["live"] is True and body["ready"] is False
    assert "control_loop" in body["failed"] and body["checks"]["dbus"]["ok"] is True

    await metrics.planner().tick()                   # a plan, made now
    metrics.planner().last_plan_finished_s = time.time()
    metrics.observe(site(time.time()))
    response = await client.get("/health")
    assert response.status == 200, await response.text()
    assert (await response.json())["failed"] == []

    metrics.observe(site(time.time(), loadpoints=[loadpoint(connected=False,
                                                            error="Modbus timeout")]))
    response = await client.get("/health")
    assert response.status == 503
    body = await response.json()
    assert body["failed"] == ["chargers"]
    assert "charger '0' not connected (Modbus timeout)" == body["checks"]["chargers"]["detail"]
    samples, _ = parse(await (await client.get("/metrics")).text())
    assert value(samples, "phaeton_charger_connected", charger="0") == 0
    assert (await client.get("/health/live")).status == 200


async def test_nothing_there_writes_and_other_routes_are_unaffected(client, backend):
    attach_metrics(backend)
    for path in ("/metrics", "/health", "/health/live"):
        for method in ("POST", "PUT", "DELETE"):
            response = await client.request(method, path)
            assert response.status == 405, (method, path)
        headers = await login(client)                # not even with a login
        assert (await client.post(path, headers=headers)).status == 405
    for path in ("/api/nothing-here", "/metrics/x", "/healthz", "/api/metrics"):
        response = await client.get(path)
        assert response.status == 404, path
        assert "no such page or API endpoint" in (await response.json())["error"]
    assert (await client.get("/api/status")).status == 200
    assert (await client.get("/")).status == 200
    assert backend.writes == []


async def test_a_backend_without_metrics_says_so(backend):
    made = await start_client(backend)
    try:
        response = await made.get("/metrics")
        assert response.status == 503
        assert "metrics are not available" in (await response.json())["error"]
        assert (await made.get("/health")).status == 503
        assert (await made.get("/health/live")).status == 200
    finally:
        await made.close()
