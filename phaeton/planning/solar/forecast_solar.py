"""Forecast.Solar (forecast.solar; free without a key, more with a paid key): the PV energy of
each array per period, today and tomorrow.

GET {url}/[{api_key}/]estimate/{lat}/{lon}/{dec}/{az}/{kwp}?time=utc&full=1
-> {"result": {"watts": {...}, "watt_hours_period": {"2026-06-01T05:00:00+00:00": Wh, ...},
               "watt_hours": {...}, "watt_hours_day": {...}},
    "message": {"code": 0, "type": "success", "ratelimit": {...}, ...}}

`dec` is the tilt (0 = flat), `az` the direction with 0 = south, -90 = east, 90 = west (the
config's compass azimuth minus 180). `watt_hours_period` is the energy of the period that ends
at its time (since the time before); it is read as the mean power over that period. One request
per array (the free tier takes one plane per request and 12 requests an hour); the arrays are
added up per quarter hour. A 429 waits as long as Retry-After says.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from phaeton.planning.solar.base import (FetchingPvSource, PvSite, kilowatts, load_json,
                                         summed, utc_s)
from phaeton.planning.solar.series import PvDataError, PvSeries

NAME = "forecast_solar"
URL = "https://api.forecast.solar"
KEY_PATTERN = r"^[A-Za-z0-9]+$"


@dataclass(frozen=True)
class ForecastSolarConfig:
    """`api_key`: a paid plan's key (None: the free public API)."""

    api_key: str | None = None
    url: str = URL
    interval_s: float = 3600.0

    def __post_init__(self) -> None:
        if not str(self.url).startswith(("http://", "https://")):
            raise ValueError(f"url must be http(s), got {self.url!r}")
        if self.api_key is not None and (not isinstance(self.api_key, str)
                                         or not self.api_key.isalnum()):
            raise ValueError("api_key must be letters and digits")


class ForecastSolar(FetchingPvSource):
    """The site's PV power from Forecast.Solar's estimate of each array."""

    def __init__(self, config: ForecastSolarConfig, site: PvSite, **options):
        self.config = config
        super().__init__(site, source=NAME, **options)

    def config_key(self) -> str:
        return f"{NAME}|{self.config.url}|{self.config.api_key is not None}|{self.site.key()}"

    def array_url(self, tilt: float, azimuth: float, kwp: float) -> str:
        key = f"{self.config.api_key}/" if self.config.api_key else ""
        return (f"{self.config.url.rstrip('/')}/{key}estimate/{self.site.latitude_deg:.4f}/"
                f"{self.site.longitude_deg:.4f}/{tilt:g}/{azimuth - 180:g}/{kwp:g}")

    async def _fetch(self, now_s: float) -> PvSeries:
        parts = []
        for tilt, azimuth, kwp in self.site.arrays:
            text = await self._get_text(self.array_url(tilt, azimuth, kwp),
                                        params={"time": "utc", "full": "1"})
            parts.append(parse_estimate(text, now_s))
        return summed(parts, NAME, now_s)


def parse_estimate(text: str, fetched_at_s: float) -> PvSeries:
    """One array's mean power per period from a Forecast.Solar answer."""
    answer = load_json(NAME, text)
    message = answer.get("message")
    if isinstance(message, dict) and message.get("type") not in (None, "success"):
        raise PvDataError(f"{NAME}: {message.get('type')}: {message.get('text')!r}")
    result = answer.get("result")
    periods = result.get("watt_hours_period") if isinstance(result, dict) else None
    if not isinstance(periods, dict) or not periods:
        raise PvDataError(f"{NAME}: answer has no result.watt_hours_period")
    ends = sorted((utc_s(NAME, moment, "a period's time"),
                   kilowatts(NAME, energy, f"the energy at {moment}") / 1000.0)
                  for moment, energy in periods.items())
    times = np.array([end for end, _ in ends], dtype=np.int64)
    kwh = np.array([energy for _, energy in ends])
    if np.any(np.diff(times) <= 0):
        raise PvDataError(f"{NAME}: two periods end at the same time")
    duration = np.diff(times)
    return PvSeries(times[:-1], duration, kwh[1:] / (duration / 3600.0), NAME, fetched_at_s)
