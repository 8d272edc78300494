"""What the PV forecast sources share: the site they forecast for, their errors, and
`FetchingPvSource`, the `planning.fetching_series.FetchingSeries` of a `PvSeries` (the last good
forecast, its cache, the fetch interval with back-off, a bad answer refused with a specific
error).

A source keeps `KEEP_HISTORY_S` of past slots: `solar.blend` compares them with what the site's
PV meter measured to calibrate the forecast for this site.
"""
from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass

import numpy as np

from phaeton.planning.fetching_series import (FetchAuthError, FetchError, FetchingSeries,
                                              FetchRateLimited)
from phaeton.planning.solar.series import UNIT, PvDataError, PvSeries, check_power

KEEP_HISTORY_S = 14 * 86400
"""Past forecast slots kept in memory and cache: the calibration's look-back."""


class PvForecastError(FetchError):
    """A fetch failed; the message says why in words a user can act on."""


class PvForecastAuthError(PvForecastError, FetchAuthError):
    """The provider refused our API key (HTTP 401/403)."""


class PvForecastRateLimited(PvForecastError, FetchRateLimited):
    """The provider asked us to slow down (HTTP 429); `retry_after_s` if it said how long."""


@dataclass(frozen=True)
class PvSite:
    """Where the arrays are: latitude and longitude (degrees) and each array's (tilt°,
    azimuth° clockwise from north: 180 = south, kWp)."""

    latitude_deg: float
    longitude_deg: float
    arrays: tuple[tuple[float, float, float], ...]

    def __post_init__(self) -> None:
        for name, value, low, high in (("latitude_deg", self.latitude_deg, -90, 90),
                                       ("longitude_deg", self.longitude_deg, -180, 180)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or not low <= value <= high:
                raise ValueError(f"{name} must be within {low}..{high}, got {value!r}")
        if not self.arrays:
            raise ValueError("a PV forecast needs at least one array")
        for tilt, azimuth, kwp in self.arrays:
            if not (0 <= tilt <= 90 and 0 <= azimuth <= 360 and kwp > 0):
                raise ValueError(f"an array needs tilt 0..90°, azimuth 0..360° and kWp > 0, "
                                 f"got {tilt!r}, {azimuth!r}, {kwp!r}")

    @property
    def total_kwp(self) -> float:
        return sum(kwp for _, _, kwp in self.arrays)

    def key(self) -> str:
        """What a forecast depends on, for the cache."""
        arrays = ";".join(f"{tilt:g},{azimuth:g},{kwp:g}" for tilt, azimuth, kwp in self.arrays)
        return f"{self.latitude_deg:.4f},{self.longitude_deg:.4f}|{arrays}"


class FetchingPvSource(FetchingSeries):
    """Base of the PV forecast sources: subclasses implement `_fetch(now_s)` returning a
    PvSeries (raising PvForecastError or PvDataError) and `config_key()`."""

    series_class = PvSeries
    unit = UNIT
    what = "PV forecast"
    keep_history_s = KEEP_HISTORY_S
    error = PvForecastError
    auth_error = PvForecastAuthError
    rate_limited = PvForecastRateLimited

    def __init__(self, site: PvSite, **options):
        self.site = site
        super().__init__(**options)

    def _check(self, series: PvSeries) -> None:
        check_power(self.source, series.kw, self.site.total_kwp)


def load_json(source: str, text: str) -> dict:
    """The answer as a JSON object; PvDataError naming the source otherwise."""
    try:
        answer = json.loads(text)
    except ValueError as exc:
        raise PvDataError(f"{source}: answer is not JSON: {text.strip()[:80]!r}") from exc
    if not isinstance(answer, dict):
        raise PvDataError(f"{source}: answer is not a JSON object")
    return answer


def utc_s(source: str, text, what: str) -> int:
    """Unix seconds of an ISO 8601 time with a UTC offset ("Z" allowed, 7 decimals too)."""
    if not isinstance(text, str):
        raise PvDataError(f"{source}: {what} is not a time: {text!r}")
    cleaned = text.strip().replace("Z", "+00:00")
    head, dot, tail = cleaned.partition(".")
    if dot:     # Solcast writes 7 decimals, which Python 3.11's fromisoformat refuses
        digits = len(tail) - len(tail.lstrip("0123456789"))
        cleaned = head + tail[digits:]
    try:
        moment = dt.datetime.fromisoformat(cleaned)
    except ValueError as exc:
        raise PvDataError(f"{source}: {what} {text!r} is not a time") from exc
    if moment.tzinfo is None:
        raise PvDataError(f"{source}: {what} {text!r} has no UTC offset")
    return int(moment.timestamp())


def kilowatts(source: str, value, what: str) -> float:
    """`value` as a finite float; PvDataError naming `what` otherwise (null, text, NaN)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PvDataError(f"{source}: {what} is not a number: {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise PvDataError(f"{source}: {what} is not a finite number: {value!r}")
    return number


def summed(parts: list[PvSeries], source: str, fetched_at_s: float,
           slot_s: int = 900) -> PvSeries:
    """Several arrays' (or sites') forecasts as one: their mean power added up on `slot_s`
    slots, kept only where every part covers the slot."""
    if len(parts) == 1:
        return parts[0]
    spans = [(int(part.start_s[0]), int(part.start_s[-1] + part.duration_s[-1]))
             for part in parts if len(part)]
    if len(spans) < len(parts):
        return PvSeries.empty(source, fetched_at_s)
    start = max(first for first, _ in spans)
    end = min(last for _, last in spans)
    if end <= start:
        return PvSeries.empty(source, fetched_at_s)
    total = sum(part.on_grid(start, end - start, slot_s).values["power"] for part in parts)
    first = int(start // slot_s * slot_s)
    starts = first + slot_s * np.arange(total.size, dtype=np.int64)
    known = np.isfinite(total)
    return PvSeries(starts[known], np.full(int(known.sum()), slot_s), total[known], source,
                    fetched_at_s)
