"""The measured house load and PV per quarter hour that the forecasts learn from:
`<data_dir>/energy_history.csv`, columns `start_s,load_kwh,pv_kwh` (empty = not measured).

One line is appended per quarter hour (96 small writes a day on the GX's flash); past
`keep_days` the file is rewritten atomically with the newest days only. Unreadable lines are
skipped, never fatal. A file that cannot be written is logged once; the history then lives on in
memory until the next restart, and the service runs on.

Next to it, `<data_dir>/carbon_history.csv` (`CarbonHistoryFile`) keeps the carbon accounting
per quarter hour the same way (docs/carbon.md, "Accounting"); it exists only with a carbon
source configured.
"""
from __future__ import annotations

import csv
import io
import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from phaeton.control.carbon_accounting import CarbonSlot
from phaeton.planning.energy_meter import SLOT_S, SlotEnergy
from phaeton.planning.problem_builder import EnergyHistory
from phaeton.store.state_file import write_file_atomically

log = logging.getLogger(__name__)

HISTORY_FILE = "energy_history.csv"
HEADER = "start_s,load_kwh,pv_kwh\n"


def read_history(path: str | os.PathLike) -> EnergyHistory | None:
    """The history file as arrays, or None when it is absent; unusable rows are skipped."""
    path = Path(path)
    if not path.is_file():
        return None
    t, load, pv = [], [], []
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        for row in csv.DictReader(handle):
            try:
                values = (float(row["start_s"]), float(row.get("load_kwh") or "nan"),
                          float(row.get("pv_kwh") or "nan"))
            except (KeyError, TypeError, ValueError):
                continue
            if math.isfinite(values[0]):
                t.append(values[0])
                load.append(values[1])
                pv.append(values[2])
    return EnergyHistory(np.array(t), np.array(load), np.array(pv))


def _cell(kwh: float) -> str:
    return "" if not math.isfinite(kwh) else f"{kwh:.4f}"


class EnergyHistoryFile:
    def __init__(self, path: str | os.PathLike, *, keep_days: int = 60):
        self.path = Path(path)
        self.keep_rows = int(keep_days) * 86400 // SLOT_S
        self._rows: list[tuple[float, float, float]] = []
        self._write_error: str | None = None

    def load(self) -> None:
        """Read what earlier runs recorded (call once at start)."""
        try:
            history = read_history(self.path)
        except OSError as exc:
            log.warning("energy history %s unreadable, starting a new one in memory: %s",
                        self.path, exc)
            return
        if history is not None:
            rows = sorted(zip(history.t_s.tolist(), history.load_kwh.tolist(),
                              history.pv_kwh.tolist()))
            self._rows = rows[-self.keep_rows:]

    def history(self) -> EnergyHistory | None:
        """Everything recorded, for the forecasts (None: nothing yet)."""
        if not self._rows:
            return None
        t, load, pv = zip(*self._rows)
        return EnergyHistory(np.array(t), np.array(load), np.array(pv))

    @property
    def rows(self) -> int:
        return len(self._rows)

    def append(self, slots: Iterable[SlotEnergy]) -> None:
        """Record finished quarter hours (ones with nothing measured are left out)."""
        new = [(float(s.start_s), s.load_kwh, s.pv_kwh) for s in slots
               if math.isfinite(s.load_kwh) or math.isfinite(s.pv_kwh)]
        if not new:
            return
        self._rows.extend(new)
        if len(self._rows) > self.keep_rows + 96:     # a day's slack between rewrites
            self._rows = self._rows[-self.keep_rows:]
            self._write(self._rewrite)
        else:
            self._write(lambda: self._append_lines(new))

    def _lines(self, rows) -> str:
        return "".join(f"{t:.0f},{_cell(load)},{_cell(pv)}\n" for t, load, pv in rows)

    def _append_lines(self, rows) -> None:
        new_file = not self.path.exists() or self.path.stat().st_size == 0
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write((HEADER if new_file else "") + self._lines(rows))

    def _rewrite(self) -> None:
        text = io.StringIO()
        text.write(HEADER)
        text.write(self._lines(self._rows))
        write_file_atomically(self.path, text.getvalue().encode("utf-8"))

    def _write(self, action) -> None:
        try:
            action()
        except OSError as exc:
            if self._write_error is None:
                log.warning("energy history %s not written (kept in memory): %s", self.path, exc)
            self._write_error = str(exc)
        else:
            if self._write_error is not None:
                log.info("energy history %s written again", self.path)
            self._write_error = None


# ---- the carbon accounting per quarter hour, next to the energy history ------------------------

CARBON_HISTORY_FILE = "carbon_history.csv"
CARBON_COLUMNS = ("start_s", "grid_g_per_kwh", "house_kwh", "car_kwh", "house_co2_g",
                  "car_co2_g", "avoided_co2_g", "battery_kwh", "battery_g_per_kwh")
CARBON_HEADER = ",".join(CARBON_COLUMNS) + "\n"


def read_carbon_history(path: str | os.PathLike) -> list[CarbonSlot] | None:
    """`<data_dir>/carbon_history.csv` as quarter hours, oldest first (None: no file). Rows
    that cannot be read are skipped; columns a later phaeton adds are ignored, a missing
    `battery_g_per_kwh` is None."""
    path = Path(path)
    if not path.is_file():
        return None
    slots = []
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        for row in csv.DictReader(handle):
            try:
                numbers = [float(row[name]) for name in CARBON_COLUMNS[1:-1]]
                start_s = float(row["start_s"])
                battery_g = row.get("battery_g_per_kwh") or ""
                battery_g_value = float(battery_g) if battery_g else None
            except (KeyError, TypeError, ValueError):
                continue
            if not all(math.isfinite(v) for v in (start_s, *numbers)) or (
                    battery_g_value is not None and not math.isfinite(battery_g_value)):
                continue
            slots.append(CarbonSlot(int(start_s), *numbers, battery_g_value))
    slots.sort(key=lambda slot: slot.start_s)
    return slots


class CarbonHistoryFile:
    """The accounted quarter hours (`control.carbon_accounting.CarbonSlot`) in
    `<data_dir>/carbon_history.csv`: one line appended per quarter hour, rewritten atomically
    with the newest `keep_days` once a day's worth more has gathered; a file that cannot be
    written is logged once and the history lives on in memory (as `EnergyHistoryFile`)."""

    def __init__(self, path: str | os.PathLike, *, keep_days: int = 400):
        self.path = Path(path)
        self.keep_rows = int(keep_days) * 86400 // SLOT_S
        self._slots: list[CarbonSlot] = []
        self._write_error: str | None = None

    def load(self) -> None:
        """Read what earlier runs recorded (call once at start)."""
        try:
            slots = read_carbon_history(self.path)
        except OSError as exc:
            log.warning("carbon history %s unreadable, starting a new one in memory: %s",
                        self.path, exc)
            return
        if slots:
            self._slots = slots[-self.keep_rows:]

    @property
    def slots(self) -> list[CarbonSlot]:
        return list(self._slots)

    @property
    def last(self) -> CarbonSlot | None:
        return self._slots[-1] if self._slots else None

    def append(self, slots: Iterable[CarbonSlot]) -> None:
        new = list(slots)
        if not new:
            return
        self._slots.extend(new)
        if len(self._slots) > self.keep_rows + 96:
            self._slots = self._slots[-self.keep_rows:]
            self._write(self._rewrite)
        else:
            self._write(lambda: self._append_lines(new))

    @staticmethod
    def _lines(slots: Iterable[CarbonSlot]) -> str:
        return "".join(
            f"{s.start_s:.0f},{s.grid_g_per_kwh:.2f},{s.house_kwh:.4f},{s.car_kwh:.4f},"
            f"{s.house_co2_g:.2f},{s.car_co2_g:.2f},{s.avoided_co2_g:.2f},{s.battery_kwh:.4f},"
            f"{'' if s.battery_g_per_kwh is None else format(s.battery_g_per_kwh, '.2f')}\n"
            for s in slots)

    def _append_lines(self, slots: list[CarbonSlot]) -> None:
        new_file = not self.path.exists() or self.path.stat().st_size == 0
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write((CARBON_HEADER if new_file else "") + self._lines(slots))

    def _rewrite(self) -> None:
        write_file_atomically(self.path,
                              (CARBON_HEADER + self._lines(self._slots)).encode("utf-8"))

    def _write(self, action) -> None:
        try:
            action()
        except OSError as exc:
            if self._write_error is None:
                log.warning("carbon history %s not written (kept in memory): %s", self.path,
                            exc)
            self._write_error = str(exc)
        else:
            if self._write_error is not None:
                log.info("carbon history %s written again", self.path)
            self._write_error = None
