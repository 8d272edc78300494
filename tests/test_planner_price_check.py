"""The planner's every-check price comparison (`PlannerService._prices_changed`) is array
arithmetic; it must say exactly what the slot-by-slot rule says."""
import math
import random
import types

import numpy as np

from phaeton.planner.service import PlannerService


def slot_by_slot(planned: dict, horizon_end_s: int, grid) -> bool:
    for start, buy, sell in zip(grid.slot_starts_s, grid.import_eur_per_kwh,
                                grid.export_eur_per_kwh):
        if not (math.isfinite(buy) and math.isfinite(sell)):
            continue
        known = planned.get(int(start))
        if known is None:
            if start < horizon_end_s:
                return True
        elif abs(known[0] - buy) > 1e-9 or abs(known[1] - sell) > 1e-9:
            return True
    return False


def planner_state(planned: dict, horizon_end_s: int):
    known = sorted(planned.items())
    return types.SimpleNamespace(
        _planned_prices=planned, _planned_horizon_end_s=horizon_end_s,
        _planned_price_table=(np.array([s for s, _ in known], dtype=np.int64),
                              np.array([p[0] for _, p in known], dtype=float),
                              np.array([p[1] for _, p in known], dtype=float)))


def test_same_answer_as_slot_by_slot():
    rnd = random.Random(11)
    answers = set()
    for _ in range(3000):
        base = 900 * rnd.randrange(10)
        planned = {base + 900 * i: (round(rnd.random(), 1), round(rnd.random(), 1))
                   for i in range(rnd.randrange(12)) if rnd.random() < 0.8}
        horizon_end = base + 900 * rnd.randrange(14)
        starts = 900 * rnd.randrange(12) + 900 * np.arange(rnd.randrange(14), dtype=np.int64)

        def price(start, column):
            if rnd.random() < 0.1:
                return rnd.choice([math.nan, math.inf, -math.inf])
            if start in planned and rnd.random() < 0.85:
                return planned[start][column]
            return round(rnd.random(), 1)
        grid = types.SimpleNamespace(
            slot_starts_s=starts,
            import_eur_per_kwh=np.array([price(int(s), 0) for s in starts], dtype=float),
            export_eur_per_kwh=np.array([price(int(s), 1) for s in starts], dtype=float))
        expected = slot_by_slot(planned, horizon_end, grid)
        assert PlannerService._prices_changed(planner_state(planned, horizon_end), grid) \
            is expected
        answers.add(expected)
    assert answers == {True, False}


def test_before_any_plan_and_with_an_empty_grid():
    empty = types.SimpleNamespace(slot_starts_s=np.zeros(0, dtype=np.int64),
                                  import_eur_per_kwh=np.zeros(0), export_eur_per_kwh=np.zeros(0))
    assert PlannerService._prices_changed(planner_state({}, 0), empty) is False
    grid = types.SimpleNamespace(slot_starts_s=np.array([0, 900]),
                                 import_eur_per_kwh=np.array([0.2, 0.3]),
                                 export_eur_per_kwh=np.array([0.0, 0.0]))
    assert PlannerService._prices_changed(planner_state({}, 0), grid) is False
    assert PlannerService._prices_changed(planner_state({}, 1800), grid) is True
