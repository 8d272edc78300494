"""Carbon in the web API: kg CO2 per session, in the totals and per month; the status's carbon
part (intensity, today, budget) from the tick's snapshot; the dashboard's banner and the
sessions page's columns are there."""
from __future__ import annotations

import pytest

from phaeton.control.carbon_budget import BudgetStatus
from phaeton.snapshot import CarbonPeriod, CarbonView
from phaeton.store.sessions import ChargingSession
from phaeton.venus.evcharger_service import carbon_dbus_values
from phaeton.web.status import carbon_status
from tests.web_fixtures import backend, client  # noqa: F401

JAN = 1_767_225_600          # 2026-01-01 00:00 UTC


def _add(store, start_s, energy, co2):
    store.add(ChargingSession(start_s=start_s, end_s=start_s + 3600, energy_kwh=energy,
                              duration_s=3600, peak_w=11000, cost=1.0, currency="EUR",
                              solar_share=0.0, co2_kg=co2))


async def test_sessions_carry_co2_with_totals_and_months(client, backend):
    _add(backend.store, JAN + 86400, 10.0, 4.0)
    _add(backend.store, JAN + 2 * 86400, 5.0, None)          # before a source: no co2
    _add(backend.store, JAN + 40 * 86400, 20.0, 2.5)         # February
    data = await (await client.get("/api/sessions")).json()
    assert [s["co2_kg"] for s in data["sessions"]] == [2.5, None, 4.0]
    assert data["totals"]["co2_kg"] == pytest.approx(6.5)
    assert data["totals"]["co2_sessions"] == 2
    months = {m["month"]: m for m in data["months"]}
    assert list(months) == ["2026-02", "2026-01"]
    assert months["2026-01"]["count"] == 2 and months["2026-01"]["co2_kg"] == pytest.approx(4.0)
    assert months["2026-01"]["energy_kwh"] == pytest.approx(15.0)
    assert months["2026-02"]["co2_kg"] == pytest.approx(2.5)
    # a range without any co2: null, not 0
    data = await (await client.get("/api/sessions", params={
        "since_s": JAN + 2 * 86400, "until_s": JAN + 3 * 86400})).json()
    assert data["totals"]["co2_kg"] is None and data["totals"]["co2_sessions"] == 0
    assert data["months"] == [{"month": "2026-01", "count": 1, "energy_kwh": 5.0,
                               "co2_kg": None, "co2_sessions": 0}]


def _view(state=1) -> CarbonView:
    status = BudgetStatus("site", "month", "2026-01", 300.0, 250.0, 83.333, 400.0, 133.3, state)
    return CarbonView(intensity_g_per_kwh=312.0,
                      today=CarbonPeriod("2026-01-20", 3.0, 1.5, 2.0),
                      month=CarbonPeriod("2026-01", 200.0, 50.0, 80.0),
                      year=CarbonPeriod("2026", 200.0, 50.0, 80.0),
                      budgets=(status,), budget_state=state)


def test_the_status_shows_intensity_today_and_the_budget():
    carbon = carbon_status(_view())
    assert carbon["intensity_g_per_kwh"] == 312.0
    assert carbon["today"] == {"key": "2026-01-20", "house_kg": 3.0, "car_kg": 1.5,
                               "total_kg": 4.5, "avoided_kg": 2.0}
    assert carbon["budget"]["state"] == 1 and carbon["budget"]["state_text"] == "warning"
    [budget] = carbon["budget"]["budgets"]
    assert budget["usage_pct"] == 83.3 and budget["forecast_kg"] == 400.0
    assert carbon_status(None) is None


def test_the_dbus_paths_of_the_carbon_view():
    values = carbon_dbus_values(_view(2))
    assert values["/Carbon/Budget/State"] == 2
    assert values["/Carbon/Budget/Site/Month/UsagePercent"] == 83.33
    assert values["/Carbon/Budget/Site/Month/Forecast"] == 400.0
    assert values["/Carbon/Budget/Car/Year/Budget"] is None
    assert values["/Carbon/Today/Emissions"] == 4.5
    assert all(v is None for v in carbon_dbus_values(None).values())


async def test_the_pages_have_the_carbon_parts(client):
    index = await (await client.get("/")).text()
    assert 'id="carbon-banner"' in index and 'id="carbon-intensity"' in index
    sessions = await (await client.get("/sessions")).text()
    assert 'id="months"' in sessions
