"""What every source that fetches a time series from afar shares: the last good series held in
memory, an on-disk cache for a GX that boots offline, a fetch interval with exponential
back-off and the server's Retry-After honoured, and a bad answer refused with a specific error
without losing the good data. The carbon sources and the PV forecasts are built on it.

A subclass names its series class, its unit and its error classes, and implements
`config_key()` (what changes the series produced, never a token), `_fetch(now_s)` and, when its
values have bounds, `_check(series)`. `await source.latest(now_s)` never raises for network or
data trouble: it fetches when due and answers with the last good series.

`get_text` is the one HTTP request they all make: transport failures and error statuses become
the caller's own error classes, in words a user can act on (401/403: check the token; 429: rate
limited, with Retry-After when given in seconds). aiohttp's client is imported at the first
request: it loads the system's CA certificates into two SSL contexts at import, which sources
that never fetch (and the service's start-up) should not pay for.
"""
from __future__ import annotations

import abc
import asyncio
import logging
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from phaeton.clock import REAL_CLOCK, Clock
from phaeton.planning.interval_refresh import IntervalRefresh
from phaeton.planning.tariffs.series import SeriesDataError, TimeSeries
from phaeton.store.series_cache import SeriesCache

log = logging.getLogger(__name__)


class FetchError(Exception):
    """A fetch failed; the message says why in words a user can act on."""


class FetchAuthError(FetchError):
    """The provider refused our credentials (HTTP 401/403)."""


class FetchRateLimited(FetchError):
    """The provider asked us to slow down (HTTP 429); `retry_after_s` if it said how long."""

    def __init__(self, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class FetchStatus:
    """What a UI shows about a fetching source."""

    source: str
    last_success_s: float | None
    last_attempt_s: float | None
    failures: int
    last_error: str | None
    next_attempt_s: float
    covered_until_s: float


class FetchingSeries(abc.ABC):
    """See the module. Class attributes a subclass sets: `series_class`, `unit`, `what` (in
    log lines: "carbon intensity"), `keep_history_s` (past slots kept) and the error classes
    (`error`, `auth_error`, `rate_limited`: subclasses of the Fetch* errors or classes with
    the same constructors)."""

    series_class: ClassVar[type[TimeSeries]]
    unit: ClassVar[str]
    what: ClassVar[str] = "series"
    keep_history_s: ClassVar[float] = 2 * 86400
    error: ClassVar[type[Exception]] = FetchError
    auth_error: ClassVar[type[Exception]] = FetchAuthError
    rate_limited: ClassVar[type[Exception]] = FetchRateLimited
    empty_is_error: ClassVar[bool] = True   # an answer with no slots is a failed fetch

    def __init__(self, *, source: str, cache_path=None, refresh: Any = None,
                 clock: Clock = REAL_CLOCK, timeout_s: float = 20.0):
        if isinstance(timeout_s, bool) or not (isinstance(timeout_s, (int, float))
                                               and math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        self.source = source
        self.policy = refresh or IntervalRefresh()   # IntervalRefresh unless next_refresh_s
                                                     # is overridden
        self.clock = clock
        self.timeout_s = float(timeout_s)
        self._cache = (SeriesCache(cache_path, self.config_key(), self.series_class,
                                   unit=self._cache_unit(), what=self.what)
                       if cache_path else None)
        self._series = self.series_class.empty(source)
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
        """Everything that changes the series produced (never the secret token)."""

    @abc.abstractmethod
    async def _fetch(self, now_s: float) -> TimeSeries:
        """Fetch and parse the series around `now_s`."""

    def _check(self, series: TimeSeries) -> None:
        """Refuse values out of bounds (raise a SeriesDataError naming the source)."""

    def _adopt(self, series: TimeSeries) -> TimeSeries:
        """A fetched or cached series as this source holds it (a tariff labels prices with
        the config's currency)."""
        return series

    def _cache_unit(self) -> str | None:
        """The only unit a cached series may have (None: any, `_adopt` relabels it)."""
        return self.unit

    async def _get_text(self, url: str, method: str = "GET", **kwargs: Any) -> str:
        """One request (`get_text`): transport failures and error statuses become this
        source's error classes."""
        return await get_text(method, url, source=self.source, timeout_s=self.timeout_s,
                              error=self.error, auth_error=self.auth_error,
                              rate_limited=self.rate_limited, **kwargs)

    # -- public ----------------------------------------------------------------------------
    @property
    def series(self) -> TimeSeries:
        """The last good series held (possibly from the cache, possibly empty)."""
        self._load_cache_once()
        return self._series

    @property
    def last_success_s(self) -> float | None:
        """When the last fetch succeeded (None: not since the start)."""
        return self._last_success_s

    def status(self, now_s: float) -> FetchStatus:
        self._load_cache_once()
        return FetchStatus(self.source, self._last_success_s, self._last_attempt_s,
                           self._failures, self._last_error, self.next_refresh_s(now_s),
                           self._series.covered_until_s(now_s))

    def next_refresh_s(self, now_s: float) -> float:
        return self.policy.next_fetch_s(now_s, last_attempt_s=self._last_attempt_s,
                                        failures=self._failures,
                                        retry_after_until_s=self._retry_after_until_s)

    async def latest(self, now_s: float) -> TimeSeries:
        """The last good series; fetches first when due. Never raises on network or data
        trouble (logged, retried later with back-off)."""
        self._load_cache_once()
        async with self._fetch_lock:
            if self.next_refresh_s(now_s) <= now_s:
                try:
                    await self._refresh_at(now_s)
                except self.error:
                    pass  # logged and counted; the last good series stays
        return self._series

    async def refresh(self) -> None:
        """Fetch now regardless of the schedule; raises `error` on failure."""
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
            cached = self._adopt(cached)
            try:
                self._check(cached)
            except SeriesDataError as exc:
                log.error("%s cache %s refused: %s", self.what, self._cache.path, exc)
                return
            self._series = cached
            log.info("%s: %d cached %s slots loaded from %s", self.source, len(cached),
                     self.what, self._cache.path)

    async def _refresh_at(self, now_s: float) -> None:
        self._last_attempt_s = now_s
        try:
            fresh = self._adopt(await self._fetch(now_s))
            if not isinstance(fresh, self.series_class) or fresh.unit != self.unit:
                raise SeriesDataError(f"{self.source}: fetch gave no {self.unit} series")
            if self.empty_is_error and not len(fresh):
                raise SeriesDataError(f"{self.source}: the answer holds no {self.what}")
            self._check(fresh)
        except Exception as exc:  # noqa: BLE001 - a bad answer must never stop the service
            failure = self._failure(exc)
            self._failures += 1
            self._last_error = str(failure)
            retry_after = getattr(failure, "retry_after_s", None)
            self._retry_after_until_s = now_s + retry_after if retry_after else None
            log.error("%s: %s fetch failed (%d in a row), keeping the last good data: %s",
                      self.source, self.what, self._failures, failure)
            if failure is exc:
                raise
            raise failure from exc
        self._failures = 0
        self._last_error = None
        self._retry_after_until_s = None
        self._last_success_s = now_s
        self._series = self._series.merged_with(fresh).since(now_s - self.keep_history_s)
        if self._cache is not None:
            try:
                self._cache.save(self._series)
            except OSError as exc:
                log.error("%s: cannot write %s cache %s: %s", self.source, self.what,
                          self._cache.path, exc)
        log.info("%s: %d %s slots fetched, they reach %s", self.source, len(fresh), self.what,
                 self._series.end_s)

    def _failure(self, exc: Exception) -> Exception:
        """`exc` as this source's error: data errors with the source's name in front,
        anything unexpected logged with its traceback."""
        if isinstance(exc, self.error):
            return exc
        if isinstance(exc, SeriesDataError):
            return self.error(str(exc) if str(exc).startswith(self.source)
                              else f"{self.source}: {exc}")
        log.exception("%s: unexpected error while fetching %s", self.source, self.what)
        return self.error(f"{self.source}: unexpected error: {exc!r}")


async def get_text(method: str, url: str, *, source: str, timeout_s: float,
                   error: type[Exception], auth_error: type[Exception],
                   rate_limited: type[Exception], **kwargs) -> str:
    """The response body of one request; `error` (or its subclasses `auth_error`,
    `rate_limited(message, retry_after_s)`) for anything else."""
    import aiohttp
    try:
        async with aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
            async with session.request(method, url, **kwargs) as response:
                body = await response.text(errors="replace")
                if response.status in (401, 403):
                    raise auth_error(f"{source}: access refused (HTTP {response.status}); "
                                     "check the API token")
                if response.status == 429:
                    raise rate_limited(f"{source}: rate limited (HTTP 429)",
                                       retry_after_s(response.headers.get("Retry-After")))
                if response.status >= 400:
                    raise error(f"{source}: HTTP {response.status}: {body.strip()[:200]}")
                return body
    except TimeoutError as exc:
        raise error(f"{source}: no answer within {timeout_s:g} s") from exc
    except aiohttp.ClientError as exc:
        raise error(f"{source}: connection failed: {exc}") from exc


def retry_after_s(header: str | None) -> float | None:
    """Seconds from a Retry-After header given in seconds; None when absent or a date."""
    if not header:
        return None
    try:
        value = float(header)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None
