"""Price formulas: turn a spot price (€/kWh) into what the household pays or earns."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def _check_finite(owner: str, **values: float | None) -> None:
    for name, value in values.items():
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)):
            raise ValueError(f"{owner}.{name} must be a finite number, got {value!r}")


@dataclass(frozen=True)
class ImportFormula:
    """Import price = (spot × factor + adder) × (1 + VAT/100).

    `adder_eur_per_kwh` holds grid fees, levies and the supplier's margin (net of VAT).
    The identity (factor 1, adder 0, VAT 0) passes a price through unchanged.
    """

    factor: float = 1.0
    adder_eur_per_kwh: float = 0.0
    vat_percent: float = 0.0

    def __post_init__(self) -> None:
        _check_finite("import formula", factor=self.factor,
                      adder_eur_per_kwh=self.adder_eur_per_kwh, vat_percent=self.vat_percent)
        if not 0 <= self.vat_percent <= 100:
            raise ValueError(f"import formula vat_percent must be 0..100, got {self.vat_percent}")

    def apply(self, spot_eur_per_kwh: np.ndarray) -> np.ndarray:
        spot = np.asarray(spot_eur_per_kwh, dtype=float)
        return (spot * self.factor + self.adder_eur_per_kwh) * (1.0 + self.vat_percent / 100.0)


@dataclass(frozen=True)
class ExportFormula:
    """Export (feed-in) price: `fixed_eur_per_kwh` when set, else spot × factor + adder.

    The default (factor 0, adder 0, no fixed) means exported energy earns nothing, which is
    the safe assumption for a household without a feed-in contract.
    """

    factor: float = 0.0
    adder_eur_per_kwh: float = 0.0
    fixed_eur_per_kwh: float | None = None

    def __post_init__(self) -> None:
        _check_finite("export formula", factor=self.factor,
                      adder_eur_per_kwh=self.adder_eur_per_kwh,
                      fixed_eur_per_kwh=self.fixed_eur_per_kwh)

    def apply(self, spot_eur_per_kwh: np.ndarray) -> np.ndarray:
        spot = np.asarray(spot_eur_per_kwh, dtype=float)
        if self.fixed_eur_per_kwh is not None:
            return np.full(spot.shape, float(self.fixed_eur_per_kwh))
        return spot * self.factor + self.adder_eur_per_kwh
