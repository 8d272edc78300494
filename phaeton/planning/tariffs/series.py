"""Price series: per-slot import/export prices with UTC timestamps, and resampling onto a grid.

Everything is in UTC unix seconds. A series may mix slot lengths (hourly then 15-min) and may
have gaps; `on_grid` turns it into the fixed 15-minute arrays the optimizer consumes and says
which grid slots had no price.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

QUARTER_HOUR_S = 900


class PriceDataError(ValueError):
    """Prices that cannot be used: wrong shapes, overlapping slots, NaN, absurd values."""


@dataclass(frozen=True, eq=False)
class PriceSeries:
    """Import and export prices (€/kWh) for consecutive or gapped slots, sorted by start.

    `start_s` are UTC unix seconds, `duration_s` the slot lengths in seconds. Slots never
    overlap and every price is finite. `source` names where the prices came from and
    `fetched_at_s` when (unix s).
    """

    start_s: np.ndarray
    duration_s: np.ndarray
    import_eur_per_kwh: np.ndarray
    export_eur_per_kwh: np.ndarray
    source: str
    fetched_at_s: float

    def __post_init__(self) -> None:
        start = np.asarray(self.start_s, dtype=np.int64).reshape(-1)
        duration = np.asarray(self.duration_s, dtype=np.int64).reshape(-1)
        imp = np.asarray(self.import_eur_per_kwh, dtype=float).reshape(-1)
        exp = np.asarray(self.export_eur_per_kwh, dtype=float).reshape(-1)
        n = start.size
        if not (duration.size == imp.size == exp.size == n):
            raise PriceDataError(
                f"price series arrays differ in length: {n} starts, {duration.size} durations, "
                f"{imp.size} import and {exp.size} export prices")
        if n and np.any(duration <= 0):
            raise PriceDataError(f"slot durations must be > 0 s, got {int(duration.min())}")
        if n and not (np.all(np.isfinite(imp)) and np.all(np.isfinite(exp))):
            bad = int(np.flatnonzero(~(np.isfinite(imp) & np.isfinite(exp)))[0])
            raise PriceDataError(f"price for slot starting {int(start[bad])} is not a number")
        if n > 1 and np.any(start[1:] < start[:-1] + duration[:-1]):
            bad = int(np.flatnonzero(start[1:] < start[:-1] + duration[:-1])[0])
            raise PriceDataError(
                f"slots overlap or are not sorted: slot at {int(start[bad + 1])} starts before "
                f"the slot at {int(start[bad])} ends")
        for name, value in (("start_s", start), ("duration_s", duration),
                            ("import_eur_per_kwh", imp), ("export_eur_per_kwh", exp)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "fetched_at_s", float(self.fetched_at_s))

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def empty(cls, source: str, fetched_at_s: float = 0.0) -> "PriceSeries":
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0),
                   source, fetched_at_s)

    @classmethod
    def from_slots(cls, slots, source: str, fetched_at_s: float) -> "PriceSeries":
        """Build from (start_s, duration_s, import, export) tuples in any order."""
        rows = sorted(slots, key=lambda row: row[0])
        if not rows:
            return cls.empty(source, fetched_at_s)
        start, duration, imp, exp = zip(*rows)
        return cls(np.array(start, np.int64), np.array(duration, np.int64),
                   np.array(imp, float), np.array(exp, float), source, fetched_at_s)

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
        """How far prices reach without a gap, starting from the slot holding `now_s`.

        Returns `now_s` itself when there is no price for now.
        """
        if not len(self):
            return float(now_s)
        idx = int(np.searchsorted(self.start_s, now_s, side="right")) - 1
        if idx < 0 or now_s >= self.start_s[idx] + self.duration_s[idx]:
            return float(now_s)
        ends = self.start_s + self.duration_s
        gaps = np.flatnonzero(self.start_s[idx + 1:] != ends[idx:-1])
        last = idx + int(gaps[0]) if gaps.size else len(self) - 1
        return float(ends[last])

    def price_at(self, t_s: float) -> tuple[float, float] | None:
        """(import, export) €/kWh for the slot holding `t_s`, or None."""
        idx = int(np.searchsorted(self.start_s, t_s, side="right")) - 1
        if idx < 0 or t_s >= self.start_s[idx] + self.duration_s[idx]:
            return None
        return float(self.import_eur_per_kwh[idx]), float(self.export_eur_per_kwh[idx])

    # -- combination ----------------------------------------------------------------------
    def merged_with(self, newer: "PriceSeries") -> "PriceSeries":
        """This series with `newer` laid over it: slots of ours that overlap any new slot go.

        Source and fetch time are the newer ones.
        """
        if not len(self):
            return newer
        if not len(newer):
            return PriceSeries(self.start_s, self.duration_s, self.import_eur_per_kwh,
                               self.export_eur_per_kwh, newer.source, newer.fetched_at_s)
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
        return PriceSeries(
            start[order],
            np.concatenate([self.duration_s[keep], newer.duration_s])[order],
            np.concatenate([self.import_eur_per_kwh[keep], newer.import_eur_per_kwh])[order],
            np.concatenate([self.export_eur_per_kwh[keep], newer.export_eur_per_kwh])[order],
            newer.source, newer.fetched_at_s)

    def since(self, t_s: float) -> "PriceSeries":
        """Only the slots that end after `t_s` (drops old history)."""
        keep = self.start_s + self.duration_s > t_s
        return PriceSeries(self.start_s[keep], self.duration_s[keep],
                           self.import_eur_per_kwh[keep], self.export_eur_per_kwh[keep],
                           self.source, self.fetched_at_s)

    # -- persistence ----------------------------------------------------------------------
    def to_json(self) -> dict:
        return {
            "source": self.source,
            "fetched_at_s": self.fetched_at_s,
            "slots": [[int(s), int(d), float(i), float(e)] for s, d, i, e in zip(
                self.start_s, self.duration_s, self.import_eur_per_kwh, self.export_eur_per_kwh)],
        }

    @classmethod
    def from_json(cls, data: dict) -> "PriceSeries":
        """Inverse of `to_json`; raises PriceDataError on anything malformed."""
        try:
            slots = data["slots"]
            source = str(data["source"])
            fetched_at_s = float(data["fetched_at_s"])
            rows = [(int(s), int(d), float(i), float(e)) for s, d, i, e in slots]
        except (KeyError, TypeError, ValueError) as exc:
            raise PriceDataError(f"malformed stored price series: {exc!r}") from exc
        return cls.from_slots(rows, source, fetched_at_s)

    # -- resampling -----------------------------------------------------------------------
    def on_grid(self, start_s: float, horizon_s: float,
                slot_s: int = QUARTER_HOUR_S) -> "GridPrices":
        """Prices on a regular grid of `slot_s` slots from `start_s` (floored to the grid).

        Each grid slot gets the time-weighted mean of the source slots covering it, so hourly
        prices repeat on a 15-min grid and 15-min prices average onto an hourly grid. A grid
        slot not fully covered is NaN and counted in `missing`.
        """
        if slot_s <= 0 or horizon_s < 0:
            raise ValueError(f"need slot_s > 0 and horizon_s >= 0, got {slot_s}, {horizon_s}")
        first = int(math.floor(start_s / slot_s) * slot_s)
        n = int(math.ceil((start_s + horizon_s - first) / slot_s)) if horizon_s else 0
        edges = first + slot_s * np.arange(n + 1, dtype=np.int64)
        if not len(self) or n == 0:
            nan = np.full(n, np.nan)
            return GridPrices(first, slot_s, nan, nan.copy(), self.source)
        covered = _integral(self.start_s, self.duration_s, np.ones(len(self)), edges)
        imp = _integral(self.start_s, self.duration_s, self.import_eur_per_kwh, edges)
        exp = _integral(self.start_s, self.duration_s, self.export_eur_per_kwh, edges)
        cov = np.diff(covered)
        full = np.isclose(cov, slot_s)
        with np.errstate(invalid="ignore", divide="ignore"):
            imp_grid = np.where(full, np.diff(imp) / cov, np.nan)
            exp_grid = np.where(full, np.diff(exp) / cov, np.nan)
        return GridPrices(first, slot_s, imp_grid, exp_grid, self.source)


def _integral(start, duration, value, t):
    """∫ value dt from -inf to each t for a piecewise-constant function with gaps."""
    t = np.asarray(t, dtype=np.int64)
    cumulative = np.concatenate([[0.0], np.cumsum(value * duration)])
    idx = np.searchsorted(start, t, side="right") - 1
    inside = idx >= 0
    safe = np.maximum(idx, 0)
    partial = value[safe] * np.clip(t - start[safe], 0, duration[safe])
    return np.where(inside, cumulative[safe] + partial, 0.0)


@dataclass(frozen=True, eq=False)
class GridPrices:
    """Prices on a regular grid: slot i starts at `start_s + i * slot_s`. NaN = no price."""

    start_s: int
    slot_s: int
    import_eur_per_kwh: np.ndarray
    export_eur_per_kwh: np.ndarray
    source: str
    missing_mask: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        mask = np.isnan(self.import_eur_per_kwh) | np.isnan(self.export_eur_per_kwh)
        object.__setattr__(self, "missing_mask", mask)

    @property
    def slot_starts_s(self) -> np.ndarray:
        return self.start_s + self.slot_s * np.arange(self.import_eur_per_kwh.size, dtype=np.int64)

    @property
    def missing(self) -> int:
        """How many grid slots have no price."""
        return int(self.missing_mask.sum())

    def describe_missing(self) -> str:
        """A short human sentence about the gaps, '' when complete."""
        if not self.missing:
            return ""
        starts = self.slot_starts_s[self.missing_mask]
        return (f"{self.missing} of {self.missing_mask.size} slots have no {self.source} price "
                f"(first gap at unix {int(starts[0])})")
