"""Do no harm: what the battery does for the grid in each slot, how wrong the forecasts are on
this house, and the planner leaving the battery to ESS where its trade would not pay."""
from __future__ import annotations

import asyncio
from dataclasses import replace

import numpy as np
import pytest

from phaeton.config import default_config
from phaeton.planner.service import PlannerService
from phaeton.planning.baseline import self_consumption
from phaeton.planning.forecast_error import DEFAULT_RELATIVE_ERROR, ForecastErrors
from phaeton.planning.harm_guard import decide
from phaeton.planning.model import BatterySpec, PlanProblem
from phaeton.planning.optimizer import plan as optimise
from phaeton.planning.slot_roles import FOLLOWS_HOUSE, FROM_GRID, HOLDS, TO_GRID, slot_role
from phaeton.planning.tariffs.series import PriceSeries
from phaeton.replay.loop import RecordingWriter, SimClock

T0 = 1_780_000_200


def problem(buy, *, load=0.3, pv=0.0, sell=None) -> PlanProblem:
    buy = np.asarray(buy, dtype=float)
    n = buy.size
    return PlanProblem(
        slot_start_s=T0 + 900.0 * np.arange(n), import_price_eur_per_kwh=buy,
        export_price_eur_per_kwh=np.full(n, 0.05) if sell is None else np.asarray(sell, float),
        load_kwh=np.full(n, load), pv_kwh=np.full(n, pv),
        battery=BatterySpec.with_round_trip(0.9, capacity_kwh=10, soc_now=0.2, soc_min=0.1,
                                            max_charge_kw=5, max_discharge_kw=5,
                                            degradation_eur_per_kwh=0.02))


def test_each_slot_says_what_the_battery_does_for_the_grid():
    plan = optimise(problem([0.10] * 8 + [0.60] * 8))
    roles = [slot_role(plan, t) for t in range(plan.slot_count)]
    assert FROM_GRID in roles[:8]                # cheap: charge from the grid
    assert set(roles[:8]) <= {FROM_GRID, FOLLOWS_HOUSE}   # (or rest, the house on the grid)
    assert roles[-1] == FOLLOWS_HOUSE            # dear: run the house from the battery
    sunny = optimise(problem([0.30] * 8, load=0.1, pv=1.0))
    assert slot_role(sunny, 0) == FOLLOWS_HOUSE  # storing the surplus
    rest = replace(sunny, battery_charge_kwh=np.zeros(8), battery_discharge_kwh=np.zeros(8),
                   grid_import_kwh=np.full(8, 0.3), grid_export_kwh=np.zeros(8))
    assert slot_role(rest, 0) == FOLLOWS_HOUSE   # the house on the grid, the battery rests
    charging = replace(rest, ev_kwh=np.full(8, 2.0), grid_import_kwh=np.full(8, 2.3))
    assert slot_role(charging, 0) == HOLDS       # the car charges: not off the home battery
    sell = replace(rest, battery_discharge_kwh=np.full(8, 1.0), grid_import_kwh=np.zeros(8),
                   grid_export_kwh=np.full(8, 0.7))
    assert slot_role(sell, 0) == TO_GRID


def test_a_trade_that_pays_little_against_this_house_s_error_is_left_to_ess():
    # charge at 0.25, use at 0.33: after losses and wear a few cents over 10 kWh
    small = problem([0.25] * 8 + [0.33] * 24)
    plan = optimise(small)
    reference = self_consumption(small)
    assert any(slot_role(plan, t) == FROM_GRID for t in range(plan.slot_count))
    gain = reference.cost_eur - plan.cost_eur
    assert 0 < gain < 0.5
    decision = decide(small, plan, reference, relative_error=0.4)
    assert not decision.steer
    assert decision.gain_eur == pytest.approx(gain)
    assert "left to ESS self-consumption" in decision.reason
    assert "forecast error (40 %)" in decision.reason
    # a forecast that is right (almost) every time: the same trade steers
    assert decide(small, plan, reference, relative_error=0.0).steer


def test_a_trade_that_pays_well_steers_and_no_trade_always_steers():
    big = problem([0.05] * 8 + [0.60] * 24)
    plan = optimise(big)
    decision = decide(big, plan, self_consumption(big), relative_error=0.1)
    assert decision.steer and decision.gain_eur > decision.risk_eur + 0.05
    # the same trade on a house whose forecasts are off by 40 %: the risk eats the gain
    assert not decide(big, plan, self_consumption(big), relative_error=0.4).steer
    sunny = problem([0.30] * 16, load=0.1, pv=1.0)
    plan = optimise(sunny)
    assert decide(sunny, plan, self_consumption(sunny), relative_error=1.0).steer


def test_the_forecast_error_is_measured_on_slots_forecast_an_hour_ahead():
    errors = ForecastErrors()
    assert errors.relative_error == DEFAULT_RELATIVE_ERROR          # nothing compared yet
    starts = T0 + 900 * np.arange(200)
    errors.remember(T0, starts, np.full(200, 0.5), np.full(200, 0.5))
    t = starts[:150]
    errors.compare(T0 + 150 * 900, t, np.full(150, 0.4), np.full(150, 0.6))
    # the first 4 slots were less than an hour ahead: not counted
    assert errors.compared == 146
    assert errors.relative_error == pytest.approx(0.2 / 1.0, rel=0.01)


def test_the_service_leaves_the_battery_to_ess_and_says_why():
    config = default_config()
    planner = config["planner"]
    planner["strategy"] = "optimise"
    planner["horizon_h"] = 24
    planner["battery"].update(capacity_kwh=10, max_charge_kw=5, max_discharge_kw=5)
    config["charger"]["alfen"]["host"] = "192.0.2.1"
    buy = np.array(([0.25] * 8 + [0.33] * 24) * 6)
    start = T0 - T0 % 3600

    class Prices:
        async def prices(self, now_s):
            n = buy.size
            return PriceSeries(start + 900 * np.arange(n), np.full(n, 900), buy,
                               np.full(n, 0.05), "test", 0.0)

    clock = SimClock(start)
    writer = RecordingWriter("dess_schedule")
    service = PlannerService(config, clock, None, lambda path: 20.0 if path.endswith("Soc")
                             else None, writer, tariff=Prices(),
                             forecaster=lambda _p, starts, _n, _h: (np.full(len(starts), 0.3),
                                                                     np.zeros(len(starts))))
    asyncio.run(service._tick())
    assert writer.plan is None                    # released: plain ESS
    state = service.state()
    assert "left to ESS self-consumption" in state["/Planner/Reason"]
    assert not service.local_steers()
    assert service.plan_dict()["guard"]["steer"] is False
