"""The energy planner's read-only D-Bus paths (`/Planner/*`) as they stand from the moment the
charger's name is owned until the planner has started, a fraction of a second later.

The planner needs numpy; the service loads it after its D-Bus names are owned (the GX's first
look at the charger does not wait for it), but every path exists from the first GetItems on, so
these are the first values: the configured strategy, nothing planned. `PlannerService.state()`
gives the same paths from then on.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from phaeton.planning.knobs import STRATEGY_BY_NAME

# the read-only D-Bus paths `PlannerService.state()` fills:
# path -> (unit suffix for GetText, description)
STATE_PATHS = {
    "/Planner/Strategy": ("", "active battery strategy: 0 off, 1 self-consumption, 2 optimise"),
    "/Planner/TargetSoc": (" %", "battery SoC the plan aims at by the end of this slot"),
    "/Planner/NextSlot": (" s", "unix time the next plan slot starts"),
    "/Planner/PlannedCost": ("", "cost of the plan over its horizon (currency)"),
    "/Planner/PlannedSavings": ("", "doing nothing minus the plan's cost (currency)"),
    "/Planner/Reason": ("", "what the plan does now and why, or why it cannot"),
    "/Planner/DessConflict": ("", "1 while Victron's Dynamic ESS runs the battery"),
    "/Planner/BatterySource": ("", "who commands the battery now: local (phaeton's own plan) "
                                   "or fleet:<schedule id>@<version> (docs/fleet.md)"),
}
REASON_STARTING = "the planner is starting"
SOURCE_LOCAL = "local"


def paths_before_start(planner_config: Mapping[str, Any]) -> dict[str, Any]:
    """The values of `STATE_PATHS` before the planner runs (None = invalid)."""
    values: dict[str, Any] = dict.fromkeys(STATE_PATHS)
    values["/Planner/Strategy"] = STRATEGY_BY_NAME[planner_config["strategy"]]
    values["/Planner/Reason"] = REASON_STARTING
    values["/Planner/DessConflict"] = 0
    values["/Planner/BatterySource"] = SOURCE_LOCAL
    return values
