"""House-load forecast: reproduces a synthetic history, falls back sensibly without one."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from phaeton.planning.forecast_load import LoadForecaster, standard_profile_kwh

BERLIN = ZoneInfo("Europe/Berlin")


def local(*args) -> float:
    return dt.datetime(*args, tzinfo=BERLIN).timestamp()


def true_profile(weekend: bool) -> np.ndarray:
    """A household using 0.1 kWh per quarter-hour base, 0.6 in the evening, 0.4 at weekend noon."""
    profile = np.full(96, 0.1)
    profile[72:88] = 0.6  # 18:00-22:00
    if weekend:
        profile[44:56] = 0.4  # 11:00-14:00
    return profile


def synthetic_history(days: int, end: dt.date, seed: int = 1, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    t, kwh = [], []
    for i in range(days, 0, -1):
        day = end - dt.timedelta(days=i)
        start = dt.datetime.combine(day, dt.time(0), BERLIN).timestamp()
        end_s = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), BERLIN).timestamp()
        starts = np.arange(start, end_s, 900)
        slot = ((starts - start) // 900).astype(int)
        slot = np.where(slot < 96, slot, 95)  # a 25-hour day repeats its last slot
        base = true_profile(day.weekday() >= 5)[slot] * scale
        t.append(starts)
        kwh.append(base * rng.uniform(0.8, 1.2, size=starts.size))
    return np.concatenate(t), np.concatenate(kwh)


def test_reproduces_weekday_and_weekend_profiles():
    today = dt.date(2026, 6, 1)  # a Monday
    t, kwh = synthetic_history(42, today)
    forecaster = LoadForecaster("Europe/Berlin").fit(t, kwh, now_s=local(2026, 6, 1, 0, 0))
    monday = forecaster.forecast_kwh(local(2026, 6, 1, 0, 0), 96)
    saturday = forecaster.forecast_kwh(local(2026, 6, 6, 0, 0), 96)
    # each slot within the ±20 % noise of the history, each day's energy within 4 %
    np.testing.assert_allclose(monday, true_profile(False), rtol=0.2)
    np.testing.assert_allclose(saturday, true_profile(True), rtol=0.2)
    assert monday.sum() == pytest.approx(true_profile(False).sum(), rel=0.04)
    assert saturday.sum() == pytest.approx(true_profile(True).sum(), rel=0.04)
    # an hourly grid sums the quarter-hours
    hourly = forecaster.forecast_kwh(local(2026, 6, 1, 0, 0), 24, slot_s=3600)
    np.testing.assert_allclose(hourly, monday.reshape(24, 4).sum(axis=1))


def test_recent_weeks_weigh_more():
    today = dt.date(2026, 6, 1)
    old_t, old_kwh = synthetic_history(42, today - dt.timedelta(days=14), seed=2)
    new_t, new_kwh = synthetic_history(14, today, seed=3, scale=2.0)
    forecaster = LoadForecaster("Europe/Berlin", half_life_days=7).fit(
        np.concatenate([old_t, new_t]), np.concatenate([old_kwh, new_kwh]),
        now_s=local(2026, 6, 1, 0, 0))
    evening = forecaster.forecast_kwh(local(2026, 6, 1, 19, 0), 1)[0]
    # equal weighting would give ≈0.6 × (42·1 + 14·2)/56 = 0.75; recency pulls it to ≥ 0.95
    assert 0.95 < evening < 1.2


def test_no_history_uses_the_standard_shape_at_the_annual_consumption():
    forecaster = LoadForecaster("Europe/Berlin", annual_kwh=4380)
    forecaster.fit([], [], now_s=local(2026, 6, 1))
    week = forecaster.forecast_kwh(local(2026, 6, 1, 0, 0), 7 * 96)
    assert week.sum() == pytest.approx(7 * 12.0)  # 4380 kWh / 365 days = 12 kWh a day
    day = week[:96]
    assert day[19 * 4] > 2.5 * day[3 * 4]  # evening peak far above the night
    np.testing.assert_allclose(standard_profile_kwh(365).sum(axis=1), [1.0, 1.0])


def test_little_history_is_used_for_both_day_types_and_level():
    # two weekdays of a heavy household, no weekend yet
    t, kwh = synthetic_history(2, dt.date(2026, 6, 4), scale=3.0)  # Tue, Wed
    forecaster = LoadForecaster("Europe/Berlin", annual_kwh=2000)
    forecaster.fit(t, kwh, now_s=local(2026, 6, 4, 0, 0))
    thursday = forecaster.forecast_kwh(local(2026, 6, 4, 0, 0), 96)
    saturday = forecaster.forecast_kwh(local(2026, 6, 6, 0, 0), 96)
    truth = true_profile(False) * 3.0
    np.testing.assert_allclose(thursday.sum(), truth.sum(), rtol=0.1)
    assert thursday[76] > 3 * thursday[8]  # evening peak learned from two days
    # the weekend borrows the weekday profile rather than the 2000 kWh/year standard
    assert saturday.sum() == pytest.approx(thursday.sum(), rel=0.1)
    # a few hours of history: the standard shape fills the rest at the configured level
    few = LoadForecaster("Europe/Berlin", annual_kwh=3650)
    few.fit(t[:8], kwh[:8], now_s=local(2026, 6, 4, 0, 0))
    day = few.forecast_kwh(local(2026, 6, 4, 0, 0), 96)
    assert 8.0 < day.sum() < 12.0


def test_bad_samples_are_skipped_and_bad_settings_rejected():
    t, kwh = synthetic_history(14, dt.date(2026, 6, 1))
    kwh = kwh.copy()
    kwh[::50] = np.nan
    kwh[1::50] = -5
    now = local(2026, 6, 1, 0, 0)
    clean = LoadForecaster("Europe/Berlin").fit(t, kwh, now_s=now)
    assert np.all(np.isfinite(clean.profile_kwh)) and np.all(clean.profile_kwh > 0)
    with pytest.raises(ValueError, match="annual_kwh"):
        LoadForecaster("Europe/Berlin", annual_kwh=0)
    with pytest.raises(ValueError, match="time zone"):
        LoadForecaster("Atlantis/Capital")
    with pytest.raises(ValueError, match="multiple of 900"):
        clean.forecast_kwh(now, 4, slot_s=600)
    with pytest.raises(ValueError, match="2 times but 1"):
        clean.fit([1, 2], [1], now_s=now)


def test_dst_days_forecast_by_local_time():
    t, kwh = synthetic_history(28, dt.date(2026, 3, 29))
    forecaster = LoadForecaster("Europe/Berlin").fit(t, kwh, now_s=local(2026, 3, 29, 0, 0))
    start = local(2026, 3, 29, 0, 0)
    end = local(2026, 3, 30, 0, 0)
    day = forecaster.forecast_kwh(start, int((end - start) // 900))
    assert day.size == 92
    # 18:00 local is slot 68 on this 23-hour day (02:00-03:00 does not exist)
    assert day[68] == pytest.approx(0.6, rel=0.15) and day[67] == pytest.approx(0.1, rel=0.15)


def test_a_busier_day_than_usual_raises_the_next_hours_and_fades_by_tomorrow():
    """Guests since yesterday: the last day at 1.6 times the usual, the last hour at 2.5."""
    end = dt.date(2026, 3, 11)                               # a Wednesday
    t, kwh = synthetic_history(28, end, seed=5)
    now = dt.datetime.combine(end, dt.time(0), BERLIN).timestamp()
    recent = t >= now - 86400
    kwh = np.where(recent, kwh * 1.6, kwh)
    kwh = np.where(t >= now - 3600, kwh / 1.6 * 2.5, kwh)
    usual = LoadForecaster("Europe/Berlin").fit(t[~recent], kwh[~recent], now - 86400)
    forecaster = LoadForecaster("Europe/Berlin").fit(t, kwh, now)
    assert 1.4 < forecaster.level < 1.7
    assert 2.0 < forecaster.nowcast < 2.8
    ahead = forecaster.forecast_kwh(now, 96 * 2)
    base = usual.forecast_kwh(now, 96 * 2)
    assert ahead[0] / base[0] > 1.9                          # the next quarter hour
    assert 1.3 < ahead[8:16].sum() / base[8:16].sum() < 1.7  # two to four hours on
    assert ahead[-16:].sum() / base[-16:].sum() < 1.3        # the day after tomorrow's eve


def test_without_a_full_recent_day_the_level_is_left_alone():
    end = dt.date(2026, 3, 11)
    t, kwh = synthetic_history(28, end, seed=6)
    now = dt.datetime.combine(end, dt.time(0), BERLIN).timestamp() + 10 * 86400   # 10 days on
    forecaster = LoadForecaster("Europe/Berlin").fit(t, kwh, now)
    assert forecaster.level == 1.0 and forecaster.nowcast == 1.0
