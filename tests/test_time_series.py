"""TimeSeries: values with a unit per slot; prices are the case with an import and an export
column in currency per kWh, and another kind (a carbon intensity, one column in g/kWh) goes
through the same code."""
from __future__ import annotations

import json

import numpy as np
import pytest

from phaeton.planning.tariffs.factory import tariff_from_config
from phaeton.planning.tariffs.series import (GridPrices, GridSeries, PriceDataError,
                                             PriceSeries, SeriesDataError, TimeSeries,
                                             price_unit)
from phaeton.store.series_cache import SeriesCache

T0 = 1_780_000_000 // 3600 * 3600


def intensity(values, start_s=T0, slot_s=3600, source="grid"):
    n = len(values)
    return TimeSeries(start_s + slot_s * np.arange(n), np.full(n, slot_s),
                      {"intensity": values}, unit="g/kWh", source=source, fetched_at_s=5)


def test_a_one_column_series_with_its_unit_resamples_merges_and_round_trips():
    series = intensity([300.0, 100.0])
    assert series.unit == "g/kWh" and series.value_at(T0 + 3700) == {"intensity": 100.0}
    grid = series.on_grid(T0, 3 * 3600)
    assert type(grid) is GridSeries and grid.unit == "g/kWh"
    np.testing.assert_allclose(grid.values["intensity"][:8], [300.0] * 4 + [100.0] * 4)
    assert grid.missing == 4
    assert grid.describe_missing().startswith("4 of 12 slots have no grid value")
    newer = intensity([50.0], start_s=T0 + 3600, slot_s=900, source="newer")
    merged = series.merged_with(newer)
    assert type(merged) is TimeSeries and merged.unit == "g/kWh"
    assert [merged.value_at(T0 + 3600)["intensity"], merged.value_at(T0)["intensity"]] == \
        [50.0, 300.0]
    back = TimeSeries.from_json(json.loads(json.dumps(series.to_json())))
    assert back.unit == "g/kWh" and list(back.values) == ["intensity"]
    np.testing.assert_array_equal(back.values["intensity"], series.values["intensity"])
    assert len(series.since(T0 + 3600)) == 1 and series.since(T0 + 3600).unit == "g/kWh"


def test_a_plain_series_checks_its_values_like_prices():
    with pytest.raises(SeriesDataError, match="value for slot starting 0 is not a number"):
        TimeSeries([0], [900], {"intensity": [float("nan")]}, unit="g/kWh", source="x",
                   fetched_at_s=0)
    with pytest.raises(SeriesDataError, match="at least one column"):
        TimeSeries([], [], {}, unit="g/kWh", source="x", fetched_at_s=0)
    with pytest.raises(TypeError, match="needs a unit"):
        TimeSeries.empty("x", columns=("intensity",))


def test_prices_are_a_time_series_in_currency_per_kwh():
    prices = PriceSeries([T0], [3600], [0.3], [0.1], "tibber", 0)
    assert isinstance(prices, TimeSeries) and prices.unit == "EUR/kWh" == price_unit()
    assert list(prices.values) == ["import", "export"]
    assert prices.values["import"] is prices.import_eur_per_kwh
    grid = prices.on_grid(T0, 3600)
    assert isinstance(grid, GridPrices) and grid.unit == "EUR/kWh"
    assert PriceSeries([T0], [3600], [0.3], [0.1], "x", 0, unit="SEK/kWh").on_grid(
        T0, 3600).unit == "SEK/kWh"
    with pytest.raises(PriceDataError, match="price for slot"):
        PriceSeries([T0], [3600], [float("inf")], [0.1], "x", 0)
    with pytest.raises(PriceDataError, match="columns"):
        PriceSeries.from_slots([(T0, 3600, 0.3)], "x", 0, columns=("intensity",))


def test_a_price_cache_from_before_units_still_loads(tmp_path):
    """A cache file written before series had a unit (no "unit", no "columns") is prices in
    the default currency."""
    path = tmp_path / "prices-entsoe.json"
    path.write_text(json.dumps({"version": 1, "config_key": "k", "series": {
        "source": "entsoe", "fetched_at_s": 7, "slots": [[T0, 3600, 0.3, 0.1]]}}))
    loaded = SeriesCache(path, "k", PriceSeries).load()
    assert loaded.unit == "EUR/kWh" and loaded.price_at(T0) == (0.3, 0.1)
    SeriesCache(path, "k", PriceSeries).save(loaded.with_unit("NOK/kWh"))
    assert SeriesCache(path, "k", PriceSeries).load().unit == "NOK/kWh"


async def test_tariffs_label_their_prices_with_the_configured_currency(tmp_path):
    static = tariff_from_config({"type": "static", "import_eur_per_kwh": 0.3}, currency="CHF")
    assert (await static.prices(T0)).unit == "CHF/kWh"
    tou = tariff_from_config({"type": "time_of_use", "tz": "UTC",
                              "default_import_eur_per_kwh": 0.3}, currency="CHF")
    assert (await tou.prices(T0)).unit == "CHF/kWh"
    # a fetching tariff labels what its cache holds with its own unit
    entsoe = tariff_from_config({"type": "entsoe", "token": "t"}, tmp_path, currency="DKK")
    SeriesCache(tmp_path / "prices-entsoe.json", entsoe.config_key(), PriceSeries).save(
        PriceSeries([T0], [3600], [0.3], [0.0], "entsoe", 0))
    fresh = tariff_from_config({"type": "entsoe", "token": "t"}, tmp_path, currency="DKK")
    assert fresh.unit == "DKK/kWh" and fresh.series.unit == "DKK/kWh"
    assert fresh.series.price_at(T0) == (0.3, 0.0)
