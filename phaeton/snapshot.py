"""One snapshot per control tick: what the site and each loadpoint measured and decided.

The site builds a `SiteSnapshot` at the end of every tick and hands it to its publisher
(`phaeton.publisher.SnapshotPublisher`); everything that shows the service's state is a
consumer of that one value: the D-Bus evcharger service (`venus/evcharger_service.dbus_values`),
the web UI's status and its event stream (`web/status.status_of`), and later metrics and the
fleet client. The snapshot holds copies (the user's choices, the limits) so a consumer that
looks later sees the tick as it was, not what changed since.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from phaeton.chargers.base import ChargerIdentity, ChargerMeasurement
from phaeton.control.controller import ChargeDecision
from phaeton.control.readings import SiteReadings
from phaeton.vehicles.garage import CarView
from phaeton.venus.evcharger_service import ChargerLimits, UserChoices


@dataclass(frozen=True)
class SessionSummary:
    """The running session, else the last finished one (since the start), else all None."""

    active: bool
    energy_kwh: float | None
    duration_s: int | None
    cost: float | None
    currency: str
    solar_share: float | None
    peak_w: float | None
    co2_kg: float | None = None            # kg CO2-eq; None without a carbon source


@dataclass(frozen=True)
class CarbonPeriod:
    """kg CO2-eq of one local day ("2026-01-31"), month ("2026-01") or year ("2026") so far."""

    key: str
    house_kg: float
    car_kg: float
    avoided_kg: float

    @property
    def total_kg(self) -> float:
        return self.house_kg + self.car_kg


@dataclass(frozen=True)
class CarbonView:
    """The site's carbon at the tick (`carbon_feed.CarbonFeed.view`): the grid's intensity now
    (None: not known), today's, the month's and the year's emissions so far, every configured
    budget (`control.carbon_budget.BudgetStatus`) and the worst of their levels (None: no
    budget; 0 ok, 1 warning, 2 critical), and what was accounted since phaeton started (kg:
    house, cars, avoided)."""

    intensity_g_per_kwh: float | None
    today: CarbonPeriod
    month: CarbonPeriod
    year: CarbonPeriod
    budgets: tuple = ()
    budget_state: int | None = None
    accounted_kg: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class LoadpointSnapshot:
    """One loadpoint after a tick. `decision` None: no control step yet (starting);
    `measurement` None: the charger gave no believable answer this tick."""

    name: str                              # the loadpoint's unique id
    choices: UserChoices                   # a copy, as they were at the tick
    limits: ChargerLimits                  # a copy
    decision: ChargeDecision | None
    measurement: ChargerMeasurement | None
    connection: str                        # the charger's /Mgmt/Connection text
    identity: ChargerIdentity | None
    error: str | None                      # why the charger is not believed, or its last error
    lifetime_kwh: float | None             # the last good lifetime counter
    session: SessionSummary
    car: CarView | None = None             # the car at this charger (phaeton.vehicles)

    @property
    def connected(self) -> bool:
        return self.measurement is not None

    @property
    def phases_in_use(self) -> int | None:
        """What the charger reports it uses, else what it was told; None without an answer."""
        m = self.measurement
        if m is None:
            return None
        if m.phases in (1, 3) or self.decision is None:
            return m.phases
        return self.decision.phases


@dataclass(frozen=True)
class SiteSnapshot:
    """The site after a tick (`readings` None: before the first tick) and its loadpoints."""

    time_s: float                          # wall clock (unix s) when the tick was published
    readings: SiteReadings | None
    fuse_a: float
    nominal_voltage_v: float
    stale_after_s: float
    planner_state: Mapping[str, Any]       # the planner's read-only /Planner/* values
    loadpoints: tuple[LoadpointSnapshot, ...]
    carbon: CarbonView | None = None       # None: no carbon source
