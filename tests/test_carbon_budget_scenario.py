"""A carbon budget crossed on the simulated GX: a month of the real carbon accounting at high
speed, then phaeton on the scripted GX charging a car until the month's budget passes 80 % and
95 %. Each threshold fires once: one log line, one GX notification (a stand-in
com.victronenergy.platform with /Notifications/Inject, as venus-platform has it), the level on
D-Bus (/Carbon/Budget/State) and in the web status; a restart announces nothing again.

Numbers: a static source of 400 g/kWh, no PV, no battery, time zone UTC. Phase 1 drives the
real `CarbonFeed` (static source, history file, budget state file) with a fake clock from
June 1st 00:00 to June 20th 00:00 with a quiet house of HOUSE_W, which emits 75 % of
BUDGET_KG. Phase 2 starts phaeton at June 20th 00:00 (clock 40 x real time) on the same data directory: the house
(900 W) and the car (16 A, 3 phases) add about 4.8 kg/h, so 80 % is crossed after about 45
simulated seconds and 95 % after about 3 minutes.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from dbus_next.aio import MessageBus

import scripted_gx
from phaeton.carbon_feed import CarbonFeed
from phaeton.clock import ScaledClock
from scripted_gx import NAME, ScriptedGx
from velib.monitor import call_method
from velib.service import VeDbusService
from velib.values import unwrap

pytestmark = pytest.mark.slow

G_PER_KWH = 400.0
BUDGET_KG = 1.2
START = datetime(2025, 6, 1, tzinfo=timezone.utc).timestamp()
PHASE_2 = datetime(2025, 6, 20, tzinfo=timezone.utc).timestamp()
HOUSE_W = 0.75 * BUDGET_KG * 1000 / G_PER_KWH * 1000 / ((PHASE_2 - START) / 3600)   # ~4.93 W


class FakeClock:
    def __init__(self, t: float):
        self.t = t
        self.speed = 1.0

    def time(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


class PlatformService(VeDbusService):
    """com.victronenergy.platform with venus-platform's /Notifications/Inject: a string
    "<type>\\t<device>\\t<description>" (tabs, which velib's own paths refuse as control
    characters), answered as VeQItemInjectNotification does: -1 wrong field count, -2 type not
    a number, -3 type out of range, 0 added."""

    def __init__(self):
        super().__init__("com.victronenergy.platform")
        self.injected: list[str] = []
        self.add_path("/Notifications/Inject", "", writeable=True, kind=str)

    def set_value_from_bus(self, item, variant) -> int:
        if item.path != "/Notifications/Inject":
            return super().set_value_from_bus(item, variant)
        fields = str(unwrap(variant)).split("\t")
        if len(fields) != 3:
            return -1
        if not fields[0].isdigit():
            return -2
        if int(fields[0]) > 2:
            return -3
        self.injected.append(str(unwrap(variant)))
        return 0


def _config(data_dir: str) -> dict:
    return {"data_dir": data_dir, "planner": {"site": {"tz": "UTC"}},
            "carbon": {"source": "static", "static": {"g_per_kwh": G_PER_KWH},
                       "budget": {"site": {"month_kg": BUDGET_KG}}}}


async def _a_quiet_month_so_far(data_dir: str) -> CarbonFeed:
    """Phase 1: the real feed, minute by minute, from June 1st to June 20th."""
    os.makedirs(data_dir, exist_ok=True)
    clock = FakeClock(START)
    feed = CarbonFeed.from_config(_config(data_dir), clock=clock)
    flow = SimpleNamespace(pv_total_w=0.0, house_total_w=HOUSE_W, ev_total_w=0.0,
                           grid_total_w=HOUSE_W, battery_w=0.0)
    t = START
    while t <= PHASE_2:
        clock.t = t
        if int(t - START) % 3600 == 0:
            await feed.refresh_once()     # the static series reaches 48 h ahead of its fetch
        feed.record(t, flow, None)
        t += 60.0
    return feed


async def _dbus_value(bus: MessageBus, path: str):
    reply = await call_method(bus, NAME, path, "com.victronenergy.BusItem", "GetValue")
    return unwrap(reply.body[0])


def _budget(app) -> dict:
    return (app.status().get("carbon") or {}).get("budget") or {}


def _budget_lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "carbon budget" in r.getMessage()
            and r.name == "phaeton.carbon_feed" and r.levelno >= logging.WARNING]


async def test_a_month_s_budget_warns_once_at_80_and_once_at_95_percent(
        private_bus, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    data_dir = str(tmp_path / "data")
    feed = await _a_quiet_month_so_far(data_dir)
    month = feed.period_sums(PHASE_2 - 1, "month")
    assert month.key == "2025-06"
    assert month.total_kg == pytest.approx(0.75 * BUDGET_KG, rel=0.01)
    assert [s.level for s in feed._budget_statuses] == [0]
    assert not _budget_lines(caplog)

    # phase 2: phaeton on the scripted GX, its clock going on from June 20th 00:00
    monkeypatch.setattr(scripted_gx, "ScaledClock",
                        lambda speed: ScaledClock(2 * speed, start=PHASE_2))
    centre = PlatformService()
    async with ScriptedGx(private_bus, str(tmp_path), planner={"site": {"tz": "UTC"}},
                          carbon=_config(data_dir)["carbon"]) as gx:
        await centre.register()
        client = await MessageBus(bus_address=private_bus).connect()
        try:
            app = await gx.start_phaeton()
            await gx.until(lambda: _budget(app).get("state") == 0, 30, "the budget in the status")
            start = _budget(app)["budgets"][0]
            assert start["scope"] == "site" and start["period"] == "month"
            assert start["key"] == "2025-06" and start["budget_kg"] == BUDGET_KG
            assert 74.5 <= start["usage_pct"] < 76.5
            # forecast: linear on the elapsed time, 19 of 30 days -> used x 30 / 19
            assert start["forecast_kg"] == pytest.approx(start["used_kg"] * 30 / 19, rel=0.02)
            assert await _dbus_value(client, "/Carbon/Budget/State") == 0
            assert await _dbus_value(client, "/Carbon/Budget/Site/Month/Budget") == BUDGET_KG
            assert await _dbus_value(client, "/Carbon/Budget/Car/Month/Budget") is None

            gx.alfen.plug_in()
            await gx.until(lambda: gx.alfen.applied_current_a == 16, 30, "charging")
            await gx.until(lambda: _budget(app).get("state") == 1, 600, "the warning")
            warning = _budget(app)["budgets"][0]
            assert 80.0 <= warning["usage_pct"] < 82.0
            assert _budget(app)["state_text"] == "warning"
            assert await _dbus_value(client, "/Carbon/Budget/State") == 1
            usage = await _dbus_value(client, "/Carbon/Budget/Site/Month/UsagePercent")
            assert 80.0 <= usage < 83.0
            lines = _budget_lines(caplog)
            assert [r.levelname for r in lines] == ["WARNING"]
            assert 80 <= int(re.search(r"(\d+) % of the monthly budget",
                                       lines[0].getMessage()).group(1)) <= 81
            await gx.until(lambda: len(centre.injected) == 1, 30, "the GX notification")
            assert centre.injected[0].startswith("0\tphaeton EV charging\tcarbon budget warning")

            await gx.until(lambda: _budget(app).get("state") == 2, 900, "the critical level")
            critical = _budget(app)["budgets"][0]
            assert 95.0 <= critical["usage_pct"] < 97.0
            assert await _dbus_value(client, "/Carbon/Budget/State") == 2
            await gx.until(lambda: len(centre.injected) == 2, 30, "the second notification")
            assert centre.injected[1].startswith("1\tphaeton EV charging\tcarbon budget critical")
            lines = _budget_lines(caplog)
            assert [r.levelname for r in lines] == ["WARNING", "ERROR"]
            assert 95 <= int(re.search(r"(\d+) % of the monthly budget",
                                       lines[1].getMessage()).group(1)) <= 96

            # once: more charging and a restart announce nothing again
            await gx.run_for(60)
            await gx.stop_phaeton()
            app = await gx.start_phaeton()
            await gx.until(lambda: _budget(app).get("state") == 2, 30, "critical after restart")
            await gx.run_for(30)
            assert len(_budget_lines(caplog)) == 2
            assert len(centre.injected) == 2
            assert await _dbus_value(client, "/Carbon/Budget/State") == 2
        finally:
            client.disconnect()
            await centre.close()
