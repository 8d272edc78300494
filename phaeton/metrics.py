"""Prometheus metrics and the health report, from the one snapshot per tick.

`Metrics` is a consumer of the site's `SnapshotPublisher` like the D-Bus services and the web
UI: it attaches there (`attach_to`) and learns everything it counts from the snapshots it is
handed (energy per flow integrated from the ticks' power, decisions by what bound them); a
scrape (`render()`, `GET /metrics`) and the health report (`health()`, `GET /health`) read
the newest snapshot plus the few things a snapshot does not carry: whether each D-Bus name is
owned, the session store's totals, the planner's plan count and timing, the tick duration.
Nothing here polls a charger or the GX.

Every metric, its labels and units are in docs/metrics.md (and `tests/test_metrics.py` holds
the names to it). Labels stay bounded: `charger` is a charger id of the config, `flow` one of
`SITE_FLOWS`, `bound_by` one of `BOUND_NAMES` (anything else counts as "other"), `currency` at
most `MAX_CURRENCIES` per charger, `check` one of `CHECKS`.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

from phaeton import __version__
from phaeton.control.auto import Bound
from phaeton.control.powerflow import build_site_snapshot
from phaeton.control.readings import EvReadings
from phaeton.control.settings import ControlSettings
from phaeton.metrics_text import Family, Histogram, render
from phaeton.snapshot import LoadpointSnapshot, SiteSnapshot

log = logging.getLogger(__name__)

#: Energy flows of the site (label `flow` of phaeton_site_energy_kwh_total).
SITE_FLOWS = ("grid_import", "grid_export", "pv", "house", "battery_charge",
              "battery_discharge")
#: The limits a decision can be bound by (`control.auto.Bound`), label `bound_by`.
BOUND_NAMES = tuple(sorted(v for k, v in vars(Bound).items()
                           if k.isupper() and isinstance(v, str)))
OTHER = "other"
MAX_CURRENCIES = 4
#: The readiness checks of /health, in the order they are reported.
CHECKS = ("control_loop", "dbus", "chargers", "gx_readings", "planner")
#: Power between two ticks further apart than this is not integrated (a stalled loop, a
#: clock jump): the energy of the gap is unknown, not guessed.
MAX_GAP_S = 60.0
#: The control loop counts as stalled when its last tick is older than this many ticks
#: (and at least CONTROL_LOOP_MIN_S).
CONTROL_LOOP_TICKS = 5
CONTROL_LOOP_MIN_S = 30.0
#: A plan older than this many `planner.replan_s` fails the planner check.
PLAN_AGE_REPLANS = 2.0
#: Control tick durations (s, real time).
TICK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class SessionTotalsSource(Protocol):
    """What metrics read from the session store (`store.sessions.SessionStore`)."""

    def totals(self, since_s: float | None = None, until_s: float | None = None, *,
               loadpoint: str | None = None) -> Any: ...


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str


class PlannerWatch:
    """The running planner's last planning run (`PlannerService.last_plan_runtime_s`, real
    seconds, and `last_plan_finished_s`) and its plan count; `follow(planner)` each tick, so a
    planner rebuilt by a saved config is followed (its count starts again at 0)."""

    def __init__(self, clock_time: Callable[[], float]):
        self._time = clock_time
        self.planner: Any = None

    def follow(self, planner: Any, tick_time_s: float) -> None:
        self.planner = planner

    def last_runtime_s(self) -> float | None:
        value = getattr(self.planner, "last_plan_runtime_s", None)
        return None if value is None else float(value)

    def last_finished_s(self) -> float | None:
        value = getattr(self.planner, "last_plan_finished_s", None)
        return None if value is None else float(value)

    def plans_made(self) -> int | None:
        if self.planner is None:
            return None
        return int(getattr(self.planner, "plans_made", 0) or 0)


class Metrics:
    """Counts from every published snapshot; renders /metrics and /health on demand.

    Everything it needs besides the snapshots comes in as callables, so a test can hand it
    plain values: `charger_names()` → {charger id: D-Bus name owned}, `sessions()` → the
    session store, `planner()` → the running `PlannerService` (or None), `control_settings()`
    → the site's `ControlSettings` (to split house load from the EVs as the site does),
    `tick_s` the control interval, `replan_s()` the planner's re-plan period, `clock_time()`
    the clock the snapshots are stamped with."""

    def __init__(self, *, clock_time: Callable[[], float] = time.time,
                 charger_names: Callable[[], Mapping[str, bool]] = dict,
                 sessions: Callable[[], SessionTotalsSource | None] = lambda: None,
                 planner: Callable[[], Any] = lambda: None,
                 control_settings: Callable[[], ControlSettings] = ControlSettings,
                 tick_s: float = 2.0, replan_s: Callable[[], float | None] = lambda: None):
        self.clock_time = clock_time
        self.charger_names = charger_names
        self.sessions = sessions
        self.planner = planner
        self.control_settings = control_settings
        self.tick_s = float(tick_s)
        self.replan_s = replan_s
        self.latest: SiteSnapshot | None = None
        self.ticks = 0
        self.tick_duration = Histogram(TICK_BUCKETS)
        self.site_energy_kwh = {flow: 0.0 for flow in SITE_FLOWS}
        self.charger_energy_kwh: dict[str, float] = {}
        self.decisions: dict[str, dict[str, int]] = {}
        self.planner_watch = PlannerWatch(clock_time)
        self._previous: tuple[float, dict[str, float | None], dict[str, float | None]] | None = None
        #: Carbon metrics: a callable (snapshot) -> iterable of `Family` (`carbon_families`,
        #: set by `for_site`); a snapshot without carbon (no source) gives no carbon family at
        #: all, no placeholder values (docs/metrics.md, "Carbon").
        self.carbon_families: Callable[[SiteSnapshot], Iterable[Family]] | None = None

    # ---- wiring ---------------------------------------------------------------------------

    @classmethod
    def for_site(cls, site: Any, sessions: SessionTotalsSource) -> "Metrics":
        """Metrics of a running `phaeton.site.Site`, attached to its snapshots and its tick
        timing (`site.tick_timers`)."""
        def names() -> dict[str, bool]:
            return {lp.name: _name_owned(lp) for lp in list(site.loadpoints)}

        def replan_s() -> float | None:
            value = getattr(site.planner, "replan_s", None)
            return None if value is None else float(value)

        metrics = cls(clock_time=site.clock.time, charger_names=names,
                      sessions=lambda: sessions, planner=lambda: site.planner,
                      control_settings=lambda: site.control_settings,
                      tick_s=float(site.config["control"]["tick_s"]), replan_s=replan_s)
        metrics.carbon_families = carbon_families(lambda: sessions)
        metrics.attach_to(site.snapshots)
        timers = getattr(site, "tick_timers", None)
        if timers is not None:
            timers.append(metrics.observe_tick_duration)
        return metrics

    def attach_to(self, publisher: Any) -> Callable[[], None]:
        return publisher.attach(self.observe)

    # ---- what every tick adds ----------------------------------------------------------------

    def observe_tick_duration(self, seconds: float) -> None:
        self.tick_duration.observe(seconds)

    def observe(self, snapshot: SiteSnapshot) -> None:
        """One published snapshot: integrate the energy since the previous one, count the
        decisions, follow the planner."""
        self.latest = snapshot
        self.ticks += 1
        site_w = self._site_power_w(snapshot)
        ev_w = {lp.name: (lp.measurement.total_power_w if lp.measurement is not None else None)
                for lp in snapshot.loadpoints}
        previous = self._previous
        if previous is not None:
            dt_s = snapshot.time_s - previous[0]
            if 0 < dt_s <= MAX_GAP_S:
                hours = dt_s / 3600.0
                for flow in SITE_FLOWS:
                    self.site_energy_kwh[flow] += _energy_kwh(previous[1].get(flow),
                                                              site_w.get(flow), hours)
                for name, watts in ev_w.items():
                    self.charger_energy_kwh[name] = (
                        self.charger_energy_kwh.get(name, 0.0)
                        + _energy_kwh(previous[2].get(name), watts, hours))
        self._previous = (snapshot.time_s, site_w, ev_w)
        for lp in snapshot.loadpoints:
            self.charger_energy_kwh.setdefault(lp.name, 0.0)
            counts = self.decisions.setdefault(lp.name, dict.fromkeys(BOUND_NAMES + (OTHER,), 0))
            if lp.decision is not None:
                bound = lp.decision.bound_by if lp.decision.bound_by in BOUND_NAMES else OTHER
                counts[bound] += 1
        try:
            self.planner_watch.follow(self.planner(), snapshot.time_s)
        except Exception:  # noqa: BLE001 - metrics never break a tick
            log.exception("metrics: following the planner failed")

    def _site_power_w(self, snapshot: SiteSnapshot) -> dict[str, float | None]:
        """Each site flow's power (W, >= 0) at this tick; None where unknown or stale."""
        readings = snapshot.readings
        if readings is None or readings.is_stale(snapshot.stale_after_s):
            return dict.fromkeys(SITE_FLOWS)
        grid = readings.grid_total_w
        battery = readings.battery_power_w
        measurements = [lp.measurement for lp in snapshot.loadpoints]
        evs = [EvReadings.from_measurement(m) if m is not None else EvReadings()
               for m in measurements]
        try:
            flow = build_site_snapshot(readings, evs, self.control_settings(),
                                       evs_known=all(m is not None for m in measurements))
        except Exception as exc:  # noqa: BLE001 - readings the power flow cannot use
            log.debug("metrics: no power flow this tick: %s", exc)
            return dict.fromkeys(SITE_FLOWS)
        return {
            "grid_import": None if grid is None else max(grid, 0.0),
            "grid_export": None if grid is None else max(-grid, 0.0),
            "pv": flow.pv_total_w,
            "house": flow.house_total_w,
            "battery_charge": None if battery is None else max(battery, 0.0),
            "battery_discharge": None if battery is None else max(-battery, 0.0),
        }

    # ---- health ---------------------------------------------------------------------------

    def checks(self) -> dict[str, CheckResult]:
        """Each readiness check: ok and what it found (CHECKS order)."""
        snapshot = self.latest
        now = self.clock_time()
        results: dict[str, CheckResult] = {}

        limit_s = max(CONTROL_LOOP_MIN_S, CONTROL_LOOP_TICKS * self.tick_s)
        if snapshot is None:
            results["control_loop"] = CheckResult(False, "no control tick yet")
        else:
            age = now - snapshot.time_s
            results["control_loop"] = CheckResult(
                age <= limit_s, f"last tick {age:.1f} s ago (limit {limit_s:g} s)")

        names = self.charger_names()
        lost = sorted(name for name, owned in names.items() if not owned)
        results["dbus"] = CheckResult(
            bool(names) and not lost,
            "every D-Bus name owned" if names and not lost
            else "no charger service" if not names
            else "D-Bus name not owned for charger " + ", ".join(map(repr, lost)))

        if snapshot is None:
            results["chargers"] = CheckResult(False, "no control tick yet")
        else:
            offline = [lp for lp in snapshot.loadpoints if not lp.connected]
            results["chargers"] = CheckResult(
                not offline,
                "every charger connected" if not offline else "; ".join(
                    f"charger {lp.name!r} not connected"
                    + (f" ({lp.error})" if lp.error else "") for lp in offline))

        readings = snapshot.readings if snapshot is not None else None
        if readings is None:
            results["gx_readings"] = CheckResult(False, "no GX readings yet")
        elif readings.age_s is None:
            results["gx_readings"] = CheckResult(False, "GX readings of unknown age")
        else:
            fresh = not readings.is_stale(snapshot.stale_after_s)
            results["gx_readings"] = CheckResult(
                fresh, f"GX readings {readings.age_s:.1f} s old "
                       f"({'fresh' if fresh else 'stale'} after {snapshot.stale_after_s:g} s)")

        finished = self.planner_watch.last_finished_s()
        replan = self.replan_s()
        max_age = PLAN_AGE_REPLANS * replan if replan else None
        if finished is None:
            reason = ""
            if snapshot is not None:
                reason = str(snapshot.planner_state.get("/Planner/Reason") or "")
            results["planner"] = CheckResult(
                False, "no plan yet" + (f" ({reason})" if reason else ""))
        else:
            age = now - finished
            ok = max_age is None or age <= max_age
            results["planner"] = CheckResult(
                ok, f"last plan {age:.0f} s ago"
                    + (f" (limit {max_age:g} s = {PLAN_AGE_REPLANS:g} x planner.replan_s)"
                       if max_age is not None else ""))
        return results

    def health(self) -> dict[str, Any]:
        """The /health body: live (always, since it answers), ready, every check by name and
        the names of the failed ones."""
        checks = self.checks()
        failed = [name for name, result in checks.items() if not result.ok]
        return {"live": True, "ready": not failed, "failed": failed,
                "checks": {name: {"ok": result.ok, "detail": result.detail}
                           for name, result in checks.items()},
                "time": self.clock_time(), "version": __version__}

    # ---- the exposition ---------------------------------------------------------------------

    def families(self) -> list[Family]:
        snapshot = self.latest
        out: list[Family] = []

        def family(name: str, kind: str, help_text: str) -> Family:
            made = Family(name, kind, help_text)
            out.append(made)
            return made

        family("phaeton_build_info", "gauge",
               "Always 1; the running phaeton's version as a label.").add(1, {"version": __version__})

        # -- health --
        checks = self.checks()
        ready = family("phaeton_ready", "gauge",
                       "1 when every readiness check of /health passes, else 0.")
        ready.add(all(r.ok for r in checks.values()))
        check = family("phaeton_health_check", "gauge",
                       "1 when the readiness check passes, else 0 (see /health for why).")
        for name, result in checks.items():
            check.add(result.ok, {"check": name})

        # -- the control loop --
        family("phaeton_control_ticks_total", "counter",
               "Control ticks published since phaeton started.").add(self.ticks)
        if snapshot is not None:
            family("phaeton_last_tick_timestamp_seconds", "gauge",
                   "Unix time of the last published control tick.").add(snapshot.time_s)
        hist = family("phaeton_control_tick_duration_seconds", "histogram",
                      "Wall time one control tick took (read, decide, apply, publish).")
        self.tick_duration.add_to(hist)

        # -- the site --
        energy = family("phaeton_site_energy_kwh_total", "counter",
                        "Energy per flow since phaeton started (kWh), integrated from each "
                        "tick's power; grid import/export from the net grid power.")
        for flow in SITE_FLOWS:
            energy.add(self.site_energy_kwh[flow], {"flow": flow})
        readings = snapshot.readings if snapshot is not None else None
        power = family("phaeton_site_power_watts", "gauge",
                       "Power per flow at the last tick (W): grid + import / - export, "
                       "battery + charging; missing while unknown or stale.")
        if snapshot is not None and readings is not None:
            site_w = self._site_power_w(snapshot)
            power.add(readings.grid_total_w if site_w["grid_import"] is not None else None,
                      {"flow": "grid"})
            power.add(site_w["pv"], {"flow": "pv"})
            power.add(site_w["house"], {"flow": "house"})
            power.add(readings.battery_power_w if site_w["battery_charge"] is not None
                      else None, {"flow": "battery"})
            family("phaeton_battery_soc_percent", "gauge",
                   "Home battery state of charge (%).").add(readings.battery_soc_pct)
        age = family("phaeton_gx_readings_age_seconds", "gauge",
                     "Age of the GX system readings at the last tick (s).")
        fresh = family("phaeton_gx_readings_fresh", "gauge",
                       "1 when the GX readings were fresh enough to control on, else 0.")
        if snapshot is not None:
            age.add(readings.age_s if readings is not None else None)
            fresh.add(readings is not None and not readings.is_stale(snapshot.stale_after_s))
            family("phaeton_gx_readings_stale_after_seconds", "gauge",
                   "Readings older than this are stale (control.stale_after_s).").add(
                snapshot.stale_after_s)
            family("phaeton_site_fuse_amperes", "gauge",
                   "The grid connection's fuse per phase (A).").add(snapshot.fuse_a)

        # -- the chargers --
        self._charger_families(family, snapshot)
        self._session_families(family, snapshot)
        self._planner_families(family, snapshot)

        # -- carbon (see __init__); nothing is exposed without a carbon source
        if self.carbon_families is not None and snapshot is not None:
            out.extend(self.carbon_families(snapshot))
        return out

    def _charger_families(self, family: Callable[[str, str, str], Family],
                          snapshot: SiteSnapshot | None) -> None:
        loadpoints: Sequence[LoadpointSnapshot] = snapshot.loadpoints if snapshot else ()
        names = self.charger_names()
        owned = family("phaeton_dbus_name_owned", "gauge",
                       "1 while the charger's com.victronenergy.evcharger name is owned.")
        for name, has in names.items():
            owned.add(has, {"charger": name})
        info = family("phaeton_charger_info", "gauge",
                      "Always 1; the charger's custom name, model, serial and firmware.")
        connected = family("phaeton_charger_connected", "gauge",
                           "1 while the charger gives believable answers, else 0.")
        status = family("phaeton_charger_status", "gauge",
                        "Victron /Status code (0 disconnected, 1 connected, 2 charging, ...).")
        mode = family("phaeton_charger_mode", "gauge", "/Mode: 0 manual, 1 auto, 2 scheduled.")
        setpoint = family("phaeton_charger_setpoint_amperes", "gauge",
                          "The current per phase phaeton told the charger at the last tick (A).")
        set_current = family("phaeton_charger_set_current_amperes", "gauge",
                             "The user's /SetCurrent (A).")
        max_current = family("phaeton_charger_max_current_amperes", "gauge",
                             "The user's /MaxCurrent (A).")
        current = family("phaeton_charger_current_amperes", "gauge",
                         "Measured current, the highest phase (A), as /Current.")
        power = family("phaeton_charger_power_watts", "gauge", "Measured power (W).")
        phases = family("phaeton_charger_phases", "gauge", "Phases in use.")
        lifetime = family("phaeton_charger_lifetime_energy_kwh", "gauge",
                          "The charger's own lifetime energy counter, last good value (kWh).")
        energy = family("phaeton_charger_energy_kwh_total", "counter",
                        "Energy into the EV since phaeton started (kWh), integrated from each "
                        "tick's measured power.")
        active = family("phaeton_charger_session_active", "gauge",
                        "1 while a charging session runs.")
        session_energy = family("phaeton_charger_session_energy_kwh", "gauge",
                                "Energy of the running session (kWh; 0 without one).")
        decisions = family("phaeton_charger_decisions_total", "counter",
                           "Control decisions by the limit that bound the current.")
        car_soc = family("phaeton_vehicle_soc_percent", "gauge",
                         "The car's own SoC at this charger (docs/vehicles.md), with the energy "
                         "charged since the reading; absent while unknown.")
        car_age = family("phaeton_vehicle_soc_age_seconds", "gauge",
                         "How old the car's SoC reading is (s).")
        car_stale = family("phaeton_vehicle_soc_stale", "gauge",
                           "1 when the reading is older than the car's stale_after_s (then the "
                           "plan does not use it).")
        for lp in loadpoints:
            labels = {"charger": lp.name}
            identity = lp.identity
            info.add(1, {**labels, "name": lp.choices.custom_name or "",
                         "model": identity.model if identity else "",
                         "serial": identity.serial if identity else "",
                         "firmware": identity.firmware if identity else ""})
            m, decision = lp.measurement, lp.decision
            connected.add(m is not None, labels)
            status.add(int(decision.status) if decision is not None else None, labels)
            mode.add(lp.choices.mode, labels)
            setpoint.add(decision.current_a if decision is not None else None, labels)
            set_current.add(lp.choices.set_current_a, labels)
            max_current.add(lp.choices.max_current_a, labels)
            if m is not None:
                currents = [a for a in m.current_a if a is not None]
                current.add(max(currents) if currents else None, labels)
                power.add(m.total_power_w, labels)
            phases.add(lp.phases_in_use, labels)
            lifetime.add(lp.lifetime_kwh, labels)
            energy.add(self.charger_energy_kwh.get(lp.name, 0.0), labels)
            active.add(lp.session.active, labels)
            session_energy.add((lp.session.energy_kwh or 0.0) if lp.session.active else 0.0,
                               labels)
            for bound, count in self.decisions.get(lp.name, {}).items():
                decisions.add(count, {**labels, "bound_by": bound})
            car = lp.car
            if car is not None and car.soc_pct is not None:
                car_labels = {**labels, "car": car.name, "source": car.source or ""}
                car_soc.add(car.soc_pct, car_labels)
                car_age.add(car.age_s, car_labels)
                car_stale.add(car.stale, car_labels)

    def _session_families(self, family: Callable[[str, str, str], Family],
                          snapshot: SiteSnapshot | None) -> None:
        count = family("phaeton_sessions_finished", "gauge",
                       "Finished sessions kept in the session store (session.history_limit "
                       "per charger).")
        energy = family("phaeton_sessions_finished_energy_kwh", "gauge",
                        "Energy of the finished sessions in the store (kWh), as /api/sessions.")
        solar = family("phaeton_sessions_finished_solar_energy_kwh", "gauge",
                       "Solar part of that energy (kWh).")
        cost = family("phaeton_sessions_finished_cost", "gauge",
                      "Cost of the finished sessions in the store, per currency.")
        store = self.sessions()
        if store is None or snapshot is None:
            return
        for lp in snapshot.loadpoints:
            try:
                totals = store.totals(loadpoint=lp.name)
            except Exception as exc:  # noqa: BLE001 - a damaged store leaves the rest
                log.warning("metrics: session totals of %s unavailable: %s", lp.name, exc)
                continue
            labels = {"charger": lp.name}
            count.add(totals.count, labels)
            energy.add(totals.energy_kwh, labels)
            solar.add(totals.solar_energy_kwh, labels)
            costs = sorted(totals.cost_by_currency.items())
            kept, rest = costs[:MAX_CURRENCIES], costs[MAX_CURRENCIES:]
            for currency, value in kept:
                cost.add(value, {**labels, "currency": currency or OTHER})
            if rest:
                cost.add(sum(v for _, v in rest), {**labels, "currency": OTHER})

    def _planner_families(self, family: Callable[[str, str, str], Family],
                          snapshot: SiteSnapshot | None) -> None:
        watch = self.planner_watch
        state: Mapping[str, Any] = snapshot.planner_state if snapshot is not None else {}
        family("phaeton_planner_plans_total", "counter",
               "Plans made by the running planner (starts again at 0 when a saved config "
               "rebuilds it).").add(watch.plans_made())
        family("phaeton_planner_last_plan_duration_seconds", "gauge",
               "Wall time the last planning run took (forecast, problem, optimizer).").add(
            watch.last_runtime_s())
        finished = watch.last_finished_s()
        family("phaeton_planner_last_plan_timestamp_seconds", "gauge",
               "Unix time the last plan was made.").add(finished)
        family("phaeton_planner_plan_age_seconds", "gauge",
               "Seconds since the last plan was made.").add(
            None if finished is None else self.clock_time() - finished)
        currency = _currency(snapshot)
        family("phaeton_planner_planned_cost", "gauge",
               "Cost of the plan over its horizon (/Planner/PlannedCost).").add(
            _number(state.get("/Planner/PlannedCost")), {"currency": currency})
        family("phaeton_planner_planned_savings", "gauge",
               "Doing nothing minus the plan's cost (/Planner/PlannedSavings).").add(
            _number(state.get("/Planner/PlannedSavings")), {"currency": currency})
        family("phaeton_planner_strategy", "gauge",
               "Battery strategy: 0 off, 1 self-consumption, 2 optimise.").add(
            _number(state.get("/Planner/Strategy")))
        family("phaeton_planner_dess_conflict", "gauge",
               "1 while Victron's own Dynamic ESS runs the battery.").add(
            _number(state.get("/Planner/DessConflict")))

    def render(self) -> str:
        """The /metrics text."""
        return render(self.families())


# ---- carbon ----------------------------------------------------------------------------------

#: label values of the carbon families (bounded: fixed tuples)
CARBON_CONSUMERS = ("house", "car")
BUDGET_SCOPES = ("site", "car")
BUDGET_PERIODS = ("month", "year")
CARBON_PERIODS = ("day", "month", "year")
MAX_SESSIONS_SCANNED = 100000


def carbon_families(sessions: Callable[[], Any]) -> Callable[[SiteSnapshot], list[Family]]:
    """The carbon families of a snapshot (none when it has no carbon: no source):
    the grid's intensity, the emissions per period (from the carbon history) and since start,
    the budgets, and the finished sessions' kg CO2 per charger (from the store's co2_kg; a
    session without it counts nothing)."""
    def families(snapshot: SiteSnapshot) -> list[Family]:
        carbon = getattr(snapshot, "carbon", None)
        if carbon is None:
            return []
        out: list[Family] = []

        def family(name: str, kind: str, help_text: str) -> Family:
            made = Family(name, kind, help_text)
            out.append(made)
            return made

        family("phaeton_grid_carbon_intensity_grams_per_kwh", "gauge",
               "Carbon intensity of grid electricity now (g CO2-eq/kWh).").add(
            _number(carbon.intensity_g_per_kwh))
        periods = family("phaeton_carbon_emissions_kg", "gauge",
                         "kg CO2-eq of the running local day, month or year so far, by consumer "
                         "(from the carbon accounting).")
        avoided = family("phaeton_carbon_avoided_kg", "gauge",
                         "kg CO2-eq avoided in the running local day, month or year so far.")
        for name, part in zip(CARBON_PERIODS, (carbon.today, carbon.month, carbon.year)):
            periods.add(part.house_kg, {"consumer": "house", "period": name})
            periods.add(part.car_kg, {"consumer": "car", "period": name})
            avoided.add(part.avoided_kg, {"period": name})
        total = family("phaeton_carbon_emissions_kg_total", "counter",
                       "kg CO2-eq accounted since phaeton started (quarter hours written to "
                       "the carbon history), by consumer.")
        house_kg, car_kg, avoided_kg = carbon.accounted_kg
        total.add(house_kg, {"consumer": "house"})
        total.add(car_kg, {"consumer": "car"})
        family("phaeton_carbon_avoided_kg_total", "counter",
               "kg CO2-eq avoided since phaeton started.").add(avoided_kg)
        usage = family("phaeton_carbon_budget_usage_percent", "gauge",
                       "Share of the carbon budget used so far (%).")
        budget = family("phaeton_carbon_budget_kg", "gauge", "The carbon budget (kg CO2-eq).")
        forecast = family("phaeton_carbon_budget_forecast_kg", "gauge",
                          "Where the period ends at its pace so far (kg; linear on the "
                          "elapsed time, missing in its first day).")
        for status in carbon.budgets:
            labels = {"scope": status.scope, "period": status.period}
            if status.scope not in BUDGET_SCOPES or status.period not in BUDGET_PERIODS:
                continue
            usage.add(status.usage_pct, labels)
            budget.add(status.budget_kg, labels)
            forecast.add(status.forecast_kg, labels)
        if carbon.budget_state is not None:
            family("phaeton_carbon_budget_state", "gauge",
                   "Worst carbon budget level: 0 ok, 1 warning, 2 critical.").add(
                carbon.budget_state)
        co2 = family("phaeton_sessions_finished_co2_kg", "gauge",
                     "kg CO2-eq of the finished sessions in the store (sessions without a "
                     "carbon figure count nothing).")
        store = sessions()
        if store is not None:
            for lp in snapshot.loadpoints:
                try:
                    rows = store.list_sessions(limit=MAX_SESSIONS_SCANNED, loadpoint=lp.name)
                except Exception as exc:  # noqa: BLE001 - a damaged store leaves the rest
                    log.warning("metrics: sessions of %s unavailable: %s", lp.name, exc)
                    continue
                co2.add(sum(s.co2_kg for s in rows if s.co2_kg is not None),
                        {"charger": lp.name})
        return out

    return families


def _energy_kwh(before_w: float | None, after_w: float | None, hours: float) -> float:
    """Energy of one interval from the power at both ends (trapezoid); 0 when either end is
    unknown (the interval is not guessed)."""
    if before_w is None or after_w is None:
        return 0.0
    if not (math.isfinite(before_w) and math.isfinite(after_w)):
        return 0.0
    return max(0.0, (before_w + after_w) / 2.0) * hours / 1000.0


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def _currency(snapshot: SiteSnapshot | None) -> str:
    if snapshot is not None:
        for lp in snapshot.loadpoints:
            if lp.session.currency:
                return lp.session.currency
    return OTHER


def _name_owned(loadpoint: Any) -> bool:
    """Whether the loadpoint's evcharger service holds its D-Bus name: registered
    (velib requests it do-not-queue and gives up the connection when refused) and its bus
    connection is up."""
    service = getattr(getattr(loadpoint, "evcharger", None), "service", None)
    bus = getattr(service, "bus", None)
    return bool(bus is not None and getattr(bus, "connected", False))
