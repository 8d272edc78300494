"""The EV minimum power against the MIP optimum, solved by HiGHS.

`tests/planner_oracle.py` states the planner's LP; this file adds the charger's minimum power
to it as a mixed-integer programme: a binary `on` per plugged-in slot with

    min_t * on_t <= ev_t <= max_t * on_t

and the EV total between the need and the need plus one slot's minimum energy (the planner
may charge less than one slot's minimum more than needed when the minimum alone exceeds the
need; with import prices >= 0, as here, charging more never pays, so that upper bound only
matters in that case). Every case below must come out within 0.1 % of that optimum, with each
slot either off or at least at the minimum. No timing is asserted here (see
benchmarks/planner_bench.py --min-power).
"""
from __future__ import annotations

from dataclasses import replace

import highspy
import numpy as np
import pytest
from planner_oracle import random_problem, solve_lp

from phaeton.planning import optimizer
from phaeton.planning.model import BatterySpec, EVDemand, GridSpec, PlanProblem
from phaeton.planning.optimizer import plan
from phaeton.planning.slot_data import SlotData, prepare

_KINDS = ("imp", "over", "exp", "bc", "bd", "ev", "pv", "stored", "on")


def solve_mip(problem: PlanProblem | SlotData, *, overload_penalty: float = 1e4,
              shortfall_penalty: float = 1e3) -> tuple[float, np.ndarray]:
    """(least cost, EV AC kWh per slot) with every EV slot off or within [min, max]."""
    data = problem if isinstance(problem, SlotData) else prepare(problem)
    n = data.slots
    col = {kind: np.arange(n) + i * n for i, kind in enumerate(_KINDS)}
    short = len(_KINDS) * n
    inf = highspy.kHighsInf
    lower, upper, cost = np.zeros(short + 1), np.full(short + 1, inf), np.zeros(short + 1)
    for kind, bound in (("imp", data.import_cap_kwh), ("exp", data.export_cap_kwh),
                        ("bc", data.charge_cap_kwh), ("bd", data.discharge_cap_kwh),
                        ("ev", data.ev_cap_kwh), ("pv", data.pv_kwh),
                        ("stored", np.full(n, data.stored_max_kwh)),
                        ("on", (data.ev_cap_kwh > 0).astype(float))):
        upper[col[kind]] = bound
    lower[col["stored"]] = data.stored_min_kwh
    upper[~np.isfinite(upper)] = inf
    cost[col["imp"]] = data.import_price
    cost[col["exp"]] = -data.export_price
    cost[col["over"]] = overload_penalty
    cost[col["bc"]] = cost[col["bd"]] = data.degradation
    cost[col["stored"][-1]] = -data.terminal_value
    cost[short] = shortfall_penalty
    rows: list[tuple[list[int], list[float], float, float]] = []
    for t in range(n):
        load = float(data.load_kwh[t])
        rows.append(([col[k][t] for k in ("imp", "over", "exp", "pv", "bd", "bc", "ev")],
                     [1, 1, -1, 1, 1, -1, -1], load, load))
        idx = [col["stored"][t], col["bc"][t], col["bd"][t]]
        coef = [1.0, -data.charge_eff, 1.0 / data.discharge_eff]
        if t == 0:
            rows.append((idx, coef, data.stored_now_kwh, data.stored_now_kwh))
        else:
            rows.append((idx + [col["stored"][t - 1]], coef + [-1.0], 0.0, 0.0))
        if data.ev_cap_kwh[t] > 0:
            pair = [col["ev"][t], col["on"][t]]
            rows.append((pair, [1.0, -data.ev_cap_kwh[t]], -inf, 0.0))
            rows.append((pair, [1.0, -data.ev_min_kwh[t]], 0.0, inf))
    rows.append((list(col["ev"]) + [short], [data.ev_eff] * n + [1.0], data.ev_need_kwh, inf))
    rows.append((list(col["ev"]), [1.0] * n, -inf,
                 data.ev_need_kwh / data.ev_eff + float(data.ev_min_kwh.max())))
    highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    highs.setOptionValue("mip_rel_gap", 1e-9)
    highs.setOptionValue("mip_abs_gap", 1e-9)
    highs.addCols(short + 1, cost, lower, upper, 0, np.zeros(0, np.int32),
                  np.zeros(0, np.int32), np.zeros(0))
    starts, index, value = [0], [], []
    for cols, coefs, _, _ in rows:
        index += cols
        value += coefs
        starts.append(len(index))
    highs.addRows(len(rows), np.array([r[2] for r in rows]), np.array([r[3] for r in rows]),
                  len(index), np.array(starts[:-1], np.int32), np.array(index, np.int32),
                  np.array(value, float))
    highs.changeColsIntegrality(n, col["on"].astype(np.int32),
                                np.full(n, highspy.HighsVarType.kInteger))
    highs.run()
    status = highs.getModelStatus()
    assert status == highspy.HighsModelStatus.kOptimal, highs.modelStatusToString(status)
    x = np.asarray(highs.getSolution().col_value)
    assert x[short] < 1e-7, "these cases are all feasible"
    over = x[col["over"]]
    objective = float(np.dot(cost, x)) - float(np.dot(overload_penalty - data.import_price, over))
    return objective + data.terminal_value * data.stored_now_kwh, x[col["ev"]]


def quarter_hours(slots: int) -> np.ndarray:
    return 1.78e9 + 900.0 * np.arange(slots)


def home_battery(**extra) -> BatterySpec:
    spec = dict(capacity_kwh=10.0, soc_now=0.5, soc_min=0.1, soc_max=1.0, max_charge_kw=5.0,
                max_discharge_kw=5.0, charge_efficiency=0.95, discharge_efficiency=0.95,
                degradation_eur_per_kwh=0.02)
    spec.update(extra)
    return BatterySpec(**spec)


def pv_day(slots: int, peak_kwh: float, first_hour: float) -> np.ndarray:
    hour = (first_hour + np.arange(slots) / 4.0) % 24
    return np.clip(np.sin((hour - 6.0) / 12.0 * np.pi), 0.0, None) ** 1.5 * peak_kwh


def min_close_to_max() -> PlanProblem:
    """4.14 kW minimum, 4.6 kW maximum: almost on/off; hourly prices, a battery."""
    rng = np.random.default_rng(21)
    slots = 48
    price = np.repeat(rng.uniform(0.15, 0.40, slots // 4), 4)
    return PlanProblem(quarter_hours(slots), price, 0.3 * price, rng.uniform(0.05, 0.3, slots),
                       pv_day(slots, 1.0, 9.0), battery=home_battery(),
                       grid=GridSpec(17.25, 8.0),
                       ev=EVDemand(np.ones(slots, bool), 40, 9.5, max_kw=4.6, min_kw=4.14,
                                   charge_efficiency=0.9))


def deadline_tight() -> PlanProblem:
    """The need takes 95 % of the time to departure at full power."""
    rng = np.random.default_rng(22)
    slots = 32
    price = rng.uniform(0.10, 0.45, slots)
    need = 0.95 * 11.0 * 0.25 * 24 * 0.9
    return PlanProblem(quarter_hours(slots), price, 0.25 * price, rng.uniform(0.1, 0.4, slots),
                       np.zeros(slots), battery=home_battery(soc_now=0.8),
                       grid=GridSpec(25.0, 8.0),
                       ev=EVDemand(np.ones(slots, bool), 24, need, max_kw=11.0, min_kw=4.14,
                                   charge_efficiency=0.9))


def surplus_below_minimum(need_kwh: float, battery: bool) -> PlanProblem:
    """Midday PV surplus of 0.2-0.9 kWh per quarter hour (below the 1.035 kWh minimum), dear
    import, cheap export: the LP soaks the surplus up in many slots at part power."""
    slots = 40
    pv = pv_day(slots, 1.2, 9.0)
    load = np.full(slots, 0.25)
    price = np.full(slots, 0.32)
    price[28:] = 0.22  # a cheaper evening
    return PlanProblem(quarter_hours(slots), price, np.full(slots, 0.06), load, pv,
                       battery=home_battery(soc_now=0.3, max_charge_kw=2.0,
                                            max_discharge_kw=2.0) if battery else None,
                       grid=GridSpec(17.25, 8.0),
                       ev=EVDemand(np.ones(slots, bool), slots, need_kwh, max_kw=11.0,
                                   min_kw=4.14, charge_efficiency=0.9))


def battery_feeds_the_car() -> PlanProblem:
    """A full battery that can give 1.25 kWh per slot, an evening at flat price: the car is
    best charged where the battery can feed it (several slots at part power in the LP)."""
    slots = 48
    price = np.full(slots, 0.30)
    price[16:24] = 0.35
    return PlanProblem(quarter_hours(slots), price, np.full(slots, 0.05),
                       np.full(slots, 0.12), np.zeros(slots),
                       battery=home_battery(soc_now=1.0, degradation_eur_per_kwh=0.0,
                                            terminal_value_eur_per_kwh=0.10),
                       grid=GridSpec(17.25, 8.0),
                       ev=EVDemand(np.ones(slots, bool), 44, 6.0, max_kw=11.0, min_kw=4.14,
                                   charge_efficiency=0.9))


def random_min_power(seed: int) -> PlanProblem:
    """24-40 random quarter hours with a PV day and a 4.14 kW minimum (random_problem's data)."""
    rng = np.random.default_rng(5000 + seed)
    slots = int(rng.integers(24, 41))
    problem = random_problem(rng, slots, with_ev=False)
    problem.pv_kwh = pv_day(slots, float(rng.uniform(0.3, 2.0)), float(rng.uniform(6, 14)))
    arrive = int(rng.integers(0, slots // 3))
    departure = int(rng.integers(arrive + 8, slots + 1))
    mask = np.zeros(slots, bool)
    mask[arrive:] = True
    max_kw = float(rng.choice([4.6, 7.4, 11.0]))
    reachable = max_kw * 0.25 * (departure - arrive) * 0.9
    problem.ev = EVDemand(mask, departure, float(rng.uniform(0.1, 0.9)) * reachable,
                          max_kw=max_kw, min_kw=4.14, charge_efficiency=0.9)
    problem.grid = replace(problem.grid, import_limit_kw=25.0)
    return problem


def plugged_now(seed: int) -> PlanProblem:
    """24 h from a random hour as the service plans it: the EV plugged in now, leaving at
    07:00; quarter-hourly prices around a daily shape, an evening load peak, a PV day whose
    surplus the LP soaks up in dozens of slots at part power."""
    rng = np.random.default_rng(7000 + seed)
    slots = 96
    first_hour = float(rng.uniform(0, 24))
    hour = (first_hour + np.arange(slots) / 4.0) % 24
    hourly = (0.03 + 0.05 * np.sin((np.arange(slots // 4 + 1) + first_hour - 8) / 24 * 2 * np.pi)
              + rng.normal(0, 0.02, slots // 4 + 1))
    spot = np.interp(np.arange(slots) / 4, np.arange(len(hourly)), hourly)
    load = (0.08 + 0.12 * np.exp(-((hour - 19) / 2.5) ** 2)
            + 0.05 * np.exp(-((hour - 7.5) / 1.5) ** 2) + rng.uniform(0, 0.05, slots))
    pv = (np.clip(np.sin((hour - 6) / 12 * np.pi), 0, None) ** 1.5 * rng.uniform(0.2, 1.5)
          * 6 * 0.85 * 0.25)
    departure = max(12, int(min(slots, ((31 - first_hour) % 24) * 4
                                + 96 * (rng.random() < 0.3))))
    need = float(rng.uniform(0.1, 0.8)) * 11 * 0.25 * departure * 0.9 * 0.5
    return PlanProblem(
        quarter_hours(slots), 1.19 * (spot + 0.15), spot, load, pv,
        battery=BatterySpec(capacity_kwh=float(rng.choice([5.0, 10.0, 15.0])),
                            soc_now=float(rng.uniform(0.1, 0.9)), soc_min=0.1, soc_max=1.0,
                            max_charge_kw=5.0, max_discharge_kw=5.0, charge_efficiency=0.95,
                            discharge_efficiency=0.95, degradation_eur_per_kwh=0.02),
        grid=GridSpec(17.25, 8.0),
        ev=EVDemand(np.ones(slots, bool), departure, need,
                    max_kw=float(rng.choice([7.4, 11.0])), min_kw=4.14, charge_efficiency=0.9))


def reported_case() -> PlanProblem:
    """`phaeton plan` on tests/test_plan_cli.py's config, EV 30 -> 80 %, 6 A x 3 phases."""
    import tempfile
    from pathlib import Path

    from test_plan_cli import rebuild, write_config
    with tempfile.TemporaryDirectory() as folder:
        problem, _, _ = rebuild(write_config(Path(folder), ev_target=80))
    return problem


CASES = {
    "min close to max": min_close_to_max,
    "deadline tight": deadline_tight,
    "PV surplus below the minimum, no battery": lambda: surplus_below_minimum(6.0, False),
    "PV surplus below the minimum, battery": lambda: surplus_below_minimum(9.0, True),
    "battery feeds the car": battery_feeds_the_car,
    "the reported 96-slot case": reported_case,
    "plugged now, PV day (seed 2)": lambda: plugged_now(2),
    "plugged now, PV day (seed 6)": lambda: plugged_now(6),  # 35 slots at part power
    "plugged now, PV day (seed 14)": lambda: plugged_now(14),
    **{f"random {seed}": (lambda seed=seed: random_min_power(seed)) for seed in range(8)},
}


def assert_whole_slots(data: SlotData, ev: np.ndarray) -> None:
    on = ev > 1e-9
    assert np.all(ev[on] >= data.ev_min_kwh[on] - 1e-9), "a slot below the minimum"
    assert np.all(ev <= data.ev_cap_kwh + 1e-9)
    needed_ac = data.ev_need_kwh / data.ev_eff
    assert ev.sum() >= needed_ac - 1e-6
    assert ev.sum() <= needed_ac + data.ev_min_kwh.max() + 1e-9


@pytest.mark.parametrize("name", list(CASES))
def test_plan_is_within_a_thousandth_of_the_mip_optimum(name):
    problem = CASES[name]()
    data = prepare(problem)
    assert data.ev_min_kwh.max() > 0
    p = plan(problem)
    assert p.shortfall is None
    assert_whole_slots(data, p.ev_kwh)
    best, best_ev = solve_mip(problem)
    assert_whole_slots(data, best_ev)  # the oracle states the same rules
    lp = solve_lp(problem).cost_eur
    assert lp <= best + 1e-6                            # the LP relaxation is a lower bound
    assert p.cost_eur >= best - 1e-5                    # the plan is feasible in the MIP
    assert p.cost_eur <= best + 1e-3 * abs(best) + 1e-6, (p.cost_eur, best, lp)


def test_the_minimum_matters_in_these_cases():
    """At least some cases are not solved by the LP alone (the MIP costs more than the LP)."""
    harder = 0
    for name in ("PV surplus below the minimum, no battery", "battery feeds the car",
                 "min close to max", "deadline tight"):
        problem = CASES[name]()
        harder += solve_mip(problem)[0] > solve_lp(problem).cost_eur + 1e-4
    assert harder >= 2


@pytest.mark.parametrize("name", ["the reported 96-slot case", "random 3", "deadline tight"])
def test_batched_solves_equal_single_solves(name):
    """`_Batch` (many reward solves in one DP sweep) gives what `_Solver` gives, row by row."""
    data = prepare(CASES[name]())
    solver = optimizer._Solver(data)
    dep = solver.departure
    rewards = np.array([-0.2, 0.0, 0.05, 0.12, 0.2, 0.31, 0.5, 2.0, solver.max_reward])
    rows = len(rewards)
    loads = np.tile(data.load_kwh[:dep], (rows, 1))
    caps = np.tile(data.ev_cap_kwh[:dep], (rows, 1))
    batch = optimizer._Batch(solver).solve(loads, caps, rewards)
    for reward, together in zip(rewards, batch):
        alone = solver.solve_with_reward(float(reward))
        assert together.cost == pytest.approx(alone.cost, rel=1e-9, abs=1e-9)
        assert together.kwh == pytest.approx(alone.kwh, rel=1e-9, abs=1e-9)
        np.testing.assert_allclose(together.ev, alone.ev, atol=1e-9)
        np.testing.assert_allclose(together.changes, alone.changes, atol=1e-9)


def test_batched_solves_without_a_battery():
    data = prepare(surplus_below_minimum(6.0, False))
    solver = optimizer._Solver(data)
    dep = solver.departure
    rewards = np.array([0.0, 0.1, 0.3, 1.0])
    loads = np.tile(data.load_kwh[:dep], (4, 1))
    caps = np.tile(data.ev_cap_kwh[:dep], (4, 1))
    for reward, together in zip(rewards, optimizer._Batch(solver).solve(loads, caps, rewards)):
        alone = solver.solve_with_reward(float(reward))
        assert together.cost == pytest.approx(alone.cost, rel=1e-9, abs=1e-9)
        np.testing.assert_allclose(together.ev, alone.ev, atol=1e-9)
