"""Run the home battery per the plan, the Venus way (reference venus-dbus.md §8).

Two ways, chosen by `planner.ess_control`:

- `dess_schedule`: Dynamic ESS mode 4 (a local program's schedule). Where the plan does what
  plain self-consumption would not (charges from the grid, discharges into it, holds the
  battery while the car charges: `planning/slot_roles.py`) the plan's SoC at the
  end of the slot becomes a target (a decimal, one place), with Restrictions that block the
  opposite trade; everywhere else (the battery stores PV surplus or covers the house) the
  window is self-consumption, so the battery follows the real house, not the forecast.
  Consecutive slots with the same target, or consecutive self-consumption slots, are merged
  into one window, and the first 48 windows go into `/Settings/DynamicEss/Schedule/{0..47}/`
  with `/Settings/DynamicEss/Mode` = 4. Every field dbus-systemcalc-py's Dynamic ESS delegate
  (`delegates/dynamicess.py`) reads is written for each window: Start, Duration, TargetSoc
  (float 0.0..100.0), the legacy integer Soc (the target rounded), AllowGridFeedIn,
  Restrictions, Strategy and Flags (0: no fast charge, PV stays on), so nothing an earlier
  VRM schedule left behind (e.g. Flags 2, "switch PV off") survives under phaeton's windows.
  Start is written last within a window and first (as 0) when an entry is cleared; unused
  entries and a hand-back clear every field. Only settings whose value differs from what the
  settings service holds are written (they go to flash), and every one is added with exactly
  the type and range systemcalc registers (`SCHEDULE_FIELDS`, `DESS_SYSTEM_SETTINGS`), so
  localsettings never refuses them with -5.
- `setpoint`: the volatile `/Overrides/Setpoint` (W, + import) on `com.victronenergy.hub4`,
  re-made every tick from the live readings: the site's demand without the battery (grid
  less battery power) plus the battery power the plan wants in this slot, so the battery does
  what was planned and the grid takes the forecast's error; no override (plain ESS) where the
  battery only follows the house; the planned grid exchange while the readings are missing.
  `/Settings/CGwacs/AcPowerSetPoint` is never touched (it is written to flash on every
  change).

Victron's own Dynamic ESS (VRM) wins: when `/Settings/DynamicEss/Mode` is 1..3 (VRM's modes),
or the system service's `/DynamicEss/Active` says DESS runs while the mode is not our local 4,
nothing is written and `status.conflict` says why. In setpoint mode any DESS mode other than
0 is a conflict (DESS writes the same overrides).

The GX owner's "Dynamic ESS off" wins too (`dess_schedule` only). Phaeton keeps its hold on
DESS in the setting `/Settings/Phaeton/Planner/DessState` (0 idle, 1 steering, 2 owner off),
so the choice survives a restart:

- 0 → 1: phaeton's schedule is in and the GX has been seen holding Mode 4 since;
- 1 → 0: phaeton hands the battery back itself (`release`): DessState is written before it
  sets Mode 0, so its own "off" is never taken for the owner's;
- 1 → 2: Mode is 0 while phaeton is steering; nobody but phaeton writes Mode 0 in state 1
  (systemcalc never writes it), so the owner (GUI, VRM, MQTT, dbus) switched Dynamic ESS off,
  also when that happened while phaeton was not running. Phaeton clears its windows once,
  says so in `status.owner_off` (logged once at WARNING) and writes nothing more, Mode 4
  above all, until the owner re-enables it;
- 2 → 0, "re-enabled": the owner sets `/Settings/DynamicEss/Mode` to 4 on the GX again, or
  changes phaeton's planner Strategy (`/Settings/Phaeton/Planner/Strategy`, any new value;
  the planner calls `owner_reenabled`), or changes `planner.ess_control` (a writer of another
  control resets DessState to 0 when it starts), or writes DessState 0 itself.

A first start finds Mode 0 with DessState 0 (or no DessState): phaeton takes over (Mode 4).
The state machine is the pure `next_dess_state`.

Pure parts: `dess_windows`, `dess_writes`, `dess_setting_specs`, `next_dess_state`,
`dess_conflict`, `setpoint_w`. `EssWriter` does the bus I/O and never raises out of
`apply`/`release` (a failure is in `status.error`).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from phaeton.clock import REAL_CLOCK, Clock
from phaeton.planning.model import Plan
from phaeton.planning.slot_roles import FOLLOWS_HOUSE, FROM_GRID, HOLDS, TO_GRID, slot_role
from phaeton.venus.planner_settings import DESS_STATE_PATH
from velib.monitor import DbusCallError, DbusMonitor, Watch
from velib.settings import SettingsClient, SettingsError, SettingSpec

log = logging.getLogger("phaeton.venus.ess")

HUB4 = "com.victronenergy.hub4"
SYSTEM = "com.victronenergy.system"
MODE_PATH = "/Settings/DynamicEss/Mode"
SETPOINT_PATH = "/Overrides/Setpoint"
SYSTEM_DESS_ACTIVE = "/DynamicEss/Active"
SCHEDULE_ENTRIES = 48        # the number of schedule entries systemcalc reads

DESS_OFF = 0
DESS_LOCAL = 4
VRM_MODES = (1, 2, 3)

STRATEGY_TARGET_SOC = 0
STRATEGY_SELF_CONSUME = 1
RESTRICT_BATTERY_TO_GRID = 1
RESTRICT_GRID_TO_BATTERY = 2
FLAG_FAST_CHARGE = 1
FLAG_PV_OFF = 2
TARGET_DECIMALS = 1          # systemcalc takes a decimal target SoC

# phaeton's hold on Dynamic ESS, kept in DESS_STATE_PATH (see the module docstring)
DESS_STATE_IDLE = 0
DESS_STATE_STEERING = 1
DESS_STATE_OWNER_OFF = 2

OWNER_OFF_REASON = (f"Dynamic ESS was switched off on the GX ({MODE_PATH} = 0); phaeton does "
                    "not steer the battery until Mode is set to 4 again or the planner "
                    "Strategy (/Settings/Phaeton/Planner/Strategy) is changed")

ESS_CONTROL_MODES = ("dess_schedule", "setpoint", "off")
_EPS_KWH = 1e-4

Number = int | float

# Every field of a schedule entry systemcalc reads, with the default and range its Dynamic ESS
# delegate registers (delegates/dynamicess.py; min = max = 0 is "no range"). The order is the
# write order within a window: Start last, so a window never starts with old contents.
SCHEDULE_FIELDS: dict[str, tuple[Number, Number, Number]] = {
    "Duration": (0, 0, 0),
    "TargetSoc": (0.0, 0.0, 100.0),
    "Soc": (0, 0, 100),
    "AllowGridFeedIn": (0, 0, 1),
    "Restrictions": (0, 0, 3),
    "Strategy": (0, 0, 3),
    "Flags": (0, 0, 3),
    "Start": (0, 0, 0),
}
WINDOW_FIELDS = tuple(SCHEDULE_FIELDS)
# clearing an entry: Start first, so it is unused before its contents change
CLEAR_FIELDS = ("Start",) + tuple(field for field in WINDOW_FIELDS if field != "Start")

MODE_SPEC: tuple[int, int, int] = (0, 0, 4)
# the system facts DESS paces windows with, as systemcalc registers them: (default, min, max)
DESS_SYSTEM_SETTINGS: dict[str, tuple[float, float, float]] = {
    "/Settings/DynamicEss/BatteryCapacity": (0.0, 0.0, 1000.0),
    "/Settings/DynamicEss/SystemEfficiency": (90.0, 50.0, 100.0),
    "/Settings/DynamicEss/BatteryChargeLimit": (-1.0, -1.0, 9999.9),
    "/Settings/DynamicEss/BatteryDischargeLimit": (-1.0, -1.0, 9999.9),
    "/Settings/DynamicEss/GridImportLimit": (-1.0, -1.0, 9999.9),
    "/Settings/DynamicEss/GridExportLimit": (-1.0, -1.0, 9999.9),
}


def dess_battery_settings(capacity_kwh: float, max_charge_kw: float, max_discharge_kw: float,
                          *, round_trip_pct: float | None = None,
                          import_limit_kw: float | None = None,
                          export_limit_kw: float | None = None) -> dict[str, float]:
    """The system facts Dynamic ESS paces a target-SoC window with, from the same numbers the
    plan was made with (kWh, kW, %), each kept in the range systemcalc registers (the
    efficiency in Victron's 50..100 %)."""
    settings = {"/Settings/DynamicEss/BatteryCapacity": capacity_kwh,
                "/Settings/DynamicEss/BatteryChargeLimit": max_charge_kw,
                "/Settings/DynamicEss/BatteryDischargeLimit": max_discharge_kw}
    if round_trip_pct is not None:
        settings["/Settings/DynamicEss/SystemEfficiency"] = round_trip_pct
    if import_limit_kw is not None:
        settings["/Settings/DynamicEss/GridImportLimit"] = import_limit_kw
    if export_limit_kw is not None:
        settings["/Settings/DynamicEss/GridExportLimit"] = export_limit_kw
    return {path: _in_range(path, float(value)) for path, value in settings.items()}


def _in_range(path: str, value: float) -> float:
    _, low, high = DESS_SYSTEM_SETTINGS[path]
    return min(high, max(low, value))


def schedule_path(index: int, field: str) -> str:
    return f"/Settings/DynamicEss/Schedule/{index}/{field}"


def dess_setting_specs(dess_settings: dict[str, float]) -> list[SettingSpec]:
    """AddSettings entries for DESS mode 4: the mode, the system facts phaeton writes and every
    field of every schedule entry, each with systemcalc's type, default and range."""
    specs = [SettingSpec(MODE_PATH, *MODE_SPEC)]
    for path, value in dess_settings.items():
        spec = DESS_SYSTEM_SETTINGS.get(path)
        specs.append(SettingSpec(path, *spec) if spec else SettingSpec(path, float(value)))
    for index in range(SCHEDULE_ENTRIES):
        specs += [SettingSpec(schedule_path(index, field), *spec)
                  for field, spec in SCHEDULE_FIELDS.items()]
    return specs


def target_pct(soc: float) -> float:
    """A plan SoC (0..1) as a DESS target: percent with one decimal, within 0.0..100.0."""
    return round(min(1.0, max(0.0, float(soc))) * 100.0, TARGET_DECIMALS) + 0.0


@dataclass(frozen=True)
class DessWindow:
    """One Dynamic ESS schedule entry (times in unix s, the target SoC in % with a decimal)."""

    start_s: int
    duration_s: int
    target_soc_pct: float
    allow_grid_feed_in: int
    restrictions: int
    strategy: int
    flags: int = 0

    def values(self) -> dict[str, Number]:
        """Every field systemcalc reads, as written: TargetSoc a float, Soc its rounding."""
        return {"Start": self.start_s, "Duration": self.duration_s,
                "TargetSoc": float(self.target_soc_pct), "Soc": round(self.target_soc_pct),
                "AllowGridFeedIn": self.allow_grid_feed_in, "Restrictions": self.restrictions,
                "Strategy": self.strategy, "Flags": self.flags}


def dess_windows(plan: Plan, now_s: float, *, allow_export: bool, allow_grid_charging: bool,
                 max_windows: int = SCHEDULE_ENTRIES) -> list[DessWindow]:
    """The plan as merged DESS windows that have not ended by `now_s`, at most `max_windows`
    (the rest is written at a later re-plan). Windows are merged over the whole plan first, so
    a window keeps its start while time runs through it (no rewrite). Targets are compared as
    written (one decimal). Phaeton's windows never ask for fast charge or PV off (Flags 0)."""
    windows = merged_windows(plan, allow_export=allow_export,
                             allow_grid_charging=allow_grid_charging)
    return current_windows(windows, now_s, max_windows)


def current_windows(windows: list[DessWindow], now_s: float,
                    max_windows: int = SCHEDULE_ENTRIES) -> list[DessWindow]:
    """Of a plan's merged windows, the first `max_windows` that have not ended by `now_s`."""
    return [w for w in windows if w.start_s + w.duration_s > now_s][:max_windows]


def merged_windows(plan: Plan, *, allow_export: bool, allow_grid_charging: bool,
                   target_only: bool = False) -> list[DessWindow]:
    """Every slot of the plan as DESS windows, equal neighbours merged.

    A target SoC only where the plan does something plain self-consumption would not
    (`planning/slot_roles.py`): a slot that charges from the grid is a target window that may
    not discharge into the grid (Restrictions BAT2GRID), one that discharges into the grid one
    that may not charge from it (GRID2BAT), one where the battery holds its energy while the
    car charges a target at its SoC (the delegate idles there). Every other slot, where the
    battery stores PV surplus, covers the house or rests, is a self-consumption window:
    there the battery follows what the house really does, not what the forecast said, so a
    forecast error costs nothing extra. `target_only`: every slot is a target-SoC window (a
    fleet schedule asks for its SoC explicitly, see fleet/slots.py)."""
    starts = np.asarray(plan.slot_start_s, dtype=float)
    durations_s = np.asarray(plan.slot_duration_h, dtype=float) * 3600.0
    owner = ((0 if allow_export else RESTRICT_BATTERY_TO_GRID)
             | (0 if allow_grid_charging else RESTRICT_GRID_TO_BATTERY))
    feed_in = 1 if allow_export else 0
    windows: list[DessWindow] = []

    def add(start: int, duration: int, target: float, strategy: int,
            restrictions: int = owner) -> None:
        last = windows[-1] if windows else None
        if last is not None and last.strategy == strategy \
                and last.restrictions == restrictions \
                and (strategy == STRATEGY_SELF_CONSUME or last.target_soc_pct == target) \
                and last.start_s + last.duration_s == start:
            windows[-1] = replace(last, duration_s=last.duration_s + duration,
                                  target_soc_pct=target)
            return
        windows.append(DessWindow(start, duration, target, feed_in, restrictions, strategy))

    # A slot the plan runs in two parts (strongly negative prices: charge, then discharge, or
    # the other way round) is two target-SoC windows: to the SoC at the switch, then to the
    # slot's end SoC. Otherwise DESS would only make the net move and give up the gain.
    mixes = {mix.slot: mix for mix in getattr(plan, "battery_mixes", ())}
    for t in range(len(starts)):
        start, duration = int(starts[t]), int(durations_s[t])
        target = target_pct(plan.soc[t + 1])
        mix = mixes.get(t)
        first_s = int(round(mix.first_s)) if mix is not None else 0
        if mix is not None and 0 < first_s < duration:
            add(start, first_s, target_pct(mix.mid_soc), STRATEGY_TARGET_SOC)
            add(start + first_s, duration - first_s, target, STRATEGY_TARGET_SOC)
            continue
        if target_only:
            add(start, duration, target, STRATEGY_TARGET_SOC)
            continue
        role = slot_role(plan, t)
        if role == FROM_GRID:
            add(start, duration, target, STRATEGY_TARGET_SOC, owner | RESTRICT_BATTERY_TO_GRID)
        elif role == TO_GRID:
            add(start, duration, target, STRATEGY_TARGET_SOC, owner | RESTRICT_GRID_TO_BATTERY)
        elif role == HOLDS:
            add(start, duration, target, STRATEGY_TARGET_SOC)
        else:
            add(start, duration, target, STRATEGY_SELF_CONSUME)
    return windows


def dess_writes(windows: list[DessWindow], current: Callable[[str], Any]
                ) -> list[tuple[str, Number]]:
    """(path, value) for every schedule setting that must change; `current(path)` is the value
    held now (None: unknown).

    A window whose start an entry already holds keeps that entry (an unchanged window costs no
    write, settings go to flash), the others take the remaining entries in order. Within a
    window every field is written that differs, Start last. Entries left over are cleared:
    every field that is not at its default goes back to it, Start first.
    """
    assignment = _assign_entries(windows[:SCHEDULE_ENTRIES], current)
    writes: list[tuple[str, Number]] = []
    for index in range(SCHEDULE_ENTRIES):
        window = assignment.get(index)
        if window is None:
            writes += _clear_writes(index, current)
        else:
            writes += _window_writes(index, window, current)
    return writes


def _assign_entries(windows: list[DessWindow], current: Callable[[str], Any]
                    ) -> dict[int, DessWindow]:
    held: dict[Any, int] = {}
    for index in range(SCHEDULE_ENTRIES):
        start = current(schedule_path(index, "Start"))
        if start not in (0, None) and start not in held:
            held[start] = index
    assignment: dict[int, DessWindow] = {}
    unplaced = []
    for window in windows:
        index = held.get(window.start_s)
        if index is not None and index not in assignment:
            assignment[index] = window
        else:
            unplaced.append(window)
    free = [index for index in range(SCHEDULE_ENTRIES) if index not in assignment]
    for index, window in zip(free, unplaced):
        assignment[index] = window
    return assignment


def _window_writes(index: int, window: DessWindow, current: Callable[[str], Any]
                   ) -> list[tuple[str, Number]]:
    wanted = window.values()
    return [(schedule_path(index, field), wanted[field]) for field in WINDOW_FIELDS
            if current(schedule_path(index, field)) != wanted[field]]


def _clear_writes(index: int, current: Callable[[str], Any]) -> list[tuple[str, Number]]:
    writes = []
    for field in CLEAR_FIELDS:
        path, default = schedule_path(index, field), SCHEDULE_FIELDS[field][0]
        held = current(path)
        if held is not None and held != default:
            writes.append((path, default))
    return writes


def next_dess_state(state: int, mode: Any, ours_seen: bool) -> int:
    """Phaeton's hold on Dynamic ESS (DESS_STATE_*) after seeing `mode` on the GX.

    `ours_seen`: phaeton's schedule is in and the GX has held Mode 4 since. Mode 4 re-enables
    phaeton after the owner's off (and confirms that phaeton steers once its schedule is in);
    Mode 0 while phaeton steers is the owner's off. An unknown mode, VRM's modes and Mode 0
    otherwise change nothing."""
    if isinstance(mode, bool) or not isinstance(mode, (int, float)):
        return state
    if int(mode) == DESS_LOCAL:
        if state == DESS_STATE_OWNER_OFF:
            return DESS_STATE_IDLE
        return DESS_STATE_STEERING if ours_seen else state
    if int(mode) == DESS_OFF and (state == DESS_STATE_STEERING or ours_seen):
        return DESS_STATE_OWNER_OFF
    return state


def dess_conflict(mode: Any, system_dess_active: Any, control: str) -> str | None:
    """Why phaeton must not write (Victron's Dynamic ESS runs), or None."""
    if isinstance(mode, (int, float)) and int(mode) in VRM_MODES:
        return (f"Victron Dynamic ESS is on ({MODE_PATH} = {int(mode)}, VRM); phaeton does not "
                "steer the battery")
    if control == "setpoint" and isinstance(mode, (int, float)) and int(mode) == DESS_LOCAL:
        return (f"a Dynamic ESS schedule is active ({MODE_PATH} = 4); phaeton does not write "
                "the grid setpoint against it")
    active = isinstance(system_dess_active, (int, float)) and system_dess_active != 0
    if active and not (control == "dess_schedule" and mode == DESS_LOCAL):
        return ("Victron Dynamic ESS is active (system /DynamicEss/Active); phaeton does not "
                "steer the battery")
    return None


def setpoint_w(plan: Plan, now_s: float, house_net_w: float | None = None, *,
               target_only: bool = False) -> float | None:
    """The hub4 grid setpoint (W, + import) for the slot containing `now_s`, or None when the
    plan does not cover now or leaves the battery to ESS.

    With the house's live net demand (`house_net_w`: consumption with the EV, less PV), the
    setpoint makes the battery do what the plan asked of it, recomputed each tick: live demand
    plus the planned battery power (0 where it holds), so the grid, not the battery, takes the
    forecast's error; in a slot where the battery only follows the house (`slot_role`) it is
    None (plain ESS, which follows the house as it is). Without live readings: the planned grid exchange."""
    starts = np.asarray(plan.slot_start_s, dtype=float)
    hours = np.asarray(plan.slot_duration_h, dtype=float)
    index = int(np.searchsorted(starts, now_s, side="right")) - 1
    if index < 0 or now_s >= starts[index] + hours[index] * 3600.0 or hours[index] <= 0:
        return None
    if house_net_w is None or not math.isfinite(house_net_w):
        net_kwh = plan.grid_import_kwh[index] - plan.grid_export_kwh[index]
        return float(round(net_kwh / hours[index] * 1000.0 / 10.0) * 10.0)
    if not target_only and slot_role(plan, index) == FOLLOWS_HOUSE:
        return None
    battery_w = (plan.battery_charge_kwh[index] - plan.battery_discharge_kwh[index]) \
        / hours[index] * 1000.0
    return float(round((house_net_w + battery_w) / 10.0) * 10.0)


@dataclass
class EssStatus:
    """What the writer did last; `conflict`, `owner_off` and `error` are sentences or None.
    `owner_off`: the GX owner switched Dynamic ESS off, phaeton leaves the battery alone."""

    control: str
    conflict: str | None = None
    error: str | None = None
    windows: int = 0
    writes_total: int = 0
    setpoint_w: float | None = None
    in_control: bool = False
    owner_off: str | None = None
    dess_state: int | None = None


class EssWriter:
    """`await start()`, then `await apply(plan, now_s, ...)` after each plan (and every few
    seconds in setpoint mode), `await release()` to hand the battery back; `await close()`.

    `system_value(path)` reads the system service (e.g. `GxSystemReader.value`); without it
    the writer follows `com.victronenergy.system` itself. `dess_settings` (path -> value, see
    `dess_battery_settings`) are written, when they differ, before DESS mode 4 is switched on.
    `owner_reenabled(why)` lifts an owner's Dynamic ESS off (see the module docstring).
    """

    def __init__(self, control: str, settings: SettingsClient, *, clock: Clock = REAL_CLOCK,
                 bus_address: str | None = None,
                 system_value: Callable[[str], Any] | None = None,
                 dess_settings: dict[str, float] | None = None,
                 setpoint_refresh_s: float = 60.0, setpoint_deadband_w: float = 50.0):
        if control not in ESS_CONTROL_MODES:
            raise ValueError(f"ess_control must be one of {list(ESS_CONTROL_MODES)}, "
                             f"got {control!r}")
        self.control = control
        self.settings = settings
        self.clock = clock
        self.setpoint_refresh_s = float(setpoint_refresh_s)
        self.setpoint_deadband_w = float(setpoint_deadband_w)
        self.status = EssStatus(control)
        self._system_value = system_value
        self.dess_settings = dict(dess_settings or {})
        self._last_setpoint: tuple[float, float] | None = None  # (W, monotonic s)
        self._claimed = False           # phaeton's schedule is in (since start or hand-back)
        self._merged: tuple | None = None   # (plan, (export, grid charging), its windows)
        self._mode_seen = False         # the GX held Mode 4 since phaeton last wrote it
        self._reenabled: str | None = None
        self._owner_off_logged = False
        self._unsubscribe: list[Callable[[], None]] = []
        watches = [Watch(HUB4, require_device_instance=False)]
        if system_value is None:
            watches.append(Watch(SYSTEM, require_device_instance=False))
        self.monitor = DbusMonitor(watches, clock=clock, bus_address=bus_address) \
            if control != "off" else None

    @property
    def _dess(self) -> bool:
        return self.control == "dess_schedule"

    async def start(self) -> None:
        """Follow hub4/system and the DESS mode; make sure the DESS settings exist (a GX has
        them) and read phaeton's DessState."""
        if self.monitor is not None:
            await self.monitor.start()
        if self._dess and not self._unsubscribe:
            self._unsubscribe = [self.settings.subscribe(MODE_PATH, self._mode_changed),
                                 self.settings.subscribe(DESS_STATE_PATH, self._state_changed)]
        await self.ensure_settings()

    async def ensure_settings(self) -> None:
        """AddSettings for DessState and, for DESS mode 4, the schedule (again when the
        settings service appears late). Another control than `dess_schedule` resets DessState
        to 0: `planner.ess_control` was changed, an owner's Dynamic ESS off no longer holds."""
        specs = [SettingSpec(DESS_STATE_PATH, DESS_STATE_IDLE, DESS_STATE_IDLE,
                             DESS_STATE_OWNER_OFF)]
        if self._dess:
            specs += dess_setting_specs(self.dess_settings)
        try:
            try:
                values = await self.settings.add_settings(specs)
            except SettingsError as exc:
                # an existing setting of another type is still writable: go on, say so
                values = exc.values
                self.status.error = f"DESS settings: {exc}"
                log.warning("Dynamic ESS settings: %s", exc)
            state = values.get(DESS_STATE_PATH)
            if self._dess:
                if state in (DESS_STATE_IDLE, DESS_STATE_STEERING, DESS_STATE_OWNER_OFF):
                    self.status.dess_state = int(state)
            elif state not in (None, DESS_STATE_IDLE):
                log.info("planner.ess_control is %s: an earlier Dynamic ESS off no longer "
                         "holds phaeton back", self.control)
                self.status.dess_state = state
                await self._write_state(DESS_STATE_IDLE)
        except (DbusCallError, OSError) as exc:
            self.status.error = f"DESS settings: {exc}"
            log.warning("Dynamic ESS settings: %s", exc)

    async def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        if self.monitor is not None:
            await self.monitor.close()

    def owner_reenabled(self, why: str) -> None:
        """The owner re-enabled phaeton's strategy (e.g. changed the planner Strategy): an
        owner's Dynamic ESS off stops holding phaeton back at the next apply/release."""
        if self._dess:
            self._reenabled = why

    def _mode_changed(self, _path: str, value: Any) -> None:
        if value == DESS_LOCAL:
            self._mode_seen = True

    def _state_changed(self, _path: str, value: Any) -> None:
        if value == DESS_STATE_IDLE and self.status.dess_state == DESS_STATE_OWNER_OFF:
            self.owner_reenabled(f"{DESS_STATE_PATH} was set to 0")

    def _system(self, path: str) -> Any:
        """A system service value; None when it is unknown (a failing getter included)."""
        try:
            if self._system_value is not None:
                return self._system_value(path)
            return self.monitor.get_value(SYSTEM, path) if self.monitor else None
        except (KeyError, LookupError, AttributeError, TypeError):
            return None

    def conflict(self) -> str | None:
        """Re-check whether Victron's Dynamic ESS is in charge (sets `status.conflict`)."""
        if self.control == "off":
            self.status.conflict = None
        else:
            self.status.conflict = dess_conflict(self.settings.get(MODE_PATH),
                                                 self._system(SYSTEM_DESS_ACTIVE), self.control)
        return self.status.conflict

    async def apply(self, plan: Plan | None, now_s: float, *, allow_export: bool = True,
                    allow_grid_charging: bool = True, target_only: bool = False) -> EssStatus:
        """Make the battery follow `plan` (None: hand it back). Never raises. `target_only`:
        see `merged_windows`."""
        if plan is None:
            return await self.release()
        if self.control == "off" or self.conflict():
            return self.status
        try:
            if self._dess:
                await self._follow_owner()
                if self.status.owner_off:
                    self.status.error = None
                    return self.status
                await self._apply_schedule(plan, now_s, allow_export, allow_grid_charging,
                                           target_only)
                self._claimed = True
            else:
                await self._apply_setpoint(plan, now_s, target_only)
            self.status.error = None
            self.status.in_control = True
        except (DbusCallError, OSError, ValueError) as exc:
            self.status.error = f"{self.control}: {exc}"
            log.warning("ESS %s write failed: %s", self.control, exc)
        return self.status

    async def release(self) -> EssStatus:
        """Stop steering: DESS mode back to 0 and the schedule cleared, or the setpoint override
        removed. Only what phaeton set is undone; nothing is written during a conflict or
        after the owner switched Dynamic ESS off (its windows were cleared then)."""
        if self.control == "off" or self.conflict():
            self.status.in_control = False
            return self.status
        try:
            if self._dess:
                await self._release_schedule()
            elif self.monitor.get_value(HUB4, SETPOINT_PATH) is not None:
                await self._set_hub4(None)
            self.status.in_control = False
            self.status.error = None
        except (DbusCallError, OSError, ValueError) as exc:
            self.status.error = f"release: {exc}"
            log.warning("ESS release failed: %s", exc)
        return self.status

    async def _release_schedule(self) -> None:
        await self._follow_owner()
        ours = self._claimed or self.status.dess_state == DESS_STATE_STEERING
        self._claimed = self._mode_seen = False
        if self.status.owner_off or not ours:
            return
        writes = dess_writes([], self.settings.get)
        # DessState before Mode 0: phaeton's own off is never taken for the owner's
        await self._write_state(DESS_STATE_IDLE)
        if self.settings.get(MODE_PATH) == DESS_LOCAL:
            writes.append((MODE_PATH, DESS_OFF))
        await self._write_settings(writes)
        self.status.windows = 0

    async def _follow_owner(self) -> None:
        """Update phaeton's hold on Dynamic ESS from the GX's Mode (`next_dess_state`): on the
        owner's off, persist it, clear phaeton's windows once and say so."""
        mode = self.settings.get(MODE_PATH)
        if mode == DESS_LOCAL:
            self._mode_seen = True
        state = self.status.dess_state if self.status.dess_state is not None else DESS_STATE_IDLE
        why, self._reenabled = self._reenabled, None
        if why is not None and state == DESS_STATE_OWNER_OFF:
            log.info("Dynamic ESS: %s; phaeton steers the battery again", why)
            state = DESS_STATE_IDLE
        new = next_dess_state(state, mode, self._claimed and self._mode_seen)
        if state == DESS_STATE_OWNER_OFF and new != DESS_STATE_OWNER_OFF:
            log.info("Dynamic ESS: %s = 4 on the GX again; phaeton steers the battery again",
                     MODE_PATH)
        await self._write_state(new)
        self._report_owner_off(new == DESS_STATE_OWNER_OFF)
        if new == DESS_STATE_OWNER_OFF and state != DESS_STATE_OWNER_OFF:
            self._claimed = self._mode_seen = False
            await self._write_settings(dess_writes([], self.settings.get))
            self.status.windows = 0

    def _report_owner_off(self, owner_off: bool) -> None:
        if not owner_off:
            self.status.owner_off = None
            self._owner_off_logged = False
            return
        self.status.owner_off = OWNER_OFF_REASON
        self.status.in_control = False
        if not self._owner_off_logged:
            self._owner_off_logged = True
            log.warning("%s", OWNER_OFF_REASON)

    async def _write_state(self, state: int) -> None:
        """Persist phaeton's hold on Dynamic ESS (DessState) when it changed."""
        if state == self.status.dess_state:
            return
        self.status.dess_state = state
        code = await self.settings.write(DESS_STATE_PATH, state)
        self.status.writes_total += 1
        if code != 0:
            log.warning("settings service refused %s = %s (code %s)", DESS_STATE_PATH, state,
                        code)

    async def _write_settings(self, writes: list[tuple[str, Number]]) -> None:
        for path, value in writes:
            code = await self.settings.write(path, value)
            self.status.writes_total += 1
            if code != 0:
                raise ValueError(f"settings service refused {path} = {value} (code {code})")

    async def _apply_schedule(self, plan: Plan, now_s: float, allow_export: bool,
                              allow_grid_charging: bool, target_only: bool = False) -> None:
        # merged once per plan and choice (the planner applies its plan every few seconds)
        key = (allow_export, allow_grid_charging, target_only)
        if self._merged is None or self._merged[0] is not plan or self._merged[1] != key:
            self._merged = (plan, key, merged_windows(
                plan, allow_export=allow_export, allow_grid_charging=allow_grid_charging,
                target_only=target_only))
        windows = current_windows(self._merged[2], now_s)
        writes = dess_writes(windows, self.settings.get)
        writes += [(path, value) for path, value in self.dess_settings.items()
                   if self.settings.get(path) != value]
        if self.settings.get(MODE_PATH) != DESS_LOCAL:
            writes.append((MODE_PATH, DESS_LOCAL))  # after the windows are in place
            self._mode_seen = False                 # its echo confirms phaeton's Mode 4
        await self._write_settings(writes)
        self.status.windows = len(windows)

    def _house_net_w(self) -> float | None:
        """The site's live demand without the battery (W): grid power less the battery's."""
        grid = [self._system(f"/Ac/Grid/L{phase}/Power") for phase in (1, 2, 3)]
        grid = [value for value in grid if isinstance(value, (int, float))
                and math.isfinite(value)]
        battery = self._system("/Dc/Battery/Power")
        if not grid or not isinstance(battery, (int, float)) or not math.isfinite(battery):
            return None
        return float(sum(grid)) - float(battery)

    async def _apply_setpoint(self, plan: Plan, now_s: float, target_only: bool) -> None:
        wanted = setpoint_w(plan, now_s, self._house_net_w(), target_only=target_only)
        if wanted is None or not math.isfinite(wanted):
            await self.release()
            return
        now = self.clock.monotonic()
        last = self._last_setpoint
        if last is not None and abs(last[0] - wanted) < self.setpoint_deadband_w \
                and now - last[1] < self.setpoint_refresh_s:
            return
        await self._set_hub4(wanted)
        self._last_setpoint = (wanted, now)
        self.status.setpoint_w = wanted

    async def _set_hub4(self, value: float | None) -> None:
        code = await self.monitor.set_value(HUB4, SETPOINT_PATH, value)
        self.status.writes_total += 1
        if code != 0:
            raise ValueError(f"hub4 refused {SETPOINT_PATH} = {value} (code {code})")
        if value is None:
            self._last_setpoint = None
            self.status.setpoint_w = None
