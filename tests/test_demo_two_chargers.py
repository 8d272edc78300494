"""`phaeton demo --chargers 2|3`: the Alfen double station (two sockets, a car each) and, with
3, an OCPP charge point with a third car, below the demo's "garage" circuit. Real parts only:
the demo's own private dbus-daemon, the Alfen and OCPP simulators, phaeton with its web UI, in
accelerated time. What an owner would check: every charger is its own Venus device (instance
and name) and its own card in the web UI, every car charges, the garage breaker is never over
its limit, the main fuse only for the moment a house load jumps (the cars are cut at the
meter's pace), and stopping leaves no process, port, file or task behind. (With the OCPP
charge point, whose meter reports only every few seconds, this holds because a car is raised
only once every other car's cut shows in its reading.)"""
from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile

import aiohttp
import pytest

from dbus_clients import run
from phaeton.sim.demo import DEMO_SCRIPT, services, run_demo
from phaeton.sim.world import GARAGE, GARAGE_A, MAIN_FUSE_A

SPEED = 60.0                 # simulated seconds per real second
TOLERANCE_A = 0.5            # rounding of the chargers' setpoints and the meter's noise
SPIKE_W, SPIKE_S = 2500.0, 120.0
REACTION_S = 10.0            # simulated s a house load spike may hold the grid over the fuse:
                             # a meter update, a tick (2 s), the charger told, slack for a busy
                             # machine (at 60x a simulated second is 17 ms)


def _daemons_for(bus_address: str) -> list[str]:
    directory = bus_address.split("path=", 1)[1].split(",", 1)[0].rsplit("/", 1)[0]
    out = subprocess.run(["pgrep", "-f", directory], capture_output=True, text=True).stdout
    return out.split()


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def _get_value(service: str, path: str) -> str:
    code, out, err = await run("dbus-send", "--system", "--print-reply", f"--dest={service}",
                               path, "com.victronenergy.BusItem.GetValue")
    assert code == 0, err
    return out.split("variant", 1)[1].strip()


class LimitWatch:
    """Samples the simulated currents at every update of the simulated GX (each simulated
    second): the garage breaker carries every car (all chargers hang below it), the main fuse
    every phase of the grid meter (the house and every car)."""

    def __init__(self, world):
        self.world = world
        self.worst_garage_a = 0.0
        self.worst_grid_a = 0.0
        self.charged: set[str] = set()
        self.samples = 0
        self.t0 = world.clock.monotonic()
        self.over_garage: list = []          # (simulated s, {charger: A}) over the breaker
        self.longest_over_fuse_s = 0.0       # simulated s the grid stayed over the main fuse
        self._over_since: float | None = None
        self.spiking = False
        self.least_garage_in_spike_a = float("inf")
        world.system.on_update = self.sample

    def sample(self, readings) -> None:
        garage = [0.0, 0.0, 0.0]
        drawn = {}
        for outlet in self.world.outlets:
            currents = self.world.phase_currents_a(outlet.id)
            drawn[outlet.id] = round(max(currents), 1)
            if max(currents) >= 6.0:
                self.charged.add(outlet.id)
            garage = [g + c for g, c in zip(garage, currents)]
        self.worst_garage_a = max(self.worst_garage_a, max(garage))
        if max(garage) > GARAGE_A + TOLERANCE_A:
            self.over_garage.append((round(self.world.clock.monotonic() - self.t0, 1), drawn))
        grid = max(w / 230.0 for w in readings.grid_w)
        self.worst_grid_a = max(self.worst_grid_a, grid)
        now = self.world.clock.monotonic()
        if grid > MAIN_FUSE_A + TOLERANCE_A:
            self._over_since = now if self._over_since is None else self._over_since
            self.longest_over_fuse_s = max(self.longest_over_fuse_s, now - self._over_since)
        else:
            self._over_since = None
        if self.spiking:
            self.least_garage_in_spike_a = min(self.least_garage_in_spike_a, max(garage))
        self.samples += 1

    async def run_for(self, simulated_s: float) -> None:
        end = self.world.clock.monotonic() + simulated_s
        await self.until(lambda: self.world.clock.monotonic() >= end, simulated_s + 60, "time")

    async def until(self, predicate, simulated_s: float, what: str) -> None:
        deadline = self.world.clock.monotonic() + simulated_s
        while not predicate():
            assert self.world.clock.monotonic() < deadline, f"not in time: {what}"
            await asyncio.sleep(0.05)


@pytest.fixture
def own_tempdir(monkeypatch):
    """The demo's temporary directories in one of this test's own (short: a unix socket path
    must stay under 108 bytes)."""
    own = tempfile.mkdtemp(prefix="pdt-")
    monkeypatch.setattr(tempfile, "tempdir", own)
    yield own
    shutil.rmtree(own, ignore_errors=True)


@pytest.mark.parametrize("chargers", [2, 3])
async def test_several_chargers_demo(chargers, monkeypatch, own_tempdir):
    seen: dict = {}
    ids = ["socket_1", "socket_2", "ocpp_1"][:chargers]

    async def ready(world, app, url):
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", world.bus_address)
        seen["bus"] = world.bus_address
        seen["daemons"] = _daemons_for(world.bus_address)
        seen["ports"] = [world.alfen_port, int(url.rsplit(":", 1)[1].strip("/"))]
        if world.ocpp_port is not None:
            seen["ports"].append(world.ocpp_port)
        seen["config"] = {"circuits": [(c["name"], c["max_current_a"], c["parent"])
                                       for c in app.cfg["circuits"]],
                          "chargers": [(c["id"], c["circuit"]) for c in app.cfg["chargers"]]}
        seen["services"] = services(world)
        seen["instances"] = [await _get_value(s, "/DeviceInstance") for s in services(world)]
        seen["names"] = [await _get_value(s, "/CustomName") for s in services(world)]
        seen["expected_names"] = [o.custom_name for o in world.outlets]

        # Every car arrives on the script and charges; the planned one (Scheduled) charges on
        # its plan, or, if the plan waits for cheaper hours, once the owner switches it to
        # Manual on the GX.
        watch = LimitWatch(world)
        last_arrival = max(e.at_s for e in DEMO_SCRIPT if e.charger_id in ids and e.at_s < 3600)
        others = set(ids[1:])
        await watch.until(lambda: others <= watch.charged, last_arrival + 600,
                          "the Manual cars charge")
        if "socket_1" not in watch.charged:
            code, out, err = await run("dbus-send", "--system", "--print-reply",
                                       f"--dest={services(world)[0]}", "/Mode",
                                       "com.victronenergy.BusItem.SetValue", "variant:int32:0")
            assert code == 0 and "int32 0" in out, (out, err)
            seen["switched_to_manual"] = True
        await watch.until(lambda: set(ids) <= watch.charged, 600, "every car charges")
        # sharing the garage for a while, then a 2.5 kW load (an oven) on L1 for two minutes:
        # the main fuse leaves less than the garage, the cars are cut at the meter's pace
        await watch.run_for(120)
        world.system.spike(1, SPIKE_W, SPIKE_S)
        watch.spiking = True
        await watch.run_for(SPIKE_S - 10)
        watch.spiking = False
        await watch.run_for(120)
        seen["watch"] = watch
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "api/status") as response:
                seen["status"] = await response.json()

    assert await run_demo(speed=SPEED, port=0, seconds=0.1, ready=ready,
                          chargers=chargers) == 0

    assert seen["services"] == [f"com.victronenergy.evcharger.phaeton_{i}" for i in ids]
    assert seen["config"] == {
        "circuits": [(GARAGE, GARAGE_A, "main")],
        "chargers": [(i, GARAGE) for i in ids]}
    instances = [int(value.split()[-1]) for value in seen["instances"]]
    assert len(set(instances)) == chargers, seen["instances"]
    assert [value.split(None, 1)[1].strip('"') for value in seen["names"]] \
        == seen["expected_names"]
    assert len(set(seen["expected_names"])) == chargers
    assert [c["id"] for c in seen["status"]["chargers"]] == ids     # a card each in the web UI
    watch = seen["watch"]
    assert watch.charged == set(ids)
    assert watch.worst_garage_a >= GARAGE_A - 1                 # the garage did bind
    assert watch.least_garage_in_spike_a < GARAGE_A - 1       # the main fuse did bind
    assert watch.samples >= 300                         # about every simulated second

    # stopped: no dbus-daemon, no listening port, no temporary file, no task left running
    assert len(seen["daemons"]) == 1
    assert _daemons_for(seen["bus"]) == []
    assert [port for port in seen["ports"] if _listening(port)] == []
    assert os.listdir(own_tempdir) == []
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []

    # The limits. Over the main fuse only for the moment the house load jumps (the meter's
    # update that shows it), then the cars are cut below it; the garage never.
    problems = []
    if watch.worst_garage_a > GARAGE_A + TOLERANCE_A:
        problems.append(f"garage {watch.worst_garage_a:.1f} A > {GARAGE_A} A: "
                        f"{watch.over_garage[:10]}")
    if watch.longest_over_fuse_s > REACTION_S:
        problems.append(f"grid over the {MAIN_FUSE_A} A main fuse for "
                        f"{watch.longest_over_fuse_s:.0f} s (up to {watch.worst_grid_a:.1f} A)")
    assert not problems, problems


def test_command_line_runs_three_chargers_and_stops():
    result = subprocess.run([sys.executable, "-m", "phaeton", "demo", "--chargers", "3",
                             "--speed", "30", "--port", "0", "--seconds", "4"],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    for charger in ("socket_1", "socket_2", "ocpp_1"):
        assert f"com.victronenergy.evcharger.phaeton_{charger}" in result.stdout
    assert "'garage'" in result.stdout and "socket unit 2" in result.stdout
    assert "phaeton demo stopped" in result.stdout


@pytest.mark.parametrize("args", [["--chargers", "4"], ["--chargers", "2", "--ocpp"]])
def test_command_line_refuses_what_the_demo_cannot_do(args):
    result = subprocess.run([sys.executable, "-m", "phaeton", "demo", "--port", "0",
                             "--seconds", "1", *args], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "--chargers" in result.stderr


async def test_the_script_plugs_cars_in_and_out_on_the_world_clock():
    """A car arrives, leaves and comes back with less charge; a charger the world does not
    have (the OCPP point of a two-charger demo) is skipped."""
    from phaeton.sim.demo import DemoEvent, run_script
    from phaeton.sim.world import SimWorld

    async with SimWorld(speed=200, chargers=2) as world:
        car = world.outlet("socket_2").ev
        soc0 = car.soc_pct
        start = world.clock.monotonic()
        await run_script(world, [DemoEvent(20, "socket_2", False),
                                 DemoEvent(10, "socket_2", True),
                                 DemoEvent(15, "ocpp_1", True),
                                 DemoEvent(30, "socket_2", True, soc_drop_pct=20.0)], start)
        took_s = world.clock.monotonic() - start
        plugged = [o.ev.plugged_in for o in world.outlets]
    assert 30 <= took_s < 60
    assert plugged == [False, True]
    assert car.soc_pct == pytest.approx(soc0 - 20.0)      # no current offered: no charging


async def test_ending_the_script_survives_a_swallowed_cancellation():
    """Python 3.11's wait_for can swallow a cancellation; the demo still ends its script."""
    from phaeton.sim.demo import _end_task

    swallowed = []

    async def stubborn():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            swallowed.append(True)              # what wait_for may do, racing its result
        await asyncio.sleep(600)

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await _end_task(task)
    assert task.cancelled() and swallowed == [True]
