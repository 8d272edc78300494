"""A flat tariff: the same import and export price at all times."""
from __future__ import annotations

import math

import numpy as np

from phaeton.planning.tariffs.base import Tariff, check_prices
from phaeton.planning.tariffs.factory import TariffContext, construct
from phaeton.planning.tariffs.series import QUARTER_HOUR_S, PriceSeries, price_unit

DEFAULT_HORIZON_S = 48 * 3600


class StaticTariff(Tariff):
    """Constant prices, emitted as 15-min slots from the current slot over `horizon_s`."""

    source = "static"

    def __init__(self, import_eur_per_kwh: float, export_eur_per_kwh: float = 0.0,
                 horizon_s: int = DEFAULT_HORIZON_S, unit: str = price_unit()):
        for name, value in (("import_eur_per_kwh", import_eur_per_kwh),
                            ("export_eur_per_kwh", export_eur_per_kwh)):
            if not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise ValueError(f"static tariff {name} must be a number, got {value!r}")
        check_prices("static tariff", np.array([import_eur_per_kwh, export_eur_per_kwh]))
        if horizon_s < QUARTER_HOUR_S:
            raise ValueError(f"horizon_s must be at least {QUARTER_HOUR_S}, got {horizon_s}")
        self.import_eur_per_kwh = float(import_eur_per_kwh)
        self.export_eur_per_kwh = float(export_eur_per_kwh)
        self.horizon_s = int(horizon_s)
        self.unit = unit

    async def prices(self, now_s: float) -> PriceSeries:
        first = int(math.floor(now_s / QUARTER_HOUR_S) * QUARTER_HOUR_S)
        n = int(math.ceil(self.horizon_s / QUARTER_HOUR_S))
        return PriceSeries(first + QUARTER_HOUR_S * np.arange(n, dtype=np.int64),
                           np.full(n, QUARTER_HOUR_S), np.full(n, self.import_eur_per_kwh),
                           np.full(n, self.export_eur_per_kwh), self.source, now_s,
                           unit=self.unit)

    async def refresh(self) -> None:
        """Nothing to fetch: the prices are configuration."""


def tariff_from_section(settings: dict, context: TariffContext) -> StaticTariff:
    """The builder `tariffs.registry` names: a static tariff from `planner.tariff.static`."""
    return construct(StaticTariff, settings, context.where, unit=context.unit)
