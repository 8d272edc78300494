"""PlannerService on a private bus: the real settings service, a velib-exported fake
com.victronenergy.system (battery SoC, DESS state) and hub4; knobs changed by another client."""
from __future__ import annotations

import asyncio
import json
import logging

import pytest

from phaeton.clock import ScaledClock
from phaeton.config import Config, default_config
from phaeton.planner.paths import REASON_STARTING, STATE_PATHS, paths_before_start
from phaeton.planning.forecast_error import ForecastErrors
from phaeton.planner.service import PlannerService, build_ess_writer
from phaeton.planning.knobs import EvState
from phaeton.venus.ess_writer import (
    DESS_STATE_OWNER_OFF,
    DESS_STATE_STEERING,
    MODE_PATH,
    SCHEDULE_ENTRIES,
    EssWriter,
    schedule_path,
)
from phaeton.venus.planner_settings import DESS_STATE_PATH, PREFIX
from velib.service import VeDbusService
from velib.settings import SettingsClient
from velib.settings_service import SettingsService

START_S = 1_780_000_000.0  # 22:26 local (Berlin, May): the cheap night window has begun


def planner_config(tmp_path, **planner):
    data = default_config()
    data["data_dir"] = str(tmp_path / "data")
    data["charger"]["alfen"] = {"host": "192.168.1.50"}
    section = data["planner"]
    section["horizon_h"] = 24
    section["ess_control"] = "dess_schedule"
    section["battery"].update(capacity_kwh=10, min_soc_pct=10, allow_grid_charging=True)
    section["tariff"]["type"] = "time_of_use"
    section["tariff"]["time_of_use"].update(
        default_import_eur_per_kwh=0.40, default_export_eur_per_kwh=0.05,
        windows=[{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                  "start": "22:00", "end": "06:00", "import_eur_per_kwh": 0.10,
                  "export_eur_per_kwh": None}])
    for key, value in planner.items():
        section[key] = value
    return Config(data)


@pytest.fixture
async def gx(private_bus, tmp_path):
    settings_service = SettingsService(str(tmp_path / "settings"))
    settings_service.add_setting(MODE_PATH, 0, 0, 4)
    await settings_service.register()
    system = VeDbusService("com.victronenergy.system")
    system.add_path("/Dc/Battery/Soc", 20.0)
    system.add_path("/DynamicEss/Active", 0)
    await system.register()
    client = SettingsClient()
    await client.start()
    await client.wait_until_available(10)
    outsider = SettingsClient()  # the GX GUI / MQTT / dbus CLI
    await outsider.start()
    yield settings_service, system, client, outsider
    await outsider.close()
    await client.close()
    await system.close()
    await settings_service.close()


async def make_service(tmp_path, client, system, *, ev=None, clock=None, **planner):
    clock = clock or ScaledClock(1.0, start=START_S)
    config = planner_config(tmp_path, **planner)
    writer = build_ess_writer(config, client, clock=clock, system_value=system.__getitem__)
    service = PlannerService(config, clock, client, system.__getitem__, writer, ev_state=ev,
                             check_s=3600)
    # these tests are about how a plan is written and published: the forecasts count as
    # proven right, so the do-no-harm guard (tests/test_harm_guard.py) lets the plan steer
    service.forecast_errors = ForecastErrors(default=0.0)
    await service.start()
    return service


async def wait_for(condition, timeout_s=10.0):
    async def poll():
        while not condition():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(poll(), timeout_s)


async def ticked_until(service, condition, timeout_s=10.0):
    """Planner ticks until `condition` holds (AssertionError after `timeout_s`)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        await service.tick()
        if condition():
            return
        assert asyncio.get_running_loop().time() < deadline, "condition not reached by ticking"
        await asyncio.sleep(0.02)


def written_targets(settings_service):
    return sorted((settings_service[schedule_path(i, "Start")],
                   settings_service[schedule_path(i, "TargetSoc")])
                  for i in range(SCHEDULE_ENTRIES) if settings_service[schedule_path(i, "Start")])


async def test_knobs_are_gx_settings_with_ranges_and_config_defaults(gx, tmp_path):
    settings_service, system, client, _ = gx
    service = await make_service(tmp_path, client, system)
    try:
        strategy = settings_service.settings[PREFIX + "Strategy"]
        assert (settings_service[PREFIX + "Strategy"], strategy.min, strategy.max) == (2, 0, 2)
        departure = settings_service.settings[PREFIX + "EvDepartureTime"]
        assert settings_service[PREFIX + "EvDepartureTime"] == 7 * 60
        assert (departure.min, departure.max) == (0, 1439)
        assert settings_service[PREFIX + "MinimumSoc"] == 10.0
        assert settings_service[PREFIX + "AllowGridCharging"] == 1
        # out of range from the GUI is refused by the settings service
        assert await client.write(PREFIX + "Strategy", 7) == -1
    finally:
        await service.stop()


@pytest.mark.parametrize("strategy", ["off", "self_consumption", "optimise"])
async def test_the_paths_shown_before_the_planner_starts_are_the_ones_it_then_fills(
        gx, tmp_path, strategy):
    """The service owns its name before the planner is loaded: the /Planner/* paths exist from
    the start with the configured strategy and say that the planner is starting."""
    settings_service, system, client, _ = gx
    config = planner_config(tmp_path, strategy=strategy)
    first = paths_before_start(config["planner"])
    assert first["/Planner/Reason"] == REASON_STARTING and first["/Planner/TargetSoc"] is None
    service = await make_service(tmp_path, client, system, strategy=strategy)
    try:
        state = service.state()
        assert set(first) == set(state) == set(STATE_PATHS)
        assert first["/Planner/Strategy"] == state["/Planner/Strategy"]
        assert first["/Planner/DessConflict"] == state["/Planner/DessConflict"]
    finally:
        await service.stop()


async def test_first_plan_is_written_as_a_schedule_and_published(gx, tmp_path):
    settings_service, system, client, _ = gx
    service = await make_service(tmp_path, client, system)
    try:
        await wait_for(lambda: settings_service[MODE_PATH] == 4)  # written after the plan
        plan = service.current_plan()
        assert plan is not None and service.plans_made == 1
        assert settings_service["/Settings/DynamicEss/BatteryCapacity"] == 10.0
        # DESS paces the windows with the same facts the plan used
        site = default_config()["site"]
        fuse_kw = site["fuse_a"] * site["phases"] * site["nominal_voltage_v"] / 1000.0
        battery = default_config()["planner"]["battery"]
        assert settings_service["/Settings/DynamicEss/SystemEfficiency"] == \
            battery["round_trip_efficiency_pct"]
        assert settings_service["/Settings/DynamicEss/GridImportLimit"] == pytest.approx(fuse_kw)
        assert settings_service["/Settings/DynamicEss/GridExportLimit"] == pytest.approx(fuse_kw)
        targets = written_targets(settings_service)
        assert targets[0][0] == START_S // 900 * 900
        assert max(t for _, t in targets) == round(100 * plan.soc.max(), 1)  # a decimal
        # cheap night: the battery is charged from the grid above its 20 %
        assert plan.soc.max() > 0.5
        state = service.state()
        assert set(state) == set(STATE_PATHS)
        assert state["/Planner/Strategy"] == 2 and state["/Planner/DessConflict"] == 0
        assert state["/Planner/TargetSoc"] == pytest.approx(100 * plan.soc[1], abs=0.1)
        assert state["/Planner/NextSlot"] == START_S // 900 * 900 + 900
        assert state["/Planner/PlannedCost"] == pytest.approx(plan.cost_eur, abs=0.01)
        assert state["/Planner/PlannedSavings"] > 0
        assert state["/Planner/Reason"] == plan.reasons[0]
        shown = json.loads(json.dumps(service.plan_dict()))  # what /api/plan serves
        assert len(shown["slots"]) == plan.slot_count and shown["strategy"] == "optimise"
        assert shown["total_cost_eur"] == pytest.approx(plan.cost_eur)
        assert [s["soc_pct"] for s in shown["slots"]] == pytest.approx(
            list(100 * plan.soc[1:]), abs=1e-3)
    finally:
        await service.stop()
    assert settings_service[MODE_PATH] == 0  # stop hands the battery back
    assert written_targets(settings_service) == []


async def test_a_knob_written_on_the_bus_changes_the_plan_at_the_next_replan(gx, tmp_path):
    settings_service, system, client, outsider = gx
    service = await make_service(tmp_path, client, system)
    try:
        await wait_for(lambda: service.plans_made == 1)
        assert service.current_plan().battery_charge_kwh.sum() > 1
        assert await outsider.write(PREFIX + "AllowGridCharging", 0) == 0
        await wait_for(lambda: service.plans_made == 2, 30)  # the loop woke up for it
        plan = service.current_plan()
        assert plan.battery_charge_kwh.sum() < 1e-6  # no PV: nothing may charge it now
        # grid -> battery forbidden in every window (written right after the plan)
        await wait_for(lambda: {settings_service[schedule_path(i, "Restrictions")]
                                for i in range(SCHEDULE_ENTRIES)
                                if settings_service[schedule_path(i, "Start")]} == {2})

        assert await outsider.write(PREFIX + "Strategy", 0) == 0
        await wait_for(lambda: service.plans_made == 3, 30)
        assert service.state()["/Planner/Strategy"] == 0
        assert service.ev_allowance_w(START_S) is None
        await wait_for(lambda: settings_service[MODE_PATH] == 0)
        assert "off" in service.state()["/Planner/Reason"]
    finally:
        await service.stop()


async def test_a_burst_of_knob_writes_is_one_replan_once_it_settles(gx, tmp_path):
    """200 writes in 10 s (a slider dragged on the GX, a script in a loop) used to cause 180
    re-plans, 9.6 s of CPU; now a burst is planned once it settles, and knob changes re-plan
    at most every few seconds."""
    from phaeton.planner.service import KNOB_REPLAN_GAP_S

    settings_service, system, client, outsider = gx
    service = await make_service(tmp_path, client, system)
    try:
        await wait_for(lambda: service.plans_made == 1)
        for n in range(200):
            assert await outsider.write(PREFIX + "MinimumSoc", 10 + n % 20) == 0
            await asyncio.sleep(0.05)
        await outsider.write(PREFIX + "MinimumSoc", 25)
        await wait_for(lambda: service.knobs.minimum_soc_pct == 25.0)
        await wait_for(lambda: service._planned_knobs is not None
                       and service._planned_knobs.minimum_soc_pct == 25.0, 30)
        # ~10 s of writes: at most one knob plan per gap, plus the final one
        assert service.plans_made - 1 <= 10.0 / KNOB_REPLAN_GAP_S + 2
    finally:
        await service.stop()


async def test_replans_when_the_measured_soc_drifts_or_the_ev_arrives(gx, tmp_path):
    _, system, client, _ = gx
    car = {"state": EvState(plugged=False)}
    service = await make_service(tmp_path, client, system, ev=lambda: car["state"])
    try:
        await wait_for(lambda: service.plans_made == 1)
        assert await service.tick() is False  # nothing changed: no new plan
        system["/Dc/Battery/Soc"] = 90.0
        assert await service.tick() is True
        assert service.current_plan().soc[0] == pytest.approx(0.9)
        assert service.ev_allowance_w(START_S) == 0.0
        car["state"] = EvState(plugged=True, soc_pct=None)
        assert await service.tick() is True
        plan = service.current_plan()
        assert plan.ev_delivered_kwh == pytest.approx(0.5 * 60, abs=0.5)  # 30 % -> 80 %
        allowance = [service.ev_allowance_w(START_S + 900 * i) for i in range(40)]
        assert max(allowance) > 4000 and min(allowance) == 0.0
        # the owner's view of it: target, departure, on track
        outlook = service.plan_dict()["ev"]
        assert outlook["soc_pct"] is None and outlook["assumed_soc_pct"] == 30.0
        assert (outlook["target_soc_pct"], outlook["departure"]) == (80.0, "07:00")
        assert outlook["needed_kwh"] == pytest.approx(30.0)
        assert outlook["planned_kwh"] == pytest.approx(plan.ev_delivered_kwh, abs=0.01)
        assert outlook["late"] is False and outlook["short_kwh"] is None
    finally:
        await service.stop()


async def test_a_car_that_cannot_reach_its_target_by_departure_is_late_with_the_kwh_short(
        gx, tmp_path):
    _, system, client, outsider = gx
    car = {"state": EvState(plugged=True, soc_pct=20.0)}
    service = await make_service(tmp_path, client, system, ev=lambda: car["state"])
    try:
        await wait_for(lambda: service.plans_made == 1)
        # 23:00 is 34 minutes away: at 11 kW about 6 kWh of the 36 kWh from 20 % to 80 %
        assert await outsider.write(PREFIX + "EvDepartureTime", 23 * 60) == 0
        await wait_for(lambda: service.plans_made == 2, 20)
        outlook = service.plan_dict()["ev"]
        assert outlook["soc_pct"] == 20.0 and outlook["assumed_soc_pct"] is None
        assert outlook["departure"] == "23:00" and outlook["needed_kwh"] == pytest.approx(36.0)
        assert outlook["late"] is True and outlook["late_reason"]
        assert outlook["short_kwh"] == pytest.approx(36.0 - outlook["planned_kwh"] * 0.9,
                                                     abs=1.0)
        car["state"] = EvState(plugged=False)
        assert await service.tick() is True
        assert service.plan_dict()["ev"] is None                    # no car, no outlook
    finally:
        await service.stop()


async def test_vrm_dess_conflict_is_reported_and_nothing_written(gx, tmp_path):
    settings_service, system, client, outsider = gx
    assert await outsider.write(MODE_PATH, 1) == 0
    await wait_for(lambda: client.get(MODE_PATH) == 1)
    service = await make_service(tmp_path, client, system)
    try:
        await wait_for(lambda: service.plans_made == 1)
        state = service.state()
        assert state["/Planner/DessConflict"] == 1 and "VRM" in state["/Planner/Reason"]
        assert written_targets(settings_service) == [] and settings_service[MODE_PATH] == 1
    finally:
        await service.stop()
    assert settings_service[MODE_PATH] == 1


async def test_a_failing_tariff_never_raises_into_the_caller(gx, tmp_path):
    _, system, client, _ = gx

    class BrokenTariff:
        async def prices(self, now_s):
            raise RuntimeError("provider answered nonsense")

    clock = ScaledClock(1.0, start=START_S)
    writer = EssWriter("dess_schedule", client, clock=clock, system_value=system.__getitem__)
    service = PlannerService(planner_config(tmp_path), clock, client, system.__getitem__,
                             writer, tariff=BrokenTariff(), check_s=3600)
    await service.start()
    try:
        assert await service.tick() is False
        state = service.state()
        assert "provider answered nonsense" in state["/Planner/Reason"]
        assert state["/Planner/PlannedCost"] is None and service.current_plan() is None
    finally:
        await service.stop()


async def test_bad_tariff_config_is_a_reason_not_a_crash(gx, tmp_path):
    _, system, client, _ = gx
    config = planner_config(tmp_path)
    data = config.to_dict()
    data["planner"]["tariff"]["type"] = "tibber"  # no token
    clock = ScaledClock(1.0, start=START_S)
    writer = EssWriter("dess_schedule", client, clock=clock, system_value=system.__getitem__)
    service = PlannerService(Config(data), clock, client, system.__getitem__, writer,
                             check_s=3600)
    await service.start()
    try:
        await service.tick()
        assert "token" in service.state()["/Planner/Reason"]
        assert service.current_plan() is None
    finally:
        await service.stop()


async def test_periodic_replan_runs_in_accelerated_time(gx, tmp_path):
    _, system, client, _ = gx
    clock = ScaledClock(600.0, start=START_S)  # 15 minutes in 1.5 s
    writer = EssWriter("dess_schedule", client, clock=clock, system_value=system.__getitem__)
    service = PlannerService(planner_config(tmp_path), clock, client, system.__getitem__,
                             writer, check_s=60)
    await service.start()
    try:
        await wait_for(lambda: service.plans_made >= 2, timeout_s=20)
        assert service.current_plan().slot_start_s[0] >= START_S // 900 * 900 + 900
    finally:
        await service.stop()


class SteppedClock(ScaledClock):
    """Time that moves only when the test says so (the service's own loop sleeps)."""

    def __init__(self, start: float):
        super().__init__(1.0, start=start)
        self.offset_s = 0.0

    def monotonic(self) -> float:      # time() follows it
        return super().monotonic() + self.offset_s


async def test_the_horizon_moving_on_is_no_reason_to_replan_before_replan_s(gx, tmp_path):
    """With prices known for the whole horizon (a time-of-use tariff), every quarter hour
    adds one slot at the horizon's end. That is not news: the plan is remade every
    `replan_s` (here an hour), not every quarter hour as before."""
    _, system, client, _ = gx
    clock = SteppedClock(START_S)
    service = await make_service(tmp_path, client, system, clock=clock, replan_s=3600)
    try:
        await wait_for(lambda: service.plans_made == 1)
        for _ in range(8):                       # two hours in quarter-hour steps
            clock.offset_s += 900
            await service.tick()
        assert service.plans_made == 1 + 2       # periodic, after 1 h and 2 h
    finally:
        await service.stop()


async def test_prices_published_for_the_horizon_still_replan_at_once(gx, tmp_path):
    """Day-ahead prices arrive: the horizon the plan looked at had no prices beyond the next
    hours; now it has. That is news, re-planned at the next check, not after replan_s."""
    import numpy as np
    from phaeton.planning.tariffs.series import PriceSeries

    class Publishing:
        source, hours = "day-ahead", 6

        async def prices(self, now_s):
            first = int(START_S) // 900 * 900 - 3600     # published up to first + hours
            count = self.hours * 4
            return PriceSeries(first + 900 * np.arange(count), np.full(count, 900),
                               np.full(count, 0.30), np.full(count, 0.05), self.source, now_s)

    _, system, client, _ = gx
    clock = SteppedClock(START_S)
    service = await make_service(tmp_path, client, system, clock=clock, replan_s=3600)
    try:
        tariff = service._tariff = Publishing()
        await service.tick()
        plans = service.plans_made
        clock.offset_s += 900
        await service.tick()
        assert service.plans_made == plans          # the same prices known: nothing new
        tariff.hours = 24                           # published
        clock.offset_s += 60
        await service.tick()
        assert service.plans_made == plans + 1 and service._last_trigger == "prices changed"
    finally:
        await service.stop()


async def test_the_gx_ess_minimum_is_the_floor_when_it_is_higher(gx, tmp_path):
    settings_service, system, client, _ = gx
    system.add_path("/Control/ActiveSocLimit", 35.0)   # BatteryLife raised it above 10 %
    system["/Dc/Battery/Soc"] = 60.0
    service = await make_service(tmp_path, client, system)
    try:
        await wait_for(lambda: settings_service[MODE_PATH] == 4)   # planned and written
        plan = service.current_plan()
        assert service.knobs.minimum_soc_pct == 10.0     # the knob itself is unchanged
        assert plan.soc.min() >= 0.35 - 1e-6           # 10 % would drain to 10 in the day
        assert min(t for _, t in written_targets(settings_service)) >= 35
        # BatteryLife lowers it again: a re-plan, which uses the battery down to 10 %
        system["/Control/ActiveSocLimit"] = 10.0
        assert await service.tick() is True
        assert service.current_plan().soc.min() < 0.35
    finally:
        await service.stop()


async def test_with_ess_control_off_the_reason_says_the_battery_is_not_steered(gx, tmp_path):
    settings_service, system, client, _ = gx
    service = await make_service(tmp_path, client, system, ess_control="off")
    try:
        await wait_for(lambda: service.current_plan() is not None)
        reason = service.state()["/Planner/Reason"]
        assert reason.startswith("plan only, the battery is not steered "
                                 "(planner.ess_control is off)")
        assert settings_service[MODE_PATH] == 0            # and nothing was written
    finally:
        await service.stop()


async def test_the_owner_switching_dynamic_ess_off_wins_across_a_restart(gx, tmp_path, caplog):
    settings_service, system, client, outsider = gx
    service = await make_service(tmp_path, client, system)
    try:
        await wait_for(lambda: settings_service[MODE_PATH] == 4)       # phaeton took over
        await wait_for(lambda: client.get(MODE_PATH) == 4)
        # phaeton steers once the GX's echo of its Mode 4 has come back (on a busy machine
        # that can take longer than one tick)
        await ticked_until(service, lambda: settings_service[DESS_STATE_PATH] == DESS_STATE_STEERING)
        assert await outsider.write(MODE_PATH, 0) == 0                 # the owner: DESS off
        await wait_for(lambda: client.get(MODE_PATH) == 0)
        with caplog.at_level(logging.WARNING, logger="phaeton.venus.ess"):
            for _ in range(3):
                await service.tick()
        assert settings_service[MODE_PATH] == 0                        # not set back to 4
        state = service.state()
        reason = state["/Planner/Reason"]
        assert reason.startswith("Dynamic ESS was switched off on the GX")
        assert "phaeton does not steer the battery until" in reason
        assert state["/Planner/DessConflict"] == 0
        shown = json.loads(json.dumps(service.plan_dict()))            # what /api/plan serves
        assert shown["ess"]["owner_off"] == reason and shown["ess"]["in_control"] is False
        assert shown["state"]["/Planner/Reason"] == reason
        assert len([r for r in caplog.records if "switched off on the GX" in r.getMessage()
                    and r.levelno == logging.WARNING]) == 1
    finally:
        await service.stop()
    assert settings_service[MODE_PATH] == 0
    assert settings_service[DESS_STATE_PATH] == DESS_STATE_OWNER_OFF

    # a restart: Mode 0 is the owner's choice, not a first start
    service = await make_service(tmp_path, client, system)
    try:
        await wait_for(lambda: service.plans_made == 1)
        await service.tick()
        assert settings_service[MODE_PATH] == 0
        assert service.state()["/Planner/Reason"].startswith("Dynamic ESS was switched off")
        # the owner re-enables phaeton's strategy: Strategy 2 -> 1 -> 2 on the GX
        assert await outsider.write(PREFIX + "Strategy", 1) == 0
        await wait_for(lambda: service.plans_made == 2)
        assert settings_service[MODE_PATH] == 0
        assert await outsider.write(PREFIX + "Strategy", 2) == 0
        await wait_for(lambda: settings_service[MODE_PATH] == 4)
        assert not service.state()["/Planner/Reason"].startswith("Dynamic ESS was switched")
    finally:
        await service.stop()
