"""The clock velib measures ages on: anything with a `monotonic()` in seconds.

velib only ever asks how long ago a value arrived, so its clock is one method. A caller can
pass any object that has it (a simulator's accelerated clock, a test's fake clock); velib's
default is the machine's monotonic time.
"""
from __future__ import annotations

import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """What velib needs of a clock: seconds from an arbitrary origin, never going back."""

    def monotonic(self) -> float: ...


class MonotonicClock:
    """Real time: `time.monotonic()`."""

    def monotonic(self) -> float:
        return time.monotonic()


REAL_CLOCK: Clock = MonotonicClock()
