"""The optimiser's objectives, by their GX setting number (`/Settings/Phaeton/Planner/Objective`
0, 1, 2): what `PlanProblem.objective` names. Its own module so the config schema can list
them without importing the planner (and numpy)."""
from __future__ import annotations

OBJECTIVES = ("cost", "carbon", "cost_with_carbon_price")
