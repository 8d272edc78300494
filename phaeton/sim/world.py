"""`SimWorld`: a complete simulated GX for the scenario tests and `phaeton demo`.

One async context manager builds, on one shared `ScaledClock(speed)`:

- a private dbus-daemon (`PrivateBus`), or an existing bus address you pass;
- `com.victronenergy.settings` (velib's `SettingsService`, in-process, saving its file 2 s
  after a change like localsettings does), seeded with the ESS settings a GX has and the
  Dynamic ESS ones (mode, system facts and all 48 schedule entries) with the types, defaults
  and ranges dbus-systemcalc-py's `delegates/dynamicess.py` registers them with;
- `com.victronenergy.system` (`SimulatedSystemService`) over a `SimulatedSite`: a June day
  with a clear morning, a few passing clouds after midday, random appliances and an evening
  cooking peak;
- a charger simulator holding the `SimulatedEV`: `AlfenSimulator` on a free loopback port
  (default), or with `charger="ocpp"` a `SimulatedChargePoint` that `start_charge_point(url)`
  connects to phaeton's central system.

The power the system service sees for the EV is what the charger simulator's car draws, so
the grid and consumption on the bus include the car.

    async with SimWorld(speed=60) as world:
        config = world.config_for_phaeton(data_dir)     # a phaeton config dict for this world
        await world.plug_in()

Every process and temporary directory the world created is gone after it exits.

Run alone: `python -m phaeton.sim.world [--speed 60] [--charger alfen|ocpp --url WS_URL]
[--plugged-in]`; it prints the bus address to export as DBUS_SYSTEM_BUS_ADDRESS.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import math
import shutil
import signal
import socket
import tempfile
from collections.abc import Awaitable
from datetime import datetime
from typing import Any, Literal, Self

from phaeton.clock import ScaledClock
from phaeton.sim.alfen import AlfenSimulator
from phaeton.sim.ev import SimulatedEV
from phaeton.sim.gx_system import CloudWindow, SimulatedSite, SimulatedSystemService
from phaeton.sim.ocpp_cp import SimulatedChargePoint
from phaeton.sim.private_bus import PrivateBus
from phaeton.sim.site import DessTarget, SiteConfig
from velib.settings_service import SettingsService

log = logging.getLogger("phaeton.sim.world")

# A realistic June day: clear until late morning, a few passing clouds after midday, the
# model's own random clouds elsewhere (local hours).
DEFAULT_CLOUD_SCRIPT: tuple[CloudWindow, ...] = (
    (5.0, 11.5, 0.0),
    (12.5, 12.9, 0.7),
    (14.2, 14.5, 0.5),
    (15.6, 16.4, 0.4),
)
DEFAULT_START = datetime(2026, 6, 1, 8, 0)   # local wall time the simulated day starts at
OCPP_PATH = "/ocpp"
DESS_PREFIX = "/Settings/DynamicEss/"
DESS_ENTRIES = 48      # systemcalc's number of schedule entries
DESS_LOCAL = 4         # /Settings/DynamicEss/Mode of a local program's schedule


# Settings a GX has that phaeton reads or writes (ESS, Dynamic ESS), with Victron's defaults
# (the DESS battery capacity as the owner set it up).
def _gx_settings(site: SiteConfig) -> list[tuple[str, Any, Any, Any]]:
    return _ess_settings(site) + _dess_schedule_settings()


def _ess_settings(site: SiteConfig) -> list[tuple[str, Any, Any, Any]]:
    return [
        ("/Settings/CGwacs/Hub4Mode", 1, 1, 3),
        ("/Settings/CGwacs/AcPowerSetPoint", 0.0, -1e6, 1e6),
        ("/Settings/CGwacs/BatteryLife/MinimumSocLimit", float(site.battery_min_soc_pct),
         0.0, 100.0),
        ("/Settings/CGwacs/MaxDischargePower", -1.0, -1.0, 1e6),
        ("/Settings/CGwacs/MaxChargePower", -1.0, -1.0, 1e6),
        ("/Settings/CGwacs/MaxFeedInPower", -1.0, -1.0, 1e6),
        ("/Settings/DynamicEss/Mode", 0, 0, 4),
        ("/Settings/DynamicEss/BatteryCapacity", float(site.battery_capacity_kwh), 0.0, 1000.0),
        ("/Settings/DynamicEss/SystemEfficiency", 90.0, 50.0, 100.0),
        ("/Settings/DynamicEss/BatteryChargeLimit", -1.0, -1.0, 9999.9),
        ("/Settings/DynamicEss/BatteryDischargeLimit", -1.0, -1.0, 9999.9),
        ("/Settings/DynamicEss/GridImportLimit", -1.0, -1.0, 9999.9),
        ("/Settings/DynamicEss/GridExportLimit", -1.0, -1.0, 9999.9),
    ]


# The fields of one Dynamic ESS schedule entry as systemcalc registers them (default, min, max;
# min = max = 0: no range): TargetSoc is a decimal, Soc its legacy integer form.
DESS_ENTRY_FIELDS: dict[str, tuple[Any, Any, Any]] = {
    "Start": (0, 0, 0), "Duration": (0, 0, 0), "TargetSoc": (0.0, 0.0, 100.0),
    "Soc": (0, 0, 100), "AllowGridFeedIn": (0, 0, 1), "Restrictions": (0, 0, 3),
    "Strategy": (0, 0, 3), "Flags": (0, 0, 3),
}
DESS_FLAG_PV_OFF = 2


def _dess_schedule_settings() -> list[tuple[str, Any, Any, Any]]:
    return [(f"/Settings/DynamicEss/Schedule/{index}/{field}", *spec)
            for index in range(DESS_ENTRIES) for field, spec in DESS_ENTRY_FIELDS.items()]


class GxSettingsService(SettingsService):
    """The world's `com.victronenergy.settings`. Like localsettings on a GX, which collects the
    changes of 2 s before it writes its file, changes are saved together SAVE_DELAY_S after
    the first one (not one file write per change: a burst of Dynamic ESS schedule writes must
    not stall the event loop the whole world shares). `save_pending()` saves at once."""

    SAVE_DELAY_S = 2.0

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._save_timer: asyncio.TimerHandle | None = None

    def _persist(self) -> None:
        if self._save_timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            super()._persist()
            return
        self._save_timer = loop.call_later(self.SAVE_DELAY_S, self.save_pending)

    def save_pending(self) -> None:
        """Save the changes not saved yet (nothing when there are none)."""
        timer, self._save_timer = self._save_timer, None
        if timer is not None:
            timer.cancel()
            super()._persist()


def _seed_settings(service: SettingsService, entries: list[tuple[str, Any, Any, Any]]) -> None:
    """Add the settings a GX already has before anyone asks (existing ones keep their values).
    Added in one go and saved once: `add_setting` saves the file for each of the ~400."""
    for path, default, minimum, maximum in entries:
        service._add(path, default, None, minimum, maximum, False)
    service.save()


STOP_TIMEOUT_S = 5.0   # real seconds a part may take to stop


async def _bounded(stopping: Awaitable[None], what: str) -> bool:
    """Await a part's stop for at most STOP_TIMEOUT_S; False (logged) when it took longer."""
    try:
        await asyncio.wait_for(stopping, STOP_TIMEOUT_S)
    except TimeoutError:
        log.warning("%s did not stop within %g s; going on", what, STOP_TIMEOUT_S)
        return False
    return True


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on `host` (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class SimWorld:
    """A simulated GX: bus, settings, system service, charger simulator and EV (see module)."""

    def __init__(self, *, speed: float = 60.0, charger: Literal["alfen", "ocpp"] = "alfen",
                 bus_address: str | None = None, start: datetime = DEFAULT_START,
                 seed: int = 0, site_config: SiteConfig | None = None,
                 cloud_script: tuple[CloudWindow, ...] = DEFAULT_CLOUD_SCRIPT,
                 ev: SimulatedEV | None = None, ev_position: int = 1,
                 update_interval_s: float = 1.0, safe_current_a: float = 0.0,
                 charge_point_id: str = "SIMCP1", data_dir: str | None = None):
        if charger not in ("alfen", "ocpp"):
            raise ValueError(f"charger must be 'alfen' or 'ocpp', got {charger!r}")
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) \
                or not math.isfinite(speed) or speed <= 0:
            raise ValueError(f"speed must be a number > 0, got {speed!r}")
        if not isinstance(start, datetime):
            raise TypeError(f"start must be a datetime (local wall time), got {start!r}")
        if not charge_point_id or "/" in charge_point_id:
            raise ValueError(f"charge_point_id must be a non-empty name without '/', "
                             f"got {charge_point_id!r}")
        self.charger_kind = charger
        self.speed = float(speed)
        self.start_time = start
        self.clock = ScaledClock(self.speed, start=start.timestamp())
        self.site = SimulatedSite(seed=seed, start=start, config=site_config,
                                  cloud_script=cloud_script)
        self.ev = ev if ev is not None else SimulatedEV()
        self.ev_position = ev_position
        self.update_interval_s = update_interval_s
        self.safe_current_a = safe_current_a
        self.charge_point_id = charge_point_id
        self._given_bus_address = bus_address
        self._given_data_dir = data_dir
        self.bus_address = bus_address or ""
        self.data_dir = data_dir or ""
        self.ocpp_port: int | None = None
        self.bus: PrivateBus | None = None
        self.settings: GxSettingsService | None = None
        self.system: SimulatedSystemService | None = None
        self.charger_sim: AlfenSimulator | SimulatedChargePoint | None = None
        self._own_dir: str | None = None
        self._started = False

    # ---- life cycle -------------------------------------------------------------------------

    async def start(self) -> Self:
        """Bring everything up; on a failure, whatever started is stopped again."""
        if self._started:
            raise RuntimeError("this SimWorld is already running")
        self._started = True
        try:
            await self._start_parts()
        except BaseException:
            await self.stop()
            raise
        return self

    async def _start_parts(self) -> None:
        if self._given_data_dir is None:
            self._own_dir = tempfile.mkdtemp(prefix="phaeton-world-")
            self.data_dir = self._own_dir
        if self._given_bus_address is None:
            self.bus = PrivateBus().start()
            self.bus_address = self.bus.address
        self.settings = GxSettingsService(f"{self.data_dir}/settings",
                                          bus_address=self.bus_address)
        _seed_settings(self.settings, _gx_settings(self.site.config))
        await self.settings.register()
        if self.charger_kind == "alfen":
            self.charger_sim = AlfenSimulator(host="127.0.0.1", port=0, clock=self.clock,
                                              ev=self.ev, safe_current_a=self.safe_current_a)
            await self.charger_sim.start()
        else:
            self.ocpp_port = free_tcp_port()
        self.system = SimulatedSystemService(
            site=self.site, clock=self.clock, ev_power_w=self.ev_power_w,
            ev_position=self.ev_position, update_interval_s=self.update_interval_s,
            bus_address=self.bus_address, dess_target=self.dess_target_at,
            pv_disabled=self.dess_pv_disabled_at)
        await self.system.start()
        log.info("simulated GX on %s (speed x%g, %s charger)", self.bus_address, self.speed,
                 self.charger_kind)

    def dess_entry_at(self, unix_s: float) -> str | None:
        """The Dynamic ESS schedule entry (its settings path ending in '/') the GX's DESS runs
        at `unix_s`: with `/Settings/DynamicEss/Mode` 4 (a local schedule), the first entry
        whose window contains that moment; None otherwise."""
        settings = self.settings
        if settings is None or settings[DESS_PREFIX + "Mode"] != DESS_LOCAL:
            return None
        for index in range(DESS_ENTRIES):
            entry = f"{DESS_PREFIX}Schedule/{index}/"
            if entry + "Start" not in settings.settings or not settings[entry + "Start"]:
                continue                              # not written, or unused (Start 0)
            start_s = float(settings[entry + "Start"])
            end_s = start_s + float(settings[entry + "Duration"] or 0)
            if start_s <= unix_s < end_s:
                return entry
        return None

    def _entry_value(self, entry: str, field: str) -> Any:
        settings = self.settings
        path = entry + field
        return settings[path] if settings is not None and path in settings.settings else None

    def dess_target_at(self, unix_s: float) -> DessTarget | None:
        """The target-SoC window the GX's Dynamic ESS runs at `unix_s` (`dess_entry_at`), if
        its Strategy is 0 (target SoC); otherwise None (plain self-consumption). The target is
        TargetSoc, or the legacy integer Soc where TargetSoc is 0, as systemcalc reads it."""
        entry = self.dess_entry_at(unix_s)
        if entry is None or self._entry_value(entry, "Strategy") != 0:
            return None
        target = self._entry_value(entry, "TargetSoc") or self._entry_value(entry, "Soc") or 0
        end_s = float(self.settings[entry + "Start"]) + float(self.settings[entry + "Duration"])
        return DessTarget(float(target), end_s,
                          int(self._entry_value(entry, "Restrictions") or 0))

    def dess_pv_disabled_at(self, unix_s: float) -> bool:
        """systemcalc's rule for `/Pv/Disable`: PV is switched off while DESS runs a window
        (Mode 4, `dess_entry_at`) whose Flags has bit 2 (DISABLEPV); on otherwise."""
        entry = self.dess_entry_at(unix_s)
        flags = self._entry_value(entry, "Flags") if entry is not None else None
        return isinstance(flags, int) and bool(flags & DESS_FLAG_PV_OFF)

    async def stop(self) -> None:
        """Stop every part (charger, system, settings, bus) and remove the temporary files.

        A part that does not stop within STOP_TIMEOUT_S (e.g. a goodbye to a bus that is going
        away at the same moment) is logged and left behind, so the rest still stops."""
        sim, self.charger_sim = self.charger_sim, None
        if isinstance(sim, AlfenSimulator):
            await _bounded(sim.close(), "the Alfen simulator")
        elif sim is not None:
            await _bounded(sim.stop(), "the OCPP charge point")
        system, self.system = self.system, None
        if system is not None:
            await _bounded(system.close(), "the system service")
        settings, self.settings = self.settings, None
        if settings is not None:
            settings.save_pending()
            settings_bus = settings.bus
            if not await _bounded(settings.close(), "the settings service") \
                    and settings_bus is not None and settings_bus.connected:
                settings_bus.disconnect()
        bus, self.bus = self.bus, None
        if bus is not None:
            bus.stop()
        own, self._own_dir = self._own_dir, None
        if own is not None:
            shutil.rmtree(own, ignore_errors=True)
        self._started = False

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *_exc) -> None:
        await self.stop()

    # ---- the charger and the car ------------------------------------------------------------

    @property
    def alfen_port(self) -> int | None:
        """The Alfen simulator's Modbus TCP port (None for an OCPP world)."""
        return self.charger_sim.port if isinstance(self.charger_sim, AlfenSimulator) else None

    @property
    def ocpp_url(self) -> str | None:
        """Where `config_for_phaeton` puts phaeton's central system for this charge point."""
        if self.ocpp_port is None:
            return None
        return f"ws://127.0.0.1:{self.ocpp_port}{OCPP_PATH}/{self.charge_point_id}"

    async def start_charge_point(self, url: str | None = None, **options: Any
                                 ) -> SimulatedChargePoint:
        """OCPP world: create the charge point (sharing the EV and clock) and let it connect to
        `url` (default `ocpp_url`). `options` go to `SimulatedChargePoint`."""
        if self.charger_kind != "ocpp":
            raise RuntimeError("start_charge_point needs SimWorld(charger='ocpp')")
        if not self._started:
            raise RuntimeError("start the world before its charge point")
        if self.charger_sim is not None:
            raise RuntimeError("the charge point is already started")
        url = url or self.ocpp_url
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            raise ValueError(f"the central system URL must start with ws:// or wss://, "
                             f"got {url!r}")
        options.setdefault("meter_interval_s", 10)
        cp = SimulatedChargePoint(url, ev=self.ev, clock=self.clock, **options)
        await cp.start()
        self.charger_sim = cp
        return cp

    def ev_power_w(self) -> tuple[float, float, float]:
        """What the car draws now through the charger simulator, per phase (W)."""
        sim = self.charger_sim
        if isinstance(sim, AlfenSimulator):
            currents = sim.phase_currents_a()
            return tuple(currents[i] * sim.voltages_v[i] for i in range(3))  # type: ignore
        if isinstance(sim, SimulatedChargePoint):
            if sim.transaction_id is None or sim.fault is not None or not sim.ev.plugged_in:
                return (0.0, 0.0, 0.0)
            current, phases = sim.ev.draw(sim.offered_current_a(), sim.phases)
            return tuple(current * sim.voltage_v if i < phases else 0.0  # type: ignore
                         for i in range(3))
        return (0.0, 0.0, 0.0)

    async def plug_in(self) -> None:
        """The car is plugged in (through the charger simulator when there is one)."""
        sim = self.charger_sim
        if isinstance(sim, AlfenSimulator):
            sim.plug_in()
        elif isinstance(sim, SimulatedChargePoint):
            await sim.plug_in()
        else:
            self.ev.plug_in()

    async def plug_out(self) -> None:
        """The car leaves."""
        sim = self.charger_sim
        if isinstance(sim, AlfenSimulator):
            sim.plug_out()
        elif isinstance(sim, SimulatedChargePoint):
            await sim.plug_out()
        else:
            self.ev.plug_out()

    # ---- phaeton's view ---------------------------------------------------------------------

    def config_for_phaeton(self, data_dir: str) -> dict[str, Any]:
        """A phaeton config dict (keys of config.yaml) pointing at this world."""
        if not self._started:
            raise RuntimeError("start the world first: the ports are chosen when it starts")
        site = self.site.config
        max_current_a = int(min(32, max(6, self.ev.onboard_max_current_a)))
        charger: dict[str, Any] = {
            "protocol": self.charger_kind,
            "position": self.ev_position,
            "min_current_a": 6,
            "max_current_a": max_current_a,
            "phases": 3,
            "safe_current_a": 0,
        }
        if self.charger_kind == "alfen":
            charger["alfen"] = {"host": "127.0.0.1", "port": self.alfen_port,
                                "station_unit_id": 200, "socket_unit_id": 1}
        else:
            charger["ocpp"] = {"host": "127.0.0.1", "port": self.ocpp_port, "path": OCPP_PATH,
                               "charge_point_id": self.charge_point_id,
                               "meter_interval_s": 10}
        return {
            "data_dir": data_dir,
            "site": {"fuse_a": 25, "phases": 3, "nominal_voltage_v": 230,
                     "consumption_includes_ev": True},
            "charger": charger,
            "web": {"enabled": True, "host": "127.0.0.1", "port": free_tcp_port()},
            "planner": {
                "site": {"pv_kwp": round((site.pv_ac_peak_w + site.pv_dc_peak_w) / 1000.0, 3)},
                "battery": {
                    "capacity_kwh": site.battery_capacity_kwh,
                    "min_soc_pct": site.battery_min_soc_pct,
                    "max_charge_kw": site.battery_max_charge_w / 1000.0,
                    "max_discharge_kw": site.battery_max_discharge_w / 1000.0,
                },
                "ev": {"capacity_kwh": self.ev.capacity_kwh},
            },
        }


async def _serve(args: argparse.Namespace) -> None:
    async with SimWorld(speed=args.speed, charger=args.charger, seed=args.seed) as world:
        if args.plugged_in:
            await world.plug_in()
        where = (f"Alfen Modbus TCP on 127.0.0.1:{world.alfen_port}" if world.alfen_port
                 else f"OCPP charge point for {world.ocpp_url}")
        print(f"DBUS_SYSTEM_BUS_ADDRESS={world.bus_address}", flush=True)
        print(f"simulated GX running (x{world.speed:g}); {where}; Ctrl-C stops it", flush=True)
        if world.charger_kind == "ocpp":
            await world.start_charge_point(args.url or world.ocpp_url)
            if args.plugged_in:
                await world.plug_in()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m phaeton.sim.world",
        description="Run a simulated GX (private D-Bus, settings, system, charger, EV).")
    parser.add_argument("--speed", type=float, default=60.0, help="simulated seconds per second")
    parser.add_argument("--charger", choices=("alfen", "ocpp"), default="alfen")
    parser.add_argument("--url", help="OCPP central system URL (charger ocpp)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plugged-in", action="store_true", help="plug the car in at start")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_serve(args))
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"simulated GX failed: {exc}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
