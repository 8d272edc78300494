"""Build a Tariff from a plain mapping (the `tariff:` section of config.yaml).

Errors name the offending key, e.g. `tariff.windows[1].start: ...`, so `check-config`
can point at it.
"""
from __future__ import annotations

import inspect
import os
from pathlib import Path

from phaeton.clock import REAL_CLOCK, Clock
from phaeton.planning.tariffs.base import Tariff
from phaeton.planning.tariffs.entsoe import EntsoeConfig, EntsoeTariff
from phaeton.planning.tariffs.file import FileTariff, FileTariffConfig
from phaeton.planning.tariffs.formula import ExportFormula, ImportFormula
from phaeton.planning.tariffs.schedule import RefreshPolicy
from phaeton.planning.tariffs.static import StaticTariff
from phaeton.planning.tariffs.tibber import TibberConfig, TibberTariff
from phaeton.planning.tariffs.time_of_use import TimeOfUseTariff, TouWindow

TARIFF_TYPES = ("static", "time_of_use", "tibber", "entsoe", "file")


class TariffConfigError(ValueError):
    """A tariff setting is wrong; the message starts with the key path."""


def _build(cls, section: dict, where: str, **extra):
    """cls(**section) with unknown keys and constructor errors reported at `where`."""
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise TariffConfigError(f"{where}: must be a mapping, got {type(section).__name__}")
    accepted = set(inspect.signature(cls).parameters) - set(extra)
    unknown = sorted(set(section) - accepted)
    if unknown:
        raise TariffConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(accepted)}")
    try:
        return cls(**section, **extra)
    except (TypeError, ValueError) as exc:
        raise TariffConfigError(f"{where}: {exc}") from exc


def tariff_from_config(config: dict, cache_dir: str | os.PathLike | None = None, *,
                       clock: Clock = REAL_CLOCK, where: str = "tariff") -> Tariff:
    """The tariff described by `config`; fetching tariffs cache in `cache_dir`/prices-<type>.json."""
    if not isinstance(config, dict):
        raise TariffConfigError(f"{where}: must be a mapping with a 'type'")
    settings = dict(config)
    kind = settings.pop("type", None)
    if kind not in TARIFF_TYPES:
        raise TariffConfigError(f"{where}.type: must be one of {list(TARIFF_TYPES)}, "
                                f"got {kind!r}")
    if kind == "static":
        return _build(StaticTariff, settings, where)
    if kind == "time_of_use":
        windows = settings.pop("windows", [])
        if not isinstance(windows, list):
            raise TariffConfigError(f"{where}.windows: must be a list")
        built = []
        for i, window in enumerate(windows):
            if isinstance(window, dict) and isinstance(window.get("days"), list):
                window = {**window, "days": tuple(window["days"])}
            built.append(_build(TouWindow, window, f"{where}.windows[{i}]"))
        return _build(TimeOfUseTariff, settings, where, windows=built)

    common = {}
    if "import_formula" in settings:
        common["import_formula"] = _build(ImportFormula, settings.pop("import_formula"),
                                          f"{where}.import_formula")
    if "export_formula" in settings:
        common["export_formula"] = _build(ExportFormula, settings.pop("export_formula"),
                                          f"{where}.export_formula")
    policy = _build(RefreshPolicy, settings.pop("refresh", None), f"{where}.refresh")
    timeout_s = settings.pop("timeout_s", 20.0)
    if not isinstance(timeout_s, (int, float)) or not timeout_s > 0:
        raise TariffConfigError(f"{where}.timeout_s: must be a number > 0, got {timeout_s!r}")
    cache_path = Path(cache_dir) / f"prices-{kind}.json" if cache_dir else None
    config_cls, tariff_cls = {"tibber": (TibberConfig, TibberTariff),
                              "entsoe": (EntsoeConfig, EntsoeTariff),
                              "file": (FileTariffConfig, FileTariff)}[kind]
    tariff_config = _build(config_cls, settings, where, **common)
    return tariff_cls(tariff_config, cache_path=cache_path, policy=policy, clock=clock,
                      timeout_s=float(timeout_s))
