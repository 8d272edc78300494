"""A fixed carbon intensity: a country's yearly average (`countries.py`) or a given number."""
from __future__ import annotations

import math

import numpy as np

from phaeton.planning.carbon.base import CarbonSource
from phaeton.planning.carbon.countries import country_intensity
from phaeton.planning.carbon.factory import CarbonContext, construct
from phaeton.planning.carbon.series import (MAX_G_PER_KWH, QUARTER_HOUR_S, CarbonSeries)

DEFAULT_HISTORY_S = 2 * 86400
DEFAULT_HORIZON_S = 48 * 3600


class StaticCarbonSource(CarbonSource):
    """The same intensity at all times, as 15-min slots from `history_s` before the current
    slot to `horizon_s` after it."""

    def __init__(self, country: str | None = None, g_per_kwh: float | None = None, *,
                 history_s: int = DEFAULT_HISTORY_S, horizon_s: int = DEFAULT_HORIZON_S):
        if g_per_kwh is not None:
            if isinstance(g_per_kwh, bool) or not isinstance(g_per_kwh, (int, float)) \
                    or not math.isfinite(g_per_kwh) \
                    or not 0 <= g_per_kwh <= MAX_G_PER_KWH:
                raise ValueError(f"g_per_kwh must be a number from 0 to {MAX_G_PER_KWH:g}, "
                                 f"got {g_per_kwh!r}")
            value, self.source = float(g_per_kwh), "static"
        elif country is not None:
            value, self.source = country_intensity(country), f"static {str(country).upper()}"
        else:
            raise ValueError("give country (a code from the table in docs/carbon.md) or "
                             "g_per_kwh")
        if horizon_s < QUARTER_HOUR_S or history_s < 0:
            raise ValueError("need horizon_s >= 900 and history_s >= 0")
        self.g_per_kwh = value
        self.history_s = int(history_s)
        self.horizon_s = int(horizon_s)

    async def intensity(self, now_s: float) -> CarbonSeries:
        first = int(math.floor((now_s - self.history_s) / QUARTER_HOUR_S) * QUARTER_HOUR_S)
        end = now_s + self.horizon_s
        n = int(math.ceil((end - first) / QUARTER_HOUR_S))
        return CarbonSeries(first + QUARTER_HOUR_S * np.arange(n, dtype=np.int64),
                            np.full(n, QUARTER_HOUR_S), np.full(n, self.g_per_kwh),
                            self.source, now_s)

    async def refresh(self) -> None:
        """Nothing to fetch: the intensity is configuration."""


def source_from_section(settings: dict, context: CarbonContext) -> StaticCarbonSource:
    """The builder `carbon.registry` names: `carbon.static`."""
    return construct(StaticCarbonSource, settings, context.where)
