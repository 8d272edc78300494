"""The per-slot cost functions the DP is built on, against brute force."""
from __future__ import annotations

import numpy as np
import pytest

from phaeton.planning.model import BatterySpec, GridSpec, PlanProblem
from phaeton.planning.piecewise import convex_hull
from phaeton.planning.slot_cost import slot_cost_table
from phaeton.planning.slot_data import prepare


def _slot_problem(rng, export_allowed=True):
    n = 6
    imp = rng.uniform(0.0, 0.5, n)
    return PlanProblem(
        1.7e9 + 900.0 * np.arange(n), imp, imp * rng.uniform(-0.5, 1.0, n),
        rng.uniform(0, 1.5, n), rng.uniform(0, 2.0, n),
        battery=BatterySpec(capacity_kwh=10, soc_now=0.5, max_charge_kw=4, max_discharge_kw=3,
                            charge_efficiency=0.9, discharge_efficiency=0.93,
                            degradation_eur_per_kwh=0.02),
        grid=GridSpec(import_limit_kw=6.0, export_limit_kw=2.0, export_allowed=export_allowed))


def _brute_force(data, t, d, ev_cap, reward):
    """min over PV use u and EV energy e on fine grids of the slot's cost for change d."""
    x = d / data.charge_eff if d > 0 else d * data.discharge_eff
    u = np.linspace(0.0, data.pv_kwh[t], 801)[:, None]
    e = np.linspace(0.0, ev_cap, 81)[None, :]
    n = data.load_kwh[t] + x + e - u
    ok = (n >= -data.export_cap_kwh[t] - 1e-12) & (n <= data.import_cap_kwh[t] + 1e-12)
    cost = (data.import_price[t] * np.maximum(n, 0) - data.export_price[t] * np.maximum(-n, 0)
            + data.degradation * abs(x) - reward * e)
    return np.where(ok, cost, np.inf).min()


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("reward", [0.0, 0.3])
def test_slot_cost_equals_brute_force_minimum(seed, reward):
    rng = np.random.default_rng(seed)
    data = prepare(_slot_problem(rng, export_allowed=seed % 2 == 0))
    ev_cap = np.full(data.slots, 0.8)
    table = slot_cost_table(data, data.load_kwh, ev_cap, reward, penalty=1e3)
    for t in range(data.slots):
        g = table.function(t)
        assert np.all(np.diff(g.slopes) >= -1e-12)  # convex
        assert g.x0 <= 0.0 <= g.x_end  # idling is always possible
        for d in np.linspace(g.x0, g.x_end, 9):
            brute = _brute_force(data, t, d, 0.8, reward)
            if not np.isfinite(brute):
                continue  # needs the fuse-overload penalty: brute force forbids it
            # the grids make brute force at most one step above the exact minimum
            assert g(d) <= brute + 1e-9
            assert g(d) >= brute - 0.01


def test_charge_and_discharge_limits_bound_the_domain():
    data = prepare(_slot_problem(np.random.default_rng(1)))
    table = slot_cost_table(data, data.load_kwh, np.zeros(data.slots), 0.0, penalty=1e3)
    for t in range(data.slots):
        g = table.function(t)
        assert g.x_end <= 4.0 * 0.25 * 0.9 + 1e-12        # charge kW x h x efficiency
        assert g.x0 >= -3.0 * 0.25 / 0.93 - 1e-12          # discharge kW x h / efficiency


def test_convex_hull_pools_decreasing_slopes():
    hull = convex_hull(0.0, 1.0, np.array([1.0, 1.0, 2.0]), np.array([1.0, -1.0, 2.0]))
    assert np.allclose(hull.lengths, [2.0, 2.0]) and np.allclose(hull.slopes, [0.0, 2.0])
    assert hull(2.0) == pytest.approx(1.0) and hull(4.0) == pytest.approx(5.0)
