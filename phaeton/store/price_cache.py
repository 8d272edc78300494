"""On-disk cache of a tariff's last good prices (`series_cache.SeriesCache` of a PriceSeries).

A cache written under another `config_key` (provider, area, formulas) is ignored, so a changed
formula never serves stale prices.
"""
from __future__ import annotations

import os

from phaeton.planning.tariffs.series import PriceSeries
from phaeton.store.series_cache import SeriesCache


class PriceCache(SeriesCache[PriceSeries]):
    """Stores one PriceSeries at `path`, tagged with `config_key`."""

    def __init__(self, path: str | os.PathLike, config_key: str):
        super().__init__(path, config_key, PriceSeries, what="price")
