"""The carbon source interface and the machinery of sources that fetch from afar.

`await source.intensity(now_s)` always answers from memory (never raises for network or data
trouble): a `CarbonSeries` of g CO2-eq/kWh per slot, history and forecast as far as the source
has them. `FetchingCarbonSource` keeps the last good series, an on-disk cache, a refresh
interval with exponential back-off, and refuses garbage answers with a specific error without
losing good data.
"""
from __future__ import annotations

import abc
import asyncio
import logging
import math
from dataclasses import dataclass

from phaeton.clock import REAL_CLOCK, Clock
from phaeton.planning.tariffs.http import get_text
from phaeton.planning.carbon.schedule import CarbonRefresh
from phaeton.planning.carbon.series import (UNIT, CarbonDataError, CarbonSeries,
                                            SeriesDataError, check_intensity)
from phaeton.store.carbon_cache import CarbonCache

log = logging.getLogger(__name__)

KEEP_HISTORY_S = 2 * 86400
"""How much past intensity a fetching source keeps in memory and cache (the accounting of a
session that started yesterday needs yesterday's slots)."""


class CarbonError(Exception):
    """A fetch failed; the message says why in words a user can act on."""


class CarbonAuthError(CarbonError):
    """The provider refused our credentials (HTTP 401/403)."""


class CarbonRateLimited(CarbonError):
    """The provider asked us to slow down (HTTP 429); `retry_after_s` if it said how long."""

    def __init__(self, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s


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


@dataclass(frozen=True)
class CarbonStatus:
    """What a UI shows about a fetching source."""

    source: str
    last_success_s: float | None
    last_attempt_s: float | None
    failures: int
    last_error: str | None
    next_attempt_s: float
    covered_until_s: float


class FetchingCarbonSource(CarbonSource):
    """Base of sources whose intensities come over the network (or from a file).

    Subclasses implement `_fetch(now_s)` returning a CarbonSeries (raising CarbonError or
    CarbonDataError on failure) and `config_key()` for the cache.
    """

    def __init__(self, *, source: str, cache_path=None, refresh: CarbonRefresh | None = None,
                 clock: Clock = REAL_CLOCK, timeout_s: float = 20.0):
        if isinstance(timeout_s, bool) or not (isinstance(timeout_s, (int, float))
                                               and math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        self.source = source
        self.policy = refresh or CarbonRefresh()
        self.clock = clock
        self.timeout_s = float(timeout_s)
        self._cache = CarbonCache(cache_path, self.config_key()) if cache_path else None
        self._series = CarbonSeries.empty(source)
        self._cache_loaded = False
        self._last_attempt_s: float | None = None
        self._last_success_s: float | None = None
        self._failures = 0
        self._last_error: str | None = None
        self._retry_after_until_s: float | None = None
        self._fetch_lock = asyncio.Lock()

    # -- for subclasses --------------------------------------------------------------------
    @abc.abstractmethod
    def config_key(self) -> str:
        """Everything that changes the intensities produced (never the secret token)."""

    @abc.abstractmethod
    async def _fetch(self, now_s: float) -> CarbonSeries:
        """Fetch and parse intensities around `now_s`."""

    async def _get_text(self, url: str, **kwargs) -> str:
        """One request (`tariffs.http.get_text`): transport failures and error statuses
        become CarbonError and its subclasses."""
        return await get_text("GET", url, source=self.source, timeout_s=self.timeout_s,
                              error=CarbonError, auth_error=CarbonAuthError, rate_limited=CarbonRateLimited,
                              **kwargs)

    # -- public ----------------------------------------------------------------------------
    @property
    def series(self) -> CarbonSeries:
        """The last good intensities held (possibly from the cache, possibly empty)."""
        self._load_cache_once()
        return self._series

    def status(self, now_s: float) -> CarbonStatus:
        self._load_cache_once()
        return CarbonStatus(self.source, self._last_success_s, self._last_attempt_s,
                            self._failures, self._last_error, self.next_refresh_s(now_s),
                            self._series.covered_until_s(now_s))

    def next_refresh_s(self, now_s: float) -> float:
        return self.policy.next_fetch_s(now_s, last_attempt_s=self._last_attempt_s,
                                        failures=self._failures,
                                        retry_after_until_s=self._retry_after_until_s)

    async def intensity(self, now_s: float) -> CarbonSeries:
        """Last good intensities; fetches first when due. Never raises on network or data
        trouble (logged, retried later with back-off)."""
        self._load_cache_once()
        async with self._fetch_lock:
            if self.next_refresh_s(now_s) <= now_s:
                try:
                    await self._refresh_at(now_s)
                except CarbonError:
                    pass  # logged and counted; the last good intensities stay
        return self._series

    async def refresh(self) -> None:
        """Fetch now regardless of the schedule; raises CarbonError on failure."""
        self._load_cache_once()
        async with self._fetch_lock:
            await self._refresh_at(self.clock.time())

    # -- internals -------------------------------------------------------------------------
    def _load_cache_once(self) -> None:
        if self._cache_loaded:
            return
        self._cache_loaded = True
        if self._cache is None:
            return
        cached = self._cache.load()
        if cached is not None and len(cached):
            try:
                check_intensity(self.source, cached.g_per_kwh)
            except CarbonDataError as exc:
                log.error("carbon cache %s refused: %s", self._cache.path, exc)
                return
            self._series = cached
            log.info("%s: %d cached carbon intensity slots loaded from %s", self.source,
                     len(cached), self._cache.path)

    async def _refresh_at(self, now_s: float) -> None:
        self._last_attempt_s = now_s
        try:
            fresh = await self._fetch(now_s)
            if not isinstance(fresh, CarbonSeries) or fresh.unit != UNIT:
                raise CarbonDataError(f"{self.source}: fetch gave no g/kWh series")
            if not len(fresh):
                raise CarbonDataError(f"{self.source}: the answer holds no intensities")
            check_intensity(self.source, fresh.g_per_kwh)
        except Exception as exc:  # noqa: BLE001 - a bad answer must never stop the service
            if isinstance(exc, CarbonError):
                failure = exc
            elif isinstance(exc, SeriesDataError):      # CarbonDataError and the like
                failure = CarbonError(str(exc) if str(exc).startswith(self.source)
                                      else f"{self.source}: {exc}")
            else:
                log.exception("%s: unexpected error while fetching carbon intensity",
                              self.source)
                failure = CarbonError(f"{self.source}: unexpected error: {exc!r}")
            self._failures += 1
            self._last_error = str(failure)
            retry_after = getattr(failure, "retry_after_s", None)
            self._retry_after_until_s = now_s + retry_after if retry_after else None
            log.error("%s: carbon intensity fetch failed (%d in a row), keeping the last good "
                      "data: %s", self.source, self._failures, failure)
            if failure is exc:
                raise
            raise failure from exc
        self._failures = 0
        self._last_error = None
        self._retry_after_until_s = None
        self._last_success_s = now_s
        self._series = self._series.merged_with(fresh).since(now_s - KEEP_HISTORY_S)
        if self._cache is not None:
            try:
                self._cache.save(self._series)
            except OSError as exc:
                log.error("%s: cannot write carbon cache %s: %s", self.source,
                          self._cache.path, exc)
        log.info("%s: %d carbon intensity slots fetched, they reach %s", self.source,
                 len(fresh), self._series.end_s)
