"""FileTariff: CSV and JSON from a local file or an http URL served on 127.0.0.1."""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
from contextlib import asynccontextmanager
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from aiohttp import web

from phaeton.planning.tariffs import (ExportFormula, FileTariff, FileTariffConfig, ImportFormula,
                                      PriceDataError, RefreshPolicy, TariffError)
from phaeton.planning.tariffs.file import parse_price_file

BERLIN = ZoneInfo("Europe/Berlin")
POLICY = RefreshPolicy(poll_s=600, backoff_base_s=60, backoff_max_s=600)


def at(*args) -> int:
    return int(dt.datetime(*args, tzinfo=BERLIN).timestamp())


def csv_text(day_start: int, hours: int, price=lambda h: 0.2 + h / 100) -> str:
    rows = ["start,import_eur_per_kwh,export_eur_per_kwh"]
    for h in range(hours):
        start = dt.datetime.fromtimestamp(day_start + 3600 * h, BERLIN).isoformat()
        rows.append(f"{start},{price(h):.4f},0.07")
    return "\n".join(rows) + "\n"


async def test_local_csv_is_read_and_reread_when_it_changes(tmp_path):
    path = tmp_path / "prices.csv"
    day = at(2026, 6, 1, 0, 0)
    path.write_text(csv_text(day, 24))
    t = FileTariff(FileTariffConfig(str(path)), policy=POLICY)
    series = await t.prices(day + 3600)
    assert len(series) == 24 and series.price_at(day + 5 * 3600) == (pytest.approx(0.25), 0.07)
    path.write_text(csv_text(day, 48, price=lambda h: 0.5))
    os.utime(path, ns=(1, os.stat(path).st_mtime_ns + 10**9))
    series = await t.prices(day + 3700)
    assert len(series) == 48 and series.price_at(day + 5 * 3600)[0] == 0.5


async def test_broken_file_keeps_last_good_prices(tmp_path, caplog):
    path = tmp_path / "prices.csv"
    day = at(2026, 6, 1, 0, 0)
    path.write_text(csv_text(day, 24))
    t = FileTariff(FileTariffConfig(str(path)), policy=POLICY)
    good = await t.prices(day)
    path.write_text("start,import_eur_per_kwh\n2026-06-01T00:00:00+02:00,cheap\n")
    os.utime(path, ns=(1, os.stat(path).st_mtime_ns + 10**9))
    with caplog.at_level(logging.ERROR):
        served = await t.prices(day + 60)
    assert "row 1: import_eur_per_kwh 'cheap' is not a number" in caplog.text
    np.testing.assert_array_equal(served.import_eur_per_kwh, good.import_eur_per_kwh)
    path.unlink()
    with pytest.raises(TariffError, match="cannot read"):
        await t.refresh()


@asynccontextmanager
async def serving(body: dict):
    async def handle(request):
        if body.get("status", 200) != 200:
            return web.Response(status=body["status"], text="nope")
        return web.Response(text=body["text"], content_type="application/json")

    app = web.Application()
    app.router.add_get("/prices.json", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/prices.json"
    finally:
        await runner.cleanup()


async def test_json_url_with_spot_prices_and_formulas(tmp_path):
    day = at(2026, 6, 1, 0, 0)
    rows = [{"start": day + 900 * i, "spot_eur_per_kwh": 0.1 if i < 48 else -0.02}
            for i in range(96)]
    body = {"text": json.dumps({"prices": rows})}
    async with serving(body) as url:
        config = FileTariffConfig(url, import_formula=ImportFormula(1, 0.2, 10),
                                  export_formula=ExportFormula(factor=1.0))
        t = FileTariff(config, policy=POLICY, cache_path=tmp_path / "file.json")
        series = await t.prices(day + 60)
        assert len(series) == 96 and set(series.duration_s) == {900}
        assert series.price_at(day)[0] == pytest.approx(0.33)
        assert series.price_at(day + 13 * 3600) == (pytest.approx(0.198), pytest.approx(-0.02))
        body["status"] = 503
        with pytest.raises(TariffError, match="HTTP 503"):
            await t.refresh()
    restarted = FileTariff(config, policy=POLICY, cache_path=tmp_path / "file.json")
    assert len(await restarted.prices(day + 120)) == 96


def test_parser_errors_are_specific():
    with pytest.raises(PriceDataError, match="header with a 'start' column"):
        parse_price_file("time,price\n1,2\n", "csv", ImportFormula(), ExportFormula(), "f", 0)
    with pytest.raises(PriceDataError, match="needs a UTC offset"):
        parse_price_file("start,import_eur_per_kwh\n2026-06-01T00:00,0.3\n", "csv",
                         ImportFormula(), ExportFormula(), "f", 0)
    with pytest.raises(PriceDataError, match="needs spot_eur_per_kwh or import_eur_per_kwh"):
        parse_price_file('[{"start": 0, "export_eur_per_kwh": 0.1}]', "auto",
                         ImportFormula(), ExportFormula(), "f", 0)
    with pytest.raises(PriceDataError, match="not valid JSON"):
        parse_price_file("[{", "json", ImportFormula(), ExportFormula(), "f", 0)
    with pytest.raises(PriceDataError, match="same time"):
        parse_price_file("start,import_eur_per_kwh\n0,0.1\n0,0.2\n", "csv",
                         ImportFormula(), ExportFormula(), "f", 0)
    with pytest.raises(PriceDataError, match="no price rows"):
        parse_price_file("[]", "json", ImportFormula(), ExportFormula(), "f", 0)


def test_gaps_keep_the_common_slot_length():
    text = "start,import_eur_per_kwh,duration_s\n0,0.1,\n3600,0.2,\n10800,0.3,\n"
    series = parse_price_file(text, "csv", ImportFormula(), ExportFormula(), "f", 0)
    assert list(series.duration_s) == [3600, 3600, 3600]
    assert series.on_grid(0, 4 * 3600, slot_s=3600).missing == 1
