"""Turn a decided battery and EV schedule into a Plan: energy flows, SoC, cost and reasons.

Shared by the optimizer and the baselines, so every strategy is costed by the same physics:
the battery never charges and discharges in the same slot, PV is used (or curtailed) the
cheapest way, and the grid covers the rest.
"""
from __future__ import annotations

import numpy as np

from phaeton.planning.model import Plan, Shortfall
from phaeton.planning.slot_cost import grid_exchange
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
               shortfalls: list[Shortfall | None] | None = None) -> Plan:
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
    overload = np.maximum(0.0, grid_import - data.import_cap_kwh)
    charge = np.maximum(x, 0.0)
    discharge = np.maximum(-x, 0.0)
    stored = stored_trajectory(data, x)
    soc = stored / data.capacity_kwh if data.capacity_kwh > 0 else np.zeros(data.slots + 1)
    all_warnings = list(data.warnings) + list(warnings or [])
    if overload.sum() > 1e-6:
        worst = int(np.argmax(overload))
        all_warnings.append(
            f"grid import above the fuse limit in {int((overload > 1e-6).sum())} slot(s) "
            f"(worst slot {worst}: {overload[worst]:.2f} kWh): house load exceeds what grid, PV "
            "and battery can supply")
    if reasons is None:
        reasons = planner_reasons(data, charge, discharge, e, grid_import, grid_export, curtailed)
    energy_cost = float(np.dot(data.import_price, grid_import)
                        - np.dot(data.export_price, grid_export))
    return Plan(
        slot_start_s=data.start_s, slot_duration_h=data.hours,
        battery_charge_kwh=charge, battery_discharge_kwh=discharge, ev_kwh=e,
        grid_import_kwh=grid_import, grid_export_kwh=grid_export, pv_curtailed_kwh=curtailed,
        fuse_overload_kwh=overload, soc=soc, soc_kwh=stored,
        energy_cost_eur=energy_cost,
        degradation_cost_eur=float(data.degradation * (charge.sum() + discharge.sum())),
        terminal_value_eur=float(data.terminal_value * (stored[-1] - stored[0])),
        ev_delivered_kwh=float(sum(delivered)) if cars else float(e.sum() * data.ev_eff),
        shortfall=shortfall, reasons=reasons, warnings=all_warnings, ev_kwh_by_ev=by_ev,
        ev_delivered_by_ev_kwh=delivered, shortfalls=shortfalls)
