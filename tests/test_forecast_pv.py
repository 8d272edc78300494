"""PV forecast: solar geometry, clear-sky shape, scaling with kWp, learning from history."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from phaeton.planning.forecast_pv import PvForecaster, solar_position

BERLIN = ZoneInfo("Europe/Berlin")
LAT, LON = 52.52, 13.40


def utc(*args) -> float:
    return dt.datetime(*args, tzinfo=dt.timezone.utc).timestamp()


def local_midnight(day: dt.date) -> float:
    return dt.datetime.combine(day, dt.time(0), BERLIN).timestamp()


def test_sun_at_solar_noon_on_the_solstices_and_equinox():
    # at solar noon the zenith is |latitude - declination| (declination ±23.44°, 0°)
    for when, declination in ((utc(2026, 6, 21), 23.44), (utc(2026, 12, 21), -23.44),
                              (utc(2026, 3, 20), 0.0)):
        t = when + np.arange(0, 86400, 60)
        zenith, azimuth = solar_position(t, LAT, LON)
        noon = int(np.argmin(zenith))
        assert zenith[noon] == pytest.approx(LAT - declination, abs=0.5)
        assert azimuth[noon] == pytest.approx(180, abs=1.0)
        # Berlin lies 13.4° east: solar noon ~54 min before 12:00 UTC (± equation of time)
        noon_utc_h = (t[noon] - when) / 3600
        assert 10.7 < noon_utc_h < 11.4
        # morning sun is in the east, evening sun in the west
        assert azimuth[noon - 180] < 180 < azimuth[noon + 180]


def test_southern_hemisphere_sun_is_in_the_north():
    t = utc(2026, 12, 21) + np.arange(0, 86400, 60)
    zenith, azimuth = solar_position(t, -33.87, 151.21)  # Sydney
    noon = int(np.argmin(zenith))
    assert zenith[noon] == pytest.approx(33.87 - 23.44, abs=0.5)
    assert azimuth[noon] < 20 or azimuth[noon] > 340


def test_clear_sky_day_shape_zero_at_night_peak_near_solar_noon():
    pv = PvForecaster(LAT, LON, tilt_deg=30, azimuth_deg=180, kwp=10, tz="Europe/Berlin")
    start = local_midnight(dt.date(2026, 6, 21))
    energy = pv.forecast_kwh(start, 96)
    assert energy.shape == (96,)
    assert np.all(energy >= 0)
    assert np.all(energy[:12] == 0) and np.all(energy[-8:] == 0)  # 00-03 and 22-24 local
    peak_local_h = int(np.argmax(energy)) / 4
    assert 12.75 <= peak_local_h <= 13.5  # solar noon ≈ 13:08 CEST
    daily = energy.sum()
    assert 50 < daily < 85  # a clear midsummer day in Berlin: 5-8.5 kWh per kWp
    assert energy.max() * 4 < 10  # never above the peak power
    winter = pv.forecast_kwh(local_midnight(dt.date(2026, 12, 21)), 96).sum()
    assert 0 < winter < daily / 3


def test_scales_with_kwp_and_orientation_shifts_the_peak():
    start = local_midnight(dt.date(2026, 6, 21))
    small = PvForecaster(LAT, LON, 30, 180, 5, "Europe/Berlin").forecast_kwh(start, 96)
    big = PvForecaster(LAT, LON, 30, 180, 15, "Europe/Berlin").forecast_kwh(start, 96)
    np.testing.assert_allclose(big, 3 * small)
    east = PvForecaster(LAT, LON, 30, 90, 5, "Europe/Berlin").forecast_kwh(start, 96)
    west = PvForecaster(LAT, LON, 30, 270, 5, "Europe/Berlin").forecast_kwh(start, 96)
    assert np.argmax(east) < np.argmax(small) < np.argmax(west)
    # an hourly grid carries the same energy as the quarter-hour grid
    hourly = PvForecaster(LAT, LON, 30, 180, 5, "Europe/Berlin").forecast_kwh(start, 24, 3600)
    assert hourly.sum() == pytest.approx(small.sum(), rel=0.01)


def synthetic_history(pv: PvForecaster, days: int, sunny_ratio: float, cloudy_ratio: float,
                      end_day: dt.date):
    """Measured PV: sunny days at `sunny_ratio` × clear sky, every third day cloudy."""
    t, kwh = [], []
    for i in range(days):
        day = end_day - dt.timedelta(days=days - i)
        start = local_midnight(day)
        clear = pv.clear_sky_kwh(start, 96)
        ratio = cloudy_ratio if i % 3 == 2 else sunny_ratio
        t.append(start + 900 * np.arange(96))
        kwh.append(clear * ratio)
    return np.concatenate(t), np.concatenate(kwh)


def test_the_forecast_is_the_expected_production_not_a_sunny_day():
    """Two sunny days in three at 0.72 of clear sky, one cloudy at 0.2: the forecast is what
    such weeks produce on average (the old 90th percentile forecast 0.72, every day sunny).
    (Equal weights here; the default weighs the last days most, which the next test shows.)"""
    pv = PvForecaster(LAT, LON, 35, 200, 8, "Europe/Berlin", default_derate=0.85,
                      half_life_days=365)
    today = dt.date(2026, 6, 15)
    t, kwh = synthetic_history(pv, 21, sunny_ratio=0.72, cloudy_ratio=0.2, end_day=today)
    scale = pv.fit(t, kwh, now_s=local_midnight(today))
    mean_ratio = (2 * 0.72 + 0.2) / 3
    assert scale == pytest.approx(mean_ratio, abs=0.03)
    assert pv.days_learned == 21
    forecast = pv.forecast_kwh(local_midnight(today), 96 * 3).sum()
    clear = pv.clear_sky_kwh(local_midnight(today), 96 * 3).sum()
    assert forecast / clear == pytest.approx(mean_ratio, abs=0.03)
    # one day of history: one third learned, two thirds default
    one_day = PvForecaster(LAT, LON, 35, 200, 8, "Europe/Berlin", default_derate=0.85)
    t1, k1 = synthetic_history(one_day, 1, 0.55, 0.55, today)
    assert one_day.fit(t1, k1) == pytest.approx((0.55 + 2 * 0.85) / 3, abs=0.01)


def test_the_last_days_weigh_most_so_the_season_shows():
    """Three dull weeks, then a sunny one (spring): the forecast follows the sunny week."""
    pv = PvForecaster(LAT, LON, 35, 180, 8, "Europe/Berlin")
    today = dt.date(2026, 4, 1)
    dull_t, dull = synthetic_history(pv, 28, 0.3, 0.3, today - dt.timedelta(days=7))
    sunny_t, sunny = synthetic_history(pv, 7, 0.8, 0.8, today)
    pv.fit(np.concatenate([dull_t, sunny_t]), np.concatenate([dull, sunny]),
           now_s=local_midnight(today))
    assert pv.scale > 0.7


def test_the_index_is_learned_per_hour_of_the_day():
    """A tree shades the array in the morning: mornings forecast low, afternoons high."""
    pv = PvForecaster(LAT, LON, 30, 180, 6, "Europe/Berlin")
    today = dt.date(2026, 5, 20)
    t, kwh = [], []
    for i in range(14):
        start = local_midnight(today - dt.timedelta(days=14 - i))
        clear = pv.clear_sky_kwh(start, 96)
        slots = np.arange(96)
        t.append(start + 900 * slots)
        kwh.append(clear * np.where(slots < 48, 0.2, 0.8))
    pv.fit(np.concatenate(t), np.concatenate(kwh), now_s=local_midnight(today))
    ahead = pv.forecast_kwh(local_midnight(today), 96)
    clear = pv.clear_sky_kwh(local_midnight(today), 96)
    morning = slice(36, 44)     # 09:00-11:00 local
    afternoon = slice(56, 64)   # 14:00-16:00 local
    assert ahead[morning].sum() / clear[morning].sum() == pytest.approx(0.2, abs=0.02)
    assert ahead[afternoon].sum() / clear[afternoon].sum() == pytest.approx(0.8, abs=0.02)


def test_a_dark_last_hour_lowers_the_next_hours_and_fades():
    pv = PvForecaster(LAT, LON, 30, 180, 6, "Europe/Berlin")
    today = dt.date(2026, 6, 10)
    t, kwh = synthetic_history(pv, 14, 0.8, 0.8, today)
    noon = local_midnight(today) + 12 * 3600
    # this morning up to noon: sunny, then the last hour at a quarter of that
    morning_t = local_midnight(today) + 900 * np.arange(48)
    morning = pv.clear_sky_kwh(local_midnight(today), 48) * 0.8
    morning[-4:] *= 0.25
    pv.fit(np.concatenate([t, morning_t]), np.concatenate([kwh, morning]), now_s=noon)
    assert pv.nowcast_ratio == pytest.approx(0.25, abs=0.02)
    ahead = pv.forecast_kwh(noon, 96) / np.maximum(pv.clear_sky_kwh(noon, 96), 1e-9)
    assert ahead[0] < 0.35                      # the next quarter hour: still dark
    assert 0.35 < ahead[8] < 0.6                # two hours on: half way back
    assert ahead[90] == pytest.approx(0.8, abs=0.05)     # tomorrow 10:30: as usual


def test_no_or_partial_history_keeps_the_default_derate():
    pv = PvForecaster(LAT, LON, 30, 180, 6, "Europe/Berlin", default_derate=0.8)
    assert pv.fit([], []) == 0.8
    # half a day (morning only) is not a usable day
    start = local_midnight(dt.date(2026, 6, 10))
    assert pv.fit(start + 900 * np.arange(48), np.full(48, 0.3)) == 0.8
    # a broken meter (huge values) is clipped, not trusted blindly
    t, kwh = synthetic_history(pv, 10, 5.0, 5.0, dt.date(2026, 6, 15))
    assert pv.fit(t, kwh) == pytest.approx(1.2)
    with pytest.raises(ValueError, match="3 times but 2"):
        pv.fit([1, 2, 3], [1, 2])


def test_bad_configuration_is_rejected():
    with pytest.raises(ValueError, match="latitude_deg"):
        PvForecaster(123, 0, 30, 180, 5, "UTC")
    with pytest.raises(ValueError, match="kwp"):
        PvForecaster(50, 0, 30, 180, -5, "UTC")
    with pytest.raises(ValueError, match="time zone"):
        PvForecaster(50, 0, 30, 180, 5, "Nowhere/City")


def test_an_east_and_a_west_roof_are_one_forecast_learned_from_the_total():
    """Two arrays behind one PV meter: the clear sky is the sum of both (a broad day, not a
    south peak), and what the meter measured is learned against that sum."""
    from phaeton.planning.problem_builder import forecast, pv_arrays
    east_west = PvForecaster(LAT, LON, 30, 90, 4, "Europe/Berlin", more_arrays=((30, 270, 4),))
    east = PvForecaster(LAT, LON, 30, 90, 4, "Europe/Berlin")
    west = PvForecaster(LAT, LON, 30, 270, 4, "Europe/Berlin")
    start = local_midnight(dt.date(2026, 6, 21))
    np.testing.assert_allclose(east_west.clear_sky_kwh(start, 96),
                               east.clear_sky_kwh(start, 96) + west.clear_sky_kwh(start, 96))
    t, kwh = synthetic_history(east_west, 10, 0.6, 0.6, dt.date(2026, 6, 21))
    assert east_west.fit(t, kwh, now_s=start) == pytest.approx(0.6, abs=0.01)
    # the config's pv_arrays make the same forecaster
    site = {"tz": "Europe/Berlin", "latitude_deg": LAT, "longitude_deg": LON, "pv_kwp": 0,
            "pv_tilt_deg": 30, "pv_azimuth_deg": 180, "annual_load_kwh": 3500,
            "pv_arrays": [{"kwp": 4, "tilt_deg": 30, "azimuth_deg": 90},
                          {"kwp": 4, "tilt_deg": 30, "azimuth_deg": 270}]}
    assert pv_arrays(site) == [(30.0, 90.0, 4.0), (30.0, 270.0, 4.0)]
    starts = start + 900 * np.arange(96)
    _, pv = forecast({"site": site}, starts, start)
    np.testing.assert_allclose(pv, east_west.clear_sky_kwh(start, 96) * 0.85, rtol=1e-9)


def test_a_pv_array_without_its_size_is_refused_by_the_config():
    from phaeton.config import ConfigError, parse_config_text
    with pytest.raises(ConfigError) as caught:
        parse_config_text("charger:\n  alfen: {host: 192.0.2.1}\nplanner:\n  site:\n"
                          "    pv_arrays: [{tilt_deg: 30}]\n")
    assert [(problem.key_path, problem.line) for problem in caught.value.problems] == [
        ("planner.site.pv_arrays[0].kwp", 5)]
