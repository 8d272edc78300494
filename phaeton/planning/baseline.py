"""Reference strategies the optimizer is measured against, costed by the same physics.

- `do_nothing`: the battery stays idle; the EV charges at full power from the moment it is
  plugged in until it has its energy (what a plain wallbox does), within the fuse's headroom.
- `self_consumption`: the EV as above; the battery stores PV surplus (what is left after house
  and EV) and covers the house load's deficit whenever it has energy above its minimum SoC (a
  plain "ESS self-consumption" rule, no prices). It does not discharge into the EV.
"""
from __future__ import annotations

import numpy as np

from phaeton.planning.model import Plan, PlanProblem, Shortfall
from phaeton.planning.schedule import build_plan
from phaeton.planning.slot_data import SlotData, prepare


def _ev_as_soon_as_possible(data: SlotData) -> tuple[np.ndarray, list[Shortfall | None]]:
    """Each car (in order) at full power from plug-in until it has its need, within the fuse's
    headroom and the cars' shared limit left by the cars before it. (cars x slots, shortfalls)"""
    headroom = np.clip(np.minimum(data.import_cap_kwh, 1e9) + data.pv_kwh - data.load_kwh,
                       0.0, None)
    shared = np.minimum(data.ev_shared_cap_kwh, 1e9) if data.ev_shared_cap_kwh is not None \
        else np.full(data.slots, 1e9)
    rows, shortfalls = [], []
    for car in data.evs:
        cap = np.minimum(np.minimum(car.cap_kwh, headroom), shared)
        wanted_ac = car.need_kwh / car.eff
        before = np.concatenate([[0.0], np.cumsum(cap)[:-1]])
        ev = np.clip(wanted_ac - before, 0.0, cap)
        headroom = headroom - ev
        shared = shared - ev
        rows.append(ev)
        delivered = ev.sum() * car.eff
        shortfalls.append(None if delivered >= car.need_kwh - 1e-6 else Shortfall(
            car.need_kwh - delivered,
            "charging at full power from plug-in does not reach the need"))
    return np.array(rows).reshape(len(rows), data.slots), shortfalls


def do_nothing(problem: PlanProblem | SlotData) -> Plan:
    """Idle battery, EV charged as soon as it is plugged in."""
    data = problem if isinstance(problem, SlotData) else prepare(problem)
    by_ev, shortfalls = _ev_as_soon_as_possible(data)
    ev = by_ev.sum(0)
    reasons = ["EV charging from plug-in" if e > 1e-9 else "battery idle" for e in ev]
    return build_plan(data, np.zeros(data.slots), by_ev, shortfalls=shortfalls, reasons=reasons)


def self_consumption(problem: PlanProblem | SlotData) -> Plan:
    """Battery follows the net load (store surplus, cover the house deficit), no prices."""
    data = problem if isinstance(problem, SlotData) else prepare(problem)
    by_ev, shortfalls = _ev_as_soon_as_possible(data)
    ev = by_ev.sum(0)
    battery_ac = np.zeros(data.slots)
    stored = data.stored_now_kwh
    reasons = []
    for t in range(data.slots):
        surplus = data.pv_kwh[t] - data.load_kwh[t] - ev[t]
        if surplus > 0:
            room = (data.stored_max_kwh - stored) / data.charge_eff
            x = min(surplus, data.charge_cap_kwh[t], max(room, 0.0))
            stored += x * data.charge_eff
            reasons.append("store PV surplus" if x > 1e-9 else "battery full")
        else:
            deficit = data.load_kwh[t] - data.pv_kwh[t]  # the house's, not the EV's
            available = (stored - data.stored_min_kwh) * data.discharge_eff
            x = -min(max(deficit, 0.0), data.discharge_cap_kwh[t], max(available, 0.0))
            stored += x / data.discharge_eff
            reasons.append("battery covers house load" if x < -1e-9 else "battery idle")
        battery_ac[t] = x
    return build_plan(data, battery_ac, by_ev, shortfalls=shortfalls, reasons=reasons)
