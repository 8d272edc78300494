"""The planning model as a linear programme, solved by HiGHS: the oracle for the optimizer.

Test and benchmark only (`highspy` is not a runtime dependency; the GX has no LP solver). It
reads the same cleaned SlotData the optimizer uses, so both solve the same model:

per slot t (energies in kWh): grid import imp in [0, F], fuse overload over >= 0 (penalised),
export exp in [0, X], battery charge bc in [0, Pc] and discharge bd in [0, Pd] (AC side), EV
energy ev in [0, cap], PV used pv in [0, P], stored energy E at the end of the slot in [lo, hi];
one EV shortfall variable short >= 0 (per car; several cars: see `solve_lp`).

    imp + over - exp + pv + bd - bc - ev = load                     (energy balance)
    E_t = E_{t-1} + eta_c bc - bd / eta_d                           (storage)
    eta_ev * sum(ev) + short = need                                 (EV by departure)
    minimise sum(c imp - s exp + deg (bc + bd) + M over) - v (E_T - E_0) + S short

The LP may charge and discharge in the same slot; with import prices >= 0 that never pays, so
its optimum equals the optimizer's. With strongly negative prices it does pay, and this LP
then charges and discharges at up to full power at the same time, which one battery inverter
cannot do; `solve_lp_one_converter` states the executable model (the slot split in time
between a charging and a discharging part), whose optimum is the optimizer's.

Objectives (`PlanProblem.objective`), stated here from the problem's own fields: "cost" (the
prices above), "carbon" (kg CO2 of import, intensity g/kWh / 1000, unknown slots at the known
ones' mean; money as a tie-break at `CARBON_TIE_BREAK_KG_PER_EUR`, stored energy valued at the
mean intensity times the discharge efficiency plus the tie-break of the money value),
"cost_with_carbon_price" (import price + price per tonne x intensity / 1e6).
"""
from __future__ import annotations

from dataclasses import dataclass

import highspy
import numpy as np

from phaeton.planning.model import (CARBON_TIE_BREAK_KG_PER_EUR, BatterySpec, EVDemand,
                                    GridSpec, PlanProblem)
from phaeton.planning.slot_data import SlotData, prepare

_KINDS = ("imp", "over", "exp", "bc", "bd", "pv", "stored")


@dataclass
class OracleResult:
    cost_eur: float            # objective without the overload and shortfall penalties
    shortfall_kwh: float       # over all cars
    overload_kwh: float
    grid_import_kwh: np.ndarray
    grid_export_kwh: np.ndarray
    battery_ac_kwh: np.ndarray  # charge - discharge
    ev_kwh: np.ndarray          # all cars together
    stored_kwh: np.ndarray      # at the end of each slot
    ev_by_ev_kwh: np.ndarray | None = None   # cars x slots
    shortfall_by_ev_kwh: np.ndarray | None = None
    objective_value: float | None = None     # what the LP minimised, without the penalties
    co2_kg: float | None = None              # import x intensity
    money_eur: float | None = None           # the solution's cost in money


@dataclass
class _Prices:
    """The objective's prices (per kWh imported / exported, per AC kWh through the battery,
    per kWh left stored) and the money ones, and kg CO2 per kWh imported (None: unknown)."""

    imp: np.ndarray
    exp: np.ndarray
    deg: float
    terminal: float
    money_imp: np.ndarray
    money_exp: np.ndarray
    money_deg: float
    money_terminal: float
    kg: np.ndarray | None


def objective_prices(problem: PlanProblem | None, data: SlotData) -> _Prices:
    """The objective as PlanProblem documents it, from the problem's raw carbon fields."""
    money_imp = data.import_price if data.money_import_price is None else data.money_import_price
    money_exp = data.export_price if data.money_export_price is None else data.money_export_price
    money_deg = data.degradation if data.money_degradation is None else data.money_degradation
    money_terminal = data.terminal_value if data.money_terminal_value is None \
        else data.money_terminal_value
    kg = None
    raw = None if problem is None else problem.import_intensity_g_per_kwh
    if raw is not None:
        g = np.asarray(raw, dtype=float)
        if np.isfinite(g).any():
            g = np.where(np.isfinite(g), g, np.mean(g[np.isfinite(g)]))
            kg = np.maximum(g, 0.0) / 1000.0
    same = _Prices(money_imp, money_exp, money_deg, money_terminal, money_imp, money_exp,
                   money_deg, money_terminal, kg)
    objective = "cost" if problem is None or kg is None else problem.objective
    if objective == "carbon":
        w = CARBON_TIE_BREAK_KG_PER_EUR
        terminal = (float(np.mean(kg)) * data.discharge_eff + w * money_terminal) \
            if data.capacity_kwh > 0 else 0.0
        return _Prices(kg + w * money_imp, w * money_exp, w * money_deg, terminal, money_imp,
                       money_exp, money_deg, money_terminal, kg)
    if objective == "cost_with_carbon_price":
        imp = money_imp + problem.carbon_price_per_tonne * kg / 1000.0
        terminal = money_terminal
        if problem.battery is not None and problem.battery.terminal_value_eur_per_kwh is None \
                and data.capacity_kwh > 0:
            terminal = float(np.mean(imp)) * data.discharge_eff
        return _Prices(imp, money_exp, money_deg, terminal, money_imp, money_exp, money_deg,
                       money_terminal, kg)
    return same


def _carbon_report(prices: _Prices, data: SlotData, imp: np.ndarray, exp: np.ndarray,
                   charge: np.ndarray, discharge: np.ndarray, stored_end: float
                   ) -> tuple[float | None, float]:
    """(co2 kg, money EUR) of a solution."""
    co2 = None if prices.kg is None else float(np.dot(prices.kg, imp))
    money = float(np.dot(prices.money_imp, imp) - np.dot(prices.money_exp, exp)
                  + prices.money_deg * (charge.sum() + discharge.sum())
                  - prices.money_terminal * (stored_end - data.stored_now_kwh))
    return co2, money


def solve_lp(problem: PlanProblem | SlotData, *, overload_penalty: float = 1e4,
             shortfall_penalty: float = 1e3, min_power: bool = False) -> OracleResult:
    """The LP optimum; with several cars (`SlotData.evs`) one EV column block, one shortfall
    and one "by departure" row per car, and the cars' shared limit as one row per slot:

        sum_k ev_k,t <= shared_t

    With `min_power`, a mixed-integer programme instead: a binary `on` per car and plugged-in
    slot with min * on <= ev <= max * on, each car's total between its need and its need plus
    one slot's minimum energy (as tests/test_optimizer_min_power.py's single-car MIP)."""
    data = problem if isinstance(problem, SlotData) else prepare(problem)
    prices = objective_prices(None if isinstance(problem, SlotData) else problem, data)
    n = data.slots
    cars = data.evs
    n_cars = len(cars)
    col = {kind: np.arange(n) + i * n for i, kind in enumerate(_KINDS)}
    base = len(_KINDS) * n
    ev_col = [base + k * n + np.arange(n) for k in range(n_cars)]
    base += n_cars * n
    on_col = [base + k * n + np.arange(n) for k in range(n_cars)] if min_power else []
    base += len(on_col) * n
    short = base + np.arange(n_cars)
    ncols = base + n_cars
    inf = highspy.kHighsInf

    lower = np.zeros(ncols)
    upper = np.full(ncols, inf)
    cost = np.zeros(ncols)
    upper[col["imp"]] = data.import_cap_kwh
    upper[col["exp"]] = data.export_cap_kwh
    upper[col["bc"]] = data.charge_cap_kwh
    upper[col["bd"]] = data.discharge_cap_kwh
    for k, car in enumerate(cars):
        upper[ev_col[k]] = car.cap_kwh
        if min_power:
            upper[on_col[k]] = (car.cap_kwh > 0).astype(float)
    upper[col["pv"]] = data.pv_kwh
    lower[col["stored"]] = data.stored_min_kwh
    upper[col["stored"]] = data.stored_max_kwh
    upper[~np.isfinite(upper)] = inf
    cost[col["imp"]] = prices.imp
    cost[col["exp"]] = -prices.exp
    cost[col["over"]] = overload_penalty
    cost[col["bc"]] = prices.deg
    cost[col["bd"]] = prices.deg
    cost[col["stored"][-1]] = -prices.terminal
    cost[short] = shortfall_penalty

    rows, cols, vals, row_lo, row_hi = [], [], [], [], []

    def add_row(indices, coefficients, low, high=None):
        r = len(row_lo)
        rows.extend([r] * len(indices))
        cols.extend(int(i) for i in indices)
        vals.extend(coefficients)
        row_lo.append(low)
        row_hi.append(low if high is None else high)

    shared = data.ev_shared_cap_kwh
    for t in range(n):
        add_row([col["imp"][t], col["over"][t], col["exp"][t], col["pv"][t], col["bd"][t],
                 col["bc"][t]] + [c[t] for c in ev_col], [1, 1, -1, 1, 1, -1] + [-1] * n_cars,
                data.load_kwh[t])
        idx = [col["stored"][t], col["bc"][t], col["bd"][t]]
        coef = [1.0, -data.charge_eff, 1.0 / data.discharge_eff]
        if t == 0:
            add_row(idx, coef, data.stored_now_kwh)
        else:
            add_row(idx + [col["stored"][t - 1]], coef + [-1.0], 0.0)
        if n_cars > 1 and shared is not None and np.isfinite(shared[t]):
            add_row([c[t] for c in ev_col], [1.0] * n_cars, -inf, float(shared[t]))
        for k, car in enumerate(cars):
            if min_power and car.cap_kwh[t] > 0:
                pair = [ev_col[k][t], on_col[k][t]]
                add_row(pair, [1.0, -car.cap_kwh[t]], -inf, 0.0)
                add_row(pair, [1.0, -car.min_kwh[t]], 0.0, inf)
    for k, car in enumerate(cars):
        if min_power:
            add_row(list(ev_col[k]) + [short[k]], [car.eff] * n + [1.0], car.need_kwh, inf)
            add_row(list(ev_col[k]), [1.0] * n, -inf,
                    car.need_kwh / car.eff + float(car.min_kwh.max()))
        else:
            add_row(list(ev_col[k]) + [short[k]], [car.eff] * n + [1.0], car.need_kwh)

    highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    if min_power:
        highs.setOptionValue("mip_rel_gap", 1e-7)
        highs.setOptionValue("mip_abs_gap", 1e-9)
        highs.setOptionValue("time_limit", 120.0)
    highs.addCols(ncols, cost, lower, upper, 0, np.zeros(0, np.int32), np.zeros(0, np.int32),
                  np.zeros(0))
    if min_power and on_col:
        binaries = np.concatenate(on_col).astype(np.int32)
        highs.changeColsIntegrality(len(binaries), binaries,
                                    np.full(len(binaries), highspy.HighsVarType.kInteger))
    order = np.argsort(rows, kind="stable")
    rows_arr = np.asarray(rows)[order]
    starts = np.searchsorted(rows_arr, np.arange(len(row_lo))).astype(np.int32)
    highs.addRows(len(row_lo), np.asarray(row_lo, float), np.asarray(row_hi, float), len(vals),
                  starts, np.asarray(cols, np.int32)[order], np.asarray(vals, float)[order])
    highs.run()
    status = highs.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        raise RuntimeError(f"HiGHS: oracle LP not solved: {highs.modelStatusToString(status)}")
    x = np.asarray(highs.getSolution().col_value)
    over = x[col["over"]]
    # overload is still energy bought: count it at the import price, drop only the penalties
    penalties = (float(np.dot(overload_penalty - prices.imp, over))
                 + shortfall_penalty * float(x[short].sum()))
    objective = float(np.dot(cost, x)) - penalties + prices.terminal * data.stored_now_kwh
    by_ev = np.array([x[c] for c in ev_col]).reshape(n_cars, n)
    co2, money = _carbon_report(prices, data, x[col["imp"]] + over, x[col["exp"]], x[col["bc"]],
                                x[col["bd"]], float(x[col["stored"][-1]]) if n else 0.0)
    return OracleResult(
        objective_value=objective, co2_kg=co2, money_eur=money,
        cost_eur=objective, shortfall_kwh=float(x[short].sum()),
        overload_kwh=float(x[col["over"]].sum()),
        grid_import_kwh=x[col["imp"]] + over, grid_export_kwh=x[col["exp"]],
        battery_ac_kwh=x[col["bc"]] - x[col["bd"]], ev_kwh=by_ev.sum(0),
        stored_kwh=x[col["stored"]], ev_by_ev_kwh=by_ev, shortfall_by_ev_kwh=x[short].copy())


def random_problem(rng: np.random.Generator, slots: int, *, with_ev: bool = True,
                   negative_export: bool = True) -> PlanProblem:
    """A random plausible quarter-hourly problem (import prices >= 0, EV need reachable at
    full power; the fuse may still make it infeasible)."""
    imp = rng.uniform(0.0, 0.5, slots)
    low = -0.3 if negative_export else 0.0
    exp = imp * rng.uniform(low, 1.0, slots)
    load = rng.uniform(0.0, 1.5, slots)
    pv = np.clip(rng.normal(0.5, 1.0, slots), 0.0, None)
    battery = BatterySpec(
        capacity_kwh=float(rng.uniform(1, 15)), soc_now=float(rng.uniform(0, 1)),
        soc_min=float(rng.uniform(0, 0.3)), soc_max=float(rng.uniform(0.7, 1.0)),
        max_charge_kw=float(rng.uniform(0.5, 6)), max_discharge_kw=float(rng.uniform(0.5, 6)),
        charge_efficiency=float(rng.uniform(0.8, 1)),
        discharge_efficiency=float(rng.uniform(0.8, 1)),
        degradation_eur_per_kwh=float(rng.uniform(0, 0.05)),
        allow_grid_charging=bool(rng.random() < 0.7),
        terminal_value_eur_per_kwh=float(rng.uniform(0, 0.3)))
    grid = GridSpec(float(rng.uniform(6, 20)), float(rng.uniform(0, 10)), bool(rng.random() < 0.8))
    ev = None
    if with_ev:
        arrive = int(rng.integers(0, slots))
        departure = int(rng.integers(arrive + 1, slots + 1))
        mask = np.zeros(slots, dtype=bool)
        mask[arrive:] = True
        max_kw = float(rng.uniform(1, 11))
        efficiency = float(rng.uniform(0.8, 1))
        reachable = max_kw * 0.25 * (departure - arrive) * efficiency
        ev = EVDemand(mask, departure, float(rng.uniform(0, 0.8)) * reachable, max_kw=max_kw,
                      charge_efficiency=efficiency)
    return PlanProblem(1.7e9 + 900.0 * np.arange(slots), imp, exp, load, pv, battery=battery,
                       grid=grid, ev=ev)


def random_cars_problem(rng: np.random.Generator, slots: int, cars: int, *,
                        shared: bool = True, min_kw: float = 0.0) -> PlanProblem:
    """`random_problem` with several cars (their own windows, departures, needs, powers and
    efficiencies; each need reachable alone at full power) and, with `shared`, a shared limit
    below the cars' summed maximum (so it often binds)."""
    problem = random_problem(rng, slots, with_ev=False)
    evs = []
    for k in range(cars):
        arrive = int(rng.integers(0, slots // 2))
        departure = int(rng.integers(arrive + 1, slots + 1))
        mask = np.zeros(slots, dtype=bool)
        mask[arrive:] = True
        max_kw = float(rng.uniform(max(1.0, min_kw), 11))
        efficiency = float(rng.uniform(0.8, 1))
        reachable = max_kw * 0.25 * (departure - arrive) * efficiency
        evs.append(EVDemand(mask, departure, float(rng.uniform(0, 0.7)) * reachable,
                            max_kw=max_kw, min_kw=min_kw if k == 0 else 0.0,
                            charge_efficiency=efficiency, name=f"car{k + 1}"))
    problem.evs = tuple(evs)
    if shared:
        problem.ev_shared_max_kw = float(rng.uniform(0.4, 0.9)) * sum(e.max_kw for e in evs)
    return problem


def solve_lp_one_converter(problem: PlanProblem, *, overload_penalty: float = 1e4,
                           shortfall_penalty: float = 1e3) -> OracleResult:
    """The LP for a battery behind one inverter: each slot t is split in time into a charging
    part (share l_t) and a discharging part (1 - l_t), each with its own grid, PV and EV flows
    within the slot's limits scaled by its share (l_t in [0, 1] is a variable; every limit
    times l_t is still linear):

        imp_c + over_c - exp_c + pv_c - bc - ev_c = L l_t     imp_c <= F l_t, bc <= Pc l_t, ...
        imp_d + over_d - exp_d + pv_d + bd - ev_d = L (1 - l_t)   ... <= ... (1 - l_t)
        E_t = E_{t-1} + eta_c bc - bd / eta_d

    so the battery may charge and discharge in one slot, but one after the other. At most one
    car; the SoC within a slot is not limited (only at the slots' ends)."""
    data = prepare(problem)
    prices = objective_prices(problem, data)
    if len(data.evs) > 1:
        raise ValueError("solve_lp_one_converter: at most one car")
    n = data.slots
    car = data.evs[0] if data.evs else None
    kinds = ("imp_c", "over_c", "exp_c", "pv_c", "ev_c", "bc",
             "imp_d", "over_d", "exp_d", "pv_d", "ev_d", "bd", "share", "stored")
    col = {kind: np.arange(n) + i * n for i, kind in enumerate(kinds)}
    short = len(kinds) * n
    ncols = short + 1
    inf = highspy.kHighsInf
    lower = np.zeros(ncols)
    upper = np.full(ncols, inf)
    cost = np.zeros(ncols)
    upper[col["share"]] = 1.0
    lower[col["stored"]] = data.stored_min_kwh
    upper[col["stored"]] = data.stored_max_kwh
    ev_cap = car.cap_kwh if car is not None else np.zeros(n)
    for part in "cd":
        cost[col["imp_" + part]] = prices.imp
        cost[col["exp_" + part]] = -prices.exp
        cost[col["over_" + part]] = overload_penalty
    cost[col["bc"]] = prices.deg
    cost[col["bd"]] = prices.deg
    cost[col["stored"][-1]] = -prices.terminal
    cost[short] = shortfall_penalty

    rows, cols, vals, row_lo, row_hi = [], [], [], [], []

    def add_row(indices, coefficients, low, high):
        r = len(row_lo)
        rows.extend([r] * len(indices))
        cols.extend(int(i) for i in indices)
        vals.extend(float(c) for c in coefficients)
        row_lo.append(low)
        row_hi.append(high)

    limits = (("imp", data.import_cap_kwh), ("exp", data.export_cap_kwh), ("pv", data.pv_kwh),
              ("ev", ev_cap))
    for t in range(n):
        share = col["share"][t]
        load = float(data.load_kwh[t])
        add_row([col["imp_c"][t], col["over_c"][t], col["exp_c"][t], col["pv_c"][t],
                 col["ev_c"][t], col["bc"][t], share], [1, 1, -1, 1, -1, -1, -load], 0.0, 0.0)
        add_row([col["imp_d"][t], col["over_d"][t], col["exp_d"][t], col["pv_d"][t],
                 col["ev_d"][t], col["bd"][t], share], [1, 1, -1, 1, -1, 1, load], load, load)
        for kind, cap in limits + (("b", None),):
            if kind == "b":
                add_row([col["bc"][t], share], [1, -data.charge_cap_kwh[t]], -inf, 0.0)
                add_row([col["bd"][t], share], [1, data.discharge_cap_kwh[t]], -inf,
                        float(data.discharge_cap_kwh[t]))
                continue
            if not np.isfinite(cap[t]):
                continue
            add_row([col[kind + "_c"][t], share], [1, -cap[t]], -inf, 0.0)
            add_row([col[kind + "_d"][t], share], [1, cap[t]], -inf, float(cap[t]))
        idx = [col["stored"][t], col["bc"][t], col["bd"][t]]
        coef = [1.0, -data.charge_eff, 1.0 / data.discharge_eff]
        if t == 0:
            add_row(idx, coef, data.stored_now_kwh, data.stored_now_kwh)
        else:
            add_row(idx + [col["stored"][t - 1]], coef + [-1.0], 0.0, 0.0)
    if car is not None:
        add_row(list(col["ev_c"]) + list(col["ev_d"]) + [short],
                [car.eff] * (2 * n) + [1.0], car.need_kwh, car.need_kwh)
    else:
        upper[short] = 0.0

    highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    highs.addCols(ncols, cost, lower, upper, 0, np.zeros(0, np.int32), np.zeros(0, np.int32),
                  np.zeros(0))
    order = np.argsort(rows, kind="stable")
    rows_arr = np.asarray(rows)[order]
    starts = np.searchsorted(rows_arr, np.arange(len(row_lo))).astype(np.int32)
    highs.addRows(len(row_lo), np.asarray(row_lo, float), np.asarray(row_hi, float), len(vals),
                  starts, np.asarray(cols, np.int32)[order], np.asarray(vals, float)[order])
    highs.run()
    status = highs.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        raise RuntimeError(f"HiGHS: oracle LP not solved: {highs.modelStatusToString(status)}")
    x = np.asarray(highs.getSolution().col_value)
    over = x[col["over_c"]] + x[col["over_d"]]
    imp = x[col["imp_c"]] + x[col["imp_d"]] + over
    exp = x[col["exp_c"]] + x[col["exp_d"]]
    penalties = (float(np.dot(overload_penalty - prices.imp, over))
                 + shortfall_penalty * float(x[short]))
    objective = float(np.dot(cost, x)) - penalties + prices.terminal * data.stored_now_kwh
    ev = x[col["ev_c"]] + x[col["ev_d"]]
    co2, money = _carbon_report(prices, data, imp, exp, x[col["bc"]], x[col["bd"]],
                                float(x[col["stored"][-1]]) if n else 0.0)
    return OracleResult(
        cost_eur=objective, shortfall_kwh=float(x[short]), overload_kwh=float(over.sum()),
        grid_import_kwh=imp, grid_export_kwh=exp, battery_ac_kwh=x[col["bc"]] - x[col["bd"]],
        ev_kwh=ev, stored_kwh=x[col["stored"]], ev_by_ev_kwh=ev.reshape(1, n),
        shortfall_by_ev_kwh=np.array([x[short]]), objective_value=objective, co2_kg=co2,
        money_eur=money)
