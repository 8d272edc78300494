"""EntsoeTariff against a local aiohttp server speaking the ENTSO-E A44 REST API."""
from __future__ import annotations

import datetime as dt
import logging
from contextlib import asynccontextmanager
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from aiohttp import web

from phaeton.planning.tariffs import (EntsoeConfig, EntsoeTariff, ExportFormula, ImportFormula,
                                      PriceDataError, RefreshPolicy, TariffAuthError,
                                      TariffError)
from phaeton.planning.tariffs.entsoe import parse_entsoe_spot
from phaeton.planning.tariffs.schedule import local_day_bounds_s

BERLIN = ZoneInfo("Europe/Berlin")
TOKEN = "entsoe-test-token"
AREA = "10Y1001A1001A82H"
NS = "urn:iec62325.351:tc57wg16:451-3:publicationdocument:7:3"
POLICY = RefreshPolicy(publish_time="13:00", publish_tz="Europe/Berlin", poll_s=900,
                       backoff_base_s=60, backoff_max_s=3600)


def at(*args) -> int:
    return int(dt.datetime(*args, tzinfo=BERLIN).timestamp())


def iso(t: int) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


def spot_eur_per_mwh(t: int) -> float:
    """A deterministic price shape with plateaus (so A03 compression drops points)."""
    hour = dt.datetime.fromtimestamp(t, BERLIN).hour
    return [85.0, 70.5, 60.0, -5.25][(hour // 3) % 4] + hour // 3


def publication(days: list[dt.date], step_s: int, *, unit="MWH", garbage=None) -> str:
    series = []
    for number, day in enumerate(days, start=1):
        start, end = local_day_bounds_s(at(day.year, day.month, day.day, 12), BERLIN)
        points, previous = [], None
        for position, t in enumerate(range(start, end, step_s), start=1):
            price = spot_eur_per_mwh(t)
            if price == previous and position > 1:
                continue  # A03: unchanged prices are left out
            amount = "NaN" if garbage == "nan" and position == 1 else f"{price:g}"
            points.append(f"<Point><position>{position}</position>"
                          f"<price.amount>{amount}</price.amount></Point>")
            previous = price
        resolution = {900: "PT15M", 3600: "PT60M"}[step_s]
        series.append(f"""<TimeSeries><mRID>{number}</mRID><businessType>A62</businessType>
  <in_Domain.mRID codingScheme="A01">{AREA}</in_Domain.mRID>
  <out_Domain.mRID codingScheme="A01">{AREA}</out_Domain.mRID>
  <currency_Unit.name>EUR</currency_Unit.name>
  <price_Measure_Unit.name>{unit}</price_Measure_Unit.name>
  <curveType>A03</curveType>
  <Period><timeInterval><start>{iso(start)}</start><end>{iso(end)}</end></timeInterval>
  <resolution>{resolution}</resolution>{''.join(points)}</Period></TimeSeries>""")
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<Publication_MarketDocument xmlns="{NS}">'
            f"<mRID>test</mRID><type>A44</type>{''.join(series)}</Publication_MarketDocument>")


ACK = """<?xml version="1.0" encoding="utf-8"?>
<Acknowledgement_MarketDocument xmlns="urn:iec62325.351:tc57wg16:451-1:acknowledgementdocument:7:0">
<mRID>x</mRID><Reason><code>999</code><text>No matching data found for Data item Day-ahead Prices</text></Reason>
</Acknowledgement_MarketDocument>"""


class FakeEntsoe:
    """GET /api?securityToken=..&documentType=A44&in_Domain=..&periodStart=..&periodEnd=..

    Serves the local days in `published` that fall in the requested period.
    """

    def __init__(self, published: list[dt.date], step_s: int = 3600):
        self.published = published
        self.step_s = step_s
        self.fault: str | None = None
        self.queries: list[dict] = []

    async def handle(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.queries.append(query)
        if query.get("securityToken") != TOKEN:
            return web.Response(status=401, text="Unauthorized")
        if query.get("documentType") != "A44" or query.get("in_Domain") != AREA:
            return web.Response(status=400, text="bad query")
        if self.fault == "500":
            return web.Response(status=500, text="server error")
        if self.fault == "not-xml":
            return web.Response(text='{"oops": true}')
        if self.fault == "truncated":
            return web.Response(text=publication(self.published, self.step_s)[:300],
                                content_type="application/xml")
        start = dt.datetime.strptime(query["periodStart"], "%Y%m%d%H%M").replace(
            tzinfo=dt.timezone.utc).timestamp()
        end = dt.datetime.strptime(query["periodEnd"], "%Y%m%d%H%M").replace(
            tzinfo=dt.timezone.utc).timestamp()
        days = [d for d in self.published
                if start <= at(d.year, d.month, d.day, 12) < end]
        if not days:
            return web.Response(text=ACK, content_type="application/xml")
        unit = "KWH" if self.fault == "unit" else "MWH"
        return web.Response(text=publication(days, self.step_s, unit=unit, garbage=self.fault),
                            content_type="application/xml")


@asynccontextmanager
async def serving(provider: FakeEntsoe):
    app = web.Application()
    app.router.add_get("/api", provider.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/api"
    finally:
        await runner.cleanup()


def tariff(url, token=TOKEN, tmp_path=None, **config):
    return EntsoeTariff(EntsoeConfig(token=token, area=AREA, url=url, **config), policy=POLICY,
                        timeout_s=2.0,
                        cache_path=(tmp_path / "entsoe.json") if tmp_path else None)


JUNE_1, JUNE_2 = dt.date(2026, 6, 1), dt.date(2026, 6, 2)


async def test_hourly_a03_prices_with_formulas_and_query():
    provider = FakeEntsoe([JUNE_1, JUNE_2])
    async with serving(provider) as url:
        t = tariff(url, import_formula=ImportFormula(1.0, 0.15, 19),
                   export_formula=ExportFormula(factor=1.0))
        now = at(2026, 6, 1, 14, 0)
        series = await t.prices(now)
    assert publication([JUNE_1], 3600).count("<Point>") == 8  # 3-hour plateaus
    query = provider.queries[0]
    assert query["periodStart"] == "202605312200" and query["periodEnd"] == "202606022200"
    assert query["out_Domain"] == AREA
    assert len(series) == 48 and set(series.duration_s) == {3600}
    # every hour has its price, including those A03 left out (repeat the previous one)
    spot = np.array([spot_eur_per_mwh(int(t)) for t in series.start_s]) / 1000
    np.testing.assert_allclose(series.export_eur_per_kwh, spot)
    np.testing.assert_allclose(series.import_eur_per_kwh, (spot + 0.15) * 1.19)
    assert series.on_grid(at(2026, 6, 1, 0, 0), 48 * 3600).missing == 0


async def test_quarter_hour_resolution():
    provider = FakeEntsoe([JUNE_1], step_s=900)
    async with serving(provider) as url:
        series = await tariff(url).prices(at(2026, 6, 1, 9, 0))
    assert len(series) == 96 and set(series.duration_s) == {900}
    assert series.price_at(at(2026, 6, 1, 5, 30))[0] == pytest.approx(
        spot_eur_per_mwh(at(2026, 6, 1, 5, 30)) / 1000)


@pytest.mark.parametrize("day, hours", [(dt.date(2026, 3, 29), 23), (dt.date(2026, 10, 25), 25)])
@pytest.mark.parametrize("step_s", [3600, 900])
async def test_dst_days(day, hours, step_s):
    provider = FakeEntsoe([day], step_s=step_s)
    async with serving(provider) as url:
        series = await tariff(url).prices(at(day.year, day.month, day.day, 9, 0))
    assert len(series) == hours * 3600 // step_s
    start, end = local_day_bounds_s(at(day.year, day.month, day.day, 12), BERLIN)
    grid = series.on_grid(start, end - start)
    assert grid.import_eur_per_kwh.size == hours * 4 and grid.missing == 0


async def test_tomorrow_appears_after_polling():
    provider = FakeEntsoe([JUNE_1])
    async with serving(provider) as url:
        t = tariff(url)
        one_pm = at(2026, 6, 1, 13, 0)
        assert len(await t.prices(one_pm)) == 24
        assert t.next_refresh_s(one_pm) == one_pm + 900
        provider.published.append(JUNE_2)
        await t.prices(one_pm + 899)
        assert len(provider.queries) == 1
        series = await t.prices(one_pm + 900)
        assert len(provider.queries) == 2 and len(series) == 48


async def test_finer_publication_wins_over_hourly_for_the_same_hours():
    hourly = publication([JUNE_1], 3600)
    quarter = publication([JUNE_1], 900)
    both = hourly.replace("</Publication_MarketDocument>",
                          quarter.split(f'xmlns="{NS}">', 1)[1].split("<type>A44</type>", 1)[1])
    series = parse_entsoe_spot(both)
    assert len(series) == 96 and set(series.duration_s) == {900}


@pytest.mark.parametrize("fault, message", [
    ("500", "HTTP 500"),
    ("not-xml", "not XML"),
    ("truncated", "not XML"),
    ("nan", "not a number"),
    ("unit", "expected MWH"),
])
async def test_garbage_and_errors_keep_good_prices(fault, message, caplog):
    provider = FakeEntsoe([JUNE_1, JUNE_2])
    async with serving(provider) as url:
        t = tariff(url)
        good = await t.prices(at(2026, 6, 1, 14, 0))
        provider.fault = fault
        provider.published.append(dt.date(2026, 6, 3))
        next_day = at(2026, 6, 2, 14, 0)
        with caplog.at_level(logging.ERROR):
            served = await t.prices(next_day)
    assert message in caplog.text and message in t.status(next_day).last_error
    np.testing.assert_array_equal(served.import_eur_per_kwh, good.import_eur_per_kwh)
    assert t.next_refresh_s(next_day) == next_day + 60


async def test_no_data_acknowledgement_and_bad_token():
    provider = FakeEntsoe([])
    async with serving(provider) as url:
        with pytest.raises(TariffError, match="No matching data found"):
            await tariff(url)._refresh_at(at(2026, 6, 1, 14, 0))
        with pytest.raises(TariffAuthError, match="check the API token"):
            await tariff(url, token="wrong")._refresh_at(at(2026, 6, 1, 14, 0))


async def test_cache_is_used_offline_after_restart(tmp_path):
    provider = FakeEntsoe([JUNE_1, JUNE_2])
    async with serving(provider) as url:
        fetched = await tariff(url, tmp_path=tmp_path).prices(at(2026, 6, 1, 14, 0))
    offline = tariff(url, tmp_path=tmp_path)
    served = await offline.prices(at(2026, 6, 2, 9, 0))
    np.testing.assert_array_equal(served.import_eur_per_kwh, fetched.import_eur_per_kwh)
    assert served.price_at(at(2026, 6, 2, 9, 0)) is not None


def test_parser_rejects_structural_garbage():
    with pytest.raises(PriceDataError, match="unexpected document"):
        parse_entsoe_spot("<Something/>")
    with pytest.raises(PriceDataError, match="no TimeSeries"):
        parse_entsoe_spot(f'<Publication_MarketDocument xmlns="{NS}"/>')
    doc = publication([JUNE_1], 3600)
    with pytest.raises(PriceDataError, match="position 99 outside"):
        parse_entsoe_spot(doc.replace("<position>1</position>", "<position>99</position>"))
    with pytest.raises(PriceDataError, match="resolution"):
        parse_entsoe_spot(doc.replace("PT60M", "P1D"))
    with pytest.raises(PriceDataError, match="expected EUR"):
        parse_entsoe_spot(doc.replace(">EUR<", ">SEK<"))


def test_config_errors():
    with pytest.raises(ValueError, match="EIC"):
        EntsoeConfig(token="x", area="DE")
    with pytest.raises(ValueError, match="token"):
        EntsoeConfig(token=" ")
