"""TibberTariff against a local aiohttp server speaking Tibber's GraphQL API."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import socket
from contextlib import asynccontextmanager
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from aiohttp import web

from phaeton.clock import ScaledClock
from phaeton.planning.tariffs import (ExportFormula, ImportFormula, RefreshPolicy, TariffAuthError,
                                      TariffError, TariffRateLimited, TibberConfig, TibberTariff)
from phaeton.planning.tariffs.schedule import local_day_bounds_s

BERLIN = ZoneInfo("Europe/Berlin")
TOKEN = "tibber-test-token"
POLICY = RefreshPolicy(publish_time="13:00", publish_tz="Europe/Berlin", poll_s=600,
                       backoff_base_s=60, backoff_max_s=3600)


def at(*args) -> int:
    return int(dt.datetime(*args, tzinfo=BERLIN).timestamp())


def price_entries(day: dt.date, slot_s: int) -> list[dict]:
    """A local day's entries like Tibber sends them: local ISO times with offset."""
    start, end = local_day_bounds_s(at(day.year, day.month, day.day, 12), BERLIN)
    entries = []
    for i, t in enumerate(range(start, end, slot_s)):
        energy = round(0.08 + 0.01 * (i % 12), 4)
        tax = 0.2
        entries.append({
            "total": round(energy + tax, 4), "energy": energy, "tax": tax,
            "startsAt": dt.datetime.fromtimestamp(t, BERLIN).isoformat(timespec="milliseconds"),
        })
    return entries


class FakeTibber:
    """Answers POST /gql like Tibber: Bearer token, GraphQL query, priceInfo today/tomorrow.

    `today`/`tomorrow` are dates (tomorrow None = not published yet). `fault` makes the next
    answers fail in a chosen way.
    """

    def __init__(self, today: dt.date, tomorrow: dt.date | None):
        self.today = today
        self.tomorrow = tomorrow
        self.fault: str | None = None
        self.requests: list[str] = []
        self.home_ids = ["home-a", "home-b"]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body["query"])
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"errors": [{"message": "invalid token"}]}, status=401)
        fault = self.fault
        if fault == "500":
            return web.Response(status=500, text="internal error")
        if fault == "429":
            return web.Response(status=429, text="slow down", headers={"Retry-After": "1800"})
        if fault == "slow":
            await asyncio.sleep(2.0)
        if fault == "not-json":
            return web.Response(text="<html>maintenance</html>", content_type="text/html")
        if fault == "graphql-error":
            return web.json_response({"errors": [{"message": "Query too complex"}]})
        quarter = "QUARTER_HOURLY" in body["query"]
        slot_s = 900 if quarter else 3600
        today = price_entries(self.today, slot_s)
        tomorrow = price_entries(self.tomorrow, slot_s) if self.tomorrow else []
        if fault == "missing-field":
            for entry in today:
                del entry["total"]
        if fault == "null-price":
            today[3]["total"] = None
        if fault == "nan":
            text = json.dumps(self._answer(today, tomorrow)).replace('"total": 0.29', '"total": NaN')
            return web.Response(text=text, content_type="application/json")
        if fault == "cents":
            for entry in today + tomorrow:
                entry["total"] *= 100
        return web.json_response(self._answer(today, tomorrow))

    def _answer(self, today, tomorrow):
        homes = [{"id": self.home_ids[0], "currentSubscription": None}]
        for home_id in self.home_ids[1:]:
            homes.append({"id": home_id, "currentSubscription": {
                "priceInfo": {"today": today, "tomorrow": tomorrow}}})
        return {"data": {"viewer": {"homes": homes}}}


@asynccontextmanager
async def serving(provider: FakeTibber):
    app = web.Application()
    app.router.add_post("/v1-beta/gql", provider.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/v1-beta/gql"
    finally:
        await runner.cleanup()


def tariff(url, tmp_path=None, **config):
    config.setdefault("token", TOKEN)
    return TibberTariff(TibberConfig(url=url, **config), policy=POLICY, timeout_s=0.5,
                        cache_path=(tmp_path / "tibber.json") if tmp_path else None)


JUNE_1 = dt.date(2026, 6, 1)
JUNE_2 = dt.date(2026, 6, 2)


async def test_hourly_prices_today_and_tomorrow_with_formulas():
    provider = FakeTibber(JUNE_1, JUNE_2)
    async with serving(provider) as url:
        t = tariff(url, export_formula=ExportFormula(factor=1.0, adder_eur_per_kwh=-0.01))
        now = at(2026, 6, 1, 14, 0)
        series = await t.prices(now)
    assert len(series) == 48 and set(series.duration_s) == {3600}
    assert series.start_s[0] == at(2026, 6, 1, 0, 0)
    assert "resolution" not in provider.requests[0]
    # import is Tibber's total incl. tax; export is energy + adder
    np.testing.assert_allclose(series.import_eur_per_kwh[:2], [0.28, 0.29])
    np.testing.assert_allclose(series.export_eur_per_kwh[:2], [0.07, 0.08])
    grid = series.on_grid(at(2026, 6, 1, 0, 0), 48 * 3600)
    assert grid.missing == 0 and grid.import_eur_per_kwh.size == 192
    assert series.source == "tibber" and series.fetched_at_s == now


async def test_quarter_hourly_resolution_and_home_selection():
    provider = FakeTibber(JUNE_1, JUNE_2)
    async with serving(provider) as url:
        series = await tariff(url, resolution="QUARTER_HOURLY", home_id="home-b").prices(
            at(2026, 6, 1, 14, 0))
        assert "priceInfo(resolution: QUARTER_HOURLY)" in provider.requests[0]
        assert len(series) == 192 and set(series.duration_s) == {900}
        # a home without subscription is an error a user can act on
        t = tariff(url, home_id="home-a")
        with pytest.raises(TariffError, match="no current subscription"):
            await t._refresh_at(at(2026, 6, 1, 14, 0))
        with pytest.raises(TariffError, match="no home with id 'home-x'"):
            await tariff(url, home_id="home-x")._refresh_at(at(2026, 6, 1, 14, 0))


async def test_tomorrow_missing_then_appearing_is_polled():
    provider = FakeTibber(JUNE_1, None)
    async with serving(provider) as url:
        t = tariff(url)
        morning = at(2026, 6, 1, 9, 0)
        series = await t.prices(morning)
        assert len(series) == 24 and len(provider.requests) == 1
        # before 13:00 nothing more is needed: no further requests
        await t.prices(morning + 3600)
        assert len(provider.requests) == 1
        assert t.next_refresh_s(morning) == at(2026, 6, 1, 13, 0)
        # 13:00: tomorrow due, not there yet → fetch, then poll every 600 s
        one_pm = at(2026, 6, 1, 13, 0)
        assert len(await t.prices(one_pm)) == 24 and len(provider.requests) == 2
        await t.prices(one_pm + 300)
        assert len(provider.requests) == 2
        provider.tomorrow = JUNE_2
        series = await t.prices(one_pm + 600)
        assert len(provider.requests) == 3 and len(series) == 48
        assert series.covered_until_s(one_pm) == at(2026, 6, 3, 0, 0)
        # complete: quiet until tomorrow's publication
        assert t.next_refresh_s(one_pm + 700) == at(2026, 6, 2, 13, 0)


@pytest.mark.parametrize("fault, error, message", [
    ("500", TariffError, "HTTP 500"),
    ("429", TariffRateLimited, "rate limited"),
    ("slow", TariffError, "no answer within 0.5 s"),
    ("not-json", TariffError, "not JSON"),
    ("graphql-error", TariffError, "Query too complex"),
    ("missing-field", TariffError, "bad price entry"),
    ("null-price", TariffError, "bad price entry"),
    ("nan", TariffError, "not numbers"),
    ("cents", TariffError, "wrong unit"),
])
async def test_failures_keep_the_last_good_prices(fault, error, message, caplog):
    provider = FakeTibber(JUNE_1, JUNE_2)
    async with serving(provider) as url:
        t = tariff(url)
        now = at(2026, 6, 1, 14, 0)
        good = await t.prices(now)
        assert len(good) == 48
        # next day: a fetch is due, the provider has new prices but the answer goes wrong
        provider.fault = fault
        provider.today, provider.tomorrow = JUNE_2, dt.date(2026, 6, 3)
        next_day = at(2026, 6, 2, 14, 0)
        with caplog.at_level(logging.ERROR):
            with pytest.raises(error, match=message):
                await t._refresh_at(next_day)
        assert message.split()[0] in caplog.text
        # prices() swallows the next failure and serves the old prices unchanged
        next_day = t.next_refresh_s(next_day)
        served = await t.prices(next_day)
        np.testing.assert_array_equal(served.start_s, good.start_s)
        np.testing.assert_array_equal(served.import_eur_per_kwh, good.import_eur_per_kwh)
        status = t.status(next_day)
        assert status.failures == 2 and message.split()[0] in status.last_error


async def test_bad_token_is_reported_as_auth_error():
    provider = FakeTibber(JUNE_1, JUNE_2)
    async with serving(provider) as url:
        t = TibberTariff(TibberConfig(token="wrong", url=url), policy=POLICY,
                         clock=ScaledClock(start=at(2026, 6, 1, 14, 0)))
        with pytest.raises(TariffAuthError, match="check the API token"):
            await t.refresh()
        assert len(await t.prices(at(2026, 6, 1, 14, 1))) == 0


async def test_back_off_doubles_and_honours_retry_after():
    provider = FakeTibber(JUNE_1, JUNE_2)
    provider.fault = "500"
    async with serving(provider) as url:
        t = tariff(url)
        now = at(2026, 6, 1, 14, 0)
        waits = []
        for _ in range(4):
            await t.prices(now)
            due = t.next_refresh_s(now)
            waits.append(due - now)
            # asking again before the back-off ends does not hit the server
            count = len(provider.requests)
            await t.prices(due - 1)
            assert len(provider.requests) == count
            now = due
        assert waits == [60, 120, 240, 480]
        provider.fault = "429"
        await t.prices(now)
        assert t.next_refresh_s(now) == now + 1800  # Retry-After beats the 960 s back-off
        provider.fault = None
        assert len(await t.prices(now + 1800)) == 48
        assert t.status(now + 1800).failures == 0


async def test_cache_survives_restart_and_serves_offline(tmp_path, caplog):
    provider = FakeTibber(JUNE_1, JUNE_2)
    now = at(2026, 6, 1, 14, 0)
    async with serving(provider) as url:
        first = await tariff(url, tmp_path).prices(now)
    assert (tmp_path / "tibber.json").exists()
    # the server is gone (port closed): a restarted tariff serves the cache
    restarted = tariff(url, tmp_path)
    assert restarted.next_refresh_s(now + 60) == at(2026, 6, 2, 13, 0)
    offline = await restarted.prices(now + 60)
    np.testing.assert_array_equal(offline.import_eur_per_kwh, first.import_eur_per_kwh)
    # on the next day it tries, fails (logged) and still serves what it has
    next_day = at(2026, 6, 2, 14, 0)
    with caplog.at_level(logging.ERROR):
        served = await restarted.prices(next_day)
    assert "connection failed" in caplog.text
    assert served.price_at(next_day) is not None
    # other formula settings: the cache is not trusted
    changed = tariff(url, tmp_path, import_formula=ImportFormula(adder_eur_per_kwh=0.1))
    assert len(changed.series) == 0


async def test_corrupt_cache_is_ignored(tmp_path, caplog):
    (tmp_path / "tibber.json").write_text("{not json")
    provider = FakeTibber(JUNE_1, JUNE_2)
    async with serving(provider) as url:
        with caplog.at_level(logging.ERROR):
            series = await tariff(url, tmp_path).prices(at(2026, 6, 1, 14, 0))
    assert "corrupt" in caplog.text and len(series) == 48
    assert json.loads((tmp_path / "tibber.json").read_text())["version"] == 1


@pytest.mark.parametrize("day, hours", [(dt.date(2026, 3, 29), 23), (dt.date(2026, 10, 25), 25)])
@pytest.mark.parametrize("resolution, slot_s", [("HOURLY", 3600), ("QUARTER_HOURLY", 900)])
async def test_dst_days(day, hours, resolution, slot_s):
    provider = FakeTibber(day, None)
    async with serving(provider) as url:
        series = await tariff(url, resolution=resolution).prices(
            at(day.year, day.month, day.day, 9, 0))
    assert len(series) == hours * 3600 // slot_s
    start, end = local_day_bounds_s(series.start_s[0] + 1, BERLIN)
    assert series.end_s == end and series.start_s[0] == start
    assert series.on_grid(start, end - start).missing == 0


def test_config_errors():
    with pytest.raises(ValueError, match="token"):
        TibberConfig(token="")
    with pytest.raises(ValueError, match="resolution"):
        TibberConfig(token="x", resolution="DAILY")
    with pytest.raises(ValueError, match="http"):
        TibberConfig(token="x", url="ftp://example")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_unreachable_server_is_a_clear_error():
    t = tariff(f"http://127.0.0.1:{free_port()}/gql")
    with pytest.raises(TariffError, match="connection failed"):
        await t._refresh_at(at(2026, 6, 1, 14, 0))


async def test_callers_arriving_together_share_one_fetch():
    provider = FakeTibber(JUNE_1, JUNE_2)
    async with serving(provider) as url:
        t = tariff(url)
        now = at(2026, 6, 1, 14, 0)
        results = await asyncio.gather(*(t.prices(now) for _ in range(5)))
    assert len(provider.requests) == 1
    assert [len(series) for series in results] == [48] * 5
