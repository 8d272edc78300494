"""On-disk cache of a fetching source's last good series: one JSON file, written atomically.

The GX may boot without internet, so a fetching source (a tariff, a carbon source, a PV
forecast) loads its cache at start and serves it until a fetch succeeds. The file holds a
version, the `config_key` of what produced the series (provider, area, formulas, arrays; never
a token) and the series (`TimeSeries.to_json`). A corrupt or foreign file, one written for other
settings or in another unit is reported and ignored, never fatal.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Generic, TypeVar

from phaeton.planning.tariffs.series import SeriesDataError, TimeSeries
from phaeton.store.state_file import write_file_atomically

log = logging.getLogger(__name__)

CACHE_VERSION = 1

Series = TypeVar("Series", bound=TimeSeries)


class SeriesCache(Generic[Series]):
    """Stores one series of `series_class` at `path`, tagged with `config_key`; `unit`, when
    given, is the only unit a cached series may have. `what` names the cache in log lines."""

    def __init__(self, path: str | os.PathLike, config_key: str, series_class: type[Series],
                 *, unit: str | None = None, what: str = "series"):
        self.path = Path(path)
        self.config_key = config_key
        self.series_class = series_class
        self.unit = unit
        self.what = what

    def load(self) -> Series | None:
        """The cached series, or None when there is none or it cannot be used (logged)."""
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.error("%s cache %s unreadable: %s", self.what, self.path, exc)
            return None
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise SeriesDataError("top level is not an object")
            if data.get("version") != CACHE_VERSION:
                raise SeriesDataError(f"unknown cache version {data.get('version')!r}")
            if data.get("config_key") != self.config_key:
                log.info("%s cache %s was written for other settings; ignoring it", self.what,
                         self.path)
                return None
            series = self.series_class.from_json(data["series"])
            if self.unit is not None and series.unit != self.unit:
                raise SeriesDataError(f"unit {series.unit!r}, expected {self.unit!r}")
            return series
        except (ValueError, KeyError, TypeError) as exc:
            log.error("%s cache %s is corrupt, ignoring it: %s", self.what, self.path, exc)
            return None

    def save(self, series: Series) -> None:
        """Write atomically (temp file, fsync, rename) so a power cut leaves old or new."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"version": CACHE_VERSION, "config_key": self.config_key,
                   "series": series.to_json()}
        write_file_atomically(self.path, json.dumps(payload, separators=(",", ":")).encode())
