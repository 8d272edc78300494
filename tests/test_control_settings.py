"""ControlSettings: the team's config keys, defaults and specific errors."""
from __future__ import annotations

from datetime import time

import pytest

from phaeton.control.settings import ControlSettings, ScheduleWindow


def test_defaults_match_the_agreed_config():
    s = ControlSettings()
    assert (s.fuse_a, s.site_phases, s.nominal_voltage_v, s.consumption_includes_ev) == (25, 3, 230, True)
    assert (s.charger_position, s.min_current_a, s.max_current_a, s.charger_phases, s.safe_current_a) == (1, 6, 16, 3, 0)
    assert (s.stale_after_s, s.fuse_recovery_delay_s) == (30, 30)
    assert (s.auto_smoothing_s, s.auto_start_margin_w, s.auto_enable_delay_s, s.auto_disable_delay_s,
            s.auto_min_charge_duration_s, s.battery_priority_soc_pct) == (30, 0, 60, 180, 300, 0)
    assert (s.phase_switching_enabled, s.phase_switch_hysteresis_w, s.phase_switch_delay_s,
            s.phase_switch_settle_s, s.phase_switch_grace_s) == (True, 300, 120, 30, 600)
    assert s.schedule_windows == (ScheduleWindow(start=time(22), end=time(6), days=frozenset(range(7))),)


def test_from_config_reads_the_nested_keys():
    s = ControlSettings.from_config({
        "site": {"fuse_a": 35, "phases": 3, "consumption_includes_ev": False},
        "charger": {"position": 0, "min_current_a": 8, "max_current_a": 32, "phases": 1, "safe_current_a": 6,
                    "alfen": {"host": "192.0.2.1"}},
        "control": {"tick_s": 2, "stale_after_s": 60,
                    "auto": {"enable_delay_s": 10, "battery_priority_soc_pct": 40},
                    "phase_switching": {"enabled": False, "grace_s": 900}},
        "schedule": {"windows": [{"days": ["sat", "sun"], "start": "10:00", "end": "16:00", "current_a": 10},
                                 {"start": "23:00", "end": "05:30"}]},
    })
    assert (s.fuse_a, s.consumption_includes_ev, s.charger_position) == (35.0, False, 0)
    assert (s.min_current_a, s.max_current_a, s.charger_phases, s.safe_current_a) == (8.0, 32.0, 1, 6.0)
    assert (s.stale_after_s, s.auto_enable_delay_s, s.battery_priority_soc_pct) == (60, 10, 40)
    assert (s.phase_switching_enabled, s.phase_switch_grace_s, s.phase_switching_possible) == (False, 900, False)
    assert s.schedule_windows[0] == ScheduleWindow(start=time(10), end=time(16), days=frozenset({5, 6}), current_a=10)
    assert s.schedule_windows[1].days == frozenset(range(7)) and s.schedule_windows[1].end == time(5, 30)
    assert ControlSettings.from_config({}) == ControlSettings()
    assert ControlSettings.from_config({"schedule": {"windows": []}}).schedule_windows == ()


@pytest.mark.parametrize("kwargs,words", [
    ({"fuse_a": 0}, "fuse_a must be > 0"),
    ({"fuse_a": "25"}, "fuse_a must be a number"),
    ({"min_current_a": 4}, "min_current_a must be >= 6 A"),
    ({"max_current_a": 6, "min_current_a": 8}, "max_current_a (6.0) must be >= min_current_a (8.0)"),
    ({"charger_phases": 2}, "charger_phases must be 1 or 3"),
    ({"site_phases": 1}, "charger_phases (3) cannot exceed site_phases (1)"),
    ({"charger_position": 2}, "charger_position must be 0 (AC output) or 1 (AC input)"),
    ({"battery_priority_soc_pct": 120}, "battery_priority_soc_pct must be 0..100"),
    ({"auto_enable_delay_s": -1}, "auto_enable_delay_s must be >= 0"),
    ({"phase_switching_enabled": "yes"}, "phase_switching_enabled must be true or false"),
    ({"stale_after_s": float("nan")}, "stale_after_s must be a number"),
])
def test_bad_settings_name_the_key_and_the_reason(kwargs, words):
    with pytest.raises(ValueError) as info:
        ControlSettings(**kwargs)
    assert words in str(info.value)


@pytest.mark.parametrize("window,words", [
    ({"start": "25:00", "end": "06:00"}, "start must be HH:MM"),
    ({"start": "22:00"}, "needs 'end'"),
    ({"start": "22:00", "end": "06:00", "days": ["mon", "funday"]}, "day 'funday' is not one of"),
    ({"start": "22:00", "end": "06:00", "days": "mon"}, "days must be a list"),
    ({"start": "22:00", "end": "06:00", "current_a": -3}, "current_a must be a number >= 0"),
    ({"start": "22:00", "end": "06:00", "power": 3}, "unknown keys: power"),
])
def test_bad_schedule_windows_are_specific(window, words):
    with pytest.raises(ValueError) as info:
        ControlSettings.from_config({"schedule": {"windows": [{"start": "01:00", "end": "02:00"}, window]}})
    assert "schedule.windows[1]" in str(info.value) and words in str(info.value)


def test_window_needs_days():
    with pytest.raises(ValueError, match="at least one day"):
        ScheduleWindow(start=time(1), end=time(2), days=frozenset())
    with pytest.raises(ValueError, match="0 \\(Mon\\) .. 6 \\(Sun\\)"):
        ScheduleWindow(start=time(1), end=time(2), days=frozenset({7}))
