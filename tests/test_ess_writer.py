"""EssWriter on a private bus: our settings service as the GX's localsettings, velib-exported
com.victronenergy.system and com.victronenergy.hub4 stand-ins."""
from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phaeton.planning.model import BatterySpec, GridSpec, PlanProblem
from phaeton.planning.optimizer import plan as optimise
from phaeton.venus.ess_writer import (
    DESS_STATE_IDLE,
    DESS_STATE_OWNER_OFF,
    DESS_STATE_STEERING,
    MODE_PATH,
    SCHEDULE_ENTRIES,
    SETPOINT_PATH,
    STRATEGY_SELF_CONSUME,
    STRATEGY_TARGET_SOC,
    WINDOW_FIELDS,
    EssWriter,
    dess_battery_settings,
    dess_setting_specs,
    dess_windows,
    dess_writes,
    next_dess_state,
    schedule_path,
    setpoint_w,
)
from phaeton.planning.slot_roles import FOLLOWS_HOUSE, FROM_GRID, slot_role
from phaeton.venus.planner_settings import DESS_STATE_PATH
from tests import systemcalc_dess
from tests.dbus_clients import py3dbus
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
        # the window ends at the SoC the plan has at that moment, as a decimal
        assert target == round(100 * plan.soc[last + 1], 1)
        if strategy != STRATEGY_SELF_CONSUME:
            targets = {round(100 * plan.soc[t + 1], 1) for t in range(first, last + 1)}
            assert targets == {target}
    # the cheap hour charges (a rising target), the dear hours run the house off the battery
    assert entries[0][2] > 30 and entries[-1][3] == STRATEGY_SELF_CONSUME


def schedule_values(settings_service):
    return {schedule_path(i, field): settings_service[schedule_path(i, field)]
            for i in range(SCHEDULE_ENTRIES) for field in WINDOW_FIELDS}


async def test_only_changed_settings_are_written(gx):
    settings_service, _, _, client = gx
    plan = sample_plan()
    writer = await started("dess_schedule", client)
    await writer.apply(plan, T0 + 10)
    assert writer.status.writes_total >= 7
    await wait_for(lambda: client.get(MODE_PATH) == 4)
    await writer.apply(plan, T0 + 15)  # the GX holds phaeton's Mode 4: DessState 1, once
    assert settings_service[DESS_STATE_PATH] == DESS_STATE_STEERING
    first = writer.status.writes_total
    await writer.apply(plan, T0 + 20)
    assert writer.status.writes_total == first  # same plan: not one write
    before, held = schedule(settings_service), schedule_values(settings_service)
    # an hour later the same plan: the windows that are over are dropped, the rest stay put
    await writer.apply(plan, T0 + 3600 + 10)
    after = schedule(settings_service)
    assert after and set(after) < set(before)
    assert all(start + duration > T0 + 3600 for start, duration, _, _ in after)
    # the entries of the ended windows are cleared, every field back to 0, and nothing else
    changed = {path for path, value in schedule_values(settings_service).items()
               if held[path] != value}
    ended = len(before) - len(after)
    assert len({path.rsplit("/", 1)[0] for path in changed}) == ended
    assert all(settings_service[path] == 0 for path in changed)
    assert writer.status.writes_total - first == len(changed)


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


async def test_setpoint_mode_holds_the_planned_battery_power_against_the_live_house(gx):
    """With the GX's live grid and battery readings, the setpoint is the house's demand now
    plus what the plan wants the battery to do: the battery charges as planned whatever the
    house draws, the grid takes the forecast's error; where the battery only runs the house,
    hub4 is left to plain ESS (no override)."""
    settings_service, system, hub4, client = gx
    system.add_path("/Ac/Grid/L1/Power", 1200.0)        # the house draws 1.2 kW, not 0.3
    system.add_path("/Dc/Battery/Power", 0.0)
    plan = sample_plan()
    writer = await started("setpoint", client)
    await wait_for(lambda: writer.monitor.get_paths("com.victronenergy.hub4"))
    await wait_for(lambda: writer.monitor.get_value("com.victronenergy.system",
                                                    "/Ac/Grid/L1/Power") == 1200.0)
    charge_w = (plan.battery_charge_kwh[0] - plan.battery_discharge_kwh[0]) * 4000
    assert charge_w > 1000                               # the cheap hour charges
    status = await writer.apply(plan, T0 + 10)
    assert status.error is None
    assert hub4[SETPOINT_PATH] == pytest.approx(round((1200 + charge_w) / 10) * 10)
    # hub4 did it: the grid at the setpoint, the battery charging; the setpoint holds
    system["/Ac/Grid/L1/Power"] = 1200.0 + charge_w
    system["/Dc/Battery/Power"] = charge_w
    await wait_for(lambda: writer.monitor.get_value("com.victronenergy.system",
                                                    "/Dc/Battery/Power") == charge_w)
    await writer.apply(plan, T0 + 20)
    assert hub4[SETPOINT_PATH] == pytest.approx(round((1200 + charge_w) / 10) * 10)
    # the dear hours: the battery covers the house as plain ESS does, no override
    assert setpoint_w(plan, T0 + 2 * 3600 + 10, 400.0) is None
    await writer.apply(plan, T0 + 2 * 3600 + 10)
    assert hub4[SETPOINT_PATH] is None
    await writer.release()


def test_the_setpoint_without_live_readings_is_the_planned_grid_exchange():
    plan = sample_plan()
    planned = round((plan.grid_import_kwh[0] - plan.grid_export_kwh[0]) * 4000 / 10) * 10
    assert setpoint_w(plan, T0 + 10) == planned
    assert setpoint_w(plan, T0 + 10, float("nan")) == planned
    assert setpoint_w(plan, T0 - 10, 500.0) is None       # before the plan


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
    assert all(held[schedule_path(i, "Flags")] == 0 for _, i in starts)


# ---- every field systemcalc reads, with its type and range (issue 10, items 1 and 2) --------

def test_registered_dess_settings_are_exactly_what_systemcalc_registers():
    facts = dess_battery_settings(10, 4, 4, round_trip_pct=90, import_limit_kw=17,
                                  export_limit_kw=5)
    specs = dess_setting_specs(facts)
    expected = systemcalc_dess.all_settings()
    registered = {spec.path: (spec.default, spec.min, spec.max) for spec in specs}
    assert len(registered) == len(specs)                   # each once
    for path, spec in registered.items():
        assert path in expected, f"systemcalc does not register {path}"
        assert spec == expected[path], path
        assert type(spec[0]) is type(expected[path][0]), f"{path}: type differs (-5)"
    # every field of every one of the 48 entries, and the schedule fields the writer knows
    entries = {path for path in expected if "/Schedule/" in path}
    assert entries <= set(registered)
    assert set(WINDOW_FIELDS) == set(systemcalc_dess.ENTRY_FIELDS)
    assert SCHEDULE_ENTRIES == systemcalc_dess.NUM_SCHEDULES


def stale_vrm_schedule(start_s, hours=24):
    """What an earlier VRM schedule leaves in the entries: hourly windows with PV off."""
    held = {}
    for i in range(SCHEDULE_ENTRIES):
        used = i < hours
        for field, (default, _, _) in systemcalc_dess.ENTRY_FIELDS.items():
            held[schedule_path(i, field)] = default
        if used:
            held.update({schedule_path(i, "Start"): start_s + 3600 * i,
                         schedule_path(i, "Duration"): 3600,
                         schedule_path(i, "TargetSoc"): 80.0, schedule_path(i, "Soc"): 80,
                         schedule_path(i, "AllowGridFeedIn"): 1,
                         schedule_path(i, "Strategy"): 0,
                         schedule_path(i, "Flags"): systemcalc_dess.FLAG_DISABLE_PV})
    return held


@pytest.mark.parametrize("offset_s", [0, 600])  # VRM's starts match phaeton's, or do not
def test_every_field_systemcalc_reads_is_written_and_unused_entries_are_cleared(offset_s):
    plan = sample_plan()
    held = stale_vrm_schedule(T0 + offset_s)
    windows = dess_windows(plan, T0 + 10, allow_export=True, allow_grid_charging=True)
    writes = dess_writes(windows, held.get)
    for path, value in writes:
        held[path] = value
    assert dess_writes(windows, held.get) == []        # one round converges
    used = [i for i in range(SCHEDULE_ENTRIES) if held[schedule_path(i, "Start")]]
    assert sorted(held[schedule_path(i, "Start")] for i in used) == [w.start_s for w in windows]
    by_start = {w.start_s: w for w in windows}
    for i in range(SCHEDULE_ENTRIES):
        entry = {field: held[schedule_path(i, field)] for field in systemcalc_dess.ENTRY_FIELDS}
        assert entry["Flags"] == 0                      # no PV off, no fast charge left over
        if i not in used:
            assert all(value == 0 for value in entry.values()), entry
            continue
        window = by_start[entry["Start"]]
        assert entry["Duration"] == window.duration_s
        assert isinstance(entry["TargetSoc"], float) and entry["TargetSoc"] == \
            window.target_soc_pct
        assert entry["Soc"] == round(entry["TargetSoc"]) and isinstance(entry["Soc"], int)
        # export and grid charging allowed: only what the window's role blocks (the sample
        # plan charges from the grid, holds, or runs the house; it never sells the battery)
        role = slot_role(plan, int((window.start_s - T0) // 900))
        assert (entry["AllowGridFeedIn"], entry["Restrictions"]) == (1, 1 if role == FROM_GRID
                                                                      else 0)
        assert (window.strategy == STRATEGY_SELF_CONSUME) == (role == FOLLOWS_HOUSE)
    # a window's Start comes after its other fields; a cleared entry's Start comes first
    order = {path: n for n, (path, _) in enumerate(writes)}
    for i in range(SCHEDULE_ENTRIES):
        start, flags = schedule_path(i, "Start"), schedule_path(i, "Flags")
        if start in order and flags in order:
            assert (order[start] > order[flags]) == (i in used)


def test_targets_are_decimals_and_windows_merge_on_the_written_decimal():
    plan = sample_plan(slots=4)
    plan = replace(plan, soc=np.array([0.3, 0.39501, 0.39549, 0.4104, 0.4096]),
                   battery_charge_kwh=np.full(4, 0.1), battery_discharge_kwh=np.zeros(4),
                   grid_import_kwh=np.full(4, 0.5), grid_export_kwh=np.zeros(4))
    windows = dess_windows(plan, T0, allow_export=True, allow_grid_charging=True)
    assert [(w.start_s - T0, w.duration_s, w.target_soc_pct) for w in windows] == [
        (0, 1800, 39.5), (1800, 1800, 41.0)]
    assert windows[0].values()["TargetSoc"] == 39.5 and windows[0].values()["Soc"] == 40


async def test_the_writer_registers_the_schedule_with_systemcalcs_types_and_ranges(gx):
    settings_service, _, _, client = gx
    writer = await started("dess_schedule", client,
                           dess_settings=dess_battery_settings(10, 4, 4, round_trip_pct=90))
    assert writer.status.error is None
    for path, (default, low, high) in systemcalc_dess.all_settings().items():
        if path not in settings_service.settings:
            continue            # systemcalc's own ones phaeton does not use (FullCharge...)
        setting = settings_service.settings[path]
        assert setting.type == ("f" if isinstance(default, float) else "i"), path
        assert setting.default == default, path
        if low == high == 0:
            assert setting.min is None, path
        else:
            assert (setting.min, setting.max) == (low, high), path
    assert all(schedule_path(i, field) in settings_service.settings
               for i in range(SCHEDULE_ENTRIES) for field in systemcalc_dess.ENTRY_FIELDS)


async def test_a_gx_holding_systemcalcs_settings_accepts_them_all(private_bus, tmp_path):
    """On a GX systemcalc registered TargetSoc as a float long before phaeton starts: adding
    phaeton's settings must not be refused (-5), and its targets go on the bus as doubles."""
    settings_service = SettingsService(str(tmp_path / "settings"))
    systemcalc_dess.preload(settings_service)
    await settings_service.register()
    client = SettingsClient()
    await client.start()
    try:
        await client.wait_until_available(10)
        writer = EssWriter("dess_schedule", client, system_value=lambda path: 0)
        await writer.start()
        assert writer.status.error is None
        plan = sample_plan()
        status = await writer.apply(plan, T0 + 10)
        assert status.error is None and settings_service[MODE_PATH] == 4
        targets = [settings_service[schedule_path(i, "TargetSoc")] for i in range(3)]
        assert all(isinstance(target, float) for target in targets)
        answer = await py3dbus("com.victronenergy.settings", schedule_path(0, "TargetSoc"),
                               "GetValue")
        assert answer["ok"]["t"] == "d"
        await writer.close()
    finally:
        await client.close()
        await settings_service.close()


# ---- the GX owner's "Dynamic ESS off" wins (issue 10, item 3) ------------------------------

def test_dess_state_follows_the_owner():
    idle, steering, off = DESS_STATE_IDLE, DESS_STATE_STEERING, DESS_STATE_OWNER_OFF
    assert next_dess_state(idle, 0, False) == idle           # first start: phaeton takes over
    assert next_dess_state(idle, 4, False) == idle           # someone's schedule, not ours yet
    assert next_dess_state(idle, 4, True) == steering        # our schedule, Mode 4 confirmed
    assert next_dess_state(idle, 0, True) == off             # 4 seen, then the owner's 0
    assert next_dess_state(steering, 4, False) == steering
    assert next_dess_state(steering, 0, False) == off        # also after a restart
    assert next_dess_state(steering, 1, False) == steering   # VRM: a conflict, not an off
    assert next_dess_state(steering, None, False) == steering  # unknown: nothing changes
    assert next_dess_state(off, 0, False) == off
    assert next_dess_state(off, 1, False) == off
    assert next_dess_state(off, 4, False) == idle            # the owner's Mode 4 re-enables


async def steering(writer, client, plan):
    """Apply until the GX holds phaeton's Mode 4 and phaeton knows it steers."""
    await writer.apply(plan, T0 + 10)
    await wait_for(lambda: client.get(MODE_PATH) == 4)
    await writer.apply(plan, T0 + 15)
    assert writer.status.dess_state == DESS_STATE_STEERING


async def owner_writes(path, value, client, settings_service):
    """The owner changes a setting on the GX (GUI, VRM, MQTT, dbus)."""
    owner = SettingsClient()
    await owner.start()
    try:
        assert await owner.write(path, value) == 0
    finally:
        await owner.close()
    await wait_for(lambda: client.get(path) == value)
    assert settings_service[path] == value


async def test_the_owner_switching_dess_off_wins_until_mode_4_is_set_again(gx, caplog):
    settings_service, _, _, client = gx
    plan = sample_plan()
    writer = await started("dess_schedule", client)
    await steering(writer, client, plan)
    assert settings_service[DESS_STATE_PATH] == DESS_STATE_STEERING
    await owner_writes(MODE_PATH, 0, client, settings_service)
    with caplog.at_level(logging.WARNING, logger="phaeton.venus.ess"):
        for second in range(3):
            status = await writer.apply(plan, T0 + 20 + second)
    assert settings_service[MODE_PATH] == 0                    # not set back to 4
    assert status.owner_off.startswith("Dynamic ESS was switched off on the GX")
    assert "phaeton does not steer the battery until" in status.owner_off
    assert not status.in_control and status.conflict is None and status.error is None
    assert settings_service[DESS_STATE_PATH] == DESS_STATE_OWNER_OFF   # survives a restart
    assert schedule(settings_service) == []                     # phaeton's windows are gone
    warnings = [r for r in caplog.records if "switched off on the GX" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    writes = status.writes_total
    await writer.apply(plan, T0 + 30)
    await writer.release()                                      # e.g. phaeton stops
    assert writer.status.writes_total == writes and settings_service[MODE_PATH] == 0
    await writer.close()

    # a restart does not override the owner
    writer = await started("dess_schedule", client)
    status = await writer.apply(plan, T0 + 40)
    assert status.owner_off and settings_service[MODE_PATH] == 0
    assert schedule(settings_service) == []

    # the owner sets Mode 4 on the GX again: phaeton steers again
    await owner_writes(MODE_PATH, 4, client, settings_service)
    status = await writer.apply(plan, T0 + 50)
    assert status.owner_off is None and status.in_control and schedule(settings_service)
    await writer.apply(plan, T0 + 55)
    assert settings_service[DESS_STATE_PATH] == DESS_STATE_STEERING
    await writer.close()


async def test_owner_reenabled_lifts_the_owners_off(gx):
    settings_service, _, _, client = gx
    plan = sample_plan()
    writer = await started("dess_schedule", client)
    await steering(writer, client, plan)
    await owner_writes(MODE_PATH, 0, client, settings_service)
    assert (await writer.apply(plan, T0 + 20)).owner_off
    writer.owner_reenabled("the planner Strategy was changed to 2")
    status = await writer.apply(plan, T0 + 30)
    assert status.owner_off is None and settings_service[MODE_PATH] == 4
    assert settings_service[DESS_STATE_PATH] == DESS_STATE_IDLE   # until Mode 4 is seen
    await wait_for(lambda: client.get(MODE_PATH) == 4)
    await writer.apply(plan, T0 + 40)
    assert settings_service[DESS_STATE_PATH] == DESS_STATE_STEERING
    await writer.close()


async def test_dess_switched_off_while_phaeton_was_not_running_is_respected(gx):
    settings_service, _, _, client = gx
    # phaeton steered (DessState 1) and stopped without handing back; meanwhile the owner
    # switched Dynamic ESS off
    settings_service.add_setting(DESS_STATE_PATH, DESS_STATE_STEERING, 0, 2)
    await wait_for(lambda: client.get(DESS_STATE_PATH) == DESS_STATE_STEERING)
    writer = await started("dess_schedule", client)
    status = await writer.apply(sample_plan(), T0 + 10)
    assert status.owner_off and settings_service[MODE_PATH] == 0
    assert settings_service[DESS_STATE_PATH] == DESS_STATE_OWNER_OFF
    await writer.close()


async def test_phaetons_own_hand_back_is_not_the_owners_off(gx):
    settings_service, _, _, client = gx
    plan = sample_plan()
    writer = await started("dess_schedule", client)
    await steering(writer, client, plan)
    await writer.release()                      # phaeton hands back: Mode 0, DessState 0
    assert settings_service[MODE_PATH] == 0
    assert settings_service[DESS_STATE_PATH] == DESS_STATE_IDLE
    await writer.close()
    writer = await started("dess_schedule", client)     # the next start takes over again
    status = await writer.apply(plan, T0 + 20)
    assert status.owner_off is None and settings_service[MODE_PATH] == 4
    await writer.close()


async def test_another_ess_control_clears_the_owners_off(gx):
    settings_service, _, _, client = gx
    settings_service.add_setting(DESS_STATE_PATH, DESS_STATE_OWNER_OFF, 0, 2)
    await wait_for(lambda: client.get(DESS_STATE_PATH) == DESS_STATE_OWNER_OFF)
    writer = await started("setpoint", client)     # the owner changed planner.ess_control
    assert settings_service[DESS_STATE_PATH] == DESS_STATE_IDLE
    await writer.close()


def test_a_slot_the_plan_runs_in_two_parts_is_two_target_windows():
    """Strongly negative prices: the plan charges for the first 6 minutes of slot 1, then
    discharges. DESS gets a window to the SoC at the switch and one back to the slot's end SoC
    (one window to the end SoC would only make the net move and give up the gain)."""
    from phaeton.planning.model import SlotMix
    plan = sample_plan(slots=3)
    plan = replace(plan, soc=np.array([0.5, 0.5, 0.45, 0.45]),
                   battery_charge_kwh=np.array([0.0, 0.5, 0.0]),
                   battery_discharge_kwh=np.array([0.0, 1.0, 0.0]),
                   grid_import_kwh=np.array([0.3, 0.8, 0.3]), grid_export_kwh=np.zeros(3),
                   battery_mixes=(SlotMix(slot=1, first_kw=5.0, first_s=360.0,
                                          second_kw=-4.5, mid_soc=0.55),))
    windows = dess_windows(plan, T0, allow_export=True, allow_grid_charging=True)
    target, own = STRATEGY_TARGET_SOC, STRATEGY_SELF_CONSUME
    assert [(w.start_s - T0, w.duration_s, w.target_soc_pct, w.strategy) for w in windows] == [
        (0, 900, 50.0, own), (900, 360, 55.0, target), (1260, 540, 45.0, target),
        (1800, 900, 45.0, own)]             # the resting slots around it are self-consumption
    without = dess_windows(replace(plan, battery_mixes=()), T0, allow_export=True,
                           allow_grid_charging=True)
    assert [(w.start_s - T0, w.duration_s, w.target_soc_pct, w.strategy) for w in without] == [
        (0, 900, 50.0, own), (900, 900, 45.0, target), (1800, 900, 45.0, own)]   # the net move
