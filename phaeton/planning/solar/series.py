"""PV power as a typed time series: one column "power" in kW, the mean over each slot.

`PvSeries` is the `TimeSeries` case the PV forecast sources answer with (the price and carbon
series' sibling): UTC slot starts and durations, the expected mean AC power of the site's
arrays in each slot. Mean power is what resampling keeps (`on_grid`: an hourly value repeats
on the 15-minute grid, 15-minute values average onto an hour); kWh per quarter hour is
power x 0.25. Pure: no I/O.
"""
from __future__ import annotations

import numpy as np

from phaeton.planning.tariffs.series import SeriesDataError, TimeSeries

UNIT = "kW"
COLUMN = "power"
MAX_SHARE_OF_KWP = 1.5
"""A forecast above 1.5 x the configured kWp is a unit mistake (W for kW) or arrays that are
not the configured ones: panels on the best day deliver about their rated power, never half as
much again."""


class PvDataError(SeriesDataError):
    """PV power that cannot be used: not numbers, negative, absurd, wrong shapes."""


class PvSeries(TimeSeries):
    """Expected mean PV power (kW) for slots."""

    COLUMNS = (COLUMN,)
    DEFAULT_UNIT = UNIT
    WHAT = "PV power"
    data_error = PvDataError

    def __init__(self, start_s, duration_s, kw, source: str, fetched_at_s: float, *,
                 unit: str = UNIT):
        super().__init__(start_s, duration_s, {COLUMN: kw}, unit=unit, source=source,
                         fetched_at_s=fetched_at_s)

    @property
    def kw(self) -> np.ndarray:
        return self.values[COLUMN]

    def kwh_per_slot(self, starts_s: np.ndarray, slot_s: int = 900) -> np.ndarray:
        """Energy (kWh) in each slot of a regular grid starting at `starts_s[0]`; NaN where
        the series does not cover a slot fully."""
        starts = np.asarray(starts_s, dtype=np.int64)
        if not starts.size:
            return np.zeros(0)
        grid = self.on_grid(float(starts[0]), float(starts.size * slot_s), slot_s)
        return grid.values[COLUMN][:starts.size] * slot_s / 3600.0


def check_power(source: str, values, kwp: float) -> None:
    """Refuse NaN/inf, negative power and more than MAX_SHARE_OF_KWP x `kwp`, naming the
    source and the value."""
    values = np.asarray(values, dtype=float).reshape(-1)
    if not values.size:
        return
    if not np.all(np.isfinite(values)):
        raise PvDataError(f"{source}: answer contains PV power that is not a number")
    if np.min(values) < 0:
        raise PvDataError(f"{source}: negative PV power {float(np.min(values)):g} kW")
    limit = MAX_SHARE_OF_KWP * kwp
    if np.max(values) > limit:
        raise PvDataError(f"{source}: PV power {float(np.max(values)):g} kW is beyond "
                          f"{MAX_SHARE_OF_KWP:g} x the configured {kwp:g} kWp; wrong unit (W "
                          f"for kW) or arrays not as in planner.site?")
