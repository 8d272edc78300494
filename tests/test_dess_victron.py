"""Dynamic ESS against a simulated GX that holds and reads what Victron's systemcalc does.

The GX: `SimWorld`'s localsettings-compatible settings service, seeded with the DESS settings
dbus-systemcalc-py registers (`delegates/dynamicess.py` get_settings: TargetSoc a decimal, the
legacy integer Soc, Flags, ... for 48 entries), and its simulated `com.victronenergy.system`,
which runs the schedule the way systemcalc does: the window in force with Mode 4 steers the
battery, and its Flags bit 2 switches PV off (`/Pv/Disable` 1, no PV power).

An earlier VRM schedule left hourly windows with Flags 2 (PV off) and whole-number targets;
the owner switched VRM's Dynamic ESS off (Mode 0) and let phaeton steer with its own
schedule. Phaeton's windows must not inherit the PV switch-off.
"""
from __future__ import annotations

import asyncio
from datetime import datetime

import numpy as np

from phaeton.planning.model import BatterySpec, GridSpec, PlanProblem
from phaeton.planning.optimizer import plan as optimise
from phaeton.sim.world import SimWorld
from phaeton.venus.ess_writer import (
    MODE_PATH,
    EssWriter,
    dess_battery_settings,
    dess_windows,
)
from tests import systemcalc_dess
from tests.dbus_clients import py3dbus
from velib.settings import SettingsClient

SETTINGS = "com.victronenergy.settings"
SYSTEM = "com.victronenergy.system"
START = datetime(2026, 6, 1, 11, 0)     # a clear June late morning: plenty of PV
entry_path = systemcalc_dess.entry_path


def leave_stale_vrm_schedule(settings_service, now_s: float, hours: int = 24) -> int:
    """Hourly VRM windows from the current hour on, all with Flags 2 (PV off) and a
    whole-number target: TargetSoc 80.0 (the setting is a float, systemcalc registered it so)
    and the legacy Soc 80. Returns the first window's start."""
    first = int(now_s // 3600 * 3600)
    for i in range(hours):
        for field, value in (("Duration", 3600), ("TargetSoc", 80.0), ("Soc", 80),
                             ("AllowGridFeedIn", 1), ("Restrictions", 0), ("Strategy", 0),
                             ("Flags", systemcalc_dess.FLAG_DISABLE_PV),
                             ("Start", first + 3600 * i)):
            settings_service[entry_path(i, field)] = value
    return first


async def sim_updates(world: SimWorld, count: int, timeout_s: float = 20.0) -> None:
    """Wait until the simulated system service has published `count` more batches."""
    target = world.system.updates + count

    async def poll():
        while world.system.updates < target:
            await asyncio.sleep(0.01)
    await asyncio.wait_for(poll(), timeout_s)


async def until(condition, timeout_s: float = 20.0) -> None:
    async def poll():
        while not condition():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(poll(), timeout_s)


def pv_w(world: SimWorld) -> float:
    svc = world.system.service
    return (svc["/Dc/Pv/Power"] or 0.0) + sum(svc[f"/Ac/PvOnGrid/L{n}/Power"] or 0.0
                                              for n in (1, 2, 3))


def evening_plan(now_s: float, soc_pct: float):
    """Cheap now, dear tonight: the battery is charged from the grid to a target, then runs
    the house."""
    start = now_s // 900 * 900
    slots = 32
    buy = np.array([0.10] * 8 + [0.45] * 24)
    return optimise(PlanProblem(
        slot_start_s=start + 900.0 * np.arange(slots), import_price_eur_per_kwh=buy,
        export_price_eur_per_kwh=np.full(slots, 0.05), load_kwh=np.full(slots, 0.4),
        pv_kwh=np.zeros(slots),
        battery=BatterySpec(capacity_kwh=10, soc_now=soc_pct / 100.0, soc_min=0.1,
                            max_charge_kw=3.3, max_discharge_kw=4),
        grid=GridSpec(import_limit_kw=17, export_limit_kw=5)))


async def test_phaeton_takes_over_a_stale_vrm_schedule_and_pv_stays_on(monkeypatch):
    async with SimWorld(speed=60, start=START, update_interval_s=5) as world:
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", world.bus_address)
        settings = world.settings
        leave_stale_vrm_schedule(settings, world.clock.time())
        assert settings[MODE_PATH] == 0                     # the owner switched VRM's DESS off
        await sim_updates(world, 2)
        assert world.system.service["/Pv/Disable"] == 0 and pv_w(world) > 1000

        client = SettingsClient(clock=world.clock, bus_address=world.bus_address)
        await client.start()
        writer = EssWriter("dess_schedule", client, clock=world.clock,
                           bus_address=world.bus_address,
                           system_value=world.system.service.__getitem__,
                           dess_settings=dess_battery_settings(10, 3.3, 4))
        try:
            await client.wait_until_available(10)
            await writer.start()
            assert writer.status.error is None                  # nothing refused (-5)
            now = world.clock.time()
            plan = evening_plan(now, world.site.battery_soc_pct)
            status = await writer.apply(plan, now)
            assert status.error is None and status.in_control and settings[MODE_PATH] == 4
            windows = dess_windows(plan, now, allow_export=True, allow_grid_charging=True)

            # every entry: Flags 0; phaeton's windows carry a decimal target and its rounding
            assert [settings[entry_path(i, "Flags")] for i in range(48)] == [0] * 48
            used = {settings[entry_path(i, "Start")]: i for i in range(48)
                    if settings[entry_path(i, "Start")]}
            assert sorted(used) == [w.start_s for w in windows]
            for window in windows[:3]:
                index = used[window.start_s]
                answer = await py3dbus(SETTINGS, entry_path(index, "TargetSoc"), "GetValue")
                assert answer["ok"] == {"t": "d", "v": window.target_soc_pct}
                assert settings[entry_path(index, "Soc")] == round(window.target_soc_pct)
            # the GX runs phaeton's windows with their targets: where the plan charges from
            # the grid a target SoC, where the battery only runs the house self-consumption
            for window in windows[:4]:
                running = world.dess_target_at(window.start_s + 1)
                if window.strategy == 0:
                    assert running.target_soc_pct == window.target_soc_pct
                else:
                    assert running is None
            assert any(window.strategy == 0 for window in windows[:4])

            # and PV stays on: /Pv/Disable 0 in every update, PV still produces
            seen = set()
            for _ in range(10):
                await sim_updates(world, 1)
                seen.add(world.system.service["/Pv/Disable"])
            assert seen == {0}
            assert (await py3dbus(SYSTEM, "/Pv/Disable", "GetValue"))["ok"] == {"t": "i", "v": 0}
            assert pv_w(world) > 1000
        finally:
            await writer.close()
            await client.close()


async def test_the_simulated_gx_switches_pv_off_for_a_window_with_flags_2(monkeypatch):
    async with SimWorld(speed=60, start=START, update_interval_s=5) as world:
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", world.bus_address)
        settings, svc = world.settings, world.system.service
        first = leave_stale_vrm_schedule(settings, world.clock.time())
        await sim_updates(world, 2)
        assert svc["/Pv/Disable"] == 0 and pv_w(world) > 1000     # Mode 0: flags do nothing
        # Mode 4 over the stale entries (what phaeton did when it left Flags alone)
        settings[MODE_PATH] = 4
        await until(lambda: svc["/Pv/Disable"] == 1)
        await sim_updates(world, 1)
        assert (await py3dbus(SYSTEM, "/Pv/Disable", "GetValue"))["ok"] == {"t": "i", "v": 1}
        assert pv_w(world) == 0.0                                   # the inverters are off
        # the window in force without Flags 2: PV comes back
        current = next(i for i in range(24) if first + 3600 * i <= world.clock.time()
                       < first + 3600 * (i + 1))
        settings[entry_path(current, "Flags")] = 0
        await until(lambda: svc["/Pv/Disable"] == 0)
        await sim_updates(world, 1)
        assert pv_w(world) > 1000
        # Flags 1 (fast charge) is no PV switch-off either, and Mode 0 ends every window
        settings[entry_path(current, "Flags")] = systemcalc_dess.FLAG_FAST_CHARGE
        await sim_updates(world, 2)
        assert svc["/Pv/Disable"] == 0
        settings[entry_path(current, "Flags")] = systemcalc_dess.FLAG_DISABLE_PV
        await until(lambda: svc["/Pv/Disable"] == 1)
        settings[MODE_PATH] = 0
        await until(lambda: svc["/Pv/Disable"] == 0)


async def test_the_simulated_gx_reads_the_legacy_soc_where_target_soc_is_0():
    async with SimWorld(speed=60, start=START, update_interval_s=5) as world:
        settings = world.settings
        leave_stale_vrm_schedule(settings, world.clock.time())
        settings[MODE_PATH] = 4
        now = world.clock.time()
        assert world.dess_target_at(now).target_soc_pct == 80.0
        assert world.dess_pv_disabled_at(now)
        for i in range(24):
            settings[entry_path(i, "TargetSoc")] = 0.0
            settings[entry_path(i, "Soc")] = 65
        assert world.dess_target_at(now).target_soc_pct == 65.0      # systemcalc's fallback
