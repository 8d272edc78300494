"""Turn a decided battery and EV schedule into a Plan: energy flows, SoC, cost and reasons.

Shared by the optimizer and the baselines, so every strategy is costed by the same physics:
the battery never charges and discharges at the same time, PV is used (or curtailed) the
cheapest way, and the grid covers the rest. With `mix` (the optimizer's plans), a slot whose
cost the optimizer priced with its convex envelope (strongly negative prices) runs as the
envelope's mix: discharging for part of the slot and charging for the rest (`SlotMix`).

Costs are in money (`SlotData.money_*` when the objective is not cost), `co2_kg` is the import
times the intensity, and `objective_value` the same flows priced with the objective's prices.
"""
from __future__ import annotations

import numpy as np

from phaeton.planning.model import Plan, Shortfall, SlotMix
from phaeton.planning.slot_cost import grid_exchange, mix_intervals
from phaeton.planning.slot_data import SlotData

_EPS = 1e-9


def stored_trajectory(data: SlotData, battery_ac_kwh: np.ndarray) -> np.ndarray:
    """Stored energy (kWh) at every slot boundary for AC exchange x (charge > 0)."""
    change = np.where(battery_ac_kwh > 0, battery_ac_kwh * data.charge_eff,
                      battery_ac_kwh / data.discharge_eff)
    return data.stored_now_kwh + np.concatenate([[0.0], np.cumsum(change)])


def planner_reasons(data: SlotData, charge: np.ndarray, discharge: np.ndarray, ev: np.ndarray,
                    grid_import: np.ndarray, grid_export: np.ndarray,
                    curtailed: np.ndarray) -> list[str]:
    """One short explanation per slot of what the plan does there and why."""
    surplus = data.pv_kwh - data.load_kwh
    reasons = []
    for t in range(data.slots):
        parts = []
        if ev[t] > _EPS:
            if ev[t] <= surplus[t] + _EPS:
                parts.append("EV on PV surplus")
            else:
                parts.append("EV: cheapest slots before departure")
        if charge[t] > _EPS:
            if charge[t] <= max(0.0, surplus[t] - ev[t]) + _EPS:
                parts.append("store PV surplus")
            elif data.import_price[t] < 0:
                parts.append("charge from grid: negative price")
            else:
                parts.append("charge from grid at low price")
        if discharge[t] > _EPS:
            parts.append("discharge to grid at peak price" if grid_export[t] > _EPS
                         else "discharge at peak price")
        if curtailed[t] > _EPS:
            parts.append("curtail PV: export not paid or at its limit")
        if not parts:
            if grid_import[t] > _EPS:
                parts.append("grid covers load (battery kept for later)"
                             if data.capacity_kwh > 0 else "grid covers load")
            elif grid_export[t] > _EPS:
                parts.append("export PV surplus")
            else:
                parts.append("idle")
        reasons.append("; ".join(parts))
    return reasons


def combined_shortfall(data: SlotData, shortfalls) -> Shortfall | None:
    """`Plan.shortfall`: the one car's, or all cars' missing kWh with the reasons joined."""
    missing = [(car, s) for car, s in zip(data.evs, shortfalls) if s is not None]
    if len(data.evs) <= 1 or not missing:
        return missing[0][1] if missing else None
    reason = "; ".join(f"{car_label(data, data.evs.index(car))}: {s.reason}"
                       for car, s in missing)
    return Shortfall(float(sum(s.ev_kwh for _, s in missing)), reason)


def car_label(data: SlotData, i: int) -> str:
    """How a car is named in notes: its name, else "EV <number>"."""
    name = data.evs[i].name if i < len(data.evs) else ""
    return name or f"EV {i + 1}"


def build_plan(data: SlotData, battery_ac_kwh: np.ndarray, ev_kwh: np.ndarray, *,
               shortfall: Shortfall | None = None, reasons: list[str] | None = None,
               warnings: list[str] | None = None,
               shortfalls: list[Shortfall | None] | None = None, mix: bool = False) -> Plan:
    """Cost the schedule (battery AC exchange, charge > 0; EV AC energy) and wrap it in a Plan.

    `ev_kwh` is one row per car of `data.evs` (cars x slots), or, with at most one car, a
    plain array over the slots. `shortfalls` gives one entry per car; without it `shortfall`
    is the (only) car's.
    """
    x = np.asarray(battery_ac_kwh, dtype=float)
    by_ev = np.asarray(ev_kwh, dtype=float)
    cars = len(data.evs)
    if by_ev.ndim == 1:
        by_ev = np.tile(by_ev, (cars, 1)) if cars == 1 else (
            np.zeros((cars, data.slots)) if cars else np.zeros((0, data.slots)))
        if cars > 1 and np.any(np.asarray(ev_kwh) != 0):
            raise ValueError("several cars need one EV row each")
    e = by_ev.sum(0) if cars else np.zeros(data.slots)
    if cars == 0 and np.asarray(ev_kwh).ndim == 1:
        e = np.asarray(ev_kwh, dtype=float)
    if shortfalls is None:
        shortfalls = [shortfall] + [None] * (cars - 1) if cars else []
    shortfalls = tuple(shortfalls)
    delivered = tuple(float(row.sum() * car.eff) for row, car in zip(by_ev, data.evs))
    if shortfall is None:
        shortfall = combined_shortfall(data, shortfalls)
    demand = data.load_kwh + x + e
    net = grid_exchange(data, demand)
    grid_import = np.maximum(net, 0.0)
    grid_export = np.maximum(-net, 0.0)
    curtailed = np.clip(data.pv_kwh - (demand - net), 0.0, None)
    charge = np.maximum(x, 0.0)
    discharge = np.maximum(-x, 0.0)
    stored = stored_trajectory(data, x)
    mixes: list[SlotMix] = []
    mix_notes: list[str] = []
    mixed = np.zeros(data.slots, dtype=bool)
    if mix and data.capacity_kwh > 0 and data.slots:
        mixes, mix_notes = _mix_slots(data, x, e, stored, grid_import, grid_export, curtailed,
                                      charge, discharge, mixed)
    overload = np.maximum(0.0, grid_import - data.import_cap_kwh)
    soc = stored / data.capacity_kwh if data.capacity_kwh > 0 else np.zeros(data.slots + 1)
    all_warnings = list(data.warnings) + list(warnings or []) + mix_notes
    if overload.sum() > 1e-6:
        worst = int(np.argmax(overload))
        all_warnings.append(
            f"grid import above the fuse limit in {int((overload > 1e-6).sum())} slot(s) "
            f"(worst slot {worst}: {overload[worst]:.2f} kWh): house load exceeds what grid, PV "
            "and battery can supply")
    if reasons is None:
        reasons = planner_reasons(data, charge, discharge, e, grid_import, grid_export, curtailed)
        for t in np.flatnonzero(mixed):
            reasons[t] = "burn energy through battery losses at a negative price: " + \
                reasons[t]
    money_import = data.import_price if data.money_import_price is None \
        else data.money_import_price
    money_export = data.export_price if data.money_export_price is None \
        else data.money_export_price
    degradation = data.degradation if data.money_degradation is None \
        else data.money_degradation
    terminal = data.terminal_value if data.money_terminal_value is None \
        else data.money_terminal_value
    energy_cost = float(np.dot(money_import, grid_import) - np.dot(money_export, grid_export))
    throughput = charge.sum() + discharge.sum()
    co2 = None if data.intensity_kg_per_kwh is None else \
        float(np.dot(data.intensity_kg_per_kwh, grid_import))
    objective_value = None
    if data.money_import_price is not None:
        objective_value = float(
            np.dot(data.import_price, grid_import) - np.dot(data.export_price, grid_export)
            + data.degradation * throughput
            - data.terminal_value * (stored[-1] - stored[0]))
    return Plan(
        slot_start_s=data.start_s, slot_duration_h=data.hours,
        battery_charge_kwh=charge, battery_discharge_kwh=discharge, ev_kwh=e,
        grid_import_kwh=grid_import, grid_export_kwh=grid_export, pv_curtailed_kwh=curtailed,
        fuse_overload_kwh=overload, soc=soc, soc_kwh=stored,
        energy_cost_eur=energy_cost,
        degradation_cost_eur=float(degradation * throughput),
        terminal_value_eur=float(terminal * (stored[-1] - stored[0])),
        ev_delivered_kwh=float(sum(delivered)) if cars else float(e.sum() * data.ev_eff),
        shortfall=shortfall, reasons=reasons, warnings=all_warnings, ev_kwh_by_ev=by_ev,
        ev_delivered_by_ev_kwh=delivered, shortfalls=shortfalls, co2_kg=co2,
        objective=data.objective, objective_value=objective_value, battery_mixes=tuple(mixes))


def _mix_slots(data: SlotData, x: np.ndarray, e: np.ndarray, stored: np.ndarray,
               grid_import: np.ndarray, grid_export: np.ndarray, curtailed: np.ndarray,
               charge: np.ndarray, discharge: np.ndarray, mixed: np.ndarray
               ) -> tuple[list[SlotMix], list[str]]:
    """Run the slots whose net move lies inside their envelope's mixed stretch as the mix
    (`slot_cost.mix_intervals`): discharging at a for a share of the slot, charging at b for
    the rest, in the order the SoC limits allow. Updates the flow arrays in place."""
    scale = max(float(np.max(np.abs(data.import_price), initial=0.0)),
                float(np.max(np.abs(data.export_price), initial=0.0)),
                data.degradation, abs(data.terminal_value), 1e-3)
    a, b = mix_intervals(data, data.load_kwh + e, 1e6 * scale)
    d = np.diff(stored)
    inside = np.isfinite(a) & (d > a + 1e-9) & (d < b - 1e-9)
    mixes: list[SlotMix] = []
    notes: list[str] = []
    lo, hi = data.stored_min_kwh, data.stored_max_kwh
    for t in np.flatnonzero(inside):
        share_a = float((b[t] - d[t]) / (b[t] - a[t]))  # of the slot spent discharging
        x_a = float(a[t] * data.discharge_eff)
        x_b = float(b[t] / data.charge_eff)
        if stored[t] + share_a * a[t] >= lo - 1e-9:
            first = "discharge"
            mid = stored[t] + share_a * a[t]
        elif stored[t] + (1.0 - share_a) * b[t] <= hi + 1e-9:
            first = "charge"
            mid = stored[t] + (1.0 - share_a) * b[t]
        else:
            notes.append(f"slot {t}: the battery is too small to charge and discharge in one "
                         "slot; running only the net move")
            continue
        parts = []
        for x_part, share in ((x_a, share_a), (x_b, 1.0 - share_a)):
            demand = data.load_kwh[t:t + 1] + x_part + e[t:t + 1]
            net = grid_exchange(_one_slot(data, t), demand)
            parts.append((share, float(net[0]), float(data.pv_kwh[t] - (demand[0] - net[0]))))
        grid_import[t] = sum(share * max(net, 0.0) for share, net, _ in parts)
        grid_export[t] = sum(share * max(-net, 0.0) for share, net, _ in parts)
        curtailed[t] = sum(share * max(c, 0.0) for share, _, c in parts)
        discharge[t] = share_a * -x_a
        charge[t] = (1.0 - share_a) * x_b
        mixed[t] = True
        seconds = float(data.hours[t]) * 3600.0
        kw_a, kw_b = x_a / data.hours[t], x_b / data.hours[t]
        if first == "discharge":
            mixes.append(SlotMix(int(t), float(kw_a), share_a * seconds, float(kw_b),
                                 float(mid / data.capacity_kwh)))
        else:
            mixes.append(SlotMix(int(t), float(kw_b), (1.0 - share_a) * seconds, float(kw_a),
                                 float(mid / data.capacity_kwh)))
    return mixes, notes


def _one_slot(data: SlotData, t: int) -> SlotData:
    """Slot t's prices, PV and grid limits (what `grid_exchange` reads)."""
    one = slice(t, t + 1)
    return SlotData(start_s=data.start_s[one], hours=data.hours[one],
                    import_price=data.import_price[one], export_price=data.export_price[one],
                    load_kwh=data.load_kwh[one], pv_kwh=data.pv_kwh[one],
                    import_cap_kwh=data.import_cap_kwh[one],
                    export_cap_kwh=data.export_cap_kwh[one])
