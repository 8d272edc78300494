"""Schedule windows: days, start/end, across midnight, the window's current."""
from __future__ import annotations

from datetime import datetime, time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phaeton.control.schedule import (
    active_window,
    next_window_start,
    window_contains,
    window_current_a,
)
from phaeton.control.settings import ScheduleWindow

NIGHT_FRI = ScheduleWindow(start=time(22, 0), end=time(6, 0), days=frozenset({4}))   # Friday night


@pytest.mark.parametrize("when,inside", [
    (datetime(2026, 6, 5, 21, 59), False),   # Friday before the start
    (datetime(2026, 6, 5, 22, 0), True),     # Friday start
    (datetime(2026, 6, 6, 5, 59), True),     # Saturday morning: still Friday's window
    (datetime(2026, 6, 6, 6, 0), False),     # end is exclusive
    (datetime(2026, 6, 5, 3, 0), False),     # Friday early morning belongs to Thursday (not listed)
    (datetime(2026, 6, 6, 22, 30), False),   # Saturday night: not listed
])
def test_window_across_midnight_belongs_to_its_start_day(when, inside):
    assert window_contains(NIGHT_FRI, when) is inside


def test_daytime_window_and_first_match_wins():
    noon = ScheduleWindow(start=time(11, 0), end=time(14, 0), days=frozenset({0, 1, 2, 3, 4}), current_a=10)
    everyday = ScheduleWindow(start=time(0, 0), end=time(0, 0))           # 24 h, every day
    assert window_contains(noon, datetime(2026, 6, 3, 11, 0))
    assert not window_contains(noon, datetime(2026, 6, 6, 12, 0))         # Saturday
    assert active_window((noon, everyday), datetime(2026, 6, 3, 12, 0)) is noon
    assert active_window((noon, everyday), datetime(2026, 6, 6, 12, 0)) is everyday
    assert active_window((noon,), datetime(2026, 6, 6, 12, 0)) is None


def test_window_current_defaults_to_maximum():
    assert window_current_a(NIGHT_FRI, 16) == 16
    assert window_current_a(ScheduleWindow(start=time(1), end=time(2), current_a=10), 16) == 10
    assert window_current_a(ScheduleWindow(start=time(1), end=time(2), current_a=20), 16) == 16


def test_next_window_start():
    assert next_window_start((NIGHT_FRI,), datetime(2026, 6, 5, 23, 0)) == datetime(2026, 6, 12, 22, 0)
    assert next_window_start((NIGHT_FRI,), datetime(2026, 6, 3, 8, 0)) == datetime(2026, 6, 5, 22, 0)
    assert next_window_start((), datetime(2026, 6, 3, 8, 0)) is None


@given(start_min=st.integers(0, 1439), end_min=st.integers(0, 1439), day=st.integers(0, 6),
       minute_of_week=st.integers(0, 7 * 1440 - 1))
def test_every_day_window_covers_the_same_minutes_every_day(start_min, end_min, day, minute_of_week):
    """With all days listed, membership depends only on the time of day."""
    window = ScheduleWindow(start=time(start_min // 60, start_min % 60), end=time(end_min // 60, end_min % 60))
    when = datetime(2026, 6, 1 + minute_of_week // 1440, (minute_of_week % 1440) // 60, minute_of_week % 60)
    m = minute_of_week % 1440
    if start_min < end_min:
        expected = start_min <= m < end_min
    else:
        expected = m >= start_min or m < end_min
    assert window_contains(window, when) is expected
