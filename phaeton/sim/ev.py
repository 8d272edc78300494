"""A simulated electric vehicle, shared by the Alfen and OCPP simulators.

Pure model, no I/O: the simulator that owns it calls `step()` with the time elapsed and what the
charger offers; the EV answers with what it draws. Battery capacity, SoC, on-board charger limit
and phases, a taper near full, plug-in/plug-out.
"""
from __future__ import annotations

from dataclasses import dataclass

NOMINAL_VOLTAGE_V = 230.0
MIN_CURRENT_A = 6.0  # IEC 61851: a car does not charge below 6 A


@dataclass
class SimulatedEV:
    capacity_kwh: float = 60.0
    soc_pct: float = 40.0
    target_soc_pct: float = 100.0      # the car's own charge limit
    onboard_max_current_a: float = 16.0
    onboard_phases: int = 3            # 1 for a single-phase on-board charger
    taper_start_pct: float = 80.0      # above this the car draws less and less
    plugged_in: bool = False
    wants_charge: bool = True          # False: the car refuses current (e.g. its own timer)

    def plug_in(self) -> None:
        self.plugged_in = True

    def plug_out(self) -> None:
        self.plugged_in = False

    @property
    def full(self) -> bool:
        return self.soc_pct >= self.target_soc_pct - 1e-9

    def max_draw_a(self) -> float:
        """What the car would draw per phase if offered everything."""
        if not self.plugged_in or not self.wants_charge or self.full:
            return 0.0
        limit = self.onboard_max_current_a
        if self.soc_pct > self.taper_start_pct:
            # Linear taper from the full limit at taper_start to 6 A (then stop) at target.
            span = max(1e-6, self.target_soc_pct - self.taper_start_pct)
            fraction = max(0.0, (self.target_soc_pct - self.soc_pct) / span)
            limit = MIN_CURRENT_A + (limit - MIN_CURRENT_A) * fraction
        return limit

    def draw(self, offered_current_a: float, offered_phases: int) -> tuple[float, int]:
        """(current per phase in A, phases used) the car draws for this offer, without stepping."""
        if offered_current_a < MIN_CURRENT_A:
            return 0.0, 0
        current = min(offered_current_a, self.max_draw_a())
        if current < MIN_CURRENT_A:
            return 0.0, 0
        return current, max(1, min(offered_phases, self.onboard_phases))

    def step(self, dt_s: float, offered_current_a: float, offered_phases: int,
             voltage_v: float = NOMINAL_VOLTAGE_V) -> tuple[float, int]:
        """Advance `dt_s` seconds drawing what is offered; returns (A per phase, phases used)."""
        current, phases = self.draw(offered_current_a, offered_phases)
        if current > 0 and dt_s > 0:
            energy_kwh = current * phases * voltage_v * dt_s / 3600.0 / 1000.0
            self.soc_pct = min(self.target_soc_pct,
                               self.soc_pct + 100.0 * energy_kwh / self.capacity_kwh)
        return current, phases

    def mode3_state(self, pwm_offered: bool, drawing: bool) -> str:
        """IEC 61851 state as a charger sees this car: A, B1/B2, C1/C2."""
        if not self.plugged_in:
            return "A"
        if drawing:
            return "C2"
        if not self.wants_charge or self.full:
            return "B2" if pwm_offered else "B1"
        return "C1" if not pwm_offered else "B2"
