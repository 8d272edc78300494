"""Carbon accounting of the site: who used which energy, and how much CO2 it carried.

Pure (no I/O, no clock): the site feeds one power-flow reading per tick and the grid's carbon
intensity of that moment; this module splits the energy by source and adds up emissions per
quarter hour. The method and its simplifications are in docs/carbon.md, "Accounting".

Sources and where their energy goes, in this order (the same rule the session's solar share
follows):
- PV serves the house first, then the EVs, then charges the home battery; the rest is exported.
- The battery is charged with what PV has left, the rest of its charge comes from the grid.
- What the house and the EVs need beyond PV comes from the battery's discharge and the grid
  import, mixed in proportion ("the other supply", `other_supply_g_per_kwh`).

Intensities (g CO2-eq/kWh):
- grid import: the carbon source's intensity of the moment;
- PV: a lifecycle factor, `PV_G_PER_KWH` (IPCC AR5 median for rooftop PV);
- the home battery: the weighted mean of what charged it (`BatteryCarbon`): PV charge at the PV
  factor, grid charge at the grid's intensity of that moment; its discharge carries that mean.

Emissions avoided = the energy used (house + EVs) × the grid's intensity − the emissions
accounted: what taking everything from the grid would have emitted, less what was.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo

PV_G_PER_KWH = 41.0
"""Lifecycle g CO2-eq/kWh of the site's own PV: IPCC AR5 WG3 Annex III, Table A.III.2, median
for rooftop PV (utility-scale: 48). A documented constant, not a config key."""

SLOT_S = 900


@dataclass(frozen=True)
class SiteFlows:
    """The site's powers at one moment (W). `grid_w`: + import, − export (the phases summed,
    as the meter nets them); `battery_w`: + charging, − discharging; `house_w`: AC loads
    without the EVs; `ev_w`: every EV together."""

    pv_w: float
    house_w: float
    ev_w: float
    grid_w: float
    battery_w: float = 0.0

    @classmethod
    def of(cls, flow) -> SiteFlows | None:
        """From a `powerflow.PowerFlowSnapshot` (None when it lacks house load or grid)."""
        if flow is None:
            return None
        house, grid = flow.house_total_w, flow.grid_total_w
        if house is None or grid is None:
            return None
        values = (flow.pv_total_w, house, flow.ev_total_w, grid, flow.battery_w or 0.0)
        if not all(math.isfinite(v) for v in values):
            return None
        return cls(*values)


@dataclass
class BatteryCarbon:
    """The home battery's stored energy and the intensity it carries (None: not known yet,
    nothing has charged it since phaeton started accounting)."""

    stored_kwh: float = 0.0
    g_per_kwh: float | None = None

    def charge(self, kwh: float, g_per_kwh: float) -> None:
        """`kwh` in at `g_per_kwh`: the running weighted mean."""
        if kwh <= 0:
            return
        if self.g_per_kwh is None or self.stored_kwh <= 0:
            self.g_per_kwh = g_per_kwh
        else:
            self.g_per_kwh = ((self.stored_kwh * self.g_per_kwh + kwh * g_per_kwh)
                              / (self.stored_kwh + kwh))
        self.stored_kwh += kwh

    def discharge(self, kwh: float) -> None:
        """`kwh` out: the mean stays, the store shrinks (never below 0)."""
        if kwh > 0:
            self.stored_kwh = max(0.0, self.stored_kwh - kwh)


@dataclass(frozen=True)
class StepEmissions:
    """One interval's energy (kWh) and emissions (g) by who used it."""

    house_kwh: float
    ev_kwh: float
    import_kwh: float
    pv_to_house_kwh: float
    pv_to_ev_kwh: float
    pv_to_battery_kwh: float
    grid_to_battery_kwh: float
    battery_out_kwh: float
    other_g_per_kwh: float          # intensity of the supply beyond PV (grid and battery)
    house_g: float
    ev_g: float
    avoided_g: float


def other_supply_g_per_kwh(flows: SiteFlows, grid_g_per_kwh: float,
                           battery: BatteryCarbon) -> float:
    """g/kWh of what the loads take beyond PV at this moment: the grid import left after
    charging the battery and the battery's discharge, mixed by power. (The grid's intensity
    when neither flows: the next watt would come from the grid.)"""
    pv = max(0.0, flows.pv_w)
    loads = max(0.0, flows.house_w) + max(0.0, flows.ev_w)
    charge = max(0.0, flows.battery_w)
    pv_to_battery = min(max(0.0, pv - loads), charge)
    imported = max(0.0, flows.grid_w)
    grid_to_loads = imported - min(charge - pv_to_battery, imported)
    battery_out = max(0.0, -flows.battery_w)
    battery_g = grid_g_per_kwh if battery.g_per_kwh is None else battery.g_per_kwh
    supply = grid_to_loads + battery_out
    if supply <= 0:
        return grid_g_per_kwh
    return (grid_to_loads * grid_g_per_kwh + battery_out * battery_g) / supply


def account_step(flows: SiteFlows, seconds: float, grid_g_per_kwh: float,
                 battery: BatteryCarbon, pv_g_per_kwh: float = PV_G_PER_KWH) -> StepEmissions:
    """Split `seconds` of `flows` by source and account their emissions; the battery's
    stored energy and intensity move on (`battery` is changed)."""
    h = max(0.0, seconds) / 3.6e6          # W -> kWh over the interval
    pv = max(0.0, flows.pv_w) * h
    house = max(0.0, flows.house_w) * h
    ev = max(0.0, flows.ev_w) * h
    imported = max(0.0, flows.grid_w) * h
    charge = max(0.0, flows.battery_w) * h
    battery_out = max(0.0, -flows.battery_w) * h
    other_g = other_supply_g_per_kwh(flows, grid_g_per_kwh, battery)

    pv_to_house = min(pv, house)
    pv_to_ev = min(pv - pv_to_house, ev)
    pv_to_battery = min(pv - pv_to_house - pv_to_ev, charge)
    grid_to_battery = min(charge - pv_to_battery, imported)
    unexplained = charge - pv_to_battery - grid_to_battery   # meters not adding up

    house_g = pv_to_house * pv_g_per_kwh + (house - pv_to_house) * other_g
    ev_g = pv_to_ev * pv_g_per_kwh + (ev - pv_to_ev) * other_g
    avoided_g = (house + ev) * grid_g_per_kwh - house_g - ev_g

    battery.discharge(battery_out)
    battery.charge(pv_to_battery, pv_g_per_kwh)
    battery.charge(grid_to_battery, grid_g_per_kwh)
    if unexplained > 0:      # carries the battery's own mean: changes its amount, not its mean
        battery.charge(unexplained, battery.g_per_kwh if battery.g_per_kwh is not None
                       else grid_g_per_kwh)
    return StepEmissions(house, ev, imported, pv_to_house, pv_to_ev, pv_to_battery,
                         grid_to_battery, battery_out, other_g, house_g, ev_g, avoided_g)


# ---- per quarter hour ----------------------------------------------------------------------

@dataclass(frozen=True)
class CarbonSlot:
    """One quarter hour's accounting: its start (unix s), the grid's mean intensity over the
    accounted time, the energy and emissions of the house and the cars, the emissions avoided,
    and the battery as the quarter hour left it (what a restart continues from)."""

    start_s: int
    grid_g_per_kwh: float
    house_kwh: float
    car_kwh: float
    house_co2_g: float
    car_co2_g: float
    avoided_co2_g: float
    battery_kwh: float
    battery_g_per_kwh: float | None


@dataclass
class _Open:
    start_s: int
    seconds: float = 0.0
    grid_g_seconds: float = 0.0
    house_kwh: float = 0.0
    car_kwh: float = 0.0
    house_g: float = 0.0
    car_g: float = 0.0
    avoided_g: float = 0.0

    def add(self, step: StepEmissions, seconds: float, grid_g: float) -> None:
        self.seconds += seconds
        self.grid_g_seconds += grid_g * seconds
        self.house_kwh += step.house_kwh
        self.car_kwh += step.ev_kwh
        self.house_g += step.house_g
        self.car_g += step.ev_g
        self.avoided_g += step.avoided_g


class CarbonMeter:
    """Integrates the readings of each tick into quarter hours (as `energy_meter` does): a
    reading's flows and intensity hold until the next reading, never across more than
    `max_gap_s`; a reading without flows or without an intensity accounts nothing up to the
    next one. `capacity_kwh` (the battery's usable capacity, None: not known) sets the stored
    energy from the SoC at each reading; without it the stored energy is the running sum of
    charge and discharge."""

    def __init__(self, battery: BatteryCarbon | None = None, *, capacity_kwh: float | None = None,
                 max_gap_s: float = 60.0):
        self.battery = battery if battery is not None else BatteryCarbon()
        self.capacity_kwh = capacity_kwh if capacity_kwh and capacity_kwh > 0 else None
        self.max_gap_s = float(max_gap_s)
        self._open: _Open | None = None
        self._last: tuple[float, SiteFlows | None, float | None] | None = None

    def add(self, t_s: float, flows: SiteFlows | None, grid_g_per_kwh: float | None,
            battery_soc_pct: float | None = None) -> list[CarbonSlot]:
        """A reading at wall time `t_s`; returns the quarter hours it completed."""
        done: list[CarbonSlot] = []
        last = self._last
        if last is not None and t_s < last[0]:
            last = None                         # the clock went back: start again from here
            self._open = None
        if self._open is None:
            self._open = _Open(_slot_of(t_s))
        if last is not None and t_s - last[0] <= self.max_gap_s \
                and last[1] is not None and last[2] is not None:
            t, flows_then, g_then = last
            while t < t_s:                      # split the interval at slot boundaries
                end = min(t_s, self._open.start_s + SLOT_S)
                step = account_step(flows_then, end - t, g_then, self.battery)
                self._open.add(step, end - t, g_then)
                t = end
                if t >= self._open.start_s + SLOT_S:
                    done.extend(self._close())
                    self._open = _Open(_slot_of(t))
        if t_s >= self._open.start_s + SLOT_S:    # after a long gap: close what was open
            done.extend(self._close())
            self._open = _Open(_slot_of(t_s))
        if self.capacity_kwh and battery_soc_pct is not None and math.isfinite(battery_soc_pct):
            self.battery.stored_kwh = max(0.0, min(100.0, battery_soc_pct)) / 100.0 \
                * self.capacity_kwh
        self._last = (t_s, flows, grid_g_per_kwh)
        return done

    def _close(self) -> list[CarbonSlot]:
        slot = self._open
        if slot is None or slot.seconds <= 0:
            return []
        return [CarbonSlot(slot.start_s, slot.grid_g_seconds / slot.seconds, slot.house_kwh,
                           slot.car_kwh, slot.house_g, slot.car_g, slot.avoided_g,
                           self.battery.stored_kwh, self.battery.g_per_kwh)]


def _slot_of(t_s: float) -> int:
    return int(t_s // SLOT_S * SLOT_S)


# ---- totals ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CarbonTotals:
    """The sums of one day ("2026-01-31") or month ("2026-01"), local time; kg CO2-eq."""

    period: str
    house_kwh: float
    car_kwh: float
    house_co2_kg: float
    car_co2_kg: float
    avoided_co2_kg: float

    @property
    def co2_kg(self) -> float:
        return self.house_co2_kg + self.car_co2_kg


def carbon_totals(slots: Iterable[CarbonSlot], period: str, tz: tzinfo) -> list[CarbonTotals]:
    """Totals per local day (`period` "day") or month ("month") in time zone `tz`, oldest
    first; a quarter hour counts where it starts."""
    if period not in ("day", "month"):
        raise ValueError(f"period must be 'day' or 'month', got {period!r}")
    fmt = "%Y-%m-%d" if period == "day" else "%Y-%m"
    sums: dict[str, list[float]] = {}
    for slot in slots:
        key = datetime.fromtimestamp(slot.start_s, tz).strftime(fmt)
        row = sums.setdefault(key, [0.0] * 5)
        for i, value in enumerate((slot.house_kwh, slot.car_kwh, slot.house_co2_g,
                                   slot.car_co2_g, slot.avoided_co2_g)):
            row[i] += value
    return [CarbonTotals(key, row[0], row[1], row[2] / 1000.0, row[3] / 1000.0, row[4] / 1000.0)
            for key, row in sorted(sums.items())]
