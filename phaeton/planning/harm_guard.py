"""Do no harm: steer the battery away from plain self-consumption only where it pays, even
with this house's forecast error. Pure.

The plan and plain self-consumption are costed on the same forecast. The plan's expected gain
is the difference. Where the plan trades with the grid (`slot_roles`: charging from it,
discharging into it), a wrong forecast turns part of that trade into a loss: grid energy
bought where PV would have come, battery energy sold that the house then buys back. That risk
is the traded energy times `ERROR_BOUND` times the relative forecast error measured on this
house (a mean absolute error) times the mean gap between import and export price. The plan
steers only when the gain less the risk is above `MARGIN_EUR`; otherwise the battery is left
to ESS (plain self-consumption) and the reason says why.

`ERROR_BOUND` 3: for normally distributed errors the standard deviation is about 1.25 times
the mean absolute error, so three MAE are about 2.4 standard deviations: the trade must pay
unless the forecast is off by more than it is about 99 % of the time. On the replayed house
(docs/planner.md) a bound of 1 or 2.5 let trades through that left a month a few cents dearer
than plain self-consumption; with 3 none did. A plan that does not trade with the grid at all runs as self-consumption
anyway and always steers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from phaeton.planning.model import Plan, PlanProblem
from phaeton.planning.slot_roles import traded_kwh

MARGIN_EUR = 0.05            # per plan (its 24-48 h): below this a trade is not worth the risk
ERROR_BOUND = 3.0            # mean absolute errors the gain must survive (see above)


@dataclass(frozen=True)
class GuardDecision:
    steer: bool
    gain_eur: float
    risk_eur: float
    reason: str = ""


def decide(problem: PlanProblem, plan: Plan, self_consumption: Plan, relative_error: float,
           margin_eur: float = MARGIN_EUR) -> GuardDecision:
    """Whether to steer the battery with `plan` (see the module docstring)."""
    traded = traded_kwh(plan)
    gain = float(self_consumption.cost_eur - plan.cost_eur)
    if traded <= 1e-3:
        return GuardDecision(True, gain, 0.0)
    gap = np.asarray(problem.import_price_eur_per_kwh, dtype=float) \
        - np.asarray(problem.export_price_eur_per_kwh, dtype=float)
    gap = gap[np.isfinite(gap)]
    spread = float(np.clip(gap, 0.0, None).mean()) if gap.size else 0.0
    risk = traded * ERROR_BOUND * max(relative_error, 0.0) * spread
    if gain - risk > margin_eur:
        return GuardDecision(True, gain, risk)
    reason = (f"the battery is left to ESS self-consumption: the plan's trade with the grid "
              f"({traded:.1f} kWh) would save {gain:.2f} over self-consumption, less than the "
              f"{risk:.2f} this house's forecast error ({100 * relative_error:.0f} %) puts at "
              f"risk plus a {margin_eur:.2f} margin")
    return GuardDecision(False, gain, risk, reason)
