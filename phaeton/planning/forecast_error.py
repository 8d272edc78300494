"""How wrong the forecasts are on this house: each slot's forecast made at least an hour
ahead is kept until the slot is measured, then compared. The relative error is the
recency-weighted sum of |forecast - measured| over the sum of measured energy, load and PV
together (half-life `HALF_LIFE_DAYS`). Until a day of slots has been compared it is
`DEFAULT_RELATIVE_ERROR`, a cautious guess."""
from __future__ import annotations

import numpy as np

SLOT_S = 900
MIN_LEAD_S = 3600
HALF_LIFE_DAYS = 14.0
DEFAULT_RELATIVE_ERROR = 0.5
MIN_COMPARED = 96


class ForecastErrors:
    """`default`: the relative error assumed until MIN_COMPARED slots have been compared."""

    def __init__(self, default: float = DEFAULT_RELATIVE_ERROR):
        self.default = float(default)
        self._pending: dict[int, tuple[float, float]] = {}    # slot start -> (load, pv)
        self._error = 0.0
        self._measured = 0.0
        self.compared = 0
        self._last_s: float | None = None

    @property
    def relative_error(self) -> float:
        if self.compared < MIN_COMPARED or self._measured <= 0:
            return self.default
        return self._error / self._measured

    def remember(self, now_s: float, starts, load_kwh, pv_kwh) -> None:
        """A new forecast: its slots at least MIN_LEAD_S ahead are kept (the latest wins)."""
        for start, load, pv in zip(np.asarray(starts, dtype=float), load_kwh, pv_kwh):
            if start - now_s >= MIN_LEAD_S and np.isfinite(load) and np.isfinite(pv):
                self._pending[int(start)] = (float(load), float(pv))

    def compare(self, now_s: float, t_s, load_kwh, pv_kwh) -> None:
        """Measured slots (history arrays) against what was forecast for them."""
        if self._last_s is not None and now_s > self._last_s:
            decay = 0.5 ** ((now_s - self._last_s) / 86400.0 / HALF_LIFE_DAYS)
            self._error *= decay
            self._measured *= decay
        self._last_s = now_s
        due = [start for start in self._pending if start + SLOT_S <= now_s]
        if not due:
            return
        t = np.asarray(t_s, dtype=np.int64)
        for start in due:
            load_f, pv_f = self._pending.pop(start)
            at = int(np.searchsorted(t, start))
            if at >= t.size or t[at] != start:
                continue
            load, pv = float(load_kwh[at]), float(pv_kwh[at])
            if not (np.isfinite(load) and np.isfinite(pv)):
                continue
            self._error += abs(load_f - load) + abs(pv_f - pv)
            self._measured += load + pv
            self.compared += 1
