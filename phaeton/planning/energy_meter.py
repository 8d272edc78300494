"""House load, PV and grid energy per quarter hour, integrated from the power readings of each
tick.

Pure: `QuarterHourMeter.add(t_s, load_w, pv_w, grid_w)` with the wall-clock time of a reading
returns the quarter hours it completed (grid: + import, − export, kept as import and export). A power holds from its reading until the next one (as the GX
publishes them: on change, about once a second), but never across a gap longer than
`max_gap_s`; a quarter hour with less than `min_coverage` of its time measured is reported as
NaN (not learned from), so a restart or stale readings never look like a house using nothing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

SLOT_S = 900


@dataclass(frozen=True)
class SlotEnergy:
    """One quarter hour: its start (unix s) and the energy in it (kWh; NaN = not measured)."""

    start_s: int
    load_kwh: float
    pv_kwh: float
    grid_import_kwh: float = math.nan
    grid_export_kwh: float = math.nan


class _Quantity:
    """Energy and measured seconds of one power within the current slot."""

    def __init__(self) -> None:
        self.joules = 0.0
        self.seconds = 0.0

    def add(self, watts: float | None, seconds: float) -> None:
        if watts is not None and math.isfinite(watts) and seconds > 0:
            self.joules += max(0.0, watts) * seconds
            self.seconds += seconds

    def kwh(self, min_seconds: float) -> float:
        return self.joules / 3.6e6 if self.seconds >= min_seconds else math.nan


class QuarterHourMeter:
    def __init__(self, *, max_gap_s: float = 60.0, min_coverage: float = 0.8):
        self.max_gap_s = float(max_gap_s)
        self.min_seconds = float(min_coverage) * SLOT_S
        self._slot_start: int | None = None
        self._last: tuple[float, float | None, float | None, float | None] | None = None
        self._load = _Quantity()
        self._pv = _Quantity()
        self._import = _Quantity()
        self._export = _Quantity()

    def add(self, t_s: float, load_w: float | None, pv_w: float | None,
            grid_w: float | None = None) -> list[SlotEnergy]:
        """A reading at wall time `t_s` (None = that power is not known now)."""
        done: list[SlotEnergy] = []
        last = self._last
        if last is not None and t_s < last[0]:
            last = None                      # the clock went back: start again from here
            self._slot_start = None
        if self._slot_start is None:
            self._open(t_s)
        if last is not None and t_s - last[0] <= self.max_gap_s:
            t, load, pv, grid = last
            while t < t_s:                   # split the interval at slot boundaries
                end = min(t_s, self._slot_start + SLOT_S)
                self._load.add(load, end - t)
                self._pv.add(pv, end - t)
                self._import.add(grid, end - t)
                self._export.add(None if grid is None else -grid, end - t)
                t = end
                if t >= self._slot_start + SLOT_S:
                    done.append(self._close())
                    self._open(t)
        if t_s >= self._slot_start + SLOT_S:   # after a long gap: close what was open
            done.append(self._close())
            self._open(t_s)
        self._last = (t_s, load_w, pv_w, grid_w)
        return done

    def _open(self, t_s: float) -> None:
        self._slot_start = int(t_s // SLOT_S * SLOT_S)
        self._load = _Quantity()
        self._pv = _Quantity()
        self._import = _Quantity()
        self._export = _Quantity()

    def _close(self) -> SlotEnergy:
        assert self._slot_start is not None
        return SlotEnergy(self._slot_start, self._load.kwh(self.min_seconds),
                          self._pv.kwh(self.min_seconds), self._import.kwh(self.min_seconds),
                          self._export.kwh(self.min_seconds))
