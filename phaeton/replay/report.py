"""What each strategy cost the replayed house, per month and in total, and its share of what
perfect foresight saves.

cost = import x import price - export x export price + wear x (battery AC in + AC out)
       - (stored energy at the end - at the start) x the stored-energy value,
where the stored-energy value is the replayed period's mean import price times the battery's
one-way discharge efficiency (what a kWh left in the battery saves later). Every strategy starts
at the battery's minimum SoC. A month's cost values the stored energy at its own start and end
the same way, so the months add up to the total.

share of the optimum = (cost of doing nothing - cost) / (cost of doing nothing - cost of
perfect foresight): 100 % is the optimum, 0 % no better than no battery at all.

Perfect foresight is the planner's own optimiser given the whole period at once with the true
load, PV and prices (one problem, no horizon), the stored-energy value as its terminal value.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np

from phaeton.planning.knobs import PlannerKnobs
from phaeton.planning.model import BatterySpec, GridSpec, PlanProblem
from phaeton.planning.optimizer import plan as optimise
from phaeton.replay.house import Battery
from phaeton.replay.loop import Trace, start_stored_kwh

STRATEGIES = ("nothing", "self_consumption", "dess_schedule", "setpoint", "perfect_foresight")


@dataclass(frozen=True)
class Prices:
    """True import and export price per replayed slot."""

    buy: np.ndarray
    sell: np.ndarray

    @property
    def stored_value_per_kwh(self) -> float:
        return float(np.mean(self.buy))


def perfect_foresight(starts: np.ndarray, load: np.ndarray, pv: np.ndarray, prices: Prices,
                      battery: Battery, knobs: PlannerKnobs, export_allowed: bool) -> Trace:
    """The optimum over the whole period, as a Trace."""
    problem = PlanProblem(
        slot_start_s=starts.astype(float), import_price_eur_per_kwh=prices.buy,
        export_price_eur_per_kwh=prices.sell, load_kwh=load, pv_kwh=pv,
        battery=BatterySpec(capacity_kwh=battery.capacity_kwh,
                            soc_now=start_stored_kwh(battery) / battery.capacity_kwh,
                            soc_min=battery.soc_min, soc_max=battery.soc_max,
                            max_charge_kw=battery.max_charge_kw,
                            max_discharge_kw=battery.max_discharge_kw,
                            charge_efficiency=battery.eff_in,
                            discharge_efficiency=battery.eff_out,
                            degradation_eur_per_kwh=knobs.degradation_eur_per_kwh,
                            allow_grid_charging=knobs.allow_grid_charging,
                            terminal_value_eur_per_kwh=prices.stored_value_per_kwh
                            * battery.eff_out),
        grid=GridSpec(import_limit_kw=1e6, export_limit_kw=1e6, export_allowed=export_allowed))
    plan = optimise(problem)
    stored = np.asarray(plan.soc, dtype=float) * battery.capacity_kwh
    trace = Trace(np.asarray(plan.grid_import_kwh, float), np.asarray(plan.grid_export_kwh, float),
                  np.asarray(plan.battery_charge_kwh, float),
                  np.asarray(plan.battery_discharge_kwh, float), stored)
    return trace


def slot_costs(trace: Trace, prices: Prices, wear_eur_per_kwh: float) -> np.ndarray:
    """Money per slot, before the stored-energy change."""
    return (trace.grid_import_kwh * prices.buy - trace.grid_export_kwh * prices.sell
            + wear_eur_per_kwh * (trace.charge_kwh + trace.discharge_kwh))


def period_cost(trace: Trace, prices: Prices, wear: float, battery: Battery,
                low: int, high: int) -> float:
    """The cost of slots low..high-1, the stored energy valued at both ends."""
    value = prices.stored_value_per_kwh * battery.eff_out
    money = float(slot_costs(trace, prices, wear)[low:high].sum())
    return money - (trace.stored_kwh[high] - trace.stored_kwh[low]) * value


def month_bounds(starts: np.ndarray, tz: str) -> list[tuple[str, int, int]]:
    """(YYYY-MM, first slot, end slot) per local month of the replayed slots."""
    zone = ZoneInfo(tz)
    bounds: list[tuple[str, int, int]] = []
    for i, start in enumerate(starts):
        month = dt.datetime.fromtimestamp(float(start), zone).strftime("%Y-%m")
        if not bounds or bounds[-1][0] != month:
            if bounds:
                bounds[-1] = (bounds[-1][0], bounds[-1][1], i)
            bounds.append((month, i, len(starts)))
    return bounds


def share(nothing: float, cost: float, optimum: float) -> float | None:
    saved = nothing - optimum
    return None if abs(saved) < 1e-9 else (nothing - cost) / saved


def summary(traces: dict[str, Trace], prices: Prices, wear: float, battery: Battery,
            starts: np.ndarray, tz: str, period: dict) -> dict:
    """The `--json` answer (see docs/planner.md, "Replay")."""
    n = len(starts)
    totals = {name: period_cost(trace, prices, wear, battery, 0, n)
              for name, trace in traces.items()}
    months = []
    for month, low, high in month_bounds(starts, tz):
        costs = {name: period_cost(trace, prices, wear, battery, low, high)
                 for name, trace in traces.items()}
        months.append({"month": month, "strategies": {
            name: {"cost_eur": round(cost, 2),
                   "share_of_optimum": _round(share(costs["nothing"], cost,
                                                    costs["perfect_foresight"]))}
            for name, cost in costs.items()}})
    return {
        "period": period,
        "strategies": {name: {"cost_eur": round(cost, 2),
                              "share_of_optimum": _round(share(
                                  totals["nothing"], cost, totals["perfect_foresight"]))}
                       for name, cost in totals.items()},
        "months": months,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def format_text(result: dict) -> str:
    """The table an owner reads."""
    names = [name for name in STRATEGIES if name in result["strategies"]]
    period = result["period"]
    lines = [f"replay of {period['from']} to {period['to']} ({period['days']} days, "
             f"{period['slots']} quarter hours); cost in {period['currency']}, share = part "
             f"of perfect foresight's savings over doing nothing"]
    for note in period.get("notes", []):
        lines.append(f"note: {note}")
    header = f"{'month':9}" + "".join(f"{name:>22}" for name in names)
    lines.append(header)

    def row(label: str, strategies: dict) -> str:
        cells = []
        for name in names:
            cell = strategies[name]
            pct = cell["share_of_optimum"]
            pct_text = "   -  " if pct is None else f"{100 * pct:5.1f}%"
            cells.append(f"{cell['cost_eur']:>14.2f} {pct_text}")
        return f"{label:9}" + "".join(f"{cell:>22}" for cell in cells)

    for month in result["months"]:
        lines.append(row(month["month"], month["strategies"]))
    lines.append(row("total", result["strategies"]))
    errors = result.get("forecast_mae")
    if errors:
        lines.append("")
        lines.append("forecast MAE per quarter hour, kWh (the plan's / persistence: the same "
                     "quarter hour on the last day measured)")
        for mode, tables in errors.items():
            for what, bands in tables.items():
                cells = "  ".join(
                    f"{band}: {_kwh(values.get('plan'))} / {_kwh(values.get('persistence'))}"
                    for band, values in bands.items())
                lines.append(f"  {mode:14} {what:5} {cells}")
    return "\n".join(lines)


def _kwh(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
