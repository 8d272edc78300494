"""Several cars in one plan, against the multi-car LP / MIP solved by HiGHS
(tests/planner_oracle.py `solve_lp`, with `min_power=True` for the chargers' minimum)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from planner_oracle import random_cars_problem, random_problem, solve_lp

from phaeton.planning.baseline import do_nothing, self_consumption
from phaeton.planning.model import EVDemand, GridSpec, PlanProblem
from phaeton.planning.optimizer import plan
from phaeton.planning.slot_data import prepare

SLOT_H = 0.25


def _base(slots: int, seed: int = 3) -> PlanProblem:
    rng = np.random.default_rng(seed)
    problem = random_problem(rng, slots, with_ev=False)
    problem.grid = GridSpec(import_limit_kw=17.25, export_limit_kw=8.0)
    return problem


def _mask(slots: int, start: int, end: int | None = None) -> np.ndarray:
    mask = np.zeros(slots, dtype=bool)
    mask[start:end] = True
    return mask


def _check_physics(problem: PlanProblem, p) -> None:
    data = prepare(problem)
    assert p.ev_kwh_by_ev.shape == (len(problem.demands), data.slots)
    np.testing.assert_allclose(p.ev_kwh_by_ev.sum(0), p.ev_kwh, atol=1e-9)
    assert p.ev_delivered_kwh == pytest.approx(sum(p.ev_delivered_by_ev_kwh), abs=1e-9)
    assert len(p.shortfalls) == len(problem.demands)
    for row, car in zip(p.ev_kwh_by_ev, data.evs):
        assert np.all(row >= -1e-9)
        assert np.all(row <= car.cap_kwh + 1e-9)  # only plugged in, before departure, <= max
        on = row > 1e-9
        assert np.all(row[on] >= car.min_kwh[on] - 1e-7)  # off or at least the minimum
    assert np.all(p.ev_kwh <= data.ev_shared_cap_kwh + 1e-7)


def _assert_near_oracle(problem: PlanProblem, p, best) -> None:
    ours_short = sum(s.ev_kwh for s in p.shortfalls if s is not None)
    assert ours_short == pytest.approx(best.shortfall_kwh, abs=1e-4)
    if best.shortfall_kwh > 1e-6 or best.overload_kwh > 1e-6:
        return  # penalised objectives are not comparable; the shortfall is
    assert all(s is None for s in p.shortfalls)
    for car, delivered in zip(problem.demands, p.ev_delivered_by_ev_kwh):
        assert delivered >= car.energy_needed_kwh - 1e-5
    assert p.cost_eur >= best.cost_eur - 1e-6 * (1 + abs(best.cost_eur))
    assert p.cost_eur <= best.cost_eur + 0.01 * abs(best.cost_eur) + 1e-6


def test_problem_interface():
    problem = _base(8)
    car = EVDemand(np.ones(8, bool), 8, 2.0, name="left")
    assert problem.demands == ()
    problem.ev = car
    assert problem.demands == (car,)
    with pytest.raises(ValueError):
        replace(problem, evs=(car,))
    problem.ev = None
    problem.evs = (car, replace(car, name="right"))
    assert [d.name for d in problem.demands] == ["left", "right"]


@pytest.mark.parametrize("min_kw", [0.0, 4.1])
@pytest.mark.parametrize("shared", [None, 7.4])
def test_one_car_through_evs_is_the_same_plan_as_through_ev(min_kw, shared):
    slots = 48
    problem = _base(slots, seed=5)
    car = EVDemand(_mask(slots, 4), 40, 9.0, max_kw=11.0, min_kw=min_kw)
    one = plan(replace(problem, ev=car, ev_shared_max_kw=shared))
    many = plan(replace(problem, evs=(car,), ev_shared_max_kw=shared))
    for name in ("battery_charge_kwh", "battery_discharge_kwh", "ev_kwh", "grid_import_kwh",
                 "grid_export_kwh", "soc", "ev_kwh_by_ev"):
        np.testing.assert_array_equal(getattr(one, name), getattr(many, name))
    assert one.cost_eur == many.cost_eur and one.shortfall == many.shortfall
    assert one.reasons == many.reasons and one.warnings == many.warnings
    if shared is not None:  # a shared limit on one car is that car's power limit
        alone = plan(replace(problem, ev=replace(car, max_kw=shared)))
        np.testing.assert_array_equal(alone.ev_kwh, one.ev_kwh)


def test_two_cars_with_different_departures_and_targets():
    slots = 64
    problem = _base(slots)
    problem.evs = (EVDemand(_mask(slots, 0), 30, 8.0, max_kw=7.4, name="a"),
                   EVDemand(_mask(slots, 10), 60, 20.0, max_kw=11.0, charge_efficiency=0.85,
                            name="b"))
    p = plan(problem)
    _check_physics(problem, p)
    assert p.ev_delivered_by_ev_kwh == pytest.approx((8.0, 20.0), abs=1e-5)
    assert p.ev_kwh_by_ev[0, 30:].sum() == 0 and p.ev_kwh_by_ev[1, :10].sum() == 0
    assert p.shortfall is None and p.shortfalls == (None, None)
    _assert_near_oracle(problem, p, solve_lp(problem))


def test_three_cars():
    slots = 96
    problem = _base(slots, seed=8)
    problem.evs = (EVDemand(_mask(slots, 0), 40, 10.0, max_kw=11.0, name="a"),
                   EVDemand(_mask(slots, 20), 96, 25.0, max_kw=7.4, name="b"),
                   EVDemand(_mask(slots, 50, 90), 80, 6.0, max_kw=3.7, name="c"))
    problem.ev_shared_max_kw = 16.0
    p = plan(problem)
    _check_physics(problem, p)
    assert p.ev_delivered_by_ev_kwh == pytest.approx((10.0, 25.0, 6.0), abs=1e-5)
    _assert_near_oracle(problem, p, solve_lp(problem))


def test_shared_limit_binds():
    slots = 32
    problem = _base(slots, seed=4)
    problem.import_price_eur_per_kwh = np.where(np.arange(slots) < 8, 0.05, 0.40)
    problem.export_price_eur_per_kwh = np.zeros(slots)
    cars = (EVDemand(np.ones(slots, bool), slots, 15.0, max_kw=11.0, name="a"),
            EVDemand(np.ones(slots, bool), slots, 15.0, max_kw=11.0, name="b"))
    free = plan(replace(problem, evs=cars))
    assert free.ev_kwh.max() > 11.0 * SLOT_H + 1e-6  # without the limit both run in cheap slots
    problem = replace(problem, evs=cars, ev_shared_max_kw=11.0)
    p = plan(problem)
    _check_physics(problem, p)
    assert p.ev_kwh.max() == pytest.approx(11.0 * SLOT_H)
    assert p.cost_eur > free.cost_eur
    _assert_near_oracle(problem, p, solve_lp(problem))


def test_one_car_with_a_minimum_power_against_the_mip():
    slots = 48
    problem = _base(slots, seed=6)
    problem.evs = (EVDemand(_mask(slots, 0), 40, 9.0, max_kw=11.0, min_kw=4.1, name="min"),
                   EVDemand(_mask(slots, 8), 48, 12.0, max_kw=7.4, name="free"))
    problem.ev_shared_max_kw = 13.0
    p = plan(problem)
    _check_physics(problem, p)
    on = p.ev_kwh_by_ev[0] > 1e-9
    assert on.any() and np.all(p.ev_kwh_by_ev[0][on] >= 4.1 * SLOT_H - 1e-7)
    _assert_near_oracle(problem, p, solve_lp(problem, min_power=True))


def test_infeasible_targets_are_stated_per_car():
    slots = 32
    problem = _base(slots, seed=9)
    problem.evs = (
        EVDemand(np.zeros(slots, bool), slots, 5.0, name="away"),            # not plugged in
        EVDemand(_mask(slots, 0), 8, 30.0, max_kw=7.4, name="short"),         # too little time
        EVDemand(_mask(slots, 0), slots, 10.0, max_kw=11.0, name="ok"))
    p = plan(problem)
    _check_physics(problem, p)
    away, short, ok = p.shortfalls
    assert away.ev_kwh == pytest.approx(5.0) and "not plugged in" in away.reason
    assert short.ev_kwh == pytest.approx(30.0 - 7.4 * 2.0 * 0.9, abs=1e-5)
    assert "not enough time" in short.reason
    assert ok is None and p.ev_delivered_by_ev_kwh[2] == pytest.approx(10.0, abs=1e-5)
    assert p.shortfall.ev_kwh == pytest.approx(away.ev_kwh + short.ev_kwh)
    assert "away:" in p.shortfall.reason and "short:" in p.shortfall.reason
    best = solve_lp(problem)
    np.testing.assert_allclose(best.shortfall_by_ev_kwh, [s.ev_kwh if s else 0.0
                                                          for s in p.shortfalls], atol=1e-5)


def test_shared_limit_makes_the_targets_infeasible():
    slots = 16
    problem = _base(slots, seed=10)
    problem.evs = (EVDemand(np.ones(slots, bool), slots, 12.0, max_kw=11.0, name="a"),
                   EVDemand(np.ones(slots, bool), 8, 12.0, max_kw=11.0, name="b"))
    problem.ev_shared_max_kw = 4.0  # 16 kWh in all, 8 of them before b leaves
    p = plan(problem)
    _check_physics(problem, p)
    best = solve_lp(problem)
    assert best.shortfall_kwh > 1.0
    _assert_near_oracle(problem, p, best)
    assert any(s is not None and "shared" in s.reason for s in p.shortfalls)


@pytest.mark.parametrize("seed", range(24))
def test_random_cars_match_the_lp(seed):
    rng = np.random.default_rng(1000 + seed)
    problem = random_cars_problem(rng, 12 + seed % 29, 2 + seed % 2, shared=seed % 3 != 0)
    p = plan(problem)
    assert not any("optimizer failed" in w for w in p.warnings)
    _check_physics(problem, p)
    _assert_near_oracle(problem, p, solve_lp(problem))


@pytest.mark.parametrize("seed", [0, 1, 3, 4, 7, 9, 12, 15])
def test_random_cars_with_a_minimum_match_the_mip(seed):
    rng = np.random.default_rng(seed)
    problem = random_cars_problem(rng, 32, 2, shared=seed % 3 != 0, min_kw=4.1)
    p = plan(problem)
    _check_physics(problem, p)
    best = solve_lp(problem, min_power=True)
    assert best.shortfall_kwh < 1e-6  # these seeds are feasible
    _assert_near_oracle(problem, p, best)


def test_baselines_share_the_limit():
    slots = 16
    problem = _base(slots)
    problem.evs = (EVDemand(np.ones(slots, bool), slots, 8.0, max_kw=11.0),
                   EVDemand(np.ones(slots, bool), slots, 8.0, max_kw=11.0))
    problem.ev_shared_max_kw = 11.0
    for baseline in (do_nothing, self_consumption):
        p = baseline(problem)
        assert p.ev_kwh.max() <= 11.0 * SLOT_H + 1e-9
        assert p.ev_delivered_by_ev_kwh == pytest.approx((8.0, 8.0))


def test_bad_shared_limit_is_repaired():
    slots = 8
    problem = _base(slots)
    problem.evs = (EVDemand(np.ones(slots, bool), slots, 2.0),
                   EVDemand(np.ones(slots, bool), slots, 2.0))
    problem.ev_shared_max_kw = float("nan")
    p = plan(problem)
    assert any("shared limit" in w for w in p.warnings)
    assert p.shortfalls == (None, None)


@pytest.mark.xfail(reason="open: the rounding leaves 1.22 kWh missing where the MIP leaves "
                   "0.72 (the house itself overloads the fuse; not analysed yet)", strict=True)
@pytest.mark.parametrize("seed", [6])
def test_random_cars_with_a_minimum_house_over_the_fuse(seed):
    """Seed 6: the house load itself overloads the fuse; the plan may not leave more
    missing than the MIP does (0.72 kWh) by more than a hundredth of a kWh."""
    rng = np.random.default_rng(seed)
    problem = random_cars_problem(rng, 32, 2, shared=seed % 3 != 0, min_kw=4.1)
    p = plan(problem)
    _check_physics(problem, p)
    best = solve_lp(problem, min_power=True)
    ours = sum(s.ev_kwh for s in p.shortfalls if s is not None)
    assert ours <= best.shortfall_kwh + 1e-2, (ours, best.shortfall_kwh)


def _mixed_minimums(seed: int) -> PlanProblem:
    """2 or 3 cars, 32-96 slots, each car with a minimum (4.1 or 1.4 kW) or none."""
    rng = np.random.default_rng(4000 + seed)
    cars = 2 + seed % 2
    slots = int(rng.choice([32, 48, 64, 96]))
    problem = random_cars_problem(rng, slots, cars, shared=seed % 4 != 0)
    minimums = rng.choice([0.0, 1.4, 4.1], size=cars)
    minimums[0] = 4.1  # at least one car with a minimum
    problem.evs = tuple(replace(car, min_kw=float(min(m, car.max_kw)))
                        for car, m in zip(problem.evs, minimums))
    return problem


@pytest.mark.parametrize("seed", range(16))
def test_random_cars_with_mixed_minimums_match_the_mip(seed):
    problem = _mixed_minimums(seed)
    p = plan(problem)
    assert not any("optimizer failed" in w for w in p.warnings)
    _check_physics(problem, p)
    best = solve_lp(problem, min_power=True)
    if best.shortfall_kwh > 1e-6 or best.overload_kwh > 1e-6:
        ours = sum(s.ev_kwh for s in p.shortfalls if s is not None)
        assert ours <= best.shortfall_kwh + 1e-2
        return
    _assert_near_oracle(problem, p, best)


def test_a_bug_inside_the_optimizer_falls_back_to_self_consumption(monkeypatch, caplog):
    """A TypeError from a broken input deep inside (here a car's departure that is not a
    number, which the input cleaning would never produce) gives the self-consumption plan
    with a warning and a logged traceback, not an exception."""
    import phaeton.planning.optimizer as optimizer

    real_prepare = optimizer.prepare

    def broken(problem):
        data = real_prepare(problem)
        data.evs[1].departure = None  # max() over departures: TypeError
        return data

    monkeypatch.setattr(optimizer, "prepare", broken)
    slots = 16
    problem = _base(slots)
    problem.evs = (EVDemand(np.ones(slots, bool), slots, 4.0, name="a"),
                   EVDemand(np.ones(slots, bool), slots, 4.0, name="b"))
    with caplog.at_level("ERROR"):
        p = optimizer.plan(problem)
    assert any(w.startswith("optimizer failed (TypeError") for w in p.warnings)
    assert p.cost_eur == pytest.approx(self_consumption(real_prepare(problem)).cost_eur)
    assert "planner optimizer failed" in caplog.text and "Traceback" in caplog.text
