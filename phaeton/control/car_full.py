"""Is the car full? Pure: from what is offered and what the car draws over time.

An AC wallbox cannot read the car's battery. What it sees is the car refusing current: phaeton
offers at least the minimum charging current, the charger applies it, and the car stays in
IEC 61851 state B (connected, not charging) or draws next to nothing. After `after_s` of that
the car is taken as full (or at its own charge limit or timer): Victron's /Status 3 "Charged",
and the owner sees it instead of an offer the car ignores. A charger that says so itself (OCPP
SuspendedEV/Finishing after energy went in: `VehicleState.CHARGED`) is believed at once.

It is only an explanation: the offer stays (a car may start again, e.g. to precondition or
to balance its cells), and any current the car takes ends it at once.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from phaeton.chargers.base import VehicleState
from phaeton.control.readings import PLUGGED_STATES, EvReadings

TAKING_A = 1.0
"""Per phase: a car drawing less takes no charge (standby draw, meter noise)."""
FULL_AFTER_S = 120.0
"""A car that refuses an offer this long is full: long enough for a car that wakes up slowly
(some take 30-60 s to start after a pause), short enough to say so while the owner looks."""


@dataclass
class CarFullDetector:
    after_s: float = FULL_AFTER_S
    _refusing_since_s: float | None = field(default=None, repr=False)

    def step(self, now_s: float, ev: EvReadings, offered_a: float, min_current_a: float) -> bool:
        """True while the car is taken as full. `offered_a`: the current the charger is told
        this step (per phase)."""
        if ev.vehicle_state is VehicleState.CHARGED:
            self._refusing_since_s = None
            return True
        if ev.vehicle_state not in PLUGGED_STATES or offered_a < min_current_a:
            self._refusing_since_s = None     # nothing offered: not a refusal
            return False
        if self._taking(ev):
            self._refusing_since_s = None
            return False
        if self._refusing_since_s is None or now_s < self._refusing_since_s:
            self._refusing_since_s = now_s
        return now_s - self._refusing_since_s >= self.after_s

    @staticmethod
    def _taking(ev: EvReadings) -> bool:
        currents = [abs(a) for a in ev.current_a if a is not None]
        if currents:
            return max(currents) >= TAKING_A
        if ev.total_power_w is not None:
            return ev.total_power_w >= TAKING_A * 230.0
        return ev.vehicle_state is VehicleState.CHARGING   # no meter: the charger's word
