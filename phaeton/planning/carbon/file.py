"""Carbon intensities from a CSV or JSON file, local or at an http(s) URL.

Columns (CSV header) or keys (JSON list of objects, or {"intensity": [...]}):
  start        ISO 8601 time with UTC offset, or unix seconds
  duration_s   optional; otherwise the smallest step between starts (3600 for one row)
  g_per_kwh    g CO2-eq per kWh, a finite number from 0 to 2000
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phaeton.clock import REAL_CLOCK, Clock
from phaeton.planning.carbon.base import CarbonError, FetchingCarbonSource
from phaeton.planning.carbon.factory import CarbonContext, construct
from phaeton.planning.interval_refresh import IntervalRefresh
from phaeton.planning.carbon.series import CarbonDataError, CarbonSeries, finite_number
from phaeton.planning.tariffs.file import file_changed, file_format

NAME = "file"


@dataclass(frozen=True)
class CarbonFileConfig:
    """`location`: a file path or an http(s) URL; `format`: csv, json or auto."""

    location: str
    format: str = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.location, (str, os.PathLike)) or not str(self.location):
            raise ValueError("location must be a path or URL")
        if self.format not in ("auto", "csv", "json"):
            raise ValueError(f"format must be auto, csv or json, got {self.format!r}")

    @property
    def is_url(self) -> bool:
        return str(self.location).startswith(("http://", "https://"))


def _time(value, row_no: int) -> int:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(finite_number(value, f"{NAME}: row {row_no} start"))
    text = str(value).strip()
    try:
        return int(float(text))
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise CarbonDataError(f"{NAME}: row {row_no}: start {text!r} is neither ISO 8601 nor "
                              f"unix seconds") from exc
    if moment.tzinfo is None:
        raise CarbonDataError(f"{NAME}: row {row_no}: start {text!r} needs a UTC offset")
    return int(moment.timestamp())


def parse_rows(rows: list, fetched_at_s: float) -> CarbonSeries:
    """Rows (dicts as described in the module doc) -> CarbonSeries."""
    if not rows:
        raise CarbonDataError(f"{NAME}: no rows")
    starts, durations, values = [], [], []
    for row_no, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or "start" not in row:
            raise CarbonDataError(f"{NAME}: row {row_no} has no 'start'")
        if row.get("g_per_kwh") in (None, ""):
            raise CarbonDataError(f"{NAME}: row {row_no} has no 'g_per_kwh'")
        starts.append(_time(row["start"], row_no))
        duration = row.get("duration_s")
        durations.append(None if duration in (None, "") else
                         finite_number(duration, f"{NAME}: row {row_no} duration_s"))
        values.append(finite_number(row["g_per_kwh"], f"{NAME}: row {row_no} g_per_kwh"))
    order = np.argsort(starts, kind="stable")
    start_s = np.array(starts, np.int64)[order]
    if np.any(np.diff(start_s) == 0):
        raise CarbonDataError(f"{NAME}: two rows start at the same time")
    step = int(np.diff(start_s).min()) if start_s.size > 1 else 3600
    duration_s = np.array([step if d is None else int(d) for d in durations], np.int64)[order]
    return CarbonSeries(start_s, duration_s, np.array(values)[order], NAME, fetched_at_s)


def parse_file(text: str, fmt: str, fetched_at_s: float) -> CarbonSeries:
    """CSV or JSON text -> CarbonSeries; 'auto' guesses from the first character."""
    if fmt == "auto":
        fmt = "json" if text.lstrip()[:1] in ("[", "{") else "csv"
    if fmt == "json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise CarbonDataError(f"{NAME}: not valid JSON: {exc}") from exc
        if isinstance(data, dict):
            data = data.get("intensity")
        if not isinstance(data, list):
            raise CarbonDataError(f"{NAME}: JSON must be a list of rows or "
                                  f"{{'intensity': [...]}}")
        return parse_rows(data, fetched_at_s)
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip() for f in (reader.fieldnames or [])]
    if "start" not in fields or "g_per_kwh" not in fields:
        raise CarbonDataError(f"{NAME}: CSV needs a header with 'start' and 'g_per_kwh'")
    rows = [{(k or "").strip(): v for k, v in row.items()} for row in reader]
    return parse_rows(rows, fetched_at_s)


class CarbonFile(FetchingCarbonSource):
    """Intensities from a file or URL. A local file is re-read whenever it changes."""

    def __init__(self, config: CarbonFileConfig, *, cache_path=None,
                 refresh: IntervalRefresh | None = None, clock: Clock = REAL_CLOCK,
                 timeout_s: float = 20.0):
        self.config = config
        self._seen_mtime_ns: int | None = None
        super().__init__(source=NAME, cache_path=cache_path, refresh=refresh, clock=clock,
                         timeout_s=timeout_s)

    def config_key(self) -> str:
        return f"{NAME}|{self.config.location}|{self.config.format}"

    def _format(self) -> str:
        return file_format(self.config.location, self.config.format)

    def next_refresh_s(self, now_s: float) -> float:
        """As scheduled, and at once when a local file changed since the last read."""
        due = super().next_refresh_s(now_s)
        if not self.config.is_url and file_changed(self.config.location, self._seen_mtime_ns):
            return min(due, now_s)
        return due

    async def _fetch(self, now_s: float) -> CarbonSeries:
        if self.config.is_url:
            text = await self._get_text(str(self.config.location))
        else:
            try:
                self._seen_mtime_ns = os.stat(self.config.location).st_mtime_ns
                text = Path(self.config.location).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise CarbonError(f"{NAME}: cannot read {self.config.location}: {exc}") from exc
        return parse_file(text, self._format(), now_s)


def source_from_section(settings: dict, context: CarbonContext) -> CarbonFile:
    """The builder `carbon.registry` names: `carbon.file`."""
    config = construct(CarbonFileConfig, settings, context.where)
    return CarbonFile(config, **context.fetching_options())
