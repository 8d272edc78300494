"""The planning problem and the plan: plain dataclasses over numpy arrays.

Units: energies in kWh per slot, powers in kW, prices in currency per kWh (called EUR here),
state of charge (SoC) as a fraction 0..1. Slot i starts at `slot_start_s[i]` (unix seconds) and
lasts `slot_duration_h[i]` hours, so 23- and 25-hour days (92 or 100 quarter-hour slots) and
mixed slot lengths are plain arrays of a different length.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class BatterySpec:
    """The home battery as the planner sees it.

    Efficiencies are one-way, measured on the AC side: charging `x` kWh from the AC bus stores
    `x * charge_efficiency`; taking `y` kWh out of storage delivers `y * discharge_efficiency`.
    `degradation_eur_per_kwh` is charged on every AC kWh going in and every AC kWh coming out.
    `terminal_value_eur_per_kwh` values energy still stored at the end of the horizon; None means
    "mean finite import price over the horizon times discharge efficiency" (what the energy would
    roughly save later), which keeps a rolling plan from emptying the battery at its horizon.
    With `allow_grid_charging` False the battery charges at most the PV surplus over the house
    load in each slot.
    """

    capacity_kwh: float
    soc_now: float
    soc_min: float = 0.1
    soc_max: float = 1.0
    max_charge_kw: float = 5.0
    max_discharge_kw: float = 5.0
    charge_efficiency: float = 0.95
    discharge_efficiency: float = 0.95
    degradation_eur_per_kwh: float = 0.0
    allow_grid_charging: bool = True
    terminal_value_eur_per_kwh: float | None = None

    @classmethod
    def with_round_trip(cls, round_trip_efficiency: float, **kwargs) -> "BatterySpec":
        """Split a round-trip efficiency evenly into charge and discharge efficiency."""
        one_way = float(np.sqrt(round_trip_efficiency)) if round_trip_efficiency > 0 else 0.0
        return cls(charge_efficiency=one_way, discharge_efficiency=one_way, **kwargs)


@dataclass(frozen=True)
class GridSpec:
    """The grid connection: import limit from the fuse, export limit, export allowed or not."""

    import_limit_kw: float = 17.25
    export_limit_kw: float = 17.25
    export_allowed: bool = True


@dataclass(frozen=True)
class EVDemand:
    """One car to charge before it leaves.

    The car may charge in slot i when `plugged_mask[i]` is true and `i < departure_slot`.
    `energy_needed_kwh` is what must reach the car's battery by the start of `departure_slot`;
    the charger draws `energy / charge_efficiency` from the AC side. `min_kw` > 0 means the
    charger cannot run below that power (6 A x 3 phases ~ 4.1 kW) except off. `name` is the
    charger's id (used in shortfall reasons; may be empty).
    """

    plugged_mask: np.ndarray
    departure_slot: int
    energy_needed_kwh: float
    max_kw: float = 11.0
    min_kw: float = 0.0
    charge_efficiency: float = 0.9
    name: str = ""

    @classmethod
    def from_soc(cls, capacity_kwh: float, soc_now: float, soc_target: float,
                 **kwargs) -> "EVDemand":
        """Build the demand from the car's capacity and SoC now and wanted."""
        needed = max(0.0, (soc_target - soc_now) * capacity_kwh)
        return cls(energy_needed_kwh=needed, **kwargs)


@dataclass
class PlanProblem:
    """Everything the optimizer needs, as equal-length arrays over the slots.

    `slot_duration_h` may be None: it is then taken from the spacing of `slot_start_s` (the last
    slot repeats the previous spacing; a single slot is 15 minutes).

    The cars: either `ev` (one car, as before) or `evs` (any number, each with its own plug-in
    mask, departure, need, power limits and efficiency), not both; `demands` is the tuple in
    effect either way. `ev_shared_max_kw` is the most all the cars together may draw (the
    smallest circuit above all of them); None: no limit besides the grid import limit.

    Carbon: `import_intensity_g_per_kwh` is the grid's carbon intensity per slot (g CO2-eq per
    kWh imported; NaN = unknown, taken as the mean of the known slots; none known, or None:
    no intensity, `Plan.co2_kg` is None and a carbon objective plans for cost with a warning).
    A caller that has a static factor for its country should fill the unknown slots with it.
    `objective` is what the plan minimises (the EV targets and every limit hold in each):

    - "cost" (default): money, exactly as without the carbon fields;
    - "carbon": kg CO2 of grid import; money only breaks ties (weight
      `CARBON_TIE_BREAK_KG_PER_EUR`, 1 EUR counts as 0.1 g), so the plan is deterministic;
    - "cost_with_carbon_price": money plus `carbon_price_per_tonne` (currency per tonne CO2)
      times the tonnes imported.
    """

    slot_start_s: np.ndarray
    import_price_eur_per_kwh: np.ndarray
    export_price_eur_per_kwh: np.ndarray
    load_kwh: np.ndarray
    pv_kwh: np.ndarray
    battery: BatterySpec | None = None
    grid: GridSpec = field(default_factory=GridSpec)
    ev: EVDemand | None = None
    slot_duration_h: np.ndarray | None = None
    evs: tuple[EVDemand, ...] = ()
    ev_shared_max_kw: float | None = None
    import_intensity_g_per_kwh: np.ndarray | None = None
    objective: str = "cost"
    carbon_price_per_tonne: float = 0.0

    def __post_init__(self) -> None:
        self.evs = tuple(self.evs or ())
        if self.ev is not None and self.evs:
            raise ValueError("PlanProblem: set either ev or evs, not both")

    @property
    def demands(self) -> tuple[EVDemand, ...]:
        """The cars to plan: `evs`, or `(ev,)`, or none."""
        evs = tuple(self.evs or ())
        if self.ev is not None and evs:
            raise ValueError("PlanProblem: set either ev or evs, not both")
        if evs:
            return evs
        return (self.ev,) if self.ev is not None else ()


OBJECTIVES = ("cost", "carbon", "cost_with_carbon_price")
#: the "carbon" objective's tie-breaker: money counts this many kg CO2 per EUR (0.1 g)
CARBON_TIE_BREAK_KG_PER_EUR = 1e-4


@dataclass(frozen=True)
class SlotMix:
    """A slot the plan runs as two parts (strongly negative prices: energy is burned through
    the battery's losses). The battery's AC power is `first_kw` (charge > 0) for `first_s`
    seconds from the slot's start, then `second_kw` for the rest of the slot; one is charging
    and the other discharging. `Plan.soc` holds the SoC at the slot's ends, `mid_soc` is the
    SoC at the switch."""

    slot: int
    first_kw: float
    first_s: float
    second_kw: float
    mid_soc: float


@dataclass(frozen=True)
class Shortfall:
    """EV energy the plan cannot deliver by departure, and why."""

    ev_kwh: float
    reason: str


@dataclass
class Plan:
    """The decided schedule, per slot, plus what it costs.

    Energies are AC-side kWh per slot. `soc` has one entry more than there are slots: the SoC at
    the start of each slot and at the end of the horizon. `cost_eur` is the objective the
    optimizer minimises: `energy_cost_eur` (imports paid minus exports earned) plus
    `degradation_cost_eur` minus `terminal_value_eur` (the terminal value per kWh times the
    change of stored energy from start to end: negative when the plan empties the battery). `fuse_overload_kwh` is import the fuse cannot carry, non-zero only when the house load
    alone exceeds what grid, PV and battery can supply (then a warning says so).

    Cars: `ev_kwh_by_ev` has one row per car of `PlanProblem.demands` (AC kWh per slot),
    `ev_delivered_by_ev_kwh` and `shortfalls` one entry per car (None: its need is met).
    `ev_kwh` and `ev_delivered_kwh` are the sums over the cars; `shortfall` is the combined
    shortfall: None when every car gets its need, else the kWh missing over all cars with the
    reasons joined ("name: reason; ..."); with one car it is that car's shortfall.
    """

    slot_start_s: np.ndarray
    slot_duration_h: np.ndarray
    battery_charge_kwh: np.ndarray
    battery_discharge_kwh: np.ndarray
    ev_kwh: np.ndarray
    grid_import_kwh: np.ndarray
    grid_export_kwh: np.ndarray
    pv_curtailed_kwh: np.ndarray
    fuse_overload_kwh: np.ndarray
    soc: np.ndarray
    soc_kwh: np.ndarray
    energy_cost_eur: float
    degradation_cost_eur: float
    terminal_value_eur: float
    ev_delivered_kwh: float
    shortfall: Shortfall | None
    reasons: list[str]
    warnings: list[str]
    ev_kwh_by_ev: np.ndarray | None = None
    ev_delivered_by_ev_kwh: tuple[float, ...] | None = None
    shortfalls: tuple[Shortfall | None, ...] | None = None
    co2_kg: float | None = None
    objective: str = "cost"
    objective_value: float | None = None
    battery_mixes: tuple[SlotMix, ...] = ()

    def __post_init__(self) -> None:
        if self.objective_value is None:
            self.objective_value = self.cost_eur
        # built without the per-car fields (older callers): one car when there is any EV energy
        # or shortfall, none otherwise
        if self.ev_kwh_by_ev is None:
            one = self.shortfall is not None or bool(np.any(np.asarray(self.ev_kwh) > 0))
            self.ev_kwh_by_ev = np.asarray(self.ev_kwh, dtype=float).reshape(1, -1)[:int(one)]
        if self.ev_delivered_by_ev_kwh is None:
            self.ev_delivered_by_ev_kwh = (float(self.ev_delivered_kwh),) * len(self.ev_kwh_by_ev)
        if self.shortfalls is None:
            self.shortfalls = (self.shortfall,) * len(self.ev_kwh_by_ev)

    @property
    def cost_eur(self) -> float:
        return self.energy_cost_eur + self.degradation_cost_eur - self.terminal_value_eur

    @property
    def slot_count(self) -> int:
        return len(self.slot_duration_h)
