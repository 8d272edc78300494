"""The one small Charger interface the controller uses, whatever the brand or protocol.

A charger driver implements `Charger`. Optional capabilities (phase switching, station max
current, per-session energy, vehicle SoC) are *discovered*: the driver lists what it can do in
`capabilities` once it knows (e.g. after connecting), and the controller asks instead of
switching on the brand (like evcc's api.Charger with its optional interfaces).

Failure contract: a driver never raises out of `read()`/`set_current()`/... for transport
problems; it reports them through `connected`/`last_error` and ChargerUnavailable, so the caller
decides what to do. Values a charger does not provide are None, never NaN. A driver reports
what the charger said (no smoothing, no "last good" substitutes); the service decides whether
to believe it (`phaeton.control.plausibility`).
"""
from __future__ import annotations

import abc
import enum
from dataclasses import dataclass, field


class VehicleState(enum.Enum):
    NO_VEHICLE = "no_vehicle"
    CONNECTED = "connected"      # plugged in, not drawing current
    CHARGING = "charging"
    CHARGED = "charged"          # plugged in, the vehicle finished (where the charger can tell)
    ERROR = "error"              # see ChargerMeasurement.error_reason
    UNKNOWN = "unknown"          # the charger's answer does not say (unreadable or unknown
                                 # state; error_reason tells which): the reading is unusable


class Capability(enum.Enum):
    PHASE_SWITCHING = "phase_switching"          # set_phases(1|3)
    STATION_MAX_CURRENT = "station_max_current"  # ChargerMeasurement.station_max_current_a
    SESSION_ENERGY = "session_energy"            # ChargerMeasurement.session_energy_kwh
    VEHICLE_SOC = "vehicle_soc"                  # ChargerMeasurement.vehicle_soc_pct


class ChargerUnavailable(Exception):
    """The charger cannot be reached or cannot do what was asked right now (with a reason)."""


class CapabilityMissing(ChargerUnavailable):
    """The charger does not have the capability that was asked for."""


PhaseValues = tuple[float | None, float | None, float | None]


@dataclass(frozen=True)
class ChargerIdentity:
    manufacturer: str = ""
    model: str = ""
    serial: str = ""
    firmware: str = ""


@dataclass(frozen=True)
class ChargerMeasurement:
    vehicle_state: VehicleState
    voltage_v: PhaseValues = (None, None, None)
    current_a: PhaseValues = (None, None, None)
    power_w: PhaseValues = (None, None, None)
    total_power_w: float | None = None
    lifetime_energy_kwh: float | None = None     # the charger's lifetime counter
    error_reason: str | None = None              # set when vehicle_state is ERROR
    applied_current_a: float | None = None       # the limit the charger is applying now
    phases: int | None = None                    # phases configured for charging (1 or 3)
    station_max_current_a: float | None = None   # Capability.STATION_MAX_CURRENT
    session_energy_kwh: float | None = None      # Capability.SESSION_ENERGY
    vehicle_soc_pct: float | None = None         # Capability.VEHICLE_SOC
    extra: dict = field(default_factory=dict)    # protocol details worth showing (e.g. mode-3 state)


class Charger(abc.ABC):
    """A wallbox (one socket/connector) as the controller sees it."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Start connecting/serving in the background. Returns at once; never raises for I/O."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Leave the charger at its safe state where possible and release all resources."""

    @property
    @abc.abstractmethod
    def connected(self) -> bool:
        """True while the charger answers."""

    @property
    @abc.abstractmethod
    def connection_text(self) -> str:
        """For /Mgmt/Connection, e.g. 'Modbus TCP 192.168.1.50' or 'OCPP 1.6J EVB-1234'."""

    @property
    def last_error(self) -> str | None:
        """Why the charger is not connected or the last command failed, in words."""
        return None

    @property
    @abc.abstractmethod
    def identity(self) -> ChargerIdentity | None:
        """Known once connected."""

    @property
    def capabilities(self) -> frozenset[Capability]:
        return frozenset()

    @property
    def required_readings(self) -> frozenset[str]:
        """ChargerMeasurement fields this charger always reports when its answer is sound (a
        per-phase field: on at least one phase). None there makes the answer unusable (e.g. a
        meter answering NaN for everything); elsewhere None just means "not provided"."""
        return frozenset()

    @abc.abstractmethod
    async def read(self) -> ChargerMeasurement:
        """The latest measurement. Raises ChargerUnavailable when there is none to give."""

    @abc.abstractmethod
    async def set_current(self, amps: float) -> None:
        """Set the current limit per phase in A; 0 pauses. Below 6 A (IEC 61851) means 0.
        Raises ChargerUnavailable if it could not be delivered (the driver keeps retrying)."""

    @abc.abstractmethod
    async def set_enabled(self, enabled: bool) -> None:
        """Allow (True) or stop (False) charging."""

    async def set_phases(self, phases: int) -> None:
        """Switch between 1 and 3 phases (Capability.PHASE_SWITCHING)."""
        raise CapabilityMissing(f"{type(self).__name__} cannot switch phases")


MIN_CHARGE_CURRENT_A = 6.0  # IEC 61851: below this a car does not charge


def effective_current(amps: float) -> float:
    """A requested current as a charger applies it: below 6 A means 0 (pause)."""
    if not amps >= MIN_CHARGE_CURRENT_A:  # also catches NaN
        return 0.0
    return float(amps)
