"""Weekly charging windows in local time.

A window belongs to the day it starts on: 22:00-06:00 on Friday covers Friday 22:00 to Saturday
06:00 (and not Friday 00:00-06:00, which belongs to Thursday's window, if Thursday is listed).
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, time, timedelta

from phaeton.control.settings import ScheduleWindow


def _minutes(t: time) -> float:
    return t.hour * 60 + t.minute + t.second / 60 + t.microsecond / 60e6


def window_contains(window: ScheduleWindow, local_dt: datetime) -> bool:
    """Is `local_dt` (naive or aware, read as local wall time) inside the window?"""
    now = _minutes(local_dt.time())
    start, end = _minutes(window.start), _minutes(window.end)
    today = local_dt.weekday()
    yesterday = (today - 1) % 7
    if start < end:
        return today in window.days and start <= now < end
    # Crosses midnight (end <= start; end == start is a full 24 h window).
    return (today in window.days and now >= start) or (yesterday in window.days and now < end)


def active_window(windows: Iterable[ScheduleWindow], local_dt: datetime) -> ScheduleWindow | None:
    """The first window (in configured order) that contains `local_dt`, or None."""
    for window in windows:
        if window_contains(window, local_dt):
            return window
    return None


def window_current_a(window: ScheduleWindow, max_current_a: float) -> float:
    """The window's current, or the maximum when the window does not set one."""
    return max_current_a if window.current_a is None else min(window.current_a, max_current_a)


def next_window_start(windows: Iterable[ScheduleWindow], local_dt: datetime) -> datetime | None:
    """When the next window starts after `local_dt` (within a week), or None without windows."""
    best: datetime | None = None
    base = local_dt.replace(second=0, microsecond=0)
    for window in windows:
        for offset in range(8):
            day = base + timedelta(days=offset)
            if day.weekday() not in window.days:
                continue
            start = day.replace(hour=window.start.hour, minute=window.start.minute)
            if start > local_dt:
                if best is None or start < best:
                    best = start
                break
    return best
