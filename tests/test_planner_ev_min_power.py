"""EV minimum power: whole slots at >= the charger's minimum, in the cheapest slots.

The LP (tests/planner_oracle.py) has no minimum power, so it is only a lower bound here. The
reference is an exhaustive search over which slots the EV uses: for every subset S of the
plugged-in slots, the best plan that charges in exactly those slots, each at least at the
minimum, is an LP again once the minimum is moved into the load (ev = min + ev', ev' in
[0, max - min], need reduced by the minimum's energy); the cheapest subset is the optimum.
"""
from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
from planner_oracle import random_problem, solve_lp

from phaeton.planning.baseline import do_nothing
from phaeton.planning.model import EVDemand, GridSpec, PlanProblem
from phaeton.planning.optimizer import plan
from phaeton.planning.slot_data import prepare


def exhaustive_min_power(problem: PlanProblem) -> float | None:
    """Least cost over all on/off choices of the plugged-in slots (None: no feasible choice)."""
    data = prepare(problem)
    window = np.flatnonzero(data.ev_cap_kwh > 0)
    assert len(window) <= 12, "exhaustive search is for small cases"
    best = None
    for size in range(1, len(window) + 1):
        for subset in itertools.combinations(window, size):
            on = np.zeros(data.slots, dtype=bool)
            on[list(subset)] = True
            if data.ev_cap_kwh[on].sum() * data.ev_eff < data.ev_need_kwh - 1e-9:
                continue
            at_min = np.where(on, data.ev_min_kwh, 0.0)
            shifted = copy.copy(data)
            shifted.load_kwh = data.load_kwh + at_min
            shifted.ev_cap_kwh = np.where(on, data.ev_cap_kwh - data.ev_min_kwh, 0.0)
            shifted.ev_need_kwh = max(0.0, data.ev_need_kwh - at_min.sum() * data.ev_eff)
            result = solve_lp(shifted)
            if result.shortfall_kwh > 1e-7 or result.overload_kwh > 1e-7:
                continue
            if best is None or result.cost_eur < best:
                best = result.cost_eur
    return best


def small_case(seed: int) -> PlanProblem:
    """8-12 quarter hours, import prices >= 0, an EV with a 4.14 kW minimum and 6-10 slots."""
    rng = np.random.default_rng(seed)
    slots = int(rng.integers(8, 13))
    problem = random_problem(rng, slots, with_ev=False)
    arrive = int(rng.integers(0, slots - 6 + 1))
    departure = int(rng.integers(arrive + 6, min(slots, arrive + 10) + 1))
    mask = np.zeros(slots, dtype=bool)
    mask[arrive:] = True
    max_kw = float(rng.uniform(6, 11))
    reachable = max_kw * 0.25 * (departure - arrive) * 0.9
    problem.ev = EVDemand(mask, departure, float(rng.uniform(0.05, 0.7)) * reachable,
                          max_kw=max_kw, min_kw=4.14, charge_efficiency=0.9)
    problem.grid = GridSpec(import_limit_kw=25.0, export_limit_kw=problem.grid.export_limit_kw,
                            export_allowed=problem.grid.export_allowed)
    return problem


def assert_whole_slots(problem: PlanProblem, p) -> None:
    data = prepare(problem)
    on = p.ev_kwh > 1e-9
    assert np.all(p.ev_kwh[on] >= data.ev_min_kwh[on] - 1e-9)
    assert np.all(p.ev_kwh <= data.ev_cap_kwh + 1e-9)
    needed_ac = data.ev_need_kwh / data.ev_eff
    assert p.ev_kwh.sum() >= needed_ac - 1e-6
    # at most one slot's remainder more: less than one slot at minimum power
    assert p.ev_kwh.sum() <= needed_ac + data.ev_min_kwh.max() + 1e-9


SEEDS = range(12)


@pytest.mark.parametrize("seed", SEEDS)
def test_small_cases_are_close_to_the_exhaustive_optimum(seed):
    problem = small_case(seed)
    p = plan(problem)
    best = exhaustive_min_power(problem)
    assert best is not None
    assert p.shortfall is None
    assert_whole_slots(problem, p)
    lp = solve_lp(problem).cost_eur
    assert p.cost_eur >= lp - 1e-6              # the LP has no minimum: a lower bound
    # within 1 % of the EV's energy bill (the costs themselves can be near zero); on these
    # seeds (and 100 more tried) the plan is in fact the exhaustive optimum
    data = prepare(problem)
    scale = data.ev_need_kwh / data.ev_eff * float(np.mean(data.import_price))
    assert p.cost_eur <= best + 0.01 * scale + 1e-6, (p.cost_eur, best, lp)


@pytest.mark.parametrize("seed", SEEDS)
def test_never_dearer_than_charging_at_once(seed):
    problem = small_case(seed)
    p = plan(problem)
    assert p.cost_eur <= do_nothing(problem).cost_eur + 1e-9


def test_reported_case_is_close_to_the_lp_optimum(tmp_path):
    from test_plan_cli import rebuild, write_config
    problem, p, baseline = rebuild(write_config(tmp_path, ev_target=80))
    assert problem.ev.min_kw > 4.0
    assert_whole_slots(problem, p)
    lp = solve_lp(problem).cost_eur
    assert lp - 1e-6 <= p.cost_eur <= lp * 1.02  # was 3.41 against 2.79 (+22 %)
    assert p.cost_eur < baseline.cost_eur


def flat_price_no_battery(need_kwh: float) -> PlanProblem:
    slots = 96
    mask = np.zeros(slots, dtype=bool)
    mask[:40] = True
    return PlanProblem(
        1.78e9 + 900.0 * np.arange(slots), np.full(slots, 0.30), np.full(slots, 0.08),
        np.full(slots, 0.1), np.zeros(slots),
        ev=EVDemand(mask, 40, need_kwh, max_kw=11.04, min_kw=4.14, charge_efficiency=0.9))


@pytest.mark.parametrize("need", [1.0, 3.7, 10.0, 12.345, 30.0])
def test_flat_price_never_dearer_than_doing_nothing(need):
    """The sample config's situation: rounding used to schedule 0.82 kWh more than needed."""
    problem = flat_price_no_battery(need)
    p = plan(problem)
    assert_whole_slots(problem, p)
    assert p.cost_eur <= do_nothing(problem).cost_eur + 1e-9
    data = prepare(problem)
    needed_ac = need / data.ev_eff
    if needed_ac >= data.ev_min_kwh.max():  # a split keeps the total exact
        assert p.ev_kwh.sum() == pytest.approx(needed_ac, abs=1e-9)


def test_small_need_charges_one_slot_at_the_minimum():
    problem = flat_price_no_battery(0.5)
    p = plan(problem)
    assert_whole_slots(problem, p)
    assert (p.ev_kwh > 0).sum() == 1
    assert p.ev_kwh.max() == pytest.approx(4.14 * 0.25)
    assert any("more than needed" in w for w in p.warnings)
