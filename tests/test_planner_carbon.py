"""Planning for carbon: the "carbon" and "cost_with_carbon_price" objectives against the LP
oracle, the cost objective unchanged, and what a user sees."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from phaeton.planning.model import BatterySpec, EVDemand, GridSpec, PlanProblem
from phaeton.planning.optimizer import plan
from planner_oracle import random_cars_problem, random_problem, solve_lp


def _with_carbon(problem: PlanProblem, rng: np.random.Generator, objective: str,
                 price: float = 0.0) -> PlanProblem:
    n = len(problem.slot_start_s)
    intensity = rng.uniform(50.0, 700.0, n)
    return dataclasses.replace(problem, import_intensity_g_per_kwh=intensity,
                               objective=objective, carbon_price_per_tonne=price)


def _compare(problem: PlanProblem):
    ours = plan(problem)
    best = solve_lp(problem)
    short = ours.shortfall.ev_kwh if ours.shortfall else 0.0
    assert short == pytest.approx(best.shortfall_kwh, abs=1e-5)
    assert ours.co2_kg is not None
    assert ours.co2_kg == pytest.approx(float(np.dot(
        np.asarray(problem.import_intensity_g_per_kwh) / 1000, ours.grid_import_kwh)))
    if best.shortfall_kwh > 1e-6 or best.overload_kwh > 1e-6:
        return ours, best
    gap = 1e-6 * max(1.0, abs(best.objective_value))
    assert ours.objective_value >= best.objective_value - gap
    assert ours.objective_value <= best.objective_value + gap
    return ours, best


@pytest.mark.parametrize("seed", range(20))
def test_carbon_objective_matches_the_lp(seed):
    rng = np.random.default_rng(500 + seed)
    problem = _with_carbon(random_problem(rng, 8 + seed % 17), rng, "carbon")
    ours, best = _compare(problem)
    assert ours.objective == "carbon"
    if best.shortfall_kwh < 1e-6 and best.overload_kwh < 1e-6:
        assert ours.co2_kg == pytest.approx(best.co2_kg, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("seed", range(20))
def test_carbon_price_objective_matches_the_lp(seed):
    rng = np.random.default_rng(700 + seed)
    price = float(rng.uniform(0.0, 800.0))
    problem = _with_carbon(random_problem(rng, 8 + seed % 17), rng, "cost_with_carbon_price",
                           price)
    ours, best = _compare(problem)
    expected = ours.cost_eur + price * ours.co2_kg / 1000.0
    if problem.battery.terminal_value_eur_per_kwh is not None:
        assert ours.objective_value == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_full_days_with_a_car_and_the_carbon_objectives(seed):
    rng = np.random.default_rng(900 + seed)
    base = random_problem(rng, 96)
    base = dataclasses.replace(base, battery=dataclasses.replace(
        base.battery, terminal_value_eur_per_kwh=None))
    for objective in ("carbon", "cost_with_carbon_price"):
        ours, best = _compare(_with_carbon(base, np.random.default_rng(seed), objective, 150.0))
        assert ours.shortfall is None
        assert ours.ev_delivered_kwh == pytest.approx(base.ev.energy_needed_kwh)


@pytest.mark.parametrize("seed", range(4))
def test_two_cars_with_the_carbon_objective_match_the_lp(seed):
    rng = np.random.default_rng(1300 + seed)
    problem = _with_carbon(random_cars_problem(rng, 24, 2), rng, "carbon")
    _compare(problem)


@pytest.mark.parametrize("seed", range(12))
def test_the_cost_objective_is_unchanged_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    problem = random_problem(rng, 8 + seed % 17) if seed % 4 else \
        random_cars_problem(rng, 24, 2, min_kw=4.0 if seed == 4 else 0.0)
    before = plan(problem)
    with_intensity = dataclasses.replace(
        problem, import_intensity_g_per_kwh=rng.uniform(50, 700, len(problem.slot_start_s)))
    after = plan(with_intensity)
    for name in ("battery_charge_kwh", "battery_discharge_kwh", "ev_kwh", "grid_import_kwh",
                 "grid_export_kwh", "soc", "ev_kwh_by_ev"):
        assert np.array_equal(getattr(before, name), getattr(after, name)), name
    assert before.cost_eur == after.cost_eur
    assert after.objective_value == after.cost_eur
    assert before.co2_kg is None and after.co2_kg is not None
    assert before.warnings == after.warnings


def _day_night(objective: str, with_car: bool = True) -> PlanProblem:
    """Quarter hours over a day: cheap, dirty night (0.10 EUR, 700 g/kWh), expensive, clean
    noon (0.40 EUR, 100 g/kWh, e.g. solar and wind elsewhere in the grid), 0.30 / 400 else."""
    hours = np.arange(96) / 4.0
    night = hours < 6
    noon = (hours >= 11) & (hours < 15)
    price = np.where(night, 0.10, np.where(noon, 0.40, 0.30))
    intensity = np.where(night, 700.0, np.where(noon, 100.0, 400.0))
    ev = EVDemand(np.ones(96, bool), 90, 12.0, max_kw=11.0, charge_efficiency=0.9) \
        if with_car else None
    return PlanProblem(
        1.7e9 + 900.0 * np.arange(96), price, np.zeros(96), np.full(96, 0.15), np.zeros(96),
        battery=BatterySpec(capacity_kwh=10, soc_now=0.1, soc_min=0.1, max_charge_kw=5,
                            max_discharge_kw=5, degradation_eur_per_kwh=0.01),
        grid=GridSpec(import_limit_kw=25.0), ev=ev, import_intensity_g_per_kwh=intensity,
        objective=objective)


def test_carbon_objective_charges_at_the_clean_noon_cost_at_the_cheap_night():
    hours = np.arange(96) / 4.0
    night = hours < 6
    noon = (hours >= 11) & (hours < 15)
    cost = plan(_day_night("cost"))
    carbon = plan(_day_night("carbon"))
    for p in (cost, carbon):
        assert p.shortfall is None and p.ev_delivered_kwh == pytest.approx(12.0)
    assert cost.ev_kwh[night].sum() == pytest.approx(cost.ev_kwh.sum())
    assert cost.battery_charge_kwh[night].sum() > 5.0
    assert carbon.ev_kwh[noon].sum() == pytest.approx(carbon.ev_kwh.sum())
    assert carbon.battery_charge_kwh[noon].sum() > 5.0
    assert carbon.battery_charge_kwh[night].sum() < 1e-9
    assert carbon.co2_kg < cost.co2_kg and carbon.cost_eur > cost.cost_eur
    for p in (cost, carbon):  # every objective reports both
        assert p.co2_kg is not None and np.isfinite(p.cost_eur)


def test_carbon_price_moves_from_the_cost_plan_to_the_carbon_plan():
    cheap = plan(dataclasses.replace(_day_night("cost_with_carbon_price"),
                                     carbon_price_per_tonne=0.0))
    cost = plan(_day_night("cost"))
    assert np.allclose(cheap.ev_kwh, cost.ev_kwh) and cheap.cost_eur == pytest.approx(
        cost.cost_eur)
    # 0.30 EUR/kWh more at night than at noon only pays at more than 500 EUR/t (600 g apart)
    dear = plan(dataclasses.replace(_day_night("cost_with_carbon_price"),
                                    carbon_price_per_tonne=1000.0))
    carbon = plan(_day_night("carbon"))
    assert dear.co2_kg == pytest.approx(carbon.co2_kg, rel=1e-6)
    assert cost.co2_kg > dear.co2_kg


def test_unknown_intensities_are_the_mean_of_the_known_ones():
    problem = _day_night("carbon")
    intensity = problem.import_intensity_g_per_kwh.copy()
    intensity[:8] = np.nan
    p = plan(dataclasses.replace(problem, import_intensity_g_per_kwh=intensity))
    mean = float(np.nanmean(intensity))
    assert any("unknown slot(s) taken as the mean" in w for w in p.warnings)
    filled = np.where(np.isfinite(intensity), intensity, mean)
    assert p.co2_kg == pytest.approx(float(np.dot(filled / 1000, p.grid_import_kwh)))


def test_carbon_objective_without_intensity_plans_for_cost():
    problem = dataclasses.replace(_day_night("carbon"), import_intensity_g_per_kwh=None)
    p = plan(problem)
    cost = plan(dataclasses.replace(_day_night("cost"), import_intensity_g_per_kwh=None))
    assert p.co2_kg is None and p.objective == "cost"
    assert any("needs a carbon intensity" in w for w in p.warnings)
    assert np.array_equal(p.ev_kwh, cost.ev_kwh)
    nothing = dataclasses.replace(_day_night("carbon"),
                                  import_intensity_g_per_kwh=np.full(96, np.nan))
    assert plan(nothing).co2_kg is None


def test_bad_objective_and_carbon_price_are_repaired():
    p = plan(dataclasses.replace(_day_night("greenest"), carbon_price_per_tonne=-5))
    assert p.objective == "cost" and any("objective 'greenest'" in w for w in p.warnings)
    q = plan(dataclasses.replace(_day_night("cost_with_carbon_price"),
                                 carbon_price_per_tonne=float("nan")))
    assert any("carbon price" in w for w in q.warnings)
    assert q.cost_eur == pytest.approx(plan(_day_night("cost")).cost_eur)
