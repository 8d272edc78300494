"""What the battery does for the grid in each slot of a plan; pure, on the Plan alone.

FROM_GRID: it charges while the site imports (energy the house's PV does not give);
TO_GRID: it discharges while the site exports; HOLDS: it rests while the car charges (ESS
would run the car off the home battery, which the plan chose not to); FOLLOWS_HOUSE:
everything else, where it stores PV surplus, covers the house or rests with the house on the
grid, which is what plain self-consumption does with the real house too.

A rest with the house on the grid is left to self-consumption on purpose: it keeps energy for
a dearer hour the forecast expects, and on a real house (docs/planner.md, "Replay") such holds
lost a third of the savings: the energy kept overnight was still in the battery when the
morning's PV came and had to be sold at the export price.
"""
from __future__ import annotations

from phaeton.planning.model import Plan

FOLLOWS_HOUSE = "follows_house"
FROM_GRID = "from_grid"
TO_GRID = "to_grid"
HOLDS = "holds"
EPS_KWH = 1e-4


def slot_role(plan: Plan, t: int) -> str:
    net_import = plan.grid_import_kwh[t] - plan.grid_export_kwh[t]
    if plan.battery_charge_kwh[t] > EPS_KWH and net_import > EPS_KWH:
        return FROM_GRID
    if plan.battery_discharge_kwh[t] > EPS_KWH and -net_import > EPS_KWH:
        return TO_GRID
    rests = plan.battery_charge_kwh[t] <= EPS_KWH and plan.battery_discharge_kwh[t] <= EPS_KWH
    if rests and plan.ev_kwh[t] > EPS_KWH:
        return HOLDS
    return FOLLOWS_HOUSE


def traded_kwh(plan: Plan) -> float:
    """Battery energy the plan moves from or to the grid over its slots."""
    total = 0.0
    for t in range(plan.slot_count):
        role = slot_role(plan, t)
        if role == FROM_GRID:
            total += float(plan.battery_charge_kwh[t])
        elif role == TO_GRID:
            total += float(plan.battery_discharge_kwh[t])
    return total
