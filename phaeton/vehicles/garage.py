"""The household's cars: which one is at which charger, and its state of charge now.

Which car: an idTag of the charger's running transaction (OCPP) that a car lists in `id_tags`
wins; otherwise the car configured for that charger (`charger`, empty = the first charger).
Without a `vehicles` list every charger has an implicit car whose SoC is the charger's own
(the OCPP `SoC` measurand) or what the owner enters.

Its SoC: the newest of the car's source (MQTT, HTTP, Tesla…), the charger's measurand (source
`ocpp`) and a manual entry (web UI, `/Vehicle/ManualSoc` on D-Bus), plus what the charger put
in since that reading arrived while the car is plugged in (the charger's counter × the charge
efficiency ÷ capacity): a car polled every 10 minutes stops at its target, not a poll later. A
reading older than the car's `stale_after_s` is stale: shown with its age, not planned with. A
manual entry made while the car is plugged in lasts until the car is unplugged; one made
before plugging in lasts `stale_after_s`. Manual entries are kept in `<data_dir>/vehicles.json` across restarts.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from phaeton.control.readings import EvReadings
from phaeton.store.state_file import StateFile, StateFileError
from phaeton.vehicles.base import SocReading, SocSource, SourceError, checked_soc

log = logging.getLogger("phaeton.vehicles")

VEHICLES_FILE = "vehicles.json"
IMPLICIT_STALE_S = 3600.0


@dataclass(frozen=True)
class CarView:
    """A car as the UI, D-Bus and the planner see it now."""
    name: str
    charger: str | None             # where it is (None: at no charger now)
    identified_by: str              # "id_tag", "config" or "only_car"
    soc_pct: float | None           # None: no reading at all
    range_km: float | None
    at_s: float | None              # when the reading was taken
    age_s: float | None
    stale: bool
    source: str | None              # which source the reading came from
    problem: str | None             # why the car's source last failed
    capacity_kwh: float | None
    manual_soc_pct: float | None = None  # the owner's entry as entered (None: none)
    charged_since_kwh: float = 0.0       # what the charger put in since the reading (in soc_pct)

    @property
    def usable_soc_pct(self) -> float | None:
        """The SoC to plan and stop with: None when unknown or stale."""
        return None if self.stale else self.soc_pct

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Manual:
    soc_pct: float
    at_s: float
    plugged: bool                   # entered while the car was plugged in
    mark_kwh: float | None          # the charger's counter then


@dataclass
class _Car:
    name: str
    charger: str
    id_tags: frozenset[str]
    stale_after_s: float
    capacity_kwh: float | None
    kind: str
    source: SocSource | None = None
    charger_reading: SocReading | None = None      # source ocpp: the measurand
    manual: _Manual | None = None
    start_problem: str | None = None
    was_plugged: bool = field(default=False)
    measurement: Any = None                        # its charger's last measurement
    # per source: (the reading's time, the charger's counter when it was first seen)
    marks: dict[str, tuple[float, float | None]] = field(default_factory=dict)


def build_source(car: Mapping[str, Any], data_dir: str | Path,
                 clock: Callable[[], float]) -> SocSource | None:
    """The car's own source (None for ocpp and manual: the garage itself holds those). Imports
    only the module of the kind configured."""
    soc = car["soc"]
    kind = soc["source"]
    if kind == "mqtt":
        from phaeton.vehicles.mqtt import MqttSocSource
        return MqttSocSource(soc["mqtt"], car["name"], clock=clock)
    if kind == "http":
        from phaeton.vehicles.http_json import HttpJsonSource
        return HttpJsonSource(soc["http"], car["name"], clock=clock)
    if kind == "tesla":
        from phaeton.vehicles.tesla import TeslaFleetSource
        cfg = soc["tesla"]
        return TeslaFleetSource(cfg, Path(data_dir) / f"tesla-{cfg['vin']}.json")
    return None


class Garage:
    def __init__(self, cars: Sequence[Mapping[str, Any]], charger_ids: Sequence[str],
                 data_dir: str | Path, *, clock: Callable[[], float] = time.time,
                 charge_efficiency: float = 0.9, default_capacity_kwh: float = 60.0,
                 make_source: Callable[..., SocSource | None] = build_source):
        self.clock = clock
        self.charger_ids = list(charger_ids)
        self.charge_efficiency = charge_efficiency
        self.default_capacity_kwh = default_capacity_kwh
        self.implicit = not cars
        self._cars: dict[str, _Car] = {}
        self._tagged: dict[str, str] = {}     # car -> the charger whose transaction named it
        if self.implicit:
            for charger in self.charger_ids:
                name = "car" if len(self.charger_ids) == 1 else f"car_{charger}"
                self._cars[name] = _Car(name, charger, frozenset(), IMPLICIT_STALE_S, None, "ocpp")
        for cfg in cars:
            car = _Car(str(cfg["name"]), str(cfg.get("charger") or self.charger_ids[0]),
                       frozenset(t.casefold() for t in cfg.get("id_tags") or ()),
                       float(cfg.get("stale_after_s") or 3600.0),
                       float(cfg["capacity_kwh"]) if cfg.get("capacity_kwh") else None,
                       str(cfg["soc"]["source"]))
            try:
                car.source = make_source(cfg, data_dir, clock)
            except Exception as exc:     # noqa: BLE001 - one broken car leaves the others
                car.start_problem = f"cannot use its SoC source: {exc}"
                log.error("car %s: %s", car.name, car.start_problem)
            self._cars[car.name] = car
        self._file = StateFile(Path(data_dir) / VEHICLES_FILE)
        self._load_manual()

    # ---- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        for car in self._cars.values():
            if car.source is not None:
                try:
                    await car.source.start()
                except Exception as exc:  # noqa: BLE001 - reported, the rest runs
                    car.start_problem = f"its SoC source did not start: {exc}"
                    log.error("car %s: %s", car.name, car.start_problem)

    async def stop(self) -> None:
        for car in self._cars.values():
            if car.source is not None:
                try:
                    await asyncio.wait_for(car.source.stop(), 5)
                except Exception as exc:  # noqa: BLE001
                    log.warning("car %s: while stopping its source: %s", car.name, exc)

    @property
    def names(self) -> list[str]:
        return list(self._cars)

    # ---- which car -----------------------------------------------------------------------------

    def car_at(self, charger: str, id_tag: str | None = None) -> tuple[str, str] | None:
        """(car name, how it was identified) for the car at `charger`, or None."""
        if id_tag:
            tag = id_tag.casefold()
            for car in self._cars.values():
                if tag in car.id_tags:
                    return car.name, "id_tag"
        for car in self._cars.values():
            if car.charger == charger and not self._elsewhere_by_tag(car, charger):
                return car.name, "config"
        return None

    def _elsewhere_by_tag(self, car: _Car, charger: str) -> bool:
        return self._tagged.get(car.name, charger) != charger

    # ---- the SoC -------------------------------------------------------------------------------

    def observe(self, charger: str, measurement) -> CarView | None:
        """This tick's view of the car at `charger` (from the charger's measurement: its idTag,
        plug state, SoC measurand and energy counter); None when no car belongs there."""
        id_tag = (measurement.extra or {}).get("id_tag") if measurement is not None else None
        found = self.car_at(charger, id_tag if isinstance(id_tag, str) else None)
        if found is not None and found[1] == "id_tag":
            self._tagged[found[0]] = charger
        else:
            for name, where in list(self._tagged.items()):
                if where == charger:
                    del self._tagged[name]    # that transaction ended
        if found is None:
            return None
        car = self._cars[found[0]]
        now = self.clock()
        if measurement is not None:
            plugged = _plugged(measurement)
            if car.kind == "ocpp" and measurement.vehicle_soc_pct is not None:
                car.charger_reading = SocReading(float(measurement.vehicle_soc_pct), now, "ocpp")
            if car.was_plugged and not plugged and car.manual is not None and car.manual.plugged:
                log.info("car %s unplugged: its manual SoC is forgotten", car.name)
                car.manual = None
                self._save_manual()
            elif plugged and not car.was_plugged and car.manual is not None \
                    and car.manual.mark_kwh is None and measurement.lifetime_energy_kwh is not None:
                # entered before plugging in: from now on it counts what is charged, and lasts
                # until the car leaves
                car.manual.plugged, car.manual.mark_kwh = True, float(measurement.lifetime_energy_kwh)
                self._save_manual()
            car.was_plugged = plugged
        car.measurement = measurement
        return self._view(car, charger, found[1], measurement, now)

    def view(self, name: str) -> CarView:
        """A car wherever it is (the UI's list)."""
        car = self._cars[name]
        where = self._tagged.get(name, car.charger)
        how = "id_tag" if name in self._tagged else "config"
        return self._view(car, where, how, car.measurement, self.clock())

    def views(self) -> list[CarView]:
        return [self.view(name) for name in self._cars]

    def _view(self, car: _Car, charger: str | None, how: str, measurement,
              now: float) -> CarView:
        readings = [r for r in (car.source.latest() if car.source else None,
                                car.charger_reading, self._manual_reading(car))
                    if r is not None]
        # the newest; at the same moment an owner's entry wins (it was made knowing the other)
        newest = max(readings, key=lambda r: (r.at_s, r.source == "manual"), default=None)
        problem = car.start_problem or (car.source.problem if car.source else None)
        manual = car.manual.soc_pct if car.manual is not None else None
        if newest is None:
            return CarView(car.name, charger, how, None, None, None, None, True, None, problem,
                           car.capacity_kwh, manual)
        added_kwh = self._charged_since(car, newest, measurement)
        capacity = car.capacity_kwh or self.default_capacity_kwh
        soc = min(100.0, newest.soc_pct + added_kwh * self.charge_efficiency / capacity * 100.0)
        age = newest.age_s(now)
        lasting = newest.source == "manual" and car.manual is not None and car.manual.plugged
        stale = age > car.stale_after_s and not lasting
        return CarView(car.name, charger, how, round(soc, 1), newest.range_km,
                       newest.at_s, round(age, 1), stale, newest.source, problem,
                       car.capacity_kwh, manual, round(added_kwh, 3))

    def _charged_since(self, car: _Car, reading: SocReading, measurement) -> float:
        """kWh the charger has put in since `reading` arrived (0 when unplugged or unknown):
        a reading polled every 10 minutes, or typed in, moves on with the charge between
        readings, and Scheduled mode stops at the target instead of a poll later."""
        counter = getattr(measurement, "lifetime_energy_kwh", None)
        counter = float(counter) if counter is not None and math.isfinite(counter) else None
        mark = car.marks.get(reading.source)
        if mark is None or mark[0] != reading.at_s:
            mark = car.marks[reading.source] = (reading.at_s, counter)   # first seen now
        if measurement is None or not _plugged(measurement) or counter is None \
                or mark[1] is None:
            return 0.0
        return max(0.0, counter - mark[1])

    def _manual_reading(self, car: _Car) -> SocReading | None:
        entry = car.manual
        if entry is None:
            return None
        car.marks["manual"] = (entry.at_s, entry.mark_kwh)
        return SocReading(entry.soc_pct, entry.at_s, "manual")

    # ---- manual entries ------------------------------------------------------------------------

    def set_manual(self, name: str, soc: object, measurement=None) -> CarView:
        """The owner says car `name` is at `soc` % now (SourceError/KeyError when not)."""
        if name not in self._cars:
            raise KeyError(f"no car is called {name!r} (cars: {', '.join(self._cars)})")
        soc_pct = checked_soc(soc, "manual SoC")
        car = self._cars[name]
        plugged = measurement is not None and _plugged(measurement)
        mark = getattr(measurement, "lifetime_energy_kwh", None) if plugged else None
        car.manual = _Manual(soc_pct, self.clock(), plugged,
                             float(mark) if mark is not None and math.isfinite(mark) else None)
        car.was_plugged = plugged or car.was_plugged
        self._save_manual()
        log.info("car %s: SoC set by hand to %.0f %%", name, soc_pct)
        return self.view(name)

    def _load_manual(self) -> None:
        try:
            data = self._file.load()
        except (StateFileError, OSError) as exc:
            log.warning("manual car SoCs not read: %s", exc)
            return
        for name, entry in (data.get("manual") or {}).items():
            if name in self._cars and isinstance(entry, dict):
                try:
                    self._cars[name].manual = _Manual(
                        checked_soc(entry.get("soc_pct"), f"{VEHICLES_FILE} {name}"),
                        float(entry["at_s"]), bool(entry.get("plugged")),
                        None if entry.get("mark_kwh") is None else float(entry["mark_kwh"]))
                    self._cars[name].was_plugged = bool(entry.get("plugged"))
                except (SourceError, KeyError, TypeError, ValueError) as exc:
                    log.warning("%s: the entry of car %s is not used: %s", VEHICLES_FILE,
                                name, exc)

    def _save_manual(self) -> None:
        manual = {car.name: asdict(car.manual) for car in self._cars.values()
                  if car.manual is not None}
        try:
            self._file.save({"manual": manual})
        except (StateFileError, OSError) as exc:
            log.error("could not save the manual car SoC: %s", exc)


def _plugged(measurement) -> bool:
    return EvReadings.from_measurement(measurement).connected
