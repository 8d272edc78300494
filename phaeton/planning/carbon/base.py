"""The carbon source interface and the sources that fetch from afar.

`await source.intensity(now_s)` always answers from memory (never raises for network or data
trouble): a `CarbonSeries` of g CO2-eq/kWh per slot, history and forecast as far as the source
has them. `FetchingCarbonSource` is `planning.fetching_series.FetchingSeries` for intensities:
the last good series, an on-disk cache, a refresh interval with exponential back-off, and
garbage answers refused with a specific error without losing good data.
"""
from __future__ import annotations

import abc

from phaeton.planning.carbon.series import UNIT, CarbonSeries, check_intensity
from phaeton.planning.fetching_series import (FetchAuthError, FetchError, FetchingSeries,
                                              FetchRateLimited, FetchStatus)

KEEP_HISTORY_S = 2 * 86400
"""How much past intensity a fetching source keeps in memory and cache (the accounting of a
session that started yesterday needs yesterday's slots)."""

CarbonStatus = FetchStatus     # what a UI shows about a fetching source


class CarbonError(FetchError):
    """A fetch failed; the message says why in words a user can act on."""


class CarbonAuthError(CarbonError, FetchAuthError):
    """The provider refused our credentials (HTTP 401/403)."""


class CarbonRateLimited(CarbonError, FetchRateLimited):
    """The provider asked us to slow down (HTTP 429); `retry_after_s` if it said how long."""


class CarbonSource(abc.ABC):
    """Carbon intensity of grid electricity in g CO2-eq/kWh, per slot."""

    source: str = "carbon"
    unit: str = UNIT

    @abc.abstractmethod
    async def intensity(self, now_s: float) -> CarbonSeries:
        """Intensities known at `now_s`: past slots (for accounting) and as far ahead as the
        source forecasts (for planning). Never raises for network or data trouble."""

    @abc.abstractmethod
    async def refresh(self) -> None:
        """Fetch or recompute now; raises CarbonError when that fails."""


class FetchingCarbonSource(FetchingSeries, CarbonSource):
    """Base of sources whose intensities come over the network (or from a file).

    Subclasses implement `_fetch(now_s)` returning a CarbonSeries (raising CarbonError or
    CarbonDataError on failure) and `config_key()` for the cache.
    """

    series_class = CarbonSeries
    unit = UNIT
    what = "carbon intensity"
    keep_history_s = KEEP_HISTORY_S
    error = CarbonError
    auth_error = CarbonAuthError
    rate_limited = CarbonRateLimited

    def _check(self, series: CarbonSeries) -> None:
        check_intensity(self.source, series.g_per_kwh)

    async def intensity(self, now_s: float) -> CarbonSeries:
        """Last good intensities; fetches first when due. Never raises on network or data
        trouble (logged, retried later with back-off)."""
        return await self.latest(now_s)  # type: ignore[return-value]
