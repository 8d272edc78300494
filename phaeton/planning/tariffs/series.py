"""Time series with a unit: values per slot with UTC timestamps, and resampling onto a grid.

A `TimeSeries` holds one or more named columns of values for slots (start, duration) and says
what the values measure in `unit`. Prices are one case: `PriceSeries` has an import and an
export column in currency per kWh (unit "EUR/kWh" for the default currency; the config's
`session.currency` names it). A carbon intensity would be another case (one column, unit
"g/kWh") from a source of the same kind.

Everything is in UTC unix seconds. A series may mix slot lengths (hourly then 15-min) and may
have gaps; `on_grid` turns it into the fixed 15-minute arrays the optimizer consumes and says
which grid slots had no value.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

import numpy as np

QUARTER_HOUR_S = 900
DEFAULT_CURRENCY = "EUR"

Series = TypeVar("Series", bound="TimeSeries")


def price_unit(currency: str = DEFAULT_CURRENCY) -> str:
    """The unit of prices in `currency`: "EUR/kWh"."""
    return f"{currency}/kWh"


class SeriesDataError(ValueError):
    """Values that cannot be used: wrong shapes, overlapping slots, NaN."""


class PriceDataError(SeriesDataError):
    """Prices that cannot be used: wrong shapes, overlapping slots, NaN, absurd values."""


class TimeSeries:
    """Named columns of values (in `unit`) for consecutive or gapped slots, sorted by start.

    `start_s` are UTC unix seconds, `duration_s` the slot lengths in seconds. Slots never
    overlap and every value is finite. `source` names where the values came from and
    `fetched_at_s` when (unix s). A kind of series (`PriceSeries`) fixes its `COLUMNS` and
    default unit; the plain class takes any columns.
    """

    COLUMNS: tuple[str, ...] = ()      # the fixed column names of a kind of series
    DEFAULT_UNIT: str | None = None
    WHAT = "value"                      # what one value is called in messages
    data_error: type[SeriesDataError] = SeriesDataError

    def __init__(self, start_s, duration_s, values: Mapping[str, Any], *, unit: str,
                 source: str, fetched_at_s: float):
        what, error = self.WHAT, self.data_error
        start = np.asarray(start_s, dtype=np.int64).reshape(-1)
        duration = np.asarray(duration_s, dtype=np.int64).reshape(-1)
        columns = {name: np.asarray(column, dtype=float).reshape(-1)
                   for name, column in values.items()}
        if not columns:
            raise error(f"a {what} series needs at least one column")
        n = start.size
        if not all(column.size == n for column in columns.values()) or duration.size != n:
            sizes = ", ".join(f"{column.size} {name}" for name, column in columns.items())
            raise error(f"{what} series arrays differ in length: {n} starts, "
                        f"{duration.size} durations, {sizes} {what}s")
        if n and np.any(duration <= 0):
            raise error(f"slot durations must be > 0 s, got {int(duration.min())}")
        finite = np.ones(n, bool)
        for column in columns.values():
            finite &= np.isfinite(column)
        if n and not np.all(finite):
            bad = int(np.flatnonzero(~finite)[0])
            raise error(f"{what} for slot starting {int(start[bad])} is not a number")
        if n > 1 and np.any(start[1:] < start[:-1] + duration[:-1]):
            bad = int(np.flatnonzero(start[1:] < start[:-1] + duration[:-1])[0])
            raise error(f"slots overlap or are not sorted: slot at {int(start[bad + 1])} starts "
                        f"before the slot at {int(start[bad])} ends")
        for array in (start, duration, *columns.values()):
            array.setflags(write=False)
        self.start_s = start
        self.duration_s = duration
        self.values: Mapping[str, np.ndarray] = MappingProxyType(columns)
        self.unit = str(unit)
        self.source = source
        self.fetched_at_s = float(fetched_at_s)

    # -- construction ---------------------------------------------------------------------
    def _like(self: Series, start_s, duration_s, values: Mapping[str, Any], source: str,
              fetched_at_s: float, unit: str | None = None) -> Series:
        """A series of the same kind and unit with other slots."""
        series = object.__new__(type(self))
        TimeSeries.__init__(series, start_s, duration_s, values,
                            unit=self.unit if unit is None else unit, source=source,
                            fetched_at_s=fetched_at_s)
        return series

    @classmethod
    def _build(cls: type[Series], start_s, duration_s, values: Mapping[str, Any], *,
               unit: str | None, source: str, fetched_at_s: float) -> Series:
        unit = cls.DEFAULT_UNIT if unit is None else unit
        if unit is None:
            raise TypeError(f"{cls.__name__} needs a unit")
        if cls.COLUMNS and tuple(values) != cls.COLUMNS:
            raise cls.data_error(f"a {cls.WHAT} series has the columns {list(cls.COLUMNS)}, "
                                 f"got {list(values)}")
        series = object.__new__(cls)
        TimeSeries.__init__(series, start_s, duration_s, values, unit=unit, source=source,
                            fetched_at_s=fetched_at_s)
        return series

    @classmethod
    def empty(cls: type[Series], source: str, fetched_at_s: float = 0.0, *,
              unit: str | None = None, columns: Iterable[str] | None = None) -> Series:
        names = tuple(columns) if columns is not None else cls.COLUMNS
        return cls._build(np.zeros(0, np.int64), np.zeros(0, np.int64),
                          {name: np.zeros(0) for name in names}, unit=unit, source=source,
                          fetched_at_s=fetched_at_s)

    @classmethod
    def from_slots(cls: type[Series], slots, source: str, fetched_at_s: float, *,
                   unit: str | None = None, columns: Iterable[str] | None = None) -> Series:
        """Build from (start_s, duration_s, value of each column...) tuples in any order."""
        names = tuple(columns) if columns is not None else cls.COLUMNS
        rows = sorted(slots, key=lambda row: row[0])
        if not rows:
            return cls.empty(source, fetched_at_s, unit=unit, columns=names)
        start, duration, *values = zip(*rows)
        return cls._build(np.array(start, np.int64), np.array(duration, np.int64),
                          {name: np.array(column, float) for name, column in zip(names, values)},
                          unit=unit, source=source, fetched_at_s=fetched_at_s)

    def with_unit(self: Series, unit: str) -> Series:
        """The same values labelled with `unit` (no conversion)."""
        if unit == self.unit:
            return self
        return self._like(self.start_s, self.duration_s, self.values, self.source,
                          self.fetched_at_s, unit=unit)

    # -- queries --------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.start_s.size)

    @property
    def end_s(self) -> int | None:
        """End of the last slot (unix s), None for an empty series."""
        if not len(self):
            return None
        return int(self.start_s[-1] + self.duration_s[-1])

    def covered_until_s(self, now_s: float) -> float:
        """How far values reach without a gap, starting from the slot holding `now_s`.

        Returns `now_s` itself when there is no value for now.
        """
        if not len(self):
            return float(now_s)
        idx = self._slot_index(now_s)
        if idx is None:
            return float(now_s)
        ends = self.start_s + self.duration_s
        gaps = np.flatnonzero(self.start_s[idx + 1:] != ends[idx:-1])
        last = idx + int(gaps[0]) if gaps.size else len(self) - 1
        return float(ends[last])

    def _slot_index(self, t_s: float) -> int | None:
        idx = int(np.searchsorted(self.start_s, t_s, side="right")) - 1
        if idx < 0 or t_s >= self.start_s[idx] + self.duration_s[idx]:
            return None
        return idx

    def value_at(self, t_s: float) -> dict[str, float] | None:
        """Each column's value for the slot holding `t_s`, or None."""
        idx = self._slot_index(t_s)
        if idx is None:
            return None
        return {name: float(column[idx]) for name, column in self.values.items()}

    # -- combination ----------------------------------------------------------------------
    def merged_with(self: Series, newer: Series) -> Series:
        """This series with `newer` laid over it: slots of ours that overlap any new slot go.

        Source and fetch time are the newer ones.
        """
        if not len(self):
            return newer
        if not len(newer):
            return self._like(self.start_s, self.duration_s, self.values, newer.source,
                              newer.fetched_at_s)
        ours_end = self.start_s + self.duration_s
        new_end = newer.start_s + newer.duration_s
        # a slot of ours survives when no new slot overlaps it
        first_new_ending_after = np.searchsorted(new_end, self.start_s, side="right")
        overlaps = np.zeros(len(self), bool)
        has_candidate = first_new_ending_after < len(newer)
        cand = np.minimum(first_new_ending_after, len(newer) - 1)
        overlaps[has_candidate] = newer.start_s[cand[has_candidate]] < ours_end[has_candidate]
        keep = ~overlaps
        start = np.concatenate([self.start_s[keep], newer.start_s])
        order = np.argsort(start, kind="stable")
        return self._like(
            start[order],
            np.concatenate([self.duration_s[keep], newer.duration_s])[order],
            {name: np.concatenate([column[keep], newer.values[name]])[order]
             for name, column in self.values.items()},
            newer.source, newer.fetched_at_s)

    def since(self: Series, t_s: float) -> Series:
        """Only the slots that end after `t_s` (drops old history)."""
        keep = self.start_s + self.duration_s > t_s
        return self._like(self.start_s[keep], self.duration_s[keep],
                          {name: column[keep] for name, column in self.values.items()},
                          self.source, self.fetched_at_s)

    # -- persistence ----------------------------------------------------------------------
    def to_json(self) -> dict:
        columns = list(self.values)
        return {
            "source": self.source,
            "fetched_at_s": self.fetched_at_s,
            "unit": self.unit,
            "columns": columns,
            "slots": [[int(s), int(d), *(float(self.values[name][i]) for name in columns)]
                      for i, (s, d) in enumerate(zip(self.start_s, self.duration_s))],
        }

    @classmethod
    def from_json(cls: type[Series], data: dict) -> Series:
        """Inverse of `to_json`; raises the series' data error on anything malformed. A
        record without "unit" or "columns" (written before series had units) gets the
        kind's default unit and columns."""
        try:
            columns = tuple(str(name) for name in data.get("columns", cls.COLUMNS))
            unit = data.get("unit", cls.DEFAULT_UNIT)
            source = str(data["source"])
            fetched_at_s = float(data["fetched_at_s"])
            rows = []
            for slot in data["slots"]:
                if len(slot) != 2 + len(columns):
                    raise ValueError(f"slot {slot!r} does not hold start, duration and "
                                     f"{', '.join(columns)}")
                rows.append((int(slot[0]), int(slot[1]), *(float(v) for v in slot[2:])))
            if not isinstance(unit, str) or not columns:
                raise ValueError(f"unit {unit!r} and columns {columns!r} are needed")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise cls.data_error(f"malformed stored {cls.WHAT} series: {exc!r}") from exc
        return cls.from_slots(rows, source, fetched_at_s, unit=unit, columns=columns)

    # -- resampling -----------------------------------------------------------------------
    def on_grid(self, start_s: float, horizon_s: float,
                slot_s: int = QUARTER_HOUR_S) -> "GridSeries":
        """Values on a regular grid of `slot_s` slots from `start_s` (floored to the grid).

        Each grid slot gets the time-weighted mean of the source slots covering it, so hourly
        values repeat on a 15-min grid and 15-min values average onto an hourly grid. A grid
        slot not fully covered is NaN and counted in `missing`.
        """
        if slot_s <= 0 or horizon_s < 0:
            raise ValueError(f"need slot_s > 0 and horizon_s >= 0, got {slot_s}, {horizon_s}")
        first = int(math.floor(start_s / slot_s) * slot_s)
        n = int(math.ceil((start_s + horizon_s - first) / slot_s)) if horizon_s else 0
        edges = first + slot_s * np.arange(n + 1, dtype=np.int64)
        if not len(self) or n == 0:
            gridded = {name: np.full(n, np.nan) for name in self.values}
        else:
            covered = np.diff(_integral(self.start_s, self.duration_s, np.ones(len(self)),
                                        edges))
            full = np.isclose(covered, slot_s)
            gridded = {}
            with np.errstate(invalid="ignore", divide="ignore"):
                for name, column in self.values.items():
                    integral = _integral(self.start_s, self.duration_s, column, edges)
                    gridded[name] = np.where(full, np.diff(integral) / covered, np.nan)
        return self._grid_class()._build(first, slot_s, gridded, unit=self.unit,
                                         source=self.source)

    @classmethod
    def _grid_class(cls) -> type["GridSeries"]:
        return GridSeries


def _integral(start, duration, value, t):
    """∫ value dt from -inf to each t for a piecewise-constant function with gaps."""
    t = np.asarray(t, dtype=np.int64)
    cumulative = np.concatenate([[0.0], np.cumsum(value * duration)])
    idx = np.searchsorted(start, t, side="right") - 1
    inside = idx >= 0
    safe = np.maximum(idx, 0)
    partial = value[safe] * np.clip(t - start[safe], 0, duration[safe])
    return np.where(inside, cumulative[safe] + partial, 0.0)


class GridSeries:
    """Values on a regular grid: slot i starts at `start_s + i * slot_s`. NaN = no value
    (in any column)."""

    WHAT = "value"

    def __init__(self, start_s: int, slot_s: int, values: Mapping[str, np.ndarray], *,
                 unit: str, source: str):
        self.start_s = start_s
        self.slot_s = slot_s
        self.values: Mapping[str, np.ndarray] = MappingProxyType(
            {name: np.asarray(column, dtype=float) for name, column in values.items()})
        self.unit = unit
        self.source = source
        size = next(iter(self.values.values())).size if self.values else 0
        mask = np.zeros(size, bool)
        for column in self.values.values():
            mask |= np.isnan(column)
        self.missing_mask = mask

    @classmethod
    def _build(cls, start_s: int, slot_s: int, values: Mapping[str, np.ndarray], *,
               unit: str, source: str) -> "GridSeries":
        grid = object.__new__(cls)
        GridSeries.__init__(grid, start_s, slot_s, values, unit=unit, source=source)
        return grid

    @property
    def slot_starts_s(self) -> np.ndarray:
        return self.start_s + self.slot_s * np.arange(self.missing_mask.size, dtype=np.int64)

    @property
    def missing(self) -> int:
        """How many grid slots have no value."""
        return int(self.missing_mask.sum())

    def describe_missing(self) -> str:
        """A short human sentence about the gaps, '' when complete."""
        if not self.missing:
            return ""
        starts = self.slot_starts_s[self.missing_mask]
        return (f"{self.missing} of {self.missing_mask.size} slots have no {self.source} "
                f"{self.WHAT} (first gap at unix {int(starts[0])})")


class GridPrices(GridSeries):
    """Import and export prices on a regular grid (a `GridSeries` with those two columns)."""

    WHAT = "price"

    def __init__(self, start_s: int, slot_s: int, import_eur_per_kwh: np.ndarray,
                 export_eur_per_kwh: np.ndarray, source: str, *,
                 unit: str = price_unit()):
        super().__init__(start_s, slot_s, {"import": import_eur_per_kwh,
                                           "export": export_eur_per_kwh},
                         unit=unit, source=source)

    @property
    def import_eur_per_kwh(self) -> np.ndarray:
        """Import prices in `unit` (the name follows the config keys)."""
        return self.values["import"]

    @property
    def export_eur_per_kwh(self) -> np.ndarray:
        """Export prices in `unit`."""
        return self.values["export"]


class PriceSeries(TimeSeries):
    """Import and export prices per kWh: a `TimeSeries` with the columns "import" and
    "export" whose unit is the currency per kWh ("EUR/kWh" unless told). The accessors keep
    the config's names (`import_eur_per_kwh`); the amounts are in `unit`."""

    COLUMNS = ("import", "export")
    DEFAULT_UNIT = price_unit()
    WHAT = "price"
    data_error = PriceDataError

    def __init__(self, start_s, duration_s, import_eur_per_kwh, export_eur_per_kwh,
                 source: str, fetched_at_s: float, *, unit: str = DEFAULT_UNIT):
        super().__init__(start_s, duration_s, {"import": import_eur_per_kwh,
                                               "export": export_eur_per_kwh},
                         unit=unit, source=source, fetched_at_s=fetched_at_s)

    @property
    def import_eur_per_kwh(self) -> np.ndarray:
        """Import prices in `unit`."""
        return self.values["import"]

    @property
    def export_eur_per_kwh(self) -> np.ndarray:
        """Export prices in `unit`."""
        return self.values["export"]

    def price_at(self, t_s: float) -> tuple[float, float] | None:
        """(import, export) per kWh for the slot holding `t_s`, or None."""
        values = self.value_at(t_s)
        return None if values is None else (values["import"], values["export"])

    def on_grid(self, start_s: float, horizon_s: float,
                slot_s: int = QUARTER_HOUR_S) -> GridPrices:
        return super().on_grid(start_s, horizon_s, slot_s)  # type: ignore[return-value]

    @classmethod
    def _grid_class(cls) -> type[GridSeries]:
        return GridPrices
