"""The pure carbon budget logic (control/carbon_budget.py) and the feed's alert state file."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from phaeton.control.carbon_budget import (CRITICAL, MONTH, OK, WARNING, YEAR, AlertState,
                                           BudgetSettings, PeriodUse, evaluate, forecast_kg,
                                           period_bounds)

UTC = timezone.utc
T = datetime(2026, 1, 11, tzinfo=UTC).timestamp()      # 10 days into January


def _settings(**kw) -> BudgetSettings:
    return BudgetSettings.from_config({"site": {"month_kg": 100}, **kw})


def test_usage_level_and_a_linear_forecast_on_the_elapsed_time():
    [status] = evaluate(_settings(), {MONTH: PeriodUse("2026-01", 50.0, 30.0)}, T, UTC)
    assert (status.scope, status.period, status.key) == ("site", "month", "2026-01")
    assert status.used_kg == 80.0 and status.usage_pct == pytest.approx(80.0)
    assert status.level == WARNING
    assert status.forecast_kg == pytest.approx(80.0 * 31 / 10)   # 10 of 31 days
    assert status.forecast_pct == pytest.approx(248.0)


def test_the_car_budget_counts_the_cars_only_and_thresholds_are_configurable():
    settings = BudgetSettings.from_config({"car": {"year_kg": 40}, "warning_pct": 50,
                                           "critical_pct": 70})
    [status] = evaluate(settings, {YEAR: PeriodUse("2026", 500.0, 30.0)}, T, UTC)
    assert (status.scope, status.period, status.used_kg) == ("car", "year", 30.0)
    assert status.level == CRITICAL


def test_no_forecast_in_the_first_day_and_an_old_period_counts_nothing():
    first_hours = datetime(2026, 1, 1, 6, tzinfo=UTC).timestamp()
    [status] = evaluate(_settings(), {MONTH: PeriodUse("2025-12", 90.0, 0.0)}, first_hours, UTC)
    assert status.used_kg == 0.0 and status.level == OK and status.forecast_kg is None
    assert forecast_kg(10.0, first_hours, *period_bounds(first_hours, MONTH, UTC)) is None


def test_periods_are_local_calendar_months_and_years():
    berlin = ZoneInfo("Europe/Berlin")
    t = datetime(2026, 2, 28, 23, 30, tzinfo=UTC).timestamp()    # March 1st, 00:30 in Berlin
    start, end = period_bounds(t, MONTH, berlin)
    assert datetime.fromtimestamp(start, berlin).strftime("%Y-%m-%d %H") == "2026-03-01 00"
    assert datetime.fromtimestamp(end, berlin).strftime("%Y-%m-%d") == "2026-04-01"
    start, end = period_bounds(t, YEAR, berlin)
    assert end - start == 365 * 86400


def test_each_threshold_fires_once_per_period():
    state = AlertState()
    settings = _settings()
    fired = []
    for used in (10, 79.9, 80.0, 85, 94.9, 95.0, 99, 120):
        statuses = evaluate(settings, {MONTH: PeriodUse("2026-01", used, 0.0)}, T, UTC)
        fired += [(a.level, round(a.status.usage_pct, 1)) for a in state.fire(statuses)]
    assert fired == [(WARNING, 80.0), (CRITICAL, 95.0)]
    # a new month starts again
    february = datetime(2026, 2, 3, tzinfo=UTC).timestamp()
    statuses = evaluate(settings, {MONTH: PeriodUse("2026-02", 81, 0.0)}, february, UTC)
    assert [a.level for a in state.fire(statuses)] == [WARNING]


def test_a_jump_past_both_fires_the_critical_only_and_a_new_budget_starts_again():
    state = AlertState()
    statuses = evaluate(_settings(), {MONTH: PeriodUse("2026-01", 97, 0.0)}, T, UTC)
    alerts = state.fire(statuses)
    assert [a.level for a in alerts] == [CRITICAL]
    assert "97 % of the monthly budget of 100 kg" in alerts[0].message()
    assert state.fire(statuses) == []
    lower = BudgetSettings.from_config({"site": {"month_kg": 50}})
    statuses = evaluate(lower, {MONTH: PeriodUse("2026-01", 97, 0.0)}, T, UTC)
    assert [a.level for a in state.fire(statuses)] == [CRITICAL]


def test_the_state_survives_a_round_trip_and_garbage_gives_an_empty_state():
    state = AlertState()
    state.fire(evaluate(_settings(), {MONTH: PeriodUse("2026-01", 90, 0.0)}, T, UTC))
    again = AlertState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert again.fired_level("site/month", "2026-01") == WARNING
    assert again.fire(evaluate(_settings(), {MONTH: PeriodUse("2026-01", 91, 0.0)}, T, UTC)) == []
    for garbage in (None, [], {"version": 99}, {"version": 1, "fired": 3},
                    {"version": 1, "fired": {"site/month": {"key": 5}}}):
        assert AlertState.from_dict(garbage).fired == {}


def test_settings_from_the_config_defaults_mean_no_budget():
    settings = BudgetSettings.from_config({"site": {"month_kg": None, "year_kg": None},
                                           "car": {}, "warning_pct": 80, "critical_pct": 95})
    assert not settings.any
    assert evaluate(settings, {}, T, UTC) == []
    assert BudgetSettings.from_config(None) == BudgetSettings()


def test_the_feed_keeps_the_fired_levels_in_the_data_dir(tmp_path):
    from types import SimpleNamespace

    from phaeton.carbon_feed import BUDGET_STATE_FILE, CarbonFeed
    config = {"data_dir": str(tmp_path), "planner": {"site": {"tz": "UTC"}},
              "carbon": {"source": "static", "static": {"g_per_kwh": 500},
                         "budget": {"car": {"month_kg": 1.0}}}}
    clock = SimpleNamespace(time=lambda: T)
    feed = CarbonFeed.from_config(config, clock=clock)
    import asyncio
    asyncio.run(feed.refresh_once())
    flow = SimpleNamespace(pv_total_w=0.0, house_total_w=0.0, ev_total_w=10000.0,
                           grid_total_w=10000.0, battery_w=0.0)
    levels = []
    for minute in range(0, 16):            # 10 kW at 500 g/kWh: 83 g per minute
        alerts = feed.check_budget(T) if minute == 0 else []
        feed.record(T + minute * 60, flow, None)
        levels += [a.level for a in alerts]
        levels += [feed.alerts.fired_level("car/month", "2026-01")]
    assert levels[-1] == CRITICAL               # 15 min: 1.25 kg
    saved = json.loads((tmp_path / BUDGET_STATE_FILE).read_text())
    assert saved["fired"]["car/month"]["fired"] == CRITICAL
    again = CarbonFeed.from_config(config, clock=clock)
    assert again.alerts.fired_level("car/month", "2026-01") == CRITICAL
    view = again.view(T + 16 * 60)
    assert view.month.car_kg == pytest.approx(1.25, rel=0.01)      # from the history file
