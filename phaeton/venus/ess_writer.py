"""Run the home battery per the plan, the Venus way (reference venus-dbus.md §8).

Two ways, chosen by `planner.ess_control`:

- `dess_schedule`: Dynamic ESS mode 4 (a local program's schedule). The plan's SoC at the end
  of each slot becomes a target; consecutive slots with the same target (or, where the battery
  just follows the house, consecutive self-consumption slots) are merged into one window, and
  the first 48 windows go into `/Settings/DynamicEss/Schedule/{0..47}/{Start, Duration,
  TargetSoc, AllowGridFeedIn, Restrictions, Strategy}` with `/Settings/DynamicEss/Mode` = 4.
  Only settings whose value differs from what the settings service holds are written.
- `setpoint`: the planned grid exchange of the current slot as the volatile
  `/Overrides/Setpoint` (W, + import) on `com.victronenergy.hub4`. `/Settings/CGwacs/
  AcPowerSetPoint` is never touched (it is written to flash on every change).

Victron's own Dynamic ESS (VRM) wins: when `/Settings/DynamicEss/Mode` is 1..3 (VRM's modes),
or the system service's `/DynamicEss/Active` says DESS runs while the mode is not our local 4,
nothing is written and `status.conflict` says why. In setpoint mode any DESS mode other than
0 is a conflict (DESS writes the same overrides).

Pure parts: `dess_windows`, `dess_writes`, `dess_conflict`, `setpoint_w`. `EssWriter` does the
bus I/O and never raises out of `apply`/`release` (a failure is in `status.error`).
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
from velib.monitor import DbusCallError, DbusMonitor, Watch
from velib.settings import SettingsClient, SettingsError, SettingSpec

log = logging.getLogger("phaeton.venus.ess")

HUB4 = "com.victronenergy.hub4"
SYSTEM = "com.victronenergy.system"
MODE_PATH = "/Settings/DynamicEss/Mode"
SETPOINT_PATH = "/Overrides/Setpoint"
SYSTEM_DESS_ACTIVE = "/DynamicEss/Active"
SCHEDULE_ENTRIES = 48

DESS_OFF = 0
DESS_LOCAL = 4
VRM_MODES = (1, 2, 3)

STRATEGY_TARGET_SOC = 0
STRATEGY_SELF_CONSUME = 1
RESTRICT_BATTERY_TO_GRID = 1
RESTRICT_GRID_TO_BATTERY = 2

ESS_CONTROL_MODES = ("dess_schedule", "setpoint", "off")
_EPS_KWH = 1e-4


def dess_battery_settings(capacity_kwh: float, max_charge_kw: float, max_discharge_kw: float,
                          *, round_trip_pct: float | None = None,
                          import_limit_kw: float | None = None,
                          export_limit_kw: float | None = None) -> dict[str, float]:
    """The system facts Dynamic ESS paces a target-SoC window with, from the same numbers the
    plan was made with (kWh, kW, %). The efficiency is kept in Victron's range 50..100 %."""
    settings = {"/Settings/DynamicEss/BatteryCapacity": float(capacity_kwh),
                "/Settings/DynamicEss/BatteryChargeLimit": float(max_charge_kw),
                "/Settings/DynamicEss/BatteryDischargeLimit": float(max_discharge_kw)}
    if round_trip_pct is not None:
        settings["/Settings/DynamicEss/SystemEfficiency"] = float(min(100.0, max(50.0, round_trip_pct)))
    if import_limit_kw is not None:
        settings["/Settings/DynamicEss/GridImportLimit"] = float(import_limit_kw)
    if export_limit_kw is not None:
        settings["/Settings/DynamicEss/GridExportLimit"] = float(export_limit_kw)
    return settings


def schedule_path(index: int, field: str) -> str:
    return f"/Settings/DynamicEss/Schedule/{index}/{field}"


# fields in write order: Start last, so a window never starts with old contents
WINDOW_FIELDS = ("Duration", "TargetSoc", "AllowGridFeedIn", "Restrictions", "Strategy",
                 "Start")


@dataclass(frozen=True)
class DessWindow:
    """One Dynamic ESS schedule entry (times in unix s, SoC in whole percent)."""

    start_s: int
    duration_s: int
    target_soc_pct: int
    allow_grid_feed_in: int
    restrictions: int
    strategy: int

    def values(self) -> dict[str, int]:
        return {"Start": self.start_s, "Duration": self.duration_s,
                "TargetSoc": self.target_soc_pct, "AllowGridFeedIn": self.allow_grid_feed_in,
                "Restrictions": self.restrictions, "Strategy": self.strategy}


def _self_consuming(plan: Plan, t: int) -> bool:
    """The battery just follows the house in slot t: it moves, and the grid is not used."""
    moves = plan.battery_charge_kwh[t] > _EPS_KWH or plan.battery_discharge_kwh[t] > _EPS_KWH
    return bool(moves and plan.grid_import_kwh[t] <= _EPS_KWH
                and plan.grid_export_kwh[t] <= _EPS_KWH)


def dess_windows(plan: Plan, now_s: float, *, allow_export: bool, allow_grid_charging: bool,
                 max_windows: int = SCHEDULE_ENTRIES) -> list[DessWindow]:
    """The plan as merged DESS windows that have not ended by `now_s`, at most `max_windows`
    (the rest is written at a later re-plan). Windows are merged over the whole plan first, so
    a window keeps its start while time runs through it (no rewrite)."""
    starts = np.asarray(plan.slot_start_s, dtype=float)
    durations_s = np.asarray(plan.slot_duration_h, dtype=float) * 3600.0
    restrictions = ((0 if allow_export else RESTRICT_BATTERY_TO_GRID)
                    | (0 if allow_grid_charging else RESTRICT_GRID_TO_BATTERY))
    feed_in = 1 if allow_export else 0
    windows: list[DessWindow] = []
    for t in range(len(starts)):
        target = round(float(plan.soc[t + 1]) * 100.0)
        strategy = STRATEGY_SELF_CONSUME if _self_consuming(plan, t) else STRATEGY_TARGET_SOC
        last = windows[-1] if windows else None
        if last is not None and last.strategy == strategy \
                and (strategy == STRATEGY_SELF_CONSUME or last.target_soc_pct == target) \
                and last.start_s + last.duration_s == int(starts[t]):
            windows[-1] = replace(last, duration_s=last.duration_s + int(durations_s[t]),
                                  target_soc_pct=target)
            continue
        windows.append(DessWindow(int(starts[t]), int(durations_s[t]), target, feed_in,
                                  restrictions, strategy))
    current = [w for w in windows if w.start_s + w.duration_s > now_s]
    return current[:max_windows]


def dess_writes(windows: list[DessWindow], current: Callable[[str], Any]) -> list[tuple[str, int]]:
    """(path, value) for every schedule setting that must change; `current(path)` is the value
    held now.

    A window whose start an entry already holds keeps that entry (an unchanged window costs no
    write, settings go to flash), the others take the remaining entries in order, and entries
    left over get Start 0 (unused). Within an entry Start is written last.
    """
    held = {}
    for index in range(SCHEDULE_ENTRIES):
        start = current(schedule_path(index, "Start"))
        if start not in (0, None) and start not in held:
            held[start] = index
    assignment: dict[int, DessWindow] = {}
    unplaced = []
    for window in windows[:SCHEDULE_ENTRIES]:
        index = held.get(window.start_s)
        if index is not None and index not in assignment:
            assignment[index] = window
        else:
            unplaced.append(window)
    free = [index for index in range(SCHEDULE_ENTRIES) if index not in assignment]
    for index, window in zip(free, unplaced):
        assignment[index] = window
    writes = []
    for index in range(SCHEDULE_ENTRIES):
        window = assignment.get(index)
        if window is None:
            if current(schedule_path(index, "Start")) not in (0, None):
                writes.append((schedule_path(index, "Start"), 0))
            continue
        wanted = window.values()
        for field in WINDOW_FIELDS:
            path = schedule_path(index, field)
            if current(path) != wanted[field]:
                writes.append((path, wanted[field]))
    return writes


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


def setpoint_w(plan: Plan, now_s: float) -> float | None:
    """The planned grid exchange (W, + import) of the slot containing `now_s`, or None when
    the plan does not cover now."""
    starts = np.asarray(plan.slot_start_s, dtype=float)
    hours = np.asarray(plan.slot_duration_h, dtype=float)
    index = int(np.searchsorted(starts, now_s, side="right")) - 1
    if index < 0 or now_s >= starts[index] + hours[index] * 3600.0 or hours[index] <= 0:
        return None
    net_kwh = plan.grid_import_kwh[index] - plan.grid_export_kwh[index]
    return float(round(net_kwh / hours[index] * 1000.0 / 10.0) * 10.0)


@dataclass
class EssStatus:
    """What the writer did last; `conflict` and `error` are sentences or None."""

    control: str
    conflict: str | None = None
    error: str | None = None
    windows: int = 0
    writes_total: int = 0
    setpoint_w: float | None = None
    in_control: bool = False


class EssWriter:
    """`await start()`, then `await apply(plan, now_s, ...)` after each plan (and every few
    seconds in setpoint mode), `await release()` to hand the battery back; `await close()`.

    `system_value(path)` reads the system service (e.g. `GxSystemReader.value`); without it
    the writer follows `com.victronenergy.system` itself. `dess_settings` (path -> value, see
    `dess_battery_settings`) are written, when they differ, before DESS mode 4 is switched on.
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
        watches = [Watch(HUB4, require_device_instance=False)]
        if system_value is None:
            watches.append(Watch(SYSTEM, require_device_instance=False))
        self.monitor = DbusMonitor(watches, clock=clock, bus_address=bus_address) \
            if control != "off" else None

    async def start(self) -> None:
        """Follow hub4/system; make sure the DESS schedule settings exist (a GX has them)."""
        if self.monitor is not None:
            await self.monitor.start()
        await self.ensure_settings()

    async def ensure_settings(self) -> None:
        """AddSettings for the DESS schedule (again when the settings service appears late)."""
        if self.control == "dess_schedule":
            specs = [SettingSpec(MODE_PATH, 0, 0, 4)]
            specs += [SettingSpec(path, value) for path, value in self.dess_settings.items()]
            for index in range(SCHEDULE_ENTRIES):
                specs += [SettingSpec(schedule_path(index, "Start"), 0),
                          SettingSpec(schedule_path(index, "Duration"), 0),
                          SettingSpec(schedule_path(index, "TargetSoc"), 0, 0, 100),
                          SettingSpec(schedule_path(index, "AllowGridFeedIn"), 0, 0, 1),
                          SettingSpec(schedule_path(index, "Restrictions"), 0, 0, 3),
                          SettingSpec(schedule_path(index, "Strategy"), 0, 0, 3)]
            try:
                await self.settings.add_settings(specs)
            except (SettingsError, DbusCallError) as exc:
                # an existing setting of another type is still writable: go on, say so
                self.status.error = f"DESS settings: {exc}"
                log.warning("Dynamic ESS settings: %s", exc)

    async def close(self) -> None:
        if self.monitor is not None:
            await self.monitor.close()

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
                    allow_grid_charging: bool = True) -> EssStatus:
        """Make the battery follow `plan` (None: hand it back). Never raises."""
        if plan is None:
            return await self.release()
        if self.control == "off" or self.conflict():
            return self.status
        try:
            if self.control == "dess_schedule":
                await self._apply_schedule(plan, now_s, allow_export, allow_grid_charging)
            else:
                await self._apply_setpoint(plan, now_s)
            self.status.error = None
            self.status.in_control = True
        except (DbusCallError, OSError, ValueError) as exc:
            self.status.error = f"{self.control}: {exc}"
            log.warning("ESS %s write failed: %s", self.control, exc)
        return self.status

    async def release(self) -> EssStatus:
        """Stop steering: DESS mode back to 0 and the schedule cleared, or the setpoint override
        removed. Only what phaeton set is undone; nothing is written during a conflict."""
        if self.control == "off" or self.conflict():
            self.status.in_control = False
            return self.status
        try:
            if self.control == "dess_schedule":
                writes = dess_writes([], self.settings.get)
                if self.settings.get(MODE_PATH) == DESS_LOCAL:
                    writes.append((MODE_PATH, DESS_OFF))
                await self._write_settings(writes)
                self.status.windows = 0
            elif self.monitor.get_value(HUB4, SETPOINT_PATH) is not None:
                await self._set_hub4(None)
            self.status.in_control = False
            self.status.error = None
        except (DbusCallError, OSError, ValueError) as exc:
            self.status.error = f"release: {exc}"
            log.warning("ESS release failed: %s", exc)
        return self.status

    async def _write_settings(self, writes: list[tuple[str, int]]) -> None:
        for path, value in writes:
            code = await self.settings.write(path, value)
            self.status.writes_total += 1
            if code != 0:
                raise ValueError(f"settings service refused {path} = {value} (code {code})")

    async def _apply_schedule(self, plan: Plan, now_s: float, allow_export: bool,
                              allow_grid_charging: bool) -> None:
        windows = dess_windows(plan, now_s, allow_export=allow_export,
                               allow_grid_charging=allow_grid_charging)
        writes = dess_writes(windows, self.settings.get)
        writes += [(path, value) for path, value in self.dess_settings.items()
                   if self.settings.get(path) != value]
        if self.settings.get(MODE_PATH) != DESS_LOCAL:
            writes.append((MODE_PATH, DESS_LOCAL))  # after the windows are in place
        await self._write_settings(writes)
        self.status.windows = len(windows)

    async def _apply_setpoint(self, plan: Plan, now_s: float) -> None:
        wanted = setpoint_w(plan, now_s)
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
