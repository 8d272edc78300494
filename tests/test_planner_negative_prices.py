"""Strongly negative prices: the battery charges and discharges within one slot to burn energy
through its losses (one after the other, as one inverter can), and the plan is the optimum of
that model (`planner_oracle.solve_lp_one_converter`)."""
from __future__ import annotations

import numpy as np
import pytest

from phaeton.planning.baseline import do_nothing
from phaeton.planning.model import BatterySpec, PlanProblem
from phaeton.planning.optimizer import plan
from planner_oracle import random_problem, solve_lp, solve_lp_one_converter


def _issue_case() -> PlanProblem:
    """The issue's case: two hours at -0.87 / -0.84 EUR/kWh (import = export), house 2.8 kWh/h,
    a full 10 kWh battery, 90 % round trip, 5 kW, 0.02 EUR/kWh wear."""
    return PlanProblem(
        np.array([0.0, 3600.0]), np.array([-0.87, -0.84]), np.array([-0.87, -0.84]),
        np.array([2.8, 2.8]), np.zeros(2),
        battery=BatterySpec.with_round_trip(0.9, capacity_kwh=10, soc_now=1.0, max_charge_kw=5,
                                            max_discharge_kw=5, degradation_eur_per_kwh=0.02))


def _check_executable(problem: PlanProblem, p) -> None:
    """Every mixed slot is a time split of the slot within the battery's power and SoC."""
    bat = problem.battery
    for mix in p.battery_mixes:
        t = mix.slot
        seconds = p.slot_duration_h[t] * 3600.0
        assert 0.0 < mix.first_s < seconds
        assert (mix.first_kw > 0) != (mix.second_kw > 0)
        for kw in (mix.first_kw, mix.second_kw):
            assert -bat.max_discharge_kw - 1e-9 <= kw <= bat.max_charge_kw + 1e-9
        first_kwh = mix.first_kw * mix.first_s / 3600.0
        second_kwh = mix.second_kw * (seconds - mix.first_s) / 3600.0
        assert p.battery_charge_kwh[t] == pytest.approx(max(first_kwh, second_kwh), abs=1e-9)
        assert p.battery_discharge_kwh[t] == pytest.approx(-min(first_kwh, second_kwh), abs=1e-9)
        assert min(bat.soc_min, bat.soc_now) - 1e-9 <= mix.mid_soc \
            <= max(bat.soc_max, bat.soc_now) + 1e-9
    assert np.all(p.soc >= min(bat.soc_min, bat.soc_now) - 1e-9)
    assert np.all(p.soc <= max(bat.soc_max, bat.soc_now) + 1e-9)


def test_issue_case_burns_energy_within_each_slot_at_the_lp_optimum():
    problem = _issue_case()
    p = plan(problem)
    best = solve_lp_one_converter(problem)
    assert do_nothing(problem).cost_eur == pytest.approx(-4.788)
    assert p.cost_eur == pytest.approx(best.cost_eur, abs=1e-9)
    assert p.cost_eur == pytest.approx(-5.038, abs=1e-9)
    # both slots charge and discharge: 5 kW out for 28.4 min, then 5 kW in for 31.6 min
    assert np.all(p.battery_charge_kwh > 2.6) and np.all(p.battery_discharge_kwh > 2.3)
    assert [m.slot for m in p.battery_mixes] == [0, 1]
    assert p.battery_mixes[0].first_kw == pytest.approx(-5.0)
    assert p.battery_mixes[0].second_kw == pytest.approx(5.0)
    assert p.battery_mixes[0].first_s == pytest.approx(3600 * 9 / 19)
    assert "burn energy" in p.reasons[0]
    _check_executable(problem, p)
    # the plain LP charges 5 kW and discharges 4.5 kW at the same time (9.5 kWh through a
    # 5 kW inverter in an hour): cheaper, not executable
    assert solve_lp(problem).cost_eur == pytest.approx(-5.263, abs=1e-9)


def test_positive_prices_never_mix():
    for seed in range(10):
        problem = random_problem(np.random.default_rng(seed), 24)
        assert plan(problem).battery_mixes == ()


def _negative_problem(seed: int, slots: int) -> PlanProblem:
    rng = np.random.default_rng(1000 + seed)
    problem = random_problem(rng, slots, with_ev=seed % 2 == 0)
    imp = rng.uniform(-1.2, 0.4, slots)
    problem.import_price_eur_per_kwh = imp
    problem.export_price_eur_per_kwh = imp - rng.uniform(0.0, 0.2, slots) * (seed % 3 != 0)
    return problem


@pytest.mark.parametrize("seed", range(24))
def test_random_negative_prices_match_the_one_converter_lp(seed):
    problem = _negative_problem(seed, 8 + seed % 17)
    ours = plan(problem)
    best = solve_lp_one_converter(problem)
    short = ours.shortfall.ev_kwh if ours.shortfall else 0.0
    assert short == pytest.approx(best.shortfall_kwh, abs=1e-5)
    _check_executable(problem, ours)
    if best.shortfall_kwh > 1e-6 or best.overload_kwh > 1e-6:
        return
    # the LP may also vary the EV's power within a slot, the plan keeps it flat
    assert ours.cost_eur >= best.cost_eur - 1e-6 * (1 + abs(best.cost_eur))
    assert ours.cost_eur <= best.cost_eur + 1e-6 * (1 + abs(best.cost_eur))
