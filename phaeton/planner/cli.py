"""`phaeton plan --config PATH [--json]`: the next plan as a table (or JSON).

Prices come from the configured tariff (fetching tariffs use their cache in `data_dir` and try
the network once; offline with nothing cached, the static prices of `planner.tariff.static`
stand in and the output says so). Forecasts are learned from `<data_dir>/energy_history.csv`
(columns `start_s,load_kwh,pv_kwh`, one row per quarter hour) when it exists, else the
configured defaults.

On a GX (its D-Bus reachable, `com.victronenergy.system` there) the battery starts at its live
SoC, the knobs are the ones set on the GX (`/Settings/Phaeton/Planner/*`), and the car counts as
plugged in only when phaeton's charger service says so. Otherwise, or with `--assumed`, the
battery starts at `planner.battery.assumed_soc_pct` and the knobs come from config.yaml. A
plugged-in car (or, off the GX, an assumed one) is at `planner.ev.assumed_soc_pct` and leaves
at the departure time. The output says which inputs were used.

Exit codes: 0 ok, 1 invalid config, 2 unreadable config or unusable tariff.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from phaeton.config import ConfigError, ConfigUnreadable, load_config
from phaeton.planner.service import (
    plan_as_dict,
    plan_for_strategy,
    tariff_mapping,
)
from phaeton.planning.baseline import do_nothing
from phaeton.planning.model import Plan, PlanProblem
from phaeton.planning.knobs import (
    STRATEGY_NAMES,
    EvState,
    PlannerInputError,
    PlannerKnobs,
    SiteFacts,
)
from phaeton.planning.problem_builder import EnergyHistory, build_problem, first_slot_s, forecast
from phaeton.planning.tariffs.factory import TariffConfigError, tariff_from_config
from phaeton.planning.tariffs.series import GridPrices
from phaeton.store.energy_history import HISTORY_FILE, read_history
from phaeton.venus.live_inputs import LiveInputs, LiveUnavailable, read_live_inputs
from phaeton.venus.planner_settings import KNOBS, knobs_from_values

EXIT_OK, EXIT_INVALID, EXIT_UNUSABLE = 0, 1, 2


async def gather_prices(config, now_s: float) -> tuple[GridPrices, str]:
    """Prices on the 15-min grid from now over the horizon, and a note on their source."""
    tariff_cfg = config["planner"]["tariff"]
    horizon_s = int(config["planner"]["horizon_h"]) * 3600
    tariff = tariff_from_config(tariff_mapping(tariff_cfg), config["data_dir"],
                                where="planner.tariff", currency=config["session"]["currency"])
    series = await tariff.prices(now_s)
    grid = series.on_grid(first_slot_s(now_s), horizon_s)
    if grid.missing < grid.missing_mask.size:
        return grid, grid.describe_missing()
    static = tariff_cfg["static"]
    n = grid.missing_mask.size
    fallback = GridPrices(grid.start_s, grid.slot_s,
                          np.full(n, float(static["import_eur_per_kwh"])),
                          np.full(n, float(static["export_eur_per_kwh"])), "static")
    return fallback, (f"no {tariff_cfg['type']} prices available (offline, nothing cached): "
                      f"using planner.tariff.static")


@dataclass(frozen=True)
class PlanInputs:
    """What the plan starts from besides config facts, prices and forecasts."""

    knobs: PlannerKnobs
    battery_soc_pct: float
    ev_plugged: bool
    note: str          # where these came from, for the output


def assumed_inputs(config, why: str | None = None) -> PlanInputs:
    planner = config["planner"]
    soc = float(planner["battery"]["assumed_soc_pct"])
    note = (f"assumed inputs: battery SoC {soc:g} % (planner.battery.assumed_soc_pct), knobs from "
            f"config.yaml, a car plugged in")
    return PlanInputs(PlannerKnobs.from_config(planner), soc, True,
                      f"{note} ({why})" if why else note)


def live_plan_inputs(config, live: LiveInputs) -> PlanInputs:
    """The GX's values where it has them, the config's where it has not."""
    defaults = assumed_inputs(config)
    knobs = knobs_from_values(live.knob_values, defaults.knobs)
    parts = []
    floored = knobs.with_ess_minimum(live.ess_minimum_soc_pct)      # as the service does
    if floored != knobs:
        knobs = floored
        parts.append(f"the GX's ESS minimum {knobs.minimum_soc_pct:g} % as the battery floor")
    if live.battery_soc_pct is None:
        soc = defaults.battery_soc_pct
        parts.append(f"battery SoC {soc:g} % assumed (the GX reports none)")
    else:
        soc = live.battery_soc_pct
        parts.append(f"battery SoC {soc:g} % from the GX")
    found = sum(1 for knob in KNOBS if knob.path in live.knob_values)
    parts.append(f"knobs from the GX settings ({found} of {len(KNOBS)}, the rest from config.yaml)"
                 if found < len(KNOBS) else "knobs from the GX settings")
    if live.ev_plugged is None:
        plugged = True
        parts.append("a car assumed plugged in (phaeton's charger service is not running)")
    else:
        plugged = live.ev_plugged
        parts.append(f"car {'plugged in' if plugged else 'not plugged in'} "
                     f"({live.charger_service})")
    return PlanInputs(knobs, soc, plugged, "live inputs: " + ", ".join(parts))


def gather_inputs(config, assumed: bool, bus_address: str | None = None) -> PlanInputs:
    if assumed:
        return assumed_inputs(config, "--assumed")
    try:
        live = asyncio.run(read_live_inputs(bus_address))
    except LiveUnavailable as exc:
        return assumed_inputs(config, str(exc))
    return live_plan_inputs(config, live)


def make_plan(config, now_s: float, prices: GridPrices, history: EnergyHistory | None,
              inputs: PlanInputs | None = None) -> tuple[PlanProblem, Plan, Plan]:
    """The problem `phaeton plan` solves, its plan and the do-nothing reference."""
    planner = config["planner"]
    inputs = inputs or assumed_inputs(config)
    facts = SiteFacts.from_config(config)
    starts = first_slot_s(now_s) + 900 * np.arange(int(facts.horizon_h * 4))
    load, pv = forecast(planner, starts, now_s, history)
    problem = build_problem(now_s=now_s, facts=facts, knobs=inputs.knobs, prices=prices,
                            load_kwh=load, pv_kwh=pv, battery_soc_pct=inputs.battery_soc_pct,
                            ev=EvState(plugged=inputs.ev_plugged, soc_pct=None))
    return problem, plan_for_strategy(problem, inputs.knobs.strategy), do_nothing(problem)


_COLUMNS = (("import_eur_per_kwh", 7, 4), ("export_eur_per_kwh", 7, 4), ("pv_kwh", 6, 2),
            ("load_kwh", 6, 2), ("battery_kwh", 8, 2), ("ev_kwh", 6, 2), ("grid_kwh", 7, 2),
            ("soc_pct", 5, 1))


def _cell(value: float | None, width: int, digits: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


def print_table(result: dict[str, Any], strategy: str, out: TextIO) -> None:
    header = (f"{'slot':<16} {'import':>7} {'export':>7} {'PV':>6} {'load':>6} {'battery':>8} "
              f"{'EV':>6} {'grid':>7} {'SoC':>5}  why")
    print(f"Plan ({strategy}); prices per kWh, energies in kWh per slot, SoC at slot end",
          file=out)
    print(header, file=out)
    last_day = None
    for slot in result["slots"]:
        moment = dt.datetime.fromisoformat(slot["start"])
        label = moment.strftime("%a %d %H:%M") if moment.date() != last_day \
            else moment.strftime("       %H:%M")
        last_day = moment.date()

        cells = " ".join(_cell(slot[key], width, digits) for key, width, digits in _COLUMNS)
        print(f"{label:<16} {cells}  {slot['why']}", file=out)
    unit = f" {result['currency']}" if result.get("currency") else ""
    print(f"Total cost: {result['total_cost_eur']:.4f}{unit}", file=out)
    print(f"Doing nothing: {result['do_nothing_cost_eur']:.4f}{unit} "
          f"(savings {result['savings_eur']:.4f}{unit})", file=out)
    shortfall = result["shortfall"]
    print("Shortfall: none" if shortfall is None else
          f"Shortfall: {shortfall['ev_kwh']:.2f} kWh ({shortfall['reason']})", file=out)
    for line in result["notes"] + result["warnings"]:
        print(f"Note: {line}", file=out)


def run_from_cli(args, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """`phaeton plan`: args.config, args.json (optional), args.now_s (optional, for tests)."""
    out = out or sys.stdout
    err = err or sys.stderr
    path = args.config
    try:
        config = load_config(path)
    except ConfigUnreadable as exc:
        for problem in exc.problems:
            print(problem.format(path), file=err)
        return EXIT_UNUSABLE
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem.format(path), file=err)
        return EXIT_INVALID
    now_s = getattr(args, "now_s", None)
    now_s = float(now_s) if now_s is not None else dt.datetime.now(dt.UTC).timestamp()
    inputs = gather_inputs(config, bool(getattr(args, "assumed", False)))
    try:
        prices, note = asyncio.run(gather_prices(config, now_s))
        history = read_history(Path(config["data_dir"]) / HISTORY_FILE)
        problem, plan, baseline = make_plan(config, now_s, prices, history, inputs)
    except (TariffConfigError, PlannerInputError) as exc:
        print(f"{path}: {exc}", file=err)
        return EXIT_UNUSABLE
    except (OSError, ValueError) as exc:
        print(f"phaeton plan: {exc}", file=err)
        return EXIT_UNUSABLE
    strategy = STRATEGY_NAMES[inputs.knobs.strategy]
    result = plan_as_dict(problem, plan, baseline, str(config["planner"]["site"]["tz"]),
                          [inputs.note] + ([note] if note else []))
    result["strategy"] = strategy
    result["currency"] = str(config["session"]["currency"])
    if getattr(args, "json", False):
        json.dump(result, out, indent=1)
        print(file=out)
    else:
        print_table(result, strategy, out)
    return EXIT_OK
