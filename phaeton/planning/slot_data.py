"""Turn a PlanProblem into clean per-slot arrays, repairing bad data by documented rules.

The optimizer never raises for data problems. Every repair is reported as a warning string:

- Arrays shorter than `slot_start_s` are padded with missing values, longer ones truncated.
- Slot durations come from `slot_duration_h`, else from the spacing of the start times (a gap,
  i.e. a missing slot, makes the slot before it last until the next start; said in a warning);
  a missing, non-finite or non-positive duration becomes 0.25 h.
- Missing (NaN/inf) prices are interpolated linearly between the nearest finite neighbours and
  held flat at the ends; with no finite price at all, prices are 0 (the plan then only uses the
  battery for self-consumption). An export price above the import price is lowered to the import
  price: buying and selling in the same slot is not a strategy the planner models.
- Missing house load is interpolated the same way (no finite value at all: 0); missing or
  negative PV becomes 0 (do not plan with sun that may not come); negative load becomes 0.
- Battery, grid and EV numbers out of range are clipped into range or dropped with a warning.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from phaeton.planning.model import CARBON_TIE_BREAK_KG_PER_EUR, OBJECTIVES, PlanProblem

DEFAULT_SLOT_H = 0.25


@dataclass
class EVData:
    """One car, cleaned: AC kWh room and minimum per slot (0 outside its window), efficiency,
    need (kWh into the car) and departure slot."""

    name: str
    cap_kwh: np.ndarray
    min_kwh: np.ndarray
    eff: float
    need_kwh: float
    departure: int


@dataclass
class SlotData:
    """Clean arrays (length T) and scalars the optimizer works on; energies in kWh per slot."""

    start_s: np.ndarray
    hours: np.ndarray
    import_price: np.ndarray
    export_price: np.ndarray
    load_kwh: np.ndarray
    pv_kwh: np.ndarray
    import_cap_kwh: np.ndarray
    export_cap_kwh: np.ndarray
    # battery (capacity 0 means none)
    capacity_kwh: float = 0.0
    stored_now_kwh: float = 0.0
    stored_min_kwh: float = 0.0
    stored_max_kwh: float = 0.0
    charge_cap_kwh: np.ndarray | None = None
    discharge_cap_kwh: np.ndarray | None = None
    charge_eff: float = 1.0
    discharge_eff: float = 1.0
    degradation: float = 0.0
    terminal_value: float = 0.0
    # EV (need 0 means none)
    ev_cap_kwh: np.ndarray | None = None
    ev_min_kwh: np.ndarray | None = None
    ev_eff: float = 1.0
    ev_need_kwh: float = 0.0
    ev_departure: int = 0
    warnings: list[str] = field(default_factory=list)
    # every car (the `ev_*` fields above repeat the car when there is exactly one); the most
    # all cars together may draw per slot (inf: no such limit)
    evs: list[EVData] = field(default_factory=list)
    ev_shared_cap_kwh: np.ndarray | None = None
    # carbon: kg CO2 per kWh imported (None: unknown), the objective in effect, and, when it
    # is not "cost", the money prices (the price fields above then hold the objective's
    # prices, which the optimizer minimises; `schedule.build_plan` costs with these)
    intensity_kg_per_kwh: np.ndarray | None = None
    objective: str = "cost"
    money_import_price: np.ndarray | None = None
    money_export_price: np.ndarray | None = None
    money_degradation: float | None = None
    money_terminal_value: float | None = None

    @property
    def slots(self) -> int:
        return len(self.hours)


def _as_float_array(name: str, values, length: int, warnings: list[str]) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        warnings.append(f"{name}: not numeric, treated as missing")
        return np.full(length, np.nan)
    if len(arr) < length:
        warnings.append(f"{name}: {len(arr)} values for {length} slots, the rest are missing")
        arr = np.concatenate([arr, np.full(length - len(arr), np.nan)])
    elif len(arr) > length:
        warnings.append(f"{name}: {len(arr)} values for {length} slots, extra values ignored")
        arr = arr[:length]
    return arr


def fill_missing(name: str, values: np.ndarray, warnings: list[str]) -> np.ndarray:
    """Interpolate non-finite entries between finite neighbours; hold the ends; none: zeros."""
    finite = np.isfinite(values)
    if finite.all():
        return values
    missing = int((~finite).sum())
    if not finite.any():
        warnings.append(f"{name}: no usable value in any of {len(values)} slots, using 0")
        return np.zeros_like(values)
    idx = np.arange(len(values))
    filled = np.interp(idx, idx[finite], values[finite])
    warnings.append(f"{name}: {missing} missing/non-finite slot(s) filled by interpolation")
    return filled


def _finite_or(value, default: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return default
    return v if np.isfinite(v) else default


def _slot_hours(problem: PlanProblem, starts: np.ndarray, warnings: list[str]) -> np.ndarray:
    n = len(starts)
    if problem.slot_duration_h is not None:
        hours = _as_float_array("slot_duration_h", problem.slot_duration_h, n, warnings)
    elif n >= 2:
        spacing = np.diff(starts) / 3600.0
        hours = np.concatenate([spacing, spacing[-1:]])
        finite = spacing[np.isfinite(spacing)]
        if len(finite) and finite.max() - finite.min() > 1e-9:
            warnings.append(f"slot start times unevenly spaced ({finite.min():g} to "
                            f"{finite.max():g} h): each slot lasts until the next one starts")
    else:
        hours = np.full(n, DEFAULT_SLOT_H)
    bad = ~np.isfinite(hours) | (hours <= 0)
    if bad.any():
        warnings.append(f"slot durations: {int(bad.sum())} invalid, using {DEFAULT_SLOT_H} h")
        hours = np.where(bad, DEFAULT_SLOT_H, hours)
    return hours


def prepare(problem: PlanProblem) -> SlotData:
    """Clean `problem` into SlotData; never raises for bad numbers, reports them instead."""
    warnings: list[str] = []
    try:
        starts = np.asarray(problem.slot_start_s, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        starts = np.zeros(0)
        warnings.append("slot_start_s: not numeric, no slots to plan")
    n = len(starts)
    hours = _slot_hours(problem, starts, warnings)
    if n and not np.isfinite(starts).all():
        warnings.append("slot_start_s: non-finite start times rebuilt from durations")
        first = starts[np.isfinite(starts)][0] if np.isfinite(starts).any() else 0.0
        starts = first + np.concatenate([[0.0], np.cumsum(hours[:-1]) * 3600.0])

    imp = fill_missing("import price", _as_float_array(
        "import price", problem.import_price_eur_per_kwh, n, warnings), warnings)
    exp = fill_missing("export price", _as_float_array(
        "export price", problem.export_price_eur_per_kwh, n, warnings), warnings)
    above = exp > imp
    if above.any():
        warnings.append(f"export price above import price in {int(above.sum())} slot(s): "
                        "capped at the import price")
        exp = np.minimum(exp, imp)
    load = fill_missing("house load", _as_float_array(
        "house load", problem.load_kwh, n, warnings), warnings)
    if (load < 0).any():
        warnings.append(f"house load negative in {int((load < 0).sum())} slot(s): using 0")
        load = np.maximum(load, 0.0)
    pv = _as_float_array("PV", problem.pv_kwh, n, warnings)
    if (~np.isfinite(pv)).any():
        warnings.append(f"PV: {int((~np.isfinite(pv)).sum())} missing slot(s) taken as 0")
    pv = np.where(np.isfinite(pv), pv, 0.0)
    if (pv < 0).any():
        warnings.append(f"PV negative in {int((pv < 0).sum())} slot(s): using 0")
        pv = np.maximum(pv, 0.0)

    grid = problem.grid
    import_kw = _finite_or(grid.import_limit_kw, np.nan)
    if grid.import_limit_kw == np.inf:
        import_kw = np.inf
    if not import_kw > 0:
        warnings.append(f"grid import limit {grid.import_limit_kw!r} kW invalid: no limit used")
        import_kw = np.inf
    export_kw = max(0.0, _finite_or(grid.export_limit_kw, 0.0)) if grid.export_allowed else 0.0
    data = SlotData(
        start_s=starts, hours=hours, import_price=imp, export_price=exp, load_kwh=load,
        pv_kwh=pv, import_cap_kwh=import_kw * hours, export_cap_kwh=export_kw * hours,
        warnings=warnings)
    _prepare_battery(problem, data)
    _prepare_ev(problem, data)
    _prepare_objective(problem, data)
    return data


def _prepare_intensity(problem: PlanProblem, data: SlotData) -> None:
    """`import_intensity_g_per_kwh` as kg/kWh: unknown slots at the known slots' mean,
    negative values 0; nothing usable: None."""
    raw = getattr(problem, "import_intensity_g_per_kwh", None)
    if raw is None:
        return
    w = data.warnings
    values = _as_float_array("carbon intensity", raw, data.slots, w)
    finite = np.isfinite(values)
    if not finite.any():
        if data.slots:
            w.append("carbon intensity: no usable value, CO2 not planned or reported")
        return
    if not finite.all():
        mean = float(np.mean(values[finite]))
        w.append(f"carbon intensity: {int((~finite).sum())} unknown slot(s) taken as the mean "
                 f"of the known ones ({mean:.0f} g/kWh)")
        values = np.where(finite, values, mean)
    if (values < 0).any():
        w.append(f"carbon intensity negative in {int((values < 0).sum())} slot(s): using 0")
        values = np.maximum(values, 0.0)
    data.intensity_kg_per_kwh = values / 1000.0


def _prepare_objective(problem: PlanProblem, data: SlotData) -> None:
    """Swap the objective's prices in for "carbon" and "cost_with_carbon_price" (the money
    prices are kept beside them); "cost" leaves every field as it is."""
    w = data.warnings
    _prepare_intensity(problem, data)
    objective = getattr(problem, "objective", "cost")
    if objective not in OBJECTIVES:
        w.append(f"objective {objective!r} unknown (one of {', '.join(OBJECTIVES)}): "
                 "planning for cost")
        objective = "cost"
    if objective != "cost" and data.intensity_kg_per_kwh is None:
        w.append(f"objective {objective!r} needs a carbon intensity: planning for cost")
        objective = "cost"
    data.objective = objective
    if objective == "cost":
        return
    data.money_import_price = data.import_price
    data.money_export_price = data.export_price
    data.money_degradation = data.degradation
    data.money_terminal_value = data.terminal_value
    defaulted = problem.battery is not None and \
        problem.battery.terminal_value_eur_per_kwh is None
    kg = data.intensity_kg_per_kwh
    if objective == "carbon":
        weight = CARBON_TIE_BREAK_KG_PER_EUR
        data.import_price = kg + weight * data.money_import_price
        data.export_price = weight * data.money_export_price
        data.degradation = weight * data.money_degradation
        # stored energy avoids future imports at about the horizon's mean intensity
        data.terminal_value = (float(np.mean(kg)) * data.discharge_eff
                               + weight * data.money_terminal_value) if data.capacity_kwh > 0 \
            else 0.0
        return
    price = _finite_or(getattr(problem, "carbon_price_per_tonne", 0.0), np.nan)
    if not price >= 0:
        w.append(f"carbon price {problem.carbon_price_per_tonne!r} per tonne invalid: using 0")
        price = 0.0
    data.import_price = data.money_import_price + price * kg / 1000.0
    if defaulted and data.capacity_kwh > 0:
        data.terminal_value = float(np.mean(data.import_price)) * data.discharge_eff


def _prepare_battery(problem: PlanProblem, data: SlotData) -> None:
    w = data.warnings
    n = data.slots
    data.charge_cap_kwh = np.zeros(n)
    data.discharge_cap_kwh = np.zeros(n)
    bat = problem.battery
    if bat is None:
        return
    capacity = _finite_or(bat.capacity_kwh, 0.0)
    if capacity <= 0:
        w.append(f"battery capacity {bat.capacity_kwh!r} kWh invalid: planning without battery")
        return
    soc_min = float(np.clip(_finite_or(bat.soc_min, 0.0), 0.0, 1.0))
    soc_max = float(np.clip(_finite_or(bat.soc_max, 1.0), 0.0, 1.0))
    if soc_min > soc_max:
        w.append(f"battery soc_min {soc_min} above soc_max {soc_max}: swapped")
        soc_min, soc_max = soc_max, soc_min
    soc_now = _finite_or(bat.soc_now, np.nan)
    if not np.isfinite(soc_now):
        w.append("battery SoC unknown: assuming soc_min")
        soc_now = soc_min
    soc_now = float(np.clip(soc_now, 0.0, 1.0))
    if soc_now < soc_min or soc_now > soc_max:
        w.append(f"battery SoC {soc_now:.3f} outside [{soc_min}, {soc_max}]: the limits are "
                 "widened to include it")
        soc_min, soc_max = min(soc_min, soc_now), max(soc_max, soc_now)

    def efficiency(name: str, value) -> float:
        v = _finite_or(value, np.nan)
        if not 0 < v <= 1:
            w.append(f"battery {name} {value!r} not in (0, 1]: using 0.95")
            return 0.95
        return v

    data.capacity_kwh = capacity
    data.stored_now_kwh = soc_now * capacity
    data.stored_min_kwh = soc_min * capacity
    data.stored_max_kwh = soc_max * capacity
    data.charge_eff = efficiency("charge_efficiency", bat.charge_efficiency)
    data.discharge_eff = efficiency("discharge_efficiency", bat.discharge_efficiency)
    charge_kw = max(0.0, _finite_or(bat.max_charge_kw, 0.0))
    discharge_kw = max(0.0, _finite_or(bat.max_discharge_kw, 0.0))
    data.charge_cap_kwh = charge_kw * data.hours
    if not bat.allow_grid_charging:
        data.charge_cap_kwh = np.minimum(
            data.charge_cap_kwh, np.maximum(0.0, data.pv_kwh - data.load_kwh))
    data.discharge_cap_kwh = discharge_kw * data.hours
    degradation = _finite_or(bat.degradation_eur_per_kwh, 0.0)
    if degradation < 0:
        w.append("battery degradation cost negative: using 0")
        degradation = 0.0
    data.degradation = degradation
    if bat.terminal_value_eur_per_kwh is None:
        data.terminal_value = float(np.mean(data.import_price)) * data.discharge_eff if n else 0.0
    else:
        data.terminal_value = _finite_or(bat.terminal_value_eur_per_kwh, 0.0)


def _prepare_ev(problem: PlanProblem, data: SlotData) -> None:
    w = data.warnings
    n = data.slots
    data.ev_cap_kwh = np.zeros(n)
    data.ev_min_kwh = np.zeros(n)
    data.ev_shared_cap_kwh = np.full(n, np.inf)
    try:
        demands = problem.demands
    except ValueError as exc:  # both ev and evs set after construction: plan the list
        w.append(f"{exc}: planning evs")
        demands = tuple(problem.evs)
    shared_kw = problem.ev_shared_max_kw
    if shared_kw is not None:
        value = _finite_or(shared_kw, np.nan)
        if value == np.inf or np.isnan(value):
            if np.isnan(value):
                w.append(f"EV shared limit {shared_kw!r} kW invalid: no shared limit used")
            shared_kw = None
        elif value < 0:
            w.append(f"EV shared limit {shared_kw!r} kW negative: using 0")
            shared_kw = 0.0
        else:
            shared_kw = value
    if shared_kw is not None:
        data.ev_shared_cap_kwh = shared_kw * data.hours
    several = len(demands) > 1
    for i, ev in enumerate(demands):
        label = "EV" if not several else f"EV {ev.name or i + 1}"
        data.evs.append(_prepare_car(ev, label, data, shared_kw))
    if len(data.evs) == 1:
        car = data.evs[0]
        data.ev_cap_kwh, data.ev_min_kwh = car.cap_kwh, car.min_kwh
        data.ev_eff, data.ev_need_kwh, data.ev_departure = car.eff, car.need_kwh, car.departure


def _prepare_car(ev, label: str, data: SlotData, shared_kw: float | None) -> EVData:
    w = data.warnings
    n = data.slots
    need = _finite_or(ev.energy_needed_kwh, 0.0)
    if need < 0:
        w.append(f"{label} energy needed negative: using 0")
        need = 0.0
    try:
        mask = np.asarray(ev.plugged_mask, dtype=bool).reshape(-1)
    except (TypeError, ValueError):
        w.append(f"{label} plugged_mask not usable: EV treated as not plugged in")
        mask = np.zeros(n, dtype=bool)
    if len(mask) != n:
        w.append(f"{label} plugged_mask has {len(mask)} entries for {n} slots: padded/truncated")
        mask = np.concatenate([mask, np.zeros(max(0, n - len(mask)), dtype=bool)])[:n]
    departure = int(_finite_or(ev.departure_slot, n))
    if departure > n:
        w.append(f"{label} departure slot {departure} beyond the {n}-slot horizon: planning to "
                 "deliver by the end of the horizon")
    departure = int(np.clip(departure, 0, n))
    eff = _finite_or(ev.charge_efficiency, np.nan)
    if not 0 < eff <= 1:
        w.append(f"{label} charge_efficiency {ev.charge_efficiency!r} not in (0, 1]: using 0.9")
        eff = 0.9
    max_kw = max(0.0, _finite_or(ev.max_kw, 0.0))
    if shared_kw is not None and shared_kw < max_kw:
        max_kw = shared_kw
    min_kw = float(np.clip(_finite_or(ev.min_kw, 0.0), 0.0, max_kw))
    window = mask & (np.arange(n) < departure)
    return EVData(name=str(ev.name or ""), cap_kwh=np.where(window, max_kw * data.hours, 0.0),
                  min_kwh=np.where(window, min_kw * data.hours, 0.0), eff=eff, need_kwh=need,
                  departure=departure)
