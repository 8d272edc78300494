"""The planner inside the service: plans, re-plans, steers the battery, tells the EV its share.

    planner = PlannerService(config, clock, settings_client, system.value, ess_writer,
                             ev_state=lambda: EvState(plugged=..., soc_pct=None))
    await planner.start()            # creates the GX settings, starts the writer, runs the loop
    planner.state()                  # values for the read-only /Planner/* D-Bus paths
    planner.ev_allowance_w(now_s)    # what the plan wants the EV to draw now (Scheduled mode)
    planner.current_plan()           # the last Plan (or None)
    planner.plan_dict()              # the same as `phaeton plan --json` (for /api/plan)
    await planner.stop()

Every `check_s` it re-plans when the last plan is `planner.replan_s` old, when a knob changed
(a GX setting, picked up through its change signal; a burst of writes is one re-plan once
it settles, and knob changes re-plan at most every KNOB_REPLAN_GAP_S), when the prices changed (new prices, e.g.
tomorrow's, or different ones for the slots planned), when the EV was plugged in or out or its
target changed, when the measured battery SoC drifts from the plan by more than
`planner.soc_drift_pct`, or when the house's load and PV measured since the plan are more than
DEPARTURE_KWH off its forecast (checked once per quarter hour). Strategy 2 is the optimizer, whose plan the `EssWriter` executes;
1 is the plain self-consumption rule (the battery is handed back to ESS, which does exactly
that); 0 (off) hands the battery back too, shows a battery-idle plan and gives the EV no
allowance. Nothing here raises into the caller: a failure becomes the `Reason`.

When the GX owner switches Dynamic ESS off (`/Settings/DynamicEss/Mode` 0) while phaeton steers
the battery with its schedule, the writer stops (see `venus/ess_writer.py`) and the `Reason`
says "Dynamic ESS was switched off on the GX; phaeton does not steer the battery until ...".
A change of the Strategy knob on the GX is one way the owner re-enables phaeton: the service
tells the writer (`EssWriter.owner_reenabled`).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from phaeton.clock import REAL_CLOCK, Clock
from phaeton.planner.paths import SOURCE_LOCAL
from phaeton.planner.pv_weather import WeatherPv
from phaeton.control.readings import clean_value
from phaeton.planning.baseline import do_nothing, self_consumption
from phaeton.planning.forecast_error import ForecastErrors
from phaeton.planning.harm_guard import GuardDecision, decide
from phaeton.planning.model import Plan, PlanProblem
from phaeton.planning.optimizer import plan as optimise
from phaeton.planning.knobs import (
    STRATEGY_NAMES,
    STRATEGY_OFF,
    STRATEGY_OPTIMISE,
    EvState,
    PlannerKnobs,
    SiteFacts,
)
from phaeton.planning.problem_builder import (
    EnergyHistory,
    PlannedCar,
    build_problem,
    ev_remaining_kwh,
    first_slot_s,
    forecast,
)
from phaeton.planning.tariffs.factory import tariff_from_config
from phaeton.planning.tariffs.registry import kind_named
from phaeton.venus.ess_writer import EssWriter, dess_battery_settings
from phaeton.site_layout import several_cars, shared_ev_limit_kw
from phaeton.venus.planner_settings import STRATEGY_PATH, PlannerSettings, car_knobs

log = logging.getLogger("phaeton.planner")

SOC_PATH = "/Dc/Battery/Soc"
ESS_LIMIT_PATH = "/Control/ActiveSocLimit"     # the ESS minimum, raised by BatteryLife

EV_SOC_DRIFT_PCT = 5.0
DEPARTURE_KWH = 0.5       # load and PV measured since the plan this far off its forecast
STOP_WAIT_S = 10.0
KNOB_SETTLE_S = 1.0       # a knob change re-plans once no other change came for this long
KNOB_REPLAN_GAP_S = 5.0   # and at most this often for knob changes


def tariff_mapping(tariff: Mapping[str, Any]) -> dict[str, Any]:
    """The config's `planner.tariff` section as `tariff_from_config` wants it: the section of
    the chosen type, plus formulas, refresh and timeout for the fetching types; keys left
    null (no token yet) are left out so the tariff names what is missing."""
    kind = tariff["type"]
    mapping: dict[str, Any] = {"type": kind}
    for key, value in dict(tariff[kind]).items():
        if value is not None:
            mapping[key] = _plain(value)
    if kind_named(kind).fetches:
        for key in ("import_formula", "export_formula", "refresh"):
            mapping[key] = {k: v for k, v in _plain(tariff[key]).items() if v is not None}
        mapping["timeout_s"] = tariff["timeout_s"]
    return mapping


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def build_ess_writer(config: Mapping[str, Any], settings_client, *, clock: Clock = REAL_CLOCK,
                     bus_address: str | None = None,
                     system_value: Callable[[str], Any] | None = None) -> EssWriter:
    """The EssWriter `planner.ess_control` asks for, with the battery facts DESS needs."""
    facts = SiteFacts.from_config(config)
    return EssWriter(str(config["planner"]["ess_control"]), settings_client, clock=clock,
                     bus_address=bus_address, system_value=system_value,
                     dess_settings=dess_battery_settings(
                         facts.battery_capacity_kwh, facts.battery_max_charge_kw,
                         facts.battery_max_discharge_kw,
                         round_trip_pct=facts.battery_round_trip * 100.0,
                         import_limit_kw=facts.import_limit_kw,
                         export_limit_kw=facts.export_limit_kw))


def plan_as_dict(problem: PlanProblem, plan: Plan, baseline: Plan, tz: str,
                 notes: list[str]) -> dict[str, Any]:
    """Everything the table shows, as plain JSON-able data."""
    zone = ZoneInfo(tz)
    intensity = getattr(problem, "import_intensity_g_per_kwh", None)
    slots = []
    for t in range(plan.slot_count):  # SoC: None without a home battery
        start = float(plan.slot_start_s[t])
        slots.append({
            "start": dt.datetime.fromtimestamp(start, zone).isoformat(),
            "start_s": int(start),
            "import_eur_per_kwh": _num(problem.import_price_eur_per_kwh[t]),
            "export_eur_per_kwh": _num(problem.export_price_eur_per_kwh[t]),
            "pv_kwh": _num(problem.pv_kwh[t]),
            "load_kwh": _num(problem.load_kwh[t]),
            "battery_kwh": _num(plan.battery_charge_kwh[t] - plan.battery_discharge_kwh[t]),
            "ev_kwh": _num(plan.ev_kwh[t]),
            "grid_kwh": _num(plan.grid_import_kwh[t] - plan.grid_export_kwh[t]),
            "intensity_g_per_kwh": None if intensity is None else _num(intensity[t]),
            "soc_pct": _num(100.0 * plan.soc[t + 1]) if problem.battery is not None else None,
            "why": plan.reasons[t],
        })
    shortfall = None
    if plan.shortfall is not None:
        shortfall = {"ev_kwh": round(plan.shortfall.ev_kwh, 3), "reason": plan.shortfall.reason}
    return {"slots": slots, "total_cost_eur": plan.cost_eur,
            "co2_kg": getattr(plan, "co2_kg", None), "objective": getattr(plan, "objective", "cost"),
            "do_nothing_cost_eur": baseline.cost_eur,
            "savings_eur": baseline.cost_eur - plan.cost_eur,
            "ev_delivered_kwh": plan.ev_delivered_kwh, "shortfall": shortfall,
            "warnings": list(plan.warnings), "notes": notes}


def _num(value: float) -> float | None:
    value = float(value)
    return round(value, 4) if math.isfinite(value) else None


def _solve(problem: PlanProblem, strategy: int) -> tuple[Plan, Plan, Plan | None]:
    """(the plan for the strategy, the do-nothing reference, plain self-consumption when the
    strategy optimises: the do-no-harm guard's reference); pure, run in a worker thread."""
    reference = self_consumption(problem) if strategy == STRATEGY_OPTIMISE \
        and problem.battery is not None else None
    return plan_for_strategy(problem, strategy), do_nothing(problem), reference


def plan_for_strategy(problem: PlanProblem, strategy: int) -> Plan:
    """Strategy 2: the optimizer; 1: plain self-consumption; 0: battery idle."""
    if strategy == STRATEGY_OPTIMISE:
        return optimise(problem)
    if strategy == STRATEGY_OFF:
        return do_nothing(problem)
    return self_consumption(problem)


def slot_index(plan: Plan, now_s: float) -> int | None:
    """Index of the plan's slot containing `now_s`, or None."""
    starts = np.asarray(plan.slot_start_s, dtype=float)
    index = int(np.searchsorted(starts, now_s, side="right")) - 1
    if index < 0 or now_s >= starts[index] + plan.slot_duration_h[index] * 3600.0:
        return None
    return index


def planned_soc_pct(plan: Plan, now_s: float) -> float | None:
    """The plan's battery SoC (%) at `now_s`, interpolated inside the slot."""
    index = slot_index(plan, now_s)
    if index is None:
        return None
    share = (now_s - plan.slot_start_s[index]) / (plan.slot_duration_h[index] * 3600.0)
    return 100.0 * float(plan.soc[index] + share * (plan.soc[index + 1] - plan.soc[index]))


class PlannerService:
    """See the module docstring. `system_value(path)` reads com.victronenergy.system (e.g.
    `GxSystemReader.value`); `ev_state()` says whether the car is plugged in and its SoC;
    `history()` gives measured energy for the forecasts (None: defaults); `forecaster` stands
    in for `problem_builder.forecast` (the replay's run with the true load and PV). The
    service starts and closes `ess_writer`."""

    def __init__(self, config: Mapping[str, Any], clock: Clock, settings_client,
                 system_value: Callable[[str], Any], ess_writer: EssWriter, *,
                 ev_state: Callable[[], EvState | None] | None = None,
                 car_states: Callable[[], Mapping[str, EvState | None]] | None = None,
                 carbon_series: Callable[[], Any] | None = None,
                 history: Callable[[], EnergyHistory | None] | None = None,
                 tariff=None, check_s: float = 5.0,
                 forecaster: Callable[..., tuple[np.ndarray, np.ndarray]] | None = None):
        self.config = config
        self.planner_cfg = config["planner"]
        self.clock = clock or REAL_CLOCK
        self.system_value = system_value
        self.ess_writer = ess_writer
        self.ev_state = ev_state or (lambda: None)
        self.history = history or (lambda: None)
        # (planner config, slot starts, now, history) -> (load, PV) kWh per slot
        self.forecaster = forecaster or forecast
        self.check_s = float(check_s)
        self.facts = SiteFacts.from_config(config)
        self.replan_s = float(self.planner_cfg["replan_s"])
        self.soc_drift_pct = float(self.planner_cfg["soc_drift_pct"])
        self.settings_client = settings_client
        self.settings = PlannerSettings(settings_client, PlannerKnobs.from_config(
            self.planner_cfg), on_change=self._knobs_changed)
        # Several chargers: one car each in the one plan; the first car's departure and target
        # are the site's Ev* knobs, every other car has its own under Ev/<id>/.
        self.car_states = car_states
        self.carbon_series = carbon_series or (lambda: None)   # the carbon feed's last series
        self.cars = several_cars(config) if car_states is not None else []
        self.car_settings = {
            car.id: PlannerSettings(settings_client, PlannerKnobs.from_config(self.planner_cfg),
                                    on_change=self._knobs_changed, knobs=car_knobs(car.id))
            for car in self.cars[1:]}
        self.ev_shared_max_kw = shared_ev_limit_kw(config) if self.cars else None
        self._planned_cars: dict[str, EvState | None] = {}
        self._unsubscribe_strategy: Callable[[], None] | None = None
        self._tariff = tariff
        self._plan: Plan | None = None
        self._problem: PlanProblem | None = None
        self._baseline: Plan | None = None
        self._baseline_cost: float | None = None
        self._guard: GuardDecision | None = None     # do no harm (planning/harm_guard.py)
        self.forecast_errors = ForecastErrors()
        # a weather service's PV forecast (planner.pv_forecast), None: the learned one alone
        self.pv_weather: WeatherPv | None = None
        self._departure_checked_s = 0        # the last slot end the departure check looked at
        self._last_prices = None             # the tariff's last series (price_at)
        self._planned_at_s: float | None = None
        self._planned_knobs: PlannerKnobs | None = None
        self._planned_ev: EvState | None = None
        self._planned_prices: dict[int, tuple[float, float]] = {}
        self._planned_horizon_end_s = 0       # the end of the horizon the last plan looked at
        # the same prices as arrays sorted by start, for the check every `check_s`
        self._planned_price_table = (np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0))
        self._knobs_dirty = False
        self._knobs_changed_s = -math.inf       # monotonic: the last knob change
        self._knob_plan_s = -math.inf           # monotonic: the last plan a knob change made
        self._wake_handle: asyncio.TimerHandle | None = None
        self._reason = "not planned yet"
        self._last_trigger = ""
        self.plans_made = 0
        self.last_plan_runtime_s: float | None = None    # wall time of the last planning run
        self.last_plan_finished_s: float | None = None   # clock time it ended
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._wake = asyncio.Event()
        # a fleet operator's schedule (fleet/site_client.py, set by the site): its slots run
        # through the same battery writer, in place of the plan's while one covers now
        self.fleet = None

    # ---- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Tariff, GX settings and writer; then the loop. Failures are logged, not raised."""
        if self._tariff is None:
            try:
                self._tariff = tariff_from_config(tariff_mapping(self.planner_cfg["tariff"]),
                                                  self.config["data_dir"], clock=self.clock,
                                                  where="planner.tariff",
                                                  currency=self.config["session"]["currency"])
            except Exception as exc:  # noqa: BLE001 - a bad tariff must not stop the service
                self._reason = f"no prices: {exc}"
                log.error("planner: %s", self._reason)
        if self.pv_weather is None:
            self.pv_weather = WeatherPv.from_config(self.planner_cfg,
                                                    str(self.config["data_dir"]), self.clock)
        await self.settings.start()
        for car in self.car_settings.values():
            await car.start()
        if self._unsubscribe_strategy is None:
            self._unsubscribe_strategy = self.settings_client.subscribe(
                STRATEGY_PATH, self._strategy_written)
        try:
            await self.ess_writer.start()
        except Exception as exc:  # noqa: BLE001 - plan without steering rather than not at all
            log.warning("planner: ESS writer did not start: %s", exc)
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def settings_appeared(self) -> None:
        """The settings service (re)appeared: add the knobs and DESS settings that could not be
        added before (existing ones keep their values), then re-plan with the GX's knobs."""
        for settings in (self.settings, *self.car_settings.values()):
            if settings.error is not None:
                await settings.add()
        await self.ess_writer.ensure_settings()
        self._wake.set()

    async def stop(self) -> None:
        """Stop the loop (it finishes its step), hand the battery back, close the writer."""
        self._stopping = True
        self._wake.set()
        if self._wake_handle is not None:
            self._wake_handle.cancel()
        task, self._task = self._task, None
        if task is not None:
            # a flag, not only cancel(): Python 3.11's wait_for can lose a cancellation that
            # arrives as a D-Bus reply completes, and the loop would then sleep on
            await asyncio.wait({task}, timeout=STOP_WAIT_S)
            if not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=STOP_WAIT_S)
        if self.pv_weather is not None:
            await self.pv_weather.close()
        self.settings.stop()
        for car in self.car_settings.values():
            car.stop()
        if self._unsubscribe_strategy is not None:
            self._unsubscribe_strategy()
            self._unsubscribe_strategy = None
        try:
            await self.ess_writer.release()
            await self.ess_writer.close()
        except Exception as exc:  # noqa: BLE001 - stopping must finish
            log.warning("planner: ESS writer did not close cleanly: %s", exc)

    async def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()  # before the step: a change during the step wakes the next
            await self.tick()
            if self._stopping:
                break
            try:
                await asyncio.wait_for(self._wake.wait(), self.check_s / self.clock.speed)
            except TimeoutError:
                pass

    def _knobs_changed(self, _knobs: PlannerKnobs) -> None:
        """A knob changed: re-plan once the writes have settled (KNOB_SETTLE_S without another
        change), not once per write: a slider dragged on the GX or a script writing in a loop
        sends dozens, each a plan of up to seconds of CPU on a Cerbo."""
        self._knobs_dirty = True
        self._knobs_changed_s = self.clock.monotonic()
        self._wake_after(KNOB_SETTLE_S)

    def _knob_wait_s(self) -> float:
        """How long a knob-triggered re-plan must still wait (0: now)."""
        now = self.clock.monotonic()
        return max(0.0, self._knobs_changed_s + KNOB_SETTLE_S - now,
                   self._knob_plan_s + KNOB_REPLAN_GAP_S - now)

    def _wake_after(self, delay_s: float) -> None:
        """Wake the loop in `delay_s` (simulated) seconds; a later call replaces it."""
        if self._wake_handle is not None:
            self._wake_handle.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._wake_handle = loop.call_later(delay_s / self.clock.speed, self._wake.set)

    def _strategy_written(self, _path: str, value: Any) -> None:
        """Someone changed the Strategy knob on the GX: the owner re-enables phaeton's battery
        strategy, an earlier Dynamic ESS off on the GX no longer holds it back."""
        self.ess_writer.owner_reenabled(f"the planner Strategy was changed to {value}")
        self._wake.set()

    # ---- one step ---------------------------------------------------------------------------

    @property
    def knobs(self) -> PlannerKnobs:
        return self.settings.knobs

    async def tick(self) -> bool:
        """Re-plan if due and steer the battery; returns whether a new plan was made."""
        try:
            return await self._tick()
        except Exception as exc:  # never into the caller
            self._reason = f"planning failed: {exc}"
            log.exception("planner tick failed")
            return False

    async def _tick(self) -> bool:
        now = self.clock.time()
        knobs = self.knobs.with_ess_minimum(self._system_number(ESS_LIMIT_PATH))
        ev = self._ev()
        replanned = False
        if self.pv_weather is not None:
            self.pv_weather.start_refresh(now)
        if self._tariff is not None:
            series = await self._tariff.prices(now)
            self._last_prices = series
            grid = series.on_grid(first_slot_s(now), int(self.facts.horizon_h * 3600))
            trigger = self._trigger(now, knobs, ev, grid)
            if trigger:
                await self._make_plan(now, knobs, ev, grid, trigger)
                replanned = True
        fleet_plan = self._fleet_plan(now)
        if fleet_plan is not None:
            await self.ess_writer.apply(fleet_plan, now, allow_export=knobs.allow_export,
                                        allow_grid_charging=knobs.allow_grid_charging,
                                        target_only=True)
        elif knobs.strategy == STRATEGY_OPTIMISE and self._plan is not None \
                and self.steers():
            await self.ess_writer.apply(self._plan, now, allow_export=knobs.allow_export,
                                        allow_grid_charging=knobs.allow_grid_charging)
        else:
            await self.ess_writer.release()
        return replanned

    def _fleet_plan(self, now: float) -> Plan | None:
        """The fleet schedule's Plan for now, or None (no fleet, or no fleet slot now)."""
        if self.fleet is None:
            return None
        try:
            return self.fleet.battery_plan(now)
        except Exception:  # noqa: BLE001 - a fleet fault leaves the battery to the local plan
            log.exception("fleet: the schedule could not be turned into a plan")
            return None

    def price_at(self, t_s: float) -> tuple[float, float] | None:
        """(import, export) price per kWh at `t_s` from the tariff's last prices, or None."""
        series = self._last_prices
        try:
            return None if series is None else series.price_at(t_s)
        except Exception:  # noqa: BLE001 - no price is an answer, not a failure
            return None

    def steers(self) -> bool:
        """Whether the last plan is worth steering the battery with (do no harm)."""
        return self._guard is None or self._guard.steer

    def local_steers(self) -> bool:
        """Whether phaeton's own plan steers the battery (a fleet schedule of priority
        `local` gives way to it)."""
        return self.knobs.strategy == STRATEGY_OPTIMISE and self._plan is not None \
            and self.ess_writer.control != "off" and self.steers()

    def battery_blocked(self) -> str | None:
        """Why nobody may steer the battery now (the fleet's `limited_by`), or None."""
        status = self.ess_writer.status
        if status.conflict:
            return "dess_conflict"
        if status.owner_off:
            return "owner_off"
        return None

    def _ev(self) -> EvState | None:
        try:
            return self.ev_state()
        except Exception as exc:  # noqa: BLE001 - a broken EV source plans without the car
            log.warning("planner: EV state unavailable: %s", exc)
            return None

    def _intensity(self, starts: np.ndarray) -> np.ndarray | None:
        """The grid's g CO2/kWh per slot from the carbon feed (NaN where unknown); None
        without a carbon source."""
        try:
            series = self.carbon_series()
            if series is None or not len(starts):
                return None
            return np.asarray(series.on_grid(int(starts[0]), 900 * len(starts)).g_per_kwh,
                              dtype=float)
        except Exception as exc:  # noqa: BLE001 - plan without carbon rather than not at all
            log.warning("planner: carbon intensity unavailable: %s", exc)
            return None

    def _car_states(self) -> Mapping[str, EvState | None]:
        """Every car by its charger's id (several chargers; empty otherwise)."""
        if self.car_states is None or not self.cars:
            return {}
        try:
            return dict(self.car_states())
        except Exception as exc:  # noqa: BLE001 - a broken EV source plans without the cars
            log.warning("planner: EV states unavailable: %s", exc)
            return {}

    def _car_knobs(self, index: int, knobs: PlannerKnobs) -> PlannerKnobs:
        """The site's knobs with car `index`'s departure and target (the first car's are the
        site's own)."""
        if index == 0:
            return knobs
        own = self.car_settings[self.cars[index].id].knobs
        return replace(knobs, ev_departure_min=own.ev_departure_min,
                       ev_target_soc_pct=own.ev_target_soc_pct, ev_target_kwh=own.ev_target_kwh)

    def _system_number(self, path: str) -> float | None:
        try:
            value = self.system_value(path)
        except Exception:  # noqa: BLE001 - no reading is a missing value
            return None
        return clean_value(value)

    def _soc_pct(self) -> float | None:
        return self._system_number(SOC_PATH)

    def _trigger(self, now: float, knobs: PlannerKnobs, ev: EvState | None, grid) -> str:
        """Why to re-plan now ('' = no need)."""
        if self._plan is None or self._planned_at_s is None:
            return "first plan"
        if self._knobs_dirty or knobs != self._planned_knobs:
            wait_s = self._knob_wait_s()
            if wait_s <= 0:
                self._knob_plan_s = self.clock.monotonic()
                return "settings changed"
            self._wake_after(wait_s)
        if now - self._planned_at_s >= self.replan_s:
            return "periodic"
        if _ev_changed(self._planned_ev, ev):
            return "EV changed"
        states = self._car_states()
        for name in states.keys() | self._planned_cars.keys():
            if _ev_changed(self._planned_cars.get(name), states.get(name)):
                return f"EV at charger {name} changed"
        if self._prices_changed(grid):
            return "prices changed"
        if self.pv_weather is not None and self.pv_weather.has_news():
            return "new PV forecast"
        departure = self._departure_kwh(now)
        if departure is not None and departure > DEPARTURE_KWH:
            return (f"load and PV since the plan are {departure:.1f} kWh off its forecast")
        soc = self._soc_pct()
        planned = planned_soc_pct(self._plan, now) if self._plan.slot_count else None
        if soc is not None and planned is not None and self.facts.battery_capacity_kwh > 0 \
                and abs(soc - planned) > self.soc_drift_pct:
            return f"battery SoC {soc:.0f} % is off the plan's {planned:.0f} %"
        return ""

    def _departure_kwh(self, now: float) -> float | None:
        """How far the quarter hours measured since the last plan are off its forecast (load
        and PV together, kWh); None until a new quarter hour has been measured (the history
        is only read once per quarter hour)."""
        problem, planned_at = self._problem, self._planned_at_s
        slot_end = int(now // 900 * 900)
        if problem is None or planned_at is None or slot_end <= self._departure_checked_s:
            return None
        self._departure_checked_s = slot_end
        history = self.history()
        if history is None:
            return None
        starts = np.asarray(problem.slot_start_s, dtype=np.int64)
        t = np.asarray(history.t_s, dtype=np.int64)
        since = (t >= planned_at) & (t + 900 <= now)
        if not since.any():
            return None
        at = np.searchsorted(starts, t[since])
        inside = (at < starts.size)
        inside[inside] &= starts[at[inside]] == t[since][inside]
        if not inside.any():
            return None
        index = at[inside]
        load = np.asarray(history.load_kwh, dtype=float)[since][inside]
        pv = np.asarray(history.pv_kwh, dtype=float)[since][inside]
        off = np.abs(load - np.asarray(problem.load_kwh)[index]) \
            + np.abs(pv - np.asarray(problem.pv_kwh)[index])
        return float(np.nansum(off))

    def _prices_changed(self, grid) -> bool:
        """A price the last plan used changed, or a slot inside the horizon it looked at got
        a price it did not have (new prices published). A slot beyond that horizon is only
        the horizon moving on, every quarter hour: the periodic re-plan takes it in, so
        `planner.replan_s` means what it says. (Runs every check: one array comparison, not
        a Python loop over the horizon's slots.)"""
        starts = np.asarray(grid.slot_starts_s)
        if not len(starts):
            return False
        buy = np.asarray(grid.import_eur_per_kwh, dtype=float)
        sell = np.asarray(grid.export_eur_per_kwh, dtype=float)
        usable = np.isfinite(buy) & np.isfinite(sell)
        keys = starts.astype(np.int64)          # as int(start)
        known_starts, known_buy, known_sell = self._planned_price_table
        if len(known_starts):
            at = np.minimum(np.searchsorted(known_starts, keys), len(known_starts) - 1)
            known = known_starts[at] == keys
        else:
            at = np.zeros(len(keys), dtype=np.intp)
            known = np.zeros(len(keys), dtype=bool)
        if np.any(usable & ~known & (starts < self._planned_horizon_end_s)):
            return True
        if not len(known_starts):
            return False
        moved = (np.abs(known_buy[at] - buy) > 1e-9) | (np.abs(known_sell[at] - sell) > 1e-9)
        return bool(np.any(usable & known & moved))

    async def _make_plan(self, now: float, knobs: PlannerKnobs, ev: EvState | None, grid,
                         trigger: str) -> None:
        started = time.perf_counter()
        self._knobs_dirty = False
        self._planned_knobs = knobs
        self._planned_ev = ev
        self._planned_at_s = now
        self._last_trigger = trigger
        self._planned_prices = {
            int(s): (float(b), float(x)) for s, b, x in zip(
                grid.slot_starts_s, grid.import_eur_per_kwh, grid.export_eur_per_kwh)
            if math.isfinite(b) and math.isfinite(x)}
        known = sorted(self._planned_prices.items())
        self._planned_price_table = (
            np.array([start for start, _ in known], dtype=np.int64),
            np.array([price[0] for _, price in known], dtype=float),
            np.array([price[1] for _, price in known], dtype=float))
        starts = first_slot_s(now) + 900 * np.arange(int(self.facts.horizon_h * 4))
        self._planned_horizon_end_s = int(starts[-1]) + 900 if len(starts) else 0
        history = self.history()
        if history is not None:
            self.forecast_errors.compare(now, history.t_s, history.load_kwh, history.pv_kwh)
        load, pv = self.forecaster(self.planner_cfg, starts, now, history)
        if self.pv_weather is not None:
            pv = self.pv_weather.apply(now, starts, history, pv)
        self.forecast_errors.remember(now, starts, load, pv)
        states = self._car_states()
        self._planned_cars = dict(states)
        cars = tuple(PlannedCar(car.id, SiteFacts.from_config(car.config),
                                self._car_knobs(index, knobs), states.get(car.id))
                     for index, car in enumerate(self.cars))
        problem = build_problem(now_s=now, facts=self.facts, knobs=knobs, prices=grid,
                                load_kwh=load, pv_kwh=pv, battery_soc_pct=self._soc_pct(),
                                ev=ev, cars=cars, ev_shared_max_kw=self.ev_shared_max_kw,
                                intensity_g_per_kwh=self._intensity(starts),
                                objective=knobs.objective_name,
                                carbon_price_per_tonne=knobs.carbon_price_per_tonne)
        # The optimizer can take seconds on a GX's CPU (charger minimum power): it runs in a
        # worker thread so D-Bus answers and the control tick never wait for it.
        self._plan, self._baseline, reference = await asyncio.to_thread(_solve, problem,
                                                                         knobs.strategy)
        self._guard = None if reference is None else decide(
            problem, self._plan, reference, self.forecast_errors.relative_error)
        self._problem = problem
        self._baseline_cost = self._baseline.cost_eur
        self.plans_made += 1
        self.last_plan_runtime_s = time.perf_counter() - started
        self.last_plan_finished_s = self.clock.time()
        self._reason = ""
        log.info("planner: new %s plan (%s): cost %.2f, savings %.2f",
                 STRATEGY_NAMES.get(knobs.strategy, "?"), trigger, self._plan.cost_eur,
                 self._baseline_cost - self._plan.cost_eur)

    # ---- what others read -------------------------------------------------------------------

    def current_plan(self) -> Plan | None:
        return self._plan

    def plan_dict(self) -> dict[str, Any] | None:
        """The current plan in the `phaeton plan --json` shape (for `/api/plan`), plus the
        strategy and the D-Bus state; None before the first plan."""
        if self._plan is None or self._problem is None or self._baseline is None:
            return None
        result = plan_as_dict(self._problem, self._plan, self._baseline, self.facts.tz,
                              [self._reason] if self._reason else [])
        result["strategy"] = STRATEGY_NAMES.get(self.knobs.strategy, "?")
        result["currency"] = str(self.config["session"]["currency"])
        result["trigger"] = self._last_trigger
        result["now_s"] = self.clock.time()          # the service's clock (the demo's)
        result["ev"] = self.ev_outlook()
        result["state"] = self.state()
        result["ess"] = self.ess_dict()
        guard = self._guard
        result["guard"] = None if guard is None else {
            "steer": guard.steer, "gain": round(guard.gain_eur, 2),
            "risk": round(guard.risk_eur, 2), "reason": guard.reason or None,
            "forecast_error_pct": round(100 * self.forecast_errors.relative_error, 1)}
        result["fleet"] = self.fleet.state(result["now_s"]) if self.fleet is not None else None
        result["pv_forecast"] = (self.pv_weather.as_dict(result["now_s"])
                                 if self.pv_weather is not None else {"source": "learned"})
        return result

    def ev_outlook(self) -> dict[str, Any] | None:
        """The (first) car's goal as the last plan saw it, for the owner: its SoC (measured,
        or None when the charger does not know it), the target (SoC or kWh) and departure,
        the energy it needed and the plan gives, and whether the plan reaches it (`late` with
        the kWh short and why); None without a plugged-in car."""
        ev, plan, knobs = self._planned_ev, self._plan, self._planned_knobs
        if ev is None or not ev.plugged or plan is None or knobs is None:
            return None
        need = ev_remaining_kwh(self.facts, knobs, ev)
        shortfall = plan.shortfall
        hours, minutes = divmod(int(knobs.ev_departure_min), 60)
        return {
            "soc_pct": ev.soc_pct,
            "assumed_soc_pct": None if ev.soc_pct is not None else self.facts.ev_assumed_soc_pct,
            "target_soc_pct": None if knobs.ev_target_kwh > 0 else knobs.ev_target_soc_pct,
            "target_kwh": knobs.ev_target_kwh if knobs.ev_target_kwh > 0 else None,
            "departure": f"{hours:02d}:{minutes:02d}",
            "needed_kwh": round(need, 2),
            "planned_kwh": round(float(plan.ev_delivered_kwh), 2),
            "late": shortfall is not None,
            "short_kwh": None if shortfall is None else round(shortfall.ev_kwh, 2),
            "late_reason": None if shortfall is None else shortfall.reason,
        }

    def ess_dict(self) -> dict[str, Any]:
        """How the battery is steered now (for `/api/plan`): the writer's control, whether it
        is in control, and the sentences for a Victron DESS conflict, the owner's Dynamic ESS
        off and a write error (None when there is none)."""
        status = self.ess_writer.status
        return {"control": self.ess_writer.control, "in_control": bool(status.in_control),
                "conflict": status.conflict, "owner_off": status.owner_off,
                "error": status.error, "windows": int(status.windows)}

    def ev_allowance_w(self, now_s: float, car: str | None = None) -> float | None:
        """Average power (W) the plan gives the EV (with several chargers: the car at charger
        `car`) in the slot containing `now_s`; None when there is no plan for now or the
        strategy is off (Scheduled mode then uses its windows)."""
        plan = self._plan
        if plan is None or self.knobs.strategy == STRATEGY_OFF:
            return None
        index = slot_index(plan, now_s)
        if index is None:
            return None
        if car is None or not self.cars:
            energy = plan.ev_kwh[index]
        else:
            demands = self._problem.demands if self._problem is not None else ()
            rows = [row for row, demand in enumerate(demands) if demand.name == car]
            energy = plan.ev_kwh_by_ev[rows[0], index] if rows else 0.0
        return float(energy / plan.slot_duration_h[index] * 1000.0)

    ev_allowance = ev_allowance_w

    def ev_target_soc_pct(self, car: str | None = None) -> float | None:
        """The SoC the car (with several chargers: the one at charger `car`) is to reach,
        whatever the strategy (Scheduled mode's windows stop there too); None when its target is
        an energy (ev_target_kwh)."""
        knobs = self.knobs
        if car is not None and self.cars:
            index = next((i for i, c in enumerate(self.cars) if c.id == car), None)
            if index is None:
                return None
            knobs = self._car_knobs(index, knobs)
        return None if knobs.ev_target_kwh > 0 else float(knobs.ev_target_soc_pct)

    def import_price_now(self, now_s: float) -> float | None:
        """The tariff's import price (currency/kWh, may be negative) of the quarter hour that
        contains `now_s`, as the last plan saw it; None when it had none."""
        price = self._planned_prices.get(int(first_slot_s(now_s)))
        return None if price is None else price[0]

    def state(self) -> dict[str, Any]:
        """Values for the read-only D-Bus paths (None = invalid)."""
        now = self.clock.time()
        knobs = self.knobs
        conflict = self.ess_writer.status.conflict
        owner_off = self.ess_writer.status.owner_off
        plan = self._plan
        index = slot_index(plan, now) if plan is not None else None
        target = next_slot = cost = savings = None
        reason = self._reason
        if plan is not None and index is not None:
            target = round(100.0 * float(plan.soc[index + 1]), 1)
            if index + 1 < plan.slot_count:
                next_slot = int(plan.slot_start_s[index + 1])
            cost = round(plan.cost_eur, 2)
            savings = round((self._baseline_cost or 0.0) - plan.cost_eur, 2)
            reason = reason or plan.reasons[index]
        if knobs.strategy == STRATEGY_OPTIMISE and not self.steers():
            reason = self._guard.reason
        if knobs.strategy == STRATEGY_OFF:
            reason = "strategy off: phaeton does not steer the battery"
        elif self.ess_writer.control == "off":
            reason = (f"plan only, the battery is not steered (planner.ess_control is off)"
                      f"{': ' + reason if reason else ''}")
        elif owner_off:
            reason = owner_off
        source = SOURCE_LOCAL
        if self.fleet is not None:
            slot = self.fleet.active(now)
            if slot is not None:
                source = f"fleet:{slot.schedule.id}@{slot.schedule.version}"
                command = slot.command.as_dict()
                asked = " ".join(f"{key} {value}" for key, value in command.items()
                                 if key != "battery")
                reason = (f"fleet schedule {slot.schedule.id} v{slot.schedule.version}, slot "
                          f"{slot.index}: {command['battery']}{' ' + asked if asked else ''}")
                if plan is not None and index is not None:
                    target = None      # the plan's target is not what the battery aims at now
        if conflict:
            reason = conflict
        return {
            "/Planner/Strategy": int(knobs.strategy),
            "/Planner/TargetSoc": target,
            "/Planner/NextSlot": next_slot,
            "/Planner/PlannedCost": cost,
            "/Planner/PlannedSavings": savings,
            "/Planner/Reason": reason,
            "/Planner/DessConflict": 1 if conflict else 0,
            "/Planner/BatterySource": source,
        }


def _ev_changed(old: EvState | None, new: EvState | None) -> bool:
    old_plugged = bool(old and old.plugged)
    new_plugged = bool(new and new.plugged)
    if old_plugged != new_plugged:
        return True
    if not new_plugged:
        return False
    old_soc, new_soc = old.soc_pct, new.soc_pct
    if (old_soc is None) != (new_soc is None):
        return True
    return old_soc is not None and abs(old_soc - new_soc) >= EV_SOC_DRIFT_PCT
