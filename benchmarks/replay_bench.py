"""A real house's year through `phaeton replay`: what the plan realises in closed loop.

The house and the prices are measured, public data (benchmarks/data/README.md says which,
with source and licence). The battery is the issue's: 10 kWh, 5 kW both ways, 90 % round trip,
0.02 EUR/kWh wear; import = spot + 0.20 EUR/kWh, export = spot. Everything else is the default
config. In the same run, for comparison: doing nothing, plain self-consumption (Victron ESS,
no planner), the perfect-foresight optimum, and with `--true-forecast` the same loop given the
true load and PV (what the forecasts cost, the rest equal).

Printed: the replay's table per month (cost, share of the optimum's savings), forecast MAE by
lead time beside persistence, the PV forecast's bias per month, and the targets of issue 20
(each mode >= 90 % of the optimum's savings over the year and never below plain
self-consumption in a month) as met / not met.

Run: .venv/bin/python benchmarks/replay_bench.py [--from 2016-01-01 --days 366]
     [--mode all|dess_schedule|setpoint] [--true-forecast]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from phaeton.config import config_to_dict, load_config  # noqa: E402
from phaeton.replay.cli import _prices, replay, replay_window  # noqa: E402
from phaeton.replay.history import read_record  # noqa: E402
from phaeton.replay.loop import MODES, battery_of, replay_mode  # noqa: E402
from phaeton.replay.report import format_text, period_cost  # noqa: E402

DATA = os.path.join(ROOT, "benchmarks", "data")
HOUSE = os.path.join(DATA, "opsd_residential4_2016.csv")
PRICES = os.path.join(DATA, "prices_de_2016.csv")
TARGET_SHARE = 0.90

CONFIG = """
charger:
  alfen: {{host: 192.0.2.1}}
planner:
  site: {{tz: Europe/Berlin, latitude_deg: 47.66, longitude_deg: 9.18, pv_kwp: {kwp},
          pv_tilt_deg: {tilt}, pv_azimuth_deg: {azimuth}, annual_load_kwh: {annual}}}
  battery: {{capacity_kwh: 10, max_charge_kw: 5, max_discharge_kw: 5,
            round_trip_efficiency_pct: 90, degradation_eur_per_kwh: 0.02}}
  tariff:
    type: file
    file: {{location: {prices}}}
    import_formula: {{adder_eur_per_kwh: 0.20}}
"""


def _arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", default=HOUSE)
    parser.add_argument("--prices", default=PRICES)
    parser.add_argument("--from", dest="from_date", default="2016-01-01")
    parser.add_argument("--days", type=int, default=366)
    parser.add_argument("--mode", default="all", choices=("all",) + MODES)
    parser.add_argument("--kwp", type=float, default=None,
                        help="PV peak power (default: the record's highest quarter hour x 4 "
                             "/ 0.85)")
    parser.add_argument("--tilt", type=float, default=30.0)
    parser.add_argument("--azimuth", type=float, default=180.0)
    parser.add_argument("--true-forecast", action="store_true",
                        help="also run each mode given the true load and PV")
    parser.add_argument("--json", metavar="FILE", help="write the replay's JSON here too")
    return parser.parse_args()


def pv_bias_by_month(record, config, from_s: int, slots: int) -> dict[str, float]:
    """The day-ahead PV forecast's bias per month: (forecast - measured) / measured, the
    forecast made at 13:00 for the next day as the planner makes it."""
    from phaeton.planning.problem_builder import EnergyHistory, forecast
    from phaeton.replay.report import month_bounds
    starts = from_s + 900 * np.arange(slots)
    predicted = np.full(slots, np.nan)
    first = record.index(from_s)
    for day in range(slots // 96):
        now = from_s + day * 86400 - 11 * 3600          # 13:00 the day before (UTC+1)
        at = record.index(now)
        low = max(0, at - 60 * 96)
        history = EnergyHistory(record.slot_starts_s[low:at], record.load_kwh[low:at],
                                record.pv_kwh[low:at])
        day_starts = starts[day * 96:(day + 1) * 96]
        _, pv = forecast(config["planner"], day_starts, now, history)
        predicted[day * 96:(day + 1) * 96] = pv
    measured = record.pv_kwh[first:first + slots]
    bias = {}
    for month, low, high in month_bounds(starts, "Europe/Berlin"):
        truth = float(np.nansum(measured[low:high]))
        guess = float(np.nansum(predicted[low:high]))
        bias[month] = (guess - truth) / truth if truth > 0 else float("nan")
    return bias


def main() -> None:
    args = _arguments()
    record = read_record(args.history)
    kwp = args.kwp or round(float(np.nanmax(record.pv_kwh)) * 4 / 0.85, 1)
    annual = round(float(np.nanmean(record.load_kwh)) * 96 * 365)
    directory = tempfile.mkdtemp(prefix="phaeton-replay-bench-")
    config_path = os.path.join(directory, "config.yaml")
    with open(config_path, "w") as f:
        f.write(CONFIG.format(kwp=kwp, tilt=args.tilt, azimuth=args.azimuth, annual=annual,
                              prices=os.path.abspath(args.prices)))
    config = config_to_dict(load_config(config_path))
    print(f"house: {args.history} (PV {kwp} kWp assumed {args.tilt:g}° tilt, azimuth "
          f"{args.azimuth:g}°; {annual} kWh/year); prices: {args.prices}; battery 10 kWh / "
          f"5 kW, 90 % round trip, 0.02 EUR/kWh wear; import = spot + 0.20, export = spot",
          flush=True)
    started = time.perf_counter()
    result = replay(config, args.history, args.from_date, args.days, args.mode, fill_gaps=True)
    elapsed = time.perf_counter() - started
    print(format_text(result))
    print(f"\nreplay wall time {elapsed:.0f} s for {args.days} days "
          f"({', '.join(f'{k}: {v} plans' for k, v in result['period']['plans'].items())}) "
          f"on {os.cpu_count()} cores")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)

    from_s, to_s = replay_window(args.from_date, args.days, "Europe/Berlin")
    slots = (to_s - from_s) // 900
    filled = read_record(args.history).filled(from_s, to_s, long_gaps=True)
    bias = pv_bias_by_month(filled, config, from_s, slots)
    print("\nPV day-ahead forecast bias per month (target within ±10 %): "
          + ", ".join(f"{month} {100 * value:+.0f} %" for month, value in bias.items()))

    if args.true_forecast:
        series, prices = asyncio.run(_prices(config, from_s, to_s))
        battery = battery_of(config)
        nothing = result["strategies"]["nothing"]["cost_eur"]
        optimum = result["strategies"]["perfect_foresight"]["cost_eur"]
        for mode in MODES if args.mode == "all" else (args.mode,):
            trace = asyncio.run(replay_mode(config, filled, series, from_s, slots, mode,
                                            true_forecast=True))
            cost = period_cost(trace, prices, 0.02, battery, 0, slots)
            print(f"{mode} given the true load and PV: {cost:.2f} EUR, "
                  f"{100 * (nothing - cost) / (nothing - optimum):.1f} % of the optimum's "
                  f"savings")

    print("\ntargets (issue 20):")
    self_months = {m["month"]: m["strategies"]["self_consumption"]["cost_eur"]
                   for m in result["months"]}
    for mode in result["period"]["plans"]:
        share = result["strategies"][mode]["share_of_optimum"]
        worse = [m["month"] for m in result["months"]
                 if m["strategies"][mode]["cost_eur"] > self_months[m["month"]] + 0.005]
        print(f"  {mode}: {100 * share:.1f} % of the optimum's savings (target ≥ 90 %) "
              f"{'met' if share >= TARGET_SHARE else 'NOT MET'}; months dearer than plain "
              f"self-consumption: {', '.join(worse) if worse else 'none'} "
              f"{'met' if not worse else 'NOT MET'}")


if __name__ == "__main__":
    main()
