"""The planner with two chargers, on a private bus with the real settings service: both cars
in one plan, each with its departure and target from its own GX settings, the shared garage
circuit respected, and each loadpoint getting its own car's power for now."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest

from phaeton.clock import ScaledClock
from phaeton.config import Config
from phaeton.planner.service import PlannerService, build_ess_writer
from phaeton.planning.knobs import EvState
from phaeton.venus.planner_settings import PREFIX
from test_planner_service import START_S, gx, planner_config  # noqa: F401  (the fixture)

GARAGE_A = 20.0


def two_car_config(tmp_path) -> Config:
    data = planner_config(tmp_path).to_dict()
    data.pop("charger")
    station = {"min_current_a": 6, "max_current_a": 16, "phases": 3, "circuit": "garage"}
    data["circuits"] = [{"name": "garage", "max_current_a": GARAGE_A}]
    data["chargers"] = [
        {"id": "left", **station, "alfen": {"host": "192.168.1.50"}},
        {"id": "right", **station, "alfen": {"host": "192.168.1.51"}, "ev_capacity_kwh": 40},
    ]
    from phaeton.config import apply_defaults
    return Config(apply_defaults(data))


async def wait_for(condition, timeout_s=20.0):
    async def poll():
        while not condition():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(poll(), timeout_s)


async def test_two_cars_share_one_plan_each_with_its_own_departure_and_target(gx, tmp_path):
    settings_service, system, client, outsider = gx
    clock = ScaledClock(1.0, start=START_S)            # 22:26 local: the cheap night begins
    config = two_car_config(tmp_path)
    cars = {"left": EvState(plugged=True, soc_pct=20.0), "right": EvState(plugged=True, soc_pct=50.0)}
    writer = build_ess_writer(config, client, clock=clock, system_value=system.__getitem__)
    service = PlannerService(config, clock, client, system.__getitem__, writer,
                             car_states=lambda: cars, check_s=3600)
    await service.start()
    try:
        await wait_for(lambda: service.plans_made == 1)
        # the second car's departure and target are its own GX settings, the first's the site's
        assert settings_service[PREFIX + "Ev/right/DepartureTime"] == 7 * 60
        assert PREFIX + "Ev/left/DepartureTime" not in settings_service.settings
        problem, plan = service._problem, service.current_plan()
        assert [d.name for d in problem.demands] == ["left", "right"]
        left, right = problem.demands
        assert left.energy_needed_kwh == pytest.approx((0.80 - 0.20) * 60)     # planner.ev 60 kWh
        assert right.energy_needed_kwh == pytest.approx((0.80 - 0.50) * 40)    # its own 40 kWh
        # both targets met, and together never above the 20 A garage circuit (13.8 kW)
        assert plan.shortfall is None
        hours = plan.slot_duration_h
        for delivered, demand in zip(plan.ev_delivered_by_ev_kwh, problem.demands):
            assert delivered == pytest.approx(demand.energy_needed_kwh, rel=1e-6)
        assert np.all(plan.ev_kwh / hours <= GARAGE_A * 3 * 230 / 1000 + 1e-6)
        # each loadpoint gets its own car's power for now
        now = clock.time()
        index = int((now - plan.slot_start_s[0]) // 900)
        for row, name in enumerate(("left", "right")):
            assert service.ev_allowance_w(now, name) == pytest.approx(
                plan.ev_kwh_by_ev[row, index] / hours[index] * 1000)
        assert service.ev_allowance_w(now, "nobody") == 0.0

        # the owner moves the second car's departure to 01:00 on the GX: it re-plans, and the
        # right car's energy now all arrives before 01:00
        assert await outsider.write(PREFIX + "Ev/right/DepartureTime", 60) == 0
        await wait_for(lambda: service.plans_made == 2 and
                       service._problem.demands[1].departure_slot < right.departure_slot)
        plan = service.current_plan()
        late = service._problem.demands[1].departure_slot
        assert plan.ev_kwh_by_ev[1, late:].sum() == 0
        assert plan.ev_delivered_by_ev_kwh[1] > 0

        # the right car leaves: the next plan has only the left one
        cars["right"] = EvState(plugged=False)
        await service.tick()
        assert [d.name for d in service._problem.demands] == ["left"]
    finally:
        await service.stop()
