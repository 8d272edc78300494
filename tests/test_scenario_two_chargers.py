"""Two chargers on one simulated GX: two Alfen stations (two real Modbus servers on loopback)
below a 20 A garage circuit below the 25 A main fuse, each its own Venus device on the private
bus, in accelerated time. What an owner with two cars would check: no fuse or breaker is ever
over its limit, both cars charge when there is room for both minimums, they take turns when
there is not, and a write to one charger changes only that one."""
from __future__ import annotations

import os

import pytest
import yaml

from dbus_clients import dbus_send
from scripted_gx import VOLTAGE, ScriptedGx
from phaeton.sim.alfen import AlfenSimulator
from phaeton.sim.ev import SimulatedEV

pytestmark = pytest.mark.slow

FUSE_A, GARAGE_A = 25.0, 20.0
NAMES = ("com.victronenergy.evcharger.phaeton_left", "com.victronenergy.evcharger.phaeton_right")


class TwoChargerGx(ScriptedGx):
    """The scripted GX with a second station; the grid carries both cars."""

    def __init__(self, bus_address: str, directory: str, **overrides):
        super().__init__(bus_address, directory, **overrides)
        self.ev2 = SimulatedEV(capacity_kwh=60, soc_pct=30)
        self.alfen2 = AlfenSimulator(clock=self.clock, ev=self.ev2, safe_current_a=6.0)

    def ev_power_w(self) -> tuple[float, float, float]:
        both = [a + b for a, b in zip(self.alfen.phase_currents_a(), self.alfen2.phase_currents_a())]
        return tuple(a * VOLTAGE for a in both)

    async def __aenter__(self):
        await self.alfen2.start()
        return await super().__aenter__()

    async def __aexit__(self, *exc):
        await super().__aexit__(*exc)
        await self.alfen2.close()

    def config_path(self) -> str:
        station = {"min_current_a": 6, "max_current_a": 16, "phases": 3, "safe_current_a": 0,
                   "protocol": "alfen", "circuit": "garage"}
        config = {
            "data_dir": os.path.join(self.directory, "data"),
            "site": {"fuse_a": FUSE_A, "phases": 3},
            "circuits": [{"name": "garage", "max_current_a": GARAGE_A}],
            "chargers": [
                {"id": "left", **station, "alfen": {"host": "127.0.0.1", "port": self.alfen.port},
                 "custom_name": "Left"},
                {"id": "right", **station, "alfen": {"host": "127.0.0.1", "port": self.alfen2.port},
                 "custom_name": "Right"},
            ],
            "control": {"tick_s": 2, "stale_after_s": 30, "fuse_recovery_delay_s": 30,
                        "turn_s": 120,
                        "auto": {"smoothing_s": 10, "enable_delay_s": 30,
                                 "disable_delay_s": 120, "min_charge_duration_s": 60},
                        "phase_switching": {"enabled": False}},
            "web": {"enabled": False},
        }
        path = os.path.join(self.directory, "config.yaml")
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(config, f)
        return path


@pytest.fixture
async def gx(private_bus, tmp_path):
    async with TwoChargerGx(private_bus, str(tmp_path)) as world:
        yield world


def currents(gx) -> tuple[float, float]:
    """What each station applies (its setpoint)."""
    return gx.alfen.applied_current_a, gx.alfen2.applied_current_a


def drawn(gx) -> tuple[float, float]:
    """What each car draws (highest phase): it follows a new setpoint within seconds."""
    return max(gx.alfen.phase_currents_a()), max(gx.alfen2.phase_currents_a())


async def followed(gx, limit_a: float, what: str) -> None:
    """Until both cars draw at most `limit_a`: a cut has landed when the cars follow it (the
    watch starts there; the moments before are the fuse's short overload, as with one car)."""
    await gx.until(lambda: max(drawn(gx)) <= limit_a + 0.05, 20, what)


class LimitWatch:
    """Checks every half simulated second: the garage breaker (both cars) and every phase of
    the main fuse (house + both cars, from the grid meter) within their limits."""

    def __init__(self, gx):
        self.gx, self.worst_garage_a, self.worst_grid_a = gx, 0.0, 0.0

    def check(self) -> None:
        left, right = self.gx.alfen.phase_currents_a(), self.gx.alfen2.phase_currents_a()
        garage = max(a + b for a, b in zip(left, right))
        grid = max(w / VOLTAGE for w in self.gx.system.grid_w())
        self.worst_garage_a = max(self.worst_garage_a, garage)
        self.worst_grid_a = max(self.worst_grid_a, grid)

    async def run_for(self, simulated_s: float) -> None:
        for _ in range(int(simulated_s * 2)):
            await self.gx.run_for(0.5)
            self.check()


async def test_two_cars_share_the_garage_breaker_and_take_turns(gx):
    app = await gx.start_phaeton()                      # both Manual, started, 16 A
    assert [lp.evcharger.name for lp in app.loadpoints] == list(NAMES)
    gx.alfen.plug_in()
    gx.alfen2.plug_in()
    await gx.until(lambda: min(currents(gx)) >= 6, 60, "both cars charging")
    await followed(gx, 10, "both cars at their share")
    watch = LimitWatch(gx)
    await watch.run_for(20)
    # the 20 A garage breaker is shared: 10 A each, never more than 20 A together
    assert currents(gx) == (10.0, 10.0)
    assert watch.worst_garage_a <= GARAGE_A + 0.01

    # a 12 A house load on L1 leaves 13 A under the main fuse: 6.5 A each, both above 6 A
    gx.system.house_w = [2760.0, 300.0, 300.0]
    await gx.until(lambda: max(currents(gx)) <= 6.5, 10, "the fuse cut")
    await followed(gx, 6.5, "the cars follow the cut")
    watch = LimitWatch(gx)
    await watch.run_for(20)
    assert all(6 <= a <= 6.5 for a in currents(gx)), currents(gx)
    assert watch.worst_grid_a <= FUSE_A + 0.5

    # 17 A of house load on L1 leaves 8 A: room for one minimum, so they take turns
    gx.system.house_w = [4000.0, 300.0, 300.0]
    await gx.until(lambda: sorted(currents(gx))[0] == 0 and max(currents(gx)) >= 6, 10,
                   "one car paused")
    first = 0 if currents(gx)[0] > 0 else 1
    paused_at = gx.clock.time()
    await gx.until(lambda: drawn(gx)[1 - first] <= 0.05 and drawn(gx)[first] <= 8.05, 20,
                   "the cars follow")
    # From here on, through the swap of turns (break before make). A turn counts from when
    # the car began to run (allocator.RotationState), which was before the house load came,
    # so how long `first` keeps its turn depends on how long the steps above took: the test
    # holds what must be true whatever that was (one at a time, the swap within a turn of
    # 120 s, the fuse kept).
    watch = LimitWatch(gx)
    while not (currents(gx)[1 - first] >= 6 and currents(gx)[first] == 0):
        assert sorted(currents(gx))[0] == 0, "both cars at once"
        assert gx.clock.time() - paused_at < 200, "the other car's turn never came"
        await watch.run_for(0.5)
    await watch.run_for(10)
    assert watch.worst_grid_a <= FUSE_A + 0.5
    await gx.until(lambda: "turn" in app.status()["chargers"][first]["reason"], 10,
                   "the waiting car says it waits for its turn")

    # the house load is gone: both charge again, and a write to one changes only that one
    gx.system.house_w = [300.0] * 3
    await gx.until(lambda: min(currents(gx)) >= 6, 120, "both charging again")
    assert "int32 0" in await dbus_send(NAMES[1], "/SetCurrent", "SetValue", "variant:double:7")
    await gx.until(lambda: currents(gx)[1] == 7, 10, "the right car at 7 A")
    await gx.run_for(40)                                # after the fuse recovery delay
    assert currents(gx) == (13.0, 7.0)                  # the left takes what the right leaves
    assert app.loadpoint("left").choices.set_current_a == 16.0


async def bus_names(gx) -> set[str]:
    reply = await dbus_send("org.freedesktop.DBus", "/org/freedesktop/DBus", "ListNames",
                            interface="org.freedesktop.DBus")
    return {name for name in NAMES + ("com.victronenergy.evcharger.phaeton_spare",)
            if f'"{name}"' in reply}


async def test_a_saved_config_adds_and_removes_chargers_live(gx):
    """The owner removes a charger in the web UI's settings: its service leaves the GX and its
    station is left at the safe current; adding one back brings a new service, while the
    other charger charges on undisturbed."""
    app = await gx.start_phaeton()
    gx.alfen.plug_in()
    gx.alfen2.plug_in()
    await gx.until(lambda: min(currents(gx)) >= 6, 60, "both cars charging")
    assert await bus_names(gx) == set(NAMES)
    left_service = app.loadpoint("left").evcharger
    data = app.config()
    right = data["chargers"].pop(1)
    assert await app.apply_config(data) == []
    assert await bus_names(gx) == {NAMES[0]}
    assert app.charger_ids() == ["left"]
    assert app.loadpoint("left").evcharger is left_service          # untouched
    await gx.until(lambda: currents(gx) == (16.0, 0.0), 60,
                   "left alone on the garage breaker's 16 A, right at its safe 0 A")

    data["chargers"].append({**right, "id": "spare", "custom_name": "Spare"})
    assert await app.apply_config(data) == []
    assert await bus_names(gx) == {NAMES[0], "com.victronenergy.evcharger.phaeton_spare"}
    assert "int32 0" in await dbus_send("com.victronenergy.evcharger.phaeton_spare",
                                        "/SetCurrent", "SetValue", "variant:double:8")
    await gx.until(lambda: currents(gx)[1] == 8, 60, "the new charger takes its write")
    assert app.loadpoint("left").evcharger is left_service
