"""The composition root: builds phaeton's parts from the config and runs the control loop.

Every `control.tick_s` (and at once after a user's write) one tick:
read the charger → read the GX → `ChargeController.step` (pure) → apply to the charger →
account the session → publish all D-Bus paths in one ItemsChanged → hand the web UI a status.

Failure handling lives here, at the edge: a charger that does not answer gives `/Connected 0` and
a 0 A decision; a charger whose answer cannot be believed (`control/plausibility`: NaN, random
values, a negative station maximum, a counter jump) gives `/Connected 0`, `/Status 0` and the
fail-safe current, and recovers with its next believable answer; stale GX readings are the
controller's business (safe current, with the reason); a tick that raises is logged and the
next one runs. SIGTERM stops cleanly: the charger is left at its safe current, the running
session is saved, the D-Bus name released.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from datetime import datetime
from typing import Any

from velib.settings import SettingsClient, SettingSpec

from phaeton.chargers.base import Capability, ChargerMeasurement, ChargerUnavailable
from phaeton.chargers.factory import build_charger
from phaeton.clock import REAL_CLOCK, Clock
from phaeton.config import Config, ConfigError, config_to_dict, load_config, save_config
from phaeton.control.auto import Bound
from phaeton.control.controller import ChargeController, ChargeDecision, ControllerInputs, Mode
from phaeton.control.plausibility import ChargerBounds, CounterState, judge_measurement
from phaeton.control.readings import EvReadings
from phaeton.control.session import SessionEnded, SessionStarted, SessionTracker
from phaeton.control.settings import ControlSettings
from phaeton.logbuffer import LogBuffer
from phaeton.planning.energy_meter import QuarterHourMeter
from phaeton.planning.planner_service import PlannerService, build_ess_writer
from phaeton.planning.problem_builder import EvState
from phaeton.store.energy_history import HISTORY_FILE, EnergyHistoryFile
from phaeton.store.sessions import ChargingSession, SessionStore
from phaeton.store.state_file import StateFile, StateFileError
from phaeton.venus.ess_writer import EssWriter
from phaeton.venus.evcharger_service import (CUSTOM_NAME_MAX, STATUS_TEXT, ChargerLimits,
                                             EvChargerService, UserChoices)
from phaeton.venus.system_reader import GxSystemReader

log = logging.getLogger("phaeton.app")

RUNNING_SESSION_SAVE_S = 60.0     # how often a running session is written to disk
SETTINGS_WAIT_S = 5.0             # how long start-up waits for com.victronenergy.settings
MIN_TICK_GAP_S = 0.02             # seconds between two ticks at the least


class Phaeton:
    """One phaeton service. `await start()`, `await stop()`; also the web UI's backend."""

    def __init__(self, config: Config, *, config_path: str | None = None,
                 clock: Clock = REAL_CLOCK, bus_address: str | None = None,
                 log_buffer: LogBuffer | None = None):
        self.cfg = config
        self._config_path = config_path
        self.clock = clock
        self.bus_address = bus_address
        self.log_buffer = log_buffer or LogBuffer()
        self.data_dir = str(config["data_dir"])
        os.makedirs(self.data_dir, exist_ok=True)

        self.control_settings = ControlSettings.from_config(config)
        self.controller = ChargeController(self.control_settings)
        self.charger, self.central_system = build_charger(config, clock)
        self.unique_id = str(config["device"]["unique_id"])

        self.state_file = StateFile(os.path.join(self.data_dir, "state.json"))
        self.session_store = SessionStore(os.path.join(self.data_dir, "sessions.sqlite"),
                                          history_limit=config["session"]["history_limit"])
        self.tracker = SessionTracker(config["session"]["price_per_kwh"],
                                      config["session"]["currency"])
        # measured house load and PV per quarter hour: what the forecasts learn from
        self.energy_history = EnergyHistoryFile(os.path.join(self.data_dir, HISTORY_FILE))
        self.energy_history.load()
        self.energy_meter = QuarterHourMeter()

        charger_cfg = config["charger"]
        self.limits = ChargerLimits(
            min_current_a=float(charger_cfg["min_current_a"]),
            max_current_a=float(charger_cfg["max_current_a"]),
            wired_phases=int(charger_cfg["phases"]))
        # First run: a plain wallbox (Manual, started, full current; the fuse still caps it),
        # which is what an owner expects when the car is plugged in.
        defaults = UserChoices(
            mode=int(Mode.MANUAL), start_stop=1, set_current_a=float(charger_cfg["max_current_a"]),
            max_current_a=float(charger_cfg["max_current_a"]), phases=int(charger_cfg["phases"]),
            auto_start=1, position=int(charger_cfg["position"]),
            custom_name=str(config["device"]["custom_name"]))
        self.choices = UserChoices.from_dict(self.state_file.load(), defaults)
        self._clamp_choices()
        self.evcharger = EvChargerService(
            self.unique_id, self.choices, self.limits, self._on_user_change,
            device_instance=int(config["device"]["instance"]),
            connection=self.charger.connection_text, bus_address=bus_address)
        self.system = GxSystemReader(clock=clock, bus_address=bus_address,
                                     on_change=self._gx_updated)
        self.settings = SettingsClient(clock=clock, bus_address=bus_address)
        self.ess_writer, self.planner = self._build_planner(config)
        for path, value in self.planner.state().items():   # read-only /Planner/* paths
            self.evcharger.service.add_path(path, value)

        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task] = []
        self._subscribers: set[asyncio.Queue] = set()
        self._status: dict[str, Any] = {}
        self._applied: dict[str, Any] = {}     # what the charger was last told
        self._was_connected = False
        self._last_session_save = 0.0
        self._last_session: SessionEnded | None = None
        self._last_decision: ChargeDecision | None = None
        self._settings_attached = False
        self._names_in_flight: list[str] = []     # /CustomName values written to settings
        self._logged_decision: tuple[str, int] | None = None    # (bound_by, status)
        self._logged_at = -1e9
        self._last_measurement: ChargerMeasurement | None = None
        self._charger_problem: str | None = None     # why the charger's answer is not believed
        self._counter = CounterState()               # the lifetime counter's last good value
        self._read_failure: str | None = None        # the last unexpected read exception
        self._apply_error: str | None = None         # the last command the charger refused
        self.web_runner = None
        self.ticks = 0
        self.fuse_wakes = 0          # steps run early because a GX update broke the fuse

    # ---- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        record = self.session_store.load_running()
        if record:
            try:
                self.tracker.restore(record)
                log.info("continuing the session that was running before the restart")
            except ValueError as exc:
                log.warning("could not continue the saved session (%s); starting fresh", exc)
                self.session_store.clear_running()
        await self.charger.start()
        await self.system.start()
        await self.settings.start()
        await self._attach_settings()
        await self.evcharger.register()
        await self.planner.start()
        self.settings.on_appeared(self._settings_appeared)
        self._tasks.append(asyncio.create_task(self._control_loop(), name="phaeton-control"))
        await self._start_web()
        log.info("phaeton running as %s (charger: %s)", self.evcharger.name,
                 self.charger.connection_text)

    async def stop(self) -> None:
        """Leave the charger at its safe current, save the session, release the name."""
        if self._stopping:
            return
        self._stopping = True
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        safe_a = float(self.cfg["charger"]["safe_current_a"])
        try:
            await asyncio.wait_for(self.charger.set_current(safe_a), 5)
        except (ChargerUnavailable, asyncio.TimeoutError, OSError) as exc:
            log.warning("could not leave the charger at its safe current: %s", exc)
        self._save_running_session(force=True)
        if self.web_runner is not None:
            await self.web_runner.cleanup()
        for closer in (self.planner.stop, self.charger.stop, self.evcharger.close,
                       self.system.close, self.settings.close):
            try:
                await asyncio.wait_for(closer(), 10)
            except Exception as exc:
                log.warning("while stopping: %s", exc)
        self.session_store.close()
        log.info("phaeton stopped")

    async def _attach_settings(self) -> None:
        """Device instance and custom name through com.victronenergy.settings (the GX's or the
        simulator's). Without a settings service phaeton runs with the configured instance."""
        try:
            await self.settings.wait_until_available(SETTINGS_WAIT_S)
        except Exception:
            log.warning("no settings service; using device instance %s from the config",
                        self.cfg["device"]["instance"])
            return
        device = f"phaeton_{self.unique_id}"
        try:
            instance = await self.settings.allocate_device_instance(
                device, "evcharger", int(self.cfg["device"]["instance"]),
                on_change=self._device_instance_changed)
            self.evcharger.set_device_instance(instance)
            name_path = f"/Settings/Devices/{device}/CustomName"
            values = await self.settings.add_settings(
                [SettingSpec(name_path, self.choices.custom_name)])
            stored = values.get(name_path)
            if isinstance(stored, str) and stored != self.choices.custom_name:
                self.evcharger.set_choice("/CustomName", stored)
            self.settings.subscribe(name_path, self._custom_name_changed)
            self._settings_attached = True
        except Exception as exc:
            log.warning("settings service refused phaeton's settings: %s", exc)

    async def _settings_appeared(self) -> None:
        """com.victronenergy.settings came (back) after start-up: what could not be set up
        without it is set up now (once), and the planner adds its settings."""
        if not self._settings_attached:
            log.info("settings service appeared: allocating the device instance now")
            await self._attach_settings()
        await self.planner.settings_appeared()

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

    async def _start_web(self) -> None:
        web = self.cfg["web"]
        if not web["enabled"]:
            return
        try:
            from aiohttp import web as aioweb

            from phaeton.web.app import create_web_app
        except ImportError as exc:
            log.warning("web UI not available: %s", exc)
            return
        app = create_web_app(self, config_to_dict(web))
        self.web_runner = aioweb.AppRunner(app, access_log=None)
        await self.web_runner.setup()
        site = aioweb.TCPSite(self.web_runner, web["host"], web["port"])
        try:
            await site.start()
            log.info("web UI on http://%s:%s/", web["host"], web["port"])
        except OSError as exc:
            log.error("web UI could not listen on %s:%s: %s", web["host"], web["port"], exc)

    # ---- the user's writes -------------------------------------------------------------------

    def _clamp_choices(self) -> None:
        c, lim = self.choices, self.limits
        c.max_current_a = min(max(c.max_current_a, lim.min_current_a), lim.max_current_a)
        c.set_current_a = min(max(c.set_current_a, 0.0), lim.max_current_a)
        if c.phases not in (1, 3) or c.phases > lim.wired_phases:
            c.phases = lim.wired_phases

    def _on_user_change(self, path: str, value: Any) -> None:
        log.info("user set %s = %r", path, value)
        self._persist_choices()
        if path == "/CustomName" and self.settings.available:
            self._names_in_flight.append(value)
            del self._names_in_flight[:-16]         # echoes that never came are forgotten
            name_path = f"/Settings/Devices/phaeton_{self.unique_id}/CustomName"
            asyncio.get_running_loop().create_task(self.settings.write(name_path, value))
        self._wake.set()   # takes effect now, not at the next tick

    def _persist_choices(self) -> None:
        try:
            self.state_file.save(self.choices.as_dict())
        except (StateFileError, OSError) as exc:
            log.error("could not save the user's choices: %s", exc)

    # ---- the control loop ----------------------------------------------------------------------

    async def _control_loop(self) -> None:
        tick_s = float(self.cfg["control"]["tick_s"])
        while not self._stopping:
            started = self.clock.monotonic()
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("control tick failed; the next one runs as usual")
            remaining = tick_s - (self.clock.monotonic() - started)
            if remaining > 0 and not self._wake.is_set():
                try:
                    await asyncio.wait_for(self._wake.wait(), remaining / self.clock.speed)
                except asyncio.TimeoutError:
                    pass
            # Always give the loop a turn, however long the tick took or however often it is
            # woken: D-Bus answers, the web server and SIGTERM must never starve.
            await asyncio.sleep(MIN_TICK_GAP_S / self.clock.speed)
            self._wake.clear()

    def wake(self) -> None:
        self._wake.set()

    def _gx_updated(self) -> None:
        """A GX update between ticks: when a load spike leaves less fuse headroom than the
        charger was told, the next step runs now (it cuts), not at the next tick."""
        applied_a = self._applied.get("current_a")
        m, decision = self._last_measurement, self._last_decision
        if not applied_a or m is None or decision is None or self._wake.is_set():
            return
        phases = _phases_in_use(decision, m)
        if self.controller.fuse_cut_needed(self.system.readings(), EvReadings.from_measurement(m),
                                           float(applied_a), int(phases)):
            self.fuse_wakes += 1
            self._wake.set()

    async def _read_charger(self) -> tuple[ChargerMeasurement | None, str | None]:
        """(measurement, None) when the charger answers believably; (None, why not) when it
        answers something that cannot be true (or its driver raised something unexpected);
        (None, None) when it does not answer. Never raises for anything a driver does."""
        try:
            if not self.charger.connected:
                return None, None
            timeout = float(self.cfg["control"]["tick_s"]) / self.clock.speed + 3.0
            raw = await asyncio.wait_for(self.charger.read(), timeout)
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
                             nominal_voltage_v=float(self.cfg["site"]["nominal_voltage_v"]),
                             required_readings=frozenset(
                                 getattr(self.charger, "required_readings", frozenset())))

    async def tick(self) -> ChargeDecision:
        now = self.clock.monotonic()
        measurement, problem = await self._read_charger()
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
        site = self.system.readings()
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
            plan_current_a=self._plan_current_a(measurement) if c.mode == Mode.SCHEDULED
            else None)
        decision = self.controller.step(inputs, now, datetime.fromtimestamp(self.clock.time()))
        if decision.start_stop_request is not None and decision.start_stop_request != c.start_stop:
            log.info("vehicle plugged in with AutoStart on: starting")
            self.evcharger.set_choice("/StartStop", decision.start_stop_request)
            self._persist_choices()
        if connected:
            await self._apply(decision, measurement)
            for event in self.tracker.update(ev, decision.snapshot, self.clock.time()):
                self._session_event(event)
            self._save_running_session()
        elif problem is not None:
            await self._apply(decision, None)     # the fail-safe current, if it still listens
        self._record_energy(decision, site)
        self._log_decision(decision)
        self._last_decision = decision
        self._last_measurement = measurement
        self._publish(decision, measurement, site)
        self.ticks += 1
        return decision

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

    def _record_energy(self, decision: ChargeDecision, site) -> None:
        """House load (without the EV) and PV of this tick into the quarter-hour history;
        stale or missing readings count as not measured."""
        snapshot = decision.snapshot
        fresh = (site is not None and snapshot is not None
                 and not site.is_stale(self.control_settings.stale_after_s))
        slots = self.energy_meter.add(self.clock.time(),
                                      snapshot.house_total_w if fresh else None,
                                      snapshot.pv_total_w if fresh else None)
        if slots:
            self.energy_history.append(slots)

    def _plan_current_a(self, measurement: ChargerMeasurement | None) -> float | None:
        """Scheduled mode: the plan's EV power for this slot as a current (None: no plan)."""
        allowance_w = self.planner.ev_allowance_w(self.clock.time())
        if allowance_w is None:
            return None
        phases = (measurement.phases if measurement is not None and measurement.phases in (1, 3)
                  else self.limits.wired_phases)
        return max(0.0, allowance_w / (float(self.cfg["site"]["nominal_voltage_v"]) * phases))

    def _ev_state(self) -> EvState:
        m = self._last_measurement
        plugged = m is not None and EvReadings.from_measurement(m).connected
        return EvState(plugged=plugged, soc_pct=m.vehicle_soc_pct if m is not None else None,
                       session_kwh=self.tracker.energy_kwh if self.tracker.active else 0.0)

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
                    solar_share=event.solar_share))
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
                self.session_store.save_running(record)
        except Exception:
            log.exception("could not save the running session")

    # ---- publishing ----------------------------------------------------------------------------

    def _publish(self, decision: ChargeDecision, m: ChargerMeasurement | None, site) -> None:
        identity = self.charger.identity
        connected = m is not None
        values: dict[str, Any] = {
            "/Connected": 1 if connected else 0,
            "/Mgmt/Connection": self.charger.connection_text,
            "/Status": int(decision.status),
        }
        if identity is not None:
            values.update({"/Serial": identity.serial or None, "/Model": identity.model or None,
                           "/FirmwareVersion": identity.firmware or None,
                           "/HardwareVersion": identity.model or None})
        if connected:
            currents = [a for a in m.current_a if a is not None]
            values["/Current"] = round(max(currents), 2) if currents else None
            values["/Ac/Power"] = None if m.total_power_w is None else round(m.total_power_w, 1)
            for n, watts in enumerate(m.power_w, start=1):
                values[f"/Ac/L{n}/Power"] = None if watts is None else round(watts, 1)
            values["/Ac/PhaseCount"] = _phases_in_use(decision, m)
        else:
            values.update({"/Current": None, "/Ac/Power": None, "/Ac/L1/Power": None,
                           "/Ac/L2/Power": None, "/Ac/L3/Power": None, "/Ac/PhaseCount": None})
        lifetime = self._counter.last_kwh     # the last good value, also while away or untrusted
        values["/Ac/Energy/Forward"] = None if lifetime is None else round(lifetime, 3)
        session = self._session_view()
        values["/Session/Energy"] = session["energy_kwh"]
        values["/Session/Time"] = session["duration_s"]
        values["/ChargingTime"] = session["duration_s"]
        values["/Session/Cost"] = session["cost"]
        values.update(self.planner.state())
        self.evcharger.publish(values)
        self._status = self._status_dict(decision, m, site, session)
        for queue in list(self._subscribers):
            if queue.full():
                try:
                    queue.get_nowait()   # a slow client gets the newest status
                except asyncio.QueueEmpty:
                    pass
            queue.put_nowait(self._status)

    def _session_view(self) -> dict[str, Any]:
        now = self.clock.time()
        if self.tracker.active:
            return {"active": True, "energy_kwh": round(self.tracker.energy_kwh, 3),
                    "duration_s": int(self.tracker.duration_s(now)),
                    "cost": round(self.tracker.cost, 2), "currency": self.tracker.currency,
                    "solar_share": round(self.tracker.solar_share, 3),
                    "peak_w": round(self.tracker.peak_power_w, 0)}
        last = self._last_session
        if last is not None:
            return {"active": False, "energy_kwh": round(last.energy_kwh, 3),
                    "duration_s": int(last.duration_s), "cost": round(last.cost, 2),
                    "currency": last.currency, "solar_share": round(last.solar_share, 3),
                    "peak_w": round(last.peak_power_w, 0)}
        return {"active": False, "energy_kwh": None, "duration_s": None, "cost": None,
                "currency": self.tracker.currency, "solar_share": None, "peak_w": None}

    def _status_dict(self, decision: ChargeDecision, m: ChargerMeasurement | None, site,
                     session: dict) -> dict[str, Any]:
        snapshot = decision.snapshot
        identity = self.charger.identity
        voltage = float(self.cfg["site"]["nominal_voltage_v"])
        grid = list(site.grid_w) if site is not None else [None, None, None]
        age = site.age_s if site is not None else None
        c = self.choices
        return {
            "time": self.clock.time(),
            "mode": c.mode, "start_stop": c.start_stop, "set_current_a": c.set_current_a,
            "min_current_a": self.limits.min_current_a, "max_current_a": c.max_current_a,
            "charger_max_current_a": self.limits.max_current_a,
            "phases": c.phases,
            "phases_in_use": _phases_in_use(decision, m) if m is not None else None,
            "auto_start": c.auto_start, "status_code": int(decision.status),
            "status_text": STATUS_TEXT.get(int(decision.status), str(decision.status)),
            "reason": decision.reason, "bound_by": str(decision.bound_by),
            "charger": {"connected": m is not None, "connection": self.charger.connection_text,
                        "model": identity.model if identity else "",
                        "serial": identity.serial if identity else "",
                        "firmware": identity.firmware if identity else "",
                        "error": self._charger_problem or self.charger.last_error},
            "power": {
                "pv_w": _total(snapshot.pv_ac_w) + (snapshot.pv_dc_w or 0.0)
                if snapshot is not None else None,
                "grid_w": grid,
                "grid_current_a": [None if w is None else round(w / voltage, 2) for w in grid],
                "fuse_a": float(self.cfg["site"]["fuse_a"]),
                "house_w": snapshot.house_total_w if snapshot is not None else None,
                "battery_w": site.battery_power_w if site is not None else None,
                "battery_soc_pct": site.battery_soc_pct if site is not None else None,
                "ev_w": m.total_power_w if m is not None else None,
            },
            "readings_stale": age is None or age > self.control_settings.stale_after_s,
            "readings_age_s": age,
            "surplus_w": decision.surplus_w,
            "session": session,
        }

    # ---- the web UI's backend (phaeton.web.backend.WebBackend) -------------------------------

    def status(self) -> dict:
        return self._status or self._starting_status()

    def _starting_status(self) -> dict[str, Any]:
        """The documented status keys before the first control step: the owner's choices and
        limits are known, what the charger and the site do is not yet (None)."""
        waiting = ChargeDecision(enabled=False, current_a=0.0, phases=self.choices.phases or 3,
                                 status=0, reason="starting: waiting for the first control step",
                                 bound_by="")
        status = self._status_dict(waiting, None, None, self._session_view())
        status.update(status_code=None, status_text="Starting", bound_by=None)
        return status

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=4)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._subscribers.discard(queue)

    async def write(self, path: str, value: Any) -> int:
        return self.evcharger.write(path, value)

    def sessions(self) -> SessionStore:
        return self.session_store

    def config_path(self) -> str:
        return self._config_path or ""

    def config(self) -> dict:
        return config_to_dict(self.cfg)

    async def apply_config(self, data: dict) -> list:
        """Validate, save atomically (with a backup) and apply what can change live: control
        settings and schedule (what is under way carries on), session price and currency, and
        the planner (restarted with the new config when its inputs changed). The charger, the
        device, the web server and logging need a restart."""
        if not self._config_path:
            from phaeton.config import ConfigProblem
            return [ConfigProblem("", None, "phaeton was started without a config file")]
        try:
            config = save_config(self._config_path, data)
        except ConfigError as exc:
            return list(exc.problems)
        old, self.cfg = self.cfg, config
        self.control_settings = ControlSettings.from_config(config)
        self.controller.update_settings(self.control_settings)
        self.tracker.price_per_kwh = config["session"]["price_per_kwh"]
        self.tracker.currency = config["session"]["currency"]
        if _planner_inputs(old) != _planner_inputs(config):
            await self._restart_planner(config)
        self._wake.set()
        log.info("configuration saved and applied (charger, device, web and logging changes "
                 "need a restart)")
        return []

    def _build_planner(self, config: Config) -> tuple[EssWriter, PlannerService]:
        """The battery writer `planner.ess_control` asks for, and the planner using it."""
        writer = build_ess_writer(config, self.settings, clock=self.clock,
                                  bus_address=self.bus_address, system_value=self.system.value)
        planner = PlannerService(config, self.clock, self.settings, self.system.value, writer,
                                 ev_state=self._ev_state, history=self.energy_history.history)
        return writer, planner

    async def _restart_planner(self, config: Config) -> None:
        """A new planner (and battery writer) for a changed config; the old one hands the
        battery back first."""
        await self.planner.stop()
        self.ess_writer, self.planner = self._build_planner(config)
        await self.planner.start()
        log.info("planner restarted with the saved configuration")

    def schedule(self) -> list[dict]:
        return config_to_dict(self.cfg).get("schedule", {}).get("windows", [])

    async def set_schedule(self, windows: list[dict]) -> list:
        data = config_to_dict(self.cfg)
        data.setdefault("schedule", {})["windows"] = windows
        return await self.apply_config(data)

    def log_records(self, min_level: str = "INFO", limit: int = 500) -> list[dict]:
        return self.log_buffer.records(min_level, limit)

    def plan(self) -> dict | None:
        """The current plan (the `phaeton plan --json` shape) for the web UI; None before
        the first plan."""
        return self.planner.plan_dict()


_FAIL_SAFE_BOUNDS = frozenset({Bound.STALE_READINGS, Bound.CHARGER_OFFLINE, Bound.CHARGER_ERROR,
                               Bound.CHARGER_IMPLAUSIBLE})
DECISION_LOG_GAP_S = 10.0


def _planner_inputs(config: Config) -> tuple:
    """The parts of the config the planner is built from."""
    data = config_to_dict(config)
    return tuple(data.get(section) for section in ("planner", "site", "charger", "data_dir"))


def _phases_in_use(decision: ChargeDecision, m: ChargerMeasurement) -> int:
    """What the charger reports it uses, else what it was told."""
    return m.phases if m.phases in (1, 3) else decision.phases


def _total(phases) -> float:
    return float(sum(w for w in phases if w is not None))


# ---- command line -----------------------------------------------------------------------------

def setup_logging(level: str, buffer: LogBuffer) -> None:
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(getattr(logging, str(level).upper(), logging.INFO))
    console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(console)
    buffer.setLevel(logging.INFO)
    root.addHandler(buffer)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


async def run_service(config: Config, config_path: str | None, log_buffer: LogBuffer) -> int:
    service = Phaeton(config, config_path=config_path, log_buffer=log_buffer)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await service.start()
    except Exception as exc:
        log.error("phaeton could not start: %s", exc)
        await service.stop()
        return 1
    await stop.wait()
    log.info("stopping")
    await service.stop()
    return 0


def run_from_cli(args) -> int:
    """`phaeton run --config PATH`."""
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            where = f"{args.config}:{problem.line}" if problem.line else args.config
            print(f"{where}: {problem.key_path}: {problem.message}", file=sys.stderr)
        print("phaeton: refusing to start with an invalid config", file=sys.stderr)
        return 1
    buffer = LogBuffer()
    setup_logging(config["logging"]["level"], buffer)
    return asyncio.run(run_service(config, args.config, buffer))
