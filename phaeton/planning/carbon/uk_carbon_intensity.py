"""GB Carbon Intensity API (api.carbonintensity.org.uk, National Energy System Operator; no
token): half-hour slots of g CO2/kWh, the past 24 h and a 48 h forecast.

National:  GET /intensity/{from}/pt24h and /intensity/{from}/fw48h
           {"data": [{"from": "2026-12-06T03:30Z", "to": "2026-12-06T04:00Z",
                      "intensity": {"forecast": 266, "actual": 263, "index": "moderate"}}]}
           `actual` is null for slots not yet measured; it wins over the forecast.
Regional:  GET /regional/intensity/{from}/pt24h/regionid/{id} and .../fw48h/regionid/{id}
           {"data": {"regionid": 13, "shortname": "London",
                     "data": [{"from": ..., "to": ..., "intensity": {"forecast": 180,
                               "index": "low"}, "generationmix": [...]}]}}
           (forecasts only; `data` may also come as a one-element list).
Times are UTC "YYYY-MM-DDThh:mmZ".
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from phaeton.clock import REAL_CLOCK, Clock
from phaeton.planning.carbon.base import FetchingCarbonSource
from phaeton.planning.carbon.factory import CarbonContext, construct
from phaeton.planning.interval_refresh import IntervalRefresh
from phaeton.planning.carbon.series import CarbonDataError, CarbonSeries, finite_number

UK_URL = "https://api.carbonintensity.org.uk"
HALF_HOUR_S = 1800
NAME = "uk_carbon_intensity"


@dataclass(frozen=True)
class UkCarbonConfig:
    """`region_id` 1..17 (the API's regions), None = national."""

    region_id: int | None = None
    url: str = UK_URL

    def __post_init__(self) -> None:
        if self.region_id is not None and (isinstance(self.region_id, bool)
                                           or not isinstance(self.region_id, int)
                                           or not 1 <= self.region_id <= 17):
            raise ValueError(f"region_id must be 1..17 or null, got {self.region_id!r}")
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
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return int(moment.timestamp())


def parse_uk_answer(text: str, fetched_at_s: float) -> CarbonSeries:
    """A national or regional answer -> CarbonSeries (actual where measured, else forecast);
    CarbonDataError on anything odd."""
    try:
        answer = json.loads(text)
    except ValueError as exc:
        raise CarbonDataError(f"{NAME}: answer is not JSON: {text.strip()[:80]!r}") from exc
    if not isinstance(answer, dict):
        raise CarbonDataError(f"{NAME}: answer is not a JSON object")
    if "error" in answer:
        raise CarbonDataError(f"{NAME}: API error: {answer['error']!r}")
    entries = answer.get("data")
    if isinstance(entries, list) and len(entries) == 1 and isinstance(entries[0], dict) \
            and "regionid" in entries[0]:
        entries = entries[0]
    if isinstance(entries, dict):          # regional: the region's own "data" list
        entries = entries.get("data")
    if not isinstance(entries, list):
        raise CarbonDataError(f"{NAME}: answer lacks the data list")
    rows = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise CarbonDataError(f"{NAME}: entry {number} is not an object")
        if "from" not in entry or "to" not in entry or "intensity" not in entry:
            raise CarbonDataError(f"{NAME}: entry {number} lacks from, to or intensity")
        start = _utc_s(entry["from"], f"entry {number} from")
        end = _utc_s(entry["to"], f"entry {number} to")
        if end <= start:
            raise CarbonDataError(f"{NAME}: entry {number} ends before it starts")
        intensity = entry["intensity"]
        if not isinstance(intensity, dict):
            raise CarbonDataError(f"{NAME}: entry {number} intensity is not an object")
        value = intensity.get("actual")
        if value is None:
            value = intensity.get("forecast")
        if value is None:
            raise CarbonDataError(f"{NAME}: entry {number} ({entry['from']}) has neither an "
                                  f"actual nor a forecast intensity")
        rows.append((start, end - start,
                     finite_number(value, f"{NAME}: entry {number} intensity")))
    if not rows:
        raise CarbonDataError(f"{NAME}: the answer holds no intensities")
    rows.sort()
    # a slot repeated inside one answer: the later entry wins
    unique: dict[int, tuple] = {row[0]: row for row in rows}
    return CarbonSeries.from_slots(unique.values(), NAME, fetched_at_s)


class UkCarbonIntensity(FetchingCarbonSource):
    """Half-hour intensities from the GB Carbon Intensity API, national or one region."""

    def __init__(self, config: UkCarbonConfig, *, cache_path=None,
                 refresh: IntervalRefresh | None = None, clock: Clock = REAL_CLOCK,
                 timeout_s: float = 20.0):
        self.config = config
        super().__init__(source=NAME, cache_path=cache_path, refresh=refresh, clock=clock,
                         timeout_s=timeout_s)

    def config_key(self) -> str:
        return f"{NAME}|{self.config.url}|{self.config.region_id}"

    def urls(self, now_s: float) -> list[str]:
        """The next 48 h from the current half hour, then the past 24 h (laid over the
        forecast: measured values win)."""
        start = int(now_s) // HALF_HOUR_S * HALF_HOUR_S
        stamp = dt.datetime.fromtimestamp(start, dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
        base = self.config.url.rstrip("/")
        if self.config.region_id is None:
            return [f"{base}/intensity/{stamp}/fw48h", f"{base}/intensity/{stamp}/pt24h"]
        region = f"regionid/{self.config.region_id}"
        return [f"{base}/regional/intensity/{stamp}/fw48h/{region}",
                f"{base}/regional/intensity/{stamp}/pt24h/{region}"]

    async def _fetch(self, now_s: float) -> CarbonSeries:
        series = CarbonSeries.empty(NAME, now_s)
        for url in self.urls(now_s):
            body = await self._get_text(url, headers={"Accept": "application/json"})
            series = series.merged_with(parse_uk_answer(body, now_s))
        if series.covered_until_s(now_s) <= now_s:
            raise CarbonDataError(f"{NAME}: the answer has no intensity for the current time")
        return series


def source_from_section(settings: dict, context: CarbonContext) -> UkCarbonIntensity:
    """The builder `carbon.registry` names: `carbon.uk_carbon_intensity`."""
    config = construct(UkCarbonConfig, settings, context.where)
    return UkCarbonIntensity(config, **context.fetching_options())
