"""The weather PV forecast sources (Open-Meteo, Forecast.Solar, Solcast) against a local aiohttp
server speaking each API: what each answer becomes (slots, units, several arrays or sites
added up), bad answers refused with a specific error while the last good forecast stays, the
cache for an offline start, the interval and Retry-After, and the config that builds them."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
from contextlib import asynccontextmanager

import numpy as np
import pytest
from aiohttp import web

from phaeton.config import ConfigError, default_config, parse_config_text
from phaeton.planning.forecast_pv import solar_position
from phaeton.planning.interval_refresh import IntervalRefresh
from phaeton.planning.solar.base import (PvForecastAuthError, PvForecastError,
                                         PvForecastRateLimited, PvSite)
from phaeton.planning.solar.factory import PvForecastConfigError, pv_source_from_config
from phaeton.planning.solar.forecast_solar import ForecastSolar, ForecastSolarConfig
from phaeton.planning.solar.open_meteo import OpenMeteo, OpenMeteoConfig
from phaeton.planning.solar.solcast import Solcast, SolcastConfig

UTC = dt.timezone.utc
NOW = int(dt.datetime(2026, 6, 1, 10, 10, tzinfo=UTC).timestamp())
DAY0 = NOW - NOW % 86400
LAT, LON = 47.7, 9.2
SOUTH = PvSite(LAT, LON, ((30.0, 180.0, 5.0),))
EAST_WEST = PvSite(LAT, LON, ((20.0, 90.0, 4.0), (20.0, 270.0, 4.0)))
REFRESH = IntervalRefresh(interval_s=3600, backoff_base_s=60, backoff_max_s=3600)
KEY = "solcastkey123"


def iso(t: int, fmt: str = "%Y-%m-%dT%H:%M:%S+00:00") -> str:
    return dt.datetime.fromtimestamp(t, UTC).strftime(fmt)


class FakeWeather:
    """The three APIs. `fault` makes the answers go wrong in a chosen way; `requests` records
    what was asked (path and query)."""

    def __init__(self):
        self.fault: str | None = None
        self.requests: list[tuple[str, dict]] = []
        self.overcast = False          # Open-Meteo: all light diffuse (DNI 0)

    async def _fault(self):
        if self.fault == "500":
            return web.Response(status=500, text="internal error")
        if self.fault == "429":
            return web.Response(status=429, text="slow down", headers={"Retry-After": "1800"})
        if self.fault == "slow":
            await asyncio.sleep(2.0)
        if self.fault == "garbage":
            return web.Response(text="<html>maintenance</html>", content_type="text/html")
        return None

    def _value(self, value: float) -> float:
        return {"nan": float("nan"), "negative": -1.0}.get(self.fault, value)

    # -- Open-Meteo: 15-minute irradiance, each the mean of the quarter hour before its time
    @staticmethod
    def ghi_at(end: int) -> float:
        """GHI of the quarter hour ending at `end`: a sine over the day, 800 W/m² at noon."""
        hour = (end - 450) % 86400 / 3600
        return max(0.0, 800.0 * np.sin(np.pi * (hour - 4.0) / 16.0)) if 4 < hour < 20 else 0.0

    async def open_meteo(self, request):
        self.requests.append((request.path, dict(request.query)))
        if (bad := await self._fault()) is not None:
            return bad
        start = DAY0 - int(request.query["past_days"]) * 86400 + 900
        ends = list(range(start, DAY0 + int(request.query["forecast_days"]) * 86400 + 1, 900))
        ghi = [self._value(self.ghi_at(end)) for end in ends]
        if self.overcast:
            dni, dhi = [0.0] * len(ends), list(ghi)
        else:
            zenith, _ = solar_position(np.array(ends, float) - 450, LAT, LON)
            cos_z = np.clip(np.cos(np.radians(zenith)), 0.05, None)
            dhi = [0.2 * g for g in ghi]
            dni = [float(0.8 * g / c) if g else 0.0 for g, c in zip(ghi, cos_z)]
        if self.fault == "nulls":                 # the model's reach ends: nulls at the end
            ghi[-8:] = [None] * 8
        body = {"latitude": LAT, "longitude": LON, "minutely_15_units": {"time": "unixtime"},
                "minutely_15": {"time": ends, "shortwave_radiation": ghi,
                                "direct_normal_irradiance": dni, "diffuse_radiation": dhi}}
        if self.fault == "api_error":
            return web.json_response({"error": True, "reason": "Latitude must be in range"})
        return web.Response(text=json.dumps(body), content_type="application/json")

    # -- Forecast.Solar: Wh per period ending at each time, one plane per request ----------
    async def forecast_solar(self, request):
        self.requests.append((request.path, dict(request.query)))
        if (bad := await self._fault()) is not None:
            return bad
        kwp = float(request.match_info["kwp"])
        az = float(request.match_info["az"])
        periods = {}
        for hour in range(0, 49):
            end = DAY0 + hour * 3600
            local = hour % 24
            share = 0.6 if (az < 0) == (local < 12) else 0.3     # east mornings, west evenings
            watts = kwp * 1000 * share if 6 <= local < 18 and local != 6 else 0.0
            periods[iso(end)] = self._value(watts)                # Wh in the hour before
        body = {"result": {"watts": {}, "watt_hours_period": periods, "watt_hours": {},
                           "watt_hours_day": {}},
                "message": {"code": 0, "type": "success", "text": "",
                            "ratelimit": {"period": 3600, "limit": 12, "remaining": 11}}}
        if self.fault == "message_error":
            body = {"result": None, "message": {"code": 400, "type": "error",
                                                "text": "wrong azimuth"}}
        return web.Response(text=json.dumps(body), content_type="application/json")

    # -- Solcast: kW per 30 minutes ending at period_end, Bearer key -------------------------
    async def solcast(self, request):
        self.requests.append((request.path, dict(request.query)))
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return web.Response(status=401, text='{"response_status":{"error_code":"Unauth"}}')
        if (bad := await self._fault()) is not None:
            return bad
        site = request.match_info["site"]
        level = 2.0 if site == "east-roof" else 1.0
        first = NOW - NOW % 1800 + 1800
        forecasts = [{"pv_estimate": self._value(level * (1000 if self.fault == "watts" else 1)),
                      "pv_estimate10": 0.5 * level, "pv_estimate90": 1.2 * level,
                      "period_end": iso(end, "%Y-%m-%dT%H:%M:%S.0000000Z"), "period": "PT30M"}
                     for end in range(first, first + 48 * 3600, 1800)]
        return web.Response(text=json.dumps({"forecasts": forecasts}),
                            content_type="application/json")


@asynccontextmanager
async def serving(weather: FakeWeather):
    app = web.Application()
    app.router.add_get("/v1/forecast", weather.open_meteo)
    app.router.add_get("/estimate/{lat}/{lon}/{dec}/{az}/{kwp}", weather.forecast_solar)
    app.router.add_get("/{key}/estimate/{lat}/{lon}/{dec}/{az}/{kwp}", weather.forecast_solar)
    app.router.add_get("/rooftop_sites/{site}/forecasts", weather.solcast)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def make(name: str, url: str, site: PvSite = SOUTH, tmp_path=None, **config):
    options = {"refresh": REFRESH, "timeout_s": 0.5,
               "cache_path": tmp_path / f"pv-{name}.json" if tmp_path else None}
    if name == "open_meteo":
        return OpenMeteo(OpenMeteoConfig(url=url, **config), site, **options)
    if name == "forecast_solar":
        return ForecastSolar(ForecastSolarConfig(url=url, **config), site, **options)
    if name == "solcast":
        config.setdefault("api_key", KEY)
        config.setdefault("sites", ("south-roof",))
        return Solcast(SolcastConfig(url=url, **config), site, **options)
    raise AssertionError(name)


def kw_at(series, t: int) -> float:
    values = series.value_at(t)
    return float("nan") if values is None else values["power"]


# ---- good answers -------------------------------------------------------------------------

async def test_open_meteo_overcast_light_on_a_flat_and_a_vertical_array():
    """All light diffuse: a flat array sees the GHI, a vertical one half the sky plus the
    ground's 20 % reflection of the other half (0.6 x GHI); each value fills the quarter hour
    before its time."""
    weather = FakeWeather()
    weather.overcast = True
    flat = PvSite(LAT, LON, ((0.0, 180.0, 5.0),))
    wall = PvSite(LAT, LON, ((90.0, 180.0, 5.0),))
    async with serving(weather) as url:
        on_flat = await make("open_meteo", url, flat).latest(NOW)
        on_wall = await make("open_meteo", url, wall, performance_ratio=1.0).latest(NOW)
    path, query = weather.requests[0]
    assert path == "/v1/forecast" and query["timeformat"] == "unixtime"
    assert (query["latitude"], query["longitude"]) == ("47.7000", "9.2000")
    noon_end = DAY0 + 12 * 3600
    ghi = FakeWeather.ghi_at(noon_end)
    assert kw_at(on_flat, noon_end - 900) == pytest.approx(5.0 * ghi / 1000 * 0.85)
    assert kw_at(on_wall, noon_end - 900) == pytest.approx(5.0 * ghi / 1000 * 0.6)
    assert kw_at(on_flat, DAY0 + 2 * 3600) == 0.0                 # night
    # the past two days come along for the calibration, and three days ahead
    assert on_flat.start_s[0] == DAY0 - 2 * 86400
    assert on_flat.end_s == DAY0 + 3 * 86400


async def test_open_meteo_sun_on_east_and_west_roofs_and_nulls_left_out():
    weather = FakeWeather()
    async with serving(weather) as url:
        east = await make("open_meteo", url, PvSite(LAT, LON, ((30.0, 90.0, 4.0),))).latest(NOW)
        west = await make("open_meteo", url, PvSite(LAT, LON, ((30.0, 270.0, 4.0),))).latest(NOW)
        both = await make("open_meteo", url, PvSite(LAT, LON, ((30.0, 90.0, 4.0),
                                                                (30.0, 270.0, 4.0)))).latest(NOW)
        weather.fault = "nulls"
        shorter = await make("open_meteo", url).latest(NOW)
    morning, evening = DAY0 + 7 * 3600, DAY0 + 16 * 3600          # UTC; local +2 h
    assert kw_at(east, morning) > 2 * kw_at(west, morning)
    assert kw_at(west, evening) > 2 * kw_at(east, evening)
    assert kw_at(both, morning) == pytest.approx(kw_at(east, morning) + kw_at(west, morning))
    assert shorter.end_s == DAY0 + 3 * 86400 - 8 * 900


async def test_forecast_solar_one_request_per_array_added_up_per_quarter_hour():
    weather = FakeWeather()
    async with serving(weather) as url:
        series = await make("forecast_solar", url, EAST_WEST).latest(NOW)
        keyed = make("forecast_solar", url, SOUTH, api_key="abc123")
        await keyed.latest(NOW)
    paths = [path for path, _ in weather.requests]
    # compass 90 (east) is -90, 270 (west) is 90 in Forecast.Solar's terms
    assert paths[:2] == ["/estimate/47.7000/9.2000/20/-90/4", "/estimate/47.7000/9.2000/20/90/4"]
    assert weather.requests[0][1] == {"time": "utc", "full": "1"}
    assert paths[2] == "/abc123/estimate/47.7000/9.2000/30/0/5"
    # 08:00-09:00 UTC: the east roof 0.6 x 4 kW, the west 0.3 x 4 kW, in every quarter hour
    for quarter in range(4):
        assert kw_at(series, DAY0 + 8 * 3600 + 900 * quarter) == pytest.approx(3.6)
    assert kw_at(series, DAY0 + 2 * 3600) == 0.0
    assert series.duration_s.max() == 900


async def test_solcast_sites_added_up_and_the_key_sent_as_bearer():
    weather = FakeWeather()
    async with serving(weather) as url:
        series = await make("solcast", url, EAST_WEST,
                            sites=("east-roof", "west-roof")).latest(NOW)
        wrong = make("solcast", url, api_key="wrong")
        with pytest.raises(PvForecastAuthError, match="check the API token"):
            await wrong.refresh()
    assert [path for path, _ in weather.requests[:2]] == [
        "/rooftop_sites/east-roof/forecasts", "/rooftop_sites/west-roof/forecasts"]
    assert weather.requests[0][1] == {"format": "json", "hours": "48"}
    first_end = NOW - NOW % 1800 + 1800
    # the period ending at first_end began 30 minutes before it: 2 + 1 kW
    assert kw_at(series, first_end - 1800) == pytest.approx(3.0)
    assert kw_at(series, first_end - 1801) != kw_at(series, first_end - 1801)  # NaN before
    assert SolcastConfig(api_key=KEY, sites=("a", "b")).wait_s == 6 * 3600


# ---- bad answers --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["open_meteo", "forecast_solar", "solcast"])
@pytest.mark.parametrize("fault, error, message", [
    ("500", PvForecastError, "HTTP 500"),
    ("garbage", PvForecastError, "not JSON"),
    ("slow", PvForecastError, "no answer within 0.5 s"),
    ("negative", PvForecastError, "negative"),
    ("nan", PvForecastError, "not a"),
    ("429", PvForecastRateLimited, "rate limited"),
])
async def test_a_bad_answer_is_refused_and_the_last_good_forecast_stays(name, fault, error,
                                                                        message):
    weather = FakeWeather()
    async with serving(weather) as url:
        source = make(name, url)
        good = await source.latest(NOW)
        assert len(good) and source.status(NOW).failures == 0
        weather.fault = fault
        with pytest.raises(error, match=message):
            await source._refresh_at(NOW + 3600)
        assert source.series is good
        status = source.status(NOW + 3600)
        assert status.failures == 1 and message.split()[0] in status.last_error


@pytest.mark.parametrize("name, fault, message", [
    ("open_meteo", "api_error", "Latitude must be in range"),
    ("forecast_solar", "message_error", "wrong azimuth"),
    ("solcast", "watts", "wrong unit (W for kW)"),
])
async def test_each_apis_own_errors_are_named(name, fault, message):
    weather = FakeWeather()
    async with serving(weather) as url:
        source = make(name, url)
        weather.fault = fault
        with pytest.raises(PvForecastError, match=message.replace("(", r"\(").replace(")", r"\)")):
            await source.refresh()
        assert not len(source.series)


@pytest.mark.parametrize("name", ["open_meteo", "forecast_solar", "solcast"])
async def test_an_offline_start_plans_with_the_cached_forecast(name, tmp_path):
    weather = FakeWeather()
    async with serving(weather) as url:
        fetched = await make(name, url, tmp_path=tmp_path).latest(NOW)
    # the GX reboots with no internet: the server is gone
    restarted = make(name, url, tmp_path=tmp_path)
    served = await restarted.latest(NOW + 600)
    assert np.array_equal(served.kw, fetched.kw) and len(served)
    assert restarted.status(NOW + 600).failures == 1
    # other arrays: the cache was for something else and is not used
    other = make(name, url, PvSite(LAT, LON, ((30.0, 180.0, 9.0),)), tmp_path=tmp_path)
    assert not len(other.series)


async def test_the_interval_back_off_and_retry_after():
    weather = FakeWeather()
    async with serving(weather) as url:
        source = make("open_meteo", url)
        await source.latest(NOW)
        await source.latest(NOW + 1800)
        assert len(weather.requests) == 1                 # within the hour: from memory
        await source.latest(NOW + 3600)
        assert len(weather.requests) == 2
        weather.fault = "429"
        await source.latest(NOW + 7200)                   # never raises
        assert source.next_refresh_s(NOW + 7200) == NOW + 7200 + 1800   # Retry-After
        weather.fault = "500"
        await source.latest(NOW + 9000)
        assert source.next_refresh_s(NOW + 9000) == NOW + 9000 + 120    # doubled back-off


# ---- the config ---------------------------------------------------------------------------

def config_with(**pv_forecast):
    data = default_config()
    data["charger"]["alfen"]["host"] = "192.0.2.1"
    data["planner"]["site"].update(latitude_deg=LAT, longitude_deg=LON, pv_kwp=5)
    data["planner"]["pv_forecast"].update(pv_forecast)
    return data


def test_the_config_builds_each_source_with_its_cache(tmp_path):
    assert pv_source_from_config(config_with()["planner"], tmp_path) is None       # learned
    for name, own in (("open_meteo", {}), ("forecast_solar", {}),
                      ("solcast", {"api_key": KEY, "sites": ["a-b"]})):
        planner = config_with(source=name, **{name: own})["planner"]
        source = pv_source_from_config(planner, tmp_path)
        assert source.source == name
        assert source._cache.path == tmp_path / f"pv-forecast-{name}.json"
        assert source.site.arrays == ((30.0, 180.0, 5.0),)
    no_pv = config_with(source="open_meteo")
    no_pv["planner"]["site"]["pv_kwp"] = 0
    assert pv_source_from_config(no_pv["planner"], tmp_path) is None


def test_a_solcast_source_without_its_key_or_sites_is_refused_by_name(tmp_path):
    text = ("charger:\n  alfen:\n    host: 192.0.2.1\nplanner:\n  pv_forecast:\n"
            "    source: solcast\n")
    with pytest.raises(ConfigError, match=r"planner.pv_forecast.solcast.api_key: is required "
                                          r"when planner.pv_forecast.source is 'solcast'"):
        parse_config_text(text)
    with pytest.raises(ConfigError, match="planner.pv_forecast.solcast.sites: must list at "
                                          "least 1 item"):
        parse_config_text(text + "    solcast:\n      api_key: abc\n")
    planner = config_with(source="solcast", solcast={"api_key": KEY})["planner"]
    with pytest.raises(PvForecastConfigError, match="planner.pv_forecast.solcast: sites must"):
        pv_source_from_config(planner, tmp_path)
    with pytest.raises(ConfigError, match="planner.pv_forecast.source: must be one of"):
        parse_config_text(text.replace("solcast", "meteoblue"))
