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


def build_plan(data: SlotData, battery_ac_kwh: np.ndarray, ev_kwh: np.ndarray, *,
               shortfall: Shortfall | None = None, reasons: list[str] | None = None,
               warnings: list[str] | None = None) -> Plan:
    """Cost the schedule (battery AC exchange, charge > 0; EV AC energy) and wrap it in a Plan."""
    x = np.asarray(battery_ac_kwh, dtype=float)
    e = np.asarray(ev_kwh, dtype=float)
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
        ev_delivered_kwh=float(e.sum() * data.ev_eff),
        shortfall=shortfall, reasons=reasons, warnings=all_warnings)
