"""The Tariff interface and the shared machinery of tariffs that fetch prices from afar.

`Tariff.prices(now_s)` always answers from memory (never raises for network trouble);
`FetchingTariff` keeps the last good prices, an on-disk cache, a refresh schedule with
exponential back-off, and rejects garbage answers without losing good prices.
"""
from __future__ import annotations

import abc
import asyncio
import logging
import math
from dataclasses import dataclass

import numpy as np

from phaeton.clock import REAL_CLOCK, Clock
from phaeton.planning.tariffs.http import get_text
from phaeton.store.price_cache import PriceCache
from phaeton.planning.tariffs.schedule import RefreshPolicy, next_refresh_s
from phaeton.planning.tariffs.series import PriceDataError, PriceSeries, price_unit

log = logging.getLogger(__name__)

MAX_ABS_PRICE_EUR_PER_KWH = 10.0
"""Anything beyond ±10 €/kWh is taken as a unit error (€/MWh or cents sent as €/kWh).
The EPEX day-ahead limits are +4 / -0.5 €/kWh, so real prices stay well inside."""

KEEP_HISTORY_S = 2 * 86400
"""How much past price history a fetching tariff keeps in memory and cache."""


class TariffError(Exception):
    """A fetch failed; the message says why in words a user can act on."""


class TariffAuthError(TariffError):
    """The provider refused our credentials (HTTP 401/403)."""


class TariffRateLimited(TariffError):
    """The provider asked us to slow down (HTTP 429); `retry_after_s` if it said how long."""

    def __init__(self, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Tariff(abc.ABC):
    """Import/export prices with timestamps, per kWh in `unit` (the config's currency)."""

    source: str = "tariff"
    unit: str = price_unit()

    @abc.abstractmethod
    async def prices(self, now_s: float) -> PriceSeries:
        """Prices known at `now_s`, covering now and as far ahead as available."""

    @abc.abstractmethod
    async def refresh(self) -> None:
        """Fetch or recompute prices now; raises TariffError when that fails."""


def check_prices(source: str, *arrays: np.ndarray) -> None:
    """Reject NaN/inf and prices outside ±MAX_ABS_PRICE_EUR_PER_KWH (a unit mistake)."""
    for values in arrays:
        values = np.asarray(values, dtype=float)
        if values.size and not np.all(np.isfinite(values)):
            raise PriceDataError(f"{source}: answer contains prices that are not numbers")
        if values.size and np.max(np.abs(values)) > MAX_ABS_PRICE_EUR_PER_KWH:
            raise PriceDataError(
                f"{source}: price {float(values[np.argmax(np.abs(values))]):g} €/kWh is beyond "
                f"±{MAX_ABS_PRICE_EUR_PER_KWH:g}; wrong unit (€/MWh or cent)?")


@dataclass(frozen=True)
class TariffStatus:
    """What a UI shows about a fetching tariff."""

    source: str
    last_success_s: float | None
    last_attempt_s: float | None
    failures: int
    last_error: str | None
    next_attempt_s: float
    covered_until_s: float


class FetchingTariff(Tariff):
    """Base for tariffs whose prices come over the network (or from a file).

    Subclasses implement `_fetch(now_s)` returning a validated PriceSeries (raising
    TariffError / PriceDataError on failure) and `config_key` for the cache.
    """

    def __init__(self, *, source: str, cache_path=None, policy: RefreshPolicy | None = None,
                 clock: Clock = REAL_CLOCK, timeout_s: float = 20.0, unit: str = price_unit()):
        if not (isinstance(timeout_s, (int, float)) and math.isfinite(timeout_s)
                and timeout_s > 0):
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        self.source = source
        self.unit = unit
        self.policy = policy or RefreshPolicy()
        self.clock = clock
        self.timeout_s = float(timeout_s)
        self._cache = PriceCache(cache_path, self.config_key()) if cache_path else None
        self._series = PriceSeries.empty(source, unit=unit)
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
        """Everything that changes the prices produced (never the secret token itself)."""

    @abc.abstractmethod
    async def _fetch(self, now_s: float) -> PriceSeries:
        """Fetch and parse prices around `now_s` (the tariff labels them with its unit)."""

    async def _get_text(self, method: str, url: str, **kwargs) -> str:
        """One request (`tariffs.http.get_text`): transport failures and error statuses
        become TariffError and its subclasses."""
        return await get_text(method, url, source=self.source, timeout_s=self.timeout_s,
                              error=TariffError, auth_error=TariffAuthError, rate_limited=TariffRateLimited,
                              **kwargs)

    # -- public ----------------------------------------------------------------------------
    @property
    def series(self) -> PriceSeries:
        """The last good prices held (possibly from the cache, possibly empty)."""
        self._load_cache_once()
        return self._series

    def status(self, now_s: float) -> TariffStatus:
        self._load_cache_once()
        return TariffStatus(self.source, self._last_success_s, self._last_attempt_s,
                            self._failures, self._last_error, self.next_refresh_s(now_s),
                            self._series.covered_until_s(now_s))

    def next_refresh_s(self, now_s: float) -> float:
        self._load_cache_once()
        return next_refresh_s(now_s, self._series.covered_until_s(now_s), self.policy,
                              last_attempt_s=self._last_attempt_s, failures=self._failures,
                              retry_after_until_s=self._retry_after_until_s)

    async def prices(self, now_s: float) -> PriceSeries:
        """Last good prices; fetches first when the schedule says so. Never raises on
        network or data trouble (logged, retried later with back-off)."""
        self._load_cache_once()
        async with self._fetch_lock:  # a caller arriving during a fetch waits for its result
            if self.next_refresh_s(now_s) <= now_s:
                try:
                    await self._refresh_at(now_s)
                except TariffError:
                    pass  # already logged and counted; the last good prices stay
        return self._series

    async def refresh(self) -> None:
        """Fetch now regardless of the schedule; raises TariffError on failure."""
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
            self._series = cached.with_unit(self.unit)
            log.info("%s: %d cached price slots loaded from %s", self.source, len(cached),
                     self._cache.path)

    async def _refresh_at(self, now_s: float) -> None:
        self._last_attempt_s = now_s
        try:
            fresh = (await self._fetch(now_s)).with_unit(self.unit)
            check_prices(self.source, fresh.import_eur_per_kwh, fresh.export_eur_per_kwh)
        except Exception as exc:  # noqa: BLE001 - a bad answer must never stop the service
            if isinstance(exc, TariffError):
                failure = exc
            elif isinstance(exc, PriceDataError):
                failure = TariffError(str(exc))
            else:
                log.exception("%s: unexpected error while fetching prices", self.source)
                failure = TariffError(f"{self.source}: unexpected error: {exc!r}")
            self._failures += 1
            self._last_error = str(failure)
            retry_after = getattr(failure, "retry_after_s", None)
            self._retry_after_until_s = now_s + retry_after if retry_after else None
            log.error("%s: price fetch failed (%d in a row), keeping the last good prices: %s",
                      self.source, self._failures, failure)
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
                log.error("%s: cannot write price cache %s: %s", self.source,
                          self._cache.path, exc)
        log.info("%s: %d price slots fetched, prices reach %s", self.source, len(fresh),
                 self._series.end_s)
