"""SimWorld: the complete simulated GX, checked from outside (python3-dbus, dbus-send, a raw
Modbus client, phaeton's own charger drivers built from the world's config)."""
from __future__ import annotations

import asyncio
import os
import struct

import pytest
from pymodbus.client import AsyncModbusTcpClient

from phaeton.chargers.factory import build_charger
from phaeton.config import apply_defaults, validate_config_data
from phaeton.sim.gx_system import SERVICE_NAME as SYSTEM
from phaeton.sim.gx_system import SimulatedSite
from phaeton.sim.site import SiteConfig
from phaeton.sim.world import DEFAULT_CLOUD_SCRIPT, DEFAULT_START, GARAGE_A, SimWorld
from phaeton.site_layout import charger_entries
from tests.dbus_clients import name_has_owner, py3dbus
from velib.service import ServiceError, VeDbusService

SETTINGS = "com.victronenergy.settings"
SOCKET_UNIT, STATION_UNIT = 1, 200


async def until(predicate, clock, limit_s: float = 900.0):
    """Wait (at most limit_s of simulated time) until predicate() is true."""
    start = clock.monotonic()
    while not predicate():
        assert clock.monotonic() - start < limit_s, "condition not reached in simulated time"
        await asyncio.sleep(0.01)


async def bus_value(service: str, path: str):
    answer = await py3dbus(service, path, "GetValue")
    assert "ok" in answer, answer
    return answer["ok"]["v"]


def daemons_using(directory: str) -> list[int]:
    """Pids of running processes whose command line names `directory` (its bus config)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
        except OSError:
            continue
        if directory in cmdline and "dbus-daemon" in cmdline:
            found.append(int(entry))
    return found


def float32_words(value: float) -> list[int]:
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return [high, low]


def words_text(words: list[int]) -> str:
    return b"".join(struct.pack(">H", w) for w in words).rstrip(b"\0").decode()


async def test_world_comes_up_on_its_own_bus_and_leaves_nothing_behind(monkeypatch):
    async with SimWorld(speed=100) as world:
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", world.bus_address)
        bus_dir, data_dir = world.bus.directory, world.data_dir
        assert daemons_using(bus_dir), "no dbus-daemon for the world's bus"
        assert os.path.isdir(bus_dir) and os.path.isdir(data_dir)
        assert await name_has_owner(SYSTEM) and await name_has_owner(SETTINGS)
        assert await bus_value(SYSTEM, "/DeviceInstance") == 0
        assert await bus_value(SETTINGS, "/Settings/CGwacs/Hub4Mode") == 1
        assert await bus_value(SETTINGS, "/Settings/CGwacs/BatteryLife/MinimumSocLimit") \
            == world.site.config.battery_min_soc_pct
        # the simulated day starts at the world's start time and runs on its clock
        assert world.clock.time() >= DEFAULT_START.timestamp()
        assert world.site.now >= DEFAULT_START
    assert daemons_using(bus_dir) == [], "dbus-daemon left running"
    assert not os.path.exists(bus_dir) and not os.path.exists(data_dir)
    assert world.system is None and world.charger_sim is None


async def test_world_on_an_existing_bus_keeps_the_bus_and_the_given_dir(private_bus, tmp_path):
    async with SimWorld(speed=100, bus_address=private_bus, data_dir=str(tmp_path)) as world:
        assert world.bus is None and world.bus_address == private_bus
        assert await name_has_owner(SYSTEM)
        assert (tmp_path / "settings" / "settings.json").exists()
    assert not await name_has_owner(SYSTEM) and not await name_has_owner(SETTINGS)
    assert tmp_path.exists()                                # the caller's directory stays


async def test_a_failed_start_stops_what_had_started(private_bus):
    squatter = VeDbusService(SETTINGS, bus_address=private_bus)
    squatter.add_path("/Dummy", 1)
    await squatter.register()
    world = SimWorld(speed=100, bus_address=private_bus)
    try:
        with pytest.raises(ServiceError, match="already owned"):
            await world.start()
    finally:
        await squatter.close()
    assert not os.path.exists(world.data_dir)
    assert not await name_has_owner(SYSTEM)


async def test_alfen_answers_modbus_and_the_car_draws_once_a_setpoint_is_written(monkeypatch):
    async with SimWorld(speed=100) as world:
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", world.bus_address)
        client = AsyncModbusTcpClient("127.0.0.1", port=world.alfen_port)
        assert await client.connect()
        try:
            name = await client.read_holding_registers(100, count=17, device_id=STATION_UNIT)
            assert not name.isError() and words_text(name.registers) == "ALF_1000"
            await world.plug_in()
            before = await bus_value(SYSTEM, "/Ac/Consumption/L1/Power")
            t0 = world.clock.monotonic()
            await until(lambda: world.clock.monotonic() > t0 + 30, world.clock)
            assert world.ev_power_w() == (0.0, 0.0, 0.0)    # plugged in, no setpoint: no power
            written = await client.write_registers(1210, float32_words(16.0),
                                                   device_id=SOCKET_UNIT)
            assert not written.isError()
            await until(lambda: world.ev_power_w()[0] > 3000, world.clock)
            soc0, seen = world.ev.soc_pct, world.system.updates
            await until(lambda: world.system.updates > seen + 1, world.clock)
            during = await bus_value(SYSTEM, "/Ac/Consumption/L1/Power")
            grid = await bus_value(SYSTEM, "/Ac/Grid/L1/Power")
            await world.plug_out()
            await until(lambda: world.ev_power_w() == (0.0, 0.0, 0.0), world.clock)
        finally:
            client.close()
    # 16 A on L1 at the station's 230 V shows up in the GX consumption; the car charges
    assert during - before == pytest.approx(16 * 230, abs=400)
    assert grid is not None
    assert world.ev.soc_pct > soc0


async def test_phaeton_alfen_driver_from_the_world_config_charges_the_car(monkeypatch, tmp_path):
    async with SimWorld(speed=100) as world:
        config = world.config_for_phaeton(str(tmp_path))
        assert validate_config_data(config) == []
        assert config["charger"]["alfen"] == {"host": "127.0.0.1", "port": world.alfen_port,
                                              "station_unit_id": 200, "socket_unit_id": 1}
        assert config["data_dir"] == str(tmp_path)
        driver = build_charger(apply_defaults(config), clock=world.clock)
        await driver.start()
        try:
            await until(lambda: driver.connected, world.clock)
            await world.plug_in()
            await driver.set_enabled(True)
            await driver.set_current(10.0)
            await until(lambda: sum(world.ev_power_w()) > 6000, world.clock)
            measured = await driver.read()
        finally:
            await driver.stop()
    assert measured.total_power_w == pytest.approx(3 * 10 * 230, rel=0.02)


async def test_ocpp_world_connects_to_phaeton_and_the_car_draws(tmp_path):
    async with SimWorld(speed=50, charger="ocpp") as world:
        assert world.alfen_port is None and world.charger_sim is None
        config = world.config_for_phaeton(str(tmp_path))
        assert validate_config_data(config) == []
        assert world.ocpp_url == (f"ws://127.0.0.1:{config['charger']['ocpp']['port']}/ocpp/"
                                  f"{config['charger']['ocpp']['charge_point_id']}")
        driver = build_charger(apply_defaults(config), clock=world.clock)
        await driver.start()
        try:
            cp = await world.start_charge_point()
            assert cp.ev is world.ev and cp.clock is world.clock
            await until(lambda: driver.connected and cp.connected, world.clock)
            await world.plug_in()
            await until(lambda: cp.transaction_id is not None, world.clock)
            await driver.set_enabled(True)
            await driver.set_current(8.0)
            await until(lambda: sum(world.ev_power_w()) > 5000, world.clock)
            seen = world.system.updates
            await until(lambda: world.system.updates > seen + 1, world.clock)
            consumption = sum(world.system.service[f"/Ac/Consumption/L{n}/Power"]
                              for n in (1, 2, 3))
        finally:
            await driver.stop()          # and with it the central system it started
    assert sum(world.ev_power_w()) == 0.0          # the world is stopped: no charger any more
    assert consumption > 3 * 8 * 230


async def test_a_double_station_and_a_charge_point_drive_a_car_each_and_the_gx_sees_all(
        tmp_path):
    """chargers=3: one Alfen station with sockets 1 and 2 and an OCPP charge point, a car at
    each, driven by phaeton's own drivers built from the world's `chargers:` config; the GX's
    consumption carries all three cars, and one car leaving changes only its own draw."""
    async with SimWorld(speed=50, chargers=3) as world:
        config = world.config_for_phaeton(str(tmp_path))
        assert validate_config_data(config) == []
        assert "charger" not in config
        assert config["circuits"] == [{"name": "garage", "max_current_a": GARAGE_A}]
        assert [(c["id"], c["protocol"], c["circuit"]) for c in config["chargers"]] == [
            ("socket_1", "alfen", "garage"), ("socket_2", "alfen", "garage"),
            ("ocpp_1", "ocpp", "garage")]
        assert [(c["alfen"]["port"], c["alfen"]["socket_unit_id"])
                for c in config["chargers"][:2]] == [(world.alfen_port, 1),
                                                     (world.alfen_port, 2)]
        assert config["chargers"][2]["ocpp"]["port"] == world.ocpp_port
        assert len({o.custom_name for o in world.outlets}) == 3
        assert world.ev is world.outlet("socket_1").ev
        assert len({id(o.ev) for o in world.outlets}) == 3     # a car each
        drivers = [build_charger(entry.config, clock=world.clock)
                   for entry in charger_entries(apply_defaults(config))]
        for driver in drivers:
            await driver.start()
        try:
            cp = await world.start_charge_point()
            assert cp.ev is world.outlet("ocpp_1").ev
            await until(lambda: cp.connected and all(d.connected for d in drivers),
                        world.clock)
            for outlet in world.outlets:
                await world.plug_in(outlet.id)
            await until(lambda: cp.transaction_id is not None, world.clock)
            for driver, amps in zip(drivers, (6.0, 8.0, 10.0)):
                await driver.set_enabled(True)
                await driver.set_current(amps)
            await until(lambda: all(world.phase_currents_a(o.id)[0] > 0
                                    for o in world.outlets), world.clock)
            drawn = [world.phase_currents_a(o.id) for o in world.outlets]
            total_w = sum(world.ev_power_w())
            seen = world.system.updates
            await until(lambda: world.system.updates > seen + 1, world.clock)
            consumption = sum(world.system.service[f"/Ac/Consumption/L{n}/Power"]
                              for n in (1, 2, 3))
            await world.plug_out("socket_2")
            left = [world.phase_currents_a(o.id) for o in world.outlets]
        finally:
            for driver in drivers:
                await driver.stop()
    assert drawn == [(6.0,) * 3, (8.0,) * 3, (10.0,) * 3]
    assert total_w == pytest.approx(3 * 24 * 230, rel=0.01)
    assert consumption > 3 * 24 * 230
    assert left == [(6.0,) * 3, (0.0,) * 3, (10.0,) * 3]
    assert world.alfen is None and world.charge_point is None


async def test_start_charge_point_refuses_misuse():
    alfen_world = SimWorld(speed=10)
    with pytest.raises(RuntimeError, match="charger='ocpp'"):
        await alfen_world.start_charge_point("ws://127.0.0.1:1/ocpp/X")
    async with SimWorld(speed=10, charger="ocpp") as world:
        with pytest.raises(ValueError, match="ws://"):
            await world.start_charge_point("http://127.0.0.1/ocpp/X")


def test_bad_world_options_are_refused_clearly():
    with pytest.raises(ValueError, match="charger must be 'alfen' or 'ocpp'"):
        SimWorld(charger="modbus")
    with pytest.raises(ValueError, match="speed must be a number > 0"):
        SimWorld(speed=0)
    with pytest.raises(ValueError, match="charge_point_id"):
        SimWorld(charge_point_id="a/b")
    with pytest.raises(RuntimeError, match="start the world first"):
        SimWorld().config_for_phaeton("/tmp/x")
    with pytest.raises(ValueError, match="chargers must be 1, 2"):
        SimWorld(chargers=4)
    with pytest.raises(ValueError, match="charger must stay 'alfen'"):
        SimWorld(chargers=2, charger="ocpp")
    with pytest.raises(ValueError, match="1 of them"):
        SimWorld(chargers=2, evs=[])
    with pytest.raises(ValueError, match="no charger 'ocpp_1'"):
        SimWorld(chargers=2).outlet("ocpp_1")


def test_the_default_day_has_a_sunny_morning_passing_clouds_and_an_evening_peak():
    """Pure: three simulated days of the default site in 60 s steps."""
    site = SimulatedSite(seed=0, start=DEFAULT_START.replace(hour=0),
                         cloud_script=DEFAULT_CLOUD_SCRIPT, config=SiteConfig())
    by_hour_pv: dict[int, list[float]] = {}
    by_hour_load: dict[int, list[float]] = {}
    dips_after_noon = 0
    for _ in range(3 * 24 * 60):
        readings = site.step(60.0)
        hour = site.now.hour
        pv_dc = readings.pv_dc_w
        clear_dc = site.config.pv_dc_peak_w * site.clear_sky_fraction()
        by_hour_pv.setdefault(hour, []).append(pv_dc / clear_dc if clear_dc > 100 else 1.0)
        by_hour_load.setdefault(hour, []).append(sum(site.house_w()))
        if 12 <= hour < 17 and clear_dc > 100 and pv_dc < 0.7 * clear_dc:
            dips_after_noon += 1
    for hour in (8, 9, 10):                                 # a clear morning every day
        assert min(by_hour_pv[hour]) == pytest.approx(1.0)
    assert dips_after_noon >= 3 * 20                        # clouds pass after midday
    mean = {h: sum(v) / len(v) for h, v in by_hour_load.items()}
    evening = sum(mean[h] for h in (17, 18, 19)) / 3
    night = sum(mean[h] for h in (1, 2, 3)) / 3
    assert evening > night + 300                            # cooking in the evening
