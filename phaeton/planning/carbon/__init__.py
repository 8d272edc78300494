"""Carbon intensity of grid electricity: one module per source behind the `CarbonSource`
interface (docs/carbon.md).

Every source answers `await source.intensity(now_s)` with a `CarbonSeries` (a `TimeSeries` with
one column "intensity" in "g/kWh": UTC slot starts, durations, g CO2-eq per kWh, history and
forecast as far as the source has them); `series.on_grid(start_s, horizon_s)` puts it on the
planner's 15-minute grid, `series.intensity_at(t_s)` gives one slot's value for accounting.
`factory.carbon_from_config(config["carbon"], data_dir)` builds the configured source (None
for `source: none`). The kinds the config can name are listed once, in `carbon.registry`.

The names below load their module when first used (PEP 562), so importing the registry (the
config schema does) loads neither numpy nor any source.
"""
from __future__ import annotations

import importlib

_MODULE_OF = {
    "CarbonAuthError": "base", "CarbonError": "base", "CarbonRateLimited": "base",
    "CarbonSource": "base", "CarbonStatus": "base", "FetchingCarbonSource": "base",
    "COUNTRY_G_PER_KWH": "countries", "country_intensity": "countries",
    "ElectricityMaps": "electricity_maps", "ElectricityMapsConfig": "electricity_maps",
    "EntsoeGeneration": "entsoe_generation",
    "EntsoeGenerationConfig": "entsoe_generation",
    "CarbonConfigError": "factory", "carbon_from_config": "factory",
    "LIFECYCLE_G_PER_KWH": "factors", "mix_intensity": "factors",
    "CarbonFile": "file", "CarbonFileConfig": "file",
    "CarbonDataError": "series", "CarbonSeries": "series", "GridIntensity": "series",
    "StaticCarbonSource": "static",
    "UkCarbonConfig": "uk_carbon_intensity", "UkCarbonIntensity": "uk_carbon_intensity",
}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
