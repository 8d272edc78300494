"""The fetching carbon sources against a local aiohttp server speaking each API: the GB Carbon
Intensity API, ENTSO-E actual generation (A75), Electricity Maps and a file at a URL. Good
answers, HTTP errors, time-outs, garbage, missing fields, NaN and negative values, a server
that goes away: a bad answer is refused with a specific error and the last good data stay."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from contextlib import asynccontextmanager

import numpy as np
import pytest
from aiohttp import web

from phaeton.planning.carbon import (CarbonAuthError, CarbonError, CarbonFile, CarbonFileConfig,
                                     CarbonRateLimited, ElectricityMaps,
                                     ElectricityMapsConfig, EntsoeGeneration,
                                     EntsoeGenerationConfig, UkCarbonConfig, UkCarbonIntensity)
from phaeton.planning.interval_refresh import IntervalRefresh

UTC = dt.timezone.utc
TOKEN = "carbon-test-token"
REFRESH = IntervalRefresh(interval_s=1800, backoff_base_s=60, backoff_max_s=3600)
NOW = int(dt.datetime(2026, 6, 1, 12, 10, tzinfo=UTC).timestamp())
HALF = 1800


def iso(t: int, fmt: str = "%Y-%m-%dT%H:%MZ") -> str:
    return dt.datetime.fromtimestamp(t, UTC).strftime(fmt)


def parse_iso(text: str) -> int:
    return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


class FakeProvider:
    """One server for all four APIs. `now` is the provider's clock, `fault` makes the next
    answers go wrong in a chosen way, `requests` records the paths asked for."""

    def __init__(self):
        self.now = NOW
        self.fault: str | None = None
        self.requests: list[str] = []
        self.wind_lag_s = 0          # ENTSO-E: wind published this much later than the rest

    # -- shared faults --------------------------------------------------------------------
    async def _common_fault(self):
        if self.fault == "500":
            return web.Response(status=500, text="internal error")
        if self.fault == "429":
            return web.Response(status=429, text="slow down", headers={"Retry-After": "1800"})
        if self.fault == "slow":
            await asyncio.sleep(2.0)
        if self.fault == "garbage":
            return web.Response(text="<html>maintenance</html>", content_type="text/html")
        return None

    def _value(self, value):
        if self.fault == "nan":
            return float("nan")
        if self.fault == "negative":
            return -5
        return value

    @staticmethod
    def _json(data) -> web.Response:   # allow_nan: Python's json writes NaN as the API would not
        return web.Response(text=json.dumps(data), content_type="application/json")

    # -- GB Carbon Intensity API ----------------------------------------------------------
    def _uk_slots(self, start: int, window: str, regional: bool) -> list[dict]:
        if window == "fw48h":
            starts = range(start, start + 48 * 3600, HALF)
        else:
            starts = range(start - 24 * 3600, start, HALF)
        entries = []
        for t in starts:
            measured = t < self.now - HALF
            intensity = {"forecast": 200 if window == "fw48h" else 150,
                         "index": "moderate"}
            if not regional:
                intensity["actual"] = 100 if measured else None
            entry = {"from": iso(t), "to": iso(t + HALF), "intensity": intensity}
            if regional:
                entry["generationmix"] = [{"fuel": "gas", "perc": 30.0}]
            entries.append(entry)
        if entries:
            key = "actual" if "actual" in entries[0]["intensity"] and \
                entries[0]["intensity"]["actual"] is not None else "forecast"
            entries[0]["intensity"][key] = self._value(entries[0]["intensity"][key])
            if self.fault == "missing-field":
                del entries[1]["intensity"]
        return entries

    async def uk(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        fault = await self._common_fault()
        if fault is not None:
            return fault
        start = parse_iso(request.match_info["start"])
        window = request.match_info["window"]
        return self._json({"data": self._uk_slots(start, window, False)})

    async def uk_regional(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        fault = await self._common_fault()
        if fault is not None:
            return fault
        start = parse_iso(request.match_info["start"])
        region = int(request.match_info["region"])
        return self._json({"data": {"regionid": region, "dnoregion": "UKPN London",
                                    "shortname": "London",
                                    "data": self._uk_slots(start, request.match_info["window"],
                                                           True)}})

    # -- ENTSO-E A75 ------------------------------------------------------------------------
    async def entsoe(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        query = request.query
        if query.get("securityToken") != TOKEN:
            return web.Response(status=401, text="Unauthorized")
        assert query["documentType"] == "A75" and query["processType"] == "A16"
        fault = await self._common_fault()
        if fault is not None:
            return fault
        if self.fault == "ack":
            return web.Response(text=ACK, content_type="text/xml")
        start = int(dt.datetime.strptime(query["periodStart"], "%Y%m%d%H%M")
                    .replace(tzinfo=UTC).timestamp())
        published = self.now // 3600 * 3600       # data up to the last full hour
        series = [("B05", 100.0, 3600, False, 0), ("B14", 100.0, 3600, False, 0),
                  ("B19", 300.0, 900, False, self.wind_lag_s),
                  ("B10", 50.0, 3600, False, 0), ("B10", 80.0, 3600, True, 0)]
        return web.Response(text=gl_document(start, published, series, self),
                            content_type="text/xml")

    # -- Electricity Maps --------------------------------------------------------------------
    async def emaps(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        if request.headers.get("auth-token") != TOKEN:
            return web.json_response({"message": "Invalid auth-token"}, status=401)
        fault = await self._common_fault()
        if fault is not None:
            return fault
        zone = request.query["zone"]
        hour = self.now // 3600 * 3600
        endpoint = request.match_info["endpoint"]

        def entry(t, value):
            item = {"zone": zone, "carbonIntensity": value,
                    "datetime": iso(t, "%Y-%m-%dT%H:%M:%S.000Z"),
                    "updatedAt": iso(self.now, "%Y-%m-%dT%H:%M:%S.000Z"),
                    "emissionFactorType": "lifecycle", "isEstimated": False}
            if self.fault == "missing-field" and endpoint == "history" and t == hour - 3600:
                del item["carbonIntensity"]
            if self.fault == "null-hour" and endpoint == "history" and t == hour - 3600:
                item["carbonIntensity"] = None       # the API has no value for that hour
            return item

        if endpoint == "forecast" and self.fault == "free-tier":
            return web.json_response({"message": "Your plan does not include this endpoint"},
                                     status=403)

        if endpoint == "latest":
            return self._json(entry(hour, self._value(250)))
        if endpoint == "history":
            return self._json({"zone": zone, "history": [
                entry(t, 200) for t in range(hour - 24 * 3600, hour, 3600)]})
        if endpoint == "forecast":
            return self._json({"zone": zone, "forecast": [
                {"carbonIntensity": 300, "datetime": iso(t, "%Y-%m-%dT%H:%M:%S.000Z")}
                for t in range(hour, hour + 24 * 3600, 3600)],
                "updatedAt": iso(self.now, "%Y-%m-%dT%H:%M:%S.000Z")})
        return web.Response(status=404)

    # -- a file at a URL ----------------------------------------------------------------------
    async def csv_file(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        fault = await self._common_fault()
        if fault is not None:
            return fault
        hour = self.now // 3600 * 3600
        rows = ["start,g_per_kwh"]
        for i, t in enumerate(range(hour - 6 * 3600, hour + 24 * 3600, 3600)):
            value = self._value(120) if i == 0 else 120 + i
            if self.fault == "missing-field" and i == 1:
                value = ""
            rows.append(f"{iso(t, '%Y-%m-%dT%H:%M:%S+00:00')},{value}")
        return web.Response(text="\n".join(rows) + "\n", content_type="text/csv")


ACK = """<?xml version="1.0" encoding="UTF-8"?>
<Acknowledgement_MarketDocument xmlns="urn:iec62325.351:tc57wg16:451-1:acknowledgementdocument:7:0">
  <mRID>x</mRID><Reason><code>999</code><text>No matching data found</text></Reason>
</Acknowledgement_MarketDocument>"""


def gl_document(start: int, end: int, series, provider: FakeProvider) -> str:
    """A GL_MarketDocument with one TimeSeries per (psr, MW, resolution, consumption, lag)."""
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<GL_MarketDocument xmlns="urn:iec62325.'
             '351:tc57wg16:451-6:generationloaddocument:3:0"><mRID>d</mRID>'
             '<type>A75</type><process.processType>A16</process.processType>']
    for number, (psr, mw, step, consumption, lag) in enumerate(series, start=1):
        stop = end - lag
        domain = "outBiddingZone_Domain.mRID" if consumption else "inBiddingZone_Domain.mRID"
        points = []
        for position in range(1, (stop - start) // step + 1):
            quantity = mw
            text = f"<quantity>{quantity:g}</quantity>"
            if number == 1 and position == 2:
                if provider.fault == "nan":
                    text = "<quantity>NaN</quantity>"
                elif provider.fault == "negative":
                    text = "<quantity>-5</quantity>"
                elif provider.fault == "missing-field":
                    text = ""
            points.append(f"<Point><position>{position}</position>{text}</Point>")
        resolution = {900: "PT15M", 3600: "PT60M"}[step]
        parts.append(
            f"<TimeSeries><mRID>{number}</mRID><businessType>A01</businessType>"
            f"<objectAggregation>A08</objectAggregation>"
            f'<{domain} codingScheme="A01">10Y1001A1001A82H</{domain}>'
            f"<quantity_Measure_Unit.name>MAW</quantity_Measure_Unit.name>"
            f"<curveType>A01</curveType><MktPSRType><psrType>{psr}</psrType></MktPSRType>"
            f"<Period><timeInterval><start>{iso(start)}</start><end>{iso(stop)}</end>"
            f"</timeInterval><resolution>{resolution}</resolution>{''.join(points)}</Period>"
            f"</TimeSeries>")
    parts.append("</GL_MarketDocument>")
    return "".join(parts)


@asynccontextmanager
async def serving(provider: FakeProvider):
    app = web.Application()
    app.router.add_get("/intensity/{start}/{window}", provider.uk)
    app.router.add_get("/regional/intensity/{start}/{window}/regionid/{region}",
                       provider.uk_regional)
    app.router.add_get("/api", provider.entsoe)
    app.router.add_get("/v3/carbon-intensity/{endpoint}", provider.emaps)
    app.router.add_get("/carbon.csv", provider.csv_file)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def make(name: str, url: str, tmp_path=None, **config):
    cache = (tmp_path / f"carbon-{name}.json") if tmp_path else None
    options = {"refresh": REFRESH, "timeout_s": 0.5, "cache_path": cache}
    if name == "uk":
        return UkCarbonIntensity(UkCarbonConfig(url=url, **config), **options)
    if name == "entsoe":
        config.setdefault("token", TOKEN)
        return EntsoeGeneration(EntsoeGenerationConfig(url=f"{url}/api", **config), **options)
    if name == "emaps":
        config.setdefault("token", TOKEN)
        return ElectricityMaps(ElectricityMapsConfig(url=url, **config), **options)
    if name == "file":
        return CarbonFile(CarbonFileConfig(location=f"{url}/carbon.csv", **config), **options)
    raise AssertionError(name)


# ---- good answers -------------------------------------------------------------------------

async def test_uk_national_actuals_then_forecast_in_half_hours():
    provider = FakeProvider()
    async with serving(provider) as url:
        series = await make("uk", url).intensity(NOW)
    now_slot = NOW // HALF * HALF
    assert provider.requests == [f"/intensity/{iso(now_slot)}/fw48h",
                                 f"/intensity/{iso(now_slot)}/pt24h"]
    assert series.unit == "g/kWh" and set(series.duration_s) == {HALF}
    assert series.start_s[0] == now_slot - 24 * 3600
    assert series.end_s == now_slot + 48 * 3600 and series.covered_until_s(NOW) == series.end_s
    assert series.intensity_at(NOW - 3 * 3600) == 100          # measured: the actual
    assert series.intensity_at(NOW) == 200                     # not measured yet: forecast
    assert series.intensity_at(NOW + 40 * 3600) == 200
    grid = series.on_grid(now_slot, 24 * 3600)
    assert grid.missing == 0 and grid.g_per_kwh.size == 96 and grid.unit == "g/kWh"


async def test_uk_regional_forecast():
    provider = FakeProvider()
    async with serving(provider) as url:
        series = await make("uk", url, region_id=13).intensity(NOW)
    assert provider.requests[0].endswith("/fw48h/regionid/13")
    assert provider.requests[1].endswith("/pt24h/regionid/13")
    assert series.intensity_at(NOW - 3 * 3600) == 150          # regional: forecasts only
    assert series.intensity_at(NOW + 3600) == 200


async def test_entsoe_mix_becomes_intensity_storage_and_consumption_left_out():
    """Hand-computed: 100 MW hard coal (820) + 300 MW onshore wind (11) + 100 MW nuclear (12),
    pumped storage (50 MW generating, 80 MW pumping) left out:
    (100*820 + 300*11 + 100*12) / 500 = 86500 / 500 = 173.0 g/kWh."""
    provider = FakeProvider()
    async with serving(provider) as url:
        source = make("entsoe", url)
        series = await source.intensity(NOW)
    query = provider.requests[0]
    assert "documentType=A75" in query and "processType=A16" in query
    assert "in_Domain=10Y1001A1001A82H" in query and "periodEnd=202606011300" in query
    assert set(series.duration_s) == {900}
    np.testing.assert_allclose(series.g_per_kwh, 173.0)
    assert series.end_s == NOW // 3600 * 3600                  # history only, no forecast
    assert series.start_s[0] == NOW // 3600 * 3600 + 3600 - 25 * 3600


async def test_entsoe_leaves_out_slots_where_part_of_the_mix_is_not_published():
    provider = FakeProvider()
    provider.wind_lag_s = 3600       # the last hour of wind is not there yet
    async with serving(provider) as url:
        series = await make("entsoe", url).intensity(NOW)
    assert series.end_s == NOW // 3600 * 3600 - 3600          # not a coal-heavy partial mix
    np.testing.assert_allclose(series.g_per_kwh, 173.0)


async def test_entsoe_acknowledgement_is_no_data():
    provider = FakeProvider()
    provider.fault = "ack"
    async with serving(provider) as url:
        with pytest.raises(CarbonError, match="no data: No matching data found"):
            await make("entsoe", url).refresh()


async def test_electricity_maps_history_latest_and_forecast():
    provider = FakeProvider()
    async with serving(provider) as url:
        series = await make("emaps", url, zone="FR").intensity(NOW)
    paths = sorted(provider.requests)
    assert paths == ["/v3/carbon-intensity/forecast?zone=FR",
                     "/v3/carbon-intensity/history?zone=FR",
                     "/v3/carbon-intensity/latest?zone=FR"]
    hour = NOW // 3600 * 3600
    assert set(series.duration_s) == {3600}
    assert series.intensity_at(hour - 5 * 3600) == 200          # history
    assert series.intensity_at(NOW) == 250                      # latest beats the forecast
    assert series.intensity_at(hour + 5 * 3600) == 300          # forecast
    assert series.start_s[0] == hour - 24 * 3600 and series.end_s == hour + 24 * 3600


async def test_electricity_maps_without_forecast_and_with_a_wrong_token():
    provider = FakeProvider()
    async with serving(provider) as url:
        series = await make("emaps", url, forecast=False).intensity(NOW)
        assert not any("forecast" in path for path in provider.requests)
        assert series.end_s == NOW // 3600 * 3600 + 3600
        with pytest.raises(CarbonAuthError, match="check the API token"):
            await make("emaps", url, token="wrong").refresh()


async def test_electricity_maps_skips_an_hour_without_a_value():
    provider = FakeProvider()
    provider.fault = "null-hour"
    async with serving(provider) as url:
        series = await make("emaps", url, forecast=False).intensity(NOW)
    hour = NOW // 3600 * 3600
    assert series.intensity_at(hour - 2 * 3600) == 200
    assert series.intensity_at(hour - 3600 + 60) is None    # that hour is left out
    assert len(series) == 24                     # 23 history hours and the latest


async def test_electricity_maps_free_tier_without_forecast_still_gives_the_past_and_says_so(
        caplog):
    provider = FakeProvider()
    provider.fault = "free-tier"
    async with serving(provider) as url:
        source = make("emaps", url)
        with caplog.at_level("WARNING"):
            series = await source.intensity(NOW)
            await source.refresh()
    hour = NOW // 3600 * 3600
    assert series.intensity_at(hour - 5 * 3600) == 200 and series.intensity_at(NOW) == 250
    assert series.end_s == hour + 3600                          # no forecast
    warnings = [r.getMessage() for r in caplog.records if "forecast not available" in r.message]
    assert len(warnings) == 1                                   # said once, not every refresh
    assert "HTTP 403" in warnings[0] and "forecast: false" in warnings[0]


async def test_file_at_a_url():
    provider = FakeProvider()
    async with serving(provider) as url:
        series = await make("file", url).intensity(NOW)
    hour = NOW // 3600 * 3600
    assert len(series) == 30 and series.intensity_at(hour) == 126


# ---- failures: a specific error, the last good data kept -------------------------------------

FAILURES = [
    ("uk", "500", CarbonError, "HTTP 500"),
    ("uk", "429", CarbonRateLimited, "rate limited"),
    ("uk", "slow", CarbonError, "no answer within 0.5 s"),
    ("uk", "garbage", CarbonError, "not JSON"),
    ("uk", "missing-field", CarbonError, "lacks from, to or intensity"),
    ("uk", "nan", CarbonError, "not a finite number"),
    ("uk", "negative", CarbonError, "negative carbon intensity -5"),
    ("entsoe", "500", CarbonError, "HTTP 500"),
    ("entsoe", "slow", CarbonError, "no answer within 0.5 s"),
    ("entsoe", "garbage", CarbonError, "unexpected document <html>"),
    ("entsoe", "missing-field", CarbonError, "Point lacks <quantity>"),
    ("entsoe", "nan", CarbonError, "not a finite number"),
    ("entsoe", "negative", CarbonError, "negative generation -5 MW for B05"),
    ("emaps", "429", CarbonRateLimited, "rate limited"),
    ("emaps", "garbage", CarbonError, "not JSON"),
    ("emaps", "missing-field", CarbonError, "lacks datetime or carbonIntensity"),
    ("emaps", "nan", CarbonError, "not a finite number"),
    ("emaps", "negative", CarbonError, "negative carbon intensity -5"),
    ("file", "500", CarbonError, "HTTP 500"),
    ("file", "garbage", CarbonError, "CSV needs a header"),
    ("file", "missing-field", CarbonError, "row 2 has no 'g_per_kwh'"),
    ("file", "nan", CarbonError, "not a finite number"),
    ("file", "negative", CarbonError, "negative carbon intensity -5"),
]


@pytest.mark.parametrize("name, fault, error, message", FAILURES)
async def test_a_bad_answer_is_refused_and_the_last_good_data_stay(name, fault, error, message,
                                                                   caplog):
    provider = FakeProvider()
    async with serving(provider) as url:
        source = make(name, url)
        good = await source.intensity(NOW)
        assert len(good) and np.all(np.isfinite(good.g_per_kwh))
        provider.fault = fault
        later = NOW + 1800
        provider.now = later
        with caplog.at_level(logging.ERROR):
            with pytest.raises(error, match=message):
                await source._refresh_at(later)
        assert "keeping the last good data" in caplog.text
        # intensity() swallows the next failure and serves the old data unchanged
        retry = source.next_refresh_s(later)
        served = await source.intensity(retry)
        np.testing.assert_array_equal(served.start_s, good.start_s)
        np.testing.assert_array_equal(served.g_per_kwh, good.g_per_kwh)
        status = source.status(retry)
        assert status.failures == 2 and message.split()[0] in status.last_error


@pytest.mark.parametrize("name", ["uk", "entsoe", "emaps", "file"])
async def test_a_server_that_goes_away_leaves_the_cache_serving(name, tmp_path):
    provider = FakeProvider()
    async with serving(provider) as url:
        first = await make(name, url, tmp_path).intensity(NOW)
    assert (tmp_path / f"carbon-{name}.json").exists()
    restarted = make(name, url, tmp_path)          # the port is closed now
    assert np.array_equal(restarted.series.g_per_kwh, first.g_per_kwh)
    with pytest.raises(CarbonError, match="connection failed"):
        await restarted._refresh_at(NOW + 1800)
    served = await restarted.intensity(NOW + 3600)
    np.testing.assert_array_equal(served.start_s, first.start_s)
    np.testing.assert_array_equal(served.g_per_kwh, first.g_per_kwh)
    assert restarted.status(NOW + 3600).failures >= 1


async def test_refresh_interval_back_off_and_retry_after():
    provider = FakeProvider()
    async with serving(provider) as url:
        source = make("uk", url)
        await source.intensity(NOW)
        assert source.next_refresh_s(NOW) == NOW + 1800
        count = len(provider.requests)
        await source.intensity(NOW + 1799)                 # not due: no request
        assert len(provider.requests) == count
        provider.fault = "500"
        now, waits = NOW + 1800, []
        for _ in range(4):
            await source.intensity(now)
            due = source.next_refresh_s(now)
            waits.append(due - now)
            now = due
        assert waits == [60, 120, 240, 480]
        provider.fault = "429"
        await source.intensity(now)
        assert source.next_refresh_s(now) == now + 1800    # Retry-After beats 960 s
        provider.fault = None
        await source.intensity(now + 1800)
        assert source.status(now + 1800).failures == 0


async def test_a_cache_written_for_other_settings_is_ignored(tmp_path):
    provider = FakeProvider()
    async with serving(provider) as url:
        await make("emaps", url, tmp_path, zone="FR").intensity(NOW)
    assert len(make("emaps", url, tmp_path, zone="DE").series) == 0
    (tmp_path / "carbon-emaps.json").write_text('{"version": 1, "config_key": "x", "series": 1')
    assert len(make("emaps", url, tmp_path, zone="FR").series) == 0   # corrupt: ignored
