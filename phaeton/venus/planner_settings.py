"""The battery strategy knobs as GX settings under `/Settings/Phaeton/Planner/`.

Created with AddSettings (default from config.yaml, min, max) in `com.victronenergy.settings`,
so the GX GUI, VRM/MQTT (`W/<portal>/settings/0/Settings/Phaeton/Planner/Strategy`) and the
`dbus` CLI can change them; the settings service enforces the ranges. Whoever changes one,
`on_change(knobs)` is called with the new `PlannerKnobs` (the planner re-plans).

| setting | type | range | meaning |
|---|---|---|---|
| Strategy | int | 0..2 | 0 off, 1 self-consumption, 2 optimise |
| MinimumSoc | float | 0..100 | % the plan never goes below (the GX's ESS minimum, `/Control/ActiveSocLimit`, when that is higher) |
| ReserveSoc | float | 0..100 | % backup reserve kept on top (the higher of the two counts) |
| AllowGridCharging | int | 0..1 | the plan may charge the battery from the grid |
| AllowExport | int | 0..1 | the plan may feed into the grid |
| DegradationCost | float | 0..10 | wear cost per kWh in or out (currency/kWh) |
| EvDepartureTime | int | 0..1439 | minutes after local midnight |
| EvTargetSoc | float | 0..100 | % the car should have at departure |
| EvTargetKwh | float | 0..500 | kWh to add by departure; 0 = use EvTargetSoc |
| Objective | int | 0..2 | what optimise minimises: 0 cost, 1 carbon, 2 cost with a carbon price |
| CarbonPrice | float | 0..10000 | carbon price per tonne for Objective 2 (currency/t) |

With several chargers the Ev* knobs are the first charger's car; every other charger's car has
its own, `car_knobs(id)`: `Ev/<id>/DepartureTime`, `Ev/<id>/TargetSoc` and `Ev/<id>/TargetKwh`
(same types and ranges, defaults from `planner.ev`).

Beside the knobs, phaeton keeps one state setting there (not a knob; `venus/ess_writer.py`
writes it): `DessState` (int 0..2), its hold on Dynamic ESS: 0 idle, 1 steering (phaeton put
`/Settings/DynamicEss/Mode` 4 in place), 2 the owner switched Dynamic ESS off on the GX, so
phaeton leaves the battery alone until the owner re-enables it (Mode 4 on the GX again, a
changed Strategy, a changed `planner.ess_control`, or DessState set to 0). Being a setting,
the owner's choice survives a restart.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

from phaeton.planning.knobs import PlannerKnobs
from velib.settings import SettingsClient, SettingSpec

log = logging.getLogger("phaeton.venus.planner_settings")

PREFIX = "/Settings/Phaeton/Planner/"
STRATEGY_PATH = PREFIX + "Strategy"
DESS_STATE_PATH = PREFIX + "DessState"     # phaeton's hold on Dynamic ESS (see above)


@dataclass(frozen=True)
class Knob:
    """One setting: its name under PREFIX, the PlannerKnobs field, type and range."""

    name: str
    field: str
    kind: type
    minimum: float
    maximum: float
    prefix: str = PREFIX

    @property
    def path(self) -> str:
        return self.prefix + self.name

    def to_setting(self, value: Any) -> Any:
        """A knob value as the setting stores it (bools as 0/1)."""
        return int(bool(value)) if self.kind is bool else self.kind(value)

    def from_setting(self, value: Any) -> Any:
        """A setting's value as the knob (None when unusable)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if not self.minimum <= value <= self.maximum:
            return None
        if self.kind is bool:
            return bool(value)
        return self.kind(value)


KNOBS = (
    Knob("Strategy", "strategy", int, 0, 2),
    Knob("MinimumSoc", "minimum_soc_pct", float, 0, 100),
    Knob("ReserveSoc", "reserve_soc_pct", float, 0, 100),
    Knob("AllowGridCharging", "allow_grid_charging", bool, 0, 1),
    Knob("AllowExport", "allow_export", bool, 0, 1),
    Knob("DegradationCost", "degradation_eur_per_kwh", float, 0, 10),
    Knob("EvDepartureTime", "ev_departure_min", int, 0, 1439),
    Knob("EvTargetSoc", "ev_target_soc_pct", float, 0, 100),
    Knob("EvTargetKwh", "ev_target_kwh", float, 0, 500),
    Knob("Objective", "objective", int, 0, 2),
    Knob("CarbonPrice", "carbon_price_per_tonne", float, 0, 10000),
)
KNOB_BY_PATH = {knob.path: knob for knob in KNOBS}
assert {knob.field for knob in KNOBS} == {f.name for f in fields(PlannerKnobs)}


def car_knobs(car_id: str) -> tuple[Knob, ...]:
    """The departure and target of the car at charger `car_id` (a second, third ... charger;
    the first charger's car uses the site's Ev* knobs), under `Ev/<id>/`."""
    prefix = f"{PREFIX}Ev/{car_id}/"
    return (Knob("DepartureTime", "ev_departure_min", int, 0, 1439, prefix),
            Knob("TargetSoc", "ev_target_soc_pct", float, 0, 100, prefix),
            Knob("TargetKwh", "ev_target_kwh", float, 0, 500, prefix))


def setting_specs(defaults: PlannerKnobs, knobs: tuple[Knob, ...] = KNOBS) -> list[SettingSpec]:
    """AddSettings entries for every knob, defaults from `defaults` (clipped into range)."""
    specs = []
    for knob in knobs:
        value = min(max(getattr(defaults, knob.field), knob.minimum), knob.maximum)
        minimum, maximum = knob.minimum, knob.maximum
        if knob.kind is not float:
            minimum, maximum = int(minimum), int(maximum)
        else:
            minimum, maximum = float(minimum), float(maximum)
        specs.append(SettingSpec(knob.path, knob.to_setting(value), minimum, maximum))
    return specs


def knobs_from_values(values: dict[str, Any], defaults: PlannerKnobs,
                      knobs: tuple[Knob, ...] = KNOBS) -> PlannerKnobs:
    """PlannerKnobs from setting values by path; missing or unusable ones keep `defaults`."""
    changes = {}
    for knob in knobs:
        value = knob.from_setting(values.get(knob.path))
        if value is not None:
            changes[knob.field] = value
    return replace(defaults, **changes)


class PlannerSettings:
    """`await start()` adds the settings and subscribes; `knobs` is always usable (the config's
    defaults while the settings service is away); `on_change(knobs)` after every change.

    A stored value a knob cannot use (NaN, inf, out of its range, not a number: localsettings
    keeps what it is given) counts as not set: the config's default applies, and the log says
    so once per setting until it holds a usable value again."""

    def __init__(self, settings: SettingsClient, defaults: PlannerKnobs, *,
                 on_change: Callable[[PlannerKnobs], None] | None = None,
                 knobs: tuple[Knob, ...] = KNOBS):
        self.settings = settings
        self.defaults = defaults
        self.knob_list = knobs
        self.knob_by_path = {knob.path: knob for knob in knobs}
        self.on_change = on_change
        self.knobs = defaults
        self.error: str | None = None
        self._unsubscribe: list[Callable[[], None]] = []
        self._unusable: set[str] = set()     # paths whose unusable value was logged

    async def start(self) -> PlannerKnobs:
        """Create the settings (existing ones keep their values) and follow them; returns the
        knobs. A refusal or a missing settings service is logged and kept in `error`; the
        defaults then apply until `add()` succeeds (when the settings service appears)."""
        await self.add()
        for knob in self.knob_list:
            self._unsubscribe.append(self.settings.subscribe(knob.path, self._changed))
        return self.knobs

    async def add(self) -> PlannerKnobs:
        """AddSettings for every knob; the knobs from what the settings service holds.
        `on_change` is called when that differs from the knobs in use."""
        values: dict[str, Any] = {}
        try:
            values = await self.settings.add_settings(setting_specs(self.defaults, self.knob_list))
            self.error = None
        except Exception as exc:  # noqa: BLE001 - plan with the config's values
            values = getattr(exc, "values", {}) or {}
            self.error = f"planner settings: {exc}"
            log.warning("planner settings not created: %s", exc)
        for knob in self.knob_list:
            if knob.path in values:
                self._check_usable(knob, values[knob.path])
        knobs = knobs_from_values(values, self.defaults, self.knob_list)
        changed, self.knobs = knobs != self.knobs, knobs
        if changed and self.on_change is not None:
            self.on_change(knobs)
        return knobs

    def _check_usable(self, knob: Knob, value: Any) -> bool:
        """True when the knob can use `value`; otherwise log once (per setting, until it is
        usable again) that the config's default applies instead."""
        if knob.from_setting(value) is not None:
            self._unusable.discard(knob.path)
            return True
        if value is None:  # no value at all (the settings service has none): quietly not set
            return False
        if knob.path not in self._unusable:
            self._unusable.add(knob.path)
            log.warning("planner setting %s = %r is unusable (not a number within %g..%g): "
                        "treated as not set, the config default %r applies", knob.path, value,
                        knob.minimum, knob.maximum, getattr(self.defaults, knob.field))
        return False

    def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()

    def _changed(self, path: str, value: Any) -> None:
        knob = self.knob_by_path.get(path)
        if knob is None:
            return
        if self._check_usable(knob, value):
            parsed = knob.from_setting(value)
        else:  # not set: the config's default
            parsed = getattr(self.defaults, knob.field)
        new = replace(self.knobs, **{knob.field: parsed})
        if new == self.knobs:
            return
        self.knobs = new
        log.info("planner setting %s = %r", knob.name, parsed)
        if self.on_change is not None:
            self.on_change(new)
