"""Carbon intensity as a typed time series: one column "intensity" in g CO2-eq per kWh.

`CarbonSeries` is the `TimeSeries` case the carbon sources answer with (the price series'
sibling, see `tariffs/series.py`): UTC slot starts and durations, one value per slot, the unit
"g/kWh". It goes through the same merging, history trimming, JSON round trip and resampling
(`on_grid` -> `GridIntensity`) as prices. Pure: no I/O.
"""
from __future__ import annotations

import math

import numpy as np

from phaeton.planning.tariffs.series import (QUARTER_HOUR_S, GridSeries, SeriesDataError,
                                             TimeSeries)

UNIT = "g/kWh"
COLUMN = "intensity"
MAX_G_PER_KWH = 2000.0
"""An intensity above 2000 g/kWh is a unit mistake (kg/MWh is the same number; g/MWh or
lb/MWh are not): the dirtiest lignite plants emit about 1200 g/kWh over their lifecycle and no
grid average comes near it."""


class CarbonDataError(SeriesDataError):
    """Intensities that cannot be used: not numbers, negative, absurd, wrong shapes."""


class GridIntensity(GridSeries):
    """Carbon intensity on a regular grid (NaN = no value for that slot)."""

    WHAT = "carbon intensity"

    @property
    def g_per_kwh(self) -> np.ndarray:
        return self.values[COLUMN]


class CarbonSeries(TimeSeries):
    """g CO2-eq per kWh for slots (history and forecast)."""

    COLUMNS = (COLUMN,)
    DEFAULT_UNIT = UNIT
    WHAT = "carbon intensity"
    data_error = CarbonDataError

    def __init__(self, start_s, duration_s, g_per_kwh, source: str, fetched_at_s: float, *,
                 unit: str = UNIT):
        super().__init__(start_s, duration_s, {COLUMN: g_per_kwh}, unit=unit, source=source,
                         fetched_at_s=fetched_at_s)

    @property
    def g_per_kwh(self) -> np.ndarray:
        return self.values[COLUMN]

    def intensity_at(self, t_s: float) -> float | None:
        """g/kWh of the slot holding `t_s`, or None when no slot holds it."""
        values = self.value_at(t_s)
        return None if values is None else values[COLUMN]

    def on_grid(self, start_s: float, horizon_s: float,
                slot_s: int = QUARTER_HOUR_S) -> GridIntensity:
        return super().on_grid(start_s, horizon_s, slot_s)  # type: ignore[return-value]

    @classmethod
    def _grid_class(cls) -> type[GridSeries]:
        return GridIntensity


def check_intensity(source: str, values) -> None:
    """Refuse NaN/inf, negative intensities and ones beyond MAX_G_PER_KWH (a unit mistake),
    naming the source and the value."""
    values = np.asarray(values, dtype=float).reshape(-1)
    if not values.size:
        return
    if not np.all(np.isfinite(values)):
        raise CarbonDataError(f"{source}: answer contains intensities that are not numbers")
    if np.min(values) < 0:
        raise CarbonDataError(f"{source}: negative carbon intensity {float(np.min(values)):g} "
                              f"g/kWh")
    if np.max(values) > MAX_G_PER_KWH:
        raise CarbonDataError(f"{source}: carbon intensity {float(np.max(values)):g} g/kWh is "
                              f"beyond {MAX_G_PER_KWH:g}; wrong unit?")


def finite_number(value, what: str) -> float:
    """`value` as a float; CarbonDataError naming `what` when it is no finite number (JSON
    null, text, NaN, a boolean)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise CarbonDataError(f"{what} is not a number: {value!r}")
    try:
        number = float(value)
    except ValueError as exc:
        raise CarbonDataError(f"{what} is not a number: {value!r}") from exc
    if not math.isfinite(number):
        raise CarbonDataError(f"{what} is not a finite number: {value!r}")
    return number
