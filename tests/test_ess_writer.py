"""EssWriter on a private bus: our settings service as the GX's localsettings, velib-exported
com.victronenergy.system and com.victronenergy.hub4 stand-ins."""
from __future__ import annotations

import asyncio
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phaeton.planning.model import BatterySpec, GridSpec, PlanProblem
from phaeton.planning.optimizer import plan as optimise
from phaeton.venus.ess_writer import (
    MODE_PATH,
    SCHEDULE_ENTRIES,
    SETPOINT_PATH,
    STRATEGY_SELF_CONSUME,
    EssWriter,
    dess_battery_settings,
    dess_windows,
    dess_writes,
    schedule_path,
)
from velib.service import VeDbusService
from velib.settings import SettingsClient
from velib.settings_service import SettingsService

T0 = 1_780_000_200  # a quarter-hour boundary
AC_SETPOINT = "/Settings/CGwacs/AcPowerSetPoint"


def sample_plan(now_s=T0, slots=16):
    """Cheap first hour, dear after: the battery charges, holds, then covers the house."""
    buy = np.array([0.10] * 4 + [0.30] * 4 + [0.45] * 8)[:slots]
    problem = PlanProblem(
        slot_start_s=now_s + 900.0 * np.arange(slots), import_price_eur_per_kwh=buy,
        export_price_eur_per_kwh=np.full(slots, 0.05), load_kwh=np.full(slots, 0.3),
        pv_kwh=np.zeros(slots),
        battery=BatterySpec(capacity_kwh=10, soc_now=0.3, soc_min=0.1, max_charge_kw=4,
                            max_discharge_kw=4),
        grid=GridSpec(import_limit_kw=17, export_limit_kw=5))
    return optimise(problem)


@pytest.fixture
async def gx(private_bus, tmp_path):
    settings_service = SettingsService(str(tmp_path / "settings"))
    settings_service.add_setting(AC_SETPOINT, 0.0)
    settings_service.add_setting(MODE_PATH, 0, 0, 4)  # a GX has it; the schedule is added
    await settings_service.register()
    system = VeDbusService("com.victronenergy.system")
    system.add_path("/Dc/Battery/Soc", 30.0)
    system.add_path("/DynamicEss/Active", 0)
    await system.register()
    hub4 = VeDbusService("com.victronenergy.hub4")
    hub4.add_path(SETPOINT_PATH, None, writeable=True, kind=float, nullable=True)
    await hub4.register()
    client = SettingsClient()
    await client.start()
    await client.wait_until_available(10)
    yield settings_service, system, hub4, client
    await client.close()
    for service in (hub4, system, settings_service):
        await service.close()


async def started(control, client, **options):
    writer = EssWriter(control, client, **options)
    await writer.start()
    await wait_for(lambda: writer.monitor.get_value("com.victronenergy.system",
                                                    "/DynamicEss/Active") is not None)
    return writer


async def wait_for(condition, timeout_s=10.0):
    async def poll():
        while not condition():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(poll(), timeout_s)


def schedule(settings_service):
    """The used schedule entries as (start, duration, target, strategy), sorted by start."""
    entries = []
    for i in range(SCHEDULE_ENTRIES):
        start = settings_service[schedule_path(i, "Start")]
        if start:
            entries.append((start, settings_service[schedule_path(i, "Duration")],
                            settings_service[schedule_path(i, "TargetSoc")],
                            settings_service[schedule_path(i, "Strategy")]))
    return sorted(entries)


async def test_schedule_in_settings_matches_the_plan_with_merged_windows(gx):
    settings_service, _, _, client = gx
    plan = sample_plan()
    writer = await started("dess_schedule", client,
                           dess_settings=dess_battery_settings(
                               10, 4, 4, round_trip_pct=30, import_limit_kw=11.0,
                               export_limit_kw=5.0))
    status = await writer.apply(plan, T0 + 10)
    assert status.conflict is None and status.error is None
    assert settings_service[MODE_PATH] == 4
    assert settings_service["/Settings/DynamicEss/BatteryCapacity"] == 10.0
    assert settings_service["/Settings/DynamicEss/BatteryDischargeLimit"] == 4.0
    assert settings_service["/Settings/DynamicEss/SystemEfficiency"] == 50.0  # Victron's lowest
    assert settings_service["/Settings/DynamicEss/GridImportLimit"] == 11.0
    assert settings_service["/Settings/DynamicEss/GridExportLimit"] == 5.0
    entries = schedule(settings_service)
    assert 1 < len(entries) < plan.slot_count  # slots were merged into windows
    # contiguous from the current slot to the plan's end
    assert entries[0][0] == T0
    for (start, duration, _, _), following in itertools.pairwise(entries):
        assert start + duration == following[0]
    assert entries[-1][0] + entries[-1][1] == T0 + 900 * plan.slot_count
    for start, duration, target, strategy in entries:
        first, last = (start - T0) // 900, (start + duration - T0) // 900 - 1
        # the window ends at the SoC the plan has at that moment
        assert target == round(100 * plan.soc[last + 1])
        if strategy != STRATEGY_SELF_CONSUME:
            targets = {round(100 * plan.soc[t + 1]) for t in range(first, last + 1)}
            assert targets == {target}
    # the cheap hour charges (a rising target), the dear hours run the house off the battery
    assert entries[0][2] > 30 and entries[-1][3] == STRATEGY_SELF_CONSUME


async def test_only_changed_settings_are_written(gx):
    settings_service, _, _, client = gx
    plan = sample_plan()
    writer = await started("dess_schedule", client)
    await writer.apply(plan, T0 + 10)
    first = writer.status.writes_total
    assert first >= 7
    await writer.apply(plan, T0 + 20)
    assert writer.status.writes_total == first  # same plan: not one write
    before = schedule(settings_service)
    # an hour later the same plan: the windows that are over are dropped, the rest stay put
    await writer.apply(plan, T0 + 3600 + 10)
    after = schedule(settings_service)
    assert after and set(after) < set(before)
    assert all(start + duration > T0 + 3600 for start, duration, _, _ in after)
    ended = len(before) - len(after)
    assert writer.status.writes_total - first == ended  # one "Start = 0" per ended window


async def test_nothing_is_written_while_vrm_dynamic_ess_is_on(gx):
    settings_service, _, _, client = gx
    outsider = SettingsClient()
    await outsider.start()
    try:
        assert await outsider.write(MODE_PATH, 1) == 0  # VRM switched DESS on
    finally:
        await outsider.close()
    writer = await started("dess_schedule", client)
    await wait_for(lambda: client.get(MODE_PATH) == 1)
    status = await writer.apply(sample_plan(), T0 + 10)
    assert "VRM" in status.conflict
    assert status.writes_total == 0 and schedule(settings_service) == []
    assert settings_service[MODE_PATH] == 1
    status = await writer.release()
    assert settings_service[MODE_PATH] == 1 and status.writes_total == 0


async def test_system_reporting_dess_active_is_a_conflict_too(gx):
    settings_service, system, _, client = gx
    writer = await started("dess_schedule", client)
    system["/DynamicEss/Active"] = 1
    await wait_for(lambda: writer.conflict() is not None)
    status = await writer.apply(sample_plan(), T0 + 10)
    assert "Active" in status.conflict and status.writes_total == 0
    assert settings_service[MODE_PATH] == 0
    system["/DynamicEss/Active"] = 0
    await wait_for(lambda: writer.conflict() is None)
    status = await writer.apply(sample_plan(), T0 + 10)
    assert status.conflict is None and settings_service[MODE_PATH] == 4


async def test_release_hands_the_battery_back(gx):
    settings_service, _, _, client = gx
    writer = await started("dess_schedule", client)
    await writer.apply(sample_plan(), T0 + 10)
    assert schedule(settings_service)
    status = await writer.release()
    assert status.error is None and not status.in_control
    assert settings_service[MODE_PATH] == 0 and schedule(settings_service) == []


async def test_setpoint_mode_writes_the_volatile_override_never_the_flash_setting(gx):
    settings_service, _, hub4, client = gx
    plan = sample_plan()
    writer = await started("setpoint", client)
    await wait_for(lambda: writer.monitor.get_paths("com.victronenergy.hub4"))
    status = await writer.apply(plan, T0 + 10)
    expected = round((plan.grid_import_kwh[0] - plan.grid_export_kwh[0]) * 4000 / 10) * 10
    assert status.error is None and hub4[SETPOINT_PATH] == pytest.approx(expected)
    assert expected > 300  # charging in the cheap hour: a grid import setpoint
    writes = status.writes_total
    await writer.apply(plan, T0 + 20)
    assert writer.status.writes_total == writes
    await writer.apply(plan, T0 + 2 * 3600 + 10)  # dear hours: the battery covers the house
    assert hub4[SETPOINT_PATH] == pytest.approx(
        round((plan.grid_import_kwh[8] - plan.grid_export_kwh[8]) * 4000 / 10) * 10)
    assert settings_service[AC_SETPOINT] == 0.0  # the flash-backed setpoint is never touched
    await writer.release()
    assert hub4[SETPOINT_PATH] is None
    assert settings_service[MODE_PATH] == 0  # setpoint mode never creates or sets DESS mode


async def test_setpoint_mode_stands_back_for_a_dess_schedule(gx):
    settings_service, _, hub4, client = gx
    settings_service[MODE_PATH] = 4  # someone's local DESS schedule runs
    writer = await started("setpoint", client)
    await wait_for(lambda: client.get(MODE_PATH) == 4)
    status = await writer.apply(sample_plan(), T0 + 10)
    assert status.conflict and status.writes_total == 0 and hub4[SETPOINT_PATH] is None


def test_windows_respect_the_48_entries_and_restrictions():
    rng = np.random.default_rng(3)
    problem = PlanProblem(
        slot_start_s=T0 + 900.0 * np.arange(192),
        import_price_eur_per_kwh=rng.uniform(0.05, 0.5, 192),
        export_price_eur_per_kwh=np.full(192, 0.0), load_kwh=rng.uniform(0.1, 0.8, 192),
        pv_kwh=np.zeros(192), battery=BatterySpec(capacity_kwh=10, soc_now=0.5))
    plan = optimise(problem)
    windows = dess_windows(plan, T0, allow_export=False, allow_grid_charging=False)
    assert len(windows) == SCHEDULE_ENTRIES
    assert all(w.restrictions == 3 and w.allow_grid_feed_in == 0 for w in windows)
    writes = dess_writes(windows, lambda path: 0)
    starts = [value for path, value in writes if path.endswith("/Start")]
    assert len(starts) == SCHEDULE_ENTRIES and starts == sorted(starts)
    # within an entry the start comes last, so no entry is live with half-written contents
    index_of = {path: i for i, (path, _) in enumerate(writes)}
    assert index_of[schedule_path(0, "Start")] > index_of[schedule_path(0, "TargetSoc")]


def test_invalid_control_mode_is_refused_clearly():
    with pytest.raises(ValueError, match="ess_control must be one of"):
        EssWriter("vrm", None)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), now_slot=st.integers(0, 40),
       old_slot=st.integers(0, 40))
def test_schedule_writes_converge_and_windows_tile_the_future(seed, now_slot, old_slot):
    rng = np.random.default_rng(seed)
    n = 48
    problem = PlanProblem(
        slot_start_s=T0 + 900.0 * np.arange(n),
        import_price_eur_per_kwh=rng.choice([0.1, 0.3, 0.5], n),
        export_price_eur_per_kwh=np.full(n, 0.05), load_kwh=rng.uniform(0, 0.6, n),
        pv_kwh=rng.uniform(0, 1.2, n) * (rng.random(n) < 0.5),
        battery=BatterySpec(capacity_kwh=8, soc_now=rng.uniform(0.1, 1.0)))
    plan = optimise(problem)
    held: dict[str, int] = {}
    # whatever an earlier plan left in the settings, one round of writes gives this plan
    for when in (T0 + 900 * old_slot, T0 + 900 * now_slot):
        windows = dess_windows(plan, when, allow_export=True, allow_grid_charging=True)
        for path, value in dess_writes(windows, held.get):
            held[path] = value
        assert dess_writes(windows, held.get) == []
    starts = sorted((held[schedule_path(i, "Start")], i) for i in range(SCHEDULE_ENTRIES)
                    if held.get(schedule_path(i, "Start")))
    assert starts[0][0] <= T0 + 900 * now_slot < starts[0][0] + held[
        schedule_path(starts[0][1], "Duration")]
    for (start, i), (following, _) in itertools.pairwise(starts):
        assert start + held[schedule_path(i, "Duration")] == following
    last_start, last = starts[-1]
    assert last_start + held[schedule_path(last, "Duration")] == T0 + 900 * n
    assert all(0 <= held[schedule_path(i, "TargetSoc")] <= 100 for _, i in starts)
