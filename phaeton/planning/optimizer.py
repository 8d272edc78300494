"""The energy planner: battery and EV schedule over 24-48 h of slots at least cost.

`plan(problem) -> Plan`. Pure numpy, no solver: the model is a linear programme (see
docs/planner.md) and this module solves it exactly by dynamic programming over the stored
energy, with value functions kept as exact convex piecewise-linear functions instead of values
on a SoC grid (so PV surplus that falls between grid points is never lost):

    V_T(E) = -v E
    V_t(E) = min over d of g_t(d) + V_{t+1}(E + d),   E and E + d within the SoC limits

g_t is the slot's cost as a function of the energy change d (slot_cost.py). Because both are
convex piecewise-linear, the minimum is an infimal convolution: merge the segments of V_{t+1}
and of the mirrored g_t by slope, then cut to the SoC limits. The forward pass then picks the
best d slot by slot.

The EV's "energy by departure" couples slots. It is priced in by a reward per kWh delivered;
for a given reward the DP above is exact, and the reward is found by maximising the concave dual
with Kelley's cutting planes (finite for piecewise-linear duals), starting beside a price-based
guess. If a solve hits the need exactly, it is the plan. Otherwise the two solutions either side
of the need, both optimal for the final reward, mix into an EV schedule that delivers exactly the
need, and one more DP with that EV schedule fixed gives the battery plan. When the need cannot
be met, the plan delivers as much as possible (a very large reward) and states the shortfall.

A charger minimum power (each EV slot off or at least the minimum) makes the problem a
mixed-integer one. For a fixed set of EV slots it is convex again (the minimum moves into the
house load), so `_apply_min_power` searches over slot sets, each solved exactly by the same
reward search; many such searches run side by side in one vectorised DP sweep (`_Batch`), start
at the LP's final reward, and stop as soon as the best whole-slot plan is proven within 2e-6 of
the LP optimum (a lower bound). Otherwise a local search over slot sets, and a branch and
bound when few slots are below the minimum, improve on it within a fixed number of sweeps.

Several cars (`PlanProblem.evs`): one reward per car; for fixed rewards each car is one more
segment of the slot cost (cars filled highest reward first, together within their shared
limit), so the DP is still exact, and the rewards come from column generation over the solved
schedules with a tiny master LP (`_multi_schedule`). Minimum powers are met car by car with
the single-car search on a view where the other cars stay free at their rewards
(`_priced_view`), followed by an exact re-plan of all cars with those slots fixed
(`_round_priced`); the older alternation with the other cars held fixed (`_round_cars`) runs
only when that is not within 0.1 % of the LP optimum. One car through `evs` takes exactly the
single-car path.

Objectives (`PlanProblem.objective`): "carbon" and "cost_with_carbon_price" only change the
prices in SlotData (`slot_data._prepare_objective`: kg CO2 per kWh imported plus a tiny money
tie-break, or money plus the carbon price), so everything here minimises the objective exactly
as it minimises cost; `schedule.build_plan` reports money (`cost_eur`), `co2_kg` and
`objective_value`. With strongly negative prices a slot's cost is not convex and the DP uses its
convex envelope; the final plans are built with `mix=True`, which runs such a slot as the
envelope's mix (discharging for part of the slot, charging for the rest: `Plan.battery_mixes`),
so the plan costs what the DP computed.
"""
from __future__ import annotations

import copy
import heapq
import itertools
import logging

import numpy as np

from phaeton.planning.baseline import self_consumption
from phaeton.planning.model import Plan, PlanProblem, Shortfall
from phaeton.planning.schedule import build_plan, car_label
from phaeton.planning.slot_cost import (
    BIG_KWH,
    SlotCostTable,
    battery_table,
    ev_energy,
    grid_exchange,
    grid_segments,
    multi_ev_energy,
    multi_slot_cost_table,
    slot_cost_table,
)
from phaeton.planning.slot_data import EVData, SlotData, prepare
from phaeton.planning.value_dp import ValueFunction, backward, forward, terminal

_KELLEY_MAX_ROUNDS = 40
#: the local search over EV slot sets under a minimum charging power (`_moves`): how many
#: unused slots each order offers, and how many of the least used slots are swapped for any of
#: those (and any slot for as many of those)
_LOCAL_SEARCH_ADDS = 3
_LOCAL_SEARCH_SWAPS = 2
_PAIRED_MOVES = 8  # the best single moves combined in pairs when none improves alone
#: batched DP sweeps for improving on the first whole-slot schedules, and nodes branched per
#: round (one sweep per round: searches that need more go on in the next rounds)
_MIN_POWER_SWEEPS = 32
_FIRST_SWEEPS = 6  # for the first sets (most are settled by then; the rest go on)
_BRANCH_NODES = 8
_BRANCH_SWEEPS = 8  # sweeps of branching alone without a better schedule before giving up
#: branch only when the LP optimum has at most this many EV slots below the minimum
_BRANCH_FRACTIONAL = 12
#: stop once the best whole-slot schedule is proven this close to the optimum (relative)
_MIN_POWER_GAP = 2e-6
#: stop the reward search once the plan is proven within this share of the optimum
_GAP_TOLERANCE = 1e-6
_log = logging.getLogger(__name__)


def _price_scale(data: SlotData) -> float:
    scale = max(float(np.max(np.abs(data.import_price), initial=0.0)),
                float(np.max(np.abs(data.export_price), initial=0.0)),
                data.degradation, abs(data.terminal_value))
    return max(scale, 1e-3)


class _Solver:
    """The DP for one SlotData; caches what does not depend on the EV's reward."""

    def __init__(self, data: SlotData):
        self.data = data
        scale = _price_scale(data)
        # a kWh the EV must get is worth up to `max_reward`; overloading the fuse costs far more
        self.max_reward = 1e3 * scale
        self.penalty = 1e6 * scale
        self.lo = data.stored_min_kwh
        self.hi = data.stored_max_kwh
        self.no_ev_table = self.table(data.load_kwh, np.zeros(data.slots), 0.0)
        self.no_ev_battery: np.ndarray | None = None  # the battery's plan without the EV, on demand
        self.departure = data.ev_departure if data.ev_need_kwh > 0 else 0
        self.tail_values = backward(self.no_ev_table, self.departure, data.slots,
                                    terminal(self.lo, self.hi, data.terminal_value),
                                    self.lo, self.hi)

    def no_ev(self) -> np.ndarray:
        """The battery's plan without the EV (computed once, on demand)."""
        if self.no_ev_battery is None:
            self.no_ev_battery = self.solve_fixed_ev(np.zeros(self.data.slots))
        return self.no_ev_battery

    def lp_battery(self) -> np.ndarray:
        """The battery AC exchange of the reward search's final solution (zero after departure)."""
        battery = np.zeros(self.data.slots)
        battery[:self.departure] = self.battery_ac(self.lp_changes)
        return battery

    def remember(self, bound: float, reward: float, changes: np.ndarray) -> None:
        """What the reward search ended with (see `_schedule`)."""
        self.lp_bound, self.lp_reward, self.lp_changes = bound, reward, changes

    def table(self, load_kwh: np.ndarray, ev_cap_kwh: np.ndarray, reward: float) -> SlotCostTable:
        if _priced(self.data):
            return _priced_table(self.data, load_kwh, ev_cap_kwh, np.full(len(load_kwh), reward),
                                 self.penalty)
        return slot_cost_table(self.data, load_kwh, ev_cap_kwh, reward, self.penalty)

    def battery_ac(self, changes: np.ndarray) -> np.ndarray:
        """AC exchange (charge > 0) for changes of stored energy."""
        return np.where(changes > 0, changes / self.data.charge_eff,
                        changes * self.data.discharge_eff)

    def _head(self, table: SlotCostTable) -> tuple[list[ValueFunction], np.ndarray, float]:
        values = backward(table, 0, self.departure, self.tail_values[0], self.lo, self.hi)
        changes = forward(values, self.data.stored_now_kwh, self.lo, self.hi)
        return values, changes, values[0](self.data.stored_now_kwh)

    def finish(self, head_changes: np.ndarray) -> np.ndarray:
        """Battery AC exchange for all slots: given head changes, then the best tail."""
        stored = self.data.stored_now_kwh + float(head_changes.sum())
        stored = min(max(stored, self.lo), self.hi)
        tail_changes = forward(self.tail_values, stored, self.lo, self.hi)
        return self.battery_ac(np.concatenate([head_changes, tail_changes]))

    def solve_fixed_ev(self, ev_kwh: np.ndarray) -> np.ndarray:
        """Battery AC exchange per slot for a fixed EV schedule (zero from departure on)."""
        table = self.table(self.data.load_kwh + ev_kwh, np.zeros(self.data.slots), 0.0)
        _, changes, _ = self._head(table)
        return self.finish(changes)

    def solve_with_reward(self, reward: float) -> "_Solution":
        """Minimise cost - reward * EV kWh delivered over the slots before departure."""
        data = self.data
        dep = self.departure
        table = self.table(data.load_kwh, data.ev_cap_kwh, reward * data.ev_eff)
        _, changes, value = self._head(table)
        demand = data.load_kwh[:dep] + self.battery_ac(changes)
        ev = np.zeros(data.slots)
        if _priced(data):
            ev[:dep] = _priced_ev(_first_slots(data, dep), data.load_kwh[:dep], demand,
                                  data.ev_cap_kwh[:dep], np.full(dep, reward * data.ev_eff),
                                  self.penalty)
        else:
            ev[:dep] = ev_energy(_first_slots(data, dep), demand, data.ev_cap_kwh[:dep],
                                 reward * data.ev_eff, self.penalty)
        kwh = float(ev.sum() * data.ev_eff)
        return _Solution(reward, value + reward * kwh, kwh, ev, changes)


class _Solution:
    """One Lagrangian solution: its true cost (without the reward) and what it delivers."""

    def __init__(self, reward: float, cost: float, kwh: float, ev: np.ndarray,
                 changes: np.ndarray):
        self.reward, self.cost, self.kwh, self.ev, self.changes = reward, cost, kwh, ev, changes


def _first_slots(data: SlotData, end: int) -> SlotData:
    """The first `end` slots of `data` (the arrays ev_energy reads)."""
    head = SlotData(
        start_s=data.start_s[:end], hours=data.hours[:end],
        import_price=data.import_price[:end], export_price=data.export_price[:end],
        load_kwh=data.load_kwh[:end], pv_kwh=data.pv_kwh[:end],
        import_cap_kwh=data.import_cap_kwh[:end], export_cap_kwh=data.export_cap_kwh[:end])
    if _priced(data):
        for name in _PRICED_FIELDS[:-1]:
            setattr(head, name, getattr(data, name)[:end])
        head.others_per_kwh = data.others_per_kwh
    return head


#: a car's view with the other cars priced at fixed rewards (`_priced_view`): their room
#: (slots x cars), what they may draw together beside this car's fixed minimum, the view's
#: own load (this car's minimum is what a row's load has above it), rewards per AC kWh
_PRICED_FIELDS = ("others_caps", "others_shared", "others_base_load", "others_per_kwh")


def _priced(data: SlotData) -> bool:
    return getattr(data, "others_caps", None) is not None


def _priced_inputs(data: SlotData, load_kwh: np.ndarray, ev_cap_kwh: np.ndarray,
                   per_kwh: np.ndarray):
    """(caps, rewards, shared) of this car (first column) and the priced other cars: the
    minimum this car has in its load comes off the shared limit."""
    caps = np.column_stack([ev_cap_kwh, data.others_caps])
    rewards = np.column_stack([per_kwh, np.broadcast_to(data.others_per_kwh,
                                                       data.others_caps.shape)])
    shared = np.maximum(data.others_shared - (load_kwh - data.others_base_load), 0.0)
    return caps, rewards, shared


def _priced_table(data: SlotData, load_kwh: np.ndarray, ev_cap_kwh: np.ndarray,
                  per_kwh: np.ndarray, penalty: float) -> SlotCostTable:
    """The slot costs of a priced view (this car rewarded `per_kwh` per row)."""
    caps, rewards, shared = _priced_inputs(data, load_kwh, ev_cap_kwh, per_kwh)
    return multi_slot_cost_table(data, load_kwh, caps, rewards, shared, penalty)


def _priced_ev(data: SlotData, load_kwh: np.ndarray, demand_kwh: np.ndarray,
               ev_cap_kwh: np.ndarray, per_kwh: np.ndarray, penalty: float) -> np.ndarray:
    """This car's energy per slot in a priced view (`multi_ev_energy`'s first column)."""
    caps, rewards, shared = _priced_inputs(data, load_kwh, ev_cap_kwh, per_kwh)
    return multi_ev_energy(data, demand_kwh, caps, rewards, shared, penalty)[:, 0]


def _schedule(solver: _Solver) -> tuple[np.ndarray, np.ndarray | None, Shortfall | None]:
    """(EV AC kWh per slot, battery changes before departure if already known, shortfall).

    The dual q(r) = min over schedules of cost - r * (kWh - need) is concave piecewise-linear
    in the reward r; each solved schedule is a line under it. Kelley's method intersects the
    best line from below the need with the best from above; the mix of the two schedules that
    delivers exactly the need costs at most the intersection's value, and every solve's dual
    value is a lower bound on the optimum. The search stops when the two agree (to 1e-6
    relative): the mix is then optimal for the planning problem.

    Also leaves on `solver` what the minimum-power search starts from: `lp_bound` (a proven
    lower bound on the cost, in the DP's units), `lp_reward` (the final reward) and
    `lp_changes` (the battery's head changes of that solution, or of the mixed pair).
    """
    data = solver.data
    need = data.ev_need_kwh
    tol = 1e-6 * max(1.0, need)
    if need <= 0:
        return np.zeros(data.slots), None, None
    if data.ev_cap_kwh.sum() <= 0:
        return np.zeros(data.slots), None, Shortfall(need, _shortfall_reason(data, 0.0))
    low, high = _bracket(solver, need, tol)
    if high is None:
        solver.remember(low.cost, low.reward, low.changes)
        return low.ev, low.changes, Shortfall(need - low.kwh, _shortfall_reason(data, low.kwh))
    if low is None or abs(high.kwh - need) <= tol:
        solver.remember(high.cost, high.reward, high.changes)
        return high.ev, high.changes, None
    if abs(low.kwh - need) <= tol:
        solver.remember(low.cost, low.reward, low.changes)
        return low.ev, low.changes, None
    found = _drive(_kelley(low, high, need, tol), solver.solve_with_reward)
    if found.hit is not None:
        solver.remember(found.lower, found.hit.reward, found.hit.changes)
        return found.hit.ev, found.hit.changes, None
    low, high = found.low, found.high
    # the mix of the two delivers exactly the need; the battery is then re-planned for it
    share = (need - low.kwh) / (high.kwh - low.kwh)
    solver.remember(found.lower, (high.cost - low.cost) / (high.kwh - low.kwh),
                    (1.0 - share) * low.changes + share * high.changes)
    return (1.0 - share) * low.ev + share * high.ev, None, None


class _Found:
    """A finished reward search: an exact hit, or the two solutions either side of the need
    whose mix is optimal; `upper` bounds the cost from above, `lower` from below."""

    def __init__(self, low, high, hit, upper: float, lower: float):
        self.low, self.high, self.hit, self.upper, self.lower = low, high, hit, upper, lower


def _kelley(low: _Solution, high: _Solution, need: float, tol: float):
    """Kelley's cutting planes between `low` and `high` (a generator of rewards to solve at,
    each sent back its solution; returns a `_Found`)."""
    # q at any reward is a lower bound on the optimum; the mix costs at most `model`
    best_dual = max(s.cost + s.reward * (need - s.kwh) for s in (low, high))
    for _ in range(_KELLEY_MAX_ROUNDS):
        reward = (high.cost - low.cost) / (high.kwh - low.kwh)
        model = low.cost + reward * (need - low.kwh)
        if model - best_dual <= _GAP_TOLERANCE * (1.0 + abs(model)):
            break
        trial = yield reward
        if abs(trial.kwh - need) <= tol:
            return _Found(low, high, trial, trial.cost, trial.cost)
        dual = trial.cost + reward * (need - trial.kwh)
        best_dual = max(best_dual, dual)
        if dual >= model - _GAP_TOLERANCE * (1.0 + abs(model)):
            break
        if trial.kwh < need:
            low = trial
        else:
            high = trial
    reward = (high.cost - low.cost) / (high.kwh - low.kwh)
    upper = low.cost + reward * (need - low.kwh)
    return _Found(low, high, None, upper, min(best_dual, upper))


def _drive(search, solve):
    """Run a reward-search generator with one solve per reward."""
    try:
        reward = next(search)
        while True:
            reward = search.send(solve(reward))
    except StopIteration as stop:
        return stop.value


def _first_guess(data: SlotData) -> float:
    """Reward per delivered kWh at which the EV alone (no battery) would just meet its need.

    Fill the plugged-in slots cheapest first: PV surplus at the export price it would have
    earned, then grid import at the import price. A starting point for the exact search only.
    """
    window = data.ev_cap_kwh > 0
    surplus = np.clip(data.pv_kwh - data.load_kwh, 0.0, None)[window]
    cap = data.ev_cap_kwh[window]
    from_pv = np.minimum(surplus, cap)
    amounts = np.concatenate([from_pv, cap - from_pv])
    prices = np.concatenate([np.maximum(data.export_price[window], 0.0),
                             data.import_price[window]])
    order = np.argsort(prices, kind="stable")
    filled = np.cumsum(amounts[order]) * data.ev_eff
    k = min(int(np.searchsorted(filled, data.ev_need_kwh)), len(order) - 1)
    return float(prices[order][k]) / data.ev_eff


def _bracket(solver: _Solver, need: float, tol: float):
    """Two solutions delivering less and more than `need`, from the first guess outwards.

    Returns (low, high); high is None when even the largest reward delivers too little (then
    low is that best effort); low is None when even a large negative reward delivers too much.
    """
    data = solver.data
    if data.ev_cap_kwh.sum() * data.ev_eff < need - tol:  # not even at full power throughout
        return solver.solve_with_reward(solver.max_reward), None
    scale = _price_scale(data)
    guess = _first_guess(data)
    first = solver.solve_with_reward(guess)
    if abs(first.kwh - need) <= tol:
        return first, first
    direction = 1.0 if first.kwh < need else -1.0
    low, high = (first, None) if direction > 0 else (None, first)
    # the guess is often exactly the optimal reward (a price breakpoint): look just beside it,
    # then further out in growing steps, shortened when the last two solves extrapolate to the
    # need sooner (with 50 % margin to make sure it is crossed)
    previous = None
    for step in (1e-7, 0.01, 0.04, 0.16, 0.64):
        reward = guess + direction * step * scale
        last = low if direction > 0 else high
        if previous is not None and abs(last.reward - previous.reward) >= 0.005 * scale \
                and (last.kwh - previous.kwh) * direction > 0:
            slope = (last.kwh - previous.kwh) / (last.reward - previous.reward)
            secant = last.reward + 1.5 * (need - last.kwh) / slope
            nearer = max(secant, last.reward + 0.002 * scale) if direction > 0 \
                else min(secant, last.reward - 0.002 * scale)
            reward = min(reward, nearer) if direction > 0 else max(reward, nearer)
        previous = last
        trial = solver.solve_with_reward(reward)
        if trial.kwh < need - tol:
            low = trial
        else:
            high = trial
        if low is not None and high is not None:
            return low, high
    trial = solver.solve_with_reward(direction * solver.max_reward)
    if trial.kwh < need - tol:
        low = trial
    else:
        high = trial
    return low, high


def _shortfall_reason(data: SlotData, deliverable_kwh: float) -> str:
    window = data.ev_cap_kwh > 0
    if not window.any():
        return "EV not plugged in before departure"
    at_full_power = data.ev_cap_kwh.sum() * data.ev_eff
    if at_full_power < data.ev_need_kwh - 1e-9:
        hours = float(data.hours[window].sum())
        return (f"not enough time: {hours:.2f} h plugged in at the EV's maximum power deliver "
                f"{at_full_power:.2f} kWh")
    return (f"grid connection (fuse) limit: at most {deliverable_kwh:.2f} kWh can reach the EV "
            "before departure alongside the house load")


def _slot_costs(data: SlotData, demand_kwh: np.ndarray, penalty: float) -> np.ndarray:
    """Grid cost of each slot for the given total demand (PV used best, fuse overload penalised)."""
    net = grid_exchange(data, demand_kwh)
    imp = np.maximum(net, 0.0)
    return (data.import_price * imp - data.export_price * np.maximum(-net, 0.0)
            + penalty * np.maximum(0.0, imp - data.import_cap_kwh))


def _whole_slots(data: SlotData, total: float, order: np.ndarray) -> list[np.ndarray]:
    """EV schedules delivering `total` AC kWh in whole slots at >= minimum power, in `order`.

    Slots are filled at full power in the given order until less than a full slot is left. If
    that remainder is at least the slot's minimum it is charged as is (exact). Otherwise there
    are two ways, both returned: charge the remainder's slot at the minimum (a little more than
    needed, less than one slot at minimum power), or split: take the missing part from the last
    full slot (if that keeps it at or above its minimum) so the total is exact.
    """
    cap, minimum = data.ev_cap_kwh, data.ev_min_kwh
    ev = np.zeros(data.slots)
    remaining = total
    last_full = -1
    for t in order:
        if remaining <= 1e-9:
            break
        if cap[t] <= 0:
            continue
        if remaining >= cap[t] - 1e-9:
            ev[t] = cap[t]
            remaining -= cap[t]
            last_full = t
            continue
        if remaining >= minimum[t] - 1e-9:
            ev[t] = remaining
            return [ev]
        over = ev.copy()
        over[t] = minimum[t]
        schedules = [over]
        short = minimum[t] - remaining
        if last_full >= 0 and ev[last_full] - short >= minimum[last_full] - 1e-9:
            split = ev.copy()
            split[last_full] -= short
            split[t] = minimum[t]
            schedules.append(split)
        return schedules
    return [ev]  # everything at full power (or the plugged-in time ran out)


def _effective_cost_orders(solver: _Solver, batteries: list[np.ndarray],
                           block: np.ndarray) -> list[np.ndarray]:
    """Plugged-in slots, cheapest first by the effective cost of charging `block` kWh there.

    A slot's effective cost is what that much EV charging adds to the grid bill there, given PV
    surplus and a battery plan (e.g. the LP optimum's, or the one without the EV): PV surplus
    that would have been exported costs only the export price, a slot where the battery covers
    the house costs the import price, and so on. One order per battery plan.
    """
    data = solver.data
    window = np.flatnonzero(data.ev_cap_kwh > 0)
    orders = []
    for battery in batteries:
        base = data.load_kwh + battery
        added = (_slot_costs(data, base + block, solver.penalty)
                 - _slot_costs(data, base, solver.penalty))
        per_kwh = added[window] / np.maximum(block[window], 1e-12)
        orders.append(window[np.lexsort((window, per_kwh))])
    return orders


_SLOT_FIELDS = ("start_s", "hours", "import_price", "export_price", "load_kwh", "pv_kwh",
                "import_cap_kwh", "export_cap_kwh", "charge_cap_kwh", "discharge_cap_kwh",
                "ev_cap_kwh", "ev_min_kwh")
_TABLE_FIELDS = ("d0", "cost0", "lengths", "slopes", "count", "knot_d", "knot_cost", "d_end",
                 "cost_end", "charge_count", "neg_slopes")


def _select(data: SlotData, slots: np.ndarray) -> SlotData:
    """`data` with one row per entry of `slots` (repeats allowed): the arrays `ev_energy`
    and `_table_rows` read, stacked for many problems."""
    stacked = copy.copy(data)
    for name in _SLOT_FIELDS:
        setattr(stacked, name, getattr(data, name)[slots])
    if _priced(data):
        for name in _PRICED_FIELDS[:-1]:
            setattr(stacked, name, getattr(data, name)[slots])
    return stacked


def _table_rows(data: SlotData, load_kwh: np.ndarray, ev_cap_kwh: np.ndarray,
                reward: np.ndarray, penalty: float) -> SlotCostTable:
    """`slot_cost_table` with its own EV reward in every row (the same formulas, see there)."""
    m0, lengths, slopes = grid_segments(data, penalty)
    value0 = -data.export_price * data.export_cap_kwh - reward * ev_cap_kwh
    lengths = np.concatenate([lengths, ev_cap_kwh[:, None]], 1)
    slopes = np.concatenate([slopes, reward[:, None]], 1)
    return battery_table(data, m0 - ev_cap_kwh - load_kwh, value0, lengths, slopes)


_PAD = 1e30  # the slope of padding segments (length 0): sorts after every real slope
#: row-wise dot product of two 2-d arrays (numpy >= 2 has it as a fast gufunc)
_rowdot = getattr(np, "vecdot", None) or (lambda a, b: np.einsum("ij,ij->i", a, b))


class _Batch:
    """Many reward solves on the slots before departure at once (one DP sweep for all).

    Row k solves the problem with house load `loads[k]`, EV room `caps[k]` and reward
    `rewards[k]` exactly as `_Solver.solve_with_reward` does (the same merge of slopes, the
    same tie order, the same tail after departure), with every row's value function kept in
    one padded array, so the per-slot numpy work is shared by all rows.
    """

    def __init__(self, solver: _Solver):
        self.solver = solver
        self.dep = solver.departure
        self._stacks: dict[int, SlotData] = {}

    def _stack(self, rows: int) -> SlotData:
        if rows not in self._stacks:
            self._stacks[rows] = _select(self.solver.data, np.tile(np.arange(self.dep), rows))
        return self._stacks[rows]

    def _table(self, stack: SlotData, loads: np.ndarray, caps: np.ndarray,
               per_kwh: np.ndarray) -> SlotCostTable:
        """The slot-cost rows; a slot without EV room and without a minimum moved into its
        load is the solver's table without the EV (whatever the reward), so only the others
        are built."""
        solver, dep = self.solver, self.dep
        rows = len(loads) // dep
        plain = solver.no_ev_table
        table = SlotCostTable(*(np.tile(getattr(plain, name)[:dep], (rows,) + (1,) * (
            getattr(plain, name).ndim - 1)) for name in _TABLE_FIELDS))
        differ = (caps > 0) | (loads != stack.load_kwh)
        if differ.any():
            build = _priced_table if _priced(stack) else _table_rows
            part = build(_select(stack, np.flatnonzero(differ)), loads[differ],
                         caps[differ], per_kwh[differ], solver.penalty)
            for name in _TABLE_FIELDS:
                getattr(table, name)[differ] = getattr(part, name)
        return table

    def solve(self, loads: np.ndarray, caps: np.ndarray, rewards: np.ndarray
              ) -> list[_Solution]:
        solver, data, dep = self.solver, self.solver.data, self.dep
        rows = len(rewards)
        stack = self._stack(rows)
        per_kwh = np.repeat(rewards * data.ev_eff, dep)
        table = self._table(stack, loads.reshape(-1), caps.reshape(-1), per_kwh)
        v_end = solver.tail_values[0]
        if solver.hi - solver.lo <= 1e-12:  # no battery: V = sum of g_t(0)
            widths = np.diff(table.knot_d, axis=1)
            rises = np.diff(table.knot_cost, axis=1)
            slopes = rises / np.where(widths > 0, widths, 1.0)
            at_zero = table.knot_cost[:, 0] + (slopes * np.clip(-table.knot_d[:, :-1], 0.0,
                                                                widths)).sum(1)
            values = at_zero.reshape(rows, dep).sum(1) + float(v_end.ys[0])
            changes = np.zeros((rows, dep))
        else:
            values, changes = self._sweep(table, rows, v_end)
        battery = np.where(changes > 0, changes / data.charge_eff, changes * data.discharge_eff)
        if _priced(stack):
            ev_head = _priced_ev(stack, loads.reshape(-1), (loads + battery).reshape(-1),
                                 caps.reshape(-1), per_kwh, solver.penalty).reshape(rows, dep)
        else:
            ev_head = ev_energy(stack, (loads + battery).reshape(-1), caps.reshape(-1),
                                per_kwh[:, None], solver.penalty).reshape(rows, dep)
        kwh = ev_head.sum(1) * data.ev_eff
        out = []
        for k in range(rows):
            ev = np.zeros(data.slots)
            ev[:dep] = ev_head[k]
            reward = float(rewards[k])
            out.append(_Solution(reward, float(values[k]) + reward * float(kwh[k]),
                                 float(kwh[k]), ev, changes[k]))
        return out

    def _sweep(self, table: SlotCostTable, rows: int, v_end: ValueFunction
               ) -> tuple[np.ndarray, np.ndarray]:
        """Backward merge and forward pass of `value_dp` for all rows; (V_0 at the stored
        energy now, head changes per row)."""
        dep, lo, hi = self.dep, self.solver.lo, self.solver.hi
        n, m = table.lengths.shape
        count = table.count
        split = count - table.charge_count
        index = np.arange(n)[:, None]
        # g mirrored: its charging segments (columns split..count) first, discharging after
        width_c = max(int(table.charge_count.max()), 1)
        cols = split[:, None] + np.arange(width_c)
        valid = cols < count[:, None]
        cols = np.minimum(cols, m - 1)
        # per slot t, [t] is a contiguous (rows x width) block
        c_slopes = np.where(valid, table.neg_slopes[index, cols], _PAD).reshape(rows, dep, -1)
        c_lengths = np.where(valid, table.lengths[index, cols], 0.0).reshape(rows, dep, -1)
        c_slopes = np.ascontiguousarray(c_slopes.transpose(1, 0, 2))
        c_lengths = np.ascontiguousarray(c_lengths.transpose(1, 0, 2))
        width_d = max(int(split.max()), 1)
        cols = np.broadcast_to(np.arange(width_d), (n, width_d))
        valid = cols < split[:, None]
        cols = np.minimum(cols, m - 1)
        d_slopes = np.where(valid, table.neg_slopes[index, cols], _PAD).reshape(rows, dep, -1)
        d_lengths = np.where(valid, table.lengths[index, cols], 0.0).reshape(rows, dep, -1)
        d_slopes = np.ascontiguousarray(d_slopes.transpose(1, 0, 2))
        d_lengths = np.ascontiguousarray(d_lengths.transpose(1, 0, 2))
        c_tags, d_tags = np.zeros((rows, width_c)), np.zeros((rows, width_d))
        x0s = np.ascontiguousarray((lo - table.d_end).reshape(rows, dep).T)[:, :, None]
        cost_ends = np.ascontiguousarray(table.cost_end.reshape(rows, dep).T)
        v_len = np.tile(v_end.lengths, (rows, 1))
        v_slope = np.tile(v_end.slopes, (rows, 1))
        v_y0 = np.full(rows, float(v_end.ys[0]))
        offsets = np.arange(rows)[:, None]
        policy: list = [None] * dep
        minimum, maximum, concat, rowdot = np.minimum, np.maximum, np.concatenate, _rowdot
        ones = np.ones((rows, 8))
        for t in range(dep - 1, -1, -1):
            slopes = concat((c_slopes[t], v_slope, d_slopes[t]), 1)
            lengths = concat((c_lengths[t], v_len, d_lengths[t]), 1)
            if ones.shape[1] < v_len.shape[1]:
                ones = np.ones((rows, 2 * v_len.shape[1]))
            # which segments are V_{t+1}'s
            from_v = concat((c_tags, ones[:, :v_len.shape[1]], d_tags), 1)
            order = slopes.argsort(axis=1, kind="stable")
            order += offsets * slopes.shape[1]
            slopes = slopes.take(order)
            # every row is sorted, so the column minima are too: the first all-padding column
            real = int(slopes.min(0).searchsorted(_PAD))
            order = order[:, :real]
            slopes = slopes[:, :real]
            lengths = lengths.take(order)
            from_v = from_v.take(order)
            ends = lengths.cumsum(1)
            ends += x0s[t]
            starts = ends - lengths
            left = minimum(ends, lo)
            left -= minimum(starts, lo)
            y_lo = rowdot(slopes, left)
            y_lo += v_y0
            y_lo += cost_ends[t]
            start_in = minimum(maximum(starts, lo), hi)
            v_len = minimum(maximum(ends, lo), hi)
            v_len -= start_in
            policy[t] = (start_in, v_len * from_v, rowdot(left, from_v))
            np.copyto(slopes, _PAD, where=v_len <= 0)
            v_slope = slopes
            v_y0 = y_lo
        stored_now = self.solver.data.stored_now_kwh
        e = np.full(rows, min(max(stored_now, lo), hi))
        values = v_y0 + (np.where(v_len > 0, v_slope, 0.0)
                         * minimum(maximum(e[:, None] - policy[0][0], 0.0), v_len)).sum(1)
        path = np.empty((rows, dep + 1))
        path[:, 0] = e
        for t in range(dep):
            start_in, moved, before = policy[t]
            step = minimum(maximum(e[:, None] - start_in, 0.0), moved).sum(1)
            e = minimum(maximum(step + before + lo, lo), hi)
            path[:, t + 1] = e
        path[:, 0] = stored_now
        return values, np.diff(path, axis=1)


def _near(need: float, tol: float, deliverable: float, scale: float, guess: float,
          max_reward: float):
    """The reward search of `_bracket` + `_kelley`, started just either side of `guess`.

    A generator for `_Search.run`: yields tuples of rewards, is sent their solutions, returns
    a `_Found` (None when the need cannot be delivered).
    """
    if need <= tol:  # nothing left to choose: one solve costs the fixed schedule
        (only,) = yield (guess,)
        return _Found(only, only, only, only.cost, only.cost)
    if deliverable < need - tol:
        return None
    beside = 1e-7 * scale
    below, above = yield (guess - beside, guess + beside)
    for trial in (below, above):
        if abs(trial.kwh - need) <= tol:
            return _Found(trial, trial, trial, trial.cost, trial.cost)
    low = high = None
    if below.kwh > need:
        direction, high, last, previous = -1.0, below, below, above
    elif above.kwh < need:
        direction, low, last, previous = 1.0, above, above, below
    else:
        low, high = below, above
    for step in (0.01, 0.04, 0.16, 0.64, None):
        if low is not None and high is not None:
            break
        if step is None:
            reward = direction * max_reward
        else:
            reward = guess + direction * step * scale
            if abs(last.reward - previous.reward) >= 0.005 * scale \
                    and (last.kwh - previous.kwh) * direction > 0:
                slope = (last.kwh - previous.kwh) / (last.reward - previous.reward)
                secant = last.reward + 1.5 * (need - last.kwh) / slope
                nearer = max(secant, last.reward + 0.002 * scale) if direction > 0 \
                    else min(secant, last.reward - 0.002 * scale)
                reward = min(reward, nearer) if direction > 0 else max(reward, nearer)
        (trial,) = yield (reward,)
        if abs(trial.kwh - need) <= tol:
            return _Found(trial, trial, trial, trial.cost, trial.cost)
        if trial.kwh < need:
            low = trial
        else:
            high = trial
        previous, last = last, trial
    if high is None:
        return None
    if low is None:  # more than needed even when charging is penalised: take it
        return _Found(high, high, high, high.cost, high.cost)
    kelley = _kelley(low, high, need, tol)
    try:
        reward = next(kelley)
        while True:
            (trial,) = yield (reward,)
            reward = kelley.send(trial)
    except StopIteration as stop:
        return stop.value


class _Node:
    """EV slots fixed on (each at least its minimum: the minimum moved into the house load),
    fixed off, or free (0 to the maximum, the convex relaxation); once `_Search.run` has
    solved it, its best schedule (`ev`), bounds on its cost (in the DP's units: the plan's
    cost less the terminal value of the energy stored now), the final reward, and the slots
    still below the minimum (`fractional`)."""

    def __init__(self, data: SlotData, total: float, on: np.ndarray, free: np.ndarray):
        self.on, self.free = on, free
        self.at_min = np.where(on, data.ev_min_kwh, 0.0)
        self.cap = np.where(on, data.ev_cap_kwh - data.ev_min_kwh,
                            np.where(free, data.ev_cap_kwh, 0.0))
        rest = total - float(self.at_min.sum())
        self.feasible = bool(on.any() or free.any()) and float(
            self.at_min.sum() + self.cap.sum()) >= total - 1e-9
        if rest < -1e-9:  # the minimum alone is too much: fine by less than one slot's minimum
            self.feasible &= -rest < float(self.at_min[on].min()) - 1e-9
        if rest <= 1e-9:
            self.cap = np.zeros(data.slots)
        self.need = max(rest, 0.0) * data.ev_eff
        self.ev: np.ndarray | None = None
        self.upper = self.lower = np.inf
        self.reward: float | None = None  # the final reward: where a nearby node starts
        self.found: _Found | None = None
        self.fractional = np.zeros(0, dtype=int)

    @property
    def key(self) -> bytes:
        return self.on.tobytes() + self.free.tobytes()

    def settle(self, data: SlotData, found: _Found | None) -> None:
        self.found = found
        if found is None:
            self.feasible = False
            return
        if found.hit is not None:
            extra = found.hit.ev
        else:
            low, high = found.low, found.high
            share = (self.need - low.kwh) / (high.kwh - low.kwh)
            extra = (1.0 - share) * low.ev + share * high.ev
        self.ev = self.at_min + extra
        self.upper, self.lower = found.upper, found.lower
        low, high = found.low, found.high
        self.reward = found.hit.reward if found.hit is not None or high.kwh == low.kwh else (
            (high.cost - low.cost) / (high.kwh - low.kwh))
        self.fractional = np.flatnonzero((self.ev > 1e-9) & (self.ev < data.ev_min_kwh - 1e-9))


class _Search:
    """The search over EV slot sets: the nodes seen, the searches still running, the best
    whole-slot node so far and the proven lower bound (the LP optimum's)."""

    def __init__(self, solver: _Solver, total: float):
        data = solver.data
        self.solver, self.data, self.total = solver, data, total
        self.batch = _Batch(solver)
        self.scale = _price_scale(data)
        self.lower = solver.lp_bound
        window = data.ev_cap_kwh > 0
        bill = total * float(np.mean(np.abs(data.import_price[window])))
        self.gap = _MIN_POWER_GAP * (1.0 + abs(self.lower) + bill)
        self.best: _Node | None = None
        self.seen: set[bytes] = set()
        self.pending: list[list] = []  # [node, its search, the rewards it asked, dual bound]
        self.sweeps = 0  # `_Batch` sweeps made so far

    def beaten(self, bound: float) -> bool:
        """Whether a node with this lower bound cannot improve on the best by the gap."""
        return self.best is not None and bound >= self.best.upper - self.gap

    def done(self) -> bool:
        return self.beaten(self.lower)

    def new(self, on: np.ndarray, free: np.ndarray) -> _Node | None:
        node = _Node(self.data, self.total, on, free)
        if node.key in self.seen or not node.feasible:
            return None
        self.seen.add(node.key)
        return node

    def on_slots(self, slots: np.ndarray) -> _Node | None:
        on = np.zeros(self.data.slots, dtype=bool)
        on[slots] = True
        return self.new(on & (self.data.ev_cap_kwh > 0), np.zeros(self.data.slots, dtype=bool))

    def _settled(self, node: _Node, found: _Found | None) -> None:
        node.settle(self.data, found)
        if node.feasible and len(node.fractional) == 0 and (
                self.best is None or node.upper < self.best.upper - 1e-12 * (
                    1.0 + abs(self.best.upper))):
            self.best = node

    def run(self, nodes: list[_Node], guesses: list[float] | None = None,
            calls: int | None = None) -> list[_Node]:
        """Solve the nodes' convex problems, their reward searches side by side (one `_Batch`
        sweep per step), each started at its guess (default: the LP's final reward).

        A node is dropped once its dual bound shows it cannot beat the best, and everything
        stops once the best is proven within the gap. With `calls`, at most that many sweeps
        are made: searches still running go on in the next `run`, so one slow search does not
        hold up the rest. Returns the nodes settled in this run.
        """
        data, dep, solver = self.data, self.batch.dep, self.solver
        settled: list[_Node] = []
        for k, node in enumerate(nodes):
            tol = 1e-6 * max(1.0, node.need)
            guess = solver.lp_reward if guesses is None else guesses[k]
            search = _near(node.need, tol, float(node.cap.sum()) * data.ev_eff, self.scale,
                           guess, solver.max_reward)
            try:
                self.pending.append([node, search, next(search), -np.inf])
            except StopIteration as stop:
                self._settled(node, stop.value)
                settled.append(node)
        made = 0
        while self.pending and not self.done() and (calls is None or made < calls):
            made += 1
            self.sweeps += 1
            rows = [(entry[0], reward) for entry in self.pending for reward in entry[2]]
            loads = np.stack([data.load_kwh[:dep] + node.at_min[:dep] for node, _ in rows])
            caps = np.stack([node.cap[:dep] for node, _ in rows])
            solutions = self.batch.solve(loads, caps, np.array([r for _, r in rows]))
            following, i = [], 0
            for entry in self.pending:
                node, search, asked, bound = entry
                answer = solutions[i:i + len(asked)]
                i += len(asked)
                for trial in answer:
                    bound = max(bound, trial.cost + trial.reward * (node.need - trial.kwh))
                try:
                    asked = search.send(answer)
                except StopIteration as stop:
                    self._settled(node, stop.value)
                    settled.append(node)
                    continue
                if self.beaten(bound):  # pruned: cannot beat the best
                    node.feasible = False
                    continue
                following.append([node, search, asked, bound])
            self.pending = following
        if self.done():
            for entry in self.pending:
                entry[0].feasible = False
            self.pending = []
        return settled


def _most_used(data: SlotData, ev: np.ndarray, total: float) -> list[np.ndarray]:
    """The most used slots of `ev`: as many as their minimum allows, and one more."""
    used = np.flatnonzero(ev > 1e-9)
    used = used[np.lexsort((used, -ev[used]))]
    exact = len(used)
    while exact > 1 and data.ev_min_kwh[used[:exact]].sum() > total + 1e-9:
        exact -= 1
    return [used[:count] for count in sorted({exact, min(exact + 1, len(used))}) if count]


def _start_sets(solver: _Solver, ev: np.ndarray, total: float) -> list[np.ndarray]:
    """Slot sets worth solving first: whole-slot fills in several orders, the LP optimum's
    most used slots, the cheapest by the effective cost of charging at the minimum."""
    data = solver.data
    window = np.flatnonzero(data.ev_cap_kwh > 0)
    lp_battery = solver.lp_battery()
    orders = _effective_cost_orders(solver, [lp_battery], data.ev_cap_kwh)
    orders.append(window[np.lexsort((window, data.import_price[window]))])
    orders.append(window)  # at once
    sets = [np.flatnonzero(s > 1e-9) for order in orders for s in _whole_slots(data, total, order)]
    sets += _most_used(data, ev, total)
    fewest = int(np.searchsorted(np.cumsum(np.sort(data.ev_cap_kwh[window])[::-1]),
                                 total - 1e-9)) + 1
    counts = sorted({fewest, *(len(s) for s in _most_used(data, ev, total))})
    for order in _effective_cost_orders(solver, [lp_battery], data.ev_min_kwh):
        sets += [order[:count] for count in counts]
    return sets


def _node_changes(node: _Node) -> np.ndarray:
    """The stored-energy changes before departure that go with a solved node's schedule: its
    exact solution, or the same mix of the two either side of the need (feasible, and costing
    at most `node.upper`, both problems being convex)."""
    found = node.found
    if found.hit is not None:
        return found.hit.changes
    share = (node.need - found.low.kwh) / (found.high.kwh - found.low.kwh)
    return (1.0 - share) * found.low.changes + share * found.high.changes


def _node_battery(solver: _Solver, node: _Node) -> np.ndarray:
    """The battery AC exchange of a solved node's schedule (zero from departure on)."""
    battery = np.zeros(solver.data.slots)
    battery[:solver.departure] = solver.battery_ac(_node_changes(node))
    return battery


def _knapsack_sets(solver: _Solver, battery: np.ndarray, total: float) -> list[np.ndarray]:
    """Slot sets that are best for a fixed battery plan.

    With the battery fixed, each slot's cost is a convex function of its EV energy e, and
    the choice splits by slot once the total is priced at lam per kWh: every slot takes the
    e in {0} or [min, max] that minimises cost - lam e (checked at 0, the minimum, the
    maximum, and the kinks between: where PV surplus or the fuse runs out). The smallest lam
    that delivers the total, and the largest that does not, give the sets.
    """
    data = solver.data
    window = data.ev_cap_kwh > 0
    base = data.load_kwh + battery
    low, high = data.ev_min_kwh, data.ev_cap_kwh
    kinks = [np.zeros(data.slots), low, high,
             np.clip(data.pv_kwh - base, low, high),
             np.clip(data.pv_kwh + data.import_cap_kwh - base, low, high)]
    energy = np.stack(kinks, 1)
    before = _slot_costs(data, base, solver.penalty)
    cost = np.stack([_slot_costs(data, base + e, solver.penalty) - before for e in kinks], 1)
    energy[~window] = 0.0
    cost[~window] = 0.0

    def choice(lam: float) -> np.ndarray:
        return energy[np.arange(data.slots), np.argmin(cost - lam * energy, axis=1)]

    lo, hi = -solver.max_reward, solver.max_reward
    if choice(hi).sum() < total - 1e-9:
        return []
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if choice(mid).sum() >= total - 1e-9:
            hi = mid
        else:
            lo = mid
    above = np.flatnonzero(choice(hi) > 1e-9)
    below = np.flatnonzero(choice(lo) > 1e-9)
    return [above, below, np.union1d(above, below)]


def _sweep_sets(solver: _Solver, total: float) -> list[np.ndarray]:
    """The k cheapest slots by the effective cost of charging at the minimum (with and
    without the EV in the battery's plan), for every k from as few as full power allows to as
    many as the minimum allows: what finds how many slots of PV surplus to run at the minimum
    when the LP optimum soaks it up in many slots at part power."""
    data = solver.data
    window = np.flatnonzero(data.ev_cap_kwh > 0)
    fewest = int(np.searchsorted(np.cumsum(np.sort(data.ev_cap_kwh[window])[::-1]),
                                 total - 1e-9)) + 1
    smallest = float(data.ev_min_kwh[window].min())
    most = min(len(window), int(total / smallest) + 1) if smallest > 0 else len(window)
    sets = []
    for order in _effective_cost_orders(solver, [solver.lp_battery(), solver.no_ev()],
                                        data.ev_min_kwh):
        sets += [order[:count] for count in range(max(fewest, 1), most + 1)]
    return sets


def _moves(data: SlotData, best: _Node, pool: list[np.ndarray]
           ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Slot sets next to the best one, the ones to try first and the ones to try when those
    bring nothing: drop one of its slots, add one of the most promising unused ones (the
    first few of each order in `pool`, and the unused neighbours in time of its slots), move
    one to a free neighbour in time; then swap one for another."""
    current = best.ev
    on = np.flatnonzero(best.on)
    lightest = on[np.lexsort((on, current[on]))][:_LOCAL_SEARCH_SWAPS]
    unused: list[int] = []
    for order in pool:
        fresh = [int(t) for t in order[current[order] <= 1e-9] if int(t) not in unused]
        unused += fresh[:_LOCAL_SEARCH_ADDS]
    free = (data.ev_cap_kwh > 0) & (current <= 1e-9)
    for t in on:
        for u in (t - 1, t + 1):
            if 0 <= u < data.slots and free[u] and int(u) not in unused:
                unused.append(int(u))
    first = [on[on != t] for t in on] + [np.append(on, t) for t in unused]
    # shifts: a slot to its free neighbour in time
    first += [np.append(on[on != t], u) for t in on for u in (t - 1, t + 1)
              if 0 <= u < data.slots and free[u]]
    # swaps: the least used slots for any of those, any slot for the first few of those
    pairs = [(t, u) for t in lightest for u in unused]
    pairs += [(t, u) for t in on for u in unused[:_LOCAL_SEARCH_SWAPS] if (t, u) not in pairs]
    return first, [np.append(on[on != t], u) for t, u in pairs]


def _merged_moves(best: _Node, moved: list[_Node]) -> np.ndarray | None:
    """All the improving moves from `best` that touch different slots, applied together
    (the best first): many small improvements in one step. None unless two or more apply."""
    improving = sorted((n for n in moved if n.feasible and n.upper < best.upper),
                       key=lambda n: n.upper)
    on = best.on.copy()
    touched = np.zeros_like(on)
    applied = 0
    for node in improving:
        change = node.on != best.on
        if (change & touched).any():
            continue
        on[change] = node.on[change]
        touched |= change
        applied += 1
    return np.flatnonzero(on) if applied >= 2 else None


def _paired_moves(best: _Node, tried: list[_Node]) -> list[np.ndarray]:
    """Two of the best moves tried from `best` at once (when none improved alone): what
    takes one slot out and another in at two places, e.g. with the battery between them."""
    good = sorted((n for n in tried if n.feasible and np.isfinite(n.upper)),
                  key=lambda n: n.upper)[:_PAIRED_MOVES]
    changes = [n.on != best.on for n in good]
    sets = []
    for i, j in itertools.combinations(range(len(good)), 2):
        if (changes[i] & changes[j]).any():
            continue
        on = best.on.copy()
        on[changes[i]] = good[i].on[changes[i]]
        on[changes[j]] = good[j].on[changes[j]]
        sets.append(np.flatnonzero(on))
    return sets


def _needs_rounding(data: SlotData, ev: np.ndarray) -> bool:
    minimum = data.ev_min_kwh
    return bool((minimum > 0).any() and ((ev > 1e-9) & (ev < minimum - 1e-9)).any())


def _apply_min_power(solver: _Solver, ev: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Make every EV slot either off or at least the charger's minimum power, at least cost.

    `ev` is the LP optimum without the minimum (its total is kept). Every candidate is a set
    of EV slots (or a branch-and-bound node: slots on, off or free), solved exactly as a convex
    problem (`_Node`), many at once (`_Search.run`). In order, stopping as soon as the best is
    proven within `_MIN_POWER_GAP` of the LP optimum (the usual case: the first sets):

    1. `_start_sets`: whole-slot fills in a few orders, the LP optimum's most used slots, the
       cheapest slots at the minimum;
    2. `_sweep_sets`: the k cheapest slots at the minimum, for every k, and `_knapsack_sets`
       (the best sets for the LP optimum's battery plan, and for the one without the EV);
    3. rounds of a local search around the best (`_moves`, then its swaps, then
       `_paired_moves`; `_knapsack_sets` for the best's battery plan; `_merged_moves`) and,
       when the LP optimum has at most `_BRANCH_FRACTIONAL` slots below the minimum, a
       best-first branch and bound on them (with `_most_used` of each node as a guess), for
       at most `_MIN_POWER_SWEEPS` more sweeps, and `_BRANCH_SWEEPS` once the local search is
       through and nothing better turns up. One sweep per round: a search that needs more
       goes on in the next round.

    The battery plan is the one solved with the best schedule (`_node_changes`). Returns (EV
    schedule, battery AC exchange, notes).
    """
    data = solver.data
    total = float(ev.sum())
    window = np.flatnonzero(data.ev_cap_kwh > 0)
    search = _Search(solver, total)
    search.run([n for n in map(search.on_slots, _start_sets(solver, ev, total)) if n],
               calls=_FIRST_SWEEPS)
    if not search.done():
        sets = _sweep_sets(solver, total)
        for battery in (solver.lp_battery(), solver.no_ev()):
            sets += _knapsack_sets(solver, battery, total)
        search.run([n for n in map(search.on_slots, sets) if n], calls=_FIRST_SWEEPS)
    root = _Node(data, total, np.zeros(data.slots, dtype=bool), data.ev_cap_kwh > 0)
    root.ev, root.lower, root.reward = ev, solver.lp_bound, solver.lp_reward
    root.fractional = np.flatnonzero((ev > 1e-9) & (ev < data.ev_min_kwh - 1e-9))
    tiebreak = itertools.count(1)
    # branching pays only with few slots below the minimum: with many (PV surplus soaked up
    # at part power) the tree is far too big for the budget, and the local search does it
    open_nodes = [(root.lower, 0, root)] if len(root.fractional) <= _BRANCH_FRACTIONAL else []
    pool: list[np.ndarray] = []
    moved_from = None
    stages: list = []  # the local search's next moves around the best: lists of slot sets
    tried: list[_Node] = []  # the moves solved since the best changed
    queued: list[_Node] = []
    idle = 0
    budget = search.sweeps + _MIN_POWER_SWEEPS
    while search.sweeps < budget and not search.done():
        open_nodes = [entry for entry in open_nodes if not search.beaten(entry[0])]
        heapq.heapify(open_nodes)
        if search.best is not None and not open_nodes and not search.pending and (
                moved_from is search.best) and not stages and not queued:
            break  # proven, or no branch left and the local search found nothing better
        nodes, queued = queued, []
        guesses = [solver.lp_reward] * len(nodes)
        best = search.best
        if best is not None and moved_from is not best:
            if not pool:
                batteries = [solver.no_ev(), solver.lp_battery()]
                pool = _effective_cost_orders(solver, batteries, data.ev_min_kwh)
                pool += _effective_cost_orders(solver, batteries, data.ev_cap_kwh)
                pool.append(window[np.lexsort((window, -ev[window]))])
                pool.append(window[np.lexsort((window, data.import_price[window]))])
            moved_from, tried = best, []
            first, swaps = _moves(data, best, pool)
            stages = [first + _knapsack_sets(solver, _node_battery(solver, best), total),
                      swaps, None]  # None: pairs of the best moves tried, made when due
        searching = best is not None and bool(stages)  # local-search moves this round
        if searching:
            sets = stages.pop(0)
            if sets is None:
                sets = _paired_moves(best, tried)
            moves = [n for n in map(search.on_slots, sets) if n]
            nodes += moves
            guesses += [best.reward] * len(moves)
        for _ in range(min(_BRANCH_NODES, len(open_nodes))):
            parent = heapq.heappop(open_nodes)[2]
            t = int(parent.fractional[np.argmax(parent.ev[parent.fractional])])
            for charge in (True, False):
                on, free = parent.on.copy(), parent.free.copy()
                on[t], free[t] = charge, False
                node = search.new(on, free)
                if node is not None:
                    nodes.append(node)
                    guesses.append(parent.reward)
        if not nodes and not search.pending:
            break
        before = search.best
        settled = search.run(nodes, guesses, 1)
        # rounds of branching alone that find nothing better end the search after a while
        idle = 0 if search.best is not before or searching else idle + 1
        if idle >= _BRANCH_SWEEPS:
            break
        for node in settled:
            if node.feasible and len(node.fractional) and not search.beaten(node.lower):
                heapq.heappush(open_nodes, (node.lower, next(tiebreak), node))
                queued += [n for n in map(search.on_slots, _most_used(data, node.ev, total))
                           if n]
        if before is not None:
            moved = [n for n in settled if not n.free.any()]
            tried += moved
            merged = _merged_moves(before, moved)
            if merged is not None:
                queued += [n for n in [search.on_slots(merged)] if n]
    search.run([], calls=_FIRST_SWEEPS)  # the searches still running, if not too long
    best = search.best
    if best is None:  # nothing feasible was found (cannot happen while the LP delivers)
        raise ValueError("no whole-slot EV schedule found")
    rounded = best.ev
    battery_ac = solver.finish(_node_changes(best))
    notes = ["EV minimum power: schedule rounded to whole on/off slots"]
    extra = rounded.sum() - ev.sum()
    if extra > 1e-6:
        notes.append(f"EV minimum power: {extra:.2f} kWh more than needed is scheduled")
    return rounded, battery_ac, notes


def plan(problem: PlanProblem) -> Plan:
    """Plan battery and EV over the problem's slots at least cost; never raises for bad data.

    Should the optimizer itself fail on some input nobody foresaw (any exception, a bug's
    TypeError as much as an arithmetic error), the result is the plain self-consumption plan
    with a warning saying so (and the error is logged with its traceback), never an exception
    into the service.
    """
    data = prepare(problem)
    if data.slots == 0:
        return build_plan(data, np.zeros(0), np.zeros(0), warnings=["no slots to plan"])
    try:
        if len(data.evs) > 1:
            return _plan_several(data)
        solver = _Solver(data)
        ev, head_changes, shortfall = _schedule(solver)
        notes: list[str] = []
        if _needs_rounding(data, ev):
            ev, battery_ac, notes = _apply_min_power(solver, ev)
        elif head_changes is None:
            battery_ac = solver.solve_fixed_ev(ev)
        else:
            battery_ac = solver.finish(head_changes)
        return build_plan(data, battery_ac, ev, shortfall=shortfall, warnings=notes, mix=True)
    except Exception as exc:  # any bug (TypeError, ...) too: never an exception into the service
        _log.exception("planner optimizer failed; falling back to self-consumption")
        fallback = self_consumption(data)
        fallback.warnings.append(f"optimizer failed ({type(exc).__name__}: {exc}): this plan is "
                                 "plain self-consumption")
        return fallback


# ---------------------------------------------------------------------------------------------
# Several cars
#
# Each car k gets its own reward r_k per kWh delivered. For fixed rewards the slot's EV part is
# one segment per car (`slot_cost.car_segments`: cars filled highest reward first, all of them
# together within the shared limit), so the DP above stays exact. The rewards maximise the
# concave dual q(r) = min over schedules of cost - r . (kWh - need); they are found by column
# generation (Kelley's cutting planes in several dimensions, kept near the best point so far
# by a box that grows while the steps reach its edge): the master LP over the solved schedules
#
#     min  sum_j lam_j cost_j + P sum_k s_k
#     s.t. sum_j lam_j = 1,   sum_j lam_j kWh_jk + s_k = need_k,   lam, s >= 0
#
# (s_k: car k's shortfall at the largest reward P) is tiny (one row per car and one more) and
# solved by `_simplex`. Its optimum mixes the schedules into one that delivers the needs and
# costs at most the master's value; every solve's dual value is a lower bound, and the search
# stops when the two agree to `_GAP_TOLERANCE`. A minimum power per car is then met car by
# car with the single-car slot-set search (`_apply_min_power`), the other cars held fixed.
# ---------------------------------------------------------------------------------------------

_MULTI_MAX_SOLVES = 80


def _car_view(data: SlotData, k: int, load_kwh: np.ndarray | None = None,
              cap_kwh: np.ndarray | None = None, min_kwh: np.ndarray | None = None,
              need_kwh: float | None = None) -> SlotData:
    """`data` as the single-car problem of car k (optionally with other cars in the load and
    their energy taken off the shared limit)."""
    car = data.evs[k]
    view = copy.copy(data)
    view.load_kwh = data.load_kwh if load_kwh is None else load_kwh
    view.ev_cap_kwh = car.cap_kwh if cap_kwh is None else cap_kwh
    view.ev_min_kwh = car.min_kwh if min_kwh is None else min_kwh
    view.ev_eff = car.eff
    view.ev_need_kwh = car.need_kwh if need_kwh is None else need_kwh
    view.ev_departure = car.departure
    view.evs = [car]
    return view


class _MultiSolution:
    def __init__(self, rewards: np.ndarray, cost: float, kwh: np.ndarray, ev: np.ndarray,
                 changes: np.ndarray):
        self.rewards, self.cost, self.kwh, self.ev, self.changes = rewards, cost, kwh, ev, changes

    def dual(self, rewards: np.ndarray, need: np.ndarray) -> float:
        return self.cost + float(rewards @ (need - self.kwh))


class _MultiSolver:
    """The DP with one reward per car (cars `cars` of `data.evs`, all with a need)."""

    def __init__(self, data: SlotData, cars: list[int]):
        self.data, self.cars = data, cars
        self.dep = max(data.evs[k].departure for k in cars)
        base = copy.copy(data)
        base.ev_cap_kwh = np.zeros(data.slots)
        base.ev_min_kwh = np.zeros(data.slots)
        base.ev_need_kwh, base.ev_departure, base.ev_eff = 1.0, self.dep, 1.0
        self.solver = _Solver(base)  # tail after the last departure, battery helpers
        self.head = _select(data, np.arange(self.dep))
        self.caps = np.stack([data.evs[k].cap_kwh[:self.dep] for k in cars], 1)
        self.eff = np.array([data.evs[k].eff for k in cars])
        self.need = np.array([data.evs[k].need_kwh for k in cars])
        shared = data.ev_shared_cap_kwh
        self.shared = np.full(self.dep, np.inf) if shared is None else shared[:self.dep]
        self.solves = 0

    def zero(self) -> _MultiSolution:
        """The schedule without any car charging."""
        _, changes, value = self.solver._head(self.solver.no_ev_table)
        k = len(self.cars)
        return _MultiSolution(np.full(k, -self.solver.max_reward), value, np.zeros(k),
                              np.zeros((k, self.dep)), changes)

    def solve(self, rewards: np.ndarray) -> _MultiSolution:
        """Minimise cost - sum_k r_k kWh_k (kWh into car k) before the last departure."""
        self.solves += 1
        solver, head = self.solver, self.head
        per_kwh = np.tile(rewards * self.eff, (self.dep, 1))
        table = multi_slot_cost_table(head, head.load_kwh, self.caps, per_kwh, self.shared,
                                      solver.penalty)
        _, changes, value = solver._head(table)
        demand = head.load_kwh + solver.battery_ac(changes)
        ev = multi_ev_energy(head, demand, self.caps, per_kwh, self.shared, solver.penalty).T
        kwh = ev.sum(1) * self.eff
        return _MultiSolution(rewards.copy(), value + float(rewards @ kwh), kwh, ev, changes)


def _simplex(cost: np.ndarray, matrix: np.ndarray, rhs: np.ndarray, basis: list[int],
             tol: float) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """min cost . x subject to matrix x = rhs, x >= 0, from a feasible basis (Bland's rule:
    never cycles). Returns (x, row duals, optimal basis). For the few-row master LP only."""
    basis = list(basis)
    n = matrix.shape[1]
    for _ in range(100 * n + 100):
        square = matrix[:, basis]
        xb = np.linalg.solve(square, rhs)
        duals = np.linalg.solve(square.T, cost[basis])
        reduced = cost - duals @ matrix
        reduced[basis] = 0.0
        entering = np.flatnonzero(reduced < -tol)
        if not len(entering):
            x = np.zeros(n)
            x[basis] = np.maximum(xb, 0.0)
            return x, duals, basis
        j = int(entering[0])
        direction = np.linalg.solve(square, matrix[:, j])
        positive = direction > 1e-12
        if not positive.any():
            raise ArithmeticError("master LP unbounded")
        ratios = np.full(len(basis), np.inf)
        ratios[positive] = np.maximum(xb[positive], 0.0) / direction[positive]
        ties = np.flatnonzero(ratios <= ratios.min() + 1e-15)
        leave = int(min(ties, key=lambda i: basis[i]))
        basis[leave] = j
    raise ArithmeticError("master LP did not converge")


class _Master:
    """The column-generation master: the solved schedules plus one shortfall column per car
    (and, for the boxed master, columns that keep the rewards within a box)."""

    def __init__(self, need: np.ndarray, penalty: float, zero: _MultiSolution):
        self.need, self.penalty = need, penalty
        self.columns: list[_MultiSolution] = [zero]
        k = len(need)
        self.rhs = np.concatenate([[1.0], need])
        self.basis = {"plain": None, "box": None}
        self.k = k

    def solve(self, box: tuple[np.ndarray, np.ndarray] | None = None):
        """(x, duals (z, r), value); x: column weights then the shortfalls."""
        k = self.k
        eye = np.eye(k)
        parts = [np.vstack([np.ones(len(self.columns)),
                            np.array([c.kwh for c in self.columns]).T])]
        costs = [np.array([c.cost for c in self.columns])]
        parts.append(np.vstack([np.zeros(k), eye]))  # shortfalls
        costs.append(np.full(k, self.penalty))
        n_cols = len(self.columns)
        name = "plain"
        if box is not None:
            name = "box"
            low, high = box
            parts += [np.vstack([np.zeros(k), eye]), np.vstack([np.zeros(k), -eye])]
            costs += [np.minimum(high, self.penalty), -low]
        matrix = np.hstack(parts)
        cost = np.concatenate(costs)
        basis = self.basis[name]
        if basis is None:
            basis = [0] + list(range(n_cols, n_cols + k))
        else:  # column indices after the solution columns moved by the columns added since
            added = n_cols - self.basis[name + "_cols"]
            basis = [b if b < self.basis[name + "_cols"] else b + added for b in basis]
        tol = 1e-11 * (1.0 + float(np.abs(cost).max()))
        x, duals, basis = _simplex(cost, matrix, self.rhs, basis, tol)
        self.basis[name], self.basis[name + "_cols"] = basis, n_cols
        return x, duals, float(cost @ x)


def _multi_guess(data: SlotData, cars: list[int], max_reward: float) -> np.ndarray:
    """Each car's first guess as if alone (`_first_guess`); the largest reward for a car that
    cannot get its need even alone at full power."""
    guesses = []
    for k in cars:
        view = _car_view(data, k)
        if view.ev_cap_kwh.sum() * view.ev_eff < view.ev_need_kwh - 1e-9:
            guesses.append(max_reward)
        else:
            guesses.append(min(_first_guess(view), max_reward))
    return np.array(guesses)


def _multi_schedule(data: SlotData, cars: list[int]):
    """(cars' AC kWh, the mix's battery head changes or None, shortfall per car in `cars`,
    the solver) for the LP without minimum powers."""
    ms = _MultiSolver(data, cars)
    solver = ms.solver
    big = solver.max_reward
    scale = _price_scale(data)
    master = _Master(ms.need, big, ms.zero())
    center = _multi_guess(data, cars, big)
    first = ms.solve(center)
    master.columns.append(first)
    center_q = best_q = first.dual(center, ms.need)
    width = np.full(len(cars), 0.05 * scale)
    while True:
        x, final, upper = master.solve()
        if upper - best_q <= _GAP_TOLERANCE * (1.0 + abs(upper)) or ms.solves >= _MULTI_MAX_SOLVES:
            break
        xb, duals, model = master.solve((center - width, center + width))
        rewards = np.minimum(duals[1:], big)
        if model - center_q <= _GAP_TOLERANCE * (1.0 + abs(model)):
            width *= 4.0  # the center is best within the box: look further out
            if (width > 4 * big).all():
                break
            continue
        trial = ms.solve(rewards)
        master.columns.append(trial)
        q = trial.dual(rewards, ms.need)
        best_q = max(best_q, q)
        if q >= center_q + 0.1 * (model - center_q):
            edge = np.abs(rewards - center) >= width * (1 - 1e-9)
            width = np.where(edge, 2.0 * width, width)
            center, center_q = rewards, q
    weights = x[:len(master.columns)]
    short = x[len(master.columns):len(master.columns) + len(cars)]
    used = [j for j in np.flatnonzero(weights > 1e-12)]
    ev = np.zeros((len(cars), data.slots))
    changes = np.zeros(ms.dep)
    for j in used:
        ev[:, :ms.dep] += weights[j] * master.columns[j].ev
        changes += weights[j] * master.columns[j].changes
    total = weights[used].sum()
    if total > 0:
        ev /= total
        changes /= total
    head_changes = changes if len(used) == 1 else None
    ms.rewards = np.clip(final[1:], -big, big)  # the master's duals: the cars' final rewards
    return ev, head_changes, short, ms


def _car_shortfall_reason(data: SlotData, k: int, deliverable_kwh: float) -> str:
    car = data.evs[k]
    window = car.cap_kwh > 0
    if not window.any():
        return "EV not plugged in before departure"
    at_full_power = car.cap_kwh.sum() * car.eff
    if at_full_power < car.need_kwh - 1e-9:
        hours = float(data.hours[window].sum())
        return (f"not enough time: {hours:.2f} h plugged in at the EV's maximum power deliver "
                f"{at_full_power:.2f} kWh")
    return (f"grid connection (fuse) or shared charger limit: {deliverable_kwh:.2f} kWh can "
            "reach the EV before departure alongside the house load and the other cars")


def _plan_cost(data: SlotData, battery_ac: np.ndarray, ev_total: np.ndarray,
               penalty: float) -> float:
    """The plan's cost (as `Plan.cost_eur`, fuse overload penalised) of a schedule."""
    costs = _slot_costs(data, data.load_kwh + battery_ac + ev_total, penalty)
    charge = np.maximum(battery_ac, 0.0)
    discharge = np.maximum(-battery_ac, 0.0)
    stored = data.stored_now_kwh + float(np.sum(np.where(
        battery_ac > 0, battery_ac * data.charge_eff, battery_ac / data.discharge_eff)))
    return float(costs.sum() + data.degradation * (charge.sum() + discharge.sum())
                 - data.terminal_value * (stored - data.stored_now_kwh))


def _round_car(data: SlotData, k: int, ev: np.ndarray, target: float, penalty: float):
    """Car k's best schedule with whole slots at its minimum, the other cars' rows of `ev`
    fixed: (its row, battery AC exchange, shortfall kWh, notes).

    A slot is usable only if the minimum fits beside the other cars (shared limit) and under
    the fuse with PV and the battery's full discharge. When whole slots still cannot deliver
    the target without overloading the fuse, the target is lowered by what would overload."""
    car = data.evs[k]
    others = ev.sum(0) - ev[k]
    shared = data.ev_shared_cap_kwh
    room = car.cap_kwh if shared is None else np.minimum(
        car.cap_kwh, np.clip(shared - others, 0.0, None))
    fuse = (np.minimum(data.import_cap_kwh, 1e9) + data.pv_kwh + data.discharge_cap_kwh
            - data.load_kwh - others)
    room = np.minimum(room, np.clip(fuse, 0.0, None))
    usable = (room > 1e-9) & (room >= car.min_kwh - 1e-9)
    load = data.load_kwh + others
    before = float(np.maximum(0.0, _grid_import(data, load) - data.import_cap_kwh).sum())
    for _ in range(3):
        view = _car_view(data, k, load_kwh=load, cap_kwh=np.where(usable, room, 0.0),
                         min_kwh=np.where(usable, car.min_kwh, 0.0), need_kwh=target)
        solver = _Solver(view)
        row, head_changes, shortfall = _schedule(solver)
        notes: list[str] = []
        if _needs_rounding(view, row):
            row, battery_ac, notes = _apply_min_power(solver, row)
        elif head_changes is None:
            battery_ac = solver.solve_fixed_ev(row)
        else:
            battery_ac = solver.finish(head_changes)
        over = float(np.maximum(0.0, _grid_import(data, load + battery_ac + row)
                                - data.import_cap_kwh).sum()) - before
        if over <= 1e-6 or target <= 1e-9:
            break
        target = max(0.0, target - over * car.eff)
    missing = max(0.0, car.need_kwh - float(row.sum()) * car.eff)
    return row, battery_ac, missing, notes


def _grid_import(data: SlotData, demand_kwh: np.ndarray) -> np.ndarray:
    return np.maximum(grid_exchange(data, demand_kwh), 0.0)


def _plan_several(data: SlotData) -> Plan:
    """`plan` for more than one car."""
    n_cars = len(data.evs)
    ev = np.zeros((n_cars, data.slots))
    shortfalls: list[Shortfall | None] = [None] * n_cars
    cars = []
    for k, car in enumerate(data.evs):
        if car.need_kwh <= 0:
            continue
        if car.cap_kwh.sum() <= 0:
            shortfalls[k] = Shortfall(car.need_kwh, _car_shortfall_reason(data, k, 0.0))
            continue
        cars.append(k)
    notes: list[str] = []
    if not cars:
        solver = _Solver(data)  # several cars: the single-car fields are empty
        return build_plan(data, solver.solve_fixed_ev(np.zeros(data.slots)), ev,
                          shortfalls=shortfalls, mix=True)
    rows, head_changes, short, ms = _multi_schedule(data, cars)
    ev[cars] = rows
    penalty = ms.solver.penalty
    tol = [1e-6 * max(1.0, data.evs[k].need_kwh) for k in cars]
    for i, k in enumerate(cars):
        if short[i] > tol[i]:
            delivered = float(ev[k].sum() * data.evs[k].eff)
            shortfalls[k] = Shortfall(float(short[i]), _car_shortfall_reason(data, k, delivered))
    if head_changes is not None:
        battery_ac = ms.solver.finish(head_changes)
    else:
        battery_ac = ms.solver.solve_fixed_ev(ev.sum(0))
    rounding = [k for k in cars if (data.evs[k].min_kwh > 0).any()]
    if any(_needs_rounding(_car_view(data, k), ev[k]) for k in rounding):
        targets = {k: float(ev[k].sum()) * data.evs[k].eff for k in cars}
        ev_lp = ev
        lp_cost = _plan_cost(data, battery_ac, ev.sum(0), penalty)
        rewards = {k: float(r) for k, r in zip(cars, ms.rewards)}
        best_key = np.inf
        for side in (1.0, 0.0, -1.0):  # the others' rewards just above theirs, at, below
            nudged = {k: r + side * (_NUDGE * abs(r) + 1e-7 * _price_scale(data))
                      for k, r in rewards.items()}
            found = _round_priced(data, cars, rounding, targets, nudged, penalty, lp_cost)
            if found[3] < best_key:
                ev, battery_ac, notes, best_key = found
            if best_key <= lp_cost + _JOINT_GAP * (1.0 + abs(lp_cost)):
                break
        if best_key > lp_cost + _JOINT_GAP * (1.0 + abs(lp_cost)):
            # not proven close: the car-by-car search with the others held fixed as well
            other = _round_cars(data, cars, rounding, ev_lp, targets, penalty)
            if other[3] < best_key:
                ev, battery_ac, notes, best_key = other
        if best_key > lp_cost + _JOINT_GAP * (1.0 + abs(lp_cost)) and \
                set(cars) - set(rounding):
            # also start with the cars without a minimum out of the way (re-planned around
            # the rounded ones): better when those crowd the shared limit or the fuse
            start = ev_lp.copy()
            start[[k for k in cars if k not in rounding]] = 0.0
            other = _round_cars(data, cars, rounding, start, targets, penalty)
            if other[3] < best_key:
                ev, battery_ac, notes, best_key = other
        for k in cars:
            missing = data.evs[k].need_kwh - float(ev[k].sum()) * data.evs[k].eff
            shortfalls[k] = None if missing <= 1e-6 * max(1.0, data.evs[k].need_kwh) else \
                Shortfall(missing, _car_shortfall_reason(data, k, data.evs[k].need_kwh - missing))
    return build_plan(data, battery_ac, ev, shortfalls=shortfalls, warnings=notes, mix=True)


def _with_sets(data: SlotData, on: dict[int, np.ndarray], targets: dict[int, float]
               ) -> SlotData:
    """The cars' problem with car k charging exactly in the slots `on[k]`, at least at its
    minimum there (the minimum moved into the house load and off the shared limit): convex
    again. The other cars' needs are their `targets`."""
    fixed = copy.copy(data)
    load = data.load_kwh.copy()
    shared = None if data.ev_shared_cap_kwh is None else data.ev_shared_cap_kwh.copy()
    evs = []
    for k, car in enumerate(data.evs):
        need = targets.get(k, 0.0)
        if k in on:
            at_min = np.where(on[k], car.min_kwh, 0.0)
            load += at_min
            if shared is not None:
                shared -= at_min
            need = max(0.0, need - float(at_min.sum()) * car.eff)
            car = EVData(car.name, np.where(on[k], car.cap_kwh - car.min_kwh, 0.0),
                         np.zeros(data.slots), car.eff, need, car.departure)
        else:
            car = EVData(car.name, car.cap_kwh, car.min_kwh, car.eff, need, car.departure)
        evs.append(car)
    fixed.load_kwh = load
    fixed.ev_shared_cap_kwh = None if shared is None else np.maximum(shared, 0.0)
    fixed.evs = evs
    return fixed


def _solve_with_sets(data: SlotData, cars: list[int], on: dict[int, np.ndarray],
                     targets: dict[int, float]):
    """(cars' AC kWh, battery AC exchange) of the best schedule with the given on-slots."""
    fixed = _with_sets(data, on, targets)
    active = [k for k in cars if fixed.evs[k].need_kwh > 0 and fixed.evs[k].cap_kwh.sum() > 0]
    ev = np.zeros((len(data.evs), data.slots))
    for k, slots in on.items():
        ev[k] = np.where(slots, data.evs[k].min_kwh, 0.0)
    rewards = {}
    if not active:
        solver = _Solver(_car_view(fixed, cars[0], need_kwh=0.0))
        return ev, solver.solve_fixed_ev(np.zeros(data.slots)), rewards
    rows, head_changes, _, ms = _multi_schedule(fixed, active)
    ev[active] += rows
    battery_ac = ms.solver.finish(head_changes) if head_changes is not None else \
        ms.solver.solve_fixed_ev(ev.sum(0) - fixed.load_kwh + data.load_kwh)
    rewards = {k: float(r) for k, r in zip(active, ms.rewards)}
    return ev, battery_ac, rewards


#: the several-car minimum-power search stops once its plan is within this share of the LP
#: optimum (a lower bound); otherwise the slower car-by-car alternation runs as well
_JOINT_GAP = 1e-3
_PRICED_ROUNDS = 3
#: the other cars' rewards in a priced view are moved this share off their optimal rewards
#: (first up, then down, `_plan_several`): at the exact reward a car is indifferent where it
#: charges, and which way ties break decides whether it makes room for the car being rounded
_NUDGE = 1e-3


def _priced_view(data: SlotData, k: int, cars: list[int], on: dict[int, np.ndarray],
                 targets: dict[int, float], rewards: dict[int, float]) -> SlotData:
    """Car k's single-car problem with the other cars priced in at fixed rewards instead of
    held fixed: each other car j is one more EV segment of every slot's cost (rewarded r_j per
    kWh, sharing the circuit with car k, `slot_cost.car_segments`), free to move out of car
    k's way wherever that pays at its reward. Cars with fixed on-slots in `on` have their
    minimum in the load (and off the shared limit). Solving this view for car k's need gives
    min cost - sum_j r_j (kWh_j - need_j) + const: a Lagrangian of the joint problem, exact
    in the other cars when r_j are their optimal rewards."""
    fixed = _with_sets(data, {j: s for j, s in on.items() if j != k}, targets)
    car = data.evs[k]
    others = [j for j in cars if j != k]
    shared = fixed.ev_shared_cap_kwh
    shared = np.full(data.slots, BIG_KWH * (len(cars) + 1)) if shared is None else \
        np.minimum(shared, BIG_KWH * (len(cars) + 1))
    fuse = (np.minimum(data.import_cap_kwh, 1e9) + data.pv_kwh + data.discharge_cap_kwh
            - fixed.load_kwh)
    room = np.minimum(np.minimum(car.cap_kwh, shared), np.clip(fuse, 0.0, None))
    usable = (room > 1e-9) & (room >= car.min_kwh - 1e-9)
    view = _car_view(fixed, k, load_kwh=fixed.load_kwh, cap_kwh=np.where(usable, room, 0.0),
                     min_kwh=np.where(usable, car.min_kwh, 0.0), need_kwh=targets[k])
    view.others_caps = np.stack([fixed.evs[j].cap_kwh for j in others], 1)
    view.others_shared = shared
    view.others_base_load = fixed.load_kwh
    view.others_per_kwh = np.array([rewards.get(j, 0.0) * data.evs[j].eff for j in others])
    return view


def _round_priced(data: SlotData, cars: list[int], rounding: list[int],
                  targets: dict[int, float], rewards: dict[int, float], penalty: float,
                  lower: float):
    """Every car with a minimum power off or at least at its minimum in each slot: each such
    car's slot set from the single-car slot-set search (`_apply_min_power`) on its priced
    view (`_priced_view`: the other cars free at their rewards, the cars rounded before it
    with their slots fixed), then all cars re-planned exactly with those slots fixed
    (`_solve_with_sets`); again with that plan's rewards while it improves and is not within
    `_JOINT_GAP` of `lower` (the LP optimum). Returns (cars' AC kWh, battery AC exchange,
    notes, key: cost plus a large penalty per kWh missing)."""
    big = 1e3 * _price_scale(data)
    best = (None, None, [], np.inf)
    for _ in range(_PRICED_ROUNDS):
        on: dict[int, np.ndarray] = {}
        notes: list[str] = []
        for k in rounding:
            view = _priced_view(data, k, cars, on, targets, rewards)
            solver = _Solver(view)
            row, _, _ = _schedule(solver)
            if _needs_rounding(view, row):
                row, _, car_notes = _apply_min_power(solver, row)
                notes += [f"{text} ({car_label(data, k)})" for text in car_notes
                          if "more than needed" not in text]
            on[k] = row > 1e-9
        rows, battery, new_rewards = _solve_with_sets(data, cars, on, targets)
        missing = sum(max(0.0, targets[k] - float(rows[k].sum()) * data.evs[k].eff)
                      for k in cars)
        key = _plan_cost(data, battery, rows.sum(0), penalty) + big * missing
        if key >= best[3] - 1e-9 * (1.0 + abs(best[3])):
            break
        for k in rounding:
            extra = float(rows[k].sum()) * data.evs[k].eff - targets[k]
            if extra > 1e-6:
                notes.append(f"EV minimum power: {extra / data.evs[k].eff:.2f} kWh more than "
                             f"needed is scheduled ({car_label(data, k)})")
        best = (rows, battery, notes, key)
        if key <= lower + _JOINT_GAP * (1.0 + abs(lower)):
            break
        rewards = {**rewards, **new_rewards}
    return best


def _round_cars(data: SlotData, cars: list[int], rounding: list[int], ev: np.ndarray,
                targets: dict[int, float], penalty: float):
    """Every car with a minimum power off or at least at its minimum in each slot.

    Alternates two steps, keeping the best schedule (least missing energy, then least cost):
    each such car's best whole-slot schedule with the other cars held fixed (`_round_car`,
    the single-car slot-set search), then all cars re-planned together with those cars'
    on-slots fixed (`_solve_with_sets`, convex: exact), until neither step improves.
    Returns (cars' AC kWh, battery AC exchange, notes)."""
    big = 1e3 * _price_scale(data)

    def better(value: float) -> bool:
        return best is None or value < best_key - 1e-9 * (1.0 + abs(best_key))

    def key(rows: np.ndarray, battery: np.ndarray) -> float:
        missing = sum(max(0.0, targets[k] - float(rows[k].sum()) * data.evs[k].eff)
                      for k in cars)
        return _plan_cost(data, battery, rows.sum(0), penalty) + big * missing

    best, best_battery, best_key = None, None, np.inf
    notes: dict[int, list[str]] = {}
    current = ev
    for _ in range(3):
        improved = False
        for k in rounding:
            if best is not None or _needs_rounding(_car_view(data, k), current[k]):
                row, battery, _, car_notes = _round_car(data, k, current, targets[k], penalty)
                trial = current.copy()
                trial[k] = row
                if best is None and any(_needs_rounding(_car_view(data, j), trial[j])
                                        for j in rounding):
                    current = trial  # the other cars still to round
                    notes[k] = car_notes
                    continue
                trial_key = key(trial, battery)
                if better(trial_key):
                    best, best_battery, best_key, improved = trial, battery, trial_key, True
                    notes[k] = car_notes
                current = best
        if best is None:  # cannot happen: the last car rounded is evaluated
            best, best_battery, best_key = current, None, np.inf
        on = {k: best[k] > 1e-9 for k in rounding}
        rows, battery, _ = _solve_with_sets(data, cars, on, targets)
        trial_key = key(rows, battery)
        if better(trial_key):
            best, best_battery, best_key, improved = rows, battery, trial_key, True
        current = best
        if not improved:
            break
    texts = []
    for k in rounding:
        texts += [f"{text} ({car_label(data, k)})" for text in notes.get(k, [])]
        extra = float(best[k].sum()) * data.evs[k].eff - targets[k]
        if extra > 1e-6 and not any("more than needed" in t for t in notes.get(k, [])):
            texts.append(f"EV minimum power: {extra / data.evs[k].eff:.2f} kWh more than needed "
                         f"is scheduled ({car_label(data, k)})")
    return best, best_battery, texts, best_key


