"""Issue 11 items 3-5: a charger that answers garbage, on a simulated GX with real parts (private
D-Bus, velib services, the Alfen Modbus simulator with its `fault` hook, phaeton), in
accelerated time (ScaledClock)."""
from __future__ import annotations

import logging

import pytest

from phaeton.chargers.base import Charger, ChargerIdentity, ChargerMeasurement, VehicleState
from scripted_gx import ScriptedGx

pytestmark = pytest.mark.slow

GARBAGE_S = 45.0


@pytest.fixture
async def gx(private_bus, tmp_path):
    async with ScriptedGx(private_bus, str(tmp_path)) as world:
        yield world


def applied(gx) -> float:
    return gx.alfen.applied_current_a


def dbus(gx, path):
    return gx.phaeton.loadpoints[0].evcharger.service[path]


def real_counter_kwh(gx) -> float:
    return sum(gx.alfen.energy_wh) / 1000.0


def problems(records, since: int = 0) -> tuple[list, list]:
    """(records with a traceback, phaeton's warnings) among records[since:]."""
    later = records[since:]
    return ([r for r in later if r.exc_info],
            [r for r in later if r.levelno >= logging.WARNING and r.name.startswith("phaeton")])


async def next_tick(gx, ticks: int = 1) -> None:
    """Until `ticks` more ticks have completed (a generous bound: a loaded machine is slow)."""
    target = gx.phaeton.site.ticks + ticks
    await gx.until(lambda: gx.phaeton.site.ticks >= target, 120, f"{ticks} more tick(s)")


async def fresh_forward(gx) -> float:
    """/Ac/Energy/Forward after a tick that began now: the station's real counter as it was
    between now and then (however slowly the machine runs)."""
    low = real_counter_kwh(gx)
    await next_tick(gx, 2)                  # the tick under way may have read before `low`
    forward = dbus(gx, "/Ac/Energy/Forward")
    assert low - 0.001 <= forward <= real_counter_kwh(gx) + 0.001
    return forward


@pytest.mark.parametrize("fault, named", [
    ("random", "charger answers implausible values: "),
    ("nan", "vehicle_state=unknown (mode-3 state not available"),
    ("nan_floats", "current_a=NaN, voltage_v=NaN"),
    ("negative_max_current", "station_max_current_a=-16"),
    ("huge_energy", "lifetime_energy_kwh=2.2e+304"),
])
async def test_garbled_answers_for_45_s_then_normal(gx, caplog, fault, named):
    """Acceptance: /Connected 0 while the answers are garbage and 1 after; the session counts
    on from the last good counter within one poll of the recovery, /Ac/Energy/Forward is the
    real counter again; no traceback, one warning."""
    caplog.set_level(logging.INFO)
    app = await gx.start_phaeton()                       # Manual, started, 16 A
    gx.alfen.plug_in()
    await gx.until(lambda: applied(gx) == 16, 60, "charging at 16 A")
    await gx.run_for(30)
    await fresh_forward(gx)

    logged = len(caplog.records)
    gx.alfen.fault = fault
    counter_at_fault = real_counter_kwh(gx)
    await next_tick(gx, 2)                               # the tick under way may be a good one
    forward_before = dbus(gx, "/Ac/Energy/Forward")      # the last good values
    session_before = dbus(gx, "/Session/Energy")
    assert counter_at_fault - 0.1 < forward_before <= counter_at_fault + 0.001
    assert session_before > 0.05
    garbage_until = gx.clock.monotonic() + GARBAGE_S - 2 * app.cfg["control"]["tick_s"]
    seen = 0
    while gx.clock.monotonic() < garbage_until:
        assert dbus(gx, "/Connected") == 0
        assert dbus(gx, "/Status") == 0
        assert dbus(gx, "/Current") is None and dbus(gx, "/Ac/Power") is None
        assert dbus(gx, "/Ac/Energy/Forward") == forward_before      # the last good value
        assert named in app.status()["reason"]
        assert app.status()["reason"].startswith("charger answers implausible values: ")
        seen += 1
        await gx.run_for(1)
    assert seen >= 5
    assert applied(gx) == 0                              # told its safe current (0 A here)
    assert dbus(gx, "/Session/Energy") == session_before

    gx.alfen.fault = None
    forward_after = await fresh_forward(gx)              # one poll after the recovery
    assert dbus(gx, "/Connected") == 1
    assert dbus(gx, "/Session/Energy") == pytest.approx(
        session_before + forward_after - forward_before, abs=0.002)
    await gx.until(lambda: applied(gx) == 16, 60, "charging at 16 A again")
    await gx.run_for(60)                                 # 11 kW for a minute: about 0.18 kWh
    forward_later = await fresh_forward(gx)
    assert forward_later - forward_after > 0.1
    assert dbus(gx, "/Session/Energy") == pytest.approx(
        session_before + forward_later - forward_before, abs=0.002)

    tracebacks, warnings = problems(caplog.records, logged)
    assert tracebacks == []
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "charger answers implausible values" in warnings[0].getMessage()
    assert any("plausible values again" in r.getMessage() for r in caplog.records[logged:])


async def test_one_garbage_energy_reading_does_not_stick(gx):
    """Issue 11 item 3: one 2.2e304 kWh reading of the lifetime counter stayed on
    /Ac/Energy/Forward and /Session/Energy stopped growing until a restart."""
    await gx.start_phaeton()                             # Manual, started, 16 A
    gx.alfen.plug_in()
    await gx.until(lambda: applied(gx) == 16, 60, "charging at 16 A")
    await gx.run_for(20)
    gx.alfen.fault = "huge_energy"
    await next_tick(gx, 2)                               # at least one tick read it
    gx.alfen.fault = None
    await next_tick(gx, 2)
    await gx.until(lambda: applied(gx) == 16, 60, "charging at 16 A")
    forward = await fresh_forward(gx)
    session = dbus(gx, "/Session/Energy")
    await gx.run_for(60)
    later = await fresh_forward(gx)
    assert dbus(gx, "/Session/Energy") - session == pytest.approx(later - forward, abs=0.002)
    assert dbus(gx, "/Session/Energy") - session > 0.1


async def test_garbage_station_maximum_applies_the_fail_safe_and_writes_wait(
        private_bus, tmp_path, caplog):
    """Issue 11 item 4: register 1100 reading -16 A broke every tick; D-Bus kept the old
    /Status and current, writes were never applied and a fuse spike was not handled. Now the
    charger is told its safe current, D-Bus says why, and a write made meanwhile is applied
    as soon as the answers are believable again."""
    caplog.set_level(logging.INFO)
    async with ScriptedGx(private_bus, str(tmp_path), charger={"safe_current_a": 6}) as gx:
        app = await gx.start_phaeton()                   # Manual, started, 16 A
        gx.alfen.plug_in()
        await gx.until(lambda: applied(gx) == 16, 60, "charging at 16 A")
        gx.alfen.fault = "negative_max_current"
        await gx.until(lambda: applied(gx) == 6, 60, "the fail-safe current")
        assert dbus(gx, "/Connected") == 0 and dbus(gx, "/Status") == 0
        assert app.status()["reason"] == ("charger answers implausible values: "
                                          "station_max_current_a=-16: fail-safe current 6 A")
        assert app.status()["charger"]["error"].startswith("charger answers implausible")
        assert app.loadpoints[0].evcharger.write("/SetCurrent", 10) == 0
        gx.system.house_w = [4000.0, 300.0, 300.0]       # a spike: 6 A still fits under 25 A
        await gx.run_for(20)
        assert applied(gx) == 6 and dbus(gx, "/Connected") == 0
        gx.alfen.fault = None
        await gx.until(lambda: dbus(gx, "/Connected") == 1, 60, "/Connected 1")
        gx.system.house_w = [300.0] * 3
        await gx.until(lambda: applied(gx) == 10, 120, "the write made meanwhile applied")
        tracebacks, _ = problems(caplog.records)
        assert tracebacks == []


class GarbageCharger(Charger):
    """A driver that answers whatever `script` says next: an exception to raise, or anything to
    return (a measurement with garbage in it, or no measurement at all)."""

    def __init__(self, script):
        self.script = list(script)
        self.reads = 0
        self.currents: list[float] = []

    async def start(self):
        pass

    async def stop(self):
        pass

    @property
    def connected(self):
        return True

    @property
    def connection_text(self):
        return "garbage"

    @property
    def identity(self):
        return ChargerIdentity("Acme", "G1", "1", "1.0")

    async def read(self):
        answer = self.script[self.reads % len(self.script)]
        self.reads += 1
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def set_current(self, amps):
        self.currents.append(amps)

    async def set_enabled(self, enabled):
        pass


GOOD = ChargerMeasurement(VehicleState.CONNECTED, voltage_v=(230.0, 230.0, 230.0),
                          current_a=(0.0, 0.0, 0.0), lifetime_energy_kwh=50.0)
GARBAGE = [
    ValueError("unpack requires a buffer of 4 bytes"), KeyError(1201), ZeroDivisionError(),
    None, object(), "C2",
    ChargerMeasurement("charging"),
    ChargerMeasurement(VehicleState.CHARGING, current_a="16 A"),
    ChargerMeasurement(VehicleState.CHARGING, current_a=(1.0, 2.0, 3.0, 4.0)),
    ChargerMeasurement(VehicleState.CHARGING, phases=7),
    ChargerMeasurement(VehicleState.CHARGING, station_max_current_a=float("nan")),
    ChargerMeasurement(VehicleState.CHARGING, station_max_current_a=-16.0),
    ChargerMeasurement(VehicleState.CHARGING, total_power_w=float("inf")),
    ChargerMeasurement(VehicleState.CHARGING, lifetime_energy_kwh=2.2e304),
]


async def test_whatever_a_driver_returns_or_raises_the_tick_completes(private_bus, tmp_path,
                                                                      caplog):
    from phaeton.app import Phaeton
    from phaeton.config import load_config

    caplog.set_level(logging.DEBUG, logger="phaeton.app")
    async with ScriptedGx(private_bus, str(tmp_path)) as gx:
        path = gx.config_path()
        app = Phaeton(load_config(path), config_path=path, clock=gx.clock)
        fake = app.loadpoints[0].charger = GarbageCharger([GOOD])
        gx.phaeton = app
        await app.start()
        await gx.until(lambda: dbus(gx, "/Connected") == 1, 60, "/Connected 1")
        logged = len(caplog.records)
        fake.script, fake.reads = GARBAGE, 0
        ticks = app.site.ticks
        await gx.until(lambda: fake.reads >= 3 * len(GARBAGE), 120, "every answer three times")
        assert app.site.ticks - ticks >= 3 * len(GARBAGE) - 1       # every one of them a tick
        assert dbus(gx, "/Connected") == 0 and dbus(gx, "/Status") == 0
        assert fake.currents[-1] == 0.0                         # the safe current
        warnings = [r for r in caplog.records[logged:] if r.levelno >= logging.WARNING]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert not any(r.exc_info for r in caplog.records[logged:] if r.levelno > logging.DEBUG)
        fake.script = [GOOD]
        await gx.until(lambda: dbus(gx, "/Connected") == 1, 60, "/Connected 1 again")
        assert dbus(gx, "/Status") == 1 and dbus(gx, "/Ac/Energy/Forward") == 50.0
