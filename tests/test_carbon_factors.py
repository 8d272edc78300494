"""The pure parts of carbon intensity: the lifecycle factors and the mix arithmetic, the
country table and the static source, the carbon series and its refusal of garbage, the
refresh arithmetic and the on-disk cache."""
from __future__ import annotations

import json

import numpy as np
import pytest

from phaeton.planning.carbon import (COUNTRY_G_PER_KWH, LIFECYCLE_G_PER_KWH, CarbonDataError,
                                     CarbonSeries, StaticCarbonSource,
                                     country_intensity, mix_intensity)
from phaeton.planning.interval_refresh import IntervalRefresh
from phaeton.planning.carbon.entsoe_generation import parse_generation
from phaeton.planning.carbon.factors import PSR_TYPES, STORAGE, fuel_of
from phaeton.planning.carbon.file import parse_file
from phaeton.planning.carbon.series import check_intensity
from phaeton.planning.carbon.uk_carbon_intensity import parse_uk_answer
from phaeton.store.series_cache import SeriesCache

NOW = 1_780_000_000


# ---- lifecycle factors and the mix ----------------------------------------------------------

def test_the_factors_are_the_documented_ar5_medians():
    assert LIFECYCLE_G_PER_KWH == {
        "coal": 820, "lignite": 820, "gas": 490, "oil": 650, "nuclear": 12,
        "wind_onshore": 11, "wind_offshore": 12, "solar": 48, "hydro": 24, "biomass": 230,
        "geothermal": 38, "other": 700}
    # every ENTSO-E production type maps to a factor or to storage
    assert all(fuel in LIFECYCLE_G_PER_KWH or fuel == STORAGE
               for _, fuel in PSR_TYPES.values())
    assert fuel_of("B02") == "lignite" and fuel_of("B18") == "wind_offshore"
    assert fuel_of("B10") == STORAGE and fuel_of("B99") == "other"


def test_mix_intensity_hand_computed():
    # 100 MW hard coal, 300 MW onshore wind, 100 MW nuclear: 86500 / 500
    assert mix_intensity({"B05": 100, "B19": 300, "B14": 100}) == pytest.approx(173.0)
    # 200 MW gas + 200 MW solar + 100 MW run-of-river: (98000 + 9600 + 2400) / 500 = 220
    assert mix_intensity({"B04": 200, "B16": 200, "B11": 100}) == pytest.approx(220.0)
    # storage changes nothing; two slots at once; no generation at all -> NaN (left out)
    result = mix_intensity({"B05": np.array([100.0, 0.0]), "B19": np.array([300.0, 0.0]),
                            "B14": np.array([100.0, 0.0]), "B10": np.array([900.0, 50.0])})
    assert result[0] == pytest.approx(173.0) and np.isnan(result[1])
    with pytest.raises(ValueError, match="B04"):
        mix_intensity({"B04": -1.0})
    with pytest.raises(ValueError, match="B04"):
        mix_intensity({"B04": float("nan")})


def test_entsoe_garbage_is_refused():
    with pytest.raises(CarbonDataError, match="not XML"):
        parse_generation("{not xml")
    with pytest.raises(CarbonDataError, match="no generation TimeSeries"):
        parse_generation('<GL_MarketDocument xmlns="urn:x"></GL_MarketDocument>')


# ---- the country table and the static source ------------------------------------------------

def test_the_country_table_is_ember_2023():
    assert COUNTRY_G_PER_KWH["DE"] == 381 and COUNTRY_G_PER_KWH["FR"] == 56
    assert COUNTRY_G_PER_KWH["PL"] == 662 and COUNTRY_G_PER_KWH["SE"] == 41
    assert country_intensity("at") == 111
    assert COUNTRY_G_PER_KWH["GB"] == 238 and COUNTRY_G_PER_KWH["US"] == 369
    assert COUNTRY_G_PER_KWH["IT"] == 331 and country_intensity("nl") == 268
    assert len(COUNTRY_G_PER_KWH) == 37 and "IS" not in COUNTRY_G_PER_KWH  # no 2023 value
    with pytest.raises(ValueError, match="no average intensity for country 'XX'"):
        country_intensity("XX")


async def test_static_source_by_country_or_number():
    by_country = StaticCarbonSource(country="DE")
    series = await by_country.intensity(NOW)
    assert series.unit == "g/kWh" and set(series.g_per_kwh) == {381.0}
    assert series.start_s[0] <= NOW - 2 * 86400 and series.end_s >= NOW + 48 * 3600
    assert series.covered_until_s(NOW) == series.end_s and series.source == "static DE"
    fixed = await StaticCarbonSource(country="DE", g_per_kwh=250).intensity(NOW)
    assert set(fixed.g_per_kwh) == {250.0}                 # the number wins
    assert fixed.on_grid(NOW, 3600).g_per_kwh.tolist() == [250.0] * 5
    for bad in (-1, 2001, float("nan"), True):
        with pytest.raises(ValueError, match="g_per_kwh must be a number from 0 to 2000"):
            StaticCarbonSource(g_per_kwh=bad)
    with pytest.raises(ValueError, match="give country"):
        StaticCarbonSource()


# ---- the series -------------------------------------------------------------------------------

def test_the_series_refuses_nan_and_absurd_values():
    with pytest.raises(CarbonDataError, match="not a number"):
        CarbonSeries([0, 900], [900, 900], [100.0, float("nan")], "t", 0)
    with pytest.raises(CarbonDataError, match="negative"):
        check_intensity("t", [10.0, -1.0])
    with pytest.raises(CarbonDataError, match="wrong unit"):
        check_intensity("t", [450_000.0])
    series = CarbonSeries([0, 900], [900, 900], [100.0, 200.0], "t", 0)
    assert CarbonSeries.from_json(json.loads(json.dumps(series.to_json()))).g_per_kwh.tolist() \
        == [100.0, 200.0]
    assert series.intensity_at(1000) == 200.0 and series.intensity_at(5000) is None
    grid = series.on_grid(0, 3600)
    assert grid.missing == 2 and "carbon intensity" in grid.describe_missing()


def test_parsers_refuse_garbage_with_specific_errors():
    with pytest.raises(CarbonDataError, match="lacks the data list"):
        parse_uk_answer('{"data": 5}', NOW)
    with pytest.raises(CarbonDataError, match="neither an actual nor a forecast"):
        parse_uk_answer('{"data": [{"from": "2026-06-01T12:00Z", "to": "2026-06-01T12:30Z", '
                        '"intensity": {"forecast": null, "actual": null}}]}', NOW)
    with pytest.raises(CarbonDataError, match="is not a number"):
        parse_uk_answer('{"data": [{"from": "2026-06-01T12:00Z", "to": "2026-06-01T12:30Z", '
                        '"intensity": {"forecast": "high"}}]}', NOW)
    with pytest.raises(CarbonDataError, match="needs a UTC offset"):
        parse_file("start,g_per_kwh\n2026-06-01T12:00,100\n", "csv", NOW)
    with pytest.raises(CarbonDataError, match="two rows start at the same time"):
        parse_file('[{"start": 0, "g_per_kwh": 1}, {"start": 0, "g_per_kwh": 2}]', "auto", NOW)
    parsed = parse_file('{"intensity": [{"start": 0, "g_per_kwh": 1}, '
                        '{"start": 900, "g_per_kwh": 2, "duration_s": 900}]}', "json", NOW)
    assert parsed.duration_s.tolist() == [900, 900]


# ---- refresh arithmetic and cache -------------------------------------------------------------

def test_refresh_interval_and_back_off():
    policy = IntervalRefresh(interval_s=1800, backoff_base_s=60, backoff_max_s=300)
    assert policy.next_fetch_s(100, last_attempt_s=None, failures=0) == 100
    assert policy.next_fetch_s(100, last_attempt_s=50, failures=0) == 1850
    assert [policy.backoff_s(n) for n in range(5)] == [0, 60, 120, 240, 300]
    assert policy.next_fetch_s(0, last_attempt_s=0, failures=1, retry_after_until_s=999) == 999
    with pytest.raises(ValueError, match="backoff_max_s"):
        IntervalRefresh(backoff_base_s=600, backoff_max_s=60)
    with pytest.raises(ValueError, match="interval_s"):
        IntervalRefresh(interval_s=float("nan"))


def test_the_cache_round_trips_and_refuses_other_units(tmp_path, caplog):
    path = tmp_path / "carbon.json"

    def CarbonCache(path, key):          # noqa: N802 - the carbon sources' cache
        return SeriesCache(path, key, CarbonSeries, unit="g/kWh", what="carbon")

    series = CarbonSeries([0, 900], [900, 900], [100.0, 200.0], "t", 5)
    CarbonCache(path, "key").save(series)
    loaded = CarbonCache(path, "key").load()
    assert loaded.g_per_kwh.tolist() == [100.0, 200.0] and loaded.unit == "g/kWh"
    assert CarbonCache(path, "other key").load() is None
    data = json.loads(path.read_text())
    data["series"]["unit"] = "EUR/kWh"
    path.write_text(json.dumps(data))
    assert CarbonCache(path, "key").load() is None and "unit" in caplog.text
    data["series"]["unit"] = "g/kWh"
    data["series"]["slots"][0][2] = "NaN"
    path.write_text(json.dumps(data))
    assert CarbonCache(path, "key").load() is None
