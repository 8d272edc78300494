"""Solcast's rooftop sites (solcast.com; the free home-user plan allows 10 requests a day):
the PV power of each site the owner set up at Solcast, per 30 minutes, 48 hours ahead.

GET {url}/rooftop_sites/{resource_id}/forecasts?format=json&hours=48
    Authorization: Bearer {api_key}
-> {"forecasts": [{"pv_estimate": kW, "pv_estimate10": .., "pv_estimate90": ..,
                   "period_end": "2026-06-01T12:30:00.0000000Z", "period": "PT30M"}, ...]}

`pv_estimate` (the median) is the mean power over the period ending at `period_end`. Several
sites (an east and a west roof set up as two) are added up per quarter hour. The wait after a
fetch is 3 h per site unless `interval_s` says otherwise, which keeps one or two sites within
the free plan's 10 requests a day.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from phaeton.planning.solar.base import (FetchingPvSource, PvSite, kilowatts, load_json,
                                         summed, utc_s)
from phaeton.planning.solar.series import PvDataError, PvSeries

NAME = "solcast"
URL = "https://api.solcast.com.au"
INTERVAL_PER_SITE_S = 3 * 3600.0
RESOURCE_PATTERN = r"^[A-Za-z0-9-]+$"
_PERIOD = re.compile(r"^PT(\d+)([MH])$")


@dataclass(frozen=True)
class SolcastConfig:
    """`sites`: the resource ids of the rooftop sites (one per array set up at Solcast)."""

    api_key: str
    sites: tuple[str, ...] = ()
    url: str = URL
    interval_s: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.api_key, str) or not self.api_key.strip():
            raise ValueError("api_key must be a non-empty string")
        sites = tuple(self.sites) if isinstance(self.sites, (list, tuple)) else ()
        if not sites or not all(isinstance(site, str) and re.match(RESOURCE_PATTERN, site)
                                for site in sites):
            raise ValueError(f"sites must list the rooftop sites' resource ids, got "
                             f"{self.sites!r}")
        object.__setattr__(self, "sites", sites)
        if not str(self.url).startswith(("http://", "https://")):
            raise ValueError(f"url must be http(s), got {self.url!r}")

    @property
    def wait_s(self) -> float:
        """The wait after a fetch: `interval_s`, else 3 h per site."""
        return float(self.interval_s) if self.interval_s else INTERVAL_PER_SITE_S * len(
            self.sites)


class Solcast(FetchingPvSource):
    """The site's PV power from Solcast's forecasts of its rooftop sites."""

    def __init__(self, config: SolcastConfig, site: PvSite, **options):
        self.config = config
        super().__init__(site, source=NAME, **options)

    def config_key(self) -> str:
        return f"{NAME}|{self.config.url}|{','.join(self.config.sites)}|{self.site.key()}"

    async def _fetch(self, now_s: float) -> PvSeries:
        parts = []
        for resource in self.config.sites:
            text = await self._get_text(
                f"{self.config.url.rstrip('/')}/rooftop_sites/{resource}/forecasts",
                params={"format": "json", "hours": "48"},
                headers={"Authorization": f"Bearer {self.config.api_key}"})
            parts.append(parse_forecasts(text, now_s))
        return summed(parts, NAME, now_s)


def parse_forecasts(text: str, fetched_at_s: float) -> PvSeries:
    """One site's mean power per period from a Solcast answer."""
    answer = load_json(NAME, text)
    entries = answer.get("forecasts")
    if not isinstance(entries, list) or not entries:
        raise PvDataError(f"{NAME}: answer has no forecasts")
    rows = []
    for number, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise PvDataError(f"{NAME}: forecast {number} is not an object")
        end = utc_s(NAME, entry.get("period_end"), f"forecast {number}'s period_end")
        period = _PERIOD.match(str(entry.get("period", "")))
        if period is None:
            raise PvDataError(f"{NAME}: forecast {number}'s period {entry.get('period')!r} is "
                              f"not PT<n>M or PT<n>H")
        duration = int(period.group(1)) * (60 if period.group(2) == "M" else 3600)
        if duration <= 0:
            raise PvDataError(f"{NAME}: forecast {number} has an empty period")
        rows.append((end - duration, duration,
                     kilowatts(NAME, entry.get("pv_estimate"), f"forecast {number}'s "
                                                               "pv_estimate")))
    rows.sort()
    return PvSeries(np.array([row[0] for row in rows], dtype=np.int64),
                    np.array([row[1] for row in rows], dtype=np.int64),
                    np.array([row[2] for row in rows]), NAME, fetched_at_s)
