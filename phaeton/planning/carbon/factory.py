"""Build a carbon source from the config's `carbon` section.

The kinds and their builders are `carbon.registry`'s; this module does what they share: the
source lookup (`none` gives None: no carbon intensity), the refresh policy, timeout and cache of
the fetching kinds, and `construct`, which turns keys into a constructor call with errors that
name the key (`carbon.static.g_per_kwh: ...`).
"""
from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phaeton.clock import REAL_CLOCK, Clock
from phaeton.planning.carbon.registry import NONE, kind_named
from phaeton.planning.interval_refresh import IntervalRefresh

if TYPE_CHECKING:   # the sources bring numpy; `none` (the default) needs none of it
    from phaeton.planning.carbon.base import CarbonSource


class CarbonConfigError(ValueError):
    """A carbon setting is wrong; the message starts with the key path."""


def construct(cls, section: Mapping | None, where: str, **extra):
    """cls(**section, **extra) with unknown keys and constructor errors reported at `where`."""
    if section is None:
        section = {}
    if not isinstance(section, Mapping):
        raise CarbonConfigError(f"{where}: must be a mapping, got {type(section).__name__}")
    accepted = set(inspect.signature(cls).parameters) - set(extra)
    unknown = sorted(set(section) - accepted)
    if unknown:
        raise CarbonConfigError(f"{where}: unknown key(s) {unknown}; allowed: "
                                f"{sorted(accepted)}")
    try:
        return cls(**section, **extra)
    except (TypeError, ValueError) as exc:
        raise CarbonConfigError(f"{where}: {exc}") from exc


@dataclass(frozen=True)
class CarbonContext:
    """What a source's builder gets besides its own keys: the key path for messages, the
    clock, and for a fetching kind the refresh policy, timeout and cache path
    (`fetching_options()`)."""

    where: str
    clock: Clock = REAL_CLOCK
    refresh: IntervalRefresh | None = None
    timeout_s: float = 20.0
    cache_path: Path | None = None

    def fetching_options(self) -> dict[str, Any]:
        """Keyword arguments of a `FetchingCarbonSource` subclass besides its config."""
        return {"cache_path": self.cache_path, "refresh": self.refresh, "clock": self.clock,
                "timeout_s": self.timeout_s}


def carbon_from_config(section: Mapping[str, Any] | None,
                       cache_dir: str | os.PathLike | None = None, *,
                       clock: Clock = REAL_CLOCK, where: str = "carbon") -> CarbonSource | None:
    """The source the `carbon` section names, or None for `source: none` (or no section).

    `section` is the config's `carbon` section as loaded (defaults filled) or any part of it:
    `source`, the chosen source's own section (keys left null are left out, so the source
    names what is missing), `refresh` and `timeout_s`. Fetching sources cache in
    `cache_dir`/carbon-<source>.json."""
    if section is None:
        return None
    if not isinstance(section, Mapping):
        raise CarbonConfigError(f"{where}: must be a mapping with a 'source'")
    name = section.get("source", NONE)
    if name == NONE:
        return None
    try:
        kind = kind_named(name)
    except ValueError as exc:
        raise CarbonConfigError(f"{where}.source: {exc}") from None
    own = section.get(kind.name) or {}
    if not isinstance(own, Mapping):
        raise CarbonConfigError(f"{where}.{kind.name}: must be a mapping")
    settings = {key: value for key, value in own.items() if value is not None}
    context = CarbonContext(f"{where}.{kind.name}", clock)
    if kind.fetches:
        refresh = construct(IntervalRefresh, {k: v for k, v in
                                            dict(section.get("refresh") or {}).items()
                                            if v is not None}, f"{where}.refresh")
        timeout_s = section.get("timeout_s", 20.0)
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) \
                or not timeout_s > 0:
            raise CarbonConfigError(f"{where}.timeout_s: must be a number > 0, got "
                                    f"{timeout_s!r}")
        cache_path = Path(cache_dir) / f"carbon-{kind.name}.json" if cache_dir else None
        context = CarbonContext(context.where, clock, refresh, float(timeout_s), cache_path)
    missing = [key for key in kind.required if key not in settings]
    if missing:
        raise CarbonConfigError(f"{context.where}.{missing[0]}: is required when "
                                f"{where}.source is {kind.name!r}: {kind.required[missing[0]]}")
    return kind.build(settings, context)
