"""When a source with no publication time fetches again: every `interval_s` after a success,
with exponential back-off after failures and a server's Retry-After honoured. Pure: no I/O.

Unlike day-ahead prices, carbon intensities and PV forecasts have no publication time: they are
revised every half hour to few hours (actual generation from ENTSO-E arrives about an hour
late), so a plain interval fits every such source.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class IntervalRefresh:
    """interval_s: wait after a good fetch; backoff_base_s / backoff_max_s: wait after the
    first failure, doubling with every further failure up to the maximum."""

    interval_s: float = 1800.0
    backoff_base_s: float = 60.0
    backoff_max_s: float = 3600.0

    def __post_init__(self) -> None:
        for name in ("interval_s", "backoff_base_s", "backoff_max_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a number > 0, got {value!r}")
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError(f"backoff_max_s ({self.backoff_max_s:g}) must be at least "
                             f"backoff_base_s ({self.backoff_base_s:g})")

    def backoff_s(self, failures: int) -> float:
        """Wait after `failures` consecutive failures (0: none)."""
        if failures <= 0:
            return 0.0
        return min(self.backoff_base_s * 2.0 ** min(failures - 1, 60), self.backoff_max_s)

    def next_fetch_s(self, now_s: float, *, last_attempt_s: float | None, failures: int,
                     retry_after_until_s: float | None = None) -> float:
        """Earliest unix time of the next fetch (<= now_s: due now)."""
        if last_attempt_s is None:
            due = float(now_s)
        elif failures:
            due = last_attempt_s + self.backoff_s(failures)
        else:
            due = last_attempt_s + self.interval_s
        if retry_after_until_s is not None:
            due = max(due, retry_after_until_s)
        return due
