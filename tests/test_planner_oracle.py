"""The optimizer against the same model solved as a linear programme by HiGHS."""
from __future__ import annotations

import numpy as np
import pytest

from phaeton.planning.optimizer import plan
from phaeton.planning.model import EVDemand, GridSpec
from planner_oracle import random_problem, solve_lp


def _feasible_case(seed: int, slots: int):
    rng = np.random.default_rng(seed)
    return random_problem(rng, slots)


@pytest.mark.parametrize("seed", range(40))
def test_plan_cost_matches_the_lp_optimum(seed):
    slots = 8 + seed % 17  # 8..24 slots
    problem = _feasible_case(seed, slots)
    ours = plan(problem)
    best = solve_lp(problem)
    shortfall = ours.shortfall.ev_kwh if ours.shortfall else 0.0
    assert shortfall == pytest.approx(best.shortfall_kwh, abs=1e-5)
    if best.shortfall_kwh > 1e-6 or best.overload_kwh > 1e-6:
        return  # penalised objectives are not comparable; the shortfall is
    # never below the LP optimum (the plan is feasible in the LP) and within 1 % of it
    assert ours.cost_eur >= best.cost_eur - 1e-6
    assert ours.cost_eur <= best.cost_eur + 0.01 * abs(best.cost_eur) + 1e-6


def test_ev_shortfall_equals_the_lp_maximum_deliverable():
    rng = np.random.default_rng(7)
    problem = random_problem(rng, 16)
    problem.ev = EVDemand(np.ones(16, bool), 8, 500.0, max_kw=7.0, charge_efficiency=0.9)
    ours = plan(problem)
    best = solve_lp(problem)
    assert best.shortfall_kwh > 1.0
    assert ours.shortfall.ev_kwh == pytest.approx(best.shortfall_kwh, abs=1e-5)
    assert ours.ev_delivered_kwh == pytest.approx(500.0 - best.shortfall_kwh, abs=1e-5)


def test_fuse_limited_ev_matches_the_lp():
    rng = np.random.default_rng(11)
    problem = random_problem(rng, 24)
    problem.grid = GridSpec(import_limit_kw=4.0, export_limit_kw=4.0)
    problem.load_kwh = np.full(24, 0.5)
    problem.ev = EVDemand(np.ones(24, bool), 20, 12.0, max_kw=11.0, charge_efficiency=0.9)
    ours = plan(problem)
    best = solve_lp(problem)
    assert ours.grid_import_kwh.max() <= 1.0 + 1e-9
    if best.shortfall_kwh < 1e-6:
        assert ours.shortfall is None
        assert ours.cost_eur == pytest.approx(best.cost_eur, rel=0.01, abs=1e-6)
    else:
        assert ours.shortfall.ev_kwh == pytest.approx(best.shortfall_kwh, abs=1e-5)


@pytest.mark.parametrize("seed", range(3))
def test_full_day_with_ev_matches_the_lp(seed):
    problem = random_problem(np.random.default_rng(100 + seed), 96)
    ours = plan(problem)
    best = solve_lp(problem)
    assert best.shortfall_kwh < 1e-6 and ours.shortfall is None
    assert ours.cost_eur == pytest.approx(best.cost_eur, rel=0.01, abs=1e-6)
    assert ours.ev_delivered_kwh == pytest.approx(problem.ev.energy_needed_kwh)
