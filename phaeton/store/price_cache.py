"""On-disk cache of a tariff's last good prices: one JSON file, written atomically.

The GX may boot without internet, so a tariff loads its cache at start and serves it until
a fetch succeeds. A corrupt or foreign cache file is reported and ignored, never fatal.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from phaeton.planning.tariffs.series import PriceDataError, PriceSeries
from phaeton.store.state_file import write_file_atomically

log = logging.getLogger(__name__)

CACHE_VERSION = 1


class PriceCache:
    """Stores one PriceSeries at `path`, tagged with `config_key`.

    `config_key` describes what produced the prices (provider, area, formulas); a cache
    written under another key is ignored so a changed formula never serves stale prices.
    """

    def __init__(self, path: str | os.PathLike, config_key: str):
        self.path = Path(path)
        self.config_key = config_key

    def load(self) -> PriceSeries | None:
        """The cached series, or None when there is none or it cannot be used (logged)."""
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.error("price cache %s unreadable: %s", self.path, exc)
            return None
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise PriceDataError("top level is not an object")
            if data.get("version") != CACHE_VERSION:
                raise PriceDataError(f"unknown cache version {data.get('version')!r}")
            if data.get("config_key") != self.config_key:
                log.info("price cache %s was written for other settings; ignoring it", self.path)
                return None
            return PriceSeries.from_json(data["series"])
        except (ValueError, KeyError, TypeError) as exc:
            log.error("price cache %s is corrupt, ignoring it: %s", self.path, exc)
            return None

    def save(self, series: PriceSeries) -> None:
        """Write atomically (temp file, fsync, rename) so a power cut leaves old or new."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"version": CACHE_VERSION, "config_key": self.config_key,
                   "series": series.to_json()}
        write_file_atomically(self.path, json.dumps(payload, separators=(",", ":")).encode())
