"""The planner in closed loop on a recorded house: the real `PlannerService` on a simulated
clock, one quarter hour at a time.

At each slot start the service ticks as it does every few seconds on a GX: same tariff (cut to
what was published by then: tomorrow's day-ahead prices from 13:00 local time), same history
for the forecasts (the record up to now, the newest `HISTORY_DAYS` days as the service keeps
them), same `build_problem`, optimiser and re-plan triggers, and the battery writer's own pure
output (`dess_windows`, `setpoint_w` given the slot's real demand as its live reading). That
output is then executed against what the house really did in the slot (`house.py`), and the
battery's SoC carries on to the next tick.

Simplifications, stated in docs/planner.md: one tick per quarter hour (the service checks every
5 s; a SoC-drift re-plan therefore waits for the next slot), no EV (the record holds the house
only) and the config's knobs throughout.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import math
import sys
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from phaeton.planner.service import ESS_LIMIT_PATH, SOC_PATH, PlannerService
from phaeton.planning.knobs import STRATEGY_NAMES, STRATEGY_OPTIMISE, PlannerKnobs, SiteFacts
from phaeton.planning.problem_builder import EnergyHistory
from phaeton.planning.tariffs.series import PriceSeries
from phaeton.replay.history import SLOT_S, Record
from phaeton.replay.house import Battery, DessDelegate, Flow, Window, hold_setpoint, \
    self_consumption
from phaeton.venus.ess_writer import EssStatus, dess_windows, setpoint_w

HISTORY_DAYS = 60               # what the service's energy_history.csv keeps (keep_days)
PUBLISH_HOUR = 13               # day-ahead prices for tomorrow are known from 13:00 local
MODES = ("dess_schedule", "setpoint")
LEADS_H = ((0, 1), (1, 4), (4, 24), (24, 48))


class SimClock:
    """The replay's time; the service reads it, the loop moves it."""

    speed = 1.0

    def __init__(self, now_s: float):
        self.now_s = float(now_s)

    def time(self) -> float:
        return self.now_s

    def monotonic(self) -> float:
        return self.now_s

    async def sleep(self, seconds: float) -> None:
        self.now_s += max(0.0, seconds)


class PublishedPrices:
    """A tariff that knows at `now` what the market had published by then."""

    def __init__(self, series: PriceSeries, tz: str):
        self.series = series
        self.zone = ZoneInfo(tz)
        self._cut: tuple[float, PriceSeries] | None = None

    def known_until_s(self, now_s: float) -> float:
        local = dt.datetime.fromtimestamp(now_s, self.zone)
        days = 2 if local.hour >= PUBLISH_HOUR else 1
        end = dt.datetime.combine(local.date() + dt.timedelta(days=days), dt.time(0), self.zone)
        return end.timestamp()

    async def prices(self, now_s: float) -> PriceSeries:
        until = self.known_until_s(now_s)
        if self._cut is None or self._cut[0] != until:
            s = self.series
            keep = (s.start_s + s.duration_s <= until) & (s.start_s + s.duration_s > now_s - 86400)
            self._cut = (until, PriceSeries(s.start_s[keep], s.duration_s[keep],
                                            s.import_eur_per_kwh[keep],
                                            s.export_eur_per_kwh[keep], s.source,
                                            s.fetched_at_s, unit=s.unit))
        return self._cut[1]


class RecordingWriter:
    """Stands where the EssWriter stands: keeps what the service asked the battery for."""

    def __init__(self, control: str):
        self.control = control
        self.status = EssStatus(control)
        self.plan = None
        self.allow_export = True
        self.allow_grid_charging = True

    async def apply(self, plan, now_s, *, allow_export=True, allow_grid_charging=True,
                    target_only=False) -> EssStatus:
        self.plan = plan
        self.allow_export, self.allow_grid_charging = allow_export, allow_grid_charging
        return self.status

    async def release(self) -> EssStatus:
        self.plan = None
        return self.status

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def ensure_settings(self) -> None:
        pass

    def owner_reenabled(self, why: str) -> None:
        pass


def battery_of(config) -> Battery:
    """The home battery as the house has it: the planner's figures, the floor as ESS minimum."""
    facts = SiteFacts.from_config(config)
    knobs = PlannerKnobs.from_config(config["planner"])
    one_way = math.sqrt(facts.battery_round_trip) if facts.battery_round_trip > 0 else 0.0
    return Battery(capacity_kwh=facts.battery_capacity_kwh,
                   soc_min=min(knobs.floor_soc_pct, facts.battery_max_soc_pct) / 100.0,
                   soc_max=facts.battery_max_soc_pct / 100.0,
                   max_charge_kw=facts.battery_max_charge_kw,
                   max_discharge_kw=facts.battery_max_discharge_kw,
                   eff_in=one_way, eff_out=one_way)


@dataclass
class Trace:
    """Per replayed slot: the flows, and the stored energy at each slot boundary (kWh)."""

    grid_import_kwh: np.ndarray
    grid_export_kwh: np.ndarray
    charge_kwh: np.ndarray
    discharge_kwh: np.ndarray
    stored_kwh: np.ndarray                  # one more than slots
    plans: int = 0
    forecast_errors: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def empty(cls, slots: int, stored_kwh: float) -> "Trace":
        stored = np.zeros(slots + 1)
        stored[0] = stored_kwh
        return cls(np.zeros(slots), np.zeros(slots), np.zeros(slots), np.zeros(slots), stored)

    def put(self, t: int, stored_after: float, flow: Flow) -> None:
        self.grid_import_kwh[t] = flow.grid_import_kwh
        self.grid_export_kwh[t] = flow.grid_export_kwh
        self.charge_kwh[t] = flow.charge_kwh
        self.discharge_kwh[t] = flow.discharge_kwh
        self.stored_kwh[t + 1] = stored_after


def start_stored_kwh(battery: Battery) -> float:
    """Every strategy starts the replay with the battery at its minimum SoC."""
    return battery.stored_min_kwh


def baseline_trace(record: Record, battery: Battery, from_s: int, slots: int,
                   rule: str) -> Trace:
    """`nothing` (no battery) or `self_consumption` (plain ESS) over the replayed slots."""
    trace = Trace.empty(slots, start_stored_kwh(battery))
    stored = trace.stored_kwh[0]
    first = record.index(from_s)
    for t in range(slots):
        load, pv = float(record.load_kwh[first + t]), float(record.pv_kwh[first + t])
        if rule == "nothing":
            stored, flow = battery.run(stored, load, pv, 0.0, SLOT_S / 3600.0)
        else:
            stored, flow = self_consumption(battery, stored, load, pv, SLOT_S / 3600.0)
        trace.put(t, stored, flow)
    return trace


class LeadTimeErrors:
    """MAE of the plan's load and PV forecasts by lead time, beside persistence (the same
    quarter hour on the last day measured before the plan was made)."""

    def __init__(self, record: Record, to_s: int):
        self.record, self.to_s = record, to_s
        self.sums = {(what, kind, lead): [0.0, 0] for what in ("load", "pv")
                     for kind in ("plan", "persistence") for lead in LEADS_H}

    def add(self, now_s: float, starts: np.ndarray, load: np.ndarray, pv: np.ndarray) -> None:
        record = self.record
        inside = (starts < self.to_s)
        starts, load, pv = starts[inside], load[inside], pv[inside]
        index = ((starts - record.start_s) // SLOT_S).astype(np.int64)
        lead_h = (starts + SLOT_S - now_s) / 3600.0
        days_back = np.ceil((starts + SLOT_S - now_s) / 86400.0)
        past = index - (days_back * 96).astype(np.int64)
        ok_past = past >= 0
        for what, forecast, actual in (("load", load, record.load_kwh),
                                       ("pv", pv, record.pv_kwh)):
            truth = actual[index]
            persisted = np.where(ok_past, actual[np.clip(past, 0, None)], np.nan)
            for low, high in LEADS_H:
                band = (lead_h > low) & (lead_h <= high) & np.isfinite(truth)
                for kind, guess in (("plan", forecast), ("persistence", persisted)):
                    usable = band & np.isfinite(guess)
                    cell = self.sums[(what, kind, (low, high))]
                    cell[0] += float(np.abs(guess[usable] - truth[usable]).sum())
                    cell[1] += int(usable.sum())

    def table(self) -> dict[str, Any]:
        """{"load"|"pv": {"0-1h": {"plan": kWh, "persistence": kWh}, ...}}, MAE per slot."""
        out: dict[str, Any] = {}
        for (what, kind, (low, high)), (total, count) in self.sums.items():
            band = out.setdefault(what, {}).setdefault(f"{low}-{high}h", {})
            band[kind] = round(total / count, 4) if count else None
        return out


async def replay_mode(config, record: Record, prices: PriceSeries, from_s: int, slots: int,
                      mode: str, *, progress=None, true_forecast: bool = False) -> Trace:
    """One execution mode in closed loop (see the module docstring). `true_forecast`: the
    plans are given what the house really did instead of the forecasts (what the forecasts
    cost, the rest being equal)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    config = _optimising(config)
    battery = battery_of(config)
    trace = Trace.empty(slots, start_stored_kwh(battery))
    clock = SimClock(from_s)
    soc_now = {"pct": 100.0 * trace.stored_kwh[0] / battery.capacity_kwh}

    def system_value(path: str):
        if path == SOC_PATH:
            return soc_now["pct"]
        if path == ESS_LIMIT_PATH:
            return None
        return None

    first = record.index(from_s)
    keep = HISTORY_DAYS * 96
    t_all = record.slot_starts_s

    def history() -> EnergyHistory:
        now_index = record.index(clock.time())
        low = max(0, now_index - keep)
        return EnergyHistory(t_all[low:now_index], record.load_kwh[low:now_index],
                             record.pv_kwh[low:now_index])

    writer = RecordingWriter(mode)
    tariff = PublishedPrices(prices, str(config["planner"]["site"]["tz"]))
    def what_happened(_planner, starts, _now, _history):
        index = ((np.asarray(starts, dtype=np.int64) - record.start_s) // SLOT_S)
        inside = np.clip(index, 0, record.load_kwh.size - 1)
        return record.load_kwh[inside], record.pv_kwh[inside]

    service = PlannerService(config, clock, None, system_value, writer, history=history,
                             tariff=tariff, forecaster=what_happened if true_forecast else None)
    errors = LeadTimeErrors(record, from_s + slots * SLOT_S)
    delegate = DessDelegate(battery, efficiency_pct=100.0 * battery.eff_in * battery.eff_out)
    stored = trace.stored_kwh[0]
    hours = SLOT_S / 3600.0
    for t in range(slots):
        now = from_s + t * SLOT_S
        clock.now_s = now
        soc_now["pct"] = 100.0 * stored / battery.capacity_kwh
        if await service._tick():
            trace.plans += 1
            problem = service._problem
            errors.add(now, np.asarray(problem.slot_start_s, dtype=float),
                       np.asarray(problem.load_kwh, dtype=float),
                       np.asarray(problem.pv_kwh, dtype=float))
        load, pv = float(record.load_kwh[first + t]), float(record.pv_kwh[first + t])
        plan = writer.plan
        if plan is None:
            stored, flow = self_consumption(battery, stored, load, pv, hours)
        elif mode == "setpoint":
            # the writer's own setpoint, with the slot's real demand as its live reading
            watts = setpoint_w(plan, now, (load - pv) / hours * 1000.0)
            if watts is None:
                stored, flow = self_consumption(battery, stored, load, pv, hours)
            else:
                stored, flow = hold_setpoint(battery, stored, load, pv, watts / 1000.0 * hours,
                                             hours, writer.allow_export)
        else:
            windows = [Window(w.start_s, w.duration_s, w.target_soc_pct, w.strategy,
                              w.restrictions, bool(w.allow_grid_feed_in))
                       for w in dess_windows(plan, now, allow_export=writer.allow_export,
                                             allow_grid_charging=writer.allow_grid_charging,
                                             max_windows=3)]
            stored, flow = delegate.run_slot(windows, now, SLOT_S, stored, load, pv)
        trace.put(t, stored, flow)
        if progress is not None and (t % 96 == 95 or t == slots - 1):
            progress(mode, t + 1, slots)
    trace.forecast_errors = errors.table()
    return trace


def _optimising(config):
    """The config with the planner optimising (the replay is about the plan)."""
    planner = dict(config["planner"])
    planner["strategy"] = STRATEGY_NAMES[STRATEGY_OPTIMISE]
    merged = dict(config)
    merged["planner"] = planner
    return merged


def price_arrays(series: PriceSeries) -> tuple:
    """The series as plain arrays for another process (a series itself does not pickle)."""
    return (np.asarray(series.start_s), np.asarray(series.duration_s),
            np.asarray(series.import_eur_per_kwh), np.asarray(series.export_eur_per_kwh),
            series.source, series.unit)


def run_mode_sync(args: tuple) -> Trace:
    """`replay_mode` in its own process (one per mode, on as many cores); `args` carry the
    prices as `price_arrays`."""
    config, record, price_arrays, from_s, slots, mode = args
    prices = PriceSeries(*price_arrays[:4], price_arrays[4], 0.0, unit=price_arrays[5])
    return asyncio.run(replay_mode(config, record, prices, from_s, slots, mode,
                                   progress=print_progress))


def print_progress(mode: str, done: int, total: int) -> None:
    """A line per tenth of the way (the modes run side by side in their own processes)."""
    if done != total and (10 * done) // total == (10 * (done - 96)) // total:
        return
    width = 30
    filled = int(width * done / total)
    sys.stderr.write(f"{mode:14} [{'#' * filled}{'.' * (width - filled)}] "
                     f"{100 * done // total:3d} %\n")
    sys.stderr.flush()
