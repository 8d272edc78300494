"""PriceSeries, grid resampling, static and time-of-use tariffs, the refresh schedule."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from phaeton.planning.tariffs import (ExportFormula, ImportFormula, PriceDataError, PriceSeries,
                                      RefreshPolicy, StaticTariff, TimeOfUseTariff, TouWindow)
from phaeton.planning.tariffs.schedule import (backoff_s, local_day_bounds_s, next_refresh_s,
                                               wanted_until_s)

BERLIN = ZoneInfo("Europe/Berlin")


def at(*args, zone=BERLIN) -> int:
    return int(dt.datetime(*args, tzinfo=zone).timestamp())


def hourly(start_s, prices, source="test"):
    n = len(prices)
    return PriceSeries(start_s + 3600 * np.arange(n), np.full(n, 3600), prices,
                       np.array(prices) / 2, source, 0)


def test_hourly_prices_repeat_on_quarter_hour_grid():
    t0 = at(2026, 6, 1, 0, 0)
    grid = hourly(t0, [0.10, 0.20, 0.30]).on_grid(t0, 3 * 3600)
    assert grid.missing == 0
    np.testing.assert_allclose(grid.import_eur_per_kwh, np.repeat([0.10, 0.20, 0.30], 4))
    np.testing.assert_allclose(grid.export_eur_per_kwh, np.repeat([0.05, 0.10, 0.15], 4))
    assert list(grid.slot_starts_s[:2]) == [t0, t0 + 900]


def test_grid_start_floors_to_slot_and_quarter_hours_average_onto_hourly_grid():
    t0 = at(2026, 6, 1, 0, 0)
    quarter = PriceSeries(t0 + 900 * np.arange(8), np.full(8, 900),
                          [0.1, 0.2, 0.3, 0.4, 1.0, 1.0, 1.0, 1.0], np.zeros(8), "q", 0)
    grid = quarter.on_grid(t0 + 100, 2 * 3600 - 100, slot_s=3600)
    assert grid.start_s == t0
    np.testing.assert_allclose(grid.import_eur_per_kwh, [0.25, 1.0])


def test_missing_slots_are_nan_and_reported():
    t0 = at(2026, 6, 1, 0, 0)
    series = PriceSeries([t0, t0 + 7200], [3600, 3600], [0.1, 0.3], [0, 0], "gappy", 0)
    grid = series.on_grid(t0, 4 * 3600)
    assert grid.missing == 8  # the hole (4 slots) and the hour after the end (4 slots)
    assert np.isnan(grid.import_eur_per_kwh[4:8]).all()
    assert np.isnan(grid.import_eur_per_kwh[12:]).all()
    assert "8 of 16 slots" in grid.describe_missing()
    assert PriceSeries.empty("none").on_grid(t0, 3600).missing == 4


def test_dst_days_have_92_and_100_quarter_hours():
    for day, hours in ((dt.date(2026, 3, 29), 23), (dt.date(2026, 10, 25), 25)):
        start, end = local_day_bounds_s(at(day.year, day.month, day.day, 12), BERLIN)
        assert end - start == hours * 3600
        series = hourly(start, list(np.linspace(0.1, 0.3, hours)))
        grid = series.on_grid(start, end - start)
        assert grid.import_eur_per_kwh.size == hours * 4
        assert grid.missing == 0


def test_series_rejects_bad_shapes_overlaps_and_nan():
    with pytest.raises(PriceDataError, match="differ in length"):
        PriceSeries([0, 3600], [3600], [0.1, 0.2], [0, 0], "x", 0)
    with pytest.raises(PriceDataError, match="overlap"):
        PriceSeries([0, 1800], [3600, 3600], [0.1, 0.2], [0, 0], "x", 0)
    with pytest.raises(PriceDataError, match="not a number"):
        PriceSeries([0, 3600], [3600, 3600], [0.1, float("nan")], [0, 0], "x", 0)
    with pytest.raises(PriceDataError, match="durations"):
        PriceSeries([0], [0], [0.1], [0], "x", 0)


def test_merge_replaces_overlapping_slots_and_keeps_the_rest():
    t0 = at(2026, 6, 1, 0, 0)
    old = hourly(t0, [0.1, 0.1, 0.1])
    new = PriceSeries(t0 + 3600 + 900 * np.arange(4), np.full(4, 900), [0.5] * 4, [0] * 4,
                      "new", 42)
    merged = old.merged_with(new)
    assert merged.source == "new" and merged.fetched_at_s == 42
    assert merged.price_at(t0)[0] == 0.1
    assert merged.price_at(t0 + 3600 + 1000)[0] == 0.5
    assert merged.price_at(t0 + 7200)[0] == 0.1
    assert merged.covered_until_s(t0) == t0 + 3 * 3600


def test_json_round_trip_and_malformed_json():
    series = hourly(at(2026, 6, 1), [0.1, -0.05])
    back = PriceSeries.from_json(series.to_json())
    np.testing.assert_array_equal(back.start_s, series.start_s)
    np.testing.assert_allclose(back.export_eur_per_kwh, series.export_eur_per_kwh)
    with pytest.raises(PriceDataError, match="malformed"):
        PriceSeries.from_json({"slots": [[1, 2]], "source": "x", "fetched_at_s": 0})


def test_formulas():
    spot = np.array([0.10, -0.02])
    np.testing.assert_allclose(ImportFormula(1.0, 0.15, 19).apply(spot), [0.2975, 0.1547])
    np.testing.assert_allclose(ExportFormula(0.9, -0.01).apply(spot), [0.08, -0.028])
    np.testing.assert_allclose(ExportFormula(fixed_eur_per_kwh=0.082).apply(spot), [0.082] * 2)
    np.testing.assert_allclose(ExportFormula().apply(spot), [0, 0])
    with pytest.raises(ValueError, match="vat_percent"):
        ImportFormula(vat_percent=150)
    with pytest.raises(ValueError, match="finite"):
        ExportFormula(factor=float("nan"))


async def test_static_tariff_covers_horizon_from_current_slot():
    tariff = StaticTariff(0.30, 0.08, horizon_s=24 * 3600)
    now = at(2026, 6, 1, 10, 7)
    series = await tariff.prices(now)
    grid = series.on_grid(now, 24 * 3600 - 900)
    assert grid.missing == 0
    assert set(grid.import_eur_per_kwh) == {0.30} and set(grid.export_eur_per_kwh) == {0.08}
    with pytest.raises(ValueError, match="import_eur_per_kwh"):
        StaticTariff("cheap")
    with pytest.raises(ValueError, match="wrong unit"):
        StaticTariff(300.0)  # €/MWh typed as €/kWh


async def test_time_of_use_windows_in_local_time_across_dst():
    tariff = TimeOfUseTariff(
        [TouWindow(("sat", "sun"), "00:00", "24:00", 0.20),
         TouWindow(("mon", "tue", "wed", "thu", "fri"), "22:00", "06:00", 0.15, 0.01)],
        tz="Europe/Berlin", default_import_eur_per_kwh=0.35, default_export_eur_per_kwh=0.07,
        horizon_s=72 * 3600)
    # Friday 27 March 2026 → Sunday 29 March (DST starts, 23 h day)
    series = await tariff.prices(at(2026, 3, 27, 12, 0))
    assert tariff.price_at(at(2026, 3, 27, 21, 45)) == (0.35, 0.07)
    assert tariff.price_at(at(2026, 3, 27, 22, 0)) == (0.15, 0.01)
    # Saturday 03:00 is in both Friday's overnight and the weekend window: first match wins
    assert tariff.price_at(at(2026, 3, 28, 3, 0)) == (0.20, 0.07)
    assert tariff.price_at(at(2026, 3, 31, 3, 0)) == (0.15, 0.01)  # Monday night → Tuesday
    assert tariff.price_at(at(2026, 3, 28, 7, 0)) == (0.20, 0.07)
    # Sunday is not in the overnight window's days, so early Monday is the default price
    assert tariff.price_at(at(2026, 3, 30, 5, 45)) == (0.35, 0.07)
    assert tariff.price_at(at(2026, 3, 30, 22, 30)) == (0.15, 0.01)
    sunday_start, sunday_end = local_day_bounds_s(at(2026, 3, 29, 12), BERLIN)
    grid = series.on_grid(sunday_start, sunday_end - sunday_start)
    assert grid.import_eur_per_kwh.size == 92 and grid.missing == 0
    assert set(grid.import_eur_per_kwh) == {0.20}


def test_time_of_use_rejects_bad_windows():
    with pytest.raises(ValueError, match="days"):
        TouWindow(("funday",), "00:00", "06:00", 0.1)
    with pytest.raises(ValueError, match="quarter hour"):
        TouWindow(("mon",), "00:10", "06:00", 0.1)
    with pytest.raises(ValueError, match="HH:MM"):
        TouWindow(("mon",), "noon", "06:00", 0.1)
    with pytest.raises(ValueError, match="time zone"):
        TimeOfUseTariff([], tz="Mars/Olympus", default_import_eur_per_kwh=0.3)


def test_schedule_waits_for_publication_then_polls_and_backs_off():
    policy = RefreshPolicy(publish_time="13:00", publish_tz="Europe/Berlin", poll_s=600,
                           backoff_base_s=60, backoff_max_s=1000)
    morning = at(2026, 6, 1, 9, 0)
    _, end_today = local_day_bounds_s(morning, BERLIN)
    _, end_tomorrow = local_day_bounds_s(morning, BERLIN, 1)
    assert wanted_until_s(morning, policy) == end_today
    assert wanted_until_s(at(2026, 6, 1, 13, 0), policy) == end_tomorrow
    # nothing held: fetch now
    assert next_refresh_s(morning, morning, policy, last_attempt_s=None, failures=0) == morning
    # today held: next at 13:00
    assert next_refresh_s(morning, end_today, policy, last_attempt_s=morning,
                          failures=0) == at(2026, 6, 1, 13, 0)
    # after 13:00 without tomorrow: poll every 600 s after the last attempt
    afternoon = at(2026, 6, 1, 13, 5)
    assert next_refresh_s(afternoon, end_today, policy, last_attempt_s=afternoon,
                          failures=0) == afternoon + 600
    # tomorrow held: next at tomorrow's 13:00
    assert next_refresh_s(afternoon, end_tomorrow, policy, last_attempt_s=afternoon,
                          failures=0) == at(2026, 6, 2, 13, 0)
    # failures double the wait up to the cap, Retry-After can push further
    assert [backoff_s(n, policy) for n in range(6)] == [0, 60, 120, 240, 480, 960]
    assert backoff_s(7, policy) == 1000
    assert next_refresh_s(afternoon, end_today, policy, last_attempt_s=afternoon,
                          failures=3) == afternoon + 240
    assert next_refresh_s(afternoon, end_today, policy, last_attempt_s=afternoon, failures=1,
                          retry_after_until_s=afternoon + 5000) == afternoon + 5000


def test_policy_rejects_bad_settings():
    with pytest.raises(ValueError, match="HH:MM"):
        RefreshPolicy(publish_time="1pm")
    with pytest.raises(ValueError, match="time zone"):
        RefreshPolicy(publish_tz="Europe/Atlantis")
    with pytest.raises(ValueError, match="backoff"):
        RefreshPolicy(backoff_base_s=100, backoff_max_s=10)


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([900, 1800, 3600]),
                          st.floats(-0.5, 4.0, allow_nan=False)), min_size=1, max_size=30),
       st.integers(0, 3))
def test_resampling_keeps_the_cost_of_energy(slots, shift_quarters):
    """Buying 1 kW over the covered span costs the same on the grid as on the source slots."""
    t0 = at(2026, 10, 24, 20, 0) + 900 * shift_quarters  # runs across the autumn DST change
    starts, t = [], t0
    for duration, _ in slots:
        starts.append(t)
        t += duration
    series = PriceSeries(starts, [d for d, _ in slots], [p for _, p in slots],
                         np.zeros(len(slots)), "prop", 0)
    grid = series.on_grid(t0, t - t0)
    assert grid.missing == 0
    source_cost = sum(d / 3600 * p for d, p in slots)
    assert float(np.sum(grid.import_eur_per_kwh) * 0.25) == pytest.approx(source_cost, abs=1e-9)
    # each grid slot carries the price of the source slot it lies in
    for start, price in zip(grid.slot_starts_s, grid.import_eur_per_kwh):
        assert price == pytest.approx(series.price_at(int(start))[0], abs=1e-12)
