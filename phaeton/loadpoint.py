"""One loadpoint: one charger with its controller, the user's choices, its D-Bus service and its
charging sessions.

Each tick the site calls `read()` (the charger's answer, judged) and then `step()` with the GX
readings it read once for every loadpoint: the controller decides (pure), the charger is told
only what changed, the session is accounted. `snapshot()` is what the loadpoint looks like
afterwards; the site publishes it.

Failure handling lives here, at the edge: a charger that does not answer gives `/Connected 0`
and a 0 A decision; a charger whose answer cannot be believed (`control/plausibility`: NaN,
random values, a negative station maximum, a counter jump) or whose driver raises something
unexpected gives `/Connected 0`, `/Status 0` and the fail-safe current, and recovers with its
next believable answer; a charger that reconnects is told everything again.

Parts come in through the constructor, so a loadpoint runs in a unit test with a fake charger,
a fake clock and an in-memory stand-in for its D-Bus service (`make_service`).
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Callable, Protocol

from velib.settings import SettingsClient, SettingSpec

from phaeton.chargers.base import Capability, Charger, ChargerMeasurement, ChargerUnavailable
from phaeton.clock import Clock
from phaeton.control.allocation import LoadpointShare
from phaeton.control.auto import Bound
from phaeton.control.controller import ChargeController, ChargeDecision, ControllerInputs, Mode
from phaeton.control.plausibility import ChargerBounds, CounterState, judge_measurement
from phaeton.control.readings import EvReadings, SiteReadings
from phaeton.control.session import SessionEnded, SessionStarted, SessionTracker
from phaeton.control.settings import ControlSettings
from phaeton.planning.knobs import EvState
from phaeton.snapshot import LoadpointSnapshot, SessionSummary
from phaeton.store.sessions import ChargingSession, SessionStore
from phaeton.store.state_file import StateFile, StateFileError
from phaeton.vehicles.garage import CarView
from phaeton.venus.evcharger_service import (CUSTOM_NAME_MAX, STATUS_TEXT, ChargerLimits,
                                             UserChoices)

log = logging.getLogger("phaeton.app")   # the service's log name, as before the split

RUNNING_SESSION_SAVE_S = 60.0     # how often a running session is written to disk
DECISION_LOG_GAP_S = 10.0         # plain decision changes are logged at most this often
_FAIL_SAFE_BOUNDS = frozenset({Bound.STALE_READINGS, Bound.CHARGER_OFFLINE, Bound.CHARGER_ERROR,
                               Bound.CHARGER_IMPLAUSIBLE})


class LoadpointService(Protocol):
    """What a loadpoint needs of its D-Bus service (`venus.evcharger_service.EvChargerService`;
    the site shows the snapshots on it)."""

    name: str

    def write(self, path: str, value: Any) -> int: ...
    def set_choice(self, path: str, value: Any) -> None: ...
    def set_device_instance(self, instance: int) -> None: ...
    async def register(self) -> None: ...
    async def close(self) -> None: ...


#: (choices, limits, on_user_change) -> the loadpoint's service
ServiceFactory = Callable[[UserChoices, ChargerLimits, Callable[[str, Any], None]],
                          LoadpointService]


@dataclass(frozen=True)
class ChargerReading:
    """One read of the charger. `measurement` None: no believable answer; then `problem` says
    why it is not believed (None: the charger did not answer at all)."""

    at_s: float                             # monotonic time the read began
    measurement: ChargerMeasurement | None
    problem: str | None


class Loadpoint:
    """One charger and everything that belongs to it; see the module docstring."""

    def __init__(self, name: str, charger: Charger, controller: ChargeController, *,
                 limits: ChargerLimits, default_choices: UserChoices, state_file: StateFile,
                 tracker: SessionTracker, session_store: SessionStore,
                 make_service: ServiceFactory, clock: Clock, settings: SettingsClient | None = None,
                 device_instance: int = 40):
        self.name = name
        self.charger = charger
        self.controller = controller
        self.control_settings: ControlSettings = controller.settings
        self.limits = limits
        self.state_file = state_file
        self.tracker = tracker
        self.session_store = session_store
        self.clock = clock
        self.settings = settings                  # velib SettingsClient, or None
        self.device_instance = device_instance    # the configured one
        self.choices = UserChoices.from_dict(state_file.load(), default_choices)
        self._clamp_choices()
        self.evcharger = make_service(self.choices, self.limits, self._on_user_change)
        self.settings_attached = False
        self._wake: Callable[[], None] = lambda: None
        self._names_in_flight: list[str] = []     # /CustomName values written to settings
        self._applied: dict[str, Any] = {}        # what the charger was last told
        self._was_connected = False
        self._last_session_save = 0.0
        self._last_session: SessionEnded | None = None
        self._last_decision: ChargeDecision | None = None
        self._last_measurement: ChargerMeasurement | None = None
        self._logged_decision: tuple[str, int] | None = None    # (bound_by, status)
        self._logged_at = -1e9
        self._charger_problem: str | None = None  # why the charger's answer is not believed
        self._counter = CounterState()            # the lifetime counter's last good value
        self._read_failure: str | None = None     # the last unexpected read exception
        self._apply_error: str | None = None      # the last command the charger refused
        self.car: CarView | None = None           # the car here, as the site's garage sees it

    # ---- life cycle --------------------------------------------------------------------------

    def on_wake(self, wake: Callable[[], None]) -> None:
        """`wake()` runs the next step at once (the site's loop): after a user's write."""
        self._wake = wake

    def continue_session(self) -> None:
        """Continue the session that was running before a restart."""
        record = self.session_store.load_running(loadpoint=self.name)
        if record:
            try:
                self.tracker.restore(record)
                log.info("continuing the session that was running before the restart")
            except ValueError as exc:
                log.warning("could not continue the saved session (%s); starting fresh", exc)
                self.session_store.clear_running(loadpoint=self.name)

    async def start(self) -> None:
        """Start the driver: it connects (and loads its protocol library) in the background."""
        await self.charger.start()

    async def register(self) -> None:
        await self.evcharger.register()

    async def leave_safe(self) -> None:
        """Stopping: the charger at its safe current, the running session saved."""
        try:
            await asyncio.wait_for(
                self.charger.set_current(self.control_settings.safe_current_a), 5)
        except (ChargerUnavailable, asyncio.TimeoutError, OSError) as exc:
            log.warning("could not leave the charger at its safe current: %s", exc)
        self._save_running_session(force=True)

    async def close(self) -> None:
        """Stop the driver and release the D-Bus name."""
        for closer in (self.charger.stop, self.evcharger.close):
            try:
                await asyncio.wait_for(closer(), 10)
            except Exception as exc:
                log.warning("while stopping: %s", exc)

    def update_settings(self, settings: ControlSettings, price_per_kwh: float,
                        currency: str) -> None:
        """A saved config: what is under way carries on."""
        self.control_settings = settings
        self.controller.update_settings(settings)
        self.tracker.price_per_kwh = price_per_kwh
        self.tracker.currency = currency

    # ---- device instance and name (com.victronenergy.settings) --------------------------------

    @property
    def settings_device(self) -> str:
        return f"phaeton_{self.name}"

    async def attach_settings(self) -> None:
        """Allocate the device instance and follow the custom name in the (available) settings
        service; a refusal is a warning and the configured instance stays."""
        device = self.settings_device
        try:
            instance = await self.settings.allocate_device_instance(
                device, "evcharger", self.device_instance,
                on_change=self._device_instance_changed)
            self.evcharger.set_device_instance(instance)
            name_path = f"/Settings/Devices/{device}/CustomName"
            values = await self.settings.add_settings(
                [SettingSpec(name_path, self.choices.custom_name)])
            stored = values.get(name_path)
            if isinstance(stored, str) and stored != self.choices.custom_name:
                self.evcharger.set_choice("/CustomName", stored)
            self.settings.subscribe(name_path, self._custom_name_changed)
            self.settings_attached = True
        except Exception as exc:
            log.warning("settings service refused phaeton's settings: %s", exc)

    def _device_instance_changed(self, instance: int) -> None:
        log.info("device instance changed to %d", instance)
        self.evcharger.set_device_instance(instance)

    def _custom_name_changed(self, _path: str, value: Any) -> None:
        """The name setting changed. Echoes of our own writes are not news: after two quick
        writes the echo of the first would otherwise bring the older name back for a moment."""
        if value in self._names_in_flight:
            del self._names_in_flight[:self._names_in_flight.index(value) + 1]
            return
        if isinstance(value, str) and value != self.choices.custom_name:
            if len(value) > CUSTOM_NAME_MAX:
                log.warning("ignoring a %d-character name from the GX settings (at most %d)",
                            len(value), CUSTOM_NAME_MAX)
                return
            self.evcharger.set_choice("/CustomName", value)
            self._persist_choices()

    # ---- the user's writes -------------------------------------------------------------------

    def write(self, path: str, value: Any) -> int:
        """A write from the web UI: exactly a D-Bus SetValue on the service (codes 0/1/2)."""
        return self.evcharger.write(path, value)

    def _clamp_choices(self) -> None:
        c, lim = self.choices, self.limits
        c.max_current_a = min(max(c.max_current_a, lim.min_current_a), lim.max_current_a)
        c.set_current_a = min(max(c.set_current_a, 0.0), lim.max_current_a)
        if c.phases not in (1, 3) or c.phases > lim.wired_phases:
            c.phases = lim.wired_phases

    def _on_user_change(self, path: str, value: Any) -> None:
        log.info("user set %s = %r", path, value)
        self._persist_choices()
        if path == "/CustomName" and self.settings is not None and self.settings.available:
            self._names_in_flight.append(value)
            del self._names_in_flight[:-16]         # echoes that never came are forgotten
            name_path = f"/Settings/Devices/{self.settings_device}/CustomName"
            asyncio.get_running_loop().create_task(self.settings.write(name_path, value))
        self._wake()   # takes effect now, not at the next tick

    def _persist_choices(self) -> None:
        try:
            self.state_file.save(self.choices.as_dict())
        except (StateFileError, OSError) as exc:
            log.error("could not save the user's choices: %s", exc)

    # ---- read, decide, apply -----------------------------------------------------------------

    async def read(self, timeout_s: float) -> ChargerReading:
        """The charger's answer, judged. Never raises for anything a driver does."""
        at_s = self.clock.monotonic()
        measurement, problem = await self._read_charger(timeout_s)
        return ChargerReading(at_s, measurement, problem)

    async def _read_charger(self, timeout_s: float) -> tuple[ChargerMeasurement | None,
                                                               str | None]:
        try:
            if not self.charger.connected:
                return None, None
            raw = await asyncio.wait_for(self.charger.read(), timeout_s)
        except asyncio.CancelledError:
            raise
        except (ChargerUnavailable, asyncio.TimeoutError) as exc:
            log.debug("charger read failed: %s", exc)
            return None, None
        except Exception as exc:    # a driver bug or a decoder choking on garbage
            problem = f"charger read failed ({type(exc).__name__}: {exc})"
            if problem != self._read_failure:   # the traceback once per new failure, for DEBUG
                log.debug("%s", problem, exc_info=True)
            self._read_failure = problem
            return None, problem
        self._read_failure = None
        judgement = judge_measurement(raw, self._counter, self.clock.monotonic(),
                                      self._charger_bounds())
        self._counter = judgement.counter
        if judgement.counter_rebased:
            log.info("the charger's energy counter moved to %.3f kWh and stayed there: "
                     "counting from the new level", judgement.counter.last_kwh)
            self.tracker.forget_counter()
        return judgement.measurement, judgement.reason

    def _charger_bounds(self) -> ChargerBounds:
        return ChargerBounds(wired_phases=self.limits.wired_phases,
                             max_current_a=self.limits.max_current_a,
                             nominal_voltage_v=self.control_settings.nominal_voltage_v,
                             required_readings=frozenset(
                                 getattr(self.charger, "required_readings", frozenset())))

    async def step(self, reading: ChargerReading, site: SiteReadings | None,
                   plan_allowance_w: float | None = None,
                   share: LoadpointShare | None = None,
                   price_per_kwh: float | None = None,
                   carbon_g_per_kwh: float | None = None,
                   target_soc_pct: float | None = None) -> ChargeDecision:
        """Decide with this tick's reading and the site's GX readings (and, in Scheduled mode,
        the plan's EV power for now; `share`: this loadpoint's circuits headroom and surplus
        when the site computes them, None: the main fuse and all the surplus), tell the
        charger what changed, account the session (`carbon_g_per_kwh`: the intensity of the
        site's supply beyond PV now, None: no carbon source; `target_soc_pct`: Scheduled mode
        stops when the car's own SoC reaches it)."""
        measurement, problem = reading.measurement, reading.problem
        connected = measurement is not None
        if connected and not self._was_connected:
            self._applied.clear()   # a reconnected charger is told everything again
            if self._charger_problem:
                log.info("charger answers plausible values again: %s",
                         self.charger.connection_text)
            else:
                log.info("charger connected: %s", self.charger.connection_text)
        elif not connected and self._was_connected and problem is None:
            log.warning("charger lost: %s", self.charger.last_error or "no answer")
        # (an untrusted charger's warning is the decision's: "Disconnected, … A: charger
        # answers implausible values: …", logged once when the condition starts)
        self._was_connected = connected
        self._charger_problem = problem
        ev = EvReadings.from_measurement(measurement) if connected else EvReadings()
        c = self.choices
        # /SetPhases writes are accepted once the charger shows it can switch
        self.limits.can_switch_phases = (
            Capability.PHASE_SWITCHING in self.charger.capabilities
            and self.control_settings.phase_switching_possible)
        inputs = ControllerInputs(
            mode=c.mode, start_stop=c.start_stop, set_current_a=c.set_current_a,
            max_current_a=c.max_current_a, auto_start=c.auto_start,
            capabilities=self.charger.capabilities, site=site, ev=ev,
            charger_connected=connected, charger_problem=problem, manual_phases=c.phases,
            charger_max_current_a=measurement.station_max_current_a if connected else None,
            plan_current_a=self._plan_current_a(plan_allowance_w, measurement)
            if c.mode == Mode.SCHEDULED else None, site_share=share,
            vehicle_soc_pct=self.car_soc_pct(measurement), target_soc_pct=target_soc_pct)
        decision = self.controller.step(inputs, reading.at_s,
                                        datetime.fromtimestamp(self.clock.time()))
        if decision.start_stop_request is not None and decision.start_stop_request != c.start_stop:
            log.info("vehicle plugged in with AutoStart on: starting")
            self.evcharger.set_choice("/StartStop", decision.start_stop_request)
            self._persist_choices()
        # Recorded before the charger is told: while the write is under way the status already
        # shows the decision the charger is getting (a cut reads "fuse" as soon as it lands).
        self._last_decision = decision
        self._last_measurement = measurement
        if connected:
            await self._apply(decision, measurement)
            green = share.solar_fraction if share is not None else None
            for event in self.tracker.update(ev, decision.snapshot, self.clock.time(),
                                             solar_fraction=green, price_per_kwh=price_per_kwh,
                                             carbon_g_per_kwh=carbon_g_per_kwh):
                self._session_event(event)
            self._save_running_session()
        elif problem is not None:
            await self._apply(decision, None)     # the fail-safe current, if it still listens
        self._log_decision(decision)
        return decision

    def _plan_current_a(self, allowance_w: float | None,
                        measurement: ChargerMeasurement | None) -> float | None:
        """Scheduled mode: the plan's EV power for this slot as a current (None: no plan)."""
        if allowance_w is None:
            return None
        phases = (measurement.phases if measurement is not None and measurement.phases in (1, 3)
                  else self.limits.wired_phases)
        return max(0.0, allowance_w / (self.control_settings.nominal_voltage_v * phases))

    async def _apply(self, decision: ChargeDecision,
                     measurement: ChargerMeasurement | None) -> None:
        """Tell the charger what changed (drivers keep their own keep-alive refresh). Without a
        believable measurement only StartStop and the current are sent, never a phase switch.
        A refusal is a warning once per new reason; the next tick retries."""
        can_switch = (measurement is not None
                      and Capability.PHASE_SWITCHING in self.charger.capabilities)
        phases = decision.phases
        current = decision.current_a if decision.enabled else 0.0
        try:
            if can_switch and phases != self._applied.get("phases") \
                    and measurement.phases not in (None, phases):
                await self.charger.set_phases(phases)
            if can_switch:
                self._applied["phases"] = phases
            if decision.enabled != self._applied.get("enabled"):
                await self.charger.set_enabled(decision.enabled)
                self._applied["enabled"] = decision.enabled
            if current != self._applied.get("current_a"):
                await self.charger.set_current(current)
                self._applied["current_a"] = current
        except Exception as exc:     # ChargerUnavailable, or a driver's unexpected failure
            text = f"{type(exc).__name__}: {exc}" if not isinstance(exc, ChargerUnavailable) \
                else str(exc)
            if text != self._apply_error:
                log.warning("charger did not take the command (%s); retrying next tick", text)
            self._apply_error = text
            self._applied.clear()
            return
        self._apply_error = None

    def _log_decision(self, decision: ChargeDecision) -> None:
        """One log line when what limits the charge (or the status) changes, with the reason;
        a fail-safe is a warning. Plain changes at most every 10 s, so a current hovering at
        the fuse limit does not flood the log."""
        state = (decision.bound_by, int(decision.status))
        if state == self._logged_decision:
            return
        alarming = decision.bound_by in _FAIL_SAFE_BOUNDS
        now = self.clock.monotonic()
        if not alarming and now - self._logged_at < DECISION_LOG_GAP_S:
            return
        self._logged_decision, self._logged_at = state, now
        log.log(logging.WARNING if alarming else logging.INFO, "%s, %g A: %s",
                STATUS_TEXT.get(state[1], str(state[1])), decision.current_a, decision.reason)

    # ---- between ticks -----------------------------------------------------------------------

    @property
    def applied_current_a(self) -> float | None:
        """The current the charger was last told (None: it must be told again)."""
        return self._applied.get("current_a")

    @property
    def last_decision(self) -> ChargeDecision | None:
        return self._last_decision

    @property
    def last_measurement(self) -> ChargerMeasurement | None:
        return self._last_measurement

    @property
    def phases_in_use(self) -> int | None:
        m = self._last_measurement
        return m.phases if m is not None and m.phases in (1, 3) else None

    def wish_a(self) -> float:
        """The current this loadpoint would take if the circuits allowed it (what the site's
        allocator shares out): Manual its SetCurrent; otherwise what its last step wanted,
        or its maximum when a circuit held it back or it has not stepped yet."""
        c, top = self.choices, min(self.choices.max_current_a, self.limits.max_current_a)
        if c.start_stop == 0:
            return 0.0
        if c.mode == Mode.MANUAL:
            return min(c.set_current_a, top)
        decision = self._last_decision
        if decision is None or decision.bound_by == Bound.FUSE:
            return top
        return min(decision.current_a, top)

    def fuse_cut_needed(self, site: SiteReadings, share: LoadpointShare | None = None) -> bool:
        """A GX update between ticks: does a load spike leave less fuse headroom than the
        current the charger was told? (Then the site runs the next step now.) `share`: the
        site's share-out from this update (None: the main fuse from this EV alone)."""
        applied_a = self._applied.get("current_a")
        m, decision = self._last_measurement, self._last_decision
        if not applied_a or m is None or decision is None:
            return False
        phases = m.phases if m.phases in (1, 3) else decision.phases
        return self.controller.fuse_cut_needed(site, EvReadings.from_measurement(m),
                                               float(applied_a), int(phases), share)

    def car_soc_pct(self, measurement: ChargerMeasurement | None) -> float | None:
        """The car's own SoC to plan and stop with: its fresh reading (`car`, from the site's
        garage), else what the charger reports (OCPP's SoC measurand), else None."""
        if self.car is not None:
            return self.car.usable_soc_pct
        return measurement.vehicle_soc_pct if measurement is not None else None

    def ev_state(self) -> EvState:
        """The EV as the planner sees it."""
        m = self._last_measurement
        plugged = m is not None and EvReadings.from_measurement(m).connected
        return EvState(plugged=plugged, soc_pct=self.car_soc_pct(m),
                       session_kwh=self.tracker.energy_kwh if self.tracker.active else 0.0,
                       capacity_kwh=self.car.capacity_kwh if self.car is not None else None)

    # ---- sessions ------------------------------------------------------------------------------

    def _session_event(self, event) -> None:
        if isinstance(event, SessionStarted):
            log.info("session started")
            self._save_running_session(force=True)
        elif isinstance(event, SessionEnded):
            log.info("session ended: %.2f kWh in %.0f s, solar %.0f %%", event.energy_kwh,
                     event.duration_s, event.solar_share * 100)
            self._last_session = event
            try:
                self.session_store.finish_running(ChargingSession(
                    start_s=event.started_at_s, end_s=event.ended_at_s,
                    energy_kwh=event.energy_kwh, duration_s=event.duration_s,
                    peak_w=event.peak_power_w, cost=event.cost, currency=event.currency,
                    solar_share=event.solar_share, loadpoint=self.name,
                    co2_kg=event.co2_kg))
            except Exception:
                log.exception("could not store the finished session")

    def _save_running_session(self, force: bool = False) -> None:
        now = self.clock.monotonic()
        if not force and now - self._last_session_save < RUNNING_SESSION_SAVE_S:
            return
        self._last_session_save = now
        record = self.tracker.running_record()
        try:
            if record:
                self.session_store.save_running(record, loadpoint=self.name)
        except Exception:
            log.exception("could not save the running session")

    def _session_summary(self) -> SessionSummary:
        now = self.clock.time()
        t = self.tracker
        if t.active:
            return SessionSummary(
                active=True, energy_kwh=round(t.energy_kwh, 3),
                duration_s=int(t.duration_s(now)), cost=round(t.cost, 2), currency=t.currency,
                solar_share=round(t.solar_share, 3), peak_w=round(t.peak_power_w, 0),
                co2_kg=_rounded(t.co2_kg))
        last = self._last_session
        if last is not None:
            return SessionSummary(
                active=False, energy_kwh=round(last.energy_kwh, 3),
                duration_s=int(last.duration_s), cost=round(last.cost, 2),
                currency=last.currency, solar_share=round(last.solar_share, 3),
                peak_w=round(last.peak_power_w, 0), co2_kg=_rounded(last.co2_kg))
        return SessionSummary(active=False, energy_kwh=None, duration_s=None, cost=None,
                              currency=t.currency, solar_share=None, peak_w=None)

    # ---- the snapshot --------------------------------------------------------------------------

    def snapshot(self) -> LoadpointSnapshot:
        """The loadpoint as the last step left it (before the first: no decision)."""
        return LoadpointSnapshot(
            name=self.name, choices=replace(self.choices), limits=replace(self.limits),
            decision=self._last_decision, measurement=self._last_measurement,
            connection=self.charger.connection_text, identity=self.charger.identity,
            error=self._charger_problem or self.charger.last_error,
            lifetime_kwh=self._counter.last_kwh, session=self._session_summary(), car=self.car)


def _rounded(co2_kg: float | None) -> float | None:
    """kg CO2 as the status shows it (g resolution); None stays None (no carbon source)."""
    return None if co2_kg is None else round(co2_kg, 3)
