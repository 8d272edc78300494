"""The planner re-plans when the house departs from the forecast, not only on SoC drift."""
from __future__ import annotations

import asyncio

import numpy as np

from phaeton.config import default_config
from phaeton.planner.service import PlannerService
from phaeton.planning.problem_builder import EnergyHistory
from phaeton.planning.tariffs.series import PriceSeries
from phaeton.replay.loop import RecordingWriter, SimClock

T0 = 1_780_000_200 - 1_780_000_200 % 3600


def service_with(history: dict) -> tuple[PlannerService, SimClock]:
    config = default_config()
    config["planner"]["strategy"] = "optimise"
    config["planner"]["replan_s"] = 3600           # hourly: only a departure re-plans sooner
    config["planner"]["battery"].update(capacity_kwh=10)
    config["charger"]["alfen"]["host"] = "192.0.2.1"

    class Prices:
        async def prices(self, now_s):
            n = 4 * 96
            return PriceSeries(T0 + 900 * np.arange(n), np.full(n, 900), np.full(n, 0.3),
                               np.full(n, 0.05), "test", 0.0)

    clock = SimClock(T0 + 5)
    service = PlannerService(
        config, clock, None, lambda path: 50.0 if path.endswith("Soc") else None,
        RecordingWriter("setpoint"), tariff=Prices(),
        history=lambda: EnergyHistory(np.array(history["t"], float),
                                      np.array(history["load"]), np.array(history["pv"])),
        forecaster=lambda _p, starts, _n, _h: (np.full(len(starts), 0.2),
                                               np.zeros(len(starts))))
    return service, clock


def test_a_house_using_far_more_than_forecast_re_plans_within_the_quarter_hour():
    history = {"t": [T0 - 900], "load": [0.2], "pv": [0.0]}
    service, clock = service_with(history)
    assert asyncio.run(service._tick())                 # the first plan
    # the first quarter hour went as forecast: no re-plan
    history["t"].append(T0), history["load"].append(0.25), history["pv"].append(0.0)
    clock.now_s = T0 + 900 + 5
    assert not asyncio.run(service._tick())
    # the next one used 1.2 kWh where the plan had 0.2 (a sauna): re-planned now
    history["t"].append(T0 + 900), history["load"].append(1.2), history["pv"].append(0.0)
    clock.now_s = T0 + 1800 + 5
    assert asyncio.run(service._tick())
    assert "off its forecast" in service._last_trigger
    # checked once per quarter hour, and the new plan starts afresh
    clock.now_s = T0 + 1800 + 10
    assert not asyncio.run(service._tick())
