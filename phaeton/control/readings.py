"""Readings the controller works from: what the GX system reports and what the charger measures.

Invalid or absent values are None everywhere (the D-Bus `ai []`). Inputs are normalised when a
reading is built: numbers become floats, NaN/inf and non-numbers become None, per-phase values
are always 3-tuples (L1, L2, L3). `sum_phases` treats None as absent and gives None only when
every phase is None.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from phaeton.chargers.base import ChargerMeasurement, VehicleState

PhaseW = tuple[float | None, float | None, float | None]
NO_PHASES: PhaseW = (None, None, None)

PLUGGED_STATES = frozenset({VehicleState.CONNECTED, VehicleState.CHARGING, VehicleState.CHARGED})


def clean_value(value: Any) -> float | None:
    """A reading as float, or None when it is absent, not a number, NaN or infinite."""
    if type(value) is float:                      # the common case, kept fast
        return value if value - value == 0.0 else None
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def clean_phases(values: Any, name: str) -> PhaseW:
    """Three per-phase values (L1, L2, L3); a shorter sequence is padded with None."""
    if values is None:
        return NO_PHASES
    if type(values) is tuple and len(values) == 3:
        return (clean_value(values[0]), clean_value(values[1]), clean_value(values[2]))
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"{name} must be a sequence of up to 3 per-phase values, got {values!r}")
    items = list(values)
    if len(items) > 3:
        raise ValueError(f"{name} has {len(items)} phases, at most 3 (L1..L3) allowed")
    items += [None] * (3 - len(items))
    return (clean_value(items[0]), clean_value(items[1]), clean_value(items[2]))


def sum_phases(values: Iterable[float | None]) -> float | None:
    """Sum of the valid phases; None when no phase is valid."""
    total = None
    for value in values:
        if value is not None:
            total = value if total is None else total + value
    return total


def add_phases(*tuples: PhaseW) -> PhaseW:
    """Per-phase sum of several per-phase tuples (None = absent, all None -> None)."""
    return tuple(sum_phases(t[i] for t in tuples) for i in range(3))  # type: ignore[return-value]


@dataclass(frozen=True)
class SiteReadings:
    """What `com.victronenergy.system` reports (signs as on the GX).

    grid_w: + import, - export. battery_power_w: + charging. consumption_w: the GX's AC loads
    (/Ac/Consumption/L{n}/Power). `age_s`: age of the oldest value the controller needs
    (None = unknown, treated as stale).
    """

    pv_on_grid_w: PhaseW = NO_PHASES
    pv_on_output_w: PhaseW = NO_PHASES
    pv_on_genset_w: PhaseW = NO_PHASES
    pv_dc_w: float | None = None
    grid_w: PhaseW = NO_PHASES
    consumption_w: PhaseW = NO_PHASES
    battery_soc_pct: float | None = None
    battery_power_w: float | None = None
    active_soc_limit_pct: float | None = None
    active_input_source: int | None = None
    age_s: float | None = 0.0

    def __post_init__(self) -> None:
        for name in ("pv_on_grid_w", "pv_on_output_w", "pv_on_genset_w", "grid_w", "consumption_w"):
            object.__setattr__(self, name, clean_phases(getattr(self, name), name))
        for name in ("pv_dc_w", "battery_soc_pct", "battery_power_w", "active_soc_limit_pct", "age_s"):
            object.__setattr__(self, name, clean_value(getattr(self, name)))
        source = clean_value(self.active_input_source)
        object.__setattr__(self, "active_input_source", None if source is None else int(source))

    def with_age(self, age_s: float | None) -> SiteReadings:
        """The same readings with another age (the values are clean already: a copy, not a
        rebuild; `dataclasses.replace` would clean every field again)."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        object.__setattr__(new, "age_s", clean_value(age_s))
        return new

    @property
    def pv_ac_w(self) -> PhaseW:
        """AC-coupled PV per phase (on grid + on output + on genset)."""
        return add_phases(self.pv_on_grid_w, self.pv_on_output_w, self.pv_on_genset_w)

    @property
    def grid_total_w(self) -> float | None:
        return sum_phases(self.grid_w)

    def is_stale(self, stale_after_s: float) -> bool:
        """Too old (or of unknown age) to control on."""
        return self.age_s is None or self.age_s > stale_after_s


@dataclass(frozen=True)
class EvReadings:
    """What the charger measures: vehicle state, power and current per phase, lifetime counter."""

    vehicle_state: VehicleState = VehicleState.NO_VEHICLE
    power_w: PhaseW = NO_PHASES
    total_power_w: float | None = None
    current_a: PhaseW = NO_PHASES
    voltage_v: PhaseW = NO_PHASES
    phases: int | None = None                 # phases in use (1 or 3)
    lifetime_energy_kwh: float | None = None
    error_reason: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.vehicle_state, VehicleState):
            raise ValueError(f"vehicle_state must be a VehicleState, got {self.vehicle_state!r}")
        for name in ("power_w", "current_a", "voltage_v"):
            object.__setattr__(self, name, clean_phases(getattr(self, name), name))
        for name in ("total_power_w", "lifetime_energy_kwh"):
            object.__setattr__(self, name, clean_value(getattr(self, name)))
        phases = clean_value(self.phases)
        object.__setattr__(self, "phases", int(phases) if phases in (1.0, 2.0, 3.0) else None)

    @classmethod
    def from_measurement(cls, measurement: ChargerMeasurement) -> EvReadings:
        return cls(vehicle_state=measurement.vehicle_state, power_w=measurement.power_w,
                   total_power_w=measurement.total_power_w, current_a=measurement.current_a,
                   voltage_v=measurement.voltage_v, phases=measurement.phases,
                   lifetime_energy_kwh=measurement.lifetime_energy_kwh,
                   error_reason=measurement.error_reason)

    @property
    def connected(self) -> bool:
        """A vehicle is plugged in (connected, charging or charged)."""
        return self.vehicle_state in PLUGGED_STATES

    def phase_power_w(self, nominal_voltage_v: float) -> tuple[float, float, float]:
        """Best estimate of the EV's power per phase, 0 where it draws nothing.

        Per-phase power where measured; else current x voltage (nominal when not measured); else
        the total spread evenly over the phases in use (L1 only for one phase).
        """
        result = [0.0, 0.0, 0.0]
        known = False
        for i in range(3):
            if self.power_w[i] is not None:
                result[i] = self.power_w[i]
                known = True
            elif self.current_a[i] is not None:
                voltage = self.voltage_v[i] if plausible_voltage(self.voltage_v[i]) else nominal_voltage_v
                result[i] = self.current_a[i] * voltage
                known = True
        if not known and self.total_power_w:
            phases = self.phases or 1
            share = self.total_power_w / (3 if phases >= 2 else 1)
            result = [share, share, share] if phases >= 2 else [share, 0.0, 0.0]
        return (max(0.0, result[0]), max(0.0, result[1]), max(0.0, result[2]))

    def total_w(self, nominal_voltage_v: float) -> float:
        """The EV's total power (measured total first, else the per-phase estimate), >= 0."""
        if self.total_power_w is not None:
            return max(0.0, self.total_power_w)
        return sum(self.phase_power_w(nominal_voltage_v))


def plausible_voltage(value: float | None) -> bool:
    """A measured phase voltage worth using (a missing/zero reading falls back to nominal)."""
    return value is not None and 100.0 <= value <= 300.0
