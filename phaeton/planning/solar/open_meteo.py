"""Open-Meteo's weather forecast API (open-meteo.com, no key for non-commercial use): the PV
power of the site's arrays from the forecast irradiance, every 15 minutes.

GET {url}/v1/forecast?latitude=..&longitude=..&minutely_15=shortwave_radiation,
    direct_normal_irradiance,diffuse_radiation&past_days=2&forecast_days=3&timezone=GMT
    &timeformat=unixtime
-> {"minutely_15": {"time": [unix s, ...], "shortwave_radiation": [W/m², ...],
                    "direct_normal_irradiance": [...], "diffuse_radiation": [...]}, ...}

Each value is the mean over the 15 minutes before its time (Open-Meteo's documentation of the
15-minutely radiation variables). One request serves every array: the irradiance goes onto
each array's plane with the same model the learned forecast uses (`forecast_pv.
plane_of_array_w_m2`, the sun at the middle of the slot), times kWp / 1000 W/m² and the
`performance_ratio` (inverter, temperature, wiring; `solar.blend` then calibrates the whole on
the site's meter). A value of null (beyond the model's reach) leaves its slot out. The past two
days come along so the calibration has something to compare from the first fetch on.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from phaeton.planning.forecast_pv import plane_of_array_w_m2, solar_position
from phaeton.planning.solar.base import FetchingPvSource, PvSite, load_json
from phaeton.planning.solar.series import PvDataError, PvSeries

NAME = "open_meteo"
URL = "https://api.open-meteo.com"
SLOT_S = 900
VARIABLES = ("shortwave_radiation", "direct_normal_irradiance", "diffuse_radiation")


@dataclass(frozen=True)
class OpenMeteoConfig:
    """`url`: Open-Meteo's API or a self-hosted one; `performance_ratio`: AC energy per kWh
    of irradiance on the rated panels (0.85 is typical); `interval_s`: wait after a fetch."""

    url: str = URL
    performance_ratio: float = 0.85
    interval_s: float = 3600.0

    def __post_init__(self) -> None:
        if not str(self.url).startswith(("http://", "https://")):
            raise ValueError(f"url must be http(s), got {self.url!r}")
        if not (isinstance(self.performance_ratio, (int, float))
                and 0.3 <= self.performance_ratio <= 1.0):
            raise ValueError(f"performance_ratio must be within 0.3..1.0, got "
                             f"{self.performance_ratio!r}")


class OpenMeteo(FetchingPvSource):
    """The site's PV power from Open-Meteo's 15-minute irradiance forecast."""

    def __init__(self, config: OpenMeteoConfig, site: PvSite, **options):
        self.config = config
        super().__init__(site, source=NAME, **options)

    def config_key(self) -> str:
        return f"{NAME}|{self.config.url}|{self.config.performance_ratio:g}|{self.site.key()}"

    def query(self) -> dict[str, str]:
        return {"latitude": f"{self.site.latitude_deg:.4f}",
                "longitude": f"{self.site.longitude_deg:.4f}",
                "minutely_15": ",".join(VARIABLES), "past_days": "2", "forecast_days": "3",
                "timezone": "GMT", "timeformat": "unixtime"}

    async def _fetch(self, now_s: float) -> PvSeries:
        text = await self._get_text(f"{self.config.url.rstrip('/')}/v1/forecast",
                                    params=self.query())
        return parse_forecast(text, self.site, self.config.performance_ratio, now_s)


def parse_forecast(text: str, site: PvSite, performance_ratio: float,
                   fetched_at_s: float) -> PvSeries:
    """The arrays' mean power per 15 minutes from an Open-Meteo answer."""
    answer = load_json(NAME, text)
    if answer.get("error"):
        raise PvDataError(f"{NAME}: API error: {answer.get('reason')!r}")
    block = answer.get("minutely_15")
    if not isinstance(block, dict) or not isinstance(block.get("time"), list):
        raise PvDataError(f"{NAME}: answer has no minutely_15 times")
    times = block["time"]
    columns = []
    for name in ("time", *VARIABLES):
        values = block.get(name)
        if not isinstance(values, list) or len(values) != len(times):
            raise PvDataError(f"{NAME}: minutely_15.{name} is missing or not as long as the "
                              f"times")
        columns.append([_number(value, name) for value in values])
    end, ghi, dni, dhi = (np.array(column, dtype=float) for column in columns)
    known = np.isfinite(end) & np.isfinite(ghi) & np.isfinite(dni) & np.isfinite(dhi)
    end, ghi, dni, dhi = end[known], ghi[known], dni[known], dhi[known]
    if end.size and (np.any(end % SLOT_S) or np.any(np.diff(end) <= 0)):
        raise PvDataError(f"{NAME}: minutely_15 times are not rising quarter hours")
    if np.any(ghi < 0) or np.any(dni < 0) or np.any(dhi < 0):
        raise PvDataError(f"{NAME}: negative irradiance")
    zenith, azimuth = solar_position(end - SLOT_S / 2, site.latitude_deg, site.longitude_deg)
    dni = np.where(zenith < 90.0, dni, 0.0)       # no beam from below the horizon
    kw = np.zeros(end.size)
    for tilt, array_azimuth, kwp in site.arrays:
        poa = plane_of_array_w_m2(zenith, azimuth, ghi, dni, dhi, tilt, array_azimuth)
        kw += kwp * poa / 1000.0
    return PvSeries((end - SLOT_S).astype(np.int64), np.full(end.size, SLOT_S),
                    kw * performance_ratio, NAME, fetched_at_s)


def _number(value, what: str) -> float:
    """A JSON number as float, null as NaN (a slot left out); anything else refused."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        raise PvDataError(f"{NAME}: minutely_15.{what} holds {value!r}, not a number")
    return float(value)
