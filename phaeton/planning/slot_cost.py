"""Per-slot cost as an exact convex piecewise-linear function of the battery's energy change.

For one slot, with house load L, PV P, import price c, export price s (s <= c), import cap F,
export cap X and optional EV energy e in [0, e_max] rewarded at r per AC kWh, the cheapest way to
balance the slot when the battery's AC exchange is x (charge > 0) is

    h(m) = min over PV use u in [0, P] and EV e of  phi(m + e - u) - r e,   m = L + x
    phi(n) = c n for import n >= 0, s n for export n < 0, n in [-X, F], M per kWh beyond F

Each piece is a convex piecewise-linear function, and minimising over u and e is an infimal
convolution, so h is exactly the convex function whose segments are those of phi, a slope-0
segment of length P (curtailing PV) and a slope-r segment of length e_max (the EV), sorted by
slope. The battery turns an energy change d into x = d / eta_c (charging) or x = d * eta_d
(discharging) and adds degradation per AC kWh, which stretches and shifts the slopes on each
side of x = 0. `slot_cost_table` builds these functions for all slots at once with numpy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from phaeton.planning.piecewise import ConvexPL, convex_hull
from phaeton.planning.slot_data import SlotData

#: kWh per slot used for "unbounded" segments (fuse overload, no fuse limit configured)
BIG_KWH = 1.0e4


@dataclass
class SlotCostTable:
    """Slot-cost functions g_t(d) for all slots, ready for the DP.

    Row t holds `count[t]` segments with positive length, sorted by slope (the rest of the row
    is padding of length 0); the last `charge_count[t]` of them are the charging side (d >= 0).
    `knot_d`/`knot_cost` are the breakpoints of g_t; `d_end`/`cost_end` its right end, which is
    where the mirrored function g_t(-d) starts.
    """

    d0: np.ndarray
    cost0: np.ndarray
    lengths: np.ndarray
    slopes: np.ndarray
    count: np.ndarray
    knot_d: np.ndarray
    knot_cost: np.ndarray
    d_end: np.ndarray
    cost_end: np.ndarray
    charge_count: np.ndarray  # how many of a row's segments (the last ones) lie at d >= 0
    neg_slopes: np.ndarray    # -slopes: the slopes of the mirrored function g_t(-d)

    def function(self, t: int) -> ConvexPL:
        k = int(self.count[t])
        return ConvexPL(float(self.d0[t]), float(self.cost0[t]), self.lengths[t, :k],
                        self.slopes[t, :k])


def table_from_segments(d0: np.ndarray, cost0: np.ndarray, lengths: np.ndarray,
           slopes: np.ndarray) -> SlotCostTable:
    """Sort each row's positive-length segments by slope, replacing non-convex rows by their
    convex envelope (only with strongly negative prices, where battery losses would pay: the
    envelope mixes charging and idling within the slot)."""
    positive = lengths > 1e-13
    big = np.where(positive, slopes, np.inf)
    neg_part, pos_part = np.split(big, 2, axis=1)
    neg_max = np.where(np.isfinite(neg_part), neg_part, -np.inf).max(1)
    non_convex = np.flatnonzero(neg_max > pos_part.min(1) + 1e-12)
    for t in non_convex:
        keep = positive[t]
        hull = convex_hull(float(d0[t]), float(cost0[t]), lengths[t][keep], slopes[t][keep])
        k = len(hull.lengths)
        lengths[t] = 0.0
        slopes[t] = 0.0
        lengths[t, :k] = hull.lengths
        slopes[t, :k] = hull.slopes
        big[t] = np.inf
        big[t, :k] = hull.slopes
    order = np.argsort(big, axis=1, kind="stable")
    lengths = np.take_along_axis(np.where(np.isfinite(big), lengths, 0.0), order, 1)
    slopes = np.take_along_axis(np.where(np.isfinite(big), big, 0.0), order, 1)
    count = np.isfinite(np.take_along_axis(big, order, 1)).sum(1)
    n = len(d0)
    knot_d = d0[:, None] + np.concatenate([np.zeros((n, 1)), np.cumsum(lengths, 1)], 1)
    knot_cost = cost0[:, None] + np.concatenate(
        [np.zeros((n, 1)), np.cumsum(lengths * slopes, 1)], 1)
    charging = (knot_d[:, :-1] >= -1e-12) & (np.arange(lengths.shape[1]) < count[:, None])
    return SlotCostTable(d0, cost0, lengths, slopes, count, knot_d, knot_cost,
                         knot_d[:, -1].copy(), knot_cost[:, -1].copy(), charging.sum(1), -slopes)


def grid_segments(data: SlotData, penalty: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """phi with PV curtailment, per slot: (start m, lengths T x 4, slopes T x 4), unsorted."""
    n = data.slots
    import_cap = np.minimum(data.import_cap_kwh, BIG_KWH)
    lengths = np.stack([data.export_cap_kwh, data.pv_kwh, import_cap, np.full(n, BIG_KWH)], 1)
    slopes = np.stack([data.export_price, np.zeros(n), data.import_price, np.full(n, penalty)], 1)
    return -data.export_cap_kwh, lengths, slopes


def slot_cost_table(data: SlotData, load_kwh: np.ndarray, ev_cap_kwh: np.ndarray,
                    ev_reward: float, penalty: float) -> SlotCostTable:
    """Build g_t(d) for every slot (vectorised); `ev_reward` is r, per AC kWh to the EV."""
    m0, lengths, slopes = grid_segments(data, penalty)
    value0 = -data.export_price * data.export_cap_kwh  # phi at n = -X
    # the EV: r per kWh over [0, e_max], mirrored because e adds to the demand
    lengths = np.concatenate([lengths, ev_cap_kwh[:, None]], 1)
    slopes = np.concatenate([slopes, np.full((data.slots, 1), ev_reward)], 1)
    value0 = value0 - ev_reward * ev_cap_kwh
    return battery_table(data, m0 - ev_cap_kwh - load_kwh, value0, lengths, slopes)


def battery_table(data: SlotData, x0: np.ndarray, value0: np.ndarray, lengths: np.ndarray,
                  slopes: np.ndarray) -> SlotCostTable:
    """g_t(d) from each slot's grid/EV segments (unsorted), in terms of the battery's AC
    exchange x = m - L within its power limits: `x0` is x at the first segment's start and
    `value0` the value there."""
    return table_from_segments(*battery_segments(data, x0, value0, lengths, slopes))


def battery_segments(data: SlotData, x0: np.ndarray, value0: np.ndarray, lengths: np.ndarray,
                     slopes: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`battery_table`'s g_t(d) before sorting: (d0, value at d0, lengths, slopes), the
    discharging half (d < 0) then the charging half, each in order of d."""
    order = np.argsort(slopes, axis=1, kind="stable")
    lengths = np.take_along_axis(lengths, order, 1)
    slopes = np.take_along_axis(slopes, order, 1)
    starts = x0[:, None] + np.concatenate(
        [np.zeros((len(x0), 1)), np.cumsum(lengths, 1)[:, :-1]], 1)
    ends = starts + lengths
    lo = np.maximum(-data.discharge_cap_kwh, x0)
    hi = np.minimum(data.charge_cap_kwh, ends[:, -1])
    a = np.maximum(starts, lo[:, None])
    b = np.minimum(ends, hi[:, None])
    neg = np.clip(np.minimum(b, 0.0) - a, 0.0, None)
    pos = np.clip(b - np.maximum(a, 0.0), 0.0, None)
    value_lo = value0 + (slopes * np.clip(np.minimum(ends, lo[:, None]) - starts, 0.0, None)).sum(1)

    eta_c, eta_d, deg = data.charge_eff, data.discharge_eff, data.degradation
    return (lo / eta_d, value_lo - deg * lo,
            np.concatenate([neg / eta_d, pos * eta_c], 1),
            np.concatenate([(slopes - deg) * eta_d, (slopes + deg) / eta_c], 1))


def mix_intervals(data: SlotData, load_kwh: np.ndarray, penalty: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Where a slot's cost g_t(d) (fixed load `load_kwh`, the EV in it) is not convex (import
    prices so negative that battery losses pay), the DP prices it with its convex envelope,
    which is linear over [a, b] (a < 0 < b): running the battery at a (discharging) for part
    of the slot and at b (charging) for the rest costs exactly the envelope at every d between.
    Returns (a, b) per slot in stored kWh, NaN where g_t is convex at 0."""
    m0, lengths, slopes = grid_segments(data, penalty)
    value0 = -data.export_price * data.export_cap_kwh
    d0, cost0, lengths, slopes = battery_segments(data, m0 - load_kwh, value0, lengths, slopes)
    a = np.full(data.slots, np.nan)
    b = np.full(data.slots, np.nan)
    positive = lengths > 1e-13
    big = np.where(positive, slopes, np.inf)
    neg_part, pos_part = np.split(big, 2, axis=1)
    neg_max = np.where(np.isfinite(neg_part), neg_part, -np.inf).max(1)
    for t in np.flatnonzero(neg_max > pos_part.min(1) + 1e-12):
        keep = positive[t]
        hull = convex_hull(float(d0[t]), float(cost0[t]), lengths[t][keep], slopes[t][keep])
        knots = d0[t] + np.concatenate([[0.0], np.cumsum(hull.lengths)])
        i = int(np.searchsorted(knots, 0.0, side="right")) - 1
        if 0 <= i < len(hull.lengths) and knots[i] < -1e-12 and knots[i + 1] > 1e-12:
            a[t], b[t] = knots[i], knots[i + 1]
    return a, b


def ev_energy(data: SlotData, demand_kwh: np.ndarray, ev_cap_kwh: np.ndarray,
              ev_reward: float, penalty: float) -> np.ndarray:
    """The EV energy per slot that minimises h given demand m = L + x (smallest on ties)."""
    m0, lengths, slopes = grid_segments(data, penalty)
    order = np.argsort(slopes, axis=1, kind="stable")
    lengths = np.take_along_axis(lengths, order, 1)
    slopes = np.take_along_axis(slopes, order, 1)
    # the EV runs up to the first point where the grid/PV slope reaches the reward
    below = slopes < ev_reward
    stop = m0 + (lengths * below).sum(1)
    return np.clip(stop - demand_kwh, 0.0, ev_cap_kwh)


def grid_exchange(data: SlotData, demand_kwh: np.ndarray) -> np.ndarray:
    """Net grid energy per slot (import > 0) for total demand m = L + x + e, using PV best.

    The cheapest net n lies in [max(m - P, -X), m] (PV used between 0 and P): as much export as
    possible when export pays (s >= 0), none when it costs (s < 0 <= c), and as much import
    as the fuse carries when importing pays (c < 0).
    """
    import_cap = np.minimum(data.import_cap_kwh, BIG_KWH)
    wanted = np.where(data.export_price >= 0, -data.export_cap_kwh,
                      np.where(data.import_price >= 0, 0.0, import_cap))
    lowest = np.maximum(demand_kwh - data.pv_kwh, -data.export_cap_kwh)
    return np.minimum(np.maximum(wanted, lowest), np.maximum(demand_kwh, lowest))


def car_segments(caps_kwh: np.ndarray, rewards: np.ndarray, shared_kwh: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Several cars in one slot as EV segments: (lengths, slopes), both slots x cars.

    With car k rewarded r_k per AC kWh and room c_k, the best split of a combined EV energy E
    fills the cars highest reward first, so the EV part of the slot is a concave reward of E
    with slopes r_k over lengths c_k, and the cars' shared limit S keeps only its first S kWh:
    each car's segment is what is left of S after the cars rewarded more (ties: list order).
    `caps_kwh` and `rewards` are slots x cars; `shared_kwh` per slot (inf: no limit).
    """
    order = np.argsort(-rewards, axis=1, kind="stable")
    caps = np.take_along_axis(caps_kwh, order, 1)
    before = np.cumsum(caps, 1) - caps
    room = np.clip(np.minimum(shared_kwh, BIG_KWH * caps.shape[1])[:, None] - before, 0.0, None)
    kept = np.empty_like(caps)
    np.put_along_axis(kept, order, np.minimum(caps, room), 1)
    return kept, rewards


def multi_slot_cost_table(data: SlotData, load_kwh: np.ndarray, caps_kwh: np.ndarray,
                          rewards: np.ndarray, shared_kwh: np.ndarray,
                          penalty: float) -> SlotCostTable:
    """`slot_cost_table` for several cars (`car_segments`): one EV segment per car."""
    m0, lengths, slopes = grid_segments(data, penalty)
    kept, rewards = car_segments(caps_kwh, rewards, shared_kwh)
    value0 = -data.export_price * data.export_cap_kwh - (rewards * kept).sum(1)
    lengths = np.concatenate([lengths, kept], 1)
    slopes = np.concatenate([slopes, rewards], 1)
    return battery_table(data, m0 - kept.sum(1) - load_kwh, value0, lengths, slopes)


def multi_ev_energy(data: SlotData, demand_kwh: np.ndarray, caps_kwh: np.ndarray,
                    rewards: np.ndarray, shared_kwh: np.ndarray, penalty: float) -> np.ndarray:
    """Each car's energy per slot (slots x cars) that minimises the slot's cost less the
    cars' rewards, given demand m = L + x: the car rewarded most charges first, each up to
    where the grid/PV slope reaches its reward, within its segment (`car_segments`)."""
    kept, rewards = car_segments(caps_kwh, rewards, shared_kwh)
    m0, lengths, slopes = grid_segments(data, penalty)
    order = np.argsort(-rewards, axis=1, kind="stable")
    out = np.zeros_like(kept)
    taken = np.zeros(len(demand_kwh))
    rows = np.arange(len(demand_kwh))
    for j in range(kept.shape[1]):
        k = order[:, j]
        reward = rewards[rows, k]
        stop = m0 + (lengths * (slopes < reward[:, None])).sum(1)
        e = np.clip(stop - demand_kwh - taken, 0.0, kept[rows, k])
        out[rows, k] = e
        taken += e
    return out
