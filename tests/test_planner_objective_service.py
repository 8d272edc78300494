"""The planner's objective on the GX: a carbon series from the carbon feed goes into the plan,
the owner's Objective setting (or the config) picks what the plan minimises, and the plan
says its kg CO2. Private bus, the real settings service (fixtures of test_planner_service)."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest

from phaeton.clock import ScaledClock
from phaeton.planner.service import PlannerService, build_ess_writer
from phaeton.planning.carbon.series import CarbonSeries
from phaeton.venus.planner_settings import PREFIX
from test_planner_service import START_S, gx, planner_config  # noqa: F401  (the fixture)


def dirty_nights(start_s: float) -> CarbonSeries:
    """48 h of hours: 700 g/kWh at night (22:00-06:00 here, the cheap window), 100 g by day."""
    hours = np.arange(48)
    local_hour = (22 + hours) % 24                       # START_S is 22:26 local
    values = np.where((local_hour >= 22) | (local_hour < 6), 700.0, 100.0)
    starts = start_s // 3600 * 3600 + 3600 * hours
    return CarbonSeries(starts, np.full(48, 3600), values, "test", start_s)


async def wait_for(condition, timeout_s=20.0):
    async def poll():
        while not condition():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(poll(), timeout_s)


async def test_the_owner_switches_the_plan_from_cheapest_to_greenest(gx, tmp_path):
    settings_service, system, client, outsider = gx
    clock = ScaledClock(1.0, start=START_S)
    config = planner_config(tmp_path)
    series = dirty_nights(START_S)
    writer = build_ess_writer(config, client, clock=clock, system_value=system.__getitem__)
    service = PlannerService(config, clock, client, system.__getitem__, writer,
                             carbon_series=lambda: series, check_s=3600)
    await service.start()
    try:
        await wait_for(lambda: service.plans_made == 1)
        assert settings_service[PREFIX + "Objective"] == 0            # the config's cost
        cheapest = service.current_plan()
        assert cheapest.objective == "cost" and cheapest.co2_kg is not None
        assert service.plan_dict()["co2_kg"] == pytest.approx(cheapest.co2_kg)
        # each slot carries the grid's intensity the plan used (the plan page draws it)
        slots = service.plan_dict()["slots"]
        assert [s["intensity_g_per_kwh"] for s in slots[:3]] == [700.0, 700.0, 700.0]
        assert 100.0 in [s["intensity_g_per_kwh"] for s in slots]
        night = slice(0, 30)                           # 22:26 to 06:00: cheap and dirty
        assert cheapest.battery_charge_kwh[night].sum() > 1.0          # charges at night

        assert await outsider.write(PREFIX + "Objective", 1) == 0      # greenest
        await wait_for(lambda: service.plans_made == 2)
        greenest = service.current_plan()
        assert greenest.objective == "carbon"
        assert greenest.co2_kg < cheapest.co2_kg
        assert greenest.cost_eur > cheapest.cost_eur
        assert greenest.battery_charge_kwh[night].sum() < cheapest.battery_charge_kwh[night].sum()
        assert service.plan_dict()["objective"] == "carbon"
    finally:
        await service.stop()


async def test_without_a_carbon_source_the_plan_has_no_co2_and_a_carbon_objective_plans_cost(
        gx, tmp_path):
    _, system, client, _ = gx
    clock = ScaledClock(1.0, start=START_S)
    config = planner_config(tmp_path, objective="carbon")
    writer = build_ess_writer(config, client, clock=clock, system_value=system.__getitem__)
    service = PlannerService(config, clock, client, system.__getitem__, writer, check_s=3600)
    await service.start()
    try:
        await wait_for(lambda: service.plans_made == 1)
        plan = service.current_plan()
        assert plan.co2_kg is None
        assert {s["intensity_g_per_kwh"] for s in service.plan_dict()["slots"]} == {None}
        assert any("intensity" in w or "carbon" in w for w in plan.warnings), plan.warnings
    finally:
        await service.stop()
