"""Time-of-use tariff: prices by local weekday and time-of-day windows (e.g. night rate).

Windows are matched in local time (`zoneinfo`), slots are emitted in UTC, so DST days simply
have 92 or 100 quarter-hours.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np

from phaeton.planning.tariffs.base import Tariff, check_prices
from phaeton.planning.tariffs.factory import TariffConfigError, TariffContext, construct
from phaeton.planning.tariffs.series import QUARTER_HOUR_S, PriceSeries, price_unit
from phaeton.planning.tariffs.static import DEFAULT_HORIZON_S

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _minute_of_day(text: str, name: str) -> int:
    try:
        hours, minutes = (int(part) for part in str(text).split(":"))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"time-of-use window {name} must be 'HH:MM', got {text!r}") from exc
    if not (0 <= hours <= 24 and 0 <= minutes < 60 and hours * 60 + minutes <= 1440):
        raise ValueError(f"time-of-use window {name} out of range: {text!r}")
    if minutes % 15:
        raise ValueError(f"time-of-use window {name} must be on a quarter hour, got {text!r}")
    return hours * 60 + minutes


@dataclass(frozen=True)
class TouWindow:
    """Prices for `days` (names 'mon'..'sun') from `start` to `end` local time ('HH:MM').

    An end at or before the start runs past midnight ("22:00"-"06:00"); "00:00"-"24:00"
    is the whole day. The day named is the day the window starts on. The export price is
    optional: None keeps the tariff's default export price.
    """

    days: tuple[str, ...]
    start: str
    end: str
    import_eur_per_kwh: float
    export_eur_per_kwh: float | None = None

    def __post_init__(self) -> None:
        days = tuple(str(day).lower()[:3] for day in self.days)
        unknown = [day for day in days if day not in DAY_NAMES]
        if unknown or not days:
            raise ValueError(f"time-of-use window days must be some of {DAY_NAMES}, "
                             f"got {list(self.days)!r}")
        object.__setattr__(self, "days", days)
        _minute_of_day(self.start, "start")
        _minute_of_day(self.end, "end")
        for name in ("import_eur_per_kwh", "export_eur_per_kwh"):
            value = getattr(self, name)
            if value is None and name == "export_eur_per_kwh":
                continue
            if not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise ValueError(f"time-of-use window {name} must be a number, got {value!r}")

    def covers(self, weekday: int, minute: int) -> bool:
        """True if local (weekday 0=Mon, minute of day) falls into this window."""
        start = _minute_of_day(self.start, "start")
        end = _minute_of_day(self.end, "end")
        if end > start:
            return DAY_NAMES[weekday] in self.days and start <= minute < end
        # overnight: the part after start today, or the part before end from yesterday
        return ((DAY_NAMES[weekday] in self.days and minute >= start)
                or (DAY_NAMES[(weekday - 1) % 7] in self.days and minute < end))


class TimeOfUseTariff(Tariff):
    """First matching window wins; outside all windows the default prices apply."""

    source = "time-of-use"

    def __init__(self, windows: list[TouWindow], tz: str, default_import_eur_per_kwh: float,
                 default_export_eur_per_kwh: float = 0.0, horizon_s: int = DEFAULT_HORIZON_S,
                 unit: str = price_unit()):
        try:
            self.zone = ZoneInfo(tz)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"unknown time zone {tz!r}") from exc
        self.windows = list(windows)
        self._priced: tuple[int, PriceSeries] | None = None   # (first slot, its series)
        for name, value in (("default_import_eur_per_kwh", default_import_eur_per_kwh),
                            ("default_export_eur_per_kwh", default_export_eur_per_kwh)):
            if not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise ValueError(f"time-of-use {name} must be a number, got {value!r}")
        self.default_import_eur_per_kwh = float(default_import_eur_per_kwh)
        self.default_export_eur_per_kwh = float(default_export_eur_per_kwh)
        check_prices("time-of-use tariff",
                     np.array([w.import_eur_per_kwh for w in self.windows]
                              + [w.export_eur_per_kwh for w in self.windows
                                 if w.export_eur_per_kwh is not None]
                              + [self.default_import_eur_per_kwh,
                                 self.default_export_eur_per_kwh]))
        if horizon_s < QUARTER_HOUR_S:
            raise ValueError(f"horizon_s must be at least {QUARTER_HOUR_S}, got {horizon_s}")
        self.horizon_s = int(horizon_s)
        self.unit = unit

    def price_at(self, t_s: float) -> tuple[float, float]:
        """(import, export) €/kWh at unix time `t_s`."""
        local = dt.datetime.fromtimestamp(t_s, self.zone)
        minute = local.hour * 60 + local.minute
        for window in self.windows:
            if window.covers(local.weekday(), minute):
                export = (self.default_export_eur_per_kwh if window.export_eur_per_kwh is None
                          else window.export_eur_per_kwh)
                return window.import_eur_per_kwh, export
        return self.default_import_eur_per_kwh, self.default_export_eur_per_kwh

    async def prices(self, now_s: float) -> PriceSeries:
        """The horizon's prices from the current quarter hour on; priced once per quarter
        hour (the planner asks every few seconds, and pricing a slot means a time-zone
        conversion and a walk over the windows)."""
        first = int(math.floor(now_s / QUARTER_HOUR_S) * QUARTER_HOUR_S)
        cached = self._priced
        if cached is not None and cached[0] == first:
            return cached[1]
        n = int(math.ceil(self.horizon_s / QUARTER_HOUR_S))
        starts = first + QUARTER_HOUR_S * np.arange(n, dtype=np.int64)
        pairs = [self.price_at(int(t)) for t in starts]
        series = PriceSeries(starts, np.full(n, QUARTER_HOUR_S), [p[0] for p in pairs],
                             [p[1] for p in pairs], self.source, now_s, unit=self.unit)
        self._priced = (first, series)
        return series

    async def refresh(self) -> None:
        """Nothing to fetch: the windows are configuration."""


def tariff_from_section(settings: dict, context: TariffContext) -> TimeOfUseTariff:
    """The builder `tariffs.registry` names: windows and defaults of
    `planner.tariff.time_of_use`, each window's error at its index."""
    where = context.where
    settings = dict(settings)
    windows = settings.pop("windows", [])
    if not isinstance(windows, list):
        raise TariffConfigError(f"{where}.windows: must be a list")
    built = []
    for i, window in enumerate(windows):
        if isinstance(window, dict) and isinstance(window.get("days"), list):
            window = {**window, "days": tuple(window["days"])}
        built.append(construct(TouWindow, window, f"{where}.windows[{i}]"))
    return construct(TimeOfUseTariff, settings, where, windows=built, unit=context.unit)
