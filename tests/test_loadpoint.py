"""A loadpoint driven directly, in milliseconds: a fake charger, a fake clock and an in-memory
stand-in for its D-Bus service (no bus, no simulator). Apply, reconnect, fail-safe."""
from __future__ import annotations

import math

import pytest

from phaeton.chargers.base import (Charger, ChargerIdentity, ChargerMeasurement,
                                   ChargerUnavailable, VehicleState)
from phaeton.clock import Clock
from phaeton.control.controller import ChargeController
from phaeton.control.readings import SiteReadings
from phaeton.control.session import SessionTracker
from phaeton.control.settings import ControlSettings
from phaeton.loadpoint import Loadpoint
from phaeton.store.sessions import SessionStore
from phaeton.store.state_file import StateFile
from phaeton.venus.evcharger_service import ChargerLimits, UserChoices, dbus_values

START = 1_700_000_000.0


class FakeClock(Clock):
    """Time stands still until the test moves it."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return START + self.now


class FakeCharger(Charger):
    """Answers `answer` (a measurement, or an exception to raise) and records every command."""

    def __init__(self) -> None:
        self.online = True
        self.answer: ChargerMeasurement | Exception = charging(16.0)
        self.commands: list[tuple[str, object]] = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    @property
    def connected(self) -> bool:
        return self.online

    @property
    def connection_text(self) -> str:
        return "fake 1"

    @property
    def identity(self) -> ChargerIdentity | None:
        return ChargerIdentity(model="F1", serial="S1", firmware="1.0")

    async def read(self) -> ChargerMeasurement:
        if not self.online:
            raise ChargerUnavailable("gone")
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    async def set_current(self, amps: float) -> None:
        self.commands.append(("current", amps))

    async def set_enabled(self, enabled: bool) -> None:
        self.commands.append(("enabled", enabled))

    def currents(self) -> list:
        return [value for name, value in self.commands if name == "current"]


class MemoryService:
    """The loadpoint's D-Bus service without a bus: writes change the choices and tell the
    owner, as the real one does after velib's checks."""

    def __init__(self, choices: UserChoices, limits: ChargerLimits, on_user_change) -> None:
        self.choices, self.limits, self.on_user_change = choices, limits, on_user_change
        self.name = "memory"
        self.instance: int | None = None

    def write(self, path: str, value) -> int:
        setattr(self.choices, UserChoices.FIELDS[path], value)
        self.on_user_change(path, value)
        return 0

    def set_choice(self, path: str, value) -> None:
        setattr(self.choices, UserChoices.FIELDS[path], value)

    def set_device_instance(self, instance: int) -> None:
        self.instance = instance

    async def register(self) -> None:
        pass

    async def close(self) -> None:
        pass


def charging(amps: float, kwh: float = 10.0) -> ChargerMeasurement:
    return ChargerMeasurement(VehicleState.CHARGING, voltage_v=(230.0, 230.0, 230.0),
                              current_a=(amps, amps, amps), power_w=(amps * 230,) * 3,
                              total_power_w=amps * 690, lifetime_energy_kwh=kwh, phases=3)


FRESH = SiteReadings(grid_w=(500.0, 500.0, 500.0), consumption_w=(400.0, 400.0, 400.0),
                     age_s=1.0)


@pytest.fixture
def parts(tmp_path):
    store = SessionStore(tmp_path / "sessions.sqlite", loadpoint="0")
    yield tmp_path, store
    store.close()


def make_loadpoint(parts, charger: FakeCharger, clock: FakeClock, mode: int = 0,
                   **settings) -> Loadpoint:
    tmp_path, store = parts
    control = ControlSettings(**{"safe_current_a": 8.0, **settings})
    defaults = UserChoices(mode=mode, start_stop=1, set_current_a=16.0, max_current_a=16.0,
                           phases=3, auto_start=1)
    return Loadpoint("0", charger, ChargeController(control),
                     limits=ChargerLimits(min_current_a=6.0, max_current_a=16.0, wired_phases=3),
                     default_choices=defaults, state_file=StateFile(tmp_path / "state.json"),
                     tracker=SessionTracker(0.3, "EUR"), session_store=store,
                     make_service=MemoryService, clock=clock)


async def tick(loadpoint: Loadpoint, clock: FakeClock, site: SiteReadings = FRESH):
    clock.now += 2.0
    reading = await loadpoint.read(timeout_s=1.0)
    return await loadpoint.step(reading, site)


async def test_the_setpoint_is_written_once_and_again_after_the_charger_reconnects(parts):
    charger, clock = FakeCharger(), FakeClock()
    loadpoint = make_loadpoint(parts, charger, clock)
    decision = await tick(loadpoint, clock)
    assert decision.current_a == 16.0 and decision.enabled
    assert charger.commands == [("enabled", True), ("current", 16.0)]
    for _ in range(3):
        await tick(loadpoint, clock)
    assert charger.commands == [("enabled", True), ("current", 16.0)]   # nothing new to say
    assert loadpoint.applied_current_a == 16.0

    charger.online = False
    await tick(loadpoint, clock)
    assert loadpoint.snapshot().connected is False
    assert len(charger.commands) == 2                   # an absent charger is not told anything
    charger.online = True
    await tick(loadpoint, clock)
    assert charger.commands[2:] == [("enabled", True), ("current", 16.0)]   # told again


async def test_a_refused_command_is_sent_again_next_tick(parts):
    charger, clock = FakeCharger(), FakeClock()
    loadpoint = make_loadpoint(parts, charger, clock)
    refusals = [ChargerUnavailable("busy")]

    async def set_current(amps: float) -> None:
        if refusals:
            raise refusals.pop()
        charger.commands.append(("current", amps))
    charger.set_current = set_current
    await tick(loadpoint, clock)
    assert charger.currents() == [] and loadpoint.applied_current_a is None
    await tick(loadpoint, clock)
    assert charger.currents() == [16.0]


async def test_a_read_that_raises_gives_the_fail_safe_current_and_says_why(parts):
    charger, clock = FakeCharger(), FakeClock()
    loadpoint = make_loadpoint(parts, charger, clock)
    await tick(loadpoint, clock)
    charger.answer = RuntimeError("decoder choked")
    decision = await tick(loadpoint, clock)
    assert charger.currents()[-1] == 8.0                # charger.safe_current_a
    snapshot = loadpoint.snapshot()
    assert not snapshot.connected
    assert snapshot.error == "charger read failed (RuntimeError: decoder choked)"
    assert "charger read failed" in decision.reason
    paths = dbus_values(snapshot)
    assert paths["/Connected"] == 0 and paths["/Status"] == 0 and paths["/Current"] is None
    assert paths["/Ac/Energy/Forward"] == 10.0          # the last good counter
    charger.answer = charging(16.0)
    await tick(loadpoint, clock)
    assert charger.currents()[-1] == 16.0 and loadpoint.snapshot().error is None


async def test_an_implausible_answer_gives_the_fail_safe_current(parts):
    charger, clock = FakeCharger(), FakeClock()
    loadpoint = make_loadpoint(parts, charger, clock)
    await tick(loadpoint, clock)
    charger.answer = ChargerMeasurement(VehicleState.CHARGING, total_power_w=math.nan)
    await tick(loadpoint, clock)
    assert charger.currents()[-1] == 8.0
    assert loadpoint.snapshot().error.startswith("charger answers implausible values: ")


async def test_stale_gx_readings_in_auto_give_the_safe_current(parts):
    charger, clock = FakeCharger(), FakeClock()
    loadpoint = make_loadpoint(parts, charger, clock, mode=1)
    decision = await tick(loadpoint, clock, SiteReadings(age_s=None))
    assert "stale" in decision.reason.lower()
    assert charger.currents()[-1] == 8.0


async def test_a_users_write_is_kept_wakes_the_loop_and_reaches_the_charger(parts):
    charger, clock = FakeCharger(), FakeClock()
    loadpoint = make_loadpoint(parts, charger, clock)
    woken = []
    loadpoint.on_wake(lambda: woken.append(True))
    await tick(loadpoint, clock)
    before = loadpoint.snapshot()
    assert loadpoint.write("/SetCurrent", 10.0) == 0
    assert woken and loadpoint.state_file.load()["set_current_a"] == 10.0
    assert before.choices.set_current_a == 16.0         # a snapshot keeps the tick's choices
    await tick(loadpoint, clock)
    assert charger.currents()[-1] == 10.0


async def test_a_session_is_stored_for_this_loadpoint_when_the_car_leaves(parts):
    _, store = parts
    charger, clock = FakeCharger(), FakeClock()
    loadpoint = make_loadpoint(parts, charger, clock)
    for n in range(1, 31):
        charger.answer = charging(16.0, kwh=10.0 + n * 0.01)
        await tick(loadpoint, clock)
    assert loadpoint.snapshot().session.active
    charger.answer = ChargerMeasurement(VehicleState.NO_VEHICLE, voltage_v=(230.0,) * 3,
                                        current_a=(0.0,) * 3, lifetime_energy_kwh=10.3)
    await tick(loadpoint, clock)
    sessions = store.list_sessions(loadpoint="0")
    assert len(sessions) == 1 and sessions[0].energy_kwh > 0.2
    assert loadpoint.snapshot().session.active is False


async def test_while_a_cut_is_being_written_the_status_already_says_why(parts):
    """The owner (or a test) who sees the charger at the lower current reads the decision that
    put it there, not the one before: the decision is recorded before the charger is told."""
    charger, clock = FakeCharger(), FakeClock()
    loadpoint = make_loadpoint(parts, charger, clock)
    await tick(loadpoint, clock)
    assert loadpoint.last_decision.bound_by == "user"
    seen: list = []

    async def set_current(amps: float) -> None:
        seen.append((amps, loadpoint.last_decision.bound_by, loadpoint.snapshot().decision.current_a))
        charger.commands.append(("current", amps))
    charger.set_current = set_current
    spike = SiteReadings(grid_w=(6500.0, 3800.0, 3800.0), consumption_w=(2800.0, 100.0, 100.0),
                         age_s=1.0)                     # 28 A on L1 with the car's 16 A: over 25 A
    decision = await tick(loadpoint, clock, spike)
    assert decision.bound_by == "fuse" and decision.current_a < 16.0
    assert seen == [(decision.current_a, "fuse", decision.current_a)]
