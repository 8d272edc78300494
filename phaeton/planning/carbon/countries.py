"""Average grid carbon intensity per country, for the `static` source and the config schema's
country list. Pure data, no numpy (the schema imports it when a config is loaded).

The values are Ember's lifecycle carbon intensity of electricity generation for 2023 (g
CO2-eq/kWh, domestic generation, imports not included) as published by Our World in Data
("Carbon intensity of electricity generation"); only countries whose 2023 value could be
checked are listed. Others give `g_per_kwh` (docs/carbon.md).
"""
from __future__ import annotations

COUNTRY_YEAR = 2023
COUNTRY_SOURCE = ("Ember, Yearly Electricity Data (lifecycle carbon intensity of electricity "
                  "generation), via Our World in Data, "
                  "https://ourworldindata.org/grapher/carbon-intensity-electricity")

COUNTRY_G_PER_KWH: dict[str, float] = {   # ISO 3166-1 alpha-2 -> g CO2-eq/kWh, 2023
    "AT": 111.0,
    "BE": 138.0,
    "BG": 335.0,
    "CY": 534.0,
    "CZ": 450.0,
    "DE": 381.0,
    "DK": 152.0,
    "EE": 417.0,
    "FI": 79.0,
    "FR": 56.0,
    "GR": 337.0,
    "HR": 205.0,
    "HU": 204.0,
    "IE": 291.0,
    "NO": 30.0,
    "PL": 662.0,
    "SE": 41.0,
}


def country_intensity(code: str) -> float:
    """The 2023 average of `code` (ISO 3166-1 alpha-2, any case); ValueError naming the listed
    codes otherwise."""
    key = str(code).upper()
    if key not in COUNTRY_G_PER_KWH:
        raise ValueError(f"no average intensity for country {code!r}; listed: "
                         f"{', '.join(COUNTRY_G_PER_KWH)} (or give g_per_kwh)")
    return COUNTRY_G_PER_KWH[key]
