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
"""
from __future__ import annotations

import copy
import logging

import numpy as np

from phaeton.planning.baseline import self_consumption
from phaeton.planning.model import Plan, PlanProblem, Shortfall
from phaeton.planning.schedule import build_plan
from phaeton.planning.slot_cost import (
    SlotCostTable,
    ev_energy,
    grid_exchange,
    slot_cost_table,
)
from phaeton.planning.slot_data import SlotData, prepare
from phaeton.planning.value_dp import ValueFunction, backward, forward, terminal

_KELLEY_MAX_ROUNDS = 40
#: rounds of the local search over EV slot sets under a minimum charging power
_LOCAL_SEARCH_ROUNDS = 2
_LOCAL_SEARCH_DROPS = 4
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

    def table(self, load_kwh: np.ndarray, ev_cap_kwh: np.ndarray, reward: float) -> SlotCostTable:
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
    return SlotData(
        start_s=data.start_s[:end], hours=data.hours[:end],
        import_price=data.import_price[:end], export_price=data.export_price[:end],
        load_kwh=data.load_kwh[:end], pv_kwh=data.pv_kwh[:end],
        import_cap_kwh=data.import_cap_kwh[:end], export_cap_kwh=data.export_cap_kwh[:end])


def _schedule(solver: _Solver) -> tuple[np.ndarray, np.ndarray | None, Shortfall | None]:
    """(EV AC kWh per slot, battery changes before departure if already known, shortfall).

    The dual q(r) = min over schedules of cost - r * (kWh - need) is concave piecewise-linear
    in the reward r; each solved schedule is a line under it. Kelley's method intersects the
    best line from below the need with the best from above; the mix of the two schedules that
    delivers exactly the need costs at most the intersection's value, and every solve's dual
    value is a lower bound on the optimum. The search stops when the two agree (to 1e-6
    relative): the mix is then optimal for the planning problem.
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
        return low.ev, low.changes, Shortfall(need - low.kwh, _shortfall_reason(data, low.kwh))
    if low is None or abs(high.kwh - need) <= tol:
        return high.ev, high.changes, None
    if abs(low.kwh - need) <= tol:
        return low.ev, low.changes, None
    # q at any reward is a lower bound on the optimum; the mix costs at most `model`
    best_dual = max(s.cost + s.reward * (need - s.kwh) for s in (low, high))
    for _ in range(_KELLEY_MAX_ROUNDS):
        reward = (high.cost - low.cost) / (high.kwh - low.kwh)
        model = low.cost + reward * (need - low.kwh)
        if model - best_dual <= _GAP_TOLERANCE * (1.0 + abs(model)):
            break
        trial = solver.solve_with_reward(reward)
        if abs(trial.kwh - need) <= tol:
            return trial.ev, trial.changes, None
        dual = trial.cost + reward * (need - trial.kwh)
        best_dual = max(best_dual, dual)
        if dual >= model - _GAP_TOLERANCE * (1.0 + abs(model)):
            break
        if trial.kwh < need:
            low = trial
        else:
            high = trial
    # the mix of the two delivers exactly the need; the battery is then re-planned for it
    share = (need - low.kwh) / (high.kwh - low.kwh)
    return (1.0 - share) * low.ev + share * high.ev, None, None


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


def _effective_cost_orders(solver: _Solver, lp_battery_ac: np.ndarray | None,
                           block: np.ndarray) -> list[np.ndarray]:
    """Plugged-in slots, cheapest first by the effective cost of charging `block` kWh there.

    A slot's effective cost is what that much EV charging adds to the grid bill there, given PV
    surplus and a battery plan (the LP optimum's, and the one without the EV): PV surplus that
    would have been exported costs only the export price, a slot where the battery covers the
    house costs the import price, and so on. One order per battery plan.
    """
    data = solver.data
    window = np.flatnonzero(data.ev_cap_kwh > 0)
    if solver.no_ev_battery is None:
        solver.no_ev_battery = solver.solve_fixed_ev(np.zeros(data.slots))
    references = [solver.no_ev_battery]
    if lp_battery_ac is not None:
        references.append(lp_battery_ac)
    orders = []
    for battery in references:
        base = data.load_kwh + battery
        added = (_slot_costs(data, base + block, solver.penalty)
                 - _slot_costs(data, base, solver.penalty))
        per_kwh = added[window] / np.maximum(block[window], 1e-12)
        orders.append(window[np.lexsort((window, per_kwh))])
    return orders


def _min_power_candidates(solver: _Solver, ev: np.ndarray,
                          lp_battery_ac: np.ndarray | None) -> list[np.ndarray]:
    """Whole-slot EV schedules worth costing exactly.

    - full-power slots, cheapest by effective cost first, with the last slot's remainder either
      at the minimum or split (`_whole_slots`); also by plain import price, and at once (in
      plug-in order, so the result never costs more than charging at once);
    - the best schedule on a chosen set of slots, each at least at the minimum
      (`_best_on_slots`, the exact optimum for that set): the LP optimum's slots (the least used
      dropped while their minimum alone would exceed the need), and the cheapest slots by the
      effective cost of charging at the minimum, as few as full power allows and as many as
      the LP used.
    """
    data = solver.data
    total = float(ev.sum())
    window = np.flatnonzero(data.ev_cap_kwh > 0)
    orders = _effective_cost_orders(solver, lp_battery_ac, data.ev_cap_kwh)
    orders.append(window[np.lexsort((window, data.import_price[window]))])
    orders.append(window)  # at once
    candidates: list[np.ndarray] = []

    def add(schedule: np.ndarray | None) -> None:
        if schedule is not None and not any(np.array_equal(schedule, c) for c in candidates):
            candidates.append(schedule)

    for order in orders:
        for schedule in _whole_slots(data, total, order):
            add(schedule)
    used = window[np.lexsort((window, -ev[window]))]
    used = used[ev[used] > 1e-9]
    minimum = data.ev_min_kwh
    # as many of the most used slots as the minimum allows: exactly (all at the minimum at
    # most the need), or with less than one slot's minimum more than needed
    exact = len(used)
    while exact > 1 and minimum[used[:exact]].sum() > total + 1e-9:
        exact -= 1
    over = min(exact + 1, len(used))
    counts = sorted({exact, over})
    subsets = [used[:count] for count in counts]
    fewest = int(np.searchsorted(np.cumsum(np.sort(data.ev_cap_kwh[window])[::-1]),
                                 total - 1e-9)) + 1
    for order in _effective_cost_orders(solver, lp_battery_ac, minimum):
        for count in sorted({fewest, *counts}):
            subsets.append(order[:count])
    for subset in subsets:
        add(_best_on_slots(data, total, subset))
    return candidates


def _best_on_slots(data: SlotData, total: float, slots: np.ndarray) -> np.ndarray | None:
    """The least-cost EV schedule charging `total` AC kWh in exactly `slots`, each >= minimum.

    Exact by a change of variable: the minimum is moved into the house load (ev = min + e,
    e in [0, max - min]), which leaves the usual convex problem, solved by the same search.
    None when those slots cannot take `total` (or their minimum alone exceeds it).
    """
    on = np.zeros(data.slots, dtype=bool)
    on[slots] = True
    at_min = np.where(on, data.ev_min_kwh, 0.0)
    rest = total - float(at_min.sum())
    if len(slots) == 0 or data.ev_cap_kwh[on].sum() < total - 1e-9:
        return None
    if rest < -1e-9:  # all at the minimum is too much: fine if by less than one slot's minimum
        return at_min if -rest < float(at_min[on].min()) - 1e-9 else None
    shifted = copy.copy(data)
    shifted.load_kwh = data.load_kwh + at_min
    shifted.ev_cap_kwh = np.where(on, data.ev_cap_kwh - at_min, 0.0)
    shifted.ev_min_kwh = np.zeros(data.slots)
    shifted.ev_need_kwh = max(rest, 0.0) * data.ev_eff
    if shifted.ev_need_kwh <= 0:
        return at_min
    extra, _, shortfall = _schedule(_Solver(shifted))
    if shortfall is not None:
        return None
    return at_min + extra


def _needs_rounding(data: SlotData, ev: np.ndarray) -> bool:
    minimum = data.ev_min_kwh
    return bool((minimum > 0).any() and ((ev > 1e-9) & (ev < minimum - 1e-9)).any())


def _apply_min_power(solver: _Solver, ev: np.ndarray, lp_battery_ac: np.ndarray | None
                     ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Make every EV slot either off or at least the charger's minimum power, at least cost.

    The candidate whole-slot schedules (`_min_power_candidates`) each get the battery
    re-planned for them (`_Solver.solve_fixed_ev`) and are costed exactly by `build_plan`; the
    cheapest wins. Returns (EV schedule, battery AC exchange, notes).
    """
    data = solver.data
    best = None
    seen: list[np.ndarray] = []

    def consider(schedule: np.ndarray | None) -> bool:
        nonlocal best
        if schedule is None or any(np.array_equal(schedule, c) for c in seen):
            return False
        seen.append(schedule)
        battery_ac = solver.solve_fixed_ev(schedule)
        costed = build_plan(data, battery_ac, schedule)
        cost = costed.cost_eur + solver.penalty * float(costed.fuse_overload_kwh.sum())
        if best is None or cost < best[0] - 1e-9 * (1.0 + abs(best[0])):
            best = (cost, schedule, battery_ac)
            return True
        return False

    for schedule in _min_power_candidates(solver, ev, lp_battery_ac):
        consider(schedule)
    # a short local search over the set of slots: drop one of the least used, add the cheapest
    # unused one, or swap the least used for it; each move's schedule is the exact best on its slots
    total = float(ev.sum())
    orders = _effective_cost_orders(solver, lp_battery_ac, data.ev_min_kwh)
    for _ in range(_LOCAL_SEARCH_ROUNDS):
        current = best[1]
        on = np.flatnonzero(current > 1e-9)
        least_used = on[np.argmin(current[on])]
        improved = False
        # every slot at the least-used level is worth dropping (ties are common: at the minimum)
        lightest = on[current[on] <= current[least_used] + 1e-9][:_LOCAL_SEARCH_DROPS]
        moves = [on[on != t] for t in lightest]
        for order in orders:
            unused = order[current[order] <= 1e-9]
            if len(unused):
                moves.append(np.append(on, unused[0]))
                moves.append(np.append(on[on != least_used], unused[0]))
        for move in moves:
            improved |= consider(_best_on_slots(data, total, np.sort(move)))
        if not improved:
            break
    _, rounded, battery_ac = best
    notes = ["EV minimum power: schedule rounded to whole on/off slots"]
    extra = rounded.sum() - ev.sum()
    if extra > 1e-6:
        notes.append(f"EV minimum power: {extra:.2f} kWh more than needed is scheduled")
    return rounded, battery_ac, notes


def plan(problem: PlanProblem) -> Plan:
    """Plan battery and EV over the problem's slots at least cost; never raises for bad data.

    Should the optimizer itself fail on some input nobody foresaw, the result is the plain
    self-consumption plan with a warning saying so (and the error is logged), never an
    exception into the service.
    """
    data = prepare(problem)
    if data.slots == 0:
        return build_plan(data, np.zeros(0), np.zeros(0), warnings=["no slots to plan"])
    try:
        solver = _Solver(data)
        ev, head_changes, shortfall = _schedule(solver)
        if head_changes is None:
            battery_ac = solver.solve_fixed_ev(ev)
        else:
            battery_ac = solver.finish(head_changes)
        notes: list[str] = []
        if _needs_rounding(data, ev):
            ev, battery_ac, notes = _apply_min_power(solver, ev, battery_ac)
    except (ArithmeticError, ValueError, IndexError) as exc:
        _log.exception("planner optimizer failed; falling back to self-consumption")
        fallback = self_consumption(data)
        fallback.warnings.append(f"optimizer failed ({type(exc).__name__}: {exc}): this plan is "
                                 "plain self-consumption")
        return fallback
    return build_plan(data, battery_ac, ev, shortfall=shortfall, warnings=notes)
