"""Build a Tariff from a plain mapping (the `tariff:` section of config.yaml, as
`planner.service.tariff_mapping` flattens it).

The kinds and their builders are `tariffs.registry`'s; this module does what they share:
the type lookup, the formulas, refresh policy, timeout and cache of the fetching kinds, and
`construct`, which turns keys into a constructor call. Errors name the offending key, e.g.
`tariff.windows[1].start: ...`, so `check-config` can point at it.
"""
from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phaeton.clock import REAL_CLOCK, Clock
from phaeton.planning.tariffs.base import Tariff
from phaeton.planning.tariffs.formula import ExportFormula, ImportFormula
from phaeton.planning.tariffs.registry import kind_named
from phaeton.planning.tariffs.schedule import RefreshPolicy
from phaeton.planning.tariffs.series import DEFAULT_CURRENCY, price_unit


class TariffConfigError(ValueError):
    """A tariff setting is wrong; the message starts with the key path."""


def construct(cls, section: dict | None, where: str, **extra):
    """cls(**section, **extra) with unknown keys and constructor errors reported at `where`.
    `extra` are arguments the config does not name (they are not accepted as keys)."""
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


@dataclass(frozen=True)
class TariffContext:
    """What a tariff's builder gets besides its own keys.

    `where` is the key path for messages, `unit` the unit of its prices ("EUR/kWh"). For a
    fetching kind also the formulas the config gave (`formulas`, ready to pass on as
    `import_formula=`/`export_formula=`) and the options of `FetchingTariff`
    (`fetching_options()`)."""

    where: str
    clock: Clock = REAL_CLOCK
    unit: str = price_unit()
    formulas: Mapping[str, Any] = field(default_factory=dict)
    policy: RefreshPolicy | None = None
    timeout_s: float = 20.0
    cache_path: Path | None = None

    def fetching_options(self) -> dict[str, Any]:
        """Keyword arguments of a `FetchingTariff` subclass besides its config."""
        return {"cache_path": self.cache_path, "policy": self.policy, "clock": self.clock,
                "timeout_s": self.timeout_s, "unit": self.unit}


def tariff_from_config(config: dict, cache_dir: str | os.PathLike | None = None, *,
                       clock: Clock = REAL_CLOCK, where: str = "tariff",
                       currency: str = DEFAULT_CURRENCY) -> Tariff:
    """The tariff described by `config`, its prices in `currency` per kWh; fetching tariffs
    cache in `cache_dir`/prices-<type>.json."""
    if not isinstance(config, dict):
        raise TariffConfigError(f"{where}: must be a mapping with a 'type'")
    settings = dict(config)
    try:
        kind = kind_named(settings.pop("type", None))
    except ValueError as exc:
        raise TariffConfigError(f"{where}.type: {exc}") from None
    context = TariffContext(where, clock, price_unit(currency))
    if kind.fetches:
        context = _fetching_context(settings, context, cache_dir, kind.name)
    return kind.build(settings, context)


def _fetching_context(settings: dict, context: TariffContext,
                      cache_dir: str | os.PathLike | None, name: str) -> TariffContext:
    """Take the shared keys of a fetching kind out of `settings` into the context."""
    where = context.where
    formulas = {}
    if "import_formula" in settings:
        formulas["import_formula"] = construct(ImportFormula, settings.pop("import_formula"),
                                               f"{where}.import_formula")
    if "export_formula" in settings:
        formulas["export_formula"] = construct(ExportFormula, settings.pop("export_formula"),
                                               f"{where}.export_formula")
    policy = construct(RefreshPolicy, settings.pop("refresh", None), f"{where}.refresh")
    timeout_s = settings.pop("timeout_s", 20.0)
    if not isinstance(timeout_s, (int, float)) or not timeout_s > 0:
        raise TariffConfigError(f"{where}.timeout_s: must be a number > 0, got {timeout_s!r}")
    cache_path = Path(cache_dir) / f"prices-{name}.json" if cache_dir else None
    return TariffContext(where, context.clock, context.unit, formulas, policy,
                         float(timeout_s), cache_path)
