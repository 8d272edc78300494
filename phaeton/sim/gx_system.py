"""A simulated `com.victronenergy.system` service (dbus-systemcalc-py) on velib.

It publishes what a GX's systemcalc publishes (reference venus-dbus.md §7) from a `SiteModel`
stepped on a clock (a `ScaledClock` makes a day pass in minutes):

- AC-coupled PV per phase on grid / output / genset, MPPT PV (`/Dc/Pv/Power`), grid per phase
  (+ import), consumption per phase split into on-input and on-output loads, the battery
  (`/Dc/Battery/{Soc,Power,Voltage,Current,State}`), `/Control/ActiveSocLimit`,
  `/Ac/ActiveIn/Source`, `/DynamicEss/Active`, `/Serial` (the VRM portal id), `/Pv/Disable`;
- the mandatory paths the way the real systemcalc sets them: `/DeviceInstance` 0,
  `/Mgmt/ProcessName`, `/Mgmt/ProcessVersion`, `/Mgmt/Connection` "data from other dbus
  processes", `/Connected` 1, `/FirmwareVersion`, and `/ProductId`, `/ProductName`,
  `/HardwareVersion` invalid (systemcalc leaves them None);
- floats as doubles; a kind of PV the site does not have, and the PV paths of a site without
  that PV, are invalid (`ai []`), as on a GX without that device.

The EV: a callable returns what the car draws per phase (W). `SiteModel` adds it to the house
load, so the grid and the consumption include it wherever the charger is wired; `ev_position`
(Victron `/Position`: 0 AC output, 1 AC input) decides whether it shows in
`/Ac/ConsumptionOnOutput` or `/Ac/ConsumptionOnInput`. The house's base load is split between
the two with `output_load_share` (critical loads on the inverter's output); appliances run on
the input side.

Dynamic ESS: `dess_target(unix_s)` gives the target-SoC window in force (the site moves the
battery towards it), `pv_disabled(unix_s)` whether systemcalc's Dynamic ESS switches PV off
now (a window with Flags bit 2): `/Pv/Disable` is then 1 and a `SimulatedSite` makes no PV,
as the PV inverters systemcalc switches off would; otherwise 0. (`SimWorld` gives both.)

All values change in ONE batch (one ItemsChanged) every `update_interval_s` of simulated time.

`on_update(readings)`, when set, is called after every batch published (what the bus now shows,
the EV's draw in `ev_w`): a test samples the currents at the meter's pace with it.

Test hooks: `freeze()`/`unfreeze()` (values go stale, the service stays on the bus),
`await stop()`/`await start()` (the name leaves the bus and comes back), `spike(phase, watts,
duration_s)` (a house load spike), `set_cloud(cover, duration_s)` (force PV down, or up to a
clear sky; needs a `SimulatedSite`, the default), and `site` (the model itself).
"""
from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Self

from phaeton import __version__
from phaeton.clock import REAL_CLOCK, Clock
from phaeton.control.readings import SiteReadings
from phaeton.sim.site import DessTarget, SiteConfig, SiteModel
from velib.service import VeDbusService

log = logging.getLogger("phaeton.sim.gx_system")

SERVICE_NAME = "com.victronenergy.system"
PHASES = (1, 2, 3)
DEFAULT_PORTAL_ID = "c0ffee5a1e01"          # 12 hex digits, like the GX's MAC-based id
VENUS_VERSION = "v3.60"
STOP_TIMEOUT_S = 5.0                        # real seconds to leave the bus
MAX_STEP_S = 10.0                           # longest single SiteModel step (s simulated)

# Battery electrical model: a 16-cell LFP pack (51.2 V nominal)
PACK_EMPTY_V = 48.0                         # open-circuit voltage at 0 % SoC
PACK_FULL_V = 55.2                          # open-circuit voltage at 100 % SoC
PACK_RESISTANCE_OHM = 0.012

BATTERY_IDLE, BATTERY_CHARGING, BATTERY_DISCHARGING = 0, 1, 2
IDLE_BELOW_W = 10.0

EvPower = Callable[[], "tuple[float, float, float] | list[float]"]


def _watts(value) -> str:
    return f"{value:.0f} W"


def _percent(value) -> str:
    return f"{value:.1f} %"


def _volts(value) -> str:
    return f"{value:.2f} V"


def _amps(value) -> str:
    return f"{value:.1f} A"


CloudWindow = tuple[float, float, float]   # (from local hour, to local hour, cover 0..1)


class SimulatedSite(SiteModel):
    """`SiteModel` whose sky can be scripted and forced.

    Cloud cover: 0 a clear sky (natural clouds suppressed too), 1 no sun at all.
    - `force_cloud(cover, until_s)`: this cover until site time `until_s` (`t_s`; None: until
      `clear_forced_cloud()`); wins over everything else.
    - `cloud_script`: daily windows (from hour, to hour, cover) in local time, e.g. a clear
      morning and a few passing clouds; outside them the model's own random clouds apply.
    """

    def __init__(self, seed: int = 0, start: datetime = datetime(2026, 6, 1),
                 config: SiteConfig | None = None,
                 cloud_script: tuple[CloudWindow, ...] = ()):
        super().__init__(seed=seed, start=start, config=config)
        for window in cloud_script:
            begin_h, end_h, cover = window
            if not (0.0 <= begin_h < end_h <= 24.0 and 0.0 <= cover <= 1.0):
                raise ValueError(f"cloud window {window!r} must be (from hour, to hour, cover) "
                                 f"with 0 <= from < to <= 24 and 0 <= cover <= 1")
        self.cloud_script = tuple(cloud_script)
        self.forced_cover: float | None = None
        self.forced_until_s: float | None = None
        self.pv_off = False          # switched off (systemcalc's /Pv/Disable): no PV at all

    def scripted_cover(self) -> float | None:
        """The cover the daily script sets now, None outside its windows."""
        now = self.now
        hour = now.hour + now.minute / 60 + now.second / 3600
        for begin_h, end_h, cover in self.cloud_script:
            if begin_h <= hour < end_h:
                return cover
        return None

    def force_cloud(self, cover: float, until_s: float | None = None) -> None:
        self.forced_cover = cover
        self.forced_until_s = until_s

    def clear_forced_cloud(self) -> None:
        self.forced_cover = None
        self.forced_until_s = None

    def pv_w(self) -> tuple[float, float]:
        if self.forced_until_s is not None and self.t_s >= self.forced_until_s:
            self.clear_forced_cloud()
        if self.pv_off:
            return 0.0, 0.0
        cover = self.forced_cover if self.forced_cover is not None else self.scripted_cover()
        if cover is None:
            return super().pv_w()
        fraction = self.clear_sky_fraction() * (1.0 - cover)
        return self.config.pv_ac_peak_w * fraction, self.config.pv_dc_peak_w * fraction


@dataclass(frozen=True)
class _Spike:
    until_s: float      # site time
    phase: int          # 0..2
    watts: float


def _phase_tuple(values, name: str) -> tuple[float, float, float]:
    """Three finite, non-negative per-phase watts from a callable's answer."""
    items = list(values)
    if len(items) != 3:
        raise ValueError(f"{name} must give 3 per-phase values, got {len(items)}")
    result = []
    for value in items:
        number = float(value or 0.0)
        if not math.isfinite(number):
            raise ValueError(f"{name} gave a non-finite value {value!r}")
        result.append(max(0.0, number))
    return (result[0], result[1], result[2])


def battery_electrics(soc_pct: float, power_w: float) -> tuple[float, float]:
    """(terminal voltage V, current A; + charging) of the simulated pack at this power."""
    ocv = PACK_EMPTY_V + (PACK_FULL_V - PACK_EMPTY_V) * min(100.0, max(0.0, soc_pct)) / 100.0
    current = power_w / ocv
    voltage = ocv + current * PACK_RESISTANCE_OHM
    return voltage, power_w / voltage


class SimulatedSystemService:
    """`com.victronenergy.system` fed by a `SiteModel`; `await start()`, `await close()`.

    Also an async context manager. `ev_power_w()` gives the EV's draw per phase (W); it is
    called whenever the site is stepped (every update and every hook). A failing callable, or
    one giving something other than 3 finite numbers, counts as 0 W (logged), never ends the
    loop.
    """

    def __init__(self, *, site: SiteModel | None = None, clock: Clock = REAL_CLOCK,
                 ev_power_w: EvPower | None = None, ev_position: int = 1,
                 update_interval_s: float = 1.0, bus_address: str | None = None,
                 portal_id: str = DEFAULT_PORTAL_ID, output_load_share: float = 0.3,
                 seed: int = 0, meter_noise_w: float = 2.0,
                 dess_target: Callable[[float], DessTarget | None] | None = None,
                 pv_disabled: Callable[[float], bool] | None = None):
        if ev_position not in (0, 1):
            raise ValueError(f"ev_position must be 0 (AC output) or 1 (AC input), "
                             f"got {ev_position!r}")
        if not (isinstance(update_interval_s, (int, float)) and math.isfinite(update_interval_s)
                and update_interval_s > 0):
            raise ValueError(f"update_interval_s must be a number > 0, got {update_interval_s!r}")
        if not (isinstance(output_load_share, (int, float)) and 0.0 <= output_load_share <= 1.0):
            raise ValueError(f"output_load_share must be between 0 and 1, "
                             f"got {output_load_share!r}")
        if not isinstance(portal_id, str) or not portal_id:
            raise ValueError(f"portal_id must be a non-empty string, got {portal_id!r}")
        self.site = site if site is not None else SimulatedSite(seed=seed)
        # A real meter never reads the same watts twice; without this noise a quiet night
        # publishes nothing and phaeton rightly calls the readings stale.
        self._meter_noise = random.Random(seed + 1)
        self.meter_noise_w = float(meter_noise_w)
        self.clock = clock
        self.ev_power_w = ev_power_w
        self.dess_target = dess_target     # unix s -> the Dynamic ESS window in force, or None
        self.pv_disabled = pv_disabled     # unix s -> Dynamic ESS switches PV off now
        self.pv_disable = 0                # what /Pv/Disable says
        self.ev_position = ev_position
        self.update_interval_s = float(update_interval_s)
        self.output_load_share = float(output_load_share)
        self.portal_id = portal_id
        self.bus_address = bus_address
        self.frozen = False
        self.updates = 0                        # batches published
        self.readings: SiteReadings | None = None
        self.ev_w: tuple[float, float, float] = (0.0, 0.0, 0.0)
        self.on_update: Callable[[SiteReadings], None] | None = None
        self._spikes: list[_Spike] = []
        # the site's time follows the clock from here on
        self._clock_offset_s = clock.monotonic() - self.site.t_s
        self._service = self._build_service()
        self._online = False
        self._task: asyncio.Task | None = None

    # ---- the service tree -----------------------------------------------------------------

    def _build_service(self) -> VeDbusService:
        svc = VeDbusService(SERVICE_NAME, bus_address=self.bus_address)
        svc.add_path("/Mgmt/ProcessName", "phaeton.sim.gx_system")
        svc.add_path("/Mgmt/ProcessVersion", __version__)
        svc.add_path("/Mgmt/Connection", "data from other dbus processes")
        svc.add_path("/DeviceInstance", 0)
        svc.add_path("/ProductId", None)
        svc.add_path("/ProductName", None)
        svc.add_path("/FirmwareVersion", VENUS_VERSION)
        svc.add_path("/HardwareVersion", None)
        svc.add_path("/Connected", 1)
        svc.add_path("/Serial", self.portal_id)
        svc.add_path("/SystemType", "ESS")
        for kind in ("PvOnGrid", "PvOnOutput", "PvOnGenset", "Grid", "Consumption",
                     "ConsumptionOnInput", "ConsumptionOnOutput"):
            for n in PHASES:
                svc.add_path(f"/Ac/{kind}/L{n}/Power", None, text=_watts)
            svc.add_path(f"/Ac/{kind}/NumberOfPhases", None)
        svc.add_path("/Dc/Pv/Power", None, text=_watts)
        svc.add_path("/Dc/Battery/Soc", None, text=_percent)
        svc.add_path("/Dc/Battery/Power", None, text=_watts)
        svc.add_path("/Dc/Battery/Voltage", None, text=_volts)
        svc.add_path("/Dc/Battery/Current", None, text=_amps)
        svc.add_path("/Dc/Battery/State", None)
        svc.add_path("/Control/ActiveSocLimit", None, text=_percent)
        svc.add_path("/Ac/ActiveIn/Source", None)
        svc.add_path("/DynamicEss/Active", 0)
        svc.add_path("/Pv/Disable", 0)
        return svc

    @property
    def service(self) -> VeDbusService:
        """The exported velib service (read values with `service[path]`)."""
        return self._service

    # ---- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Publish current values, claim the name, run the update loop (idempotent)."""
        if self._task is None:
            self._advance_and_publish()
            self._task = asyncio.create_task(self._run(), name="sim-gx-system")
        if not self._online:
            if not self.frozen:
                self._publish(self.readings)
            await self._service.register()
            self._online = True
            log.info("%s on the bus (portal id %s)", SERVICE_NAME, self.portal_id)

    async def stop(self) -> None:
        """Leave the bus (the name disappears); the site keeps running. `start()` returns."""
        if self._online:
            self._online = False
            bus = self._service.bus
            try:
                # a goodbye to a bus that is itself going away may never be answered
                await asyncio.wait_for(self._service.close(), STOP_TIMEOUT_S)
            except TimeoutError:
                log.warning("%s: no answer from the bus while leaving; disconnected",
                            SERVICE_NAME)
                if bus is not None and bus.connected:
                    bus.disconnect()
            log.info("%s left the bus", SERVICE_NAME)

    async def close(self) -> None:
        """Leave the bus and end the update loop."""
        await self.stop()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    @property
    def online(self) -> bool:
        return self._online

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_exc) -> None:
        await self.close()

    # ---- test hooks -----------------------------------------------------------------------

    def freeze(self) -> None:
        """Stop publishing: the values on the bus go stale; the service stays registered."""
        self.frozen = True

    def unfreeze(self) -> None:
        """Publish again, at once."""
        self.frozen = False
        self._advance_and_publish()

    def spike(self, phase: int, watts: float, duration_s: float) -> None:
        """An extra house load of `watts` on `phase` (1..3) for `duration_s` simulated s."""
        if phase not in PHASES or isinstance(phase, bool):
            raise ValueError(f"phase must be 1, 2 or 3, got {phase!r}")
        for label, value in (("watts", watts), ("duration_s", duration_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{label} must be a number > 0, got {value!r}")
        self._advance_site()
        self._spikes.append(_Spike(self.site.t_s + float(duration_s), phase - 1, float(watts)))
        self._advance_and_publish()

    def set_cloud(self, cover: float | None, duration_s: float | None = None) -> None:
        """Force the sky: `cover` 0 clear (PV at its clear-sky value) .. 1 no PV at all, for
        `duration_s` simulated s (None: until changed). `None` returns to the natural weather."""
        site = self.site
        if not isinstance(site, SimulatedSite):
            raise TypeError("set_cloud needs the site to be a SimulatedSite "
                            f"(got {type(site).__name__})")
        self._advance_site()
        if cover is None:
            site.clear_forced_cloud()
        else:
            if isinstance(cover, bool) or not isinstance(cover, (int, float)) \
                    or not 0.0 <= cover <= 1.0:
                raise ValueError(f"cover must be between 0 (clear) and 1 (no sun), got {cover!r}")
            if duration_s is not None and (isinstance(duration_s, bool)
                                           or not isinstance(duration_s, (int, float))
                                           or not math.isfinite(duration_s) or duration_s <= 0):
                raise ValueError(f"duration_s must be a number > 0 or None, got {duration_s!r}")
            until = None if duration_s is None else site.t_s + float(duration_s)
            site.force_cloud(float(cover), until)
        self._advance_and_publish()

    def extra_load_w(self) -> tuple[float, float, float]:
        """Spike loads in force now, per phase (W)."""
        load = [0.0, 0.0, 0.0]
        for spike in self._spikes:
            if spike.until_s > self.site.t_s:
                load[spike.phase] += spike.watts
        return (load[0], load[1], load[2])

    # ---- the model --------------------------------------------------------------------------

    def _read_ev(self) -> tuple[float, float, float]:
        if self.ev_power_w is None:
            return (0.0, 0.0, 0.0)
        try:
            return _phase_tuple(self.ev_power_w(), "ev_power_w")
        except Exception as exc:  # noqa: BLE001 - a broken EV source must not stop the GX
            log.error("EV power source failed (%s); counting the EV as 0 W", exc)
            return (0.0, 0.0, 0.0)

    def _advance_site(self) -> SiteReadings:
        """Step the site to the clock's time (in steps of at most MAX_STEP_S)."""
        site = self.site
        target = self.clock.monotonic() - self._clock_offset_s
        self.ev_w = self._read_ev()
        readings = None
        while True:
            dt = min(MAX_STEP_S, max(0.0, target - site.t_s))
            self._spikes = [s for s in self._spikes if s.until_s > site.t_s]
            if self.dess_target is not None:
                site.dess_target = self.dess_target(site.now.timestamp())
            self._follow_pv_disable(site)
            extra = self.extra_load_w()
            readings = site.step(dt, tuple(self.ev_w[i] + extra[i] for i in range(3)))
            if site.t_s >= target - 1e-9:
                break
        self.readings = readings
        return readings

    def _follow_pv_disable(self, site: SiteModel) -> None:
        """systemcalc's rule: PV off while the Dynamic ESS window in force says so."""
        if self.pv_disabled is None:
            return
        self.pv_disable = 1 if self.pv_disabled(site.now.timestamp()) else 0
        if isinstance(site, SimulatedSite):
            site.pv_off = bool(self.pv_disable)

    def _advance_and_publish(self) -> None:
        readings = self._advance_site()
        if not self.frozen:
            self._publish(readings)
            if self.on_update is not None and readings is not None:
                try:
                    self.on_update(readings)
                except Exception:  # noqa: BLE001 - a listener must not stop the GX
                    log.exception("on_update listener failed")

    def _publish(self, r: SiteReadings | None) -> None:
        if r is None:
            return
        cfg = self.site.config
        svc = self._service
        output_loads = [self.output_load_share * cfg.base_load_w[i] for i in range(3)]
        if self.ev_position == 0:
            output_loads = [output_loads[i] + self.ev_w[i] for i in range(3)]
        consumption = [c or 0.0 for c in r.consumption_w]
        has_ac_pv = cfg.pv_ac_peak_w > 0
        voltage, current = battery_electrics(r.battery_soc_pct, r.battery_power_w)
        if r.battery_power_w > IDLE_BELOW_W:
            state = BATTERY_CHARGING
        elif r.battery_power_w < -IDLE_BELOW_W:
            state = BATTERY_DISCHARGING
        else:
            state = BATTERY_IDLE
        amplitude = self.meter_noise_w
        noise = [round(self._meter_noise.uniform(-amplitude, amplitude), 1) if amplitude else 0.0
                 for _ in PHASES]
        with svc.batch():
            for i, n in enumerate(PHASES):
                svc[f"/Ac/PvOnGrid/L{n}/Power"] = r.pv_on_grid_w[i] if has_ac_pv else None
                svc[f"/Ac/PvOnOutput/L{n}/Power"] = None
                svc[f"/Ac/PvOnGenset/L{n}/Power"] = None
                # the same few watts on the grid and the loads: the balance still holds
                svc[f"/Ac/Grid/L{n}/Power"] = r.grid_w[i] + noise[i]
                svc[f"/Ac/Consumption/L{n}/Power"] = consumption[i] + noise[i]
                svc[f"/Ac/ConsumptionOnOutput/L{n}/Power"] = output_loads[i]
                svc[f"/Ac/ConsumptionOnInput/L{n}/Power"] = (consumption[i] + noise[i]
                                                             - output_loads[i])
            svc["/Ac/PvOnGrid/NumberOfPhases"] = 3 if has_ac_pv else None
            for kind in ("Grid", "Consumption", "ConsumptionOnInput", "ConsumptionOnOutput"):
                svc[f"/Ac/{kind}/NumberOfPhases"] = 3
            svc["/Dc/Pv/Power"] = r.pv_dc_w if cfg.pv_dc_peak_w > 0 else None
            svc["/Dc/Battery/Soc"] = r.battery_soc_pct
            svc["/Dc/Battery/Power"] = r.battery_power_w
            svc["/Dc/Battery/Voltage"] = voltage
            svc["/Dc/Battery/Current"] = current
            svc["/Dc/Battery/State"] = state
            svc["/Control/ActiveSocLimit"] = r.active_soc_limit_pct
            svc["/Ac/ActiveIn/Source"] = r.active_input_source
            svc["/Pv/Disable"] = self.pv_disable
        self.updates += 1

    async def _run(self) -> None:
        """Update every update_interval_s on the clock (deadlines, so the cadence does not
        drift by the time an update takes)."""
        due = self.clock.monotonic()
        while True:
            due += self.update_interval_s
            now = self.clock.monotonic()
            due = max(due, now)                 # fell behind (a stalled loop): no burst
            await self.clock.sleep(due - now)
            try:
                self._advance_and_publish()
            except Exception:
                log.exception("system service update failed")
