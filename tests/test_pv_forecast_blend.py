"""A weather service's PV forecast in the plan: calibrated on the site's PV meter, moved by the
last hour measured, and the learned forecast wherever the service has no value, including when
it cannot be reached (the planner service against a local Forecast.Solar server)."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest

from phaeton.config import default_config
from phaeton.planner.pv_weather import WeatherPv
from phaeton.planner.service import PlannerService
from phaeton.planning.problem_builder import EnergyHistory
from phaeton.planning.solar.blend import CALIBRATION_LIMITS, blend
from phaeton.planning.tariffs.series import PriceSeries
from phaeton.replay.loop import RecordingWriter, SimClock
from test_planner_service import gx  # noqa: F401  (the fixture)
from test_pv_forecast_sources import DAY0, KEY, LAT, LON, NOW, FakeWeather, serving

KWP = 5.0
SLOT = 900


def sunny_day_kwh(t: np.ndarray) -> np.ndarray:
    """A forecast shape: 0.8 kWh per quarter hour at noon UTC, nothing at night."""
    hour = (np.asarray(t, float) + SLOT / 2) % 86400 / 3600
    return np.where((hour > 5) & (hour < 19), 0.8 * np.sin(np.pi * (hour - 5) / 14), 0.0)


def history(days: float, share: float, now: float = NOW):
    t = np.arange(now - days * 86400, now, SLOT) // SLOT * SLOT
    past = sunny_day_kwh(t)
    return t, share * past, past


def test_the_service_forecast_is_calibrated_on_what_the_meter_measured():
    t, measured, past = history(14, 0.8)
    starts = NOW // SLOT * SLOT + SLOT * np.arange(96)
    weather = sunny_day_kwh(starts)
    result = blend(np.full(96, 0.1), weather, starts_s=starts, now_s=NOW, kwp=KWP,
                   history_t_s=t, history_pv_kwh=measured, weather_past_kwh=past)
    assert result.calibration == pytest.approx(0.8)
    assert result.nowcast_ratio == pytest.approx(1.0)     # the last hour was as calibrated
    assert np.allclose(result.kwh, 0.8 * weather)
    assert result.weather_slots == 96


def test_a_short_comparison_is_trusted_in_part_and_the_calibration_is_bounded():
    t, measured, past = history(2 / 24, 0.5, now=DAY0 + 9 * 3600)     # two morning hours
    partial = blend([0.0], [1.0], starts_s=[DAY0 + 20 * 3600], now_s=DAY0 + 9 * 3600,
                    kwp=KWP, history_t_s=t, history_pv_kwh=measured, weather_past_kwh=past)
    trust = past.sum() / (4.0 * KWP)
    assert 0 < trust < 1
    assert partial.calibration == pytest.approx(1 + trust * (0.5 - 1))
    t, measured, past = history(14, 3.0)                  # a meter in W, a wrong kWp
    bounded = blend([0.0], [1.0], starts_s=[NOW + 86400], now_s=NOW, kwp=KWP,
                    history_t_s=t, history_pv_kwh=measured, weather_past_kwh=past)
    assert bounded.calibration == CALIBRATION_LIMITS[1]


def test_a_darker_last_hour_lowers_the_next_hours_not_tomorrow():
    t, measured, past = history(14, 1.0)
    measured[t >= NOW - 3600] *= 0.4                       # a front came in
    starts = np.array([NOW // SLOT * SLOT + SLOT, NOW // SLOT * SLOT + 86400])
    result = blend([0.0, 0.0], [1.0, 1.0], starts_s=starts, now_s=NOW, kwp=KWP,
                   history_t_s=t, history_pv_kwh=measured, weather_past_kwh=past)
    assert result.nowcast_ratio == pytest.approx(0.4 / result.calibration, rel=0.01)
    assert result.kwh[0] < 0.6 * result.calibration
    assert result.kwh[1] == pytest.approx(result.calibration, rel=1e-4)


def test_slots_the_service_has_no_value_for_keep_the_learned_forecast():
    result = blend([0.3, 0.4, 0.5], [1.0, np.nan, 2.0], starts_s=[NOW, NOW + SLOT,
                                                                  NOW + 2 * SLOT],
                   now_s=NOW, kwp=KWP)
    assert result.kwh.tolist() == [1.0, 0.4, 2.0]          # no history: calibration 1
    assert result.weather_slots == 2


# ---- in the planner service ---------------------------------------------------------------

LEARNED_KWH = 0.123


def planner_with(url: str, tmp_path, measured_share: float):
    config = default_config()
    config["data_dir"] = str(tmp_path)
    config["charger"]["alfen"]["host"] = "192.0.2.1"
    planner = config["planner"]
    planner["strategy"] = "optimise"
    planner["battery"].update(capacity_kwh=10)
    planner["site"].update(latitude_deg=LAT, longitude_deg=LON, pv_kwp=KWP, pv_tilt_deg=30,
                           pv_azimuth_deg=180)
    planner["pv_forecast"].update(source="forecast_solar",
                                  forecast_solar={"url": url, "interval_s": 3600})

    class Prices:
        async def prices(self, now_s):
            n = 4 * 96
            start = DAY0
            return PriceSeries(start + SLOT * np.arange(n), np.full(n, SLOT), np.full(n, 0.3),
                               np.full(n, 0.05), "test", 0.0)

    clock = SimClock(NOW)
    # the meter saw `measured_share` of what the fake Forecast.Solar gives a south roof this
    # morning: 0.3 of its kWp in each hour from 06:00 UTC
    t = DAY0 + SLOT * np.arange((NOW - DAY0) // SLOT)
    hour_utc = (t % 86400) // 3600
    measured = measured_share * np.where(hour_utc >= 6, 0.3 * KWP, 0.0) * SLOT / 3600
    service = PlannerService(
        config, clock, None, lambda path: 50.0 if path.endswith("Soc") else None,
        RecordingWriter("dess_schedule"), tariff=Prices(),
        history=lambda: EnergyHistory(t.astype(float), np.full(t.size, 0.2), measured),
        forecaster=lambda _p, starts, _n, _h: (np.full(len(starts), 0.2),
                                               np.full(len(starts), LEARNED_KWH)))
    service.pv_weather = WeatherPv.from_config(planner, str(tmp_path), clock)
    return service


async def test_the_plan_uses_the_calibrated_service_forecast_and_the_learned_one_beyond_it(
        tmp_path):
    weather = FakeWeather()
    async with serving(weather) as url:
        service = planner_with(url, tmp_path, measured_share=0.9)
        # the first plan does not wait for the service: the fetch runs beside it
        assert await service._tick()
        assert np.all(np.asarray(service._problem.pv_kwh) == LEARNED_KWH)
        await service.pv_weather.fetching
        # the forecast has come: the next tick re-plans with it, the one after does not
        assert await service._tick() and service._last_trigger == "new PV forecast"
        assert not await service._tick()
    problem = service._problem
    starts = np.asarray(problem.slot_start_s, dtype=np.int64)
    pv = np.asarray(problem.pv_kwh)
    shown = service.pv_weather.as_dict(NOW)
    assert shown["source"] == "forecast_solar" and shown["last_error"] is None
    # Forecast.Solar's two days reach DAY0 + 48 h; the 48 h plan goes 10 hours beyond
    covered = starts + SLOT <= DAY0 + 48 * 3600
    assert shown["weather_slots"] == int(covered.sum()) < starts.size
    assert np.all(pv[~covered] == LEARNED_KWH)
    calibration = shown["calibration"]
    assert 0.9 <= calibration < 1.0                       # part-trusted: one morning compared
    # tomorrow 12:00-13:00 UTC: the fake's 0.6 of the south roof's kWp, calibrated
    noon = (starts >= DAY0 + 86400 + 12 * 3600) & (starts < DAY0 + 86400 + 13 * 3600)
    assert np.allclose(pv[noon], 0.6 * KWP * SLOT / 3600 * calibration, rtol=2e-3)
    assert service.plan_dict()["pv_forecast"]["source"] == "forecast_solar"


async def test_a_service_that_cannot_be_reached_leaves_the_learned_forecast(tmp_path):
    weather = FakeWeather()
    async with serving(weather) as url:
        pass                                             # the server is gone
    service = planner_with(url, tmp_path, measured_share=1.0)
    assert await service._tick()
    await service.pv_weather.fetching
    assert not await service._tick()                    # a failed fetch is no reason to re-plan
    assert np.all(np.asarray(service._problem.pv_kwh) == LEARNED_KWH)
    shown = service.pv_weather.as_dict(NOW)
    assert shown["weather_slots"] == 0 and "connection failed" in shown["last_error"]


async def test_the_running_planner_builds_the_configured_source_and_refuses_a_bad_one(
        gx, tmp_path, caplog):
    """On a private bus with the real settings service: `planner.pv_forecast` is read when the
    planner starts; a source it cannot build leaves the learned forecast and says why."""
    from test_planner_service import make_service
    _, system, client, _ = gx
    site = {"tz": "Europe/Berlin", "latitude_deg": LAT, "longitude_deg": LON, "pv_kwp": KWP,
            "pv_tilt_deg": 30, "pv_azimuth_deg": 180, "pv_arrays": [],
            "annual_load_kwh": 3500}
    service = await make_service(tmp_path / "a", client, system, site=site, pv_forecast={
        "source": "open_meteo", "open_meteo": {"url": "http://127.0.0.1:9"}, "timeout_s": 1})
    try:
        assert service.pv_weather.source.source == "open_meteo"
    finally:
        await service.stop()
    service = await make_service(tmp_path / "b", client, system, site=site, pv_forecast={
        "source": "solcast", "solcast": {"api_key": KEY, "sites": []}, "timeout_s": 1})
    try:
        assert service.pv_weather is None
        assert "weather PV forecast off" in caplog.text and "sites must" in caplog.text
    finally:
        await service.stop()


async def test_an_offline_restart_plans_at_once_with_the_cached_service_forecast(tmp_path):
    weather = FakeWeather()
    async with serving(weather) as url:
        online = planner_with(url, tmp_path, measured_share=1.0)
        await online._tick()
        await online.pv_weather.fetching
    # the GX restarts without internet: the first plan already has the service's forecast
    offline = planner_with(url, tmp_path, measured_share=1.0)
    assert await offline._tick()
    shown = offline.pv_weather.as_dict(NOW)
    assert shown["weather_slots"] > 100
    pv = np.asarray(offline._problem.pv_kwh)
    assert np.count_nonzero(pv != LEARNED_KWH) > 100
    await offline.pv_weather.fetching                    # it still tries, and says it failed
    assert "connection failed" in offline.pv_weather.as_dict(NOW)["last_error"]
