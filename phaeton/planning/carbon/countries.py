"""Average grid carbon intensity per country, for the `static` source and the config schema's
country list. Pure data, no numpy (the schema imports it when a config is loaded).

The values are Ember's lifecycle carbon intensity of electricity generation for 2023 (g
CO2-eq/kWh, domestic generation, imports not included), all from one release: Ember's of May
2024, as published by Our World in Data ("Carbon intensity of electricity generation") and as
kept by the Green Web Foundation's co2.js (`data/output/average-intensities.json`, commit
8712dbc of 2024-06-03). Ember revises past years in later releases; values of different
releases are not mixed here. Others give `g_per_kwh` (docs/carbon.md).
"""
from __future__ import annotations

COUNTRY_YEAR = 2023
COUNTRY_SOURCE = ("Ember, Yearly Electricity Data, release of May 2024 (lifecycle carbon "
                  "intensity of electricity generation), via Our World in Data, "
                  "https://ourworldindata.org/grapher/carbon-intensity-electricity")

COUNTRY_G_PER_KWH: dict[str, float] = {   # ISO 3166-1 alpha-2 -> g CO2-eq/kWh, 2023
    "AT": 111.0,
    "AU": 549.0,
    "BE": 138.0,
    "BG": 335.0,
    "CA": 171.0,
    "CH": 35.0,
    "CY": 534.0,
    "CZ": 450.0,
    "DE": 381.0,
    "DK": 152.0,
    "EE": 417.0,
    "ES": 174.0,
    "FI": 79.0,
    "FR": 56.0,
    "GB": 238.0,
    "GR": 337.0,
    "HR": 205.0,
    "HU": 204.0,
    "IE": 291.0,
    "IT": 331.0,
    "JP": 485.0,
    "LT": 160.0,
    "LU": 105.0,
    "LV": 123.0,
    "MT": 459.0,
    "NL": 268.0,
    "NO": 30.0,
    "NZ": 113.0,
    "PL": 662.0,
    "PT": 166.0,
    "RO": 241.0,
    "RS": 648.0,
    "SE": 41.0,
    "SI": 231.0,
    "SK": 117.0,
    "US": 369.0,
    "ZA": 708.0,
}


def country_intensity(code: str) -> float:
    """The 2023 average of `code` (ISO 3166-1 alpha-2, any case); ValueError naming the listed
    codes otherwise."""
    key = str(code).upper()
    if key not in COUNTRY_G_PER_KWH:
        raise ValueError(f"no average intensity for country {code!r}; listed: "
                         f"{', '.join(COUNTRY_G_PER_KWH)} (or give g_per_kwh)")
    return COUNTRY_G_PER_KWH[key]
