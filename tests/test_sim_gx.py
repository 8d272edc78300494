"""The simulated com.victronenergy.system, seen by independent clients on a private bus.

Clients: Debian's python3-dbus (one GetItems, like velib's dbusmonitor), dbus-send, and
phaeton's own GxSystemReader. Time runs on a ScaledClock so minutes pass in fractions of a second.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
from datetime import datetime

import pytest

from phaeton.clock import ScaledClock
from phaeton.sim import gx_system
from phaeton.sim.gx_system import (
    SERVICE_NAME,
    SimulatedSite,
    SimulatedSystemService,
    battery_electrics,
)
from phaeton.sim.site import SiteConfig, SiteModel
from phaeton.venus.system_reader import GxSystemReader
from tests.dbus_clients import SignalRecorder, name_has_owner, py3dbus

SECTION7_PATHS = (
    [f"/Ac/{kind}/L{n}/Power" for kind in ("PvOnGrid", "PvOnOutput", "PvOnGenset", "Grid",
                                           "Consumption", "ConsumptionOnInput",
                                           "ConsumptionOnOutput") for n in (1, 2, 3)]
    + ["/Dc/Pv/Power", "/Dc/Battery/Soc", "/Dc/Battery/Power", "/Dc/Battery/Voltage",
       "/Dc/Battery/Current", "/Control/ActiveSocLimit", "/Ac/ActiveIn/Source", "/Serial"])
MANDATORY = ["/DeviceInstance", "/ProductName", "/Mgmt/ProcessName", "/Mgmt/ProcessVersion",
             "/Mgmt/Connection", "/Connected", "/ProductId", "/FirmwareVersion"]

NOON = datetime(2026, 6, 1, 12, 0)
NIGHT = datetime(2026, 6, 1, 2, 0)
QUIET = SiteConfig(appliances=(), battery_initial_soc_pct=20.0)   # no random loads, battery empty


async def get_items() -> dict[str, dict]:
    """One GetItems on / from python3-dbus: {path: {"t": type, "v": value}}."""
    answer = await py3dbus(SERVICE_NAME, "/", "GetItems")
    assert "ok" in answer, answer
    return {path: entry["v"]["Value"] for path, entry in answer["ok"]["v"].items()}


def value(items: dict, path: str):
    item = items[path]
    return None if item["t"].startswith("a") and item["v"] == [] else item["v"]


async def until(predicate, clock, limit_s: float = 600.0):
    """Wait (in simulated time, at most limit_s) until predicate() is true."""
    start = clock.monotonic()
    while not predicate():
        assert clock.monotonic() - start < limit_s, "condition not reached in simulated time"
        await asyncio.sleep(0.01)


def make_service(start=NOON, config=None, speed=200.0, **kwargs):
    clock = ScaledClock(speed, start=start.timestamp())
    site = SimulatedSite(seed=3, start=start, config=config)
    kwargs.setdefault("meter_noise_w", 0.0)   # exact watts; the noise has its own test
    return SimulatedSystemService(site=site, clock=clock, **kwargs), clock


async def test_discovered_with_one_getitems_with_every_path_typed_like_victron(private_bus):
    service, _clock = make_service()
    async with service:
        items = await get_items()
    for path in SECTION7_PATHS + MANDATORY:
        assert path in items, f"{path} missing from GetItems"
    # floats as doubles, ints as int32, absent PV kinds invalid (ai [])
    for n in (1, 2, 3):
        assert items[f"/Ac/Grid/L{n}/Power"]["t"] == "d"
        assert items[f"/Ac/Consumption/L{n}/Power"]["t"] == "d"
        assert items[f"/Ac/PvOnGrid/L{n}/Power"]["t"] == "d"
        assert items[f"/Ac/PvOnOutput/L{n}/Power"] == {"t": "ai", "v": []}
        assert items[f"/Ac/PvOnGenset/L{n}/Power"] == {"t": "ai", "v": []}
    assert items["/DeviceInstance"] == {"t": "i", "v": 0}
    assert items["/Ac/ActiveIn/Source"] == {"t": "i", "v": 1}
    assert items["/Connected"] == {"t": "i", "v": 1}
    assert items["/Dc/Battery/Soc"]["t"] == "d"
    assert items["/Mgmt/Connection"]["v"] == "data from other dbus processes"
    serial = value(items, "/Serial")
    assert isinstance(serial, str) and len(serial) == 12 and int(serial, 16) >= 0
    # like dbus-systemcalc-py: no product id or name of its own
    assert value(items, "/ProductName") is None and value(items, "/ProductId") is None
    # plausible values at noon in June
    assert 0.0 <= value(items, "/Dc/Battery/Soc") <= 100.0
    assert value(items, "/Dc/Pv/Power") > 500.0
    assert sum(value(items, f"/Ac/PvOnGrid/L{n}/Power") for n in (1, 2, 3)) > 1000.0
    assert value(items, "/Control/ActiveSocLimit") == 20.0
    assert 45.0 < value(items, "/Dc/Battery/Voltage") < 60.0


async def test_power_balance_holds_on_the_bus(private_bus):
    service, clock = make_service()
    async with service:
        await until(lambda: service.updates >= 3, clock)
        items = await get_items()
    grid = sum(value(items, f"/Ac/Grid/L{n}/Power") for n in (1, 2, 3))
    pv_ac = sum(value(items, f"/Ac/PvOnGrid/L{n}/Power") for n in (1, 2, 3))
    pv_dc = value(items, "/Dc/Pv/Power")
    consumption = sum(value(items, f"/Ac/Consumption/L{n}/Power") for n in (1, 2, 3))
    battery = value(items, "/Dc/Battery/Power")
    # grid + PV = consumption + battery + inverter losses (3 % of what the inverter converts)
    losses = grid + pv_ac + pv_dc - consumption - battery
    converted = abs(pv_dc - battery)
    assert -1e-6 <= losses <= 0.031 * converted / 0.97 + 1e-6
    for n in (1, 2, 3):
        on_in = value(items, f"/Ac/ConsumptionOnInput/L{n}/Power")
        on_out = value(items, f"/Ac/ConsumptionOnOutput/L{n}/Power")
        assert on_in + on_out == pytest.approx(value(items, f"/Ac/Consumption/L{n}/Power"))
    voltage, current = value(items, "/Dc/Battery/Voltage"), value(items, "/Dc/Battery/Current")
    assert voltage * current == pytest.approx(battery, abs=0.5)


async def test_ev_power_shows_in_grid_and_input_consumption(private_bus):
    ev = [0.0, 0.0, 0.0]
    service, clock = make_service(start=NIGHT, config=QUIET, ev_power_w=lambda: ev)
    async with service:
        before = await get_items()
        ev[:] = [2300.0, 2300.0, 2300.0]
        seen = service.updates
        await until(lambda: service.updates > seen, clock)
        after = await get_items()
    for n in (1, 2, 3):
        # night, battery at its minimum SoC: the grid carries the whole car
        grid_delta = value(after, f"/Ac/Grid/L{n}/Power") - value(before, f"/Ac/Grid/L{n}/Power")
        assert grid_delta == pytest.approx(2300.0, abs=1.0)
        for kind in ("Consumption", "ConsumptionOnInput"):
            delta = (value(after, f"/Ac/{kind}/L{n}/Power")
                     - value(before, f"/Ac/{kind}/L{n}/Power"))
            assert delta == pytest.approx(2300.0, abs=1.0), kind
        assert value(after, f"/Ac/ConsumptionOnOutput/L{n}/Power") == \
            value(before, f"/Ac/ConsumptionOnOutput/L{n}/Power")


async def test_ev_on_ac_output_shows_in_output_consumption(private_bus):
    service, _clock = make_service(start=NIGHT, config=QUIET, ev_position=0,
                                   ev_power_w=lambda: (3680.0, 0.0, 0.0))
    async with service:
        items = await get_items()
    base_l1 = QUIET.base_load_w[0]
    assert value(items, "/Ac/ConsumptionOnOutput/L1/Power") == pytest.approx(0.3 * base_l1 + 3680)
    assert value(items, "/Ac/ConsumptionOnInput/L1/Power") == pytest.approx(0.7 * base_l1)
    assert value(items, "/Ac/Grid/L1/Power") == pytest.approx(base_l1 + 3680)


async def test_freeze_keeps_values_on_the_bus_while_the_site_moves_on(private_bus):
    service, clock = make_service()      # noon: the battery charges, SoC moves every second
    async with service:
        await until(lambda: service.updates >= 2, clock)
        service.freeze()
        frozen = await get_items()
        soc_frozen = value(frozen, "/Dc/Battery/Soc")
        t0 = service.site.t_s
        await until(lambda: service.site.t_s > t0 + 120, clock)
        later = await get_items()
        assert later == frozen                              # nothing changed on the bus
        assert await name_has_owner(SERVICE_NAME)           # yet the service is there
        assert service.site.battery_soc_pct > soc_frozen    # the model moved on
        service.unfreeze()
        fresh = await get_items()
    assert value(fresh, "/Dc/Battery/Soc") > soc_frozen


async def test_stop_and_start_take_the_name_off_and_back_on_the_bus(private_bus):
    service, clock = make_service()
    async with service:
        assert await name_has_owner(SERVICE_NAME)
        await service.stop()
        assert not service.online
        assert not await name_has_owner(SERVICE_NAME)
        soc_gone = service.site.battery_soc_pct
        t0 = service.site.t_s
        await until(lambda: service.site.t_s > t0 + 60, clock)   # the site runs on meanwhile
        await service.start()
        assert await name_has_owner(SERVICE_NAME)
        items = await get_items()
    # it comes back with current values, not the ones it left with
    assert value(items, "/Dc/Battery/Soc") > soc_gone


async def test_spike_raises_one_phase_for_its_duration(private_bus):
    service, clock = make_service(start=NIGHT, config=QUIET)
    async with service:
        before = await get_items()
        service.spike(2, 3000.0, duration_s=60.0)
        during = await get_items()
        end = service.site.t_s + 60
        await until(lambda: service.site.t_s > end + 2, clock)
        after = await get_items()
    l2 = "/Ac/Consumption/L2/Power"
    assert value(during, l2) - value(before, l2) == pytest.approx(3000.0)
    assert value(during, "/Ac/Grid/L2/Power") - value(before, "/Ac/Grid/L2/Power") \
        == pytest.approx(3000.0)
    assert value(during, "/Ac/Consumption/L1/Power") == value(before, "/Ac/Consumption/L1/Power")
    assert value(after, l2) == pytest.approx(value(before, l2))


async def test_set_cloud_forces_pv_down_and_up(private_bus):
    service, clock = make_service()
    async with service:
        service.set_cloud(1.0)
        dark = await get_items()
        # 600 simulated s = 3 s real: long enough that a busy machine reads the forced sky
        # before it passes (30 s was 0.15 s real at 200x and raced the CPU)
        service.set_cloud(0.0, duration_s=600)
        clear = await get_items()
        clear_sky_dc = service.site.config.pv_dc_peak_w * service.site.clear_sky_fraction()
        service.set_cloud(0.5, duration_s=600)
        half = await get_items()
        end = service.site.t_s + 600
        await until(lambda: service.site.t_s > end + 1, clock, limit_s=1800)
        assert service.site.forced_cover is None            # the forced sky has passed
    assert value(dark, "/Dc/Pv/Power") == 0.0
    assert all(value(dark, f"/Ac/PvOnGrid/L{n}/Power") == 0.0 for n in (1, 2, 3))
    assert value(clear, "/Dc/Pv/Power") == pytest.approx(clear_sky_dc, rel=0.01)
    assert value(half, "/Dc/Pv/Power") == pytest.approx(value(clear, "/Dc/Pv/Power") / 2,
                                                        rel=0.02)


async def test_phaeton_reader_sees_the_simulated_readings(private_bus):
    service, clock = make_service()
    async with service:
        reader = GxSystemReader(clock=clock)
        await reader.start()
        try:
            await until(lambda: reader.present, clock)
            service.freeze()                    # hold the bus still, then let the reader catch up
            await until(lambda: reader.readings().battery_soc_pct
                        == service.service["/Dc/Battery/Soc"], clock)
            readings = reader.readings()
        finally:
            await reader.close()
    assert readings.battery_soc_pct == service.service["/Dc/Battery/Soc"]
    assert readings.pv_on_output_w == (None, None, None)
    assert readings.active_input_source == 1
    assert readings.pv_dc_w is not None and readings.pv_dc_w > 0


async def test_site_without_pv_publishes_pv_invalid(private_bus):
    config = SiteConfig(pv_ac_peak_w=0.0, pv_dc_peak_w=0.0, appliances=())
    service, _clock = make_service(config=config)
    async with service:
        items = await get_items()
    assert value(items, "/Dc/Pv/Power") is None
    assert all(value(items, f"/Ac/PvOnGrid/L{n}/Power") is None for n in (1, 2, 3))
    assert value(items, "/Ac/Grid/L1/Power") is not None


async def test_a_failing_ev_source_counts_as_zero_and_the_service_keeps_running(
        private_bus, caplog):
    calls = []

    def broken():
        calls.append(1)
        if len(calls) > 1:
            raise OSError("charger simulator gone")
        return (1000.0, 1000.0, 1000.0)

    service, clock = make_service(start=NIGHT, config=QUIET, ev_power_w=broken)
    with caplog.at_level(logging.ERROR, logger="phaeton.sim.gx_system"):
        async with service:
            await until(lambda: service.updates >= 3, clock)
            items = await get_items()
    assert "charger simulator gone" in caplog.text
    assert value(items, "/Ac/Consumption/L1/Power") == pytest.approx(QUIET.base_load_w[0])


@pytest.mark.parametrize("call, message", [
    (lambda s: s.spike(4, 1000, 10), "phase must be 1, 2 or 3"),
    (lambda s: s.spike(1, -5, 10), "watts must be a number > 0"),
    (lambda s: s.spike(1, 1000, float("nan")), "duration_s must be a number > 0"),
    (lambda s: s.set_cloud(1.5), "cover must be between 0"),
    (lambda s: s.set_cloud(0.5, duration_s=0), "duration_s must be a number > 0"),
])
def test_bad_hook_input_is_refused_clearly(call, message):
    service, _clock = make_service()
    with pytest.raises(ValueError, match=message):
        call(service)


def test_bad_construction_is_refused_clearly():
    with pytest.raises(ValueError, match="ev_position must be 0"):
        SimulatedSystemService(ev_position=2)
    with pytest.raises(ValueError, match="update_interval_s must be a number > 0"):
        SimulatedSystemService(update_interval_s=0)
    with pytest.raises(ValueError, match="cloud window"):
        SimulatedSite(cloud_script=((12.0, 11.0, 0.5),))
    plain = SimulatedSystemService(site=SiteModel())
    with pytest.raises(TypeError, match="SimulatedSite"):
        plain.set_cloud(0.5)


def test_battery_electrics_charge_raises_voltage():
    v_rest, i_rest = battery_electrics(50.0, 0.0)
    v_charge, i_charge = battery_electrics(50.0, 3000.0)
    v_discharge, i_discharge = battery_electrics(50.0, -3000.0)
    assert i_rest == 0.0 and i_charge > 0 > i_discharge
    assert v_discharge < v_rest < v_charge
    assert battery_electrics(90.0, 0.0)[0] > battery_electrics(20.0, 0.0)[0]


async def test_each_update_is_one_itemschanged_with_every_changed_value(private_bus):
    service, _clock = make_service(speed=20.0)    # noon: PV, grid and battery move every update
    async with service, SignalRecorder(SERVICE_NAME) as recorder:
        aligned = await recorder.until("ItemsChanged", "/", timeout=10)  # align on a batch end
        batches = []
        for _ in range(3):
            seen = await recorder.until("ItemsChanged", "/", timeout=10)
            batches.append(seen)
    known = {path: item["Value"] for path, item in aligned[-1]["body"].items()}
    for seen in batches:
        # one ItemsChanged for the whole update, and no PropertiesChanged beside it
        assert [(s["member"], s["path"]) for s in seen] == [("ItemsChanged", "/")]
        items = seen[0]["body"]
        assert "/Dc/Battery/Soc" in items and "/Dc/Pv/Power" in items
        for path, item in items.items():   # only values that changed since they were last sent
            assert path not in known or known[path] != item["Value"], path
            known[path] = item["Value"]


def daemon_pid_of(address: str) -> int:
    """The pid of the dbus-daemon listening on `address` (found through its config file)."""
    socket_path = address.split("unix:path=", 1)[1].split(",", 1)[0]
    config = socket_path.rsplit("/", 1)[0] + "/bus.conf"
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if config.encode() in f.read():
                        return int(entry)
            except OSError:
                continue
    raise AssertionError(f"no dbus-daemon for {address}")


async def test_stop_on_a_hung_bus_gives_up_and_the_name_goes_once_the_bus_recovers(
        private_bus, monkeypatch, caplog):
    monkeypatch.setattr(gx_system, "STOP_TIMEOUT_S", 0.3)
    service, _clock = make_service()
    await service.start()
    pid = daemon_pid_of(private_bus)
    os.kill(pid, signal.SIGSTOP)                # the bus answers nothing any more
    try:
        await service.stop()                    # returns although the bus never answered
    finally:
        os.kill(pid, signal.SIGCONT)
    await service.close()
    assert not service.online
    assert "no answer from the bus while leaving" in caplog.text
    assert not await name_has_owner(SERVICE_NAME)   # our connection is gone with its name


async def test_meter_noise_keeps_a_quiet_system_talking(private_bus):
    """Constant loads at night must still change on the bus (a real meter never repeats),
    or phaeton would call the readings stale; the balance still holds."""
    svc, clock = make_service(meter_noise_w=2.0)
    published = []
    svc.site.step = lambda dt_s, ev=(0.0, 0.0, 0.0): svc.site.readings(ev)  # time stands still
    readings = svc.site.readings()
    for _ in range(3):
        svc._publish(readings)
        published.append([svc._service[f"/Ac/Grid/L{n}/Power"] for n in (1, 2, 3)])
    assert published[0] != published[1] != published[2]
    for n in (1, 2, 3):
        grid = svc._service[f"/Ac/Grid/L{n}/Power"]
        assert abs(grid - readings.grid_w[n - 1]) <= 2.0
        assert (svc._service[f"/Ac/Consumption/L{n}/Power"] - grid
                == pytest.approx((readings.consumption_w[n - 1] or 0.0) - readings.grid_w[n - 1]))


async def test_on_update_sees_every_published_batch_and_a_failing_listener_is_harmless(
        private_bus, caplog):
    """A test samples the currents at the meter's pace: `on_update` gets the readings of each
    batch published (the EV's draw included); a listener that raises is logged, no more."""
    seen = []

    def listener(readings):
        seen.append((service.updates, readings.grid_w, service.ev_w))
        if len(seen) == 3:
            raise RuntimeError("listener broke")

    service, clock = make_service(start=NIGHT, config=QUIET,
                                  ev_power_w=lambda: (2300.0, 0.0, 0.0))
    service.on_update = listener
    with caplog.at_level(logging.ERROR, logger="phaeton.sim.gx_system"):
        async with service:
            await until(lambda: len(seen) >= 6, clock)
            service.freeze()                        # nothing published: nothing reported
            frozen_at = len(seen)
            await until(lambda: service.site.t_s > 30, clock)
            after_freeze = len(seen)
            published = await get_items()
    assert "listener broke" in caplog.text
    assert after_freeze == frozen_at
    counts = [updates for updates, _grid, _ev in seen]
    assert counts == sorted(set(counts))                   # once per batch, in order
    _updates, grid, ev = seen[-1]
    assert ev == (2300.0, 0.0, 0.0)
    assert grid[0] - grid[1] == pytest.approx(2300.0 + QUIET.base_load_w[0]
                                              - QUIET.base_load_w[1])
    assert value(published, "/Ac/Grid/L1/Power") == pytest.approx(grid[0])
