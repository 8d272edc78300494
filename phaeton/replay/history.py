"""A house's record for a replay: `energy_history.csv` (`start_s,load_kwh,pv_kwh`, the
service's own format, see store/energy_history.py), checked line by line.

Refused with the line named (`HistoryError`): a header that is not the service's, a row that
does not parse, a start that is not on a quarter hour, a start before the previous one or a
duplicate, a negative energy, an energy beyond what a house draws (`MAX_KW` for a quarter
hour), rows of mixed length.

Stated treatments (each reported in `Record.notes`):
- hourly rows (every step 3600 s): each hour is split into four equal quarter hours;
- gaps (missing rows or empty cells) before the replayed days stay unmeasured (NaN); the
  forecasts skip them, as the service skips what it did not record;
- inside the replayed days, a gap of up to `MAX_FILL_S` is filled linearly between the
  measured neighbours (`Record.filled`, counted in the notes); a longer one is refused with
  the line before it, since every strategy's cost would rest on invented hours, unless the
  owner asks for it to be filled (`--fill-gaps`): then each missing quarter hour takes the
  value of the same time on the last day before it that was measured (counted in the notes).
"""
from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import dataclass, field

import numpy as np

SLOT_S = 900
HOUR_S = 3600
HEADER = ("start_s", "load_kwh", "pv_kwh")
MAX_KW = 100.0             # a house beyond this per quarter hour is a unit mistake (Wh for kWh)
MAX_FILL_S = 2 * HOUR_S    # the longest gap inside the replayed days that is filled


class HistoryError(ValueError):
    """The record cannot be replayed; the message names the file and line."""


@dataclass
class Record:
    """Quarter-hour slots from `start_s` on: measured load and PV (kWh, NaN = not measured)."""

    start_s: int
    load_kwh: np.ndarray
    pv_kwh: np.ndarray
    line_nos: np.ndarray             # the file's line each slot came from (0: none)
    path: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def slot_starts_s(self) -> np.ndarray:
        return self.start_s + SLOT_S * np.arange(self.load_kwh.size, dtype=np.int64)

    @property
    def end_s(self) -> int:
        return self.start_s + SLOT_S * int(self.load_kwh.size)

    def index(self, t_s: float) -> int:
        return int((t_s - self.start_s) // SLOT_S)

    def filled(self, from_s: int, to_s: int, *, long_gaps: bool = False) -> "Record":
        """The record with the gaps between `from_s` and `to_s` filled (see the module
        docstring); HistoryError for days not covered, or for a gap longer than MAX_FILL_S
        unless `long_gaps` (then filled from the same time on an earlier measured day)."""
        if from_s < self.start_s or to_s > self.end_s:
            raise HistoryError(f"{self.path}: covers {_day(self.start_s)} to "
                               f"{_day(self.end_s - 1)}, the replay needs {_day(from_s)} to "
                               f"{_day(to_s - 1)}")
        load, pv = self.load_kwh.copy(), self.pv_kwh.copy()
        first, last = self.index(from_s), self.index(to_s - 1)
        missing = np.isnan(load) | np.isnan(pv)
        filled = copied = 0
        t = first
        while t <= last:
            if not missing[t]:
                t += 1
                continue
            end = t
            while end <= last and missing[end]:
                end += 1
            before = t - 1
            if (end - t) * SLOT_S > MAX_FILL_S and long_gaps:
                for k in range(t, end):
                    source = k - 96
                    while source >= 0 and missing[source]:
                        source -= 96
                    if source < 0:
                        raise HistoryError(f"{self.path}: no measured day before "
                                           f"{_moment(self.start_s + k * SLOT_S)} to fill "
                                           f"its gap from")
                    load[k], pv[k] = load[source], pv[source]
                copied += end - t
                t = end
                continue
            if (end - t) * SLOT_S > MAX_FILL_S or before < 0 or end >= load.size \
                    or missing[before] or missing[end]:
                where = f"after line {self.line_nos[before]}" if before >= 0 and \
                    self.line_nos[before] else "at the start"
                raise HistoryError(
                    f"{self.path}: {(end - t) * SLOT_S / 3600:g} h not measured {where} "
                    f"(from {_moment(self.start_s + t * SLOT_S)}); gaps inside the replayed "
                    f"days may be at most {MAX_FILL_S / 3600:g} h (--fill-gaps fills longer "
                    f"ones from the same time on the day before)")
            for array in (load, pv):
                steps = np.arange(1, end - t + 1) / (end - t + 1)
                array[t:end] = array[before] + steps * (array[end] - array[before])
            filled += end - t
            t = end
        notes = list(self.notes)
        if filled:
            notes.append(f"{filled} unmeasured quarter hour(s) in the replayed days filled "
                         f"linearly between their neighbours")
        if copied:
            notes.append(f"{copied} unmeasured quarter hour(s) in gaps longer than "
                         f"{MAX_FILL_S / 3600:g} h filled from the same time on the last "
                         f"measured day before (--fill-gaps)")
        return Record(self.start_s, load, pv, self.line_nos, self.path, notes)


def _day(t_s: float) -> str:
    return dt.datetime.fromtimestamp(t_s, dt.timezone.utc).strftime("%Y-%m-%d")


def _moment(t_s: float) -> str:
    return dt.datetime.fromtimestamp(t_s, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _number(text: str, path: str, line_no: int, column: str) -> float:
    text = text.strip()
    if text == "":
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise HistoryError(f"{path}:{line_no}: {column} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise HistoryError(f"{path}:{line_no}: {column} {text!r} is not a finite number")
    return value


def read_record(path: str | os.PathLike) -> Record:
    """The record in `path`, checked (see the module docstring)."""
    path = str(path)
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise HistoryError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise HistoryError(f"{path}: is not a text file") from None
    if not lines or tuple(part.strip() for part in lines[0].split(",")) != HEADER:
        raise HistoryError(f"{path}:1: the header must be {','.join(HEADER)} (the service's "
                           f"energy_history.csv)")
    starts: list[int] = []
    loads: list[float] = []
    pvs: list[float] = []
    line_nos: list[int] = []
    for line_no, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split(",")
        if len(parts) != 3:
            raise HistoryError(f"{path}:{line_no}: expected 3 fields (start_s,load_kwh,pv_kwh), "
                               f"got {len(parts)}")
        try:
            start = int(parts[0].strip())
        except ValueError:
            raise HistoryError(f"{path}:{line_no}: start_s {parts[0].strip()!r} is not whole "
                               f"unix seconds") from None
        if start % SLOT_S:
            raise HistoryError(f"{path}:{line_no}: start_s {start} is not on a quarter hour")
        if starts and start == starts[-1]:
            raise HistoryError(f"{path}:{line_no}: start_s {start} repeats line "
                               f"{line_nos[-1]} (a duplicate row)")
        if starts and start < starts[-1]:
            raise HistoryError(f"{path}:{line_no}: start_s {start} is before line "
                               f"{line_nos[-1]}'s {starts[-1]} (rows must be in time order)")
        load = _number(parts[1], path, line_no, "load_kwh")
        pv = _number(parts[2], path, line_no, "pv_kwh")
        for name, value in (("load_kwh", load), ("pv_kwh", pv)):
            if value < 0:
                raise HistoryError(f"{path}:{line_no}: {name} {value:g} is negative")
        starts.append(start)
        loads.append(load)
        pvs.append(pv)
        line_nos.append(line_no)
    if len(starts) < 2:
        raise HistoryError(f"{path}: has {len(starts)} row(s); a replay needs days of them")
    steps = np.diff(np.asarray(starts, dtype=np.int64))
    hourly = bool(np.all(steps % HOUR_S == 0)) and starts[0] % HOUR_S == 0
    step_s = HOUR_S if hourly else SLOT_S
    limit = MAX_KW * step_s / 3600.0
    for value_list, name in ((loads, "load_kwh"), (pvs, "pv_kwh")):
        for i, value in enumerate(value_list):
            if value > limit:
                raise HistoryError(f"{path}:{line_nos[i]}: {name} {value:g} kWh in "
                                   f"{step_s // 60} min is beyond {MAX_KW:g} kW: Wh "
                                   f"instead of kWh?")
    notes: list[str] = []
    first = starts[0]
    count = (starts[-1] - first) // step_s + 1
    load_arr = np.full(count, np.nan)
    pv_arr = np.full(count, np.nan)
    at = (np.asarray(starts, dtype=np.int64) - first) // step_s
    line_arr = np.zeros(count, dtype=np.int64)
    load_arr[at] = loads
    pv_arr[at] = pvs
    line_arr[at] = line_nos
    if hourly:
        load_arr = np.repeat(load_arr / 4.0, 4)
        pv_arr = np.repeat(pv_arr / 4.0, 4)
        line_arr = np.repeat(line_arr, 4)
        notes.append("hourly rows: each hour split into four equal quarter hours")
    return Record(int(first), load_arr, pv_arr, line_arr, path, notes)
