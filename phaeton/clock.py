"""Clocks: real time for the service, scaled time for simulators and tests.

Everything that waits or measures time (setpoint refresh, validity windows, EV models,
control delays) takes a clock, so a simulated day can run in minutes. These clocks also fit
velib's one-method clock protocol (`velib.clock.Clock`: `monotonic()`), so the same clock is
handed to velib's monitor and settings client; velib itself does not know this module.
"""
from __future__ import annotations

import asyncio
import time


class Clock:
    """Real time. `monotonic()` for intervals, `time()` for wall-clock (unix seconds)."""

    speed = 1.0

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ScaledClock(Clock):
    """Time that runs `speed` times faster than real time, starting at `start` (unix s).

    Two parts sharing one ScaledClock agree on time, so a client and a simulator can both
    live in accelerated time.
    """

    def __init__(self, speed: float = 1.0, start: float | None = None):
        if not speed > 0:
            raise ValueError(f"clock speed must be > 0, got {speed!r}")
        self.speed = float(speed)
        self._real0 = time.monotonic()
        self._wall0 = time.time() if start is None else float(start)

    def monotonic(self) -> float:
        return (time.monotonic() - self._real0) * self.speed

    def time(self) -> float:
        return self._wall0 + self.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)


REAL_CLOCK = Clock()
