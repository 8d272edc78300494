"""Prices from a CSV or JSON file, local or at an http(s) URL.

Columns (CSV header) or keys (JSON list of objects, or {"prices": [...]}):
  start            ISO 8601 time with UTC offset, or unix seconds
  duration_s       optional; otherwise the smallest step between starts (3600 for one row)
  and either       spot_eur_per_kwh  (import and export formulas applied)
  or               import_eur_per_kwh [+ export_eur_per_kwh, else the export formula's
                   fixed price, else 0]
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from phaeton.clock import REAL_CLOCK, Clock
from phaeton.planning.tariffs.base import FetchingTariff, TariffError
from phaeton.planning.tariffs.factory import TariffContext, construct
from phaeton.planning.tariffs.formula import ExportFormula, ImportFormula
from phaeton.planning.tariffs.schedule import RefreshPolicy
from phaeton.planning.tariffs.series import PriceDataError, PriceSeries, price_unit


@dataclass(frozen=True)
class FileTariffConfig:
    """`location` is a file path or an http(s) URL; `format` 'csv', 'json' or 'auto'
    (by suffix, else by content)."""

    location: str
    format: str = "auto"
    import_formula: ImportFormula = field(default_factory=ImportFormula)
    export_formula: ExportFormula = field(default_factory=ExportFormula)

    def __post_init__(self) -> None:
        if not isinstance(self.location, (str, os.PathLike)) or not str(self.location):
            raise ValueError("file tariff location must be a path or URL")
        if self.format not in ("auto", "csv", "json"):
            raise ValueError(f"file tariff format must be auto, csv or json, got {self.format!r}")

    @property
    def is_url(self) -> bool:
        return str(self.location).startswith(("http://", "https://"))


def _parse_time(value, row_no: int) -> int:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    text = str(value).strip()
    try:
        return int(float(text))
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise PriceDataError(f"row {row_no}: start {text!r} is neither ISO 8601 nor unix s") \
            from exc
    if moment.tzinfo is None:
        raise PriceDataError(f"row {row_no}: start {text!r} needs a UTC offset (e.g. +01:00)")
    return int(moment.timestamp())


def _number(row: dict, key: str, row_no: int) -> float | None:
    value = row.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise PriceDataError(f"row {row_no}: {key} {value!r} is not a number") from exc
    if not np.isfinite(number):
        raise PriceDataError(f"row {row_no}: {key} is not a finite number")
    return number


def parse_price_rows(rows: list[dict], import_formula: ImportFormula,
                     export_formula: ExportFormula, source: str,
                     fetched_at_s: float) -> PriceSeries:
    """Price rows (dicts as described in the module doc) → PriceSeries."""
    if not rows:
        raise PriceDataError(f"{source}: no price rows")
    starts, durations, imports, exports = [], [], [], []
    for row_no, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or "start" not in row:
            raise PriceDataError(f"{source}: row {row_no} has no 'start'")
        starts.append(_parse_time(row["start"], row_no))
        duration = _number(row, "duration_s", row_no)
        durations.append(duration)
        spot = _number(row, "spot_eur_per_kwh", row_no)
        if spot is not None:
            imports.append(float(import_formula.apply(spot)))
            exports.append(float(export_formula.apply(spot)))
            continue
        imp = _number(row, "import_eur_per_kwh", row_no)
        if imp is None:
            raise PriceDataError(
                f"{source}: row {row_no} needs spot_eur_per_kwh or import_eur_per_kwh")
        exp = _number(row, "export_eur_per_kwh", row_no)
        if exp is None:
            exp = export_formula.fixed_eur_per_kwh or 0.0
        imports.append(imp)
        exports.append(exp)
    order = np.argsort(starts, kind="stable")
    start_s = np.array(starts, np.int64)[order]
    if np.any(np.diff(start_s) == 0):
        raise PriceDataError(f"{source}: two rows start at the same time")
    default_step = int(np.diff(start_s).min()) if start_s.size > 1 else 3600
    duration_s = np.array([default_step if d is None else int(d) for d in durations],
                          np.int64)[order]
    return PriceSeries(start_s, duration_s, np.array(imports)[order],
                       np.array(exports)[order], source, fetched_at_s)


def parse_price_file(text: str, fmt: str, import_formula: ImportFormula,
                     export_formula: ExportFormula, source: str,
                     fetched_at_s: float) -> PriceSeries:
    """CSV or JSON text → PriceSeries; 'auto' guesses from the first character."""
    if fmt == "auto":
        fmt = "json" if text.lstrip()[:1] in ("[", "{") else "csv"
    if fmt == "json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise PriceDataError(f"{source}: not valid JSON: {exc}") from exc
        if isinstance(data, dict):
            data = data.get("prices")
        if not isinstance(data, list):
            raise PriceDataError(f"{source}: JSON must be a list of rows or {{'prices': [...]}}")
        rows = data
    else:
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "start" not in [f.strip() for f in reader.fieldnames]:
            raise PriceDataError(f"{source}: CSV needs a header with a 'start' column")
        rows = [{(k or "").strip(): v for k, v in row.items()} for row in reader]
    return parse_price_rows(rows, import_formula, export_formula, source, fetched_at_s)


class FileTariff(FetchingTariff):
    """Prices from a file or URL. A local file is re-read whenever it changes."""

    def __init__(self, config: FileTariffConfig, *, cache_path=None,
                 policy: RefreshPolicy | None = None, clock: Clock = REAL_CLOCK,
                 timeout_s: float = 20.0, unit: str = price_unit()):
        self.config = config
        self._seen_mtime_ns: int | None = None
        super().__init__(source="file", cache_path=cache_path, policy=policy, clock=clock,
                         timeout_s=timeout_s, unit=unit)

    def config_key(self) -> str:
        c = self.config
        return f"file|{c.location}|{c.format}|{c.import_formula!r}|{c.export_formula!r}"

    def _format(self) -> str:
        return file_format(self.config.location, self.config.format)

    def next_refresh_s(self, now_s: float) -> float:
        """As scheduled, and at once when a local file changed since the last read."""
        due = super().next_refresh_s(now_s)
        if not self.config.is_url and file_changed(self.config.location, self._seen_mtime_ns):
            return min(due, now_s)
        return due

    async def _fetch(self, now_s: float) -> PriceSeries:
        if self.config.is_url:
            text = await self._get_text(str(self.config.location))
        else:
            try:
                self._seen_mtime_ns = os.stat(self.config.location).st_mtime_ns
                text = Path(self.config.location).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise TariffError(f"file: cannot read {self.config.location}: {exc}") from exc
        return parse_price_file(text, self._format(), self.config.import_formula,
                                self.config.export_formula, "file", now_s)


def tariff_from_section(settings: dict, context: TariffContext) -> FileTariff:
    """The builder `tariffs.registry` names: `planner.tariff.file` with the shared formulas,
    refresh policy, timeout and cache the factory put in `context`."""
    config = construct(FileTariffConfig, settings, context.where, **context.formulas)
    return FileTariff(config, **context.fetching_options())


def file_format(location, configured: str) -> str:
    """csv or json: as configured, else from the location's suffix ("auto" when it says
    neither). Shared with the carbon file source."""
    if configured != "auto":
        return configured
    suffix = Path(str(location).split("?")[0]).suffix.lower()
    return {".csv": "csv", ".json": "json"}.get(suffix, "auto")


def file_changed(location, seen_mtime_ns: int | None) -> bool:
    """A local file whose modification time is not the one last read (False when it cannot
    be read: the fetch says why)."""
    try:
        return os.stat(location).st_mtime_ns != seen_mtime_ns
    except OSError:
        return False
