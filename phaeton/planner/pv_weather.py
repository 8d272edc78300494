"""The planner's PV forecast from a weather service (`planner.pv_forecast`), between the source
and the plan.

`WeatherPv.from_config` builds the configured source (`planning/solar`; None for `learned`); a
setting it cannot use is logged and the learned forecast alone is used. Each planner tick calls
`start_refresh(now)`: when the source's interval is up it fetches in a task of its own, so a
slow or unreachable service never holds up the tick that steers the battery; `has_news()` says
a fetch has succeeded since the last plan (the planner then re-plans). Each plan calls
`apply(now, starts, history, learned_kwh)`, which calibrates the service's forecast on the PV
meter's history and puts it in place of the learned forecast where it has values
(`solar.blend`). `as_dict(now)` is what `/api/plan` shows under `pv_forecast`.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from phaeton.clock import Clock
from phaeton.planning.solar.blend import CALIBRATION_DAYS, PvBlend, blend

log = logging.getLogger(__name__)

SLOT_S = 900


class WeatherPv:
    """See the module. `source` is a `solar.base.FetchingPvSource`."""

    def __init__(self, source):
        self.source = source
        self.last: PvBlend | None = None
        self.fetching: asyncio.Task | None = None
        self._used_fetch_s: float | None = None     # the fetch the last plan used

    @classmethod
    def from_config(cls, planner: Mapping[str, Any], data_dir: str,
                    clock: Clock) -> WeatherPv | None:
        from phaeton.planning.solar.factory import pv_source_from_config
        try:
            source = pv_source_from_config(planner, data_dir, clock=clock)
        except ValueError as exc:          # PvForecastConfigError: the key and what is wrong
            log.error("planner: weather PV forecast off, the learned one is used: %s", exc)
            return None
        return None if source is None else cls(source)

    def start_refresh(self, now_s: float) -> None:
        """Fetch in a task of its own when due; a failure is logged by the source and the
        last forecast stays."""
        if self.fetching is not None and not self.fetching.done():
            return
        if self.source.next_refresh_s(now_s) <= now_s:
            self.fetching = asyncio.get_running_loop().create_task(
                self.source.latest(now_s), name="phaeton-pv-forecast")

    def has_news(self) -> bool:
        """A fetch succeeded after the one the last plan used."""
        done_s = self.source.last_success_s
        return done_s is not None and done_s != self._used_fetch_s

    async def close(self) -> None:
        if self.fetching is not None:
            self.fetching.cancel()
            await asyncio.gather(self.fetching, return_exceptions=True)
            self.fetching = None

    def apply(self, now_s: float, starts_s: np.ndarray, history,
              learned_kwh: np.ndarray) -> np.ndarray:
        """The plan's PV kWh per slot: the calibrated service forecast where it has values,
        `learned_kwh` elsewhere."""
        series = self.source.series
        self._used_fetch_s = self.source.last_success_s
        weather = series.kwh_per_slot(starts_s)
        t = measured = past = np.zeros(0)
        if history is not None and len(history.t_s):
            t = np.asarray(history.t_s, dtype=np.int64)
            keep = t >= now_s - CALIBRATION_DAYS * 86400
            t = t[keep]
            measured = np.asarray(history.pv_kwh, dtype=float)[keep]
            past = np.full(t.size, np.nan)
            if t.size:
                first = int(t[0] // SLOT_S * SLOT_S)
                on_grid = series.kwh_per_slot(
                    first + SLOT_S * np.arange((int(t[-1]) - first) // SLOT_S + 1))
                past = on_grid[(t - first) // SLOT_S]
        self.last = blend(learned_kwh, weather, starts_s=starts_s, now_s=now_s,
                          kwp=self.source.site.total_kwp, history_t_s=t,
                          history_pv_kwh=measured, weather_past_kwh=past)
        return self.last.kwh

    def as_dict(self, now_s: float) -> dict[str, Any]:
        status = self.source.status(now_s)
        return {"source": self.source.source,
                **(self.last.as_dict() if self.last is not None else {}),
                "last_success_s": status.last_success_s, "last_error": status.last_error,
                "covered_until_s": status.covered_until_s}
