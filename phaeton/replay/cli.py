"""`phaeton replay --config FILE --history FILE --from YYYY-MM-DD --days N [--mode M] [--json]`.

Replays the recorded house (history.py) from local midnight of `--from` for `--days` days:
doing nothing, plain self-consumption, phaeton's plan executed each way (`--mode`, each in its
own process), and the perfect-foresight optimum; prints what each cost per month and in total
(report.py) and the forecasts' errors by lead time. Prices come from the config's tariff (a
file tariff for the past) and must cover every replayed slot.

Exit codes: 0 done, 1 invalid config, 2 unusable history, tariff or dates.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from zoneinfo import ZoneInfo

import numpy as np

from phaeton.config import ConfigError, ConfigUnreadable, config_to_dict, load_config
from phaeton.planner.service import tariff_mapping
from phaeton.planning.knobs import PlannerKnobs
from phaeton.planning.tariffs.base import TariffError
from phaeton.planning.tariffs.factory import TariffConfigError, tariff_from_config
from phaeton.planning.tariffs.series import SeriesDataError
from phaeton.replay.history import SLOT_S, HistoryError, read_record
from phaeton.replay.loop import MODES, SimClock, baseline_trace, battery_of, price_arrays, \
    run_mode_sync
from phaeton.replay.report import Prices, format_text, perfect_foresight, summary

MIN_WARMUP_DAYS = 7        # the forecasts need at least a week of the house before --from


class ReplayError(ValueError):
    """The replay cannot run; the message says why."""


def replay_window(from_date: str, days: int, tz: str) -> tuple[int, int]:
    """(first slot start, end) in unix s: local midnight of `from_date`, `days` later."""
    try:
        day = dt.date.fromisoformat(from_date)
    except ValueError:
        raise ReplayError(f"--from {from_date!r} is not a date (YYYY-MM-DD)") from None
    zone = ZoneInfo(tz)
    start = dt.datetime.combine(day, dt.time(0), zone).timestamp()
    end = dt.datetime.combine(day + dt.timedelta(days=days), dt.time(0), zone).timestamp()
    return int(start), int(end)


async def _prices(config: dict, from_s: int, to_s: int):
    """The tariff's prices over the replayed slots (true prices) and its series."""
    with tempfile.TemporaryDirectory(prefix="phaeton-replay-") as data_dir:
        try:
            tariff = tariff_from_config(tariff_mapping(config["planner"]["tariff"]), data_dir,
                                        clock=SimClock(from_s), where="planner.tariff",
                                        currency=config["session"]["currency"])
            refresh = getattr(tariff, "refresh", None)
            if refresh is not None:
                await refresh()
            series = await tariff.prices(from_s)
        except (TariffError, TariffConfigError, SeriesDataError) as exc:
            raise ReplayError(f"the tariff gives no prices: {exc}") from None
    grid = series.on_grid(from_s, to_s - from_s)
    buy = np.asarray(grid.import_eur_per_kwh, dtype=float)
    sell = np.asarray(grid.export_eur_per_kwh, dtype=float)
    missing = ~(np.isfinite(buy) & np.isfinite(sell))
    if missing.any():
        first = from_s + SLOT_S * int(np.flatnonzero(missing)[0])
        when = dt.datetime.fromtimestamp(first, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        raise ReplayError(f"the tariff ({config['planner']['tariff']['type']}) has no price "
                          f"for {int(missing.sum())} replayed quarter hour(s), the first at "
                          f"{when}")
    return series, Prices(buy, sell)


def replay(config: dict, history_path: str, from_date: str, days: int, mode: str, *,
           fill_gaps: bool = False) -> dict:
    """Everything `--json` prints (see report.summary); ReplayError or HistoryError."""
    tz = str(config["planner"]["site"]["tz"])
    from_s, to_s = replay_window(from_date, days, tz)
    battery = battery_of(config)
    if battery.capacity_kwh <= 0:
        raise ReplayError("planner.battery.capacity_kwh is 0: a replay compares what the "
                          "home battery does, so it needs one")
    record = read_record(history_path)
    warmup_days = (from_s - record.start_s) / 86400.0
    if warmup_days < MIN_WARMUP_DAYS:
        raise ReplayError(f"{history_path}: starts {max(warmup_days, 0):.1f} days before "
                          f"--from; the forecasts need at least {MIN_WARMUP_DAYS} days of the "
                          f"house before the first replayed day")
    record = record.filled(from_s, to_s, long_gaps=fill_gaps)
    series, prices = asyncio.run(_prices(config, from_s, to_s))
    slots = (to_s - from_s) // SLOT_S
    first = record.index(from_s)
    load = record.load_kwh[first:first + slots]
    pv = record.pv_kwh[first:first + slots]
    starts = from_s + SLOT_S * np.arange(slots, dtype=np.int64)
    knobs = PlannerKnobs.from_config(config["planner"])
    modes = MODES if mode == "all" else (mode,)
    jobs = [(config, record, price_arrays(series), from_s, slots, name) for name in modes]
    if len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=min(len(jobs), os.cpu_count() or 1)) as pool:
            loops = dict(zip(modes, pool.map(run_mode_sync, jobs)))
    else:
        loops = {modes[0]: run_mode_sync(jobs[0])}
    traces = {"nothing": baseline_trace(record, battery, from_s, slots, "nothing"),
              "self_consumption": baseline_trace(record, battery, from_s, slots,
                                                 "self_consumption"),
              **loops,
              "perfect_foresight": perfect_foresight(starts, load, pv, prices, battery, knobs,
                                                     bool(knobs.allow_export))}
    period = {"from": from_date, "to": (dt.date.fromisoformat(from_date)
                                        + dt.timedelta(days=days - 1)).isoformat(),
              "days": days, "slots": int(slots), "tz": tz,
              "currency": config["session"]["currency"],
              "load_kwh": round(float(load.sum()), 1), "pv_kwh": round(float(pv.sum()), 1),
              "plans": {name: trace.plans for name, trace in loops.items()},
              "stored_value_eur_per_kwh": round(prices.stored_value_per_kwh
                                                * battery.eff_out, 4),
              "notes": record.notes}
    result = summary(traces, prices, knobs.degradation_eur_per_kwh, battery, starts, tz, period)
    result["forecast_mae"] = {name: trace.forecast_errors for name, trace in loops.items()}
    return result


def run_from_cli(args) -> int:
    try:
        config = config_to_dict(load_config(args.config))
    except ConfigUnreadable as exc:
        for problem in exc.problems:
            print(problem.format(args.config), file=sys.stderr)
        return 2
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem.format(args.config), file=sys.stderr)
        print("phaeton replay: the config is invalid", file=sys.stderr)
        return 1
    try:
        result = replay(config, args.history, args.from_date, args.days, args.mode,
                        fill_gaps=args.fill_gaps)
    except (ReplayError, HistoryError) as exc:
        print(f"phaeton replay: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(format_text(result))
    return 0
