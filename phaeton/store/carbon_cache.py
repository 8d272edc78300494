"""On-disk cache of a carbon source's last good intensities: one JSON file, written atomically.

The same layout as the tariffs' price cache (`store/price_cache.py`: version, config_key,
series with its unit and columns); that class reads only price series (import and export
columns), so the carbon series has this reader. A corrupt or foreign file, one written for
other settings or in another unit is reported and ignored, never fatal.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from phaeton.planning.carbon.series import UNIT, CarbonDataError, CarbonSeries
from phaeton.store.state_file import write_file_atomically

log = logging.getLogger(__name__)

CACHE_VERSION = 1


class CarbonCache:
    """Stores one CarbonSeries at `path`, tagged with `config_key` (what produced it: source,
    area, zone; never a token)."""

    def __init__(self, path: str | os.PathLike, config_key: str):
        self.path = Path(path)
        self.config_key = config_key

    def load(self) -> CarbonSeries | None:
        """The cached series, or None when there is none or it cannot be used (logged)."""
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.error("carbon cache %s unreadable: %s", self.path, exc)
            return None
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise CarbonDataError("top level is not an object")
            if data.get("version") != CACHE_VERSION:
                raise CarbonDataError(f"unknown cache version {data.get('version')!r}")
            if data.get("config_key") != self.config_key:
                log.info("carbon cache %s was written for other settings; ignoring it",
                         self.path)
                return None
            series = CarbonSeries.from_json(data["series"])
            if series.unit != UNIT:
                raise CarbonDataError(f"unit {series.unit!r}, expected {UNIT!r}")
            return series
        except (ValueError, KeyError, TypeError) as exc:
            log.error("carbon cache %s is corrupt, ignoring it: %s", self.path, exc)
            return None

    def save(self, series: CarbonSeries) -> None:
        """Write atomically (temp file, fsync, rename) so a power cut leaves old or new."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"version": CACHE_VERSION, "config_key": self.config_key,
                   "series": series.to_json()}
        write_file_atomically(self.path, json.dumps(payload, separators=(",", ":")).encode())
