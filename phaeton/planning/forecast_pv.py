"""PV forecast: clear-sky production for the site and array, scaled by what history shows.

Pure numpy, no pvlib (not available on the GX). Public formulas used:
- solar position: NOAA's low-accuracy algorithm (fractional year, equation of time,
  declination, hour angle), good to a fraction of a degree;
- clear-sky irradiance: Meinel's direct-beam model DNI = E0·0.7^(AM^0.678) with Kasten-Young
  air mass, diffuse taken as a fixed share of the beam, GHI = DNI·cos(zenith) + DHI;
- plane of array: beam on the tilted plane + isotropic sky diffuse + ground reflection.
The forecast is the expected production, not a sunny day: the clear-sky energy times the
clear-sky index (measured / clear-sky energy) this array has shown at that local hour of the
day over recent weeks, recency-weighted so the season shows (`half_life_days`, 3 days: on a
measured year it keeps every month's day-ahead bias within ±10 %, docs/tariffs.md); hours of the
day with little daylight in the history take the index of all hours. The next hours are moved
towards the index measured in the last hour (it fades over `NOWCAST_TAU_H`). With less than
`min_days` of history the index is blended with `default_derate`.
"""
from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

import numpy as np

SOLAR_CONSTANT_W_M2 = 1361.0
DIFFUSE_SHARE_OF_BEAM = 0.1
STC_IRRADIANCE_W_M2 = 1000.0


def _day_of_year_and_hour(t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(t_s, dtype=float)
    seconds = np.floor(t).astype("datetime64[s]")
    year_start = seconds.astype("datetime64[Y]").astype("datetime64[s]")
    since_year_s = (seconds - year_start).astype(float) + (t - np.floor(t))
    doy = np.floor(since_year_s / 86400.0) + 1.0
    hour_utc = (since_year_s % 86400.0) / 3600.0
    return doy, hour_utc


def solar_position(t_s, latitude_deg: float, longitude_deg: float):
    """Sun (zenith°, azimuth° clockwise from north) at unix times `t_s` (array)."""
    doy, hour = _day_of_year_and_hour(t_s)
    gamma = 2 * np.pi / 365.0 * (doy - 1 + (hour - 12) / 24.0)
    eqtime_min = 229.18 * (0.000075 + 0.001868 * np.cos(gamma) - 0.032077 * np.sin(gamma)
                           - 0.014615 * np.cos(2 * gamma) - 0.040849 * np.sin(2 * gamma))
    decl = (0.006918 - 0.399912 * np.cos(gamma) + 0.070257 * np.sin(gamma)
            - 0.006758 * np.cos(2 * gamma) + 0.000907 * np.sin(2 * gamma)
            - 0.002697 * np.cos(3 * gamma) + 0.00148 * np.sin(3 * gamma))
    true_solar_min = hour * 60.0 + eqtime_min + 4.0 * longitude_deg
    hour_angle = np.radians(true_solar_min / 4.0 - 180.0)
    lat = math.radians(latitude_deg)
    cos_zenith = np.clip(math.sin(lat) * np.sin(decl)
                         + math.cos(lat) * np.cos(decl) * np.cos(hour_angle), -1.0, 1.0)
    zenith = np.degrees(np.arccos(cos_zenith))
    azimuth = np.degrees(np.arctan2(np.sin(hour_angle),
                                    np.cos(hour_angle) * math.sin(lat)
                                    - np.tan(decl) * math.cos(lat))) + 180.0
    return zenith, azimuth % 360.0


def clear_sky_irradiance(t_s, zenith_deg):
    """(GHI, DNI, DHI) W/m² under a clear sky; zero with the sun below the horizon."""
    doy, _ = _day_of_year_and_hour(t_s)
    zenith = np.asarray(zenith_deg, dtype=float)
    up = zenith < 90.0
    cos_z = np.cos(np.radians(np.where(up, zenith, 0.0)))
    air_mass = 1.0 / (cos_z + 0.50572 * (96.07995 - np.where(up, zenith, 0.0)) ** -1.6364)
    e0 = SOLAR_CONSTANT_W_M2 * (1 + 0.033 * np.cos(2 * np.pi * doy / 365.0))
    dni = np.where(up, e0 * 0.7 ** (air_mass ** 0.678), 0.0)
    dhi = DIFFUSE_SHARE_OF_BEAM * dni
    ghi = dni * cos_z + dhi
    return ghi, dni, dhi


def plane_of_array_w_m2(zenith_deg, sun_azimuth_deg, ghi, dni, dhi, tilt_deg: float,
                        array_azimuth_deg: float, albedo: float = 0.2):
    """Irradiance on the array plane (W/m²), isotropic sky."""
    zen = np.radians(zenith_deg)
    tilt = math.radians(tilt_deg)
    cos_aoi = (np.cos(zen) * math.cos(tilt) + np.sin(zen) * math.sin(tilt)
               * np.cos(np.radians(np.asarray(sun_azimuth_deg) - array_azimuth_deg)))
    beam = dni * np.clip(cos_aoi, 0.0, None)
    sky = dhi * (1 + math.cos(tilt)) / 2
    ground = ghi * albedo * (1 - math.cos(tilt)) / 2
    return beam + sky + ground


def _check(name: str, value: float, low: float, high: float) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and low <= value <= high):
        raise ValueError(f"PV {name} must be within {low}..{high}, got {value!r}")
    return float(value)


NOWCAST_TAU_H = 2.0      # the index just measured fades over this many hours of lead time
NOWCAST_WINDOW_S = 3600  # what "just measured" is


class PvForecaster:
    """Expected PV energy per slot for one array.

    azimuth_deg is the compass direction the panels face (180 = south, 90 = east);
    tilt_deg 0 = flat. `scale` is the clear-sky index over all hours (`default_derate` until
    `fit` learned it from history); `index_by_hour` the index per local hour of the day.
    """

    SUBSAMPLES = 3  # irradiance is averaged over 3 points per slot (sunrise/sunset slots)

    def __init__(self, latitude_deg: float, longitude_deg: float, tilt_deg: float,
                 azimuth_deg: float, kwp: float, tz: str, *, default_derate: float = 0.85,
                 albedo: float = 0.2, min_days: int = 3, lookback_days: int = 30,
                 scale_limits: tuple[float, float] = (0.0, 1.2), half_life_days: float = 3.0,
                 more_arrays: tuple[tuple[float, float, float], ...] = ()):
        self.latitude_deg = _check("latitude_deg", latitude_deg, -90, 90)
        self.longitude_deg = _check("longitude_deg", longitude_deg, -180, 180)
        self.tilt_deg = _check("tilt_deg", tilt_deg, 0, 90)
        self.azimuth_deg = _check("azimuth_deg", azimuth_deg, 0, 360)
        self.kwp = _check("kwp", kwp, 0, 10_000)
        # further arrays behind the same PV meter: (tilt, azimuth, kWp) each
        self.more_arrays = tuple((_check("tilt_deg", tilt, 0, 90),
                                  _check("azimuth_deg", azimuth, 0, 360),
                                  _check("kwp", array_kwp, 0, 10_000))
                                 for tilt, azimuth, array_kwp in more_arrays)
        self.total_kwp = self.kwp + sum(array[2] for array in self.more_arrays)
        self.default_derate = _check("default_derate", default_derate, 0.05, 1.5)
        self.albedo = _check("albedo", albedo, 0, 1)
        try:
            self.zone = ZoneInfo(tz)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"unknown time zone {tz!r}") from exc
        if min_days < 1 or lookback_days < min_days:
            raise ValueError(f"need 1 <= min_days <= lookback_days, got {min_days}, "
                             f"{lookback_days}")
        self.min_days = int(min_days)
        self.lookback_days = int(lookback_days)
        self.scale_limits = scale_limits
        self.half_life_days = _check("half_life_days", half_life_days, 0.5, 365)
        self.scale = self.default_derate
        self.index_by_hour = np.full(24, self.default_derate)
        self.days_learned = 0
        self.nowcast_ratio = 1.0        # index just measured / index expected then
        self.fitted_at_s: float | None = None

    def clear_sky_kwh(self, start_s: float, n_slots: int, slot_s: int = 900) -> np.ndarray:
        """Clear-sky energy per slot (kWh) with no losses (scale 1)."""
        starts = start_s + slot_s * np.arange(int(n_slots), dtype=float)
        return self._clear_sky_kwh_at(starts, slot_s)

    def _clear_sky_kwh_at(self, starts: np.ndarray, slot_s: int) -> np.ndarray:
        offsets = (np.arange(self.SUBSAMPLES) + 0.5) / self.SUBSAMPLES * slot_s
        t = (np.asarray(starts, dtype=float)[:, None] + offsets[None, :]).ravel()
        zenith, azimuth = solar_position(t, self.latitude_deg, self.longitude_deg)
        ghi, dni, dhi = clear_sky_irradiance(t, zenith)
        energy = np.zeros(np.asarray(starts).size)
        for tilt, array_azimuth, kwp in ((self.tilt_deg, self.azimuth_deg, self.kwp),
                                         *self.more_arrays):
            poa = plane_of_array_w_m2(zenith, azimuth, ghi, dni, dhi, tilt, array_azimuth,
                                      self.albedo)
            mean_poa = poa.reshape(-1, self.SUBSAMPLES).mean(axis=1)
            energy += kwp * mean_poa / STC_IRRADIANCE_W_M2 * slot_s / 3600.0
        return energy

    def forecast_kwh(self, start_s: float, n_slots: int, slot_s: int = 900) -> np.ndarray:
        """Expected energy per slot (kWh) on a grid starting at `start_s`."""
        starts = start_s + slot_s * np.arange(int(n_slots), dtype=float)
        clear = self._clear_sky_kwh_at(starts, slot_s)
        index = self.index_by_hour[_local_hour(starts + slot_s / 2, self.zone)]
        if self.fitted_at_s is not None and self.nowcast_ratio != 1.0:
            lead_h = np.clip((starts + slot_s / 2 - self.fitted_at_s) / 3600.0, 0.0, None)
            index = index * (1.0 + (self.nowcast_ratio - 1.0) * np.exp(-lead_h
                                                                        / NOWCAST_TAU_H))
        return clear * np.clip(index, 0.0, self.scale_limits[1])

    def fit(self, t_s, kwh, slot_s: int = 900, now_s: float | None = None) -> float:
        """Learn the clear-sky index from measured PV energy per slot (samples at slot starts
        `t_s`; `now_s`: the moment of the forecast, later samples are ignored and the last
        hour before it sets the nowcast). Returns the index over all hours (`scale`).

        Only days with most of their clear-sky energy measured count (`min_days` of them for
        full weight); a broken meter's absurd values are clipped to `scale_limits`.
        """
        t = np.asarray(t_s, dtype=float).reshape(-1)
        measured = np.asarray(kwh, dtype=float).reshape(-1)
        if t.size != measured.size:
            raise ValueError(f"PV history: {t.size} times but {measured.size} energies")
        ok = np.isfinite(t) & np.isfinite(measured) & (measured >= 0)
        reference = now_s if now_s is not None else (float(t[ok].max()) + slot_s
                                                     if ok.any() else 0.0)
        ok &= (t >= reference - self.lookback_days * 86400) & (t < reference)
        t, measured = t[ok], measured[ok]
        self.fitted_at_s = now_s
        self.nowcast_ratio = 1.0
        clear, usable_day = self._clear_and_usable(t, slot_s)
        days = int(np.unique(_local_day_number(t[usable_day], self.zone)).size) \
            if t.size else 0
        self.days_learned = days
        low, high = self.scale_limits
        if days == 0:
            self.scale = self.default_derate
            self.index_by_hour = np.full(24, self.default_derate)
            return self.scale
        daylight = usable_day & (clear > 0.02 * self.total_kwp * slot_s / 3600.0)
        weight = 0.5 ** ((reference - t) / 86400.0 / self.half_life_days)
        w_clear = weight * clear * daylight
        w_measured = weight * measured * daylight
        overall = float(np.clip(w_measured.sum() / w_clear.sum(), low, high))
        hours = _local_hour(t + slot_s / 2, self.zone)
        clear_by_hour = np.bincount(hours, weights=w_clear, minlength=24)
        measured_by_hour = np.bincount(hours, weights=w_measured, minlength=24)
        # an hour needs the clear-sky energy of about one full day's worth of that hour
        enough = clear_by_hour >= 0.25 * self.total_kwp * slot_s / 3600.0 * 4
        by_hour = np.where(enough, measured_by_hour / np.where(enough, clear_by_hour, 1.0),
                           overall)
        share = min(days, self.min_days) / self.min_days
        self.scale = share * overall + (1 - share) * self.default_derate
        self.index_by_hour = np.clip(share * by_hour + (1 - share) * self.default_derate,
                                     low, high)
        if now_s is not None:
            self.nowcast_ratio = self._nowcast(t, measured, clear, now_s, slot_s)
        return self.scale

    def _nowcast(self, t: np.ndarray, measured: np.ndarray, clear: np.ndarray, now_s: float,
                 slot_s: int) -> float:
        """The index measured over the last hour relative to the index expected for it."""
        recent = t >= now_s - NOWCAST_WINDOW_S
        clear_recent = clear[recent]
        if not recent.any() or clear_recent.sum() < 0.05 * self.total_kwp * slot_s / 3600.0:
            return 1.0
        expected = (clear_recent * self.index_by_hour[_local_hour(t[recent] + slot_s / 2,
                                                                  self.zone)]).sum()
        if expected <= 0:
            return 1.0
        return float(np.clip(measured[recent].sum() / expected, 0.0, 3.0))

    def _clear_and_usable(self, t: np.ndarray, slot_s: int) -> tuple[np.ndarray, np.ndarray]:
        """Clear-sky kWh at each sample, and whether its day has at least 80 % of its
        clear-sky energy measured (a usable day)."""
        clear = np.zeros(t.size)
        usable = np.zeros(t.size, dtype=bool)
        if not t.size:
            return clear, usable
        day = _local_day_number(t, self.zone)
        for number in np.unique(day):
            in_day = day == number
            day_start, clear_day = self._clear_sky_day(int(number), slot_s)
            at = np.clip(((t[in_day] - day_start) // slot_s).astype(np.int64), 0,
                         clear_day.size - 1)
            clear[in_day] = clear_day[at]
            full_day = clear_day.sum()
            usable[in_day] = full_day > 0 and clear_day[at].sum() >= 0.8 * full_day
        return clear, usable

    def _clear_sky_day(self, day_number: int, slot_s: int) -> tuple[float, np.ndarray]:
        """(local midnight, clear-sky kWh per slot of that local day): the same every time the
        forecaster is fitted again, so kept for the last `_DAY_CACHE_SIZE` days of this array."""
        key = (self.latitude_deg, self.longitude_deg, self.tilt_deg, self.azimuth_deg,
               self.kwp, self.more_arrays, self.albedo, slot_s, day_number)
        cached = _DAY_CACHE.get(key)
        if cached is None:
            start = _day_start_s(day_number, self.zone)
            end = _day_start_s(day_number + 1, self.zone)
            slots = int(round((end - start) / slot_s))
            cached = (start, self._clear_sky_kwh_at(start + slot_s * np.arange(slots), slot_s))
            _DAY_CACHE[key] = cached
            if len(_DAY_CACHE) > _DAY_CACHE_SIZE:
                _DAY_CACHE.pop(next(iter(_DAY_CACHE)))
        return cached


_DAY_CACHE: dict[tuple, tuple[float, np.ndarray]] = {}
_DAY_CACHE_SIZE = 120          # days: the fit's look-back (30) for a few arrays


def _local_hour(t: np.ndarray, zone: ZoneInfo) -> np.ndarray:
    """Local hour of the day (0..23) at each unix time."""
    offsets = utc_offsets_s(t, zone)
    return (np.floor((np.asarray(t, dtype=float) + offsets) / 3600.0) % 24).astype(np.int64)


def _local_day_number(t: np.ndarray, zone: ZoneInfo) -> np.ndarray:
    """Days since 1970-01-01 in local time, for each unix time."""
    offsets = utc_offsets_s(t, zone)
    return np.floor((t + offsets) / 86400.0).astype(np.int64)


def _day_start_s(day_number: int, zone: ZoneInfo) -> float:
    day = dt.date(1970, 1, 1) + dt.timedelta(days=day_number)
    return dt.datetime.combine(day, dt.time(0), zone).timestamp()


def utc_offsets_s(t_s, zone: ZoneInfo) -> np.ndarray:
    """UTC offset (s) of `zone` at each unix time; computed once per distinct hour."""
    t = np.asarray(t_s, dtype=float)
    hours = np.floor(t / 3600.0).astype(np.int64)
    unique, inverse = np.unique(hours, return_inverse=True)
    offsets = np.array([dt.datetime.fromtimestamp(int(h) * 3600, zone).utcoffset().total_seconds()
                        for h in unique])
    return offsets[inverse].reshape(t.shape) if unique.size else np.zeros(t.shape)
