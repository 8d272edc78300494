"""The planner's inputs that are plain values: the user's knobs, the installation's facts and
the car's state now (no numpy: the service builds these before the planner itself is loaded).

`PlannerKnobs` are the settings a user may change at run time (the GX settings under
`/Settings/Phaeton/Planner/`, see `phaeton.venus.planner_settings`); `PlannerKnobs.from_config`
gives their defaults from config.yaml. Fixed facts of the installation (battery size, fuse, car
capacity) come from `SiteFacts.from_config`. `phaeton.planning.problem_builder` turns them, with
prices and forecasts, into the optimizer's problem.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from phaeton.planning.objectives import OBJECTIVES

SLOT_S = 900
MIN_HORIZON_H = 24
MAX_HORIZON_H = 48

STRATEGY_OFF = 0
STRATEGY_SELF_CONSUMPTION = 1
STRATEGY_OPTIMISE = 2
STRATEGY_NAMES = {STRATEGY_OFF: "off", STRATEGY_SELF_CONSUMPTION: "self_consumption",
                  STRATEGY_OPTIMISE: "optimise"}
STRATEGY_BY_NAME = {name: number for number, name in STRATEGY_NAMES.items()}


class PlannerInputError(ValueError):
    """An input the planner cannot use; the message names it."""


@dataclass(frozen=True)
class PlannerKnobs:
    """What the user steers at run time. SoC values in percent, departure in minutes after
    local midnight, `ev_target_kwh` 0 = use `ev_target_soc_pct` instead."""

    strategy: int = STRATEGY_OPTIMISE
    minimum_soc_pct: float = 10.0
    reserve_soc_pct: float = 0.0
    allow_grid_charging: bool = True
    allow_export: bool = True
    degradation_eur_per_kwh: float = 0.02
    ev_departure_min: int = 7 * 60
    ev_target_soc_pct: float = 80.0
    ev_target_kwh: float = 0.0
    objective: int = 0                  # index into OBJECTIVES
    carbon_price_per_tonne: float = 0.0

    @classmethod
    def from_config(cls, planner: Mapping[str, Any]) -> PlannerKnobs:
        """The defaults from the config's `planner:` section (already validated)."""
        battery, grid, ev = planner["battery"], planner["grid"], planner["ev"]
        hours, minutes = (int(part) for part in str(ev["departure_time"]).split(":"))
        return cls(strategy=STRATEGY_BY_NAME[planner["strategy"]],
                   minimum_soc_pct=float(battery["min_soc_pct"]),
                   reserve_soc_pct=float(battery["reserve_soc_pct"]),
                   allow_grid_charging=bool(battery["allow_grid_charging"]),
                   allow_export=bool(grid["allow_export"]),
                   degradation_eur_per_kwh=float(battery["degradation_eur_per_kwh"]),
                   ev_departure_min=hours * 60 + minutes,
                   ev_target_soc_pct=float(ev["target_soc_pct"]),
                   ev_target_kwh=float(ev["target_kwh"] or 0.0),
                   objective=OBJECTIVES.index(planner.get("objective", "cost")),
                   carbon_price_per_tonne=float(planner.get("carbon_price_per_tonne", 0.0)))

    @property
    def objective_name(self) -> str:
        return OBJECTIVES[self.objective] if 0 <= self.objective < len(OBJECTIVES) else "cost"

    @property
    def floor_soc_pct(self) -> float:
        """The lowest SoC the plan may use: the minimum or the reserve, whichever is higher."""
        return max(self.minimum_soc_pct, self.reserve_soc_pct)

    def with_ess_minimum(self, ess_minimum_pct: float | None) -> PlannerKnobs:
        """These knobs with the GX's ESS minimum (`/Control/ActiveSocLimit`) as the minimum
        when it is higher: ESS stops discharging there (BatteryLife moves it), so a plan below
        it could not be followed."""
        if ess_minimum_pct is not None and self.minimum_soc_pct < ess_minimum_pct <= 100.0:
            return replace(self, minimum_soc_pct=ess_minimum_pct)
        return self


@dataclass(frozen=True)
class SiteFacts:
    """The installation as the planner needs it (from config.yaml)."""

    tz: str = "Europe/Berlin"
    import_limit_kw: float = 17.25
    export_limit_kw: float = 17.25
    battery_capacity_kwh: float = 0.0
    battery_max_soc_pct: float = 100.0
    battery_max_charge_kw: float = 5.0
    battery_max_discharge_kw: float = 5.0
    battery_round_trip: float = 0.9
    ev_capacity_kwh: float = 60.0
    ev_max_kw: float = 11.0
    ev_min_kw: float = 0.0
    ev_charge_efficiency: float = 0.9
    ev_assumed_soc_pct: float = 30.0
    horizon_h: int = MAX_HORIZON_H

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SiteFacts:
        """From a full (defaulted) config: fuse and phases from `site`, the EV's power range
        from `charger`, the rest from `planner`."""
        site, charger, planner = config["site"], config["charger"], config["planner"]
        volts = float(site["nominal_voltage_v"])
        import_kw = float(site["fuse_a"]) * int(site["phases"]) * volts / 1000.0
        export_kw = planner["grid"]["export_limit_kw"]
        ev_phase_kw = int(charger["phases"]) * volts / 1000.0
        battery, ev = planner["battery"], planner["ev"]
        return cls(tz=str(planner["site"]["tz"]), import_limit_kw=import_kw,
                   export_limit_kw=import_kw if export_kw is None else float(export_kw),
                   battery_capacity_kwh=float(battery["capacity_kwh"]),
                   battery_max_soc_pct=float(battery["max_soc_pct"]),
                   battery_max_charge_kw=float(battery["max_charge_kw"]),
                   battery_max_discharge_kw=float(battery["max_discharge_kw"]),
                   battery_round_trip=float(battery["round_trip_efficiency_pct"]) / 100.0,
                   ev_capacity_kwh=float(charger.get("ev_capacity_kwh") or ev["capacity_kwh"]),
                   ev_max_kw=float(charger["max_current_a"]) * ev_phase_kw,
                   ev_min_kw=float(charger["min_current_a"]) * ev_phase_kw,
                   ev_charge_efficiency=float(ev["charge_efficiency_pct"]) / 100.0,
                   ev_assumed_soc_pct=float(ev["assumed_soc_pct"]),
                   horizon_h=int(planner["horizon_h"]))


@dataclass(frozen=True)
class EvState:
    """The car now: plugged in or not, its SoC if the charger knows it (else None), and the
    energy charged in this session (kWh; counts against the target when the SoC is unknown)."""

    plugged: bool
    soc_pct: float | None = None
    session_kwh: float = 0.0
    capacity_kwh: float | None = None      # the car's own (phaeton.vehicles), else SiteFacts'
