"""Carbon budgets: how much of a monthly or yearly kg CO2 budget is used, where the period is
heading, and which threshold to announce, once per period.

Pure (no I/O, no clock): the caller hands in the emissions of the running month and year
(`PeriodUse`, from the carbon accounting, docs/carbon.md "Accounting") and the time; the
alert state (`AlertState`) goes in and out as a plain dict the caller keeps on disk.

- A budget belongs to a scope, the site (house + cars, `SITE`) or the cars alone (`CAR`), and
  a period, the local calendar month or year (`MONTH`, `YEAR`); `BudgetSettings` holds up to
  four, each None (no budget) or kg CO2-eq.
- Usage = used / budget in percent; its level is OK, WARNING (≥ `warning_pct`, default 80) or
  CRITICAL (≥ `critical_pct`, default 95).
- Forecast: **linear on the time elapsed** in the period (used × period length / elapsed, in
  seconds, not whole days), shown once `MIN_FORECAST_S` (one day) has passed; None before,
  when one day's emissions would be extrapolated over a month. A linear run rate knows nothing
  about seasons (a winter month heats more); it is a plain statement of "at this pace".
- Alerts: each threshold fires ONCE per period and budget (`AlertState.fire`): crossing 80 %
  gives one warning, crossing 95 % one critical; a period that jumps past both at once (a
  budget set late, a restart after a long gap) gives the critical only. A new month or year,
  or a changed budget figure, starts the count again.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, Mapping

SITE = "site"
CAR = "car"
SCOPES = (SITE, CAR)
MONTH = "month"
YEAR = "year"
PERIODS = (MONTH, YEAR)

OK = 0
WARNING = 1
CRITICAL = 2
LEVEL_TEXT = {OK: "ok", WARNING: "warning", CRITICAL: "critical"}

DEFAULT_WARNING_PCT = 80.0
DEFAULT_CRITICAL_PCT = 95.0
MIN_FORECAST_S = 86400.0      # no forecast before one day of the period has passed
STATE_VERSION = 1


@dataclass(frozen=True)
class BudgetSettings:
    """The configured budgets (kg CO2-eq, None: none) and the thresholds (percent)."""

    site_month_kg: float | None = None
    site_year_kg: float | None = None
    car_month_kg: float | None = None
    car_year_kg: float | None = None
    warning_pct: float = DEFAULT_WARNING_PCT
    critical_pct: float = DEFAULT_CRITICAL_PCT

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> BudgetSettings:
        """From the config's `carbon.budget` section (defaults filled or not)."""
        section = section or {}

        def kg(scope: str, period: str) -> float | None:
            value = (section.get(scope) or {}).get(f"{period}_kg")
            return float(value) if value is not None and value > 0 else None

        return cls(kg(SITE, MONTH), kg(SITE, YEAR), kg(CAR, MONTH), kg(CAR, YEAR),
                   float(section.get("warning_pct", DEFAULT_WARNING_PCT)),
                   float(section.get("critical_pct", DEFAULT_CRITICAL_PCT)))

    def budget_kg(self, scope: str, period: str) -> float | None:
        return getattr(self, f"{scope}_{period}_kg")

    @property
    def any(self) -> bool:
        return any(self.budget_kg(s, p) is not None for s in SCOPES for p in PERIODS)


@dataclass(frozen=True)
class PeriodUse:
    """The emissions of one local period so far (kg CO2-eq), by who caused them."""

    key: str                   # "2026-01" (month) or "2026" (year)
    house_kg: float = 0.0
    car_kg: float = 0.0

    def used_kg(self, scope: str) -> float:
        return self.car_kg if scope == CAR else self.house_kg + self.car_kg


@dataclass(frozen=True)
class BudgetStatus:
    """One configured budget now."""

    scope: str
    period: str
    key: str                   # which month or year
    budget_kg: float
    used_kg: float
    usage_pct: float
    forecast_kg: float | None  # linear on the elapsed time; None in the first day
    forecast_pct: float | None
    level: int

    @property
    def name(self) -> str:
        return f"{self.scope}/{self.period}"


@dataclass(frozen=True)
class BudgetAlert:
    """A threshold crossed for the first time in its period."""

    status: BudgetStatus
    level: int                 # WARNING or CRITICAL

    def message(self) -> str:
        s = self.status
        what = "site (house + cars)" if s.scope == SITE else "cars"
        forecast = (f"; at this pace {s.forecast_kg:.1f} kg by the end of the {s.period}"
                    if s.forecast_kg is not None else "")
        return (f"carbon budget {LEVEL_TEXT[self.level]}: the {what} emitted {s.used_kg:.1f} kg "
                f"CO2 in {s.key}, {s.usage_pct:.0f} % of the {s.period}ly budget of "
                f"{s.budget_kg:g} kg{forecast}")


def level_of(usage_pct: float, warning_pct: float, critical_pct: float) -> int:
    if usage_pct >= critical_pct:
        return CRITICAL
    if usage_pct >= warning_pct:
        return WARNING
    return OK


def period_key(t_s: float, period: str, tz: tzinfo) -> str:
    return datetime.fromtimestamp(t_s, tz).strftime("%Y-%m" if period == MONTH else "%Y")


def period_bounds(t_s: float, period: str, tz: tzinfo) -> tuple[float, float]:
    """Start and end (unix s) of the local month or year holding `t_s`."""
    local = datetime.fromtimestamp(t_s, tz)
    if period == MONTH:
        start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (start.replace(year=start.year + 1, month=1) if start.month == 12
               else start.replace(month=start.month + 1))
    else:
        start = local.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
        end = start.replace(year=start.year + 1)
    return start.timestamp(), end.timestamp()


def forecast_kg(used_kg: float, now_s: float, start_s: float, end_s: float) -> float | None:
    """Linear on the elapsed time: where the period ends at this pace (None in its first
    MIN_FORECAST_S)."""
    elapsed = now_s - start_s
    if elapsed < MIN_FORECAST_S or end_s <= start_s:
        return None
    return used_kg * (end_s - start_s) / elapsed


def evaluate(settings: BudgetSettings, uses: Mapping[str, PeriodUse], now_s: float,
             tz: tzinfo) -> list[BudgetStatus]:
    """Every configured budget at `now_s`; `uses` maps MONTH and YEAR to that period's
    emissions (a missing one, or one of another month or year, counts as nothing yet)."""
    out = []
    for scope in SCOPES:
        for period in PERIODS:
            budget = settings.budget_kg(scope, period)
            if budget is None:
                continue
            key = period_key(now_s, period, tz)
            use = uses.get(period)
            used = use.used_kg(scope) if use is not None and use.key == key else 0.0
            start, end = period_bounds(now_s, period, tz)
            forecast = forecast_kg(used, now_s, start, end)
            pct = 100.0 * used / budget
            out.append(BudgetStatus(scope, period, key, budget, used, pct, forecast,
                                    None if forecast is None else 100.0 * forecast / budget,
                                    level_of(pct, settings.warning_pct, settings.critical_pct)))
    return out


def worst_level(statuses: list[BudgetStatus]) -> int | None:
    """The highest level of all budgets (None: no budget configured)."""
    return max((s.level for s in statuses), default=None)


class AlertState:
    """Which level has been announced for which budget and period: {"site/month": {"key":
    "2026-01", "budget_kg": 300.0, "fired": 1}, ...}. `to_dict()`/`from_dict()` for the file."""

    def __init__(self, fired: Mapping[str, Mapping[str, Any]] | None = None):
        self.fired: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (fired or {}).items()}

    def fire(self, statuses: list[BudgetStatus]) -> list[BudgetAlert]:
        """The alerts due now (at most one per budget: its highest new level); the state
        remembers them."""
        alerts = []
        for status in statuses:
            entry = self.fired.get(status.name)
            if entry is None or entry.get("key") != status.key \
                    or entry.get("budget_kg") != status.budget_kg:
                entry = {"key": status.key, "budget_kg": status.budget_kg, "fired": OK}
                self.fired[status.name] = entry
            if status.level > int(entry.get("fired", OK)):
                entry["fired"] = status.level
                alerts.append(BudgetAlert(status, status.level))
        return alerts

    def fired_level(self, name: str, key: str) -> int:
        entry = self.fired.get(name)
        return int(entry.get("fired", OK)) if entry and entry.get("key") == key else OK

    def to_dict(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "fired": self.fired}

    @classmethod
    def from_dict(cls, data: Any) -> AlertState:
        """From the file's content; anything unusable gives an empty state."""
        if not isinstance(data, Mapping) or data.get("version") != STATE_VERSION:
            return cls()
        fired = data.get("fired")
        if not isinstance(fired, Mapping):
            return cls()
        good = {}
        for name, entry in fired.items():
            if isinstance(entry, Mapping) and isinstance(entry.get("key"), str) \
                    and isinstance(entry.get("fired"), int) \
                    and isinstance(entry.get("budget_kg"), (int, float)):
                good[str(name)] = entry
        return cls(good)
