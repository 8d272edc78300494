"""Building tariffs from config mappings, with errors that name the key."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from phaeton.planning.tariffs import EntsoeTariff, StaticTariff, TibberTariff, TimeOfUseTariff
from phaeton.planning.tariffs.factory import TariffConfigError, tariff_from_config


async def test_time_of_use_from_config_prices_by_local_time():
    tariff = tariff_from_config({
        "type": "time_of_use", "tz": "Europe/Berlin", "default_import_eur_per_kwh": 0.32,
        "windows": [{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                     "start": "00:00", "end": "06:00", "import_eur_per_kwh": 0.18}]})
    assert isinstance(tariff, TimeOfUseTariff)
    night = dt.datetime(2026, 6, 1, 2, 0, tzinfo=ZoneInfo("Europe/Berlin")).timestamp()
    series = await tariff.prices(night)
    assert series.price_at(night) == (0.18, 0.0)
    assert series.price_at(night + 5 * 3600)[0] == 0.32


def test_fetching_tariffs_get_formulas_policy_and_cache(tmp_path):
    tariff = tariff_from_config({
        "type": "entsoe", "token": "abc", "area": "10YNL----------L",
        "import_formula": {"adder_eur_per_kwh": 0.12, "vat_percent": 21},
        "export_formula": {"factor": 1.0},
        "refresh": {"publish_time": "13:30", "poll_s": 300}, "timeout_s": 5}, tmp_path)
    assert isinstance(tariff, EntsoeTariff)
    assert tariff.config.import_formula.vat_percent == 21
    assert tariff.policy.poll_s == 300 and tariff.timeout_s == 5
    assert tariff._cache.path == tmp_path / "prices-entsoe.json"
    assert isinstance(tariff_from_config({"type": "tibber", "token": "t"}), TibberTariff)
    assert isinstance(tariff_from_config({"type": "static", "import_eur_per_kwh": 0.3}),
                      StaticTariff)


@pytest.mark.parametrize("config, message", [
    ({"type": "nordpool"}, "tariff.type: must be one of"),
    ({"type": "static"}, "tariff: "),
    ({"type": "static", "import_eur_per_kwh": 0.3, "colour": "red"}, "unknown key(s) ['colour']"),
    ({"type": "time_of_use", "tz": "UTC", "default_import_eur_per_kwh": 0.3,
      "windows": [{"days": ["mon"], "start": "25:00", "end": "06:00",
                   "import_eur_per_kwh": 0.1}]}, "tariff.windows[0]: time-of-use window start"),
    ({"type": "tibber", "token": "t", "import_formula": {"vat_percent": 500}},
     "tariff.import_formula: import formula vat_percent"),
    ({"type": "entsoe", "token": "t", "area": "germany"}, "tariff: entsoe area"),
    ({"type": "entsoe", "token": "t", "refresh": {"publish_time": "late"}},
     "tariff.refresh: publish_time"),
    ({"type": "file", "location": "/x.csv", "timeout_s": "soon"}, "tariff.timeout_s"),
    ("tibber", "must be a mapping"),
])
def test_config_errors_name_the_key(config, message):
    with pytest.raises(TariffConfigError) as info:
        tariff_from_config(config)
    assert message in str(info.value)
