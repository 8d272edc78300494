"""Build the optimizer's `PlanProblem` from the config, the knobs, prices, forecasts and SoC.

Pure: no I/O, no clock. The service and `phaeton plan` gather the inputs (prices from the
tariff, forecasts, the measured SoC) and call `build_problem`; the slots are 15 minutes long
and start at the quarter hour containing `now_s`.

The knobs (`PlannerKnobs`), the installation's facts (`SiteFacts`) and the car's state
(`EvState`) are plain values from `phaeton.planning.knobs`, importable without numpy; the names
are imported from there.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from phaeton.planning.forecast_load import LoadForecaster
from phaeton.planning.forecast_pv import PvForecaster
from phaeton.planning.knobs import (MAX_HORIZON_H, MIN_HORIZON_H, SLOT_S, EvState,
                                    PlannerInputError, PlannerKnobs, SiteFacts)
from phaeton.planning.model import BatterySpec, EVDemand, GridSpec, PlanProblem
from phaeton.planning.tariffs.series import GridPrices


def first_slot_s(now_s: float) -> int:
    """Start of the quarter hour containing `now_s`."""
    return int(math.floor(now_s / SLOT_S) * SLOT_S)


def slot_starts_s(now_s: float, horizon_h: float) -> np.ndarray:
    """Quarter-hour slot starts from the current slot over `horizon_h` (24..48) hours."""
    if not (isinstance(horizon_h, (int, float)) and MIN_HORIZON_H <= horizon_h <= MAX_HORIZON_H):
        raise PlannerInputError(f"horizon_h must be {MIN_HORIZON_H}..{MAX_HORIZON_H}, "
                                f"got {horizon_h!r}")
    n = round(horizon_h * 3600 / SLOT_S)
    return first_slot_s(now_s) + SLOT_S * np.arange(n, dtype=np.int64)


def next_departure_s(now_s: float, departure_min: int, tz: str) -> float:
    """The next local time `departure_min` minutes after midnight that is after `now_s`."""
    if not (isinstance(departure_min, int) and 0 <= departure_min < 24 * 60):
        raise PlannerInputError(f"EV departure must be 0..1439 minutes after midnight, got "
                                f"{departure_min!r}")
    zone = _zone(tz)
    local = dt.datetime.fromtimestamp(now_s, zone)
    for days in range(3):
        day = local.date() + dt.timedelta(days=days)
        moment = dt.datetime.combine(day, dt.time(departure_min // 60, departure_min % 60),
                                     zone).timestamp()
        if moment > now_s:
            return moment
    raise PlannerInputError("no departure time found")  # unreachable: a day has the time


def departure_slot(starts_s: np.ndarray, departure_s: float) -> int:
    """Index of the first slot starting at or after the departure (the car may charge in all
    slots before it); len(starts) when the departure lies beyond the horizon."""
    return int(np.searchsorted(starts_s, departure_s, side="left"))


def aligned_prices(prices: GridPrices, starts_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Import and export price per slot of `starts_s` (NaN where `prices` has none)."""
    if prices.slot_s != SLOT_S:
        raise PlannerInputError(f"prices must be on the {SLOT_S} s grid, got {prices.slot_s} s")
    index = (starts_s - prices.start_s) // SLOT_S
    size = prices.import_eur_per_kwh.size
    inside = (index >= 0) & (index < size)
    safe = np.clip(index, 0, max(size - 1, 0))
    buy = np.full(starts_s.size, np.nan)
    sell = np.full(starts_s.size, np.nan)
    if size:
        buy[inside] = prices.import_eur_per_kwh[safe[inside]]
        sell[inside] = prices.export_eur_per_kwh[safe[inside]]
    return buy, sell


def forecast(planner: Mapping[str, Any], starts_s: np.ndarray, now_s: float,
             history: EnergyHistory | None = None) -> tuple[np.ndarray, np.ndarray]:
    """House load and PV (kWh per slot) for the slots: learned from `history` when there is
    some, else the configured annual load on a standard profile and a derated clear sky."""
    site = planner["site"]
    load = LoadForecaster(str(site["tz"]), annual_kwh=float(site["annual_load_kwh"]))
    if history is not None and history.load_kwh.size:
        load.fit(history.t_s, history.load_kwh, now_s)
    load_kwh = load.forecast_kwh(float(starts_s[0]), starts_s.size)
    arrays = pv_arrays(site)
    if sum(kwp for _, _, kwp in arrays) <= 0:
        return load_kwh, np.zeros(starts_s.size)
    (tilt, azimuth, kwp), *more = arrays
    pv = PvForecaster(float(site["latitude_deg"]), float(site["longitude_deg"]), tilt, azimuth,
                      kwp, str(site["tz"]), more_arrays=tuple(more))
    if history is not None and history.pv_kwh.size:
        pv.fit(history.t_s, history.pv_kwh, now_s=now_s)
    return load_kwh, pv.forecast_kwh(float(starts_s[0]), starts_s.size)


def pv_arrays(site: Mapping[str, Any]) -> list[tuple[float, float, float]]:
    """(tilt, azimuth, kWp) of each PV array: `pv_arrays` when given, else the one array of
    `pv_kwp`, `pv_tilt_deg` and `pv_azimuth_deg`."""
    arrays = site.get("pv_arrays") or []
    if arrays:
        return [(float(a.get("tilt_deg", 30)), float(a.get("azimuth_deg", 180)),
                 float(a["kwp"])) for a in arrays]
    return [(float(site["pv_tilt_deg"]), float(site["pv_azimuth_deg"]), float(site["pv_kwp"]))]


@dataclass(frozen=True)
class EnergyHistory:
    """Measured energy per quarter hour: slot starts (unix s), house load and PV (kWh)."""

    t_s: np.ndarray
    load_kwh: np.ndarray
    pv_kwh: np.ndarray


@dataclass(frozen=True)
class PlannedCar:
    """One car of several for the plan: its charger's id, the facts of that charger (its power
    range; the car's capacity, efficiency and assumed SoC), the knobs that hold its departure
    and target (`ev_*` fields; the others are the site's), and how it is now."""

    name: str
    facts: SiteFacts
    knobs: PlannerKnobs
    state: EvState | None


def build_problem(*, now_s: float, facts: SiteFacts, knobs: PlannerKnobs,
                  prices: GridPrices, load_kwh: np.ndarray, pv_kwh: np.ndarray,
                  battery_soc_pct: float | None, ev: EvState | None,
                  cars: tuple[PlannedCar, ...] = (),
                  ev_shared_max_kw: float | None = None,
                  intensity_g_per_kwh: np.ndarray | None = None, objective: str = "cost",
                  carbon_price_per_tonne: float = 0.0) -> PlanProblem:
    """The plan problem for the slots from now over `facts.horizon_h`.

    Carbon: `intensity_g_per_kwh` per slot of the same grid (e.g. `CarbonSeries.on_grid(
    starts[0], horizon).g_per_kwh`, NaN where unknown; None: no intensity), `objective` and
    `carbon_price_per_tonne` go into the problem unchanged (see `PlanProblem`).

    `load_kwh`/`pv_kwh` are per slot of the same grid (see `forecast`). A battery SoC of None
    (no reading) plans from the floor SoC, the cautious guess. The EV gets a demand only when
    it is plugged in; its SoC is `ev.soc_pct` or, when the charger cannot tell,
    `facts.ev_assumed_soc_pct`. The charger's minimum power is kept (`facts.ev_min_kw`).
    Out-of-range knobs are clipped to their meaningful range.
    """
    if not (isinstance(now_s, (int, float)) and math.isfinite(now_s)):
        raise PlannerInputError(f"now_s must be a finite unix time, got {now_s!r}")
    starts = slot_starts_s(now_s, facts.horizon_h)
    buy, sell = aligned_prices(prices, starts)
    battery = _battery_spec(facts, knobs, battery_soc_pct)
    grid = GridSpec(import_limit_kw=facts.import_limit_kw,
                    export_limit_kw=facts.export_limit_kw,
                    export_allowed=bool(knobs.allow_export))
    common = dict(slot_start_s=starts.astype(float), import_price_eur_per_kwh=buy,
                  export_price_eur_per_kwh=sell, load_kwh=_per_slot(load_kwh, starts.size),
                  pv_kwh=_per_slot(pv_kwh, starts.size), battery=battery, grid=grid,
                  import_intensity_g_per_kwh=None if intensity_g_per_kwh is None
                  else _per_slot(intensity_g_per_kwh, starts.size),
                  objective=objective, carbon_price_per_tonne=carbon_price_per_tonne)
    if cars:
        demands = [_ev_demand(car.facts, car.knobs, car.state, starts, now_s, name=car.name)
                   for car in cars]
        return PlanProblem(**common, evs=tuple(d for d in demands if d is not None),
                           ev_shared_max_kw=ev_shared_max_kw)
    return PlanProblem(**common, ev=_ev_demand(facts, knobs, ev, starts, now_s))


def _per_slot(values, n: int) -> np.ndarray:
    array = np.asarray(values, dtype=float).reshape(-1)
    if array.size >= n:
        return array[:n]
    return np.concatenate([array, np.full(n - array.size, np.nan)])


def _clip_pct(value: float, low: float = 0.0, high: float = 100.0) -> float:
    value = float(value)
    return low if not math.isfinite(value) else min(max(value, low), high)


def _battery_spec(facts: SiteFacts, knobs: PlannerKnobs,
                  soc_pct: float | None) -> BatterySpec | None:
    if facts.battery_capacity_kwh <= 0:
        return None
    soc_max = _clip_pct(facts.battery_max_soc_pct) / 100.0
    soc_min = min(_clip_pct(knobs.floor_soc_pct) / 100.0, soc_max)
    if soc_pct is None or not math.isfinite(float(soc_pct)):
        soc_now = soc_min
    else:
        soc_now = _clip_pct(soc_pct) / 100.0
    degradation = float(knobs.degradation_eur_per_kwh)
    if not math.isfinite(degradation) or degradation < 0:
        degradation = 0.0
    return BatterySpec.with_round_trip(
        facts.battery_round_trip, capacity_kwh=facts.battery_capacity_kwh, soc_now=soc_now,
        soc_min=soc_min, soc_max=soc_max, max_charge_kw=facts.battery_max_charge_kw,
        max_discharge_kw=facts.battery_max_discharge_kw,
        degradation_eur_per_kwh=degradation,
        allow_grid_charging=bool(knobs.allow_grid_charging))


def ev_need_kwh(facts: SiteFacts, knobs: PlannerKnobs, soc_pct: float | None) -> float:
    """Energy the car's battery needs by departure: the kWh target when set, else the way
    from its SoC (the assumed SoC when unknown) to the target SoC."""
    if knobs.ev_target_kwh and math.isfinite(knobs.ev_target_kwh) and knobs.ev_target_kwh > 0:
        return float(knobs.ev_target_kwh)
    if soc_pct is None or not math.isfinite(float(soc_pct)):
        soc_pct = facts.ev_assumed_soc_pct
    now = _clip_pct(soc_pct)
    target = _clip_pct(knobs.ev_target_soc_pct)
    return max(0.0, (target - now) / 100.0 * facts.ev_capacity_kwh)


def ev_remaining_kwh(facts: SiteFacts, knobs: PlannerKnobs, ev: EvState) -> float:
    """What the plugged-in car still needs: `ev_need_kwh`, less this session's energy when
    its SoC is unknown (the assumed SoC was before the session). A car that knows its own
    capacity (`ev.capacity_kwh`) counts with that."""
    if ev.capacity_kwh and math.isfinite(ev.capacity_kwh) and ev.capacity_kwh > 0:
        facts = replace(facts, ev_capacity_kwh=float(ev.capacity_kwh))
    need = ev_need_kwh(facts, knobs, ev.soc_pct)
    if ev.soc_pct is None and math.isfinite(ev.session_kwh) and ev.session_kwh > 0:
        need = max(0.0, need - ev.session_kwh * facts.ev_charge_efficiency)
    return need


def _ev_demand(facts: SiteFacts, knobs: PlannerKnobs, ev: EvState | None,
               starts: np.ndarray, now_s: float, name: str = "") -> EVDemand | None:
    if ev is None or not ev.plugged:
        return None
    need = ev_remaining_kwh(facts, knobs, ev)
    if need <= 0:
        return None
    leave = departure_slot(starts, next_departure_s(now_s, int(knobs.ev_departure_min),
                                                    facts.tz))
    return EVDemand(plugged_mask=np.ones(starts.size, dtype=bool), departure_slot=leave,
                    energy_needed_kwh=need, max_kw=facts.ev_max_kw, min_kw=facts.ev_min_kw,
                    charge_efficiency=facts.ev_charge_efficiency,
                    **({"name": name} if name else {}))


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (KeyError, ValueError) as exc:
        raise PlannerInputError(f"unknown time zone {tz!r}") from exc
