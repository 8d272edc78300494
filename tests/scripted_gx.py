"""A scripted GX for scenario tests: the test sets PV, house load and battery exactly; the grid
follows what the simulated car really draws from the Alfen simulator.

Real parts throughout: a private dbus-daemon (the `private_bus` fixture), velib's settings
service, a `com.victronenergy.system` service exported with velib, the Alfen Modbus simulator on
loopback, and phaeton itself. Time runs `SPEED` times faster than real time (one ScaledClock
shared by phaeton, the simulator and the system service).
"""
from __future__ import annotations

import asyncio
import os
import time

import yaml

from phaeton.app import Phaeton
from phaeton.clock import ScaledClock
from phaeton.config import load_config
from phaeton.sim.alfen import AlfenSimulator
from phaeton.sim.ev import SimulatedEV
from velib.service import VeDbusService
from velib.settings_service import SettingsService

SPEED = 20.0
UNTIL_MIN_REAL_S = 20.0
VOLTAGE = 230.0
NAME = "com.victronenergy.evcharger.phaeton_0"


class ScriptedSystem:
    """`com.victronenergy.system` whose values the test scripts (W per phase).

    grid per phase = house + EV − PV (AC-coupled, no home battery flow unless set), as a GX with
    the charger on the AC input would report it; consumption includes the EV."""

    def __init__(self, clock: ScaledClock, ev_power_w):
        self.clock = clock
        self.ev_power_w = ev_power_w          # callable -> (L1, L2, L3) W
        self.pv_w = [0.0, 0.0, 0.0]
        self.house_w = [300.0, 300.0, 300.0]
        self.battery_soc_pct = 80.0
        self.battery_power_w = 0.0
        self.active_soc_limit_pct = 10.0
        self.frozen = False
        self._publishes = 0
        self.service = VeDbusService("com.victronenergy.system")
        for n in (1, 2, 3):
            for kind in ("Grid", "Consumption", "PvOnGrid"):
                self.service.add_path(f"/Ac/{kind}/L{n}/Power", 0.0)
        self.service.add_path("/Dc/Pv/Power", None)
        self.service.add_path("/Dc/Battery/Soc", self.battery_soc_pct)
        self.service.add_path("/Dc/Battery/Power", 0.0)
        self.service.add_path("/Control/ActiveSocLimit", self.active_soc_limit_pct)
        self.service.add_path("/Ac/ActiveIn/Source", 1)
        self.service.add_path("/Serial", "c0619ab00000")
        self._task: asyncio.Task | None = None

    def grid_w(self) -> list[float]:
        ev = self.ev_power_w()
        return [self.house_w[i] + ev[i] - self.pv_w[i] for i in range(3)]

    def publish(self) -> None:
        ev = self.ev_power_w()
        grid = self.grid_w()
        self._publishes += 1
        jitter = 0.1 * (self._publishes % 2)   # real meters never repeat exactly
        with self.service.batch():
            for i, n in enumerate((1, 2, 3)):
                self.service[f"/Ac/Grid/L{n}/Power"] = round(grid[i] + jitter, 1)
                self.service[f"/Ac/Consumption/L{n}/Power"] = round(self.house_w[i] + ev[i], 1)
                self.service[f"/Ac/PvOnGrid/L{n}/Power"] = round(self.pv_w[i], 1)
            self.service["/Dc/Battery/Soc"] = self.battery_soc_pct
            self.service["/Dc/Battery/Power"] = self.battery_power_w
            self.service["/Control/ActiveSocLimit"] = self.active_soc_limit_pct

    async def start(self) -> None:
        await self.service.register()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            if not self.frozen:
                self.publish()
            await self.clock.sleep(1.0)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.service.close()


class ScriptedGx:
    """Everything but phaeton; `start_phaeton()` starts (or restarts) phaeton against it."""

    def __init__(self, bus_address: str, directory: str, **config_overrides):
        self.bus_address = bus_address
        self.directory = directory
        self.clock = ScaledClock(SPEED)
        self.ev = SimulatedEV(capacity_kwh=60, soc_pct=40)
        self.alfen = AlfenSimulator(clock=self.clock, ev=self.ev, safe_current_a=6.0)
        self.system = ScriptedSystem(self.clock, self.ev_power_w)
        self.settings = SettingsService(os.path.join(directory, "settings"))
        self.config_overrides = config_overrides
        self.phaeton: Phaeton | None = None

    def ev_power_w(self) -> tuple[float, float, float]:
        currents = self.alfen.phase_currents_a()
        return tuple(a * VOLTAGE for a in currents)

    async def __aenter__(self) -> "ScriptedGx":
        await self.settings.register()
        await self.alfen.start()
        await self.system.start()
        return self

    def config_path(self) -> str:
        config = {
            "data_dir": os.path.join(self.directory, "data"),
            "site": {"fuse_a": 25, "phases": 3},
            "charger": {"protocol": "alfen", "max_current_a": 16, "min_current_a": 6,
                        "safe_current_a": 0,
                        "alfen": {"host": "127.0.0.1", "port": self.alfen.port}},
            "control": {"tick_s": 2, "stale_after_s": 30, "fuse_recovery_delay_s": 30,
                        "auto": {"smoothing_s": 10, "enable_delay_s": 30,
                                 "disable_delay_s": 120, "min_charge_duration_s": 60},
                        "phase_switching": {"enabled": False}},
            "web": {"enabled": False},
        }
        for section, values in self.config_overrides.items():
            config.setdefault(section, {}).update(values)
        path = os.path.join(self.directory, "config.yaml")
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(config, f)
        return path

    async def start_phaeton(self) -> Phaeton:
        path = self.config_path()
        self.phaeton = Phaeton(load_config(path), config_path=path, clock=self.clock)
        await self.phaeton.start()
        return self.phaeton

    async def stop_phaeton(self) -> None:
        if self.phaeton is not None:
            await self.phaeton.stop()
            self.phaeton = None

    async def run_for(self, simulated_s: float) -> None:
        await self.clock.sleep(simulated_s)

    async def until(self, predicate, simulated_s: float = 120.0, what: str = "condition"):
        """Wait until predicate() is true, at most `simulated_s` of simulated time, and never
        less than UNTIL_MIN_REAL_S of real time: on a busy machine the simulated clock runs on
        while phaeton waits for the CPU, so a simulated budget alone races the machine's load.
        (Tests that assert speed count ticks or events, not seconds.)"""
        deadline = self.clock.monotonic() + simulated_s
        real_deadline = time.monotonic() + UNTIL_MIN_REAL_S
        while self.clock.monotonic() < deadline or time.monotonic() < real_deadline:
            if predicate():
                return
            await self.clock.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}; status: "
                             f"{self.phaeton.status() if self.phaeton else None}")

    async def __aexit__(self, *exc) -> None:
        await self.stop_phaeton()
        await self.system.stop()
        await self.alfen.close()
        await self.settings.close()
