"""When to fetch prices again: pure decision logic, no I/O.

Day-ahead prices for tomorrow are published around midday (ENTSO-E/EPEX ~12:45 CET, Tibber
~13:00). Before that we only need today; after it we want tomorrow too and poll until it
appears. Failures back off exponentially, and a server's Retry-After is honoured.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class RefreshPolicy:
    """Settings for `next_refresh_s`.

    publish_time: local time ("HH:MM" in `publish_tz`) after which tomorrow's prices are due.
    poll_s: interval while tomorrow's prices are due but not there yet.
    backoff_base_s / backoff_max_s: wait after the 1st failure, doubling up to the maximum.
    """

    publish_time: str = "13:00"
    publish_tz: str = "Europe/Berlin"
    poll_s: float = 900.0
    backoff_base_s: float = 60.0
    backoff_max_s: float = 3600.0

    def __post_init__(self) -> None:
        _parse_hhmm(self.publish_time, "publish_time")
        try:
            ZoneInfo(self.publish_tz)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"unknown time zone publish_tz={self.publish_tz!r}") from exc
        if not (self.poll_s > 0 and self.backoff_base_s > 0
                and self.backoff_max_s >= self.backoff_base_s):
            raise ValueError("need poll_s > 0 and 0 < backoff_base_s <= backoff_max_s, got "
                             f"{self.poll_s}, {self.backoff_base_s}, {self.backoff_max_s}")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.publish_tz)


def _parse_hhmm(text: str, name: str) -> dt.time:
    try:
        hours, minutes = (int(part) for part in str(text).split(":"))
        return dt.time(hours, minutes)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name} must be 'HH:MM', got {text!r}") from exc


def local_day_bounds_s(t_s: float, zone: ZoneInfo, days_ahead: int = 0) -> tuple[int, int]:
    """UTC start and end (unix s) of the local calendar day holding `t_s`, shifted by days.

    DST days come out 23 or 25 hours long.
    """
    day = dt.datetime.fromtimestamp(t_s, zone).date() + dt.timedelta(days=days_ahead)
    start = dt.datetime.combine(day, dt.time(0), zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), zone)
    return int(start.timestamp()), int(end.timestamp())


def publish_moment_s(t_s: float, policy: RefreshPolicy, days_ahead: int = 0) -> int:
    """Unix time of the publication on the local day holding `t_s` (+ days_ahead)."""
    zone = policy.zone
    day = dt.datetime.fromtimestamp(t_s, zone).date() + dt.timedelta(days=days_ahead)
    return int(dt.datetime.combine(day, _parse_hhmm(policy.publish_time, "publish_time"),
                                   zone).timestamp())


def wanted_until_s(now_s: float, policy: RefreshPolicy) -> int:
    """End of the prices we should have: today, or tomorrow once it is published."""
    days = 1 if now_s >= publish_moment_s(now_s, policy) else 0
    return local_day_bounds_s(now_s, policy.zone, days)[1]


def backoff_s(failures: int, policy: RefreshPolicy) -> float:
    """Wait after `failures` consecutive failures (0 → no wait)."""
    if failures <= 0:
        return 0.0
    return min(policy.backoff_base_s * 2.0 ** min(failures - 1, 60), policy.backoff_max_s)


def next_refresh_s(now_s: float, covered_until_s: float, policy: RefreshPolicy, *,
                   last_attempt_s: float | None, failures: int,
                   retry_after_until_s: float | None = None) -> float:
    """Earliest unix time at which the next fetch should happen (may be <= now: due now).

    covered_until_s: how far the prices we hold reach without a gap from now.
    last_attempt_s: when we last tried (None: never); failures: consecutive failed tries.
    """
    if covered_until_s >= wanted_until_s(now_s, policy):
        due = float(publish_moment_s(now_s, policy))
        if due <= now_s:
            due = float(publish_moment_s(now_s, policy, days_ahead=1))
    elif last_attempt_s is None:
        due = float(now_s)
    elif failures:
        due = last_attempt_s + backoff_s(failures, policy)
    else:
        due = last_attempt_s + policy.poll_s
    if retry_after_until_s is not None:
        due = max(due, retry_after_until_s)
    return due
