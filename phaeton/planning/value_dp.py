"""Exact dynamic programme over stored energy with convex piecewise-linear value functions.

    V_end(E) given (the terminal value),  V_t(E) = min over d of g_t(d) + V_{t+1}(E + d)

on lo <= E <= hi. V_{t+1} and g_t are convex piecewise-linear, so V_t is their infimal
convolution (V_{t+1} with g_t mirrored): the segments of both merged by slope, then cut to
[lo, hi]. Nothing is rounded to a grid, so the result is the exact optimum of the linear
programme the slot functions describe.

The merge also yields the optimal policy: walking along the merged segments from the left end,
the V_{t+1} segments passed so far add up to how far E_{t+1} has moved from lo. So each step
stores E_{t+1} as a piecewise-linear function of E_t, and the forward pass is one interpolation
per slot. Among segments of equal slope (ties, a flat stretch of the cost) the order is:
charging segments of g, then V_{t+1}, then discharging segments of g; that picks, among equally
cheap choices, the one that moves the battery least.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from phaeton.planning.slot_cost import SlotCostTable


@dataclass
class ValueFunction:
    """V_t on [lo, hi] as breakpoints (xs increasing, ys values), its segments, and the best
    next stored energy at each breakpoint (`next_xs`, None for the terminal value)."""

    xs: np.ndarray
    ys: np.ndarray
    lengths: np.ndarray
    slopes: np.ndarray
    next_xs: np.ndarray | None = None

    def __call__(self, x: float) -> float:
        return float(np.interp(x, self.xs, self.ys))


def terminal(lo: float, hi: float, value_per_kwh: float) -> ValueFunction:
    """V(E) = -value_per_kwh * E on [lo, hi]."""
    xs = np.array([lo, hi])
    return ValueFunction(xs, -value_per_kwh * xs, np.array([hi - lo]),
                         np.array([-float(value_per_kwh)]))


def backward(table: SlotCostTable, first: int, last: int, v_end: ValueFunction,
             lo: float, hi: float) -> list[ValueFunction]:
    """[V_first, ..., V_last] with V_last = v_end."""
    values = [v_end]
    if hi - lo <= 1e-12:  # no battery: one state, V_t = g_t(0) + V_{t+1}
        y = float(v_end.ys[0])
        for t in range(last - 1, first - 1, -1):
            y += float(np.interp(0.0, table.knot_d[t], table.knot_cost[t]))
            values.append(ValueFunction(np.array([lo, hi]), np.array([y, y]),
                                        np.array([hi - lo]), np.zeros(1), np.array([lo, lo])))
        values.reverse()
        return values
    v_len, v_slope = v_end.lengths, v_end.slopes
    v_y0 = float(v_end.ys[0])
    lengths_tab, neg_slopes_tab = table.lengths, table.neg_slopes
    count, charge_count = table.count.tolist(), table.charge_count.tolist()
    d_end, cost_end = table.d_end.tolist(), table.cost_end.tolist()
    concat = np.concatenate
    for t in range(last - 1, first - 1, -1):
        k = count[t]
        split = k - charge_count[t]
        n_charge = k - split
        n_v = len(v_slope)
        neg = neg_slopes_tab[t]
        seg = lengths_tab[t]
        slopes = concat((neg[split:k], v_slope, neg[:split]))
        lengths = concat((seg[split:k], v_len, seg[:split]))
        order = slopes.argsort(kind="stable")
        slopes = slopes[order]
        lengths = lengths[order]
        from_v = lengths * ((order >= n_charge) & (order < n_charge + n_v))
        x0 = lo - d_end[t]
        y0 = v_y0 + cost_end[t]
        ends = lengths.cumsum()
        ends += x0
        rise = (lengths * slopes).cumsum()
        moved = from_v.cumsum()
        last_seg = len(ends) - 1
        i = min(int(ends.searchsorted(lo, "right")), last_seg)
        j = min(int(ends.searchsorted(hi, "left")), last_seg)
        len_i, len_j = lengths[i], lengths[j]
        start_i = ends[i] - len_i
        y_lo = y0 + rise[i] - len_i * slopes[i] + (lo - start_i) * slopes[i]
        y_hi = y0 + rise[j] - (ends[j] - hi) * slopes[j]
        share_i = from_v[i] / len_i if len_i > 0 else 0.0
        share_j = from_v[j] / len_j if len_j > 0 else 0.0
        next_lo = lo + moved[i] - from_v[i] + (lo - start_i) * share_i
        next_hi = lo + moved[j] - (ends[j] - hi) * share_j
        v_len = lengths[i:j + 1].copy()
        v_slope = slopes[i:j + 1]
        if i == j:
            v_len[0] = hi - lo
        else:
            v_len[0] = ends[i] - lo
            v_len[-1] = hi - (ends[j] - len_j)
        xs = concat(((lo,), ends[i:j], (hi,)))
        ys = concat(((y_lo,), y0 + rise[i:j], (y_hi,)))
        next_xs = concat(((next_lo,), lo + moved[i:j], (next_hi,)))
        v_y0 = y_lo
        values.append(ValueFunction(xs, ys, v_len, v_slope, next_xs))
    values.reverse()
    return values


def forward(values: list[ValueFunction], stored_kwh: float, lo: float,
            hi: float) -> np.ndarray:
    """Optimal changes of stored energy for the slots [V_first, ..., V_last] cover."""
    steps = len(values) - 1
    path = np.empty(steps + 1)
    e = min(max(stored_kwh, lo), hi)
    path[0] = e
    interp = np.interp
    for i in range(steps):
        v = values[i]
        e = float(interp(e, v.xs, v.next_xs))
        e = min(max(e, lo), hi)
        path[i + 1] = e
    path[0] = stored_kwh
    return np.diff(path)
