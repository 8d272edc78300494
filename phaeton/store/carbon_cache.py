"""On-disk cache of a carbon source's last good intensities (`series_cache.SeriesCache` of a
CarbonSeries in g/kWh; a file in another unit is ignored)."""
from __future__ import annotations

import os

from phaeton.planning.carbon.series import UNIT, CarbonSeries
from phaeton.store.series_cache import SeriesCache


class CarbonCache(SeriesCache[CarbonSeries]):
    """Stores one CarbonSeries at `path`, tagged with `config_key` (source, area, zone)."""

    def __init__(self, path: str | os.PathLike, config_key: str):
        super().__init__(path, config_key, CarbonSeries, unit=UNIT, what="carbon")
