"""Electricity Maps API (v3): carbon intensity of a zone in g CO2-eq/kWh (lifecycle), hourly.

GET {url}/v3/carbon-intensity/latest?zone=DE     {"zone": "DE", "carbonIntensity": 302,
                                                  "datetime": "2026-12-06T03:00:00.000Z",
                                                  "updatedAt": ..., "isEstimated": false, ...}
GET {url}/v3/carbon-intensity/history?zone=DE    {"zone": "DE", "history": [<as latest>, ...]}
                                                  (the past 24 h)
GET {url}/v3/carbon-intensity/forecast?zone=DE   {"zone": "DE", "forecast": [{"carbonIntensity":
                                                  ..., "datetime": ...}, ...], "updatedAt": ...}
Every request carries the token in the header `auth-token`. `datetime` is the start of the
hour the value holds for. Measured values (latest, history) win over the forecast.

Checked against public clients, not the live API (none here): `carbonIntensity` can be null in
the history (carbon-aware-sdk's history model has it nullable): such an hour is left out, not
the whole answer. The free personal tier has latest and history but no forecast
(docs.electricitymaps.com; evcc's electricitymaps-free template): a refused forecast keeps
the history and latest and says, once, to set `forecast: false`.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass

import numpy as np

from phaeton.clock import REAL_CLOCK, Clock
from phaeton.planning.carbon.base import CarbonError, CarbonRateLimited, FetchingCarbonSource
from phaeton.planning.carbon.factory import CarbonContext, construct
from phaeton.planning.interval_refresh import IntervalRefresh
from phaeton.planning.carbon.series import CarbonDataError, CarbonSeries, finite_number

EMAPS_URL = "https://api.electricitymap.org"
NAME = "electricity_maps"
HOUR_S = 3600

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ElectricityMapsConfig:
    """`zone`: an Electricity Maps zone key ("DE", "GB", "US-CAL-CISO")."""

    token: str
    zone: str = "DE"
    forecast: bool = True
    url: str = EMAPS_URL

    def __post_init__(self) -> None:
        if not isinstance(self.token, str) or not self.token.strip():
            raise ValueError("token must be a non-empty string")
        if not isinstance(self.zone, str) or not self.zone.strip():
            raise ValueError(f"zone must be a zone key such as 'DE', got {self.zone!r}")
        if not isinstance(self.forecast, bool):
            raise ValueError(f"forecast must be true or false, got {self.forecast!r}")
        if not str(self.url).startswith(("http://", "https://")):
            raise ValueError(f"url must be http(s), got {self.url!r}")


def _utc_s(text, what: str) -> int:
    if not isinstance(text, str):
        raise CarbonDataError(f"{NAME}: {what} is not a time: {text!r}")
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise CarbonDataError(f"{NAME}: {what} {text!r} is not a time") from exc
    if moment.tzinfo is None:
        raise CarbonDataError(f"{NAME}: {what} {text!r} has no UTC offset")
    return int(moment.timestamp())


def _load(text: str, what: str) -> dict:
    try:
        answer = json.loads(text)
    except ValueError as exc:
        raise CarbonDataError(f"{NAME}: {what} answer is not JSON: "
                              f"{text.strip()[:80]!r}") from exc
    if not isinstance(answer, dict):
        raise CarbonDataError(f"{NAME}: {what} answer is not a JSON object")
    if "error" in answer:
        raise CarbonDataError(f"{NAME}: {what}: API error: {answer['error']!r}")
    return answer


def _entries_to_series(entries, what: str, fetched_at_s: float) -> CarbonSeries:
    if not isinstance(entries, list):
        raise CarbonDataError(f"{NAME}: {what} is not a list")
    starts, values = [], []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or "datetime" not in entry \
                or "carbonIntensity" not in entry:
            raise CarbonDataError(f"{NAME}: {what} entry {number} lacks datetime or "
                                  f"carbonIntensity")
        if entry["carbonIntensity"] is None:
            continue            # no value for that hour (the API's null): left out
        starts.append(_utc_s(entry["datetime"], f"{what} entry {number} datetime"))
        values.append(finite_number(entry["carbonIntensity"],
                                    f"{NAME}: {what} entry {number} carbonIntensity"))
    if not starts:
        return CarbonSeries.empty(NAME, fetched_at_s)
    order = np.argsort(starts, kind="stable")
    start_s = np.array(starts, np.int64)[order]
    if np.any(np.diff(start_s) <= 0):
        raise CarbonDataError(f"{NAME}: {what} has two entries for the same time")
    step = int(np.diff(start_s).min()) if start_s.size > 1 else HOUR_S
    if step > HOUR_S or HOUR_S % step:
        step = HOUR_S
    return CarbonSeries(start_s, np.full(start_s.size, step), np.array(values)[order], NAME,
                        fetched_at_s)


def parse_latest(text: str, fetched_at_s: float) -> CarbonSeries:
    answer = _load(text, "latest")
    return _entries_to_series([answer], "latest", fetched_at_s)


def parse_history(text: str, fetched_at_s: float) -> CarbonSeries:
    answer = _load(text, "history")
    if "history" not in answer:
        raise CarbonDataError(f"{NAME}: history answer lacks 'history'")
    return _entries_to_series(answer["history"], "history", fetched_at_s)


def parse_forecast(text: str, fetched_at_s: float) -> CarbonSeries:
    answer = _load(text, "forecast")
    if "forecast" not in answer:
        raise CarbonDataError(f"{NAME}: forecast answer lacks 'forecast'")
    return _entries_to_series(answer["forecast"], "forecast", fetched_at_s)


class ElectricityMaps(FetchingCarbonSource):
    """Hourly intensities of one zone: past 24 h, the latest hour and (optionally) the
    forecast."""

    def __init__(self, config: ElectricityMapsConfig, *, cache_path=None,
                 refresh: IntervalRefresh | None = None, clock: Clock = REAL_CLOCK,
                 timeout_s: float = 20.0):
        self.config = config
        self._forecast_problem: str | None = None   # the last refused forecast, said once
        super().__init__(source=NAME, cache_path=cache_path, refresh=refresh, clock=clock,
                         timeout_s=timeout_s)

    def config_key(self) -> str:
        c = self.config
        return f"{NAME}|{c.url}|{c.zone}|{c.forecast}"

    async def _get(self, endpoint: str) -> str:
        return await self._get_text(
            f"{self.config.url.rstrip('/')}/v3/carbon-intensity/{endpoint}",
            params={"zone": self.config.zone}, headers={"auth-token": self.config.token})

    async def _fetch(self, now_s: float) -> CarbonSeries:
        measured = parse_history(await self._get("history"), now_s)
        measured = measured.merged_with(parse_latest(await self._get("latest"), now_s))
        if not self.config.forecast:
            return measured
        try:
            forecast = parse_forecast(await self._get("forecast"), now_s)
        except CarbonRateLimited:
            raise
        except CarbonError as exc:       # refused or failed; garbage (CarbonDataError) raises
            if str(exc) != self._forecast_problem:
                log.warning("%s: forecast not available, planning with the past 24 h only: "
                            "%s (the free personal tier has no forecast: set "
                            "carbon.electricity_maps.forecast: false)", NAME, exc)
            self._forecast_problem = str(exc)
            return measured
        self._forecast_problem = None
        return forecast.merged_with(measured)      # measured values win


def source_from_section(settings: dict, context: CarbonContext) -> ElectricityMaps:
    """The builder `carbon.registry` names: `carbon.electricity_maps`."""
    config = construct(ElectricityMapsConfig, settings, context.where)
    return ElectricityMaps(config, **context.fetching_options())
