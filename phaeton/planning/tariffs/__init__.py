"""Electricity tariffs: one module per price source behind the `Tariff` interface.

Every tariff answers `await tariff.prices(now_s)` with a `PriceSeries` (UTC slot starts,
durations, import and export €/kWh); `series.on_grid(start_s, horizon_s)` puts it on the
15-minute grid the optimizer uses.
"""
from phaeton.planning.tariffs.base import (FetchingTariff, Tariff, TariffAuthError, TariffError,
                                           TariffRateLimited, TariffStatus)
from phaeton.planning.tariffs.entsoe import EntsoeConfig, EntsoeTariff
from phaeton.planning.tariffs.factory import TariffConfigError, tariff_from_config
from phaeton.planning.tariffs.file import FileTariff, FileTariffConfig
from phaeton.planning.tariffs.formula import ExportFormula, ImportFormula
from phaeton.planning.tariffs.schedule import RefreshPolicy
from phaeton.planning.tariffs.series import GridPrices, PriceDataError, PriceSeries
from phaeton.planning.tariffs.static import StaticTariff
from phaeton.planning.tariffs.tibber import TibberConfig, TibberTariff
from phaeton.planning.tariffs.time_of_use import TimeOfUseTariff, TouWindow

__all__ = [
    "EntsoeConfig", "EntsoeTariff", "ExportFormula", "FetchingTariff", "FileTariff",
    "FileTariffConfig", "GridPrices", "ImportFormula", "PriceDataError", "PriceSeries",
    "RefreshPolicy", "StaticTariff", "Tariff", "TariffAuthError", "TariffConfigError",
    "TariffError",
    "TariffRateLimited", "TariffStatus", "TibberConfig", "TibberTariff", "TimeOfUseTariff",
    "TouWindow", "tariff_from_config",
]
