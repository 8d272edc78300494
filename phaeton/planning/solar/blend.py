"""A weather service's PV forecast, calibrated on this site's meter, in place of the learned
forecast where it has values. Pure: no I/O, no clock.

Calibration: over the last `CALIBRATION_DAYS`, the energy the PV meter measured in the slots
the service had forecast, divided by the energy it forecast for them (a shaded roof, panels
rated higher than they deliver, clipping inverters; the provider's own bias). It counts fully
once the service's slots compared hold `TRUSTED_KWH_PER_KWP` of forecast energy per kWp (a
good day's worth), in part before, and stays within `CALIBRATION_LIMITS`.

Nowcast: the last hour measured against the calibrated forecast for it moves the next hours
(the ratio fades over `forecast_pv.NOWCAST_TAU_H`), as in the learned model.

Every slot the service has no value for keeps the learned forecast.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from phaeton.planning.forecast_pv import NOWCAST_TAU_H, NOWCAST_WINDOW_S

CALIBRATION_DAYS = 14
CALIBRATION_LIMITS = (0.5, 1.5)
TRUSTED_KWH_PER_KWP = 4.0
NOWCAST_LIMITS = (0.3, 3.0)


@dataclass(frozen=True)
class PvBlend:
    """The blended forecast (kWh per plan slot) and how it was made."""

    kwh: np.ndarray
    weather_slots: int            # plan slots the service's forecast filled
    calibration: float            # measured / forecast energy applied to the service's values
    compared_kwh: float           # the service's forecast energy the calibration compared
    nowcast_ratio: float          # last hour measured / calibrated forecast (1: none)

    def as_dict(self) -> dict[str, float | int]:
        return {"weather_slots": self.weather_slots,
                "calibration": round(self.calibration, 3),
                "compared_kwh": round(self.compared_kwh, 2),
                "nowcast_ratio": round(self.nowcast_ratio, 3)}


def blend(learned_kwh, weather_kwh, *, starts_s, now_s: float, kwp: float,
          history_t_s=(), history_pv_kwh=(), weather_past_kwh=(),
          slot_s: int = 900) -> PvBlend:
    """`learned_kwh` and `weather_kwh` (NaN: no value) per plan slot at `starts_s`; the PV
    meter's energy per history slot (`history_t_s` starts, `history_pv_kwh`) and the service's
    forecast for the same slots (`weather_past_kwh`, NaN: none)."""
    learned = np.asarray(learned_kwh, dtype=float)
    weather = np.asarray(weather_kwh, dtype=float)
    t = np.asarray(history_t_s, dtype=float)
    measured = np.asarray(history_pv_kwh, dtype=float)
    past = np.asarray(weather_past_kwh, dtype=float)
    both = np.isfinite(measured) & np.isfinite(past) & (measured >= 0) \
        & (t >= now_s - CALIBRATION_DAYS * 86400) & (t + slot_s <= now_s)
    forecast_sum = float(past[both].sum())
    calibration = 1.0
    if forecast_sum > 0 and kwp > 0:
        ratio = float(np.clip(measured[both].sum() / forecast_sum, *CALIBRATION_LIMITS))
        trust = min(1.0, forecast_sum / (TRUSTED_KWH_PER_KWP * kwp))
        calibration = 1.0 + trust * (ratio - 1.0)
    nowcast = 1.0
    recent = both & (t >= now_s - NOWCAST_WINDOW_S)
    expected = calibration * float(past[recent].sum())
    if kwp > 0 and expected >= 0.05 * kwp * slot_s / 3600.0:
        nowcast = float(np.clip(measured[recent].sum() / expected, *NOWCAST_LIMITS))
    starts = np.asarray(starts_s, dtype=float)
    lead_h = np.clip((starts + slot_s / 2 - now_s) / 3600.0, 0.0, None)
    factor = calibration * (1.0 + (nowcast - 1.0) * np.exp(-lead_h / NOWCAST_TAU_H))
    known = np.isfinite(weather)
    return PvBlend(np.where(known, weather * factor, learned), int(known.sum()), calibration,
                   forecast_sum, nowcast)
