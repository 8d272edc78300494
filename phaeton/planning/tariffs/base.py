"""The Tariff interface and the tariffs that fetch prices from afar.

`Tariff.prices(now_s)` always answers from memory (never raises for network trouble);
`FetchingTariff` (on `planning.fetching_series`) keeps the last good prices, an on-disk cache,
a refresh schedule with exponential back-off, and rejects garbage answers without losing good
prices.
"""
from __future__ import annotations

import abc

import numpy as np

from phaeton.clock import REAL_CLOCK, Clock
from phaeton.planning.fetching_series import (FetchAuthError, FetchError, FetchingSeries,
                                              FetchRateLimited, FetchStatus)
from phaeton.planning.tariffs.schedule import RefreshPolicy, next_refresh_s
from phaeton.planning.tariffs.series import PriceDataError, PriceSeries, price_unit

MAX_ABS_PRICE_EUR_PER_KWH = 10.0
"""Anything beyond ±10 €/kWh is taken as a unit error (€/MWh or cents sent as €/kWh).
The EPEX day-ahead limits are +4 / -0.5 €/kWh, so real prices stay well inside."""

KEEP_HISTORY_S = 2 * 86400
"""How much past price history a fetching tariff keeps in memory and cache."""


class TariffError(FetchError):
    """A fetch failed; the message says why in words a user can act on."""


class TariffAuthError(TariffError, FetchAuthError):
    """The provider refused our credentials (HTTP 401/403)."""


class TariffRateLimited(TariffError, FetchRateLimited):
    """The provider asked us to slow down (HTTP 429); `retry_after_s` if it said how long."""


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


TariffStatus = FetchStatus     # what a UI shows about a fetching tariff


class FetchingTariff(FetchingSeries, Tariff):
    """Base for tariffs whose prices come over the network (or from a file): the
    `planning.fetching_series.FetchingSeries` of a PriceSeries, fetched on the day-ahead
    publication schedule (`schedule.next_refresh_s`) rather than an interval, the prices
    labelled with the config's currency.

    Subclasses implement `_fetch(now_s)` returning a validated PriceSeries (raising
    TariffError / PriceDataError on failure) and `config_key` for the cache.
    """

    series_class = PriceSeries
    what = "price"
    keep_history_s = KEEP_HISTORY_S
    error = TariffError
    auth_error = TariffAuthError
    rate_limited = TariffRateLimited
    empty_is_error = False          # prices not yet published: the schedule polls again

    def __init__(self, *, source: str, cache_path=None, policy: RefreshPolicy | None = None,
                 clock: Clock = REAL_CLOCK, timeout_s: float = 20.0, unit: str = price_unit()):
        self.unit = unit
        super().__init__(source=source, cache_path=cache_path, refresh=policy or RefreshPolicy(),
                         clock=clock, timeout_s=timeout_s)

    def _adopt(self, series: PriceSeries) -> PriceSeries:
        return series.with_unit(self.unit)

    def _cache_unit(self) -> str | None:
        return None            # a cache from before units or currencies is relabelled

    def _check(self, series: PriceSeries) -> None:
        check_prices(self.source, series.import_eur_per_kwh, series.export_eur_per_kwh)

    def next_refresh_s(self, now_s: float) -> float:
        self._load_cache_once()
        return next_refresh_s(now_s, self._series.covered_until_s(now_s), self.policy,
                              last_attempt_s=self._last_attempt_s, failures=self._failures,
                              retry_after_until_s=self._retry_after_until_s)

    async def prices(self, now_s: float) -> PriceSeries:
        """Last good prices; fetches first when the schedule says so. Never raises on
        network or data trouble (logged, retried later with back-off)."""
        return await self.latest(now_s)  # type: ignore[return-value]
