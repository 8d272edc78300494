"""phaeton's EV charger on the GX D-Bus: `com.victronenergy.evcharger.phaeton_<id>`.

Every path of venus-dbus.md §4–§5. The user's paths (/Mode, /StartStop, /SetCurrent, /MaxCurrent,
/SetPhases, /AutoStart, /Position, /CustomName) are writeable from the GX GUI,
VRM (MQTT ints/floats/bools/null), the `dbus` CLI (strings) and the web UI, all through the same
velib SetValue path: velib coerces and range-checks, `UserChoices.accept` decides, and the owner's
`on_user_change` persists it and wakes the control loop. Everything the controller measures or
decides reaches the bus once per tick, from the tick's snapshot (`show`, mapped to paths by
`dbus_values`), in one batch: one ItemsChanged.

A choice and its measurement never share a path, the way Victron's EVCS keeps /SetCurrent (the
user's) apart from /Current (measured): `/SetPhases` is the user's phase choice for Manual and
reads back exactly what was written; `/Ac/PhaseCount` is the phases in use, read-only. One path
for both would let the tick overwrite the choice with the measurement, after which velib (like
velib_python) takes a write equal to the shown value as done without telling the owner.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

from velib.service import VeDbusService

from phaeton import __version__

if TYPE_CHECKING:
    from phaeton.snapshot import CarbonView, LoadpointSnapshot
    from phaeton.vehicles.garage import CarView

log = logging.getLogger("phaeton.venus.evcharger")

PRODUCT_NAME = "EV Charging Station"
PRODUCT_ID = 0xFFFF  # third-party driver
CUSTOM_NAME_MAX = 64  # characters, as config.yaml's device.custom_name

STARTING_REASON = "starting: waiting for the first control step"
MODE_TEXT = {0: "Manual", 1: "Auto", 2: "Scheduled"}
STATUS_TEXT = {
    0: "Disconnected", 1: "Connected", 2: "Charging", 3: "Charged", 4: "Waiting for sun",
    5: "Waiting for RFID", 6: "Waiting for start", 7: "Low SOC", 8: "Ground test error",
    9: "Welded contacts error", 10: "CP input test error", 11: "Residual current detected",
    12: "Undervoltage detected", 13: "Overvoltage detected", 14: "Overheating detected",
    20: "Charging limit", 21: "Start charging", 22: "Switching to 3 phase",
    23: "Switching to 1 phase", 24: "Stop charging",
}


@dataclass
class UserChoices:
    """What the user decides; persisted, and the controller's inputs."""

    mode: int = 0
    start_stop: int = 0
    set_current_a: float = 6.0
    max_current_a: float = 16.0
    phases: int = 3
    auto_start: int = 1
    position: int = 1
    custom_name: str = ""

    FIELDS = {"/Mode": "mode", "/StartStop": "start_stop", "/SetCurrent": "set_current_a",
              "/MaxCurrent": "max_current_a", "/SetPhases": "phases",
              "/AutoStart": "auto_start",
              "/Position": "position", "/CustomName": "custom_name"}

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.FIELDS.values()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], defaults: "UserChoices") -> "UserChoices":
        """Restore from a saved state; unusable entries keep their defaults (and are logged)."""
        choices = UserChoices(**defaults.as_dict())
        for name, default in defaults.as_dict().items():
            if name not in data:
                continue
            value = data[name]
            kind = type(default)
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if type(value) is not kind:
                log.warning("saved state %s=%.80r is not a %s; using %r", name, value,
                            kind.__name__, default)
                continue
            if kind is str and len(value) > CUSTOM_NAME_MAX:
                log.warning("saved state %s is %d characters long (at most %d); using %r",
                            name, len(value), CUSTOM_NAME_MAX, default)
                continue
            setattr(choices, name, value)
        return choices


@dataclass
class ChargerLimits:
    """The bounds the user's writes are checked against (from config and the charger)."""

    min_current_a: float = 6.0
    max_current_a: float = 16.0        # the config's charger.max_current_a
    wired_phases: int = 3
    can_switch_phases: bool = False


class EvChargerService:
    """Builds and owns the velib service; see the module docstring."""

    def __init__(self, unique_id: str, choices: UserChoices, limits: ChargerLimits,
                 on_user_change: Callable[[str, Any], None], *, device_instance: int = 40,
                 connection: str = "", bus_address: str | None = None):
        self.choices = choices
        self.limits = limits
        self._on_user_change = on_user_change
        self.name = f"com.victronenergy.evcharger.phaeton_{unique_id}"
        svc = self.service = VeDbusService(self.name, bus_address=bus_address)
        amps = lambda v: f"{v:.1f} A"  # noqa: E731
        watts = lambda v: f"{v:.0f} W"  # noqa: E731

        svc.add_path("/Mgmt/ProcessName", "phaeton")
        svc.add_path("/Mgmt/ProcessVersion", __version__)
        svc.add_path("/Mgmt/Connection", connection)
        svc.add_path("/DeviceInstance", device_instance)
        svc.add_path("/ProductId", PRODUCT_ID)
        svc.add_path("/ProductName", PRODUCT_NAME)
        svc.add_path("/FirmwareVersion", None)
        svc.add_path("/HardwareVersion", None)
        svc.add_path("/Serial", None)
        svc.add_path("/Model", None)
        svc.add_path("/Connected", 0)
        svc.add_path("/Role", "evcharger")
        svc.add_path("/CustomName", choices.custom_name, writeable=True, kind=str,
                     max_length=CUSTOM_NAME_MAX, on_change=self._accept)
        svc.add_path("/Mode", choices.mode, writeable=True, kind=int, min=0, max=2,
                     text=lambda v: MODE_TEXT.get(v, str(v)), on_change=self._accept)
        svc.add_path("/StartStop", choices.start_stop, writeable=True, kind=int, min=0, max=1,
                     on_change=self._accept)
        svc.add_path("/SetCurrent", choices.set_current_a, writeable=True, kind=float,
                     min=0.0, max=limits.max_current_a, text=amps, on_change=self._accept)
        svc.add_path("/MaxCurrent", choices.max_current_a, writeable=True, kind=float,
                     min=limits.min_current_a, max=limits.max_current_a, text=amps,
                     on_change=self._accept)
        svc.add_path("/MinCurrent", limits.min_current_a, text=amps)
        svc.add_path("/Current", None, text=amps)
        svc.add_path("/Ac/Power", None, text=watts)
        for phase in (1, 2, 3):
            svc.add_path(f"/Ac/L{phase}/Power", None, text=watts)
        svc.add_path("/Ac/PhaseCount", None)              # in use (measured)
        svc.add_path("/SetPhases", choices.phases, writeable=True, kind=int, min=1, max=3,
                     on_change=self._accept)                # the user's choice for Manual
        svc.add_path("/Ac/Energy/Forward", None, text=lambda v: f"{v:.2f} kWh")
        svc.add_path("/Session/Energy", None, text=lambda v: f"{v:.2f} kWh")
        svc.add_path("/Session/Time", None, text=_duration)
        svc.add_path("/ChargingTime", None, text=_duration)
        svc.add_path("/Session/Cost", None, text=lambda v: f"{v:.2f}")
        svc.add_path("/Status", 0, text=lambda v: STATUS_TEXT.get(v, str(v)))
        # phaeton's own, read-only: why the current is what it is (the web UI's reason and
        # "limited by"; the GX screen's plugin page shows them)
        svc.add_path("/Reason", STARTING_REASON)
        svc.add_path("/LimitedBy", None)
        svc.add_path("/Position", choices.position, writeable=True, kind=int, min=0, max=1,
                     text=lambda v: {0: "AC output", 1: "AC input"}.get(v, str(v)),
                     on_change=self._accept)
        svc.add_path("/AutoStart", choices.auto_start, writeable=True, kind=int, min=0, max=1,
                     on_change=self._accept)
        # No /EnableDisplay: gui-v2 shows a "Lock charger display" switch whenever it is valid,
        # and neither the Alfen register map nor OCPP 1.6 can lock a display (Victron's own
        # driver publishes it only for models with a display).
        svc.add_path("/GxAutoMode/Enabled", 1)
        svc.add_path("/GxAutoMode/Source", "phaeton")
        # the car at this charger (read-only but /Vehicle/ManualSoc; docs/vehicles.md)
        for path, text in VEHICLE_PATHS.items():
            svc.add_path(path, None, text=text)
        svc.add_path("/Vehicle/ManualSoc", None, writeable=True, kind=float, min=0.0, max=100.0,
                     nullable=True, text=_PCT_TEXT, on_change=self._manual_soc)
        #: set by the site: the owner entered the car's SoC (False: refused, no car here)
        self.on_manual_soc: Callable[[float], bool] | None = None
        # the site's carbon (read-only; invalid without a carbon source or budget), docs/carbon.md
        for path, text in CARBON_PATHS.items():
            svc.add_path(path, None, text=text)

    # ---- the user's writes -------------------------------------------------------------------

    def _accept(self, path: str, value: Any) -> bool:
        """velib has coerced and range-checked `value`; refuse what the charger cannot do."""
        if path == "/SetPhases":
            if value not in (1, 3) or value > self.limits.wired_phases:
                return False
            if value != self.choices.phases and not self.limits.can_switch_phases:
                return False
        if path == "/SetCurrent" and 0 < value < self.limits.min_current_a:
            return False  # below 6 A a car does not charge; 0 is allowed (pause)
        setattr(self.choices, UserChoices.FIELDS[path], value)
        try:
            self._on_user_change(path, value)
        except Exception:
            log.exception("handling the write %s=%r", path, value)
        return True

    def _manual_soc(self, _path: str, value: Any) -> bool:
        if value is None:
            return True
        handler = self.on_manual_soc
        try:
            return bool(handler is not None and handler(float(value)))
        except Exception:
            log.exception("handling the write /Vehicle/ManualSoc=%r", value)
            return False

    def write(self, path: str, value: Any) -> int:
        """A write from the web UI: exactly the D-Bus SetValue path (codes 0/1/2)."""
        if path not in UserChoices.FIELDS and path != "/Vehicle/ManualSoc":
            return 1
        return self.service.write(path, value)

    def set_choice(self, path: str, value: Any) -> None:
        """The service itself changes a choice (AutoStart on plug-in): publish it."""
        setattr(self.choices, UserChoices.FIELDS[path], value)
        self.service[path] = value

    # ---- publishing --------------------------------------------------------------------------

    def set_device_instance(self, instance: int) -> None:
        self.service["/DeviceInstance"] = instance

    def add_planner_paths(self, planner_state: Mapping[str, Any]) -> None:
        """The energy planner's read-only /Planner/* paths, with their first values."""
        for path, value in planner_state.items():
            self.service.add_path(path, value)

    def show(self, snapshot: "LoadpointSnapshot",
             planner_state: Mapping[str, Any] | None = None,
             carbon: "CarbonView | None" = None) -> None:
        """One tick's snapshot (the planner's state, the site's carbon) on the bus: one
        ItemsChanged."""
        values = dbus_values(snapshot)
        if planner_state:
            values.update(planner_state)
        values.update(carbon_dbus_values(carbon))
        self.publish(values)

    def publish(self, values: dict[str, Any]) -> None:
        """Set many read-only paths at once: one ItemsChanged."""
        with self.service.batch():
            for path, value in values.items():
                self.service[path] = value

    async def register(self) -> None:
        await self.service.register()

    async def close(self) -> None:
        await self.service.close()


def dbus_values(snapshot: "LoadpointSnapshot") -> dict[str, Any]:
    """Pure: the read-only paths a loadpoint's snapshot shows (None = invalid). Without a
    believable answer the measured paths are invalid; the lifetime counter keeps its last good
    value."""
    decision, m = snapshot.decision, snapshot.measurement
    identity = snapshot.identity
    values: dict[str, Any] = {
        "/Connected": 1 if m is not None else 0,
        "/Mgmt/Connection": snapshot.connection,
        "/Status": int(decision.status) if decision is not None else 0,
        "/Reason": decision.reason if decision is not None else STARTING_REASON,
        "/LimitedBy": str(decision.bound_by) if decision is not None else None,
    }
    if identity is not None:
        values.update({"/Serial": identity.serial or None, "/Model": identity.model or None,
                       "/FirmwareVersion": identity.firmware or None,
                       "/HardwareVersion": identity.model or None})
    if m is not None:
        currents = [a for a in m.current_a if a is not None]
        values["/Current"] = round(max(currents), 2) if currents else None
        values["/Ac/Power"] = None if m.total_power_w is None else round(m.total_power_w, 1)
        for n, watts in enumerate(m.power_w, start=1):
            values[f"/Ac/L{n}/Power"] = None if watts is None else round(watts, 1)
        values["/Ac/PhaseCount"] = snapshot.phases_in_use
    else:
        values.update({"/Current": None, "/Ac/Power": None, "/Ac/L1/Power": None,
                       "/Ac/L2/Power": None, "/Ac/L3/Power": None, "/Ac/PhaseCount": None})
    lifetime = snapshot.lifetime_kwh
    values["/Ac/Energy/Forward"] = None if lifetime is None else round(lifetime, 3)
    session = snapshot.session
    values["/Session/Energy"] = session.energy_kwh
    values["/Session/Time"] = session.duration_s
    values["/ChargingTime"] = session.duration_s
    values["/Session/Cost"] = session.cost
    values.update(vehicle_dbus_values(snapshot.car))
    return values


# ---- carbon (read-only) ----------------------------------------------------------------------

_KG = lambda v: f"{v:.1f} kg"  # noqa: E731
_PCT = lambda v: f"{v:.0f} %"  # noqa: E731
CARBON_BUDGET_STATE_TEXT = {0: "OK", 1: "Warning", 2: "Critical"}
_BUDGET_FIELDS = {"Emissions": ("used_kg", _KG), "Budget": ("budget_kg", _KG),
                  "UsagePercent": ("usage_pct", _PCT), "Forecast": ("forecast_kg", _KG)}
#: Every carbon path and its text formatter; None (invalid) while not known or not configured.
CARBON_PATHS: dict[str, Callable[[Any], str]] = {
    "/Carbon/Intensity": lambda v: f"{v:.0f} g/kWh",
    "/Carbon/Today/Emissions": _KG,
    "/Carbon/Month/Emissions": _KG,
    "/Carbon/Budget/State": lambda v: CARBON_BUDGET_STATE_TEXT.get(v, str(v)),
    **{f"/Carbon/Budget/{scope}/{period}/{name}": fmt
       for scope in ("Site", "Car") for period in ("Month", "Year")
       for name, (_, fmt) in _BUDGET_FIELDS.items()},
}


def carbon_dbus_values(carbon: "CarbonView | None") -> dict[str, Any]:
    """Pure: the /Carbon/* paths of the tick's carbon view (all None without a source; a
    budget's paths None when it is not configured)."""
    values: dict[str, Any] = {path: None for path in CARBON_PATHS}
    if carbon is None:
        return values
    rounded = lambda v, n=3: None if v is None else round(float(v), n)  # noqa: E731
    values["/Carbon/Intensity"] = rounded(carbon.intensity_g_per_kwh, 1)
    values["/Carbon/Today/Emissions"] = rounded(carbon.today.total_kg)
    values["/Carbon/Month/Emissions"] = rounded(carbon.month.total_kg)
    values["/Carbon/Budget/State"] = carbon.budget_state
    for status in carbon.budgets:
        base = f"/Carbon/Budget/{status.scope.capitalize()}/{status.period.capitalize()}"
        for name, (field, _) in _BUDGET_FIELDS.items():
            values[f"{base}/{name}"] = rounded(getattr(status, field), 2 if name ==
                                               "UsagePercent" else 3)
    return values


# ---- the car (read-only) -----------------------------------------------------------------------

_PCT_TEXT = lambda v: f"{v:.0f} %"  # noqa: E731
#: The car's paths; None (invalid) while no car or reading is known.
VEHICLE_PATHS: dict[str, Callable[[Any], str]] = {
    "/Vehicle/Name": str,
    "/Vehicle/Soc": _PCT_TEXT,
    "/Vehicle/SocAge": lambda v: f"{v:.0f} s",
    "/Vehicle/SocStale": lambda v: "stale" if v else "fresh",
    "/Vehicle/SocSource": str,
    "/Vehicle/Range": lambda v: f"{v:.0f} km",
}


def vehicle_dbus_values(car: "CarView | None") -> dict[str, Any]:
    """Pure: the /Vehicle/* paths for the car at a charger (all None without one)."""
    values: dict[str, Any] = {path: None for path in VEHICLE_PATHS}
    values["/Vehicle/ManualSoc"] = None
    if car is None:
        return values
    values["/Vehicle/Name"] = car.name
    values["/Vehicle/ManualSoc"] = car.manual_soc_pct
    if car.soc_pct is not None:
        values.update({"/Vehicle/Soc": car.soc_pct, "/Vehicle/SocAge": round(car.age_s or 0.0),
                       "/Vehicle/SocStale": 1 if car.stale else 0,
                       "/Vehicle/SocSource": car.source,
                       "/Vehicle/Range": None if car.range_km is None else round(car.range_km)})
    return values


def _duration(seconds: Any) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
