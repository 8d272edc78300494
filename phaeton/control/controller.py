"""The charge controller: modes, limits and /Status, one pure decision per control tick.

`ChargeController(settings).step(inputs, now_s, local_dt)` -> `ChargeDecision`. `now_s` is any
monotonic number of seconds (only differences matter); `local_dt` is the local wall time, used by
the schedule. The controller keeps only timers and the previous decision; no I/O.

Order of the rules (the first that applies decides; later limits only lower the current):
1. charger offline -> 0 A, status 0. A charger that answers implausible values
   (`charger_problem`, see `plausibility`) -> status 0 and the fail-safe current
   (`safe_current_a`, capped by /MaxCurrent; StartStop still applies), with the problem as reason.
2. StartStop = 0 (after AutoStart) -> 0 A, "stopped by user"; status by vehicle state, or
   6 "Waiting for start" when AutoStart is off and the vehicle is connected.
3. charger error -> 0 A, closest error status (see `status.error_status`).
4. no vehicle -> 0 A, status 0.
5. a phase switch is running -> 0 A, status 22/23.
6. the mode: Manual (SetCurrent), Auto (surplus, `auto.AutoCharging`; readings older than
   `stale_after_s` or without grid power on a site phase -> `safe_current_a`), Scheduled (inside a window: its current or the maximum;
   outside 0 A, status 6).
7. caps: /MaxCurrent (user), the charger's max_current_a and station maximum.
8. the fuse: cut at once (same step) to the headroom of the circuits above the charger (the
   site's `site_share`, or else the one main fuse `fuse_a`, see `circuit`); after a cut, no
   raise until `fuse_recovery_delay_s` have passed without a new cut (kept per controller,
   i.e. per loadpoint). Status 20 "Charging limit".
   Readings older than min(10 s, stale_after_s / 3) but not yet stale never raise the current
   (a frozen meter must not look like growing surplus); lowering stays allowed.
9. below min_current_a -> 0 A (IEC 61851).
10. a car that refuses at least min_current_a for 2 min (or a charger saying it finished) ->
   status 3 "Charged" in place of 1/2/20, the offer unchanged (`car_full`).

The result is always 0 or within [min_current_a, min(max_current_a, /MaxCurrent)].
The service applies `phases` before `current_a`.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from datetime import datetime

from phaeton.chargers.base import Capability, VehicleState
from phaeton.control.allocation import LoadpointShare
from phaeton.control.auto import AutoCharging, Bound, floor_tenth
from phaeton.control.car_full import CarFullDetector
from phaeton.control.circuit import MAIN_CIRCUIT, Circuit, LoadpointHeadroom, main_circuit_headroom
from phaeton.control.phases import PhaseSwitcher
from phaeton.control.powerflow import PowerFlowSnapshot, build_snapshot, ev_phase_indices
from phaeton.control.readings import EvReadings, SiteReadings
from phaeton.control.schedule import active_window, next_window_start, window_current_a
from phaeton.control.settings import ControlSettings
from phaeton.control.status import ChargerStatus, vehicle_status
from phaeton.control.surplus import SurplusSmoother, raw_surplus


HOLD_AFTER_MAX_S = 10.0   # readings older than this (or stale_after_s / 3) never raise the current
#: a circuit's room this little below the current in force is no cut: float32 setpoints and
#: meter readings (13.1 A reads 13.1000004 A) would otherwise cut and restart the recovery delay
#: again and again at exactly the limit (1 mA is nothing a fuse or breaker notices)
CUT_TOLERANCE_A = 0.001
# A car that refuses what is offered is shown as /Status 3 "Charged" instead of these:
CAR_FULL_HIDES = frozenset({ChargerStatus.CONNECTED, ChargerStatus.CHARGING,
                            ChargerStatus.CHARGING_LIMIT, ChargerStatus.CHARGED})
CAR_FULL_REASON = "the car takes no current: full, or at its own charge limit or timer"


class Mode(enum.IntEnum):
    MANUAL = 0
    AUTO = 1
    SCHEDULED = 2


def _check_number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _check_flag(name: str, value: object) -> int:
    if value not in (0, 1) or isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{name} must be 0 or 1, got {value!r}")
    return int(value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ControllerInputs:
    """Everything one decision needs. `site` None = no GX readings at all (treated as stale)."""

    mode: int
    start_stop: int
    set_current_a: float
    max_current_a: float                          # the user's /MaxCurrent
    auto_start: int = 0
    capabilities: frozenset[Capability] = frozenset()
    site: SiteReadings | None = None
    ev: EvReadings = field(default_factory=EvReadings)
    charger_connected: bool = True
    charger_max_current_a: float | None = None    # Capability.STATION_MAX_CURRENT, when known
    manual_phases: int | None = None              # Manual: the phases the user chose (/Ac/PhaseCount)
    plan_current_a: float | None = None           # Scheduled: the energy plan's current now
                                                  # (None: no plan, the time windows decide)
    charger_problem: str | None = None            # with charger_connected False: it answers,
                                                  # but nothing it says can be believed
    site_share: LoadpointShare | None = None      # the site's circuits headroom and surplus
                                                  # share (None: the main fuse and all the
                                                  # surplus, from this EV alone)
    vehicle_soc_pct: float | None = None          # the car's own SoC, when a fresh reading
                                                  # is known (phaeton.vehicles)
    target_soc_pct: float | None = None           # Scheduled: the SoC to stop at

    def __post_init__(self) -> None:
        if self.mode not in (0, 1, 2) or isinstance(self.mode, bool):
            raise ValueError(f"mode must be 0 (Manual), 1 (Auto) or 2 (Scheduled), got {self.mode!r}")
        object.__setattr__(self, "mode", int(self.mode))
        object.__setattr__(self, "start_stop", _check_flag("start_stop", self.start_stop))
        object.__setattr__(self, "auto_start", _check_flag("auto_start", self.auto_start))
        object.__setattr__(self, "set_current_a", _check_number("set_current_a", self.set_current_a))
        object.__setattr__(self, "max_current_a", _check_number("max_current_a", self.max_current_a))
        if self.charger_max_current_a is not None:
            object.__setattr__(self, "charger_max_current_a",
                               _check_number("charger_max_current_a", self.charger_max_current_a))
        if self.manual_phases not in (None, 1, 3) or isinstance(self.manual_phases, bool):
            raise ValueError(f"manual_phases must be 1, 3 or None, got {self.manual_phases!r}")
        if self.plan_current_a is not None:
            object.__setattr__(self, "plan_current_a",
                               _check_number("plan_current_a", self.plan_current_a))
        for name in ("vehicle_soc_pct", "target_soc_pct"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, _check_number(name, getattr(self, name)))
        if self.charger_problem is not None and not isinstance(self.charger_problem, str):
            raise ValueError(f"charger_problem must be text or None, got {self.charger_problem!r}")
        if not isinstance(self.ev, EvReadings):
            raise ValueError(f"ev must be EvReadings, got {type(self.ev).__name__}")
        if self.site is not None and not isinstance(self.site, SiteReadings):
            raise ValueError(f"site must be SiteReadings or None, got {type(self.site).__name__}")
        if self.site_share is not None and not isinstance(self.site_share, LoadpointShare):
            raise ValueError(f"site_share must be a LoadpointShare or None, got {type(self.site_share).__name__}")
        object.__setattr__(self, "capabilities", frozenset(self.capabilities))


@dataclass(frozen=True)
class ChargeDecision:
    enabled: bool                  # StartStop as the charger should apply it
    current_a: float               # per phase: 0 or within [min, min(max, /MaxCurrent)]
    phases: int                    # 1 or 3 (apply before the current)
    status: int                    # Victron /Status
    reason: str                    # human words
    bound_by: str                  # a `Bound` name: which limit bound the current
    start_stop_request: int | None = None   # 1: set /StartStop to 1 (AutoStart on plug-in)
    snapshot: PowerFlowSnapshot | None = None
    surplus_w: float | None = None            # smoothed surplus (None without fresh readings)
    fuse_limit_a: float | None = None         # the circuits' headroom this step (None: not checked)
    car_full: bool = False                    # the car refuses what is offered (car_full.py)


class ChargeController:
    def __init__(self, settings: ControlSettings):
        self.settings = settings
        self.smoother = SurplusSmoother(settings.auto_smoothing_s)
        self.switcher = PhaseSwitcher(settings)
        self.auto = AutoCharging(settings)
        self._previous_vehicle: VehicleState | None = None
        self._fuse_cut_s: float | None = None
        self._last_current_a = 0.0
        self.car_full = CarFullDetector()
        self.main_circuit = Circuit(MAIN_CIRCUIT, settings.fuse_a)

    def update_settings(self, settings: ControlSettings) -> None:
        """New settings (a saved config) without forgetting what is under way: a fuse cut's
        recovery hold, the Auto delays and minimum duration, the smoothed surplus and a phase
        switch with its grace period all carry on."""
        old, self.settings = self.settings, settings
        self.auto.settings = settings
        self.switcher.settings = settings
        if self.switcher.voltage_v == old.nominal_voltage_v:
            self.switcher.voltage_v = settings.nominal_voltage_v
        self.smoother.time_constant_s = float(settings.auto_smoothing_s)
        self.main_circuit = Circuit(MAIN_CIRCUIT, settings.fuse_a)

    # -- helpers -------------------------------------------------------------------------------
    def _caps(self, inputs: ControllerInputs, amps: float, bound: str, reason: str) -> tuple[float, str, str]:
        caps = [(inputs.max_current_a, Bound.MAX_CURRENT, "MaxCurrent"),
                (self.settings.max_current_a, Bound.CHARGER, "charger maximum")]
        if inputs.charger_max_current_a is not None:
            caps.append((inputs.charger_max_current_a, Bound.CHARGER, "station maximum"))
        for cap_a, cap_bound, words in caps:
            if cap_a < amps:
                amps, bound = cap_a, cap_bound
                reason = f"{reason}; limited by the {words} {cap_a:g} A"
        return amps, bound, reason

    def _voltage(self, snapshot: PowerFlowSnapshot | None, phases: int) -> float:
        if snapshot is None:
            return self.settings.nominal_voltage_v
        used = [snapshot.voltage_v[i] for i in ev_phase_indices(phases)]
        return sum(used) / len(used)

    def _site_problem(self, site: SiteReadings | None) -> str | None:
        """Why the GX readings cannot be controlled on (None: they can)."""
        if site is None:
            return "GX readings missing"
        if site.is_stale(self.settings.stale_after_s):
            age = "age unknown" if site.age_s is None else f"{site.age_s:.0f} s old"
            return f"GX readings stale ({age}, limit {self.settings.stale_after_s:g} s)"
        missing = [f"L{i + 1}" for i in range(self.settings.site_phases) if site.grid_w[i] is None]
        if missing:
            return f"GX grid power not reported on {', '.join(missing)}"
        return None

    def _battery_first(self, site: SiteReadings) -> tuple[str, str] | None:
        soc = site.battery_soc_pct
        if soc is None:
            return None
        if site.active_soc_limit_pct is not None and soc < site.active_soc_limit_pct:
            return Bound.LOW_SOC, f"at {soc:.0f}% is below its ESS minimum {site.active_soc_limit_pct:.0f}%"
        if soc < self.settings.battery_priority_soc_pct:
            return (Bound.BATTERY_PRIORITY,
                    f"at {soc:.0f}% is below the {self.settings.battery_priority_soc_pct:.0f}% priority SoC")
        return None

    def _decision(self, inputs: ControllerInputs, now_s: float, *, enabled: bool, current_a: float, status: int, reason: str,
                  bound_by: str, request: int | None, snapshot: PowerFlowSnapshot | None,
                  surplus_w: float | None, fuse_limit_a: float | None = None) -> ChargeDecision:
        self._last_current_a = current_a
        full = self.car_full.step(now_s, inputs.ev, current_a if enabled else 0.0,
                                  self.settings.min_current_a)
        if full and status in CAR_FULL_HIDES:
            if inputs.ev.vehicle_state is not VehicleState.CHARGED:
                reason = f"{reason}; {CAR_FULL_REASON}"
            status = ChargerStatus.CHARGED
        return ChargeDecision(enabled=enabled, current_a=current_a, phases=self.switcher.phases,
                              status=int(status), reason=reason, bound_by=bound_by,
                              start_stop_request=request, snapshot=snapshot, surplus_w=surplus_w,
                              fuse_limit_a=fuse_limit_a, car_full=full)

    def _headroom(self, snapshot: PowerFlowSnapshot, share: LoadpointShare | None) -> LoadpointHeadroom:
        """The circuits' loads: the site's, or the main fuse's from this EV alone."""
        return share.headroom if share is not None else main_circuit_headroom(snapshot, self.main_circuit)

    def fuse_cut_needed(self, site: SiteReadings | None, ev: EvReadings, current_a: float,
                        phases: int, site_share: LoadpointShare | None = None) -> bool:
        """Between ticks, on every GX update: would `current_a` (what the charger was told)
        take a phase of a circuit over its limit now? Then the service runs a step at once,
        which cuts. `site_share`: the site's share-out from this same update (None: the main
        fuse from this EV alone). Readings that cannot be checked say no: the tick handles them."""
        if current_a <= 0 or site is None or self._site_problem(site) is not None:
            return False
        if site_share is not None:
            loads = site_share.headroom
        else:
            loads = main_circuit_headroom(build_snapshot(site, ev, self.settings), self.main_circuit)
        headroom = loads.for_phases(phases)
        return headroom.current_a is not None and headroom.current_a < current_a - CUT_TOLERANCE_A

    def _untrusted_charger(self, inputs: ControllerInputs, now_s: float, start_stop: int,
                           request: int | None, snapshot: PowerFlowSnapshot | None
                           ) -> ChargeDecision:
        """A charger whose readings cannot be believed: it is told the fail-safe current (it
        may still take commands), /Status 0, the problem as the reason."""
        self.auto.reset()
        safe_a = min(self.settings.safe_current_a, inputs.max_current_a)
        if safe_a < self.settings.min_current_a:
            safe_a = 0.0
        return self._decision(inputs, now_s, enabled=start_stop == 1, current_a=safe_a,
                              status=ChargerStatus.DISCONNECTED,
                              reason=f"{inputs.charger_problem}: fail-safe current {safe_a:g} A",
                              bound_by=Bound.CHARGER_IMPLAUSIBLE, request=request,
                              snapshot=snapshot, surplus_w=None)

    # -- the step ------------------------------------------------------------------------------
    def step(self, inputs: ControllerInputs, now_s: float, local_dt: datetime) -> ChargeDecision:
        s = self.settings
        ev = inputs.ev
        plugged = ev.connected

        # AutoStart: a plug-in edge (no vehicle -> plugged) asks for StartStop = 1.
        request = None
        if inputs.charger_connected:
            if (self._previous_vehicle is VehicleState.NO_VEHICLE and plugged
                    and inputs.auto_start == 1 and inputs.start_stop == 0):
                request = 1
            self._previous_vehicle = ev.vehicle_state
        start_stop = 1 if request == 1 else inputs.start_stop

        site = inputs.site
        site_problem = self._site_problem(site)
        fresh = site_problem is None
        snapshot = (build_snapshot(site, ev, s, ev_known=inputs.charger_connected)
                    if site is not None else None)
        surplus_w = None
        battery_first = None
        # An unreachable charger may still draw (at its own safe current): the surplus would
        # count that draw as house load, so nothing in Auto is decided on it.
        share = inputs.site_share
        if fresh and snapshot is not None and site is not None and inputs.charger_connected:
            surplus = (raw_surplus(snapshot, site, s.battery_priority_soc_pct) if share is None
                       else share.surplus)
            assert surplus is not None     # the grid is reported (checked by _site_problem)
            surplus_w = self.smoother.update(surplus.raw_w, now_s)
            battery_first = self._battery_first(site) if surplus.battery_has_priority else None
        if surplus_w is None:
            self.smoother.reset()

        if inputs.mode != Mode.AUTO:
            self.auto.reset()

        def stop(status: int, reason: str, bound: str) -> ChargeDecision:
            self.auto.reset()
            return self._decision(inputs, now_s, enabled=start_stop == 1 and inputs.charger_connected, current_a=0.0,
                                  status=status, reason=reason, bound_by=bound, request=request,
                                  snapshot=snapshot, surplus_w=surplus_w)

        if not inputs.charger_connected and inputs.charger_problem:
            return self._untrusted_charger(inputs, now_s, start_stop, request, snapshot)
        if not inputs.charger_connected:
            return stop(ChargerStatus.DISCONNECTED, "charger offline: not answering", Bound.CHARGER_OFFLINE)
        if start_stop == 0:
            if plugged and inputs.auto_start == 0 and ev.vehicle_state is VehicleState.CONNECTED:
                return stop(ChargerStatus.WAITING_FOR_START,
                            "stopped by user: waiting for start (AutoStart is off)", Bound.STOPPED)
            return stop(vehicle_status(ev.vehicle_state, ev.error_reason), "stopped by user", Bound.STOPPED)
        if ev.vehicle_state in (VehicleState.ERROR, VehicleState.UNKNOWN):
            return stop(vehicle_status(ev.vehicle_state, ev.error_reason),
                        f"charger error: {ev.error_reason or 'no details given'}", Bound.CHARGER_ERROR)
        if not plugged:
            self.switcher.cancel()
            return stop(ChargerStatus.DISCONNECTED, "no vehicle plugged in", Bound.NOT_PLUGGED)
        if (inputs.mode == Mode.SCHEDULED and inputs.vehicle_soc_pct is not None
                and inputs.target_soc_pct is not None
                and inputs.vehicle_soc_pct >= inputs.target_soc_pct):
            return stop(ChargerStatus.CHARGED,
                        f"scheduled: the car is at {inputs.vehicle_soc_pct:.0f} %, its target "
                        f"{inputs.target_soc_pct:.0f} % is reached", Bound.TARGET_SOC)

        # Phases: automatic in Auto (with fresh readings), the user's choice in Manual, the
        # charger's wiring otherwise; a change always goes pause -> settle -> switch.
        allowed = Capability.PHASE_SWITCHING in inputs.capabilities and s.phase_switching_possible
        if inputs.mode == Mode.AUTO:
            phase = self.switcher.step(now_s, surplus_w, allowed)
        else:
            wanted = (inputs.manual_phases if inputs.mode == Mode.MANUAL and inputs.manual_phases
                      else s.charger_phases)
            phase = self.switcher.step(now_s, None, allowed, wanted_phases=wanted)
        if phase.switching:
            return self._decision(inputs, now_s, enabled=True, current_a=0.0,
                                  status=phase.status or ChargerStatus.CONNECTED, reason=phase.reason,
                                  bound_by=Bound.PHASE_SWITCH, request=request, snapshot=snapshot,
                                  surplus_w=surplus_w)
        phases = self.switcher.phases
        voltage_v = self._voltage(snapshot if fresh else None, phases)

        # The mode's wish.
        mode_status: int | None = None
        check_fuse = fresh
        if inputs.mode == Mode.MANUAL:
            wanted_a, bound, reason = inputs.set_current_a, Bound.USER, f"manual: SetCurrent {inputs.set_current_a:g} A"
        elif inputs.mode == Mode.AUTO:
            if not fresh:
                wanted_a, bound = s.safe_current_a, Bound.STALE_READINGS
                reason = f"{site_problem}: fail-safe current {s.safe_current_a:g} A"
                self.auto.reset()
            else:
                assert surplus_w is not None
                auto = self.auto.step(now_s, surplus_w, voltage_v, phases, battery_first)
                wanted_a, bound, reason, mode_status = auto.current_a, auto.bound_by, auto.reason, auto.status
                if phase.reason:
                    reason = f"{reason}; {phase.reason}"
        elif inputs.plan_current_a is not None:
            wanted_a, bound = inputs.plan_current_a, Bound.SCHEDULE
            # Solar surplus on top of the plan (never the home battery's share when it has
            # priority): the car takes whichever is more.
            surplus_a = (surplus_w / (voltage_v * phases)
                         if surplus_w is not None and battery_first is None else 0.0)
            if surplus_a >= s.min_current_a and surplus_a > wanted_a:
                wanted_a, bound = surplus_a, Bound.SURPLUS
                reason = (f"scheduled: solar surplus {surplus_w:.0f} W on top of the energy "
                          f"plan's {inputs.plan_current_a:.1f} A")
            elif wanted_a < s.min_current_a:
                mode_status = ChargerStatus.WAITING_FOR_START
                reason = "scheduled: the energy plan charges in cheaper slots later"
            else:
                reason = f"scheduled: the energy plan's slot now ({wanted_a:.1f} A)"
        else:
            window = active_window(s.schedule_windows, local_dt)
            if window is None:
                upcoming = next_window_start(s.schedule_windows, local_dt)
                when = upcoming.strftime("%a %H:%M") if upcoming else "none configured"
                wanted_a, bound, mode_status = 0.0, Bound.SCHEDULE, ChargerStatus.WAITING_FOR_START
                reason = f"scheduled: waiting for start, next window {when}"
            else:
                wanted_a = window_current_a(window, s.max_current_a)
                bound = Bound.SCHEDULE if window.current_a is not None else Bound.CHARGER
                reason = f"scheduled: inside window {window.start:%H:%M}-{window.end:%H:%M}"

        amps, bound, reason = self._caps(inputs, wanted_a, bound, reason)

        # The circuits: cut at once, raise only after the recovery delay without a new cut.
        fuse_limit_a = None
        if check_fuse and snapshot is not None and amps > 0:
            headroom = self._headroom(snapshot, share).for_phases(phases)
            fuse_limit_a = headroom.current_a
            if headroom.current_a is not None and headroom.current_a < amps - CUT_TOLERANCE_A:
                amps, bound, reason = headroom.current_a, Bound.FUSE, headroom.reason
                self._fuse_cut_s = now_s
            elif (self._fuse_cut_s is not None and now_s - self._fuse_cut_s < s.fuse_recovery_delay_s
                  and amps > self._last_current_a):
                wait_s = s.fuse_recovery_delay_s - (now_s - self._fuse_cut_s)
                amps, bound = self._last_current_a, Bound.FUSE
                reason = f"fuse recovery: holding {amps:g} A for {wait_s:.0f} s more after a fuse cut"
            elif headroom.current_a is None:
                reason = f"{reason}; {headroom.reason}"
        elif check_fuse and snapshot is not None:
            fuse_limit_a = self._headroom(snapshot, share).for_phases(phases).current_a
        elif not fresh and inputs.mode != Mode.AUTO and amps > 0:
            reason = f"{reason}; fuse not checked: {site_problem}"

        # Readings that stopped changing but are not stale yet: never raise on them. A frozen
        # grid meter would let the car's own rising draw look like surplus and hide the fuse.
        hold_after_s = min(HOLD_AFTER_MAX_S, s.stale_after_s / 3.0)
        age_s = site.age_s if site is not None else None
        if fresh and age_s is not None and age_s > hold_after_s and amps > self._last_current_a:
            amps = self._last_current_a
            reason = f"{reason}; holding {amps:g} A: GX readings {age_s:.0f} s old"

        amps = floor_tenth(max(0.0, amps))
        if 0 < amps < s.min_current_a:
            reason = f"{reason}; {amps:g} A is below the {s.min_current_a:g} A minimum: paused"
            amps = 0.0

        if bound == Bound.FUSE:
            status = ChargerStatus.CHARGING_LIMIT
        elif amps == 0 and mode_status is not None:
            status = mode_status
        else:
            status = vehicle_status(ev.vehicle_state, ev.error_reason)
        return self._decision(inputs, now_s, enabled=True, current_a=amps, status=status, reason=reason, bound_by=bound,
                              request=request, snapshot=snapshot, surplus_w=surplus_w, fuse_limit_a=fuse_limit_a)
