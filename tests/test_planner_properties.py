"""Properties of the planner that hold for any input (hypothesis)."""
from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phaeton.planning.baseline import do_nothing, self_consumption
from phaeton.planning.model import BatterySpec, EVDemand, GridSpec, PlanProblem
from phaeton.planning.optimizer import plan

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def problems(draw, with_ev: bool = True, slots=st.integers(4, 48)):
    n = draw(slots)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    imp = rng.uniform(0.0, 0.6, n)
    exp = imp * rng.uniform(-0.2, 1.0, n)
    load = rng.uniform(0.0, 1.0, n)
    pv = np.clip(rng.normal(0.3, 1.0, n), 0.0, None)
    battery = BatterySpec(
        capacity_kwh=draw(st.floats(0.5, 20)), soc_now=draw(st.floats(0, 1)),
        soc_min=draw(st.floats(0, 0.4)), soc_max=draw(st.floats(0.6, 1)),
        max_charge_kw=draw(st.floats(0.2, 8)), max_discharge_kw=draw(st.floats(0.2, 8)),
        charge_efficiency=draw(st.floats(0.7, 1)), discharge_efficiency=draw(st.floats(0.7, 1)),
        degradation_eur_per_kwh=draw(st.floats(0, 0.06)),
        allow_grid_charging=draw(st.booleans()),
        terminal_value_eur_per_kwh=draw(st.floats(0, 0.4)))
    grid = GridSpec(import_limit_kw=draw(st.floats(5, 25)),
                    export_limit_kw=draw(st.floats(0, 10)), export_allowed=draw(st.booleans()))
    ev = None
    if with_ev and draw(st.booleans()):
        arrive = draw(st.integers(0, n - 1))
        departure = draw(st.integers(arrive, n))
        mask = np.zeros(n, dtype=bool)
        mask[arrive:] = True
        ev = EVDemand(mask, departure, draw(st.floats(0, 30)), max_kw=draw(st.floats(1, 11)),
                      charge_efficiency=draw(st.floats(0.8, 1)))
    return PlanProblem(1.7e9 + 900.0 * np.arange(n), imp, exp, load, pv, battery=battery,
                       grid=grid, ev=ev)


def _battery_used(problem: PlanProblem) -> BatterySpec:
    bat = problem.battery
    return dataclasses.replace(bat, soc_min=min(bat.soc_min, bat.soc_now),
                               soc_max=max(bat.soc_max, bat.soc_now))


@SETTINGS
@given(problems())
def test_bounds_hold_in_every_slot(problem):
    p = plan(problem)
    bat = _battery_used(problem)
    hours = p.slot_duration_h
    assert p.soc.min() >= bat.soc_min - 1e-9 and p.soc.max() <= bat.soc_max + 1e-9
    assert np.all(p.battery_charge_kwh <= bat.max_charge_kw * hours + 1e-9)
    assert np.all(p.battery_discharge_kwh <= bat.max_discharge_kw * hours + 1e-9)
    assert np.all(p.battery_charge_kwh * p.battery_discharge_kwh == 0)
    if not bat.allow_grid_charging:
        assert np.all(p.battery_charge_kwh <= np.clip(problem.pv_kwh - problem.load_kwh, 0, None)
                      + 1e-9)
    if not problem.grid.export_allowed:
        assert p.grid_export_kwh.max() == 0
    assert np.all(p.grid_export_kwh <= problem.grid.export_limit_kw * hours + 1e-9)
    # the fuse only gives way when the house alone needs more than grid + PV + battery
    over = p.grid_import_kwh - problem.grid.import_limit_kw * hours
    forced = problem.load_kwh - problem.pv_kwh - bat.max_discharge_kw * hours \
        - problem.grid.import_limit_kw * hours
    assert np.all((over <= 1e-9) | (forced > -1e-9))
    supply = p.grid_import_kwh - p.grid_export_kwh + problem.pv_kwh - p.pv_curtailed_kwh
    demand = problem.load_kwh + p.ev_kwh + p.battery_charge_kwh - p.battery_discharge_kwh
    assert np.allclose(supply, demand)
    assert len(p.reasons) == len(hours) and all(p.reasons)


@SETTINGS
@given(problems())
def test_ev_target_met_whenever_the_plugged_in_time_allows_it(problem):
    # generous fuse: then the need is feasible exactly when full power in the window reaches it
    problem.grid = GridSpec(import_limit_kw=60.0, export_limit_kw=problem.grid.export_limit_kw,
                            export_allowed=problem.grid.export_allowed)
    p = plan(problem)
    ev = problem.ev
    if ev is None:
        assert p.shortfall is None and p.ev_kwh.sum() == 0
        return
    window = ev.plugged_mask & (np.arange(len(ev.plugged_mask)) < ev.departure_slot)
    reachable = ev.max_kw * 0.25 * window.sum() * ev.charge_efficiency
    tol = 1e-6 * max(1.0, reachable)
    if ev.energy_needed_kwh <= reachable + tol:
        assert p.shortfall is None or p.shortfall.ev_kwh <= tol
        assert abs(p.ev_delivered_kwh - ev.energy_needed_kwh) <= tol
    else:
        assert p.shortfall is not None
        assert abs(p.ev_delivered_kwh - reachable) <= tol
    assert np.all(p.ev_kwh[~window] == 0)


@SETTINGS
@given(problems())
def test_never_worse_than_doing_nothing_or_plain_self_consumption(problem):
    p = plan(problem)
    for baseline in (do_nothing(problem), self_consumption(problem)):
        if baseline.shortfall is None and baseline.fuse_overload_kwh.sum() < 1e-9:
            assert p.cost_eur <= baseline.cost_eur + 1e-7


@SETTINGS
@given(problems(), st.floats(0.0, 3.0), st.integers(0, 2**32 - 1))
def test_more_pv_never_raises_the_cost(problem, extra_scale, seed):
    more = dataclasses.replace(problem)
    extra = extra_scale * np.random.default_rng(seed).random(len(problem.pv_kwh))
    more.pv_kwh = problem.pv_kwh + extra
    base, sunnier = plan(problem), plan(more)
    if base.fuse_overload_kwh.sum() > 1e-9:
        return  # penalties aside, overload costs are not part of the objective
    assert (sunnier.shortfall.ev_kwh if sunnier.shortfall else 0.0) <= \
        (base.shortfall.ev_kwh if base.shortfall else 0.0) + 1e-6
    if base.shortfall is None:
        assert sunnier.cost_eur <= base.cost_eur + 1e-7


@SETTINGS
@given(problems(), st.sampled_from([0.25, 0.5, 2.0, 4.0, 8.0]))
def test_prices_scaled_by_a_constant_leave_the_plan_unchanged(problem, factor):
    scaled = dataclasses.replace(
        problem, import_price_eur_per_kwh=problem.import_price_eur_per_kwh * factor,
        export_price_eur_per_kwh=problem.export_price_eur_per_kwh * factor,
        battery=dataclasses.replace(
            problem.battery,
            degradation_eur_per_kwh=problem.battery.degradation_eur_per_kwh * factor,
            terminal_value_eur_per_kwh=problem.battery.terminal_value_eur_per_kwh * factor))
    a, b = plan(problem), plan(scaled)
    assert np.allclose(a.battery_charge_kwh, b.battery_charge_kwh, atol=1e-7)
    assert np.allclose(a.battery_discharge_kwh, b.battery_discharge_kwh, atol=1e-7)
    assert np.allclose(a.ev_kwh, b.ev_kwh, atol=1e-7)
    assert abs(b.cost_eur - factor * a.cost_eur) <= 1e-7 * max(1.0, factor * abs(a.cost_eur))


@SETTINGS
@given(problems(with_ev=False), st.integers(0, 2**32 - 1))
def test_garbage_in_the_arrays_never_raises(problem, seed):
    rng = np.random.default_rng(seed)
    junk = np.array([np.nan, np.inf, -np.inf, -5.0, 1e6])
    for name in ("import_price_eur_per_kwh", "export_price_eur_per_kwh", "load_kwh", "pv_kwh"):
        values = getattr(problem, name).copy()
        hit = rng.random(len(values)) < 0.3
        values[hit] = rng.choice(junk, hit.sum())
        setattr(problem, name, values[: len(values) - int(rng.integers(0, 3))])
    p = plan(problem)
    assert np.isfinite(p.cost_eur)
    assert p.warnings
    assert p.slot_count == len(problem.slot_start_s)
