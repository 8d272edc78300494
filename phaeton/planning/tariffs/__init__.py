"""Electricity tariffs: one module per price source behind the `Tariff` interface.

Every tariff answers `await tariff.prices(now_s)` with a `PriceSeries` (a `TimeSeries` with
UTC slot starts, durations, import and export prices per kWh in its `unit`);
`series.on_grid(start_s, horizon_s)` puts it on the 15-minute grid the optimizer uses. The
kinds the config can name are listed once, in `tariffs.registry`.

The names below load their module when first used (PEP 562), so importing the registry (the
config schema does) loads neither numpy nor any tariff.
"""
from __future__ import annotations

import importlib

_MODULE_OF = {
    "FetchingTariff": "base", "Tariff": "base", "TariffAuthError": "base",
    "TariffError": "base", "TariffRateLimited": "base", "TariffStatus": "base",
    "EntsoeConfig": "entsoe", "EntsoeTariff": "entsoe",
    "TariffConfigError": "factory", "tariff_from_config": "factory",
    "FileTariff": "file", "FileTariffConfig": "file",
    "ExportFormula": "formula", "ImportFormula": "formula",
    "RefreshPolicy": "schedule",
    "GridPrices": "series", "GridSeries": "series", "PriceDataError": "series",
    "PriceSeries": "series", "TimeSeries": "series",
    "StaticTariff": "static",
    "TibberConfig": "tibber", "TibberTariff": "tibber",
    "TimeOfUseTariff": "time_of_use", "TouWindow": "time_of_use",
}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
