"""The control settings: one frozen value holding the config keys the pure control core needs.

The config loader builds `ControlSettings` (directly, or from the parsed YAML with
`ControlSettings.from_config`). Field names are the config keys flattened with their section
as prefix where a bare name would be ambiguous (`site.phases` -> `site_phases`,
`control.auto.enable_delay_s` -> `auto_enable_delay_s`). Invalid values raise ValueError with
the key name and the reason, never later inside a control step.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import time
from typing import Any

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALL_DAYS = frozenset(range(7))


@dataclass(frozen=True)
class ScheduleWindow:
    """A weekly charging window in local time.

    `days` are the weekdays the window *starts* on (0 = Monday). When `end` <= `start` the window
    crosses midnight and ends on the next day (22:00-06:00 starting Friday ends Saturday 06:00);
    `end` == `start` is a full 24 h window. `current_a` None means "the maximum current".
    """

    start: time
    end: time
    days: frozenset[int] = ALL_DAYS
    current_a: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.start, time) or not isinstance(self.end, time):
            raise ValueError("schedule window start/end must be times of day")
        days = frozenset(self.days)
        bad = [d for d in days if not isinstance(d, int) or isinstance(d, bool) or not 0 <= d <= 6]
        if bad:
            raise ValueError(f"schedule window days must be 0 (Mon) .. 6 (Sun), got {sorted(map(repr, bad))}")
        if not days:
            raise ValueError("schedule window needs at least one day")
        object.__setattr__(self, "days", days)
        if self.current_a is not None:
            if not _is_number(self.current_a) or not self.current_a >= 0:
                raise ValueError(f"schedule window current_a must be a number >= 0 or null, got {self.current_a!r}")
            object.__setattr__(self, "current_a", float(self.current_a))

    @classmethod
    def from_config(cls, item: Mapping[str, Any]) -> ScheduleWindow:
        """From one `schedule.windows` entry: {days: [mon, ...], start: "22:00", end: "06:00", current_a}."""
        if not isinstance(item, Mapping):
            raise ValueError(f"schedule window must be a mapping, got {type(item).__name__}")
        unknown = set(item) - {"days", "start", "end", "current_a"}
        if unknown:
            raise ValueError(f"schedule window has unknown keys: {', '.join(sorted(unknown))}")
        days_raw = item.get("days", list(DAY_NAMES))
        if isinstance(days_raw, str) or not isinstance(days_raw, (list, tuple)):
            raise ValueError(f"schedule window days must be a list like [mon, tue], got {days_raw!r}")
        days = set()
        for name in days_raw:
            key = str(name).strip().lower()[:3]
            if key not in DAY_NAMES:
                raise ValueError(f"schedule window day {name!r} is not one of {', '.join(DAY_NAMES)}")
            days.add(DAY_NAMES.index(key))
        for key in ("start", "end"):
            if key not in item:
                raise ValueError(f"schedule window needs '{key}' (HH:MM)")
        return cls(start=parse_hhmm(item["start"], "start"), end=parse_hhmm(item["end"], "end"),
                   days=frozenset(days), current_a=item.get("current_a"))


def parse_hhmm(value: Any, what: str = "time") -> time:
    """'22:00' -> time(22, 0). YAML may also hand over minutes since midnight as an int (22:00 -> 1320)."""
    if isinstance(value, time):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        return time(value // 60, value % 60)
    if isinstance(value, str):
        parts = value.strip().split(":")
        if len(parts) == 2 and all(p.isdigit() for p in parts):
            hour, minute = int(parts[0]), int(parts[1])
            if 0 <= hour <= 23 and 0 <= minute <= 59:
                return time(hour, minute)
            if hour == 24 and minute == 0:
                return time(0, 0)
    raise ValueError(f"schedule window {what} must be HH:MM (00:00-23:59), got {value!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class ControlSettings:
    """Settings of the pure control core, with the team's config defaults."""

    # site
    fuse_a: float = 25.0
    site_phases: int = 3
    nominal_voltage_v: float = 230.0
    consumption_includes_ev: bool = True
    # charger
    charger_position: int = 1            # 0 = AC output, 1 = AC input (Victron /Position)
    min_current_a: float = 6.0
    max_current_a: float = 16.0
    charger_phases: int = 3
    safe_current_a: float = 0.0
    # control
    stale_after_s: float = 30.0
    fuse_recovery_delay_s: float = 30.0
    auto_smoothing_s: float = 30.0
    auto_start_margin_w: float = 0.0
    auto_enable_delay_s: float = 60.0
    auto_disable_delay_s: float = 180.0
    auto_min_charge_duration_s: float = 300.0
    battery_priority_soc_pct: float = 0.0
    phase_switching_enabled: bool = True
    phase_switch_hysteresis_w: float = 300.0
    phase_switch_delay_s: float = 120.0
    phase_switch_settle_s: float = 30.0
    phase_switch_grace_s: float = 600.0
    # schedule
    schedule_windows: tuple[ScheduleWindow, ...] = field(default_factory=lambda: (
        ScheduleWindow(start=time(22, 0), end=time(6, 0)),))

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("float", float):
                if not _is_number(value):
                    raise ValueError(f"{f.name} must be a number, got {value!r}")
                object.__setattr__(self, f.name, float(value))
            elif f.type in ("bool", bool):
                if not isinstance(value, bool):
                    raise ValueError(f"{f.name} must be true or false, got {value!r}")
            elif f.type in ("int", int):
                if not isinstance(value, int) or isinstance(value, bool):
                    raise ValueError(f"{f.name} must be an integer, got {value!r}")
        positive = ("fuse_a", "nominal_voltage_v", "min_current_a", "max_current_a")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        non_negative = ("safe_current_a", "stale_after_s", "fuse_recovery_delay_s", "auto_smoothing_s",
                        "auto_start_margin_w", "auto_enable_delay_s", "auto_disable_delay_s",
                        "auto_min_charge_duration_s", "phase_switch_hysteresis_w", "phase_switch_delay_s",
                        "phase_switch_settle_s", "phase_switch_grace_s")
        for name in non_negative:
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.site_phases not in (1, 3):
            raise ValueError(f"site_phases must be 1 or 3, got {self.site_phases!r}")
        if self.charger_phases not in (1, 3):
            raise ValueError(f"charger_phases must be 1 or 3, got {self.charger_phases!r}")
        if self.charger_phases > self.site_phases:
            raise ValueError(f"charger_phases ({self.charger_phases}) cannot exceed site_phases ({self.site_phases})")
        if self.charger_position not in (0, 1):
            raise ValueError(f"charger_position must be 0 (AC output) or 1 (AC input), got {self.charger_position!r}")
        if self.min_current_a < 6.0:
            raise ValueError(f"min_current_a must be >= 6 A (IEC 61851), got {self.min_current_a!r}")
        if self.max_current_a < self.min_current_a:
            raise ValueError(f"max_current_a ({self.max_current_a}) must be >= min_current_a ({self.min_current_a})")
        if not 0 <= self.battery_priority_soc_pct <= 100:
            raise ValueError(f"battery_priority_soc_pct must be 0..100, got {self.battery_priority_soc_pct!r}")
        windows = tuple(self.schedule_windows)
        for window in windows:
            if not isinstance(window, ScheduleWindow):
                raise ValueError(f"schedule_windows must hold ScheduleWindow values, got {window!r}")
        object.__setattr__(self, "schedule_windows", windows)

    @property
    def phase_switching_possible(self) -> bool:
        """Wiring and settings allow 1p/3p switching (the charger must still have the capability)."""
        return self.phase_switching_enabled and self.charger_phases == 3

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ControlSettings:
        """From the parsed config.yaml (missing keys take the defaults; other sections are ignored)."""
        def section(parent: Mapping[str, Any], name: str) -> Mapping[str, Any]:
            value = parent.get(name, {}) if isinstance(parent, Mapping) else {}
            if value is None:
                return {}
            if not isinstance(value, Mapping):
                raise ValueError(f"config section '{name}' must be a mapping, got {type(value).__name__}")
            return value

        site = section(config, "site")
        charger = section(config, "charger")
        control = section(config, "control")
        auto = section(control, "auto")
        switching = section(control, "phase_switching")
        schedule = section(config, "schedule")
        mapping = {
            "fuse_a": (site, "fuse_a"), "site_phases": (site, "phases"),
            "nominal_voltage_v": (site, "nominal_voltage_v"),
            "consumption_includes_ev": (site, "consumption_includes_ev"),
            "charger_position": (charger, "position"), "min_current_a": (charger, "min_current_a"),
            "max_current_a": (charger, "max_current_a"), "charger_phases": (charger, "phases"),
            "safe_current_a": (charger, "safe_current_a"),
            "stale_after_s": (control, "stale_after_s"),
            "fuse_recovery_delay_s": (control, "fuse_recovery_delay_s"),
            "auto_smoothing_s": (auto, "smoothing_s"), "auto_start_margin_w": (auto, "start_margin_w"),
            "auto_enable_delay_s": (auto, "enable_delay_s"), "auto_disable_delay_s": (auto, "disable_delay_s"),
            "auto_min_charge_duration_s": (auto, "min_charge_duration_s"),
            "battery_priority_soc_pct": (auto, "battery_priority_soc_pct"),
            "phase_switching_enabled": (switching, "enabled"),
            "phase_switch_hysteresis_w": (switching, "hysteresis_w"),
            "phase_switch_delay_s": (switching, "delay_s"), "phase_switch_settle_s": (switching, "settle_s"),
            "phase_switch_grace_s": (switching, "grace_s"),
        }
        kwargs: dict[str, Any] = {}
        for name, (parent, key) in mapping.items():
            if key in parent and parent[key] is not None:
                kwargs[name] = parent[key]
        if "windows" in schedule:
            raw = schedule["windows"] or []
            if not isinstance(raw, (list, tuple)):
                raise ValueError("schedule.windows must be a list")
            windows = []
            for index, item in enumerate(raw):
                try:
                    windows.append(ScheduleWindow.from_config(item))
                except ValueError as exc:
                    raise ValueError(f"schedule.windows[{index}]: {exc}") from None
            kwargs["schedule_windows"] = tuple(windows)
        return cls(**kwargs)
