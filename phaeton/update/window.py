"""The time window of automatic updates, "HH:MM-HH:MM" local time (pure).

An end before the start crosses midnight ("23:30-01:00"); equal start and end mean the whole
day. An automatic update is due once per day: inside the window, and not yet tried on the
day the window opened.
"""
from __future__ import annotations

import datetime as dt
import re

WINDOW_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$"


def parse_window(text: str) -> tuple[int, int]:
    """(start, end) in minutes after midnight; ValueError for another shape."""
    if not re.match(WINDOW_PATTERN, text or ""):
        raise ValueError(f"update.window {text!r} is not \"HH:MM-HH:MM\"")
    start, end = text.split("-")
    return _minutes(start), _minutes(end)


def _minutes(hh_mm: str) -> int:
    hours, minutes = hh_mm.split(":")
    return int(hours) * 60 + int(minutes)


def window_day(now: dt.datetime, window: tuple[int, int]) -> dt.date | None:
    """The day on which the window that contains `now` opened (None: `now` is outside)."""
    start, end = window
    minute = now.hour * 60 + now.minute
    if start == end:
        return now.date()
    if start < end:
        return now.date() if start <= minute < end else None
    if minute >= start:
        return now.date()                              # before midnight
    if minute < end:
        return now.date() - dt.timedelta(days=1)       # after midnight: opened yesterday
    return None


def auto_update_due(now: dt.datetime, window: tuple[int, int],
                    last_attempt_day: str | None) -> str | None:
    """The window's day ("YYYY-MM-DD") when an automatic update should start now, else None."""
    day = window_day(now, window)
    if day is None or day.isoformat() == last_attempt_day:
        return None
    return day.isoformat()
