"""A simulated house with PV and an ESS home battery, for simulations and tests. Pure, seeded.

`SiteModel.step(dt_s, ev_power_per_phase_w)` advances time by `dt_s` (PV with clouds, appliances,
battery SoC) and returns the `SiteReadings` a GX would report with the EV drawing the given power.
`readings(ev_power_per_phase_w)` answers the same question for the current instant without
advancing time (e.g. "what would the grid show if the EV drew this instead").

The home battery runs like Victron ESS with grid setpoint 0: the inverter covers the AC demand
(house + EV - AC PV) from the battery and DC PV, and stores any surplus, within its SoC limits
and power limits; the inverter loses `inverter_loss_fraction` of the power it converts. While a
Dynamic ESS target-SoC window is set (`dess_target`, as Venus' mode 4 runs one), the battery
instead moves evenly towards the window's target SoC by its end, from the grid too unless the
window's restrictions forbid it (bit 2: no grid to battery, bit 1: no battery to grid). So

    grid (per phase) = house + EV - AC PV - inverter AC output / 3
    grid + PV AC + PV DC = house + EV + battery + inverter losses   (the power balance)
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from phaeton.control.readings import SiteReadings


@dataclass(frozen=True)
class Appliance:
    name: str
    power_w: tuple[float, float, float]        # per phase while on
    duration_s: tuple[float, float]            # random between
    per_day: float                             # average starts per day
    hours: tuple[int, int]                     # local hours it may start in [from, to)


DEFAULT_APPLIANCES = (
    Appliance("kettle", (0.0, 2200.0, 0.0), (120, 300), 4.0, (6, 22)),
    Appliance("oven", (3000.0, 0.0, 0.0), (1800, 4500), 0.7, (16, 20)),
    Appliance("hob", (1800.0, 1800.0, 0.0), (900, 1800), 0.6, (17, 20)),
    Appliance("heat pump", (900.0, 900.0, 900.0), (1200, 3600), 6.0, (0, 24)),
    Appliance("washing machine", (0.0, 0.0, 2000.0), (1200, 2400), 0.5, (9, 18)),
)


@dataclass(frozen=True)
class DessTarget:
    """A Dynamic ESS target-SoC window: reach `target_soc_pct` by `end_unix_s`."""

    target_soc_pct: float
    end_unix_s: float
    restrictions: int = 0        # bit 1: no battery -> grid, bit 2: no grid -> battery


@dataclass(frozen=True)
class SiteConfig:
    pv_ac_peak_w: float = 6000.0               # AC-coupled PV (on grid, spread over 3 phases)
    pv_dc_peak_w: float = 3000.0               # MPPT PV
    base_load_w: tuple[float, float, float] = (180.0, 140.0, 120.0)
    battery_capacity_kwh: float = 10.0
    battery_max_charge_w: float = 5000.0
    battery_max_discharge_w: float = 5000.0
    battery_min_soc_pct: float = 20.0          # ESS active SoC limit
    battery_initial_soc_pct: float = 50.0
    inverter_loss_fraction: float = 0.03
    appliances: tuple[Appliance, ...] = DEFAULT_APPLIANCES


class SiteModel:
    def __init__(self, seed: int = 0, start: datetime = datetime(2026, 6, 1), config: SiteConfig | None = None):
        self.config = config or SiteConfig()
        self.rng = random.Random(seed)
        self.start = start
        self.t_s = 0.0
        self.dess_target: DessTarget | None = None
        self.battery_soc_pct = self.config.battery_initial_soc_pct
        self.battery_w = 0.0
        self._cloud_until_s = -1.0
        self._cloud_factor = 1.0
        self._day_index = -1
        self._cloudiness = 0.0
        self._running: list[tuple[float, Appliance]] = []   # (until_s, appliance)
        self._new_day()

    # -- time ----------------------------------------------------------------------------------
    @property
    def now(self) -> datetime:
        """Local wall time of the simulation."""
        return self.start + timedelta(seconds=self.t_s)

    def _new_day(self) -> None:
        self._day_index = int(self.t_s // 86400)
        self._cloudiness = self.rng.random() ** 1.5      # many clear-ish days, some grey ones

    # -- models --------------------------------------------------------------------------------
    def clear_sky_fraction(self) -> float:
        """0..1 of peak PV for a clear sky now: a sine day, longer and higher in summer."""
        now = self.now
        season = math.sin(2 * math.pi * (now.timetuple().tm_yday - 80) / 365.0)
        day_length_h = 12.0 + 4.0 * season
        sunrise_h = 13.5 - day_length_h / 2
        hour = now.hour + now.minute / 60 + now.second / 3600
        x = (hour - sunrise_h) / day_length_h
        if not 0.0 < x < 1.0:
            return 0.0
        return (0.55 + 0.45 * season) * math.sin(math.pi * x) ** 1.5

    def pv_w(self) -> tuple[float, float]:
        """(AC PV total, DC PV) now, with the current cloud."""
        fraction = self.clear_sky_fraction() * self._cloud_factor
        return self.config.pv_ac_peak_w * fraction, self.config.pv_dc_peak_w * fraction

    def house_w(self) -> tuple[float, float, float]:
        """House load per phase now (base + appliances running)."""
        load = list(self.config.base_load_w)
        for _, appliance in self._running:
            for i in range(3):
                load[i] += appliance.power_w[i]
        return (load[0], load[1], load[2])

    def _advance_weather_and_loads(self, dt_s: float) -> None:
        rng = self.rng
        if self.t_s >= self._cloud_until_s:
            self._cloud_factor = 1.0
            if rng.random() < min(1.0, self._cloudiness * dt_s / 900.0):
                self._cloud_until_s = self.t_s + rng.uniform(60, 1500)
                self._cloud_factor = rng.uniform(0.15, 0.6)
        self._running = [(until, a) for until, a in self._running if until > self.t_s]
        hour = self.now.hour
        for appliance in self.config.appliances:
            start_h, end_h = appliance.hours
            if not start_h <= hour < end_h:
                continue
            rate_per_s = appliance.per_day / ((end_h - start_h) * 3600.0)
            if rng.random() < rate_per_s * dt_s and all(a is not appliance for _, a in self._running):
                self._running.append((self.t_s + rng.uniform(*appliance.duration_s), appliance))

    # -- battery / inverter ----------------------------------------------------------------------
    def _inverter(self, demand_ac_w: float, pv_dc_w: float) -> tuple[float, float]:
        """(battery power + charging, inverter AC output) for an AC demand, setpoint 0."""
        c = self.config
        loss = c.inverter_loss_fraction
        dc_flow = demand_ac_w / (1 - loss) if demand_ac_w > 0 else demand_ac_w / (1 + loss)
        battery = pv_dc_w - dc_flow                      # setpoint 0: what self-consumption does
        target = self.dess_target
        now_unix = self.now.timestamp()
        if target is not None and now_unix < target.end_unix_s:
            left_s = max(60.0, target.end_unix_s - now_unix)
            wanted = ((target.target_soc_pct - self.battery_soc_pct) / 100.0
                      * c.battery_capacity_kwh * 3.6e6 / left_s)
            if wanted >= 0 and target.restrictions & 2:  # charge from the surplus only
                wanted = min(wanted, max(0.0, battery))
            if wanted < 0 and target.restrictions & 1:   # discharge into the house only
                wanted = max(wanted, min(0.0, battery))
            battery = wanted
        battery = min(battery, c.battery_max_charge_w)
        battery = max(battery, -c.battery_max_discharge_w)
        if self.battery_soc_pct >= 100.0:
            battery = min(battery, 0.0)
        if self.battery_soc_pct <= c.battery_min_soc_pct:
            battery = max(battery, 0.0)
        dc_flow = pv_dc_w - battery
        inverter_ac = dc_flow * (1 - loss) if dc_flow > 0 else dc_flow * (1 + loss)
        return battery, inverter_ac

    def readings(self, ev_power_per_phase_w: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> SiteReadings:
        """What the GX reports now with the EV drawing `ev_power_per_phase_w` (W per phase)."""
        ev = tuple(max(0.0, float(p or 0.0)) for p in ev_power_per_phase_w)
        if len(ev) != 3:
            raise ValueError(f"ev_power_per_phase_w needs 3 phases, got {len(ev)}")
        house = self.house_w()
        pv_ac_w, pv_dc_w = self.pv_w()
        pv_ac_phase = pv_ac_w / 3
        demand = sum(house) + sum(ev) - pv_ac_w
        battery, inverter_ac = self._inverter(demand, pv_dc_w)
        self.battery_w = battery
        grid = tuple(house[i] + ev[i] - pv_ac_phase - inverter_ac / 3 for i in range(3))
        return SiteReadings(
            pv_on_grid_w=(pv_ac_phase, pv_ac_phase, pv_ac_phase), pv_dc_w=pv_dc_w, grid_w=grid,
            consumption_w=tuple(house[i] + ev[i] for i in range(3)),
            battery_soc_pct=self.battery_soc_pct, battery_power_w=battery,
            active_soc_limit_pct=self.config.battery_min_soc_pct, active_input_source=1, age_s=0.0)

    def step(self, dt_s: float, ev_power_per_phase_w: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> SiteReadings:
        """Advance `dt_s` seconds (battery integrates its last power), then report."""
        if not dt_s >= 0:
            raise ValueError(f"dt_s must be >= 0, got {dt_s!r}")
        c = self.config
        soc = self.battery_soc_pct + 100.0 * self.battery_w * dt_s / 3.6e6 / c.battery_capacity_kwh
        if self.battery_w < 0:      # the ESS stops discharging at its minimum SoC
            soc = max(soc, min(c.battery_min_soc_pct, self.battery_soc_pct))
        self.battery_soc_pct = min(100.0, max(0.0, soc))
        self.t_s += dt_s
        if int(self.t_s // 86400) != self._day_index:
            self._new_day()
        self._advance_weather_and_loads(dt_s)
        return self.readings(ev_power_per_phase_w)
