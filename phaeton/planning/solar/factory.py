"""Build the PV forecast source `planner.pv_forecast` names, for the arrays of `planner.site`.

`pv_source_from_config(planner, data_dir)` gives None for `source: learned` (or a site without
PV) and otherwise the source, with its cache in `<data_dir>/pv-forecast-<source>.json`. A
setting it cannot use raises `PvForecastConfigError` naming the key. The builders the registry
names (`open_meteo`, `forecast_solar`, `solcast`) are here.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phaeton.clock import REAL_CLOCK, Clock
from phaeton.planning.solar.registry import LEARNED, kind_named


class PvForecastConfigError(ValueError):
    """A PV forecast setting is wrong; the message starts with the key path."""


@dataclass(frozen=True)
class PvSourceContext:
    """What a builder gets besides its own keys."""
    where: str
    site: Any                      # base.PvSite
    clock: Clock
    timeout_s: float
    cache_path: Path | None


def pv_source_from_config(planner: Mapping[str, Any],
                          data_dir: str | os.PathLike | None = None, *,
                          clock: Clock = REAL_CLOCK):
    """The source `planner["pv_forecast"]` names, or None (learned only, or no PV)."""
    section = planner.get("pv_forecast") or {}
    where = "planner.pv_forecast"
    if not isinstance(section, Mapping):
        raise PvForecastConfigError(f"{where}: must be a mapping with a 'source'")
    name = section.get("source", LEARNED)
    if name == LEARNED:
        return None
    try:
        kind = kind_named(name)
    except ValueError as exc:
        raise PvForecastConfigError(f"{where}.source: {exc}") from None
    from phaeton.planning.problem_builder import pv_arrays
    from phaeton.planning.solar.base import PvSite
    site = planner.get("site") or {}
    arrays = tuple(array for array in pv_arrays(site) if array[2] > 0)
    if not arrays:
        return None
    try:
        pv_site = PvSite(float(site["latitude_deg"]), float(site["longitude_deg"]), arrays)
    except (KeyError, TypeError, ValueError) as exc:
        raise PvForecastConfigError(f"planner.site: {exc}") from exc
    own = section.get(kind.name) or {}
    settings = {key: value for key, value in dict(own).items() if value is not None}
    missing = [key for key in kind.required if key not in settings]
    if missing:
        raise PvForecastConfigError(f"{where}.{kind.name}.{missing[0]}: is required when "
                                    f"{where}.source is {kind.name!r}: "
                                    f"{kind.required[missing[0]]}")
    timeout_s = section.get("timeout_s", 20.0)
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) \
            or not timeout_s > 0:
        raise PvForecastConfigError(f"{where}.timeout_s: must be a number > 0, got "
                                    f"{timeout_s!r}")
    cache = Path(data_dir) / f"pv-forecast-{kind.name}.json" if data_dir else None
    context = PvSourceContext(f"{where}.{kind.name}", pv_site, clock, float(timeout_s), cache)
    try:
        return kind.build(settings, context)
    except (TypeError, ValueError) as exc:
        raise PvForecastConfigError(f"{context.where}: {exc}") from exc


def _options(context: PvSourceContext, interval_s: float) -> dict[str, Any]:
    from phaeton.planning.interval_refresh import IntervalRefresh
    refresh = IntervalRefresh(interval_s=interval_s, backoff_base_s=60.0,
                              backoff_max_s=max(3600.0, interval_s))
    return {"cache_path": context.cache_path, "refresh": refresh, "clock": context.clock,
            "timeout_s": context.timeout_s}


def open_meteo(settings: dict[str, Any], context: PvSourceContext):
    from phaeton.planning.solar.open_meteo import OpenMeteo, OpenMeteoConfig
    config = OpenMeteoConfig(**settings)
    return OpenMeteo(config, context.site, **_options(context, config.interval_s))


def forecast_solar(settings: dict[str, Any], context: PvSourceContext):
    from phaeton.planning.solar.forecast_solar import ForecastSolar, ForecastSolarConfig
    config = ForecastSolarConfig(**settings)
    return ForecastSolar(config, context.site, **_options(context, config.interval_s))


def solcast(settings: dict[str, Any], context: PvSourceContext):
    from phaeton.planning.solar.solcast import Solcast, SolcastConfig
    config = SolcastConfig(**settings)
    return Solcast(config, context.site, **_options(context, config.wait_s))
