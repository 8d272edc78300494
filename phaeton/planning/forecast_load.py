"""House-load forecast from phaeton's own history: a 15-minute profile per day type.

For each local quarter-hour of the day (96 slots; DST days simply have fewer or more of
them) and each day type (weekday, weekend) the forecast is a recency-weighted mean of the
history, shrunk towards a prior. The prior is the other day type's profile when that one has
history, else a standard household shape scaled to the history's level, or to the configured
annual consumption when there is no history at all.

On top of the profile, the recent level: the last day's consumption over what the profile
expected for it moves the forecast (fading over `LEVEL_TAU_H` of lead time), and the last
hour's over the next hours (fading over `NOWCAST_TAU_H`), so a house that is busier or emptier
than usual today is forecast as it is now.
"""
from __future__ import annotations

import math
from zoneinfo import ZoneInfo

import numpy as np

from phaeton.planning.forecast_pv import utc_offsets_s

SLOT_S = 900
SLOTS_PER_DAY = 96
LEVEL_TAU_H = 24.0
NOWCAST_TAU_H = 1.0
RATIO_LIMITS = (0.3, 3.0)
WEEKDAY, WEEKEND = 0, 1

# Relative hourly consumption of a typical household (own estimate in the spirit of
# standard load profiles: low at night, morning and strong evening peaks; later, flatter
# mornings and a midday bump at weekends). Normalised to one day's energy below.
_WEEKDAY_HOURLY = np.array([0.55, 0.45, 0.40, 0.38, 0.38, 0.45, 0.70, 0.95, 0.90, 0.85, 0.85,
                            0.90, 1.00, 0.95, 0.85, 0.80, 0.85, 1.00, 1.25, 1.40, 1.35, 1.20,
                            0.95, 0.75])
_WEEKEND_HOURLY = np.array([0.60, 0.50, 0.42, 0.40, 0.38, 0.40, 0.48, 0.65, 0.90, 1.05, 1.10,
                            1.20, 1.30, 1.15, 1.00, 0.90, 0.92, 1.05, 1.25, 1.35, 1.30, 1.15,
                            0.95, 0.75])


def standard_profile_kwh(annual_kwh: float) -> np.ndarray:
    """[day type, slot] kWh per quarter-hour of a typical household using `annual_kwh`."""
    shapes = np.stack([np.repeat(_WEEKDAY_HOURLY, 4), np.repeat(_WEEKEND_HOURLY, 4)])
    shapes = shapes / shapes.sum(axis=1, keepdims=True)
    return shapes * (annual_kwh / 365.0)


def local_slot_and_day_type(t_s, zone: ZoneInfo) -> tuple[np.ndarray, np.ndarray]:
    """Local quarter-hour of the day (0..95) and day type (0 weekday, 1 weekend)."""
    t = np.asarray(t_s, dtype=float)
    local = t + utc_offsets_s(t, zone)
    days = np.floor(local / 86400.0).astype(np.int64)
    slot = np.floor((local - days * 86400.0) / SLOT_S).astype(np.int64)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    return np.clip(slot, 0, SLOTS_PER_DAY - 1), (weekday >= 5).astype(np.int64)


class LoadForecaster:
    """Forecast of house consumption per slot (kWh), learned with `fit`.

    half_life_days: a sample this old counts half as much as one from today.
    lookback_days: older samples are ignored.
    prior_days: how many days' worth of weight the prior has in each slot; with a few
    weeks of history it hardly matters, with none it is the whole answer.
    """

    def __init__(self, tz: str, *, annual_kwh: float = 3500.0, half_life_days: float = 14.0,
                 lookback_days: int = 56, prior_days: float = 0.5):
        try:
            self.zone = ZoneInfo(tz)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"unknown time zone {tz!r}") from exc
        for name, value in (("annual_kwh", annual_kwh), ("half_life_days", half_life_days),
                            ("lookback_days", lookback_days), ("prior_days", prior_days)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"load forecast {name} must be > 0, got {value!r}")
        self.annual_kwh = float(annual_kwh)
        self.half_life_days = float(half_life_days)
        self.lookback_days = float(lookback_days)
        self.prior_days = float(prior_days)
        self.profile_kwh = standard_profile_kwh(self.annual_kwh)
        """[day type, slot] expected kWh per quarter-hour; the standard shape until fitted."""
        self.history_days = 0.0
        """How many days of samples the last fit used (samples / 96)."""
        self.level = 1.0            # the last day's consumption / the profile's for it
        self.nowcast = 1.0          # the same for the last hour
        self.fitted_at_s: float | None = None

    def fit(self, t_s, kwh, now_s: float) -> "LoadForecaster":
        """Learn the profile from samples (slot start unix s, kWh in that quarter-hour).

        Non-finite or negative samples and samples outside the look-back window are skipped.
        """
        t = np.asarray(t_s, dtype=float).reshape(-1)
        energy = np.asarray(kwh, dtype=float).reshape(-1)
        if t.size != energy.size:
            raise ValueError(f"load history: {t.size} times but {energy.size} energies")
        age_days = (now_s - t) / 86400.0
        ok = (np.isfinite(t) & np.isfinite(energy) & (energy >= 0)
              & (age_days >= 0) & (age_days <= self.lookback_days))
        t, energy, age_days = t[ok], energy[ok], age_days[ok]
        self.history_days = t.size / SLOTS_PER_DAY
        standard = standard_profile_kwh(self.annual_kwh)
        if not t.size:
            self.profile_kwh = standard
            return self
        slot, day_type = local_slot_and_day_type(t, self.zone)
        weight = 0.5 ** (age_days / self.half_life_days)
        weight_sum = np.zeros((2, SLOTS_PER_DAY))
        energy_sum = np.zeros((2, SLOTS_PER_DAY))
        np.add.at(weight_sum, (day_type, slot), weight)
        np.add.at(energy_sum, (day_type, slot), weight * energy)
        # the standard shape, at the level the history shows once there is a day of it
        if self.history_days >= 1.0:
            level = energy.sum() / standard[day_type, slot].sum()
            standard = standard * float(np.clip(level, 0.1, 10.0))
        prior_weight = self.prior_days
        first = (energy_sum + prior_weight * standard) / (weight_sum + prior_weight)
        profile = first.copy()
        for kind in (WEEKDAY, WEEKEND):
            other = 1 - kind
            # a day type with less than a day of history leans on the other one, if it has
            if weight_sum[kind].mean() < 1.0 <= weight_sum[other].mean():
                profile[kind] = ((energy_sum[kind] + prior_weight * first[other])
                                 / (weight_sum[kind] + prior_weight))
        self.profile_kwh = profile
        self.fitted_at_s = float(now_s)
        self.level = self._ratio(t, energy, now_s, 86400.0)
        self.nowcast = self._ratio(t, energy, now_s, 3600.0)
        return self

    def _ratio(self, t: np.ndarray, energy: np.ndarray, now_s: float, window_s: float) -> float:
        """Measured over profile-expected energy in the last `window_s` (1.0 with too little
        of it measured)."""
        recent = t >= now_s - window_s
        if recent.sum() < 0.75 * window_s / SLOT_S:
            return 1.0
        slot, day_type = local_slot_and_day_type(t[recent], self.zone)
        expected = float(self.profile_kwh[day_type, slot].sum())
        if expected <= 0:
            return 1.0
        return float(np.clip(energy[recent].sum() / expected, *RATIO_LIMITS))

    def forecast_kwh(self, start_s: float, n_slots: int, slot_s: int = SLOT_S) -> np.ndarray:
        """Expected consumption per slot (kWh) on a grid of `slot_s` (a multiple of 900 s)."""
        if slot_s <= 0 or slot_s % SLOT_S:
            raise ValueError(f"slot_s must be a positive multiple of {SLOT_S}, got {slot_s}")
        per_slot = slot_s // SLOT_S
        starts = start_s + SLOT_S * np.arange(int(n_slots) * per_slot, dtype=float)
        slot, day_type = local_slot_and_day_type(starts, self.zone)
        quarter = self.profile_kwh[day_type, slot]
        if self.fitted_at_s is not None:
            lead_h = np.clip((starts - self.fitted_at_s) / 3600.0, 0.0, None)
            level = 1.0 + (self.level - 1.0) * np.exp(-lead_h / LEVEL_TAU_H)
            now = (self.nowcast - self.level) * np.exp(-lead_h / NOWCAST_TAU_H)
            quarter = quarter * np.clip(level + now, *RATIO_LIMITS)
        return quarter.reshape(int(n_slots), per_slot).sum(axis=1)
