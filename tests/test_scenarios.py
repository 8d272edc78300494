"""Scenarios on a simulated GX: phaeton running against real D-Bus services and the Alfen
simulator, driven the way a user would (dbus-send, python3-dbus), in accelerated time."""
from __future__ import annotations

import json
import os

import pytest

from scripted_gx import NAME, VOLTAGE, ScriptedGx
from phaeton.app import Phaeton
from phaeton.config import load_config
from dbus_clients import SYSTEM_PYTHON, dbus_send, run

pytestmark = pytest.mark.slow


@pytest.fixture
async def gx(private_bus, tmp_path):
    async with ScriptedGx(private_bus, str(tmp_path)) as world:
        yield world


def applied(gx) -> float:
    return gx.alfen.applied_current_a


def charging(gx) -> bool:
    """phaeton says Charging and the station applies a real current (before phaeton's first
    setpoint the simulated station applies its own 6 A safe current, which must not count)."""
    return gx.phaeton.loadpoints[0].evcharger.service["/Status"] == 2 and applied(gx) >= 6


SCAN = r"""
import json, dbus
bus = dbus.SystemBus()
items = bus.get_object("%s", "/", introspect=False).get_dbus_method(
    "GetItems", "com.victronenergy.BusItem")()
print(json.dumps({str(p): (None if isinstance(d["Value"], dbus.Array) and not d["Value"]
                            else (str(d["Value"]) if isinstance(d["Value"], dbus.String)
                                  else float(d["Value"]))) for p, d in items.items()}))
""" % NAME


async def test_acceptance_scan_auto_follows_surplus_and_cli_stop(gx):
    app = await gx.start_phaeton()
    code, out, err = await run(SYSTEM_PYTHON, "-c", SCAN)
    assert code == 0, err
    items = json.loads(out)
    assert items["/DeviceInstance"] == 40 and items["/ProductName"] == "EV Charging Station"
    assert {"/Mode", "/StartStop", "/SetCurrent", "/Status", "/Ac/Energy/Forward",
            "/Session/Energy", "/Position", "/Mgmt/Connection"} <= set(items)
    # the energy planner's live state is on the same service
    assert {"/Planner/Strategy", "/Planner/Reason", "/Planner/DessConflict"} <= set(items)

    gx.system.pv_w = [2500.0, 2500.0, 2500.0]           # 7.5 kW PV, 0.9 kW house
    assert "int32 0" in await dbus_send(NAME, "/Mode", "SetValue", "variant:int32:1")
    assert app.loadpoints[0].choices.mode == 1
    gx.alfen.plug_in()
    await gx.until(lambda: charging(gx), 120, "Auto to start on surplus")
    await gx.run_for(40)
    # it follows the surplus: about (7500 - 900) / 3 / 230 = 9.5 A, never importing
    assert 8 <= applied(gx) <= 10.5
    assert all(w < 150 for w in gx.system.grid_w())
    assert app.loadpoints[0].evcharger.service["/Status"] == 2

    ticks = app.site.ticks
    assert "int32 0" in await dbus_send(NAME, "/StartStop", "SetValue", "variant:string:0")
    await gx.until(lambda: applied(gx) == 0, 4, "StartStop 0 to stop the charger")
    assert app.site.ticks - ticks <= 2          # within one tick of the write
    assert app.loadpoints[0].evcharger.service["/StartStop"] == 0


async def test_passing_cloud_does_not_flap(gx):
    app = await gx.start_phaeton()
    gx.system.pv_w = [2500.0] * 3
    app.loadpoints[0].evcharger.write("/Mode", 1)
    gx.alfen.plug_in()
    await gx.until(lambda: charging(gx), 120, "surplus charging")
    await gx.run_for(30)
    gx.system.pv_w = [200.0] * 3                        # a cloud for 60 s (< disable delay)
    lowest = 99.0
    for _ in range(60):
        await gx.run_for(1)
        lowest = min(lowest, applied(gx))
    gx.system.pv_w = [2500.0] * 3
    await gx.run_for(40)
    assert lowest >= 6, "charging stopped during a short cloud"
    assert applied(gx) >= 8


async def test_house_spike_is_cut_at_once_and_recovers_after_the_delay(gx):
    app = await gx.start_phaeton()                      # Manual, started, 16 A
    gx.alfen.plug_in()
    await gx.until(lambda: applied(gx) == 16, 30, "manual full current")
    gx.system.house_w = [3000.0, 300.0, 300.0]          # 13 A on L1: 12 A left under 25 A
    await gx.until(lambda: applied(gx) <= 12, 5, "the fuse cut")
    assert gx.system.grid_w()[0] / VOLTAGE <= 25.0 + 0.5
    # the status names the fuse within a tick or two (a tick that reads the grid meter before
    # the car's own meter has followed the cut can see room again for a moment)
    await gx.until(lambda: app.status()["bound_by"] == "fuse", 5, "the status names the fuse")
    assert app.loadpoints[0].evcharger.service["/Status"] == 20       # Charging limit
    gx.system.house_w = [300.0] * 3
    await gx.run_for(15)
    assert applied(gx) <= 12, "must not rise before the recovery delay"
    await gx.until(lambda: applied(gx) == 16, 60, "recovery after the delay")


async def test_low_home_battery_soc_in_auto(gx):
    app = await gx.start_phaeton()
    gx.system.pv_w = [2500.0] * 3
    gx.system.battery_soc_pct = 5.0                     # below the active SoC limit of 10 %
    app.loadpoints[0].evcharger.write("/Mode", 1)
    gx.alfen.plug_in()
    await gx.until(lambda: app.loadpoints[0].evcharger.service["/Status"] == 7, 60, "Low SOC status")
    # It stays that way although 6.6 kW is exported: the battery is in its ESS reserve.
    await gx.run_for(120)
    assert app.loadpoints[0].evcharger.service["/Status"] == 7 and applied(gx) == 0
    gx.system.battery_soc_pct = 30.0                    # recovered: surplus charging starts
    await gx.until(lambda: charging(gx), 120, "charging after the battery recovered")


async def test_restart_mid_session_continues_it(gx):
    app = await gx.start_phaeton()
    gx.alfen.plug_in()
    app.loadpoints[0].evcharger.write("/SetCurrent", 10)
    await gx.until(lambda: applied(gx) == 10, 30, "charging at 10 A")
    await gx.run_for(600)
    energy_before = app.status()["session"]["energy_kwh"]
    assert energy_before > 0.5
    await gx.stop_phaeton()
    assert gx.alfen.applied_current_a == 0               # left at the safe current (0 A)
    app = await gx.start_phaeton()
    assert app.loadpoints[0].choices.set_current_a == 10.0             # the user's choice survived
    await gx.until(lambda: applied(gx) == 10, 30, "charging again after the restart")
    await gx.run_for(60)
    session = app.status()["session"]
    assert session["active"] and session["energy_kwh"] > energy_before
    assert app.loadpoints[0].evcharger.service["/Session/Energy"] > energy_before


async def test_unplug_ends_and_stores_the_session(gx):
    app = await gx.start_phaeton()
    gx.alfen.plug_in()
    await gx.until(lambda: applied(gx) == 16, 30, "charging")
    await gx.run_for(300)
    gx.alfen.plug_out()
    await gx.until(lambda: app.loadpoints[0].evcharger.service["/Status"] == 0, 10, "Disconnected status")
    sessions = app.session_store.list_sessions()
    assert len(sessions) == 1
    assert sessions[0].energy_kwh > 0.5
    assert app.status()["session"]["active"] is False


async def test_a_full_car_is_shown_as_charged_with_the_reason_until_it_takes_current(gx):
    app = await gx.start_phaeton()                       # Manual, 16 A
    gx.ev.soc_pct = 79.0
    gx.ev.target_soc_pct = 80.0                          # the car's own limit: nearly there
    gx.alfen.plug_in()
    await gx.until(lambda: gx.ev.full, 1800, "the car to reach its own limit")
    service = app.loadpoints[0].evcharger.service
    await gx.until(lambda: service["/Status"] == 3, 200, "/Status 3 Charged")
    status = app.status()
    assert status["car_full"] is True and status["status_text"] == "Charged"
    assert "the car takes no current" in status["reason"]
    assert status["offered_current_a"] == 16.0 and applied(gx) == 16   # still offered
    assert max(status["current_a"]) < 1.0
    # the owner raises the car's limit: it takes current again and is charging at once
    gx.ev.target_soc_pct = 100.0
    await gx.until(lambda: service["/Status"] == 2, 20, "charging again")
    assert app.status()["car_full"] is False


async def test_charger_offline_and_back(gx):
    app = await gx.start_phaeton()
    gx.alfen.plug_in()
    await gx.until(lambda: applied(gx) == 16, 30, "charging")
    await gx.alfen.stop()
    await gx.until(lambda: app.loadpoints[0].evcharger.service["/Connected"] == 0, 30, "/Connected 0")
    assert app.status()["charger"]["connected"] is False
    assert app.loadpoints[0].evcharger.service["/Ac/Power"] is None
    await gx.alfen.start()
    await gx.until(lambda: app.loadpoints[0].evcharger.service["/Connected"] == 1, 120, "reconnect")
    await gx.until(lambda: applied(gx) == 16, 30, "setpoint re-sent after the reconnect")


async def test_status_before_the_first_step_has_every_key_a_client_reads(gx):
    """The web UI and /api/status may ask the moment the web server is up: the answer is the
    documented shape with the owner's choices filled in and the unknowns None, never {}."""
    path = gx.config_path()
    app = Phaeton(load_config(path), config_path=path, clock=gx.clock)   # not started: no step
    early = app.status()
    assert early["mode"] == app.loadpoints[0].choices.mode and early["status_text"] == "Starting"
    assert early["status_code"] is None and early["charger"]["connected"] is False
    assert early["power"]["grid_w"] == [None, None, None] and early["readings_stale"] is True
    await app.start()
    try:
        await gx.until(lambda: app.status()["status_code"] is not None, 30, "the first step")
        later = app.status()
    finally:
        await app.stop()
    assert set(early) == set(later)
    for section in ("charger", "power", "session"):
        assert set(early[section]) == set(later[section])


async def test_stale_gx_readings_fall_back_to_safe_current(gx, caplog):
    caplog.set_level("INFO", logger="phaeton.app")
    app = await gx.start_phaeton()
    gx.system.pv_w = [2500.0] * 3
    app.loadpoints[0].evcharger.write("/Mode", 1)
    gx.alfen.plug_in()
    await gx.until(lambda: charging(gx), 120, "surplus charging")
    gx.system.frozen = True
    await gx.until(lambda: applied(gx) == 0, 60, "the safe current (0 A)")
    assert "stale" in app.status()["reason"].lower()
    assert app.status()["readings_stale"] is True
    # the owner finds it in the log too, once, as a warning
    stale = [r for r in caplog.records if "GX readings stale" in r.getMessage()]
    assert len(stale) == 1 and stale[0].levelname == "WARNING"
    gx.system.frozen = False
    await gx.until(lambda: charging(gx), 120, "charging again with fresh readings")
    after = caplog.records[caplog.records.index(stale[0]) + 1:]
    assert any(r.levelname == "INFO" and "solar surplus" in r.getMessage() for r in after)


async def test_phase_choice_written_from_the_cli_switches_the_charger_in_manual(
        private_bus, tmp_path):
    """/SetPhases is the choice, /Ac/PhaseCount what is in use: a choice of 1 reads back 1
    while the station still runs on 3, and a later choice of 3 is not lost (it used to be,
    when the tick wrote the measured 3 into the path that held the choice)."""
    async with ScriptedGx(private_bus, str(tmp_path),
                          control={"phase_switching": {"enabled": True, "settle_s": 10}}) as gx:
        app = await gx.start_phaeton()                  # Manual, started, 16 A on 3 phases
        gx.alfen.plug_in()
        await gx.until(lambda: applied(gx) == 16 and gx.alfen.phases == 3, 30, "3-phase charging")
        assert app.loadpoints[0].evcharger.service["/Ac/PhaseCount"] == 3
        assert "int32 0" in await dbus_send(NAME, "/SetPhases", "SetValue",
                                            "variant:string:1")
        await gx.run_for(2)                             # a tick or more, still switching
        assert app.loadpoints[0].evcharger.service["/SetPhases"] == 1
        await gx.until(lambda: gx.alfen.phases == 1 and applied(gx) == 16, 90,
                       "the station on 1 phase, charging again")
        await gx.run_for(10)                            # the car follows the station
        assert app.loadpoints[0].evcharger.service["/Ac/PhaseCount"] == 1
        assert app.loadpoints[0].evcharger.service["/SetPhases"] == 1
        assert sum(1 for a in gx.alfen.phase_currents_a() if a > 0) == 1
        # back to 3: the write reaches phaeton, is kept, and the station follows
        assert "int32 0" in await dbus_send(NAME, "/SetPhases", "SetValue", "variant:int32:3")
        assert app.loadpoints[0].choices.phases == 3
        assert app.loadpoints[0].state_file.load()["phases"] == 3
        await gx.until(lambda: gx.alfen.phases == 3 and applied(gx) == 16, 90,
                       "the station on 3 phases again")
        await gx.run_for(10)                            # the car follows the station
        assert app.loadpoints[0].evcharger.service["/Ac/PhaseCount"] == 3


async def test_saving_settings_mid_charge_keeps_the_fuse_hold_and_applies_the_planner(gx):
    from phaeton.config import config_to_dict

    app = await gx.start_phaeton()                      # Manual, 16 A
    gx.alfen.plug_in()
    await gx.until(lambda: applied(gx) == 16, 30, "manual full current")
    gx.system.house_w = [3000.0, 300.0, 300.0]
    await gx.until(lambda: applied(gx) <= 12, 5, "the fuse cut")
    gx.system.house_w = [300.0] * 3
    await gx.until(lambda: "fuse recovery" in app.status()["reason"], 10, "the recovery hold")
    data = config_to_dict(app.cfg)
    data["session"]["price_per_kwh"] = 0.25             # the owner saves the settings page
    data["planner"]["strategy"] = "self_consumption"
    old_planner = app.site.planner
    assert await app.apply_config(data) == []
    await gx.run_for(10)
    assert applied(gx) <= 12, "the save must not cut the fuse recovery short"
    assert app.status()["bound_by"] == "fuse"
    assert app.loadpoints[0].tracker.price_per_kwh == 0.25
    assert app.site.planner is not old_planner and app.site.planner.planner_cfg["strategy"] == \
        "self_consumption"
    await gx.until(lambda: applied(gx) == 16, 60, "recovery after the delay")


async def test_a_settings_service_that_comes_late_is_attached_when_it_appears(
        private_bus, tmp_path):
    from velib.settings_service import SettingsService

    async with ScriptedGx(private_bus, str(tmp_path)) as gx:
        await gx.settings.close()                       # the GX is still booting
        app = await gx.start_phaeton()                  # waits 5 s, then runs without it
        assert app.loadpoints[0].evcharger.service["/DeviceInstance"] == 40
        gx.settings = SettingsService(os.path.join(str(tmp_path), "settings-late"))
        await gx.settings.register()
        knob = "/Settings/Phaeton/Planner/Strategy"
        instance = "/Settings/Devices/phaeton_0/ClassAndVrmInstance"
        await gx.until(lambda: knob in gx.settings.settings and instance in gx.settings.settings,
                       30, "phaeton's settings added to the late settings service")
        assert gx.settings[instance] == "evcharger:40"
        # and they are live: the GX GUI changes the strategy, the planner follows
        gx.settings[knob] = 1
        await gx.until(lambda: app.site.planner.knobs.strategy == 1, 30, "the planner following")


async def test_a_load_spike_is_cut_at_the_meter_s_pace_not_the_tick_s(private_bus, tmp_path):
    """With a 30 s tick, a spike right after a tick is still cut within a few meter updates
    (the GX publishes every second): phaeton follows the system service's updates."""
    async with ScriptedGx(private_bus, str(tmp_path), control={"tick_s": 30, "stale_after_s": 90}) as gx:
        app = await gx.start_phaeton()                  # Manual, started, 16 A
        gx.alfen.plug_in()
        await gx.until(lambda: applied(gx) == 16, 90, "manual full current")
        ticks = app.site.ticks
        await gx.until(lambda: app.site.ticks > ticks, 60, "a tick")
        ticks = app.site.ticks
        gx.system.house_w = [3000.0, 300.0, 300.0]      # 13 A on L1: 12 A left under 25 A
        await gx.until(lambda: applied(gx) <= 12, 10, "the fuse cut before the next tick")
        assert app.site.fuse_wakes >= 1
        assert app.site.ticks <= ticks + 2                   # a step run early, not a tick later
        assert app.status()["bound_by"] == "fuse"


async def test_two_quick_name_writes_never_read_back_the_older_one(gx):
    import asyncio

    from dbus_clients import SignalRecorder

    app = await gx.start_phaeton()
    setting = "/Settings/Devices/phaeton_0/CustomName"
    names = []
    async with SignalRecorder(NAME) as recorder:
        assert app.loadpoints[0].evcharger.write("/CustomName", "First") == 0    # two saves from the web UI
        assert app.loadpoints[0].evcharger.write("/CustomName", "Garage") == 0
        try:
            while True:                                  # every signal while the echoes arrive
                signal = await recorder.next(timeout=1.5)
                for path, item in _changed_items(signal):
                    if path == "/CustomName":
                        names.append(item["Value"])
        except asyncio.TimeoutError:
            pass
    assert names == ["First", "Garage"]
    assert app.loadpoints[0].evcharger.service["/CustomName"] == "Garage"
    assert gx.settings[setting] == "Garage"
    # a rename on the GX (through the settings) still comes through
    assert gx.settings.write(setting, "Carport") == 0
    await gx.until(lambda: app.loadpoints[0].evcharger.service["/CustomName"] == "Carport", 10, "the GX's name")


def _changed_items(signal: dict) -> list[tuple[str, dict]]:
    """(path, {Value, Text}) of a recorded PropertiesChanged or ItemsChanged."""
    if signal["member"] == "ItemsChanged":
        return list(signal["body"].items())
    return [(signal["path"], signal["body"])]


async def test_an_overrunning_tick_never_starves_the_bus_or_stop(private_bus, tmp_path):
    """A tick interval no tick can keep (what the schema now refuses, forced past it) with a
    charger that never answers, so a tick awaits nothing: D-Bus still answers and stop works."""
    import asyncio

    from phaeton.app import Phaeton
    from phaeton.config import Config, config_to_dict, load_config

    async with ScriptedGx(private_bus, str(tmp_path)) as gx:
        path = gx.config_path()
        data = config_to_dict(load_config(path))
        data["control"]["tick_s"] = 1e-9
        data["charger"]["alfen"]["port"] = 1            # nobody listens there
        app = Phaeton(Config(data), config_path=path, clock=gx.clock)
        await app.start()
        try:
            ticks = app.site.ticks
            out = await dbus_send(NAME, "/Connected", "GetValue")
            assert "int32 0" in out
            assert app.site.ticks > ticks                    # it does tick meanwhile
        finally:
            await asyncio.wait_for(app.stop(), 30)


async def test_a_loop_woken_without_pause_still_leaves_the_minimum_gap_between_ticks(gx):
    """A client writing as fast as it can wakes the loop over and over: the ticks that follow
    stay MIN_TICK_GAP_S (simulated) apart, so the bus and the web server keep their turns."""
    import asyncio
    import time

    from phaeton.site import MIN_TICK_GAP_S

    site = (await gx.start_phaeton()).site
    gap_real_s = MIN_TICK_GAP_S / site.clock.speed
    window_s = max(1.0, 40 * gap_real_s)
    ticks = site.ticks
    end = time.perf_counter() + window_s
    while time.perf_counter() < end:
        site.wake()
        await asyncio.sleep(0)
    woken_ticks = site.ticks - ticks
    assert 2 <= woken_ticks <= window_s / gap_real_s + 2

