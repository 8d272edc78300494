"""Pure translation of OCPP 1.6 payloads into what the controller sees. No I/O.

- `parse_meter_values()`: a MeterValues `meterValue` list (snake_case keys as the `ocpp` package
  hands them over) into one `MeterSample` (the latest value of each measurand wins).
- `vehicle_state_for()`: connector status (+ error code, session energy) to a VehicleState.
- `allowed_rate_units()`: the ChargingScheduleAllowedChargingRateUnit value to "A"/"W".

Status mapping (documented in docs, tested):
    Available, Reserved                 -> NO_VEHICLE
    Preparing, SuspendedEVSE            -> CONNECTED
    SuspendedEV, Finishing              -> CHARGED when the car finished (`car_finished`: it
                                           stopped drawing by itself after taking energy in this
                                           session, see OcppCharger), else CONNECTED
    Charging                            -> CHARGING
    Faulted                             -> ERROR, reason = the error code (+ info)
    Unavailable                         -> ERROR, reason "unavailable"
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from .base import VehicleState

ENERGY_REGISTER = "Energy.Active.Import.Register"
POWER_IMPORT = "Power.Active.Import"
CURRENT_IMPORT = "Current.Import"
VOLTAGE = "Voltage"
SOC = "SoC"

_PHASE_INDEX = {"L1": 0, "L2": 1, "L3": 2, "L1-N": 0, "L2-N": 1, "L3-N": 2}
_ENERGY_TO_KWH = {"Wh": 0.001, "kWh": 1.0}
_POWER_TO_W = {"W": 1.0, "kW": 1000.0}


class MeterValueError(ValueError):
    """A sampled value that cannot be understood (clear text for the log)."""


@dataclass
class MeterSample:
    energy_register_kwh: float | None = None
    total_power_w: float | None = None
    power_w: list = field(default_factory=lambda: [None, None, None])
    current_a: list = field(default_factory=lambda: [None, None, None])
    voltage_v: list = field(default_factory=lambda: [None, None, None])
    soc_pct: float | None = None
    problems: list = field(default_factory=list)   # values skipped, with the reason


def _number(text) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise MeterValueError(f"value {text!r} is not a number") from None
    if not math.isfinite(value):
        raise MeterValueError(f"value {text!r} is not finite")
    return value


def _apply(sample: MeterSample, sampled: dict) -> None:
    if not isinstance(sampled, dict):
        raise MeterValueError(f"sampled value {sampled!r} is not an object")
    measurand = sampled.get("measurand") or ENERGY_REGISTER
    phase = sampled.get("phase")
    unit = sampled.get("unit")
    value = _number(sampled.get("value"))
    index = _PHASE_INDEX.get(phase) if phase else None
    if phase and index is None and measurand != VOLTAGE:
        raise MeterValueError(f"{measurand} with phase {phase!r} is not used")
    if measurand == ENERGY_REGISTER:
        if phase:
            return  # per-phase registers: the total (no phase) is what we keep
        factor = _ENERGY_TO_KWH.get(unit or "Wh")
        if factor is None:
            raise MeterValueError(f"energy unit {unit!r} is not Wh or kWh")
        sample.energy_register_kwh = value * factor
    elif measurand == POWER_IMPORT:
        factor = _POWER_TO_W.get(unit or "W")
        if factor is None:
            raise MeterValueError(f"power unit {unit!r} is not W or kW")
        if index is None:
            sample.total_power_w = value * factor
        else:
            sample.power_w[index] = value * factor
    elif measurand == CURRENT_IMPORT:
        if unit not in (None, "A"):
            raise MeterValueError(f"current unit {unit!r} is not A")
        # A current without phase is taken as L1 (single-phase stations report it that way).
        sample.current_a[0 if index is None else index] = value
    elif measurand == VOLTAGE:
        if unit not in (None, "V"):
            raise MeterValueError(f"voltage unit {unit!r} is not V")
        if index is None and phase:
            return  # line-to-line voltages (L1-L2, ...) are not shown
        sample.voltage_v[0 if index is None else index] = value
    elif measurand == SOC:
        if not 0.0 <= value <= 100.0:
            raise MeterValueError(f"SoC {value} is outside 0..100 %")
        sample.soc_pct = value
    # other measurands (Current.Offered, Temperature, ...) are not needed by the controller


def parse_meter_values(meter_value) -> MeterSample:
    """The latest reading of each measurand in a MeterValues `meter_value` list.

    Bad entries are skipped and listed in `problems`; a payload that is not a list gives an
    empty sample with one problem. When only per-phase powers arrive, the total is their sum.
    """
    sample = MeterSample()
    if not isinstance(meter_value, list):
        sample.problems.append(f"meterValue is not a list: {meter_value!r}")
        return sample
    for entry in meter_value:
        values = entry.get("sampled_value") if isinstance(entry, dict) else None
        if not isinstance(values, list):
            sample.problems.append(f"meterValue entry without sampledValue list: {entry!r}")
            continue
        for sampled in values:
            try:
                _apply(sample, sampled)
            except MeterValueError as exc:
                sample.problems.append(str(exc))
    if sample.total_power_w is None and any(p is not None for p in sample.power_w):
        sample.total_power_w = sum(p for p in sample.power_w if p is not None)
    return sample


def vehicle_state_for(status: str | None, error_code: str | None = None, info: str | None = None,
                      car_finished: bool = False) -> tuple[VehicleState, str | None]:
    """(vehicle state, error reason) for an OCPP connector status (table in the module doc)."""
    if status in ("Available", "Reserved"):
        return VehicleState.NO_VEHICLE, None
    if status in ("Preparing", "SuspendedEVSE"):
        return VehicleState.CONNECTED, None
    if status in ("SuspendedEV", "Finishing"):
        return (VehicleState.CHARGED if car_finished else VehicleState.CONNECTED), None
    if status == "Charging":
        return VehicleState.CHARGING, None
    if status == "Faulted":
        reason = error_code or "Faulted"
        if info:
            reason = f"{reason}: {info}"
        return VehicleState.ERROR, reason
    if status == "Unavailable":
        return VehicleState.ERROR, "unavailable"
    return VehicleState.ERROR, f"unknown connector status {status!r}"


def allowed_rate_units(value: str | None) -> tuple[str, ...]:
    """Units ("A", "W") named by ChargingScheduleAllowedChargingRateUnit ("Current,Power",
    also "A"/"W"); A first. Unknown or missing means ("A",), the OCPP default."""
    units = []
    for token in (value or "").replace(";", ",").split(","):
        token = token.strip().lower()
        if token in ("current", "a") and "A" not in units:
            units.append("A")
        elif token in ("power", "w") and "W" not in units:
            units.append("W")
    units.sort()  # "A" before "W"
    return tuple(units) or ("A",)
