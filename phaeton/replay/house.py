"""What really happens in the house in one quarter hour: the battery, the grid, and how a
Victron system executes what phaeton asked for. Pure: numbers in, numbers out.

The physics (`Battery.run`): the battery is asked for an AC energy (+ charge, - discharge); it
takes what its power limits and SoC limits allow (charging x kWh stores x * eff_in, taking y kWh
out delivers y * eff_out, as the planner's model has it); the grid takes the rest. Where export
is not allowed, PV beyond the house and the battery is curtailed.

The executions, each as Victron's code acts (PV is AC-coupled here: a grid meter and an AC PV
inverter, which is what the replayed record measures):

- `self_consumption`: plain ESS (hub4 with no override): the battery takes the PV surplus and
  covers the deficit down to the ESS minimum SoC;
- `hold_setpoint`: hub4 holding `/Overrides/Setpoint` (the planned grid exchange): the battery
  takes whatever keeps the grid there, within its limits;
- `DessDelegate`: dbus-systemcalc-py's Dynamic ESS delegate (`delegates/dynamicess.py`, v2.256,
  commit 9730db0) acting on phaeton's schedule windows: Strategy 1 is plain self-consumption;
  Strategy 0 (target SoC) walks its decision tree (`_determine_reactive_strategy`) every
  `step_s` with the same charge rate (`update_chargerate`: the SoC still to go over the
  window's time left, recomputed when the SoC moved by 0.1 or the target changed, capped by
  the battery limits), hysteresis (250 Wh of the battery, at most 1 %), one-way efficiency
  (1 - (1 - efficiency) / 2) and Restrictions as the delegate; its device actions are the
  VE.Bus ones (`VebusDevice.charge/discharge/idle/self_consume`). Left out, stated in
  docs/planner.md: the smooth-transition states (they hold a charge rate over a window's
  last 10 % when the next window's target is higher), KEEP_BATTERY_CHARGED's 250 W trickle,
  and DC-coupled PV.
"""
from __future__ import annotations

from dataclasses import dataclass

STRATEGY_TARGET_SOC = 0
STRATEGY_SELF_CONSUME = 1
BAT2GRID = 1
GRID2BAT = 2


@dataclass(frozen=True)
class Flow:
    """One interval's energies (kWh): grid import and export, battery AC in and out, and PV
    curtailed because export was not allowed."""

    grid_import_kwh: float = 0.0
    grid_export_kwh: float = 0.0
    charge_kwh: float = 0.0
    discharge_kwh: float = 0.0
    curtailed_kwh: float = 0.0

    def __add__(self, other: "Flow") -> "Flow":
        return Flow(self.grid_import_kwh + other.grid_import_kwh,
                    self.grid_export_kwh + other.grid_export_kwh,
                    self.charge_kwh + other.charge_kwh,
                    self.discharge_kwh + other.discharge_kwh,
                    self.curtailed_kwh + other.curtailed_kwh)


@dataclass(frozen=True)
class Battery:
    """The home battery; SoC limits as fractions, `soc_min` the ESS minimum SoC."""

    capacity_kwh: float
    soc_min: float
    soc_max: float
    max_charge_kw: float
    max_discharge_kw: float
    eff_in: float
    eff_out: float

    @property
    def stored_min_kwh(self) -> float:
        return self.capacity_kwh * self.soc_min

    @property
    def stored_max_kwh(self) -> float:
        return self.capacity_kwh * self.soc_max

    def run(self, stored_kwh: float, load_kwh: float, pv_kwh: float, wanted_ac_kwh: float,
            hours: float, allow_export: bool = True) -> tuple[float, Flow]:
        """(stored energy after, the flows) when the battery is asked for `wanted_ac_kwh`."""
        if wanted_ac_kwh > 0:
            room = max(0.0, (self.stored_max_kwh - stored_kwh) / self.eff_in)
            charge = min(wanted_ac_kwh, self.max_charge_kw * hours, room)
            discharge = 0.0
        else:
            available = max(0.0, (stored_kwh - self.stored_min_kwh) * self.eff_out)
            charge = 0.0
            discharge = min(-wanted_ac_kwh, self.max_discharge_kw * hours, available)
        stored = stored_kwh + charge * self.eff_in - discharge / self.eff_out
        net = load_kwh - pv_kwh + charge - discharge
        curtailed = 0.0
        if net < 0 and not allow_export:
            curtailed, net = -net, 0.0
        return stored, Flow(max(net, 0.0), max(-net, 0.0), charge, discharge, curtailed)


def self_consumption(battery: Battery, stored_kwh: float, load_kwh: float, pv_kwh: float,
                     hours: float, allow_export: bool = True) -> tuple[float, Flow]:
    """Plain ESS: store the surplus, cover the deficit."""
    return battery.run(stored_kwh, load_kwh, pv_kwh, pv_kwh - load_kwh, hours, allow_export)


def hold_setpoint(battery: Battery, stored_kwh: float, load_kwh: float, pv_kwh: float,
                  setpoint_kwh: float, hours: float,
                  allow_export: bool = True) -> tuple[float, Flow]:
    """hub4 holding the grid at `setpoint_kwh` (+ import) over the interval: the battery takes
    the difference between the house's net load and the setpoint."""
    return battery.run(stored_kwh, load_kwh, pv_kwh, setpoint_kwh - (load_kwh - pv_kwh), hours,
                       allow_export)


@dataclass(frozen=True)
class Window:
    """One schedule entry as the delegate reads it (times unix s, target SoC in %)."""

    start_s: float
    duration_s: float
    target_soc_pct: float
    strategy: int
    restrictions: int = 0
    allow_feedin: bool = True

    @property
    def stop_s(self) -> float:
        return self.start_s + self.duration_s

    def holds(self, t_s: float) -> bool:
        return self.start_s <= t_s < self.stop_s


class DessDelegate:
    """The Dynamic ESS delegate's control loop over a house (see the module docstring). Keep
    one per replay: its hysteresis and charge rate carry over from step to step, as the
    delegate's do."""

    def __init__(self, battery: Battery, *, efficiency_pct: float, step_s: float = 60.0,
                 soc_precision: int = 1):
        self.battery = battery
        self.oneway = min(1.0, 1.0 - (1.0 - efficiency_pct / 100.0) / 2.0)
        self.step_s = float(step_s)
        self.precision = int(soc_precision)
        self.hysteresis = round(min(250.0 / (battery.capacity_kwh * 10.0), 1.0), self.precision)
        self.charge_hysteresis = 0.0
        self.discharge_hysteresis = 0.0
        self.chargerate: float | None = None     # W, DC side, negative for a discharge
        self.rate_soc: float | None = None
        self.targetsoc: float | None = None
        self.last_state = ""

    def run_slot(self, windows: list[Window], start_s: float, duration_s: float,
                 stored_kwh: float, load_kwh: float, pv_kwh: float) -> tuple[float, Flow]:
        """One recorded interval (constant load and PV within it) in `step_s` steps."""
        steps = max(1, round(duration_s / self.step_s))
        dt_s = duration_s / steps
        hours = dt_s / 3600.0
        load, pv = load_kwh / steps, pv_kwh / steps
        total = Flow()
        for k in range(steps):
            now = start_s + k * dt_s
            window = next((w for w in windows if w.holds(now)), None)
            stored_kwh, flow = self._step(window, now, stored_kwh, load, pv, hours)
            total = total + flow
        return stored_kwh, total

    # ---- one iteration of the delegate --------------------------------------------------------

    def _soc(self, stored_kwh: float) -> float:
        return round(100.0 * stored_kwh / self.battery.capacity_kwh, self.precision)

    def _step(self, w: Window | None, now: float, stored: float, load: float, pv: float,
              hours: float) -> tuple[float, Flow]:
        battery = self.battery
        if w is None:                          # NO_WINDOW: plain ESS
            self.last_state = "no_window"
            self.chargerate = None
            return self_consumption(battery, stored, load, pv, hours)
        soc = self._soc(stored)
        # AC-coupled PV: what is left after the house, less the charger's loss; or the deficit
        # the battery would have to cover, with the inverter's loss
        if pv > load:
            available_w = (pv - load) / hours * 1000.0 * self.oneway
        else:
            available_w = -(load - pv) / hours * 1000.0 / self.oneway
        if w.strategy == STRATEGY_SELF_CONSUME:
            self.chargerate = None
            self.targetsoc = None
            self.charge_hysteresis, self.discharge_hysteresis = self.hysteresis, 0.0
            self.last_state = "scheduled_selfconsume"
            return self_consumption(battery, stored, load, pv, hours, w.allow_feedin)
        target = round(w.target_soc_pct, self.precision)
        if target <= 0.1:
            self.last_state = "invalid_targetsoc"
            self.chargerate = None
            return self_consumption(battery, stored, load, pv, hours)
        if self.targetsoc is not None and round(self.targetsoc, self.precision) != target:
            self.chargerate = None
        self.targetsoc = target
        minsoc = 100.0 * battery.soc_min
        override: float | None = None
        if round(soc + self.charge_hysteresis, self.precision) < target or target >= 100:
            if target >= 100 and soc >= 100:
                action, state = "idle", "keep_battery_charged"
            else:
                self._update_rate(now, w.stop_s, soc, target)
                rate = self.chargerate or 0.0
                if available_w > rate:
                    if not w.allow_feedin:
                        override, action, state = available_w, "charge", "charge_enhanced"
                    else:
                        action, state = "charge", "charge_feedin"
                elif not w.restrictions & GRID2BAT:
                    action, state = "charge", "charge_allow_grid"
                elif available_w > 0:
                    action, state = "selfconsume", "selfconsume_no_grid"
                else:
                    action, state = "idle", "idle_no_opportunity"
        elif soc - self.discharge_hysteresis > max(target, minsoc) \
                and not w.restrictions & BAT2GRID:
            self._update_rate(now, w.stop_s, soc, target)
            action, state = "discharge", "scheduled_discharge"
        elif soc - self.discharge_hysteresis > max(target, minsoc):
            if available_w > 0:
                action, state = "idle", "idle_no_discharge_opportunity"
            else:
                action, state = "selfconsume", "selfconsume_accept_discharge"
        elif available_w > 0:
            action, state = "idle", "idle_scheduled_feedin"
        else:
            action, state = "idle", "idle_maintain_targetsoc"
        self.last_state = state
        rate_w = override if override is not None else self.chargerate
        if action in ("charge", "discharge") and rate_w is None:
            action = "selfconsume"
        if action == "charge":
            self.charge_hysteresis, self.discharge_hysteresis = 0.0, self.hysteresis
            wanted = abs(rate_w) / 1000.0 * hours / battery.eff_in       # AC energy in
            return battery.run(stored, load, pv, wanted, hours, w.allow_feedin)
        self.charge_hysteresis = self.hysteresis
        self.discharge_hysteresis = 0.0
        if action == "discharge":
            wanted = abs(rate_w) / 1000.0 * hours * battery.eff_out     # AC energy out
            return battery.run(stored, load, pv, -wanted, hours, w.allow_feedin)
        self.chargerate = None
        if action == "selfconsume":
            return self_consumption(battery, stored, load, pv, hours, w.allow_feedin)
        # idle: with feed-in the battery neither charges nor discharges (PV goes out); without,
        # hub4 at setpoint 0 may still charge the surplus but not discharge
        if w.allow_feedin:
            return battery.run(stored, load, pv, 0.0, hours, True)
        return battery.run(stored, load, pv, max(pv - load, 0.0), hours, False)

    def _update_rate(self, now: float, end: float, soc: float, target: float) -> None:
        if self.chargerate is None or self.rate_soc is None \
                or round(soc, 1) != round(self.rate_soc, 1):
            seconds = abs(end - now)
            if seconds <= 0:
                self.chargerate = None
                return
            rate = round(abs(soc - target) * self.battery.capacity_kwh * 36000.0 / seconds)
            limit_kw = self.battery.max_charge_kw if soc <= target \
                else self.battery.max_discharge_kw
            self.chargerate = float(min(rate, limit_kw * 1000.0))
            self.rate_soc = soc
        if target < soc and self.chargerate is not None:
            self.chargerate = -abs(self.chargerate)

