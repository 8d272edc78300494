"""The measured house load and PV per quarter hour that the forecasts learn from:
`<data_dir>/energy_history.csv`, columns `start_s,load_kwh,pv_kwh` (empty = not measured).

One line is appended per quarter hour (96 small writes a day on the GX's flash); past
`keep_days` the file is rewritten atomically with the newest days only. Unreadable lines are
skipped, never fatal. A file that cannot be written is logged once; the history then lives on in
memory until the next restart, and the service runs on.

Next to it, `<data_dir>/carbon_history.csv` (`CarbonHistoryFile`) keeps the carbon accounting
per quarter hour the same way (docs/carbon.md, "Accounting"); it exists only with a carbon
source configured. `<data_dir>/money_history.csv` (`MoneyHistoryFile`) keeps, per quarter hour
once the planner has prices, the house load and PV, what the site bought and sold and at what
price (`start_s,load_kwh,pv_kwh,import_kwh,export_kwh,import_price,export_price`), for a
year: what the web UI's "What the house paid" compares with plain self-consumption on the same
load and PV (replay/realised.py).
"""
from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from phaeton.control.carbon_accounting import CarbonSlot
from phaeton.planning.energy_meter import SLOT_S, SlotEnergy
from phaeton.planning.problem_builder import EnergyHistory
from phaeton.store.quarter_hour_csv import QuarterHourCsv

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
        self._file = QuarterHourCsv(path, HEADER, int(keep_days) * 86400 // SLOT_S,
                                    "energy history", _energy_line)
        self.path = self._file.path
        self.keep_rows = self._file.keep_rows

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
            self._file.rows = rows[-self.keep_rows:]

    def history(self) -> EnergyHistory | None:
        """Everything recorded, for the forecasts (None: nothing yet)."""
        if not self._file.rows:
            return None
        t, load, pv = zip(*self._file.rows)
        return EnergyHistory(np.array(t), np.array(load), np.array(pv))

    @property
    def rows(self) -> int:
        return len(self._file.rows)

    def append(self, slots: Iterable[SlotEnergy]) -> None:
        """Record finished quarter hours (ones with nothing measured are left out)."""
        self._file.extend((float(s.start_s), s.load_kwh, s.pv_kwh) for s in slots
                          if math.isfinite(s.load_kwh) or math.isfinite(s.pv_kwh))


def _energy_line(row) -> str:
    t, load, pv = row
    return f"{t:.0f},{_cell(load)},{_cell(pv)}\n"


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
    `<data_dir>/carbon_history.csv`, kept the newest `keep_days` (store/quarter_hour_csv.py)."""

    def __init__(self, path: str | os.PathLike, *, keep_days: int = 400):
        self._file = QuarterHourCsv(path, CARBON_HEADER, int(keep_days) * 86400 // SLOT_S,
                                    "carbon history", _carbon_line)
        self.path = self._file.path
        self.keep_rows = self._file.keep_rows

    def load(self) -> None:
        """Read what earlier runs recorded (call once at start)."""
        try:
            slots = read_carbon_history(self.path)
        except OSError as exc:
            log.warning("carbon history %s unreadable, starting a new one in memory: %s",
                        self.path, exc)
            return
        if slots:
            self._file.rows = slots[-self.keep_rows:]

    @property
    def slots(self) -> list[CarbonSlot]:
        return list(self._file.rows)

    @property
    def last(self) -> CarbonSlot | None:
        return self._file.rows[-1] if self._file.rows else None

    def append(self, slots: Iterable[CarbonSlot]) -> None:
        self._file.extend(slots)


def _carbon_line(s: CarbonSlot) -> str:
    return (f"{s.start_s:.0f},{s.grid_g_per_kwh:.2f},{s.house_kwh:.4f},{s.car_kwh:.4f},"
            f"{s.house_co2_g:.2f},{s.car_co2_g:.2f},{s.avoided_co2_g:.2f},{s.battery_kwh:.4f},"
            f"{'' if s.battery_g_per_kwh is None else format(s.battery_g_per_kwh, '.2f')}\n")


# ---- what the site bought and sold per quarter hour, at what price -----------------------------

MONEY_HISTORY_FILE = "money_history.csv"
MONEY_COLUMNS = ("start_s", "load_kwh", "pv_kwh", "import_kwh", "export_kwh", "import_price",
                 "export_price")
MoneyRow = tuple[int, float, float, float, float, float, float]
MONEY_HEADER = ",".join(MONEY_COLUMNS) + "\n"


def read_money_history(path: str | os.PathLike) -> list[MoneyRow]:
    """`<data_dir>/money_history.csv` as rows of its columns, oldest first; unreadable rows
    (and negative energies) are skipped; [] without a file."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        for row in csv.DictReader(handle):
            try:
                values = [float(row[name]) for name in MONEY_COLUMNS]
            except (KeyError, TypeError, ValueError):
                continue
            if all(math.isfinite(v) for v in values) and min(values[1:5]) >= 0:
                rows.append((int(values[0]), *values[1:]))
    rows.sort()
    return rows


class MoneyHistoryFile:
    """See the module docstring; kept the newest `keep_days`."""

    def __init__(self, path: str | os.PathLike, *, keep_days: int = 400):
        self._file = QuarterHourCsv(path, MONEY_HEADER, int(keep_days) * 86400 // SLOT_S,
                                    "money history", _money_line)
        self.path = self._file.path

    def load(self) -> None:
        try:
            rows = read_money_history(self.path)
        except OSError as exc:
            log.warning("money history %s unreadable, starting a new one in memory: %s",
                        self.path, exc)
            return
        self._file.rows = rows[-self._file.keep_rows:]

    @property
    def rows(self) -> list[MoneyRow]:
        return list(self._file.rows)

    def append(self, slots: Iterable[SlotEnergy], price_at) -> None:
        """Finished quarter hours with every energy measured and a price (`price_at(start_s)`:
        (import, export) or None)."""
        new = []
        for slot in slots:
            energies = (slot.load_kwh, slot.pv_kwh, slot.grid_import_kwh, slot.grid_export_kwh)
            price = price_at(slot.start_s)
            if price is None or not all(math.isfinite(value) for value in energies):
                continue
            new.append((int(slot.start_s), *energies, float(price[0]), float(price[1])))
        self._file.extend(new)


def _money_line(row) -> str:
    start, load, pv, bought, sold, buy, sell = row
    return f"{start},{load:.4f},{pv:.4f},{bought:.4f},{sold:.4f},{buy:.5f},{sell:.5f}\n"
