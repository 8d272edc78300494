"""What every vehicle SoC source gives: the car's own state of charge, its range when the source
knows it, and when the reading was taken.

A source runs its own polling or subscription (`start`/`stop`) and keeps its newest reading;
callers only look (`latest`). A reading older than the car's `stale_after_s` is *stale*: it is
shown with its age but the planner does not use it (`fresh`).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any, Protocol


@dataclass(frozen=True)
class SocReading:
    """One reading of a car's state of charge."""
    soc_pct: float                      # 0..100
    at_s: float                         # wall-clock epoch seconds the reading was taken
    source: str                         # the source's kind: "mqtt", "http", "tesla", "ocpp", "manual"
    range_km: float | None = None       # the car's range, when the source tells it

    def age_s(self, now_s: float) -> float:
        return max(0.0, now_s - self.at_s)


class SocSource(Protocol):
    kind: str                           # "mqtt", "http", "tesla", "ocpp", "manual"

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def latest(self) -> SocReading | None: ...
    @property
    def problem(self) -> str | None:
        """Why the newest attempt failed (None: it worked or there was none yet)."""


class SourceError(Exception):
    """A source answered something that is not a usable SoC; the message says what and where."""


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise SourceError(f"{where}: expected a number, got {type(value).__name__}")
    try:
        return float(value)
    except ValueError:
        raise SourceError(f"{where}: expected a number, got {str(value)[:40]!r}") from None


def checked_soc(value: object, where: str) -> float:
    """`value` as a SoC in % (0..100), or SourceError naming `where` and what was wrong."""
    soc = _number(value, where)
    if not math.isfinite(soc) or not 0.0 <= soc <= 100.0:
        raise SourceError(f"{where}: {soc:g} is not a state of charge (0..100 %)")
    return soc


def checked_range_km(value: object, where: str) -> float | None:
    """`value` as a range in km (None when absent), or SourceError."""
    if value is None:
        return None
    km = _number(value, where)
    if not math.isfinite(km) or not 0.0 <= km <= 5000.0:
        raise SourceError(f"{where}: {km:g} km is not a range")
    return km


def json_reading(text: str, cfg: Mapping[str, Any], received_s: float, where: str,
                 source: str) -> SocReading:
    """A JSON text as a reading (`reading_from`); SourceError when it is not JSON."""
    try:
        document = json.loads(text)
    except ValueError:
        raise SourceError(f"{where}: not JSON ({text[:40]!r})") from None
    return reading_from(document, cfg, received_s, where, source)


def reading_from(document: object, cfg: Mapping[str, Any], received_s: float, where: str,
                 source: str) -> SocReading:
    """A JSON document as a reading: the SoC at `cfg["field"]`, the range at `range_field` and
    the time at `time_field` (else `received_s`; never later than that)."""
    soc = checked_soc(pick(document, str(cfg.get("field") or ""), where), where)
    range_field = cfg.get("range_field") or ""
    range_km = checked_range_km(pick(document, range_field, where), where) if range_field else None
    time_field = cfg.get("time_field") or ""
    at_s = reading_time_s(pick(document, time_field, where), where) if time_field else received_s
    return SocReading(soc, min(at_s, received_s), source, range_km)


def pick(document: object, path: str, where: str) -> object:
    """The value at dotted `path` in a JSON document ("charge_state.battery_level",
    "data.0.soc"; "" = the document itself); SourceError naming the missing part."""
    value = document
    if not path:
        return value
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.lstrip("-").isdigit() \
                and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            raise SourceError(f"{where}: no {part!r} in the answer (field {path!r})")
    return value


def reading_time_s(value: object, where: str) -> float:
    """A reading's time as epoch seconds from epoch seconds, epoch milliseconds (what Tesla and
    JavaScript publishers send) or an ISO 8601 text with its offset (Home Assistant's
    `last_updated`)."""
    from datetime import datetime
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value) / 1000.0 if value > 1e11 else float(value)
    if isinstance(value, str):
        try:
            stamp = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise SourceError(f"{where}: {value[:40]!r} is not a time") from None
        if stamp.tzinfo is None:
            raise SourceError(f"{where}: {value[:40]!r} has no time zone offset")
        return stamp.timestamp()
    raise SourceError(f"{where}: expected a time, got {type(value).__name__}")
