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

Several chargers (`chargers=2` or `3`): an Alfen double station (one `AlfenSimulator` with
`sockets=2`, units 1 and 2, each socket with its own car), and with 3 also an OCPP charge point
with a third car, all in a "garage" circuit (`GARAGE_A` per phase) below the main fuse. Each is
a `SimOutlet` of `world.outlets` (phaeton's charger id, its car, its socket unit);
`config_for_phaeton` then writes a `chargers:` list and `circuits:`, and `plug_in(id)`,
`plug_out(id)`, `phase_currents_a(id)` take the charger id (None: the first).

The power the system service sees for the EV is what every charger simulator's car draws, so
the grid and consumption on the bus include every car.

    async with SimWorld(speed=60) as world:
        config = world.config_for_phaeton(data_dir)     # a phaeton config dict for this world
        await world.plug_in()

Every process and temporary directory the world created is gone after it exits.

Run alone: `python -m phaeton.sim.world [--speed 60] [--charger alfen|ocpp --url WS_URL]
[--chargers 1|2|3] [--plugged-in]`; it prints the bus address to export as DBUS_SYSTEM_BUS_ADDRESS.
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
from dataclasses import dataclass
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
MAIN_FUSE_A = 25       # the simulated house's main fuse (site.fuse_a), per phase
GARAGE = "garage"      # the circuit the chargers of a several-charger world hang below
GARAGE_A = 20          # its breaker per phase: two cars at 16 A must share it
MAX_CHARGERS = 3       # 2: the Alfen double station; 3: and the OCPP charge point


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


@dataclass
class SimOutlet:
    """One charger of the world as phaeton drives it: an Alfen socket or the OCPP charge
    point, with the car plugged into it."""

    id: str                  # phaeton's charger id (com.victronenergy.evcharger.phaeton_<id>)
    kind: Literal["alfen", "ocpp"]
    ev: SimulatedEV
    custom_name: str = ""
    unit: int = 1            # the Alfen socket's Modbus unit (OCPP: the connector id)


def _other_cars() -> list[SimulatedEV]:
    """The cars of the second and third charger: a smaller one, nearly empty, and a bigger
    one, half full (the first is the one-charger world's car)."""
    return [SimulatedEV(capacity_kwh=40.0, soc_pct=30.0),
            SimulatedEV(capacity_kwh=75.0, soc_pct=55.0)]


class SimWorld:
    """A simulated GX: bus, settings, system service, charger simulators and EVs (see
    module)."""

    def __init__(self, *, speed: float = 60.0, charger: Literal["alfen", "ocpp"] = "alfen",
                 bus_address: str | None = None, start: datetime = DEFAULT_START,
                 seed: int = 0, site_config: SiteConfig | None = None,
                 cloud_script: tuple[CloudWindow, ...] = DEFAULT_CLOUD_SCRIPT,
                 ev: SimulatedEV | None = None, ev_position: int = 1,
                 update_interval_s: float = 1.0, safe_current_a: float = 0.0,
                 charge_point_id: str = "SIMCP1", data_dir: str | None = None,
                 chargers: int = 1, evs: list[SimulatedEV] | None = None,
                 garage_a: float = GARAGE_A):
        if charger not in ("alfen", "ocpp"):
            raise ValueError(f"charger must be 'alfen' or 'ocpp', got {charger!r}")
        if isinstance(chargers, bool) or chargers not in range(1, MAX_CHARGERS + 1):
            raise ValueError(f"chargers must be 1, 2 (an Alfen double station) or 3 (and an "
                             f"OCPP charge point), got {chargers!r}")
        if chargers > 1 and charger != "alfen":
            raise ValueError("several chargers are an Alfen double station (and an OCPP "
                             "charge point with chargers=3); charger must stay 'alfen'")
        if evs is not None and (chargers == 1 or len(evs) != chargers - 1):
            raise ValueError(f"evs are the cars of the chargers after the first: "
                             f"{chargers - 1} of them, got {len(evs)}")
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
        self.chargers = chargers
        self.garage_a = float(garage_a)
        self.outlets = self._outlets(chargers, evs)
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
        self.alfen: AlfenSimulator | None = None
        self.charge_point: SimulatedChargePoint | None = None
        self._own_dir: str | None = None
        self._started = False

    def _outlets(self, chargers: int, evs: list[SimulatedEV] | None) -> list[SimOutlet]:
        if chargers == 1:
            return [SimOutlet("0", self.charger_kind, self.ev)]
        cars = [self.ev, *(evs if evs is not None else _other_cars()[:chargers - 1])]
        outlets = [SimOutlet("socket_1", "alfen", cars[0], "Garage left (Alfen socket 1)", 1),
                   SimOutlet("socket_2", "alfen", cars[1], "Garage right (Alfen socket 2)", 2)]
        if chargers == 3:
            outlets.append(SimOutlet("ocpp_1", "ocpp", cars[2], "Garage OCPP", 1))
        return outlets

    @property
    def charger_sim(self) -> AlfenSimulator | SimulatedChargePoint | None:
        """The charger simulator: the Alfen station (with several chargers, the double
        station), or the OCPP charge point of an OCPP world (None before it is started)."""
        return self.alfen if self.alfen is not None else self.charge_point

    def outlet(self, charger_id: str | None = None) -> SimOutlet:
        """The charger `charger_id` (None: the first); ValueError for one the world lacks."""
        if charger_id is None:
            return self.outlets[0]
        for outlet in self.outlets:
            if outlet.id == charger_id:
                return outlet
        raise ValueError(f"this world has no charger {charger_id!r} "
                         f"(chargers: {', '.join(o.id for o in self.outlets)})")

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
        sockets = [o for o in self.outlets if o.kind == "alfen"]
        if sockets:
            self.alfen = AlfenSimulator(
                host="127.0.0.1", port=0, clock=self.clock, ev=sockets[0].ev,
                safe_current_a=self.safe_current_a, sockets=len(sockets),
                second_ev=sockets[1].ev if len(sockets) > 1 else None)
            await self.alfen.start()
        if any(o.kind == "ocpp" for o in self.outlets):
            self.ocpp_port = free_tcp_port()
        self.system = SimulatedSystemService(
            site=self.site, clock=self.clock, ev_power_w=self.ev_power_w,
            ev_position=self.ev_position, update_interval_s=self.update_interval_s,
            bus_address=self.bus_address, dess_target=self.dess_target_at,
            pv_disabled=self.dess_pv_disabled_at)
        await self.system.start()
        log.info("simulated GX on %s (speed x%g, %s)", self.bus_address, self.speed,
                 ", ".join(f"{o.id}: {o.kind}" for o in self.outlets))

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
        alfen, self.alfen = self.alfen, None
        if alfen is not None:
            await _bounded(alfen.close(), "the Alfen simulator")
        cp, self.charge_point = self.charge_point, None
        if cp is not None:
            await _bounded(cp.stop(), "the OCPP charge point")
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
        return self.alfen.port if self.alfen is not None else None

    @property
    def ocpp_url(self) -> str | None:
        """Where `config_for_phaeton` puts phaeton's central system for this charge point."""
        if self.ocpp_port is None:
            return None
        return f"ws://127.0.0.1:{self.ocpp_port}{OCPP_PATH}/{self.charge_point_id}"

    async def start_charge_point(self, url: str | None = None, **options: Any
                                 ) -> SimulatedChargePoint:
        """OCPP world (or chargers=3): create the charge point (sharing its car and the clock)
        and let it connect to `url` (default `ocpp_url`). `options` go to
        `SimulatedChargePoint`."""
        outlets = [o for o in self.outlets if o.kind == "ocpp"]
        if not outlets:
            raise RuntimeError("start_charge_point needs SimWorld(charger='ocpp') or "
                               "chargers=3")
        if not self._started:
            raise RuntimeError("start the world before its charge point")
        if self.charge_point is not None:
            raise RuntimeError("the charge point is already started")
        url = url or self.ocpp_url
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            raise ValueError(f"the central system URL must start with ws:// or wss://, "
                             f"got {url!r}")
        options.setdefault("meter_interval_s", 10)
        cp = SimulatedChargePoint(url, ev=outlets[0].ev, clock=self.clock, **options)
        await cp.start()
        self.charge_point = cp
        return cp

    def phase_currents_a(self, charger_id: str | None = None) -> tuple[float, float, float]:
        """What the car at charger `charger_id` (None: the first) draws now, per phase (A)."""
        return self._draw(self.outlet(charger_id))[0]

    def _draw(self, outlet: SimOutlet) -> tuple[tuple[float, float, float],
                                                tuple[float, float, float]]:
        """(A per phase, V per phase) the car at `outlet` draws now through its simulator."""
        if outlet.kind == "alfen" and self.alfen is not None:
            sim = self.alfen.socket(outlet.unit)
            currents = sim.phase_currents_a()
            return (currents[0], currents[1], currents[2]), sim.voltages_v  # type: ignore
        cp = self.charge_point
        if outlet.kind == "ocpp" and cp is not None:
            volts = (cp.voltage_v,) * 3
            if cp.transaction_id is None or cp.fault is not None or not cp.ev.plugged_in:
                return (0.0, 0.0, 0.0), volts
            current, phases = cp.ev.draw(cp.offered_current_a(), cp.phases)
            return tuple(current if i < phases else 0.0 for i in range(3)), volts  # type: ignore
        return (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)

    def ev_power_w(self) -> tuple[float, float, float]:
        """What every car draws now through the charger simulators, per phase (W)."""
        total = [0.0, 0.0, 0.0]
        for outlet in self.outlets:
            currents, volts = self._draw(outlet)
            for i in range(3):
                total[i] += currents[i] * volts[i]
        return (total[0], total[1], total[2])

    async def plug_in(self, charger_id: str | None = None) -> None:
        """The car of charger `charger_id` (None: the first) is plugged in (through its charger
        simulator when there is one)."""
        outlet = self.outlet(charger_id)
        cp = self.charge_point
        if outlet.kind == "alfen" and self.alfen is not None:
            self.alfen.socket(outlet.unit).plug_in()
        elif outlet.kind == "ocpp" and cp is not None:
            await cp.plug_in()
        else:
            outlet.ev.plug_in()

    async def plug_out(self, charger_id: str | None = None) -> None:
        """The car of charger `charger_id` (None: the first) leaves."""
        outlet = self.outlet(charger_id)
        cp = self.charge_point
        if outlet.kind == "alfen" and self.alfen is not None:
            self.alfen.socket(outlet.unit).plug_out()
        elif outlet.kind == "ocpp" and cp is not None:
            await cp.plug_out()
        else:
            outlet.ev.plug_out()

    # ---- phaeton's view ---------------------------------------------------------------------

    def config_for_phaeton(self, data_dir: str) -> dict[str, Any]:
        """A phaeton config dict (keys of config.yaml) pointing at this world."""
        if not self._started:
            raise RuntimeError("start the world first: the ports are chosen when it starts")
        site = self.site.config
        config: dict[str, Any] = {
            "data_dir": data_dir,
            "site": {"fuse_a": MAIN_FUSE_A, "phases": 3, "nominal_voltage_v": 230,
                     "consumption_includes_ev": True},
        }
        if self.chargers == 1:
            config["charger"] = self._charger_keys(self.outlets[0])
        else:
            config["chargers"] = [
                {"id": o.id, "custom_name": o.custom_name, "circuit": GARAGE,
                 **self._charger_keys(o)} for o in self.outlets]
            config["circuits"] = [{"name": GARAGE, "max_current_a": self.garage_a}]
        return {
            **config,
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

    def _charger_keys(self, outlet: SimOutlet) -> dict[str, Any]:
        """The keys of one charger of phaeton's config (the `charger` section's)."""
        charger: dict[str, Any] = {
            "protocol": outlet.kind,
            "position": self.ev_position,
            "min_current_a": 6,
            "max_current_a": int(min(32, max(6, outlet.ev.onboard_max_current_a))),
            "phases": 3,
            "safe_current_a": 0,
        }
        if outlet.kind == "alfen":
            charger["alfen"] = {"host": "127.0.0.1", "port": self.alfen_port,
                                "station_unit_id": 200, "socket_unit_id": outlet.unit}
        else:
            charger["ocpp"] = {"host": "127.0.0.1", "port": self.ocpp_port, "path": OCPP_PATH,
                               "charge_point_id": self.charge_point_id,
                               "meter_interval_s": 10}
        return charger


async def _serve(args: argparse.Namespace) -> None:
    async with SimWorld(speed=args.speed, charger=args.charger, seed=args.seed,
                        chargers=args.chargers) as world:
        if args.plugged_in:
            for outlet in world.outlets:
                await world.plug_in(outlet.id)
        where = "; ".join(
            f"Alfen Modbus TCP on 127.0.0.1:{world.alfen_port}" if kind == "alfen"
            else f"OCPP charge point for {args.url or world.ocpp_url}"
            for kind in dict.fromkeys(o.kind for o in world.outlets))
        print(f"DBUS_SYSTEM_BUS_ADDRESS={world.bus_address}", flush=True)
        print(f"simulated GX running (x{world.speed:g}); {where}; Ctrl-C stops it", flush=True)
        if world.ocpp_port is not None:
            await world.start_charge_point(args.url or world.ocpp_url)
            if args.plugged_in:
                await world.plug_in([o.id for o in world.outlets if o.kind == "ocpp"][0])
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
    parser.add_argument("--chargers", type=int, choices=(1, 2, 3), default=1,
                        help="2: an Alfen double station; 3: and an OCPP charge point")
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
