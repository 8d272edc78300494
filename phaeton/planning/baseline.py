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


def _ev_as_soon_as_possible(data: SlotData) -> tuple[np.ndarray, Shortfall | None]:
    headroom = np.clip(np.minimum(data.import_cap_kwh, 1e9) + data.pv_kwh - data.load_kwh,
                       0.0, None)
    cap = np.minimum(data.ev_cap_kwh, headroom)
    wanted_ac = data.ev_need_kwh / data.ev_eff
    before = np.concatenate([[0.0], np.cumsum(cap)[:-1]])
    ev = np.clip(wanted_ac - before, 0.0, cap)
    delivered = ev.sum() * data.ev_eff
    if delivered < data.ev_need_kwh - 1e-6:
        return ev, Shortfall(data.ev_need_kwh - delivered,
                             "charging at full power from plug-in does not reach the need")
    return ev, None


def do_nothing(problem: PlanProblem | SlotData) -> Plan:
    """Idle battery, EV charged as soon as it is plugged in."""
    data = problem if isinstance(problem, SlotData) else prepare(problem)
    ev, shortfall = _ev_as_soon_as_possible(data)
    reasons = ["EV charging from plug-in" if e > 1e-9 else "battery idle" for e in ev]
    return build_plan(data, np.zeros(data.slots), ev, shortfall=shortfall, reasons=reasons)


def self_consumption(problem: PlanProblem | SlotData) -> Plan:
    """Battery follows the net load (store surplus, cover the house deficit), no prices."""
    data = problem if isinstance(problem, SlotData) else prepare(problem)
    ev, shortfall = _ev_as_soon_as_possible(data)
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
    return build_plan(data, battery_ac, ev, shortfall=shortfall, reasons=reasons)
