"""Which car is at which charger and what SoC phaeton plans and stops with (the garage), and
Scheduled mode stopping at the target SoC (the controller, pure)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import pytest

from phaeton.chargers.base import ChargerMeasurement, VehicleState
from phaeton.control.controller import ChargeController, ControllerInputs, Mode
from phaeton.control.readings import EvReadings, SiteReadings
from phaeton.control.settings import ControlSettings
from phaeton.control.status import ChargerStatus
from phaeton.vehicles.base import SocReading, SourceError
from phaeton.vehicles.garage import Garage


class Clock:
    def __init__(self, now=1_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


@dataclass
class StubSource:
    """A source whose reading the test sets (the real sources have their own tests)."""
    reading: SocReading | None = None
    problem: str | None = None
    kind: str = "mqtt"
    started: bool = False

    async def start(self):
        self.started = True

    async def stop(self):
        self.started = False

    def latest(self):
        return self.reading


def measured(state=VehicleState.CHARGING, *, soc=None, kwh=100.0, tag=None):
    return ChargerMeasurement(vehicle_state=state, lifetime_energy_kwh=kwh, vehicle_soc_pct=soc,
                              extra={"id_tag": tag} if tag else {})


def car(name, *, charger="", tags=(), source="mqtt", capacity=0, stale_after_s=3600):
    return {"name": name, "charger": charger, "id_tags": list(tags), "capacity_kwh": capacity,
            "stale_after_s": stale_after_s, "soc": {"source": source}}


def garage_of(tmp_path, cars, chargers=("left", "right"), clock=None, sources=None):
    sources = sources if sources is not None else {}

    def make(cfg, _dir, _clock):
        return sources.setdefault(cfg["name"], StubSource()) \
            if cfg["soc"]["source"] == "mqtt" else None
    return Garage(cars, list(chargers), tmp_path, clock=clock or Clock(), make_source=make,
                  charge_efficiency=0.9, default_capacity_kwh=50.0)


def test_the_id_tag_picks_the_car_else_the_charger_it_is_configured_for(tmp_path):
    garage = garage_of(tmp_path, [car("tesla", charger="left", tags=["04AA"]),
                                  car("zoe", charger="right", tags=["04BB"])])
    assert garage.observe("left", measured()).name == "tesla"
    assert garage.observe("right", measured()).name == "zoe"
    # the Zoe's card starts a transaction at the left charger: the Zoe is there now
    view = garage.observe("left", measured(tag="04bb"))     # tags match without case
    assert (view.name, view.identified_by, view.charger) == ("zoe", "id_tag", "left")
    assert garage.observe("right", measured()) is None      # not at its usual place
    # the transaction ends: each car back to where it is configured
    assert garage.observe("left", measured(VehicleState.NO_VEHICLE)).name == "tesla"
    assert garage.observe("right", measured()).name == "zoe"


def test_the_newest_reading_wins_and_an_old_one_is_stale(tmp_path):
    clock = Clock()
    sources = {}
    garage = garage_of(tmp_path, [car("tesla", charger="left", stale_after_s=600)],
                       clock=clock, sources=sources)
    view = garage.observe("left", measured())
    assert view.soc_pct is None and view.stale and view.usable_soc_pct is None
    sources["tesla"].reading = SocReading(61.0, clock.now - 30, "mqtt", 250.0)
    view = garage.observe("left", measured())
    assert (view.soc_pct, view.range_km, view.age_s, view.stale) == (61.0, 250.0, 30.0, False)
    assert view.usable_soc_pct == 61.0
    clock.now += 600
    view = garage.observe("left", measured())
    assert view.stale and view.soc_pct == 61.0 and view.usable_soc_pct is None
    sources["tesla"].problem = "Tesla: the car is asleep"
    assert garage.observe("left", measured()).problem == "Tesla: the car is asleep"


def test_manual_soc_counts_the_energy_charged_since_and_ends_with_unplugging(tmp_path):
    clock = Clock()
    garage = garage_of(tmp_path, [car("zoe", charger="left", source="manual", capacity=45)],
                       clock=clock)
    garage.observe("left", measured(kwh=100.0))
    view = garage.set_manual("zoe", 40, measured(kwh=100.0))
    assert (view.soc_pct, view.source, view.manual_soc_pct) == (40.0, "manual", 40.0)
    clock.now += 7200                         # hours later: still valid while plugged in
    view = garage.observe("left", measured(kwh=110.0))
    assert view.soc_pct == pytest.approx(40 + 10 * 0.9 / 45 * 100, abs=0.1)   # 60 %
    assert not view.stale

    # a restart keeps the entry (and its energy mark)
    again = garage_of(tmp_path, [car("zoe", charger="left", source="manual", capacity=45)],
                      clock=clock)
    assert again.observe("left", measured(kwh=110.0)).soc_pct == pytest.approx(60.0, abs=0.1)
    assert json.loads((tmp_path / "vehicles.json").read_text())["manual"]["zoe"]["soc_pct"] == 40

    # unplugged: the car may be driven, the entry is gone
    view = again.observe("left", measured(VehicleState.NO_VEHICLE, kwh=110.0))
    assert view.soc_pct is None and view.manual_soc_pct is None


def test_manual_soc_entered_before_plugging_in_lasts_its_staleness(tmp_path):
    clock = Clock()
    garage = garage_of(tmp_path, [car("zoe", charger="left", source="manual",
                                      stale_after_s=1800)], clock=clock)
    garage.observe("left", measured(VehicleState.NO_VEHICLE))
    garage.set_manual("zoe", 35)
    clock.now += 1200
    assert garage.observe("left", measured(VehicleState.NO_VEHICLE)).usable_soc_pct == 35.0
    clock.now += 1200
    assert garage.observe("left", measured(VehicleState.NO_VEHICLE)).stale


def test_manual_soc_entered_before_plugging_in_counts_from_the_plug_in(tmp_path):
    clock = Clock()
    garage = garage_of(tmp_path, [car("zoe", charger="left", source="manual", capacity=45,
                                      stale_after_s=1800)], clock=clock)
    garage.observe("left", measured(VehicleState.NO_VEHICLE, kwh=200.0))
    garage.set_manual("zoe", 35)
    clock.now += 300
    assert garage.observe("left", measured(VehicleState.CONNECTED, kwh=200.0)).soc_pct == 35.0
    clock.now += 7200                          # long past stale_after_s: plugged in, it lasts
    view = garage.observe("left", measured(kwh=205.0))
    assert view.soc_pct == pytest.approx(35 + 5 * 0.9 / 45 * 100, abs=0.1) and not view.stale


def test_a_polled_reading_moves_on_with_the_energy_charged_since_it_arrived(tmp_path):
    clock = Clock()
    sources = {}
    garage = garage_of(tmp_path, [car("tesla", charger="left", capacity=60)], clock=clock,
                       sources=sources)
    sources["tesla"].reading = SocReading(70.0, clock.now, "mqtt")
    assert garage.observe("left", measured(kwh=300.0)).soc_pct == 70.0
    clock.now += 300                           # 5 minutes at 11 kW, no new poll yet
    view = garage.observe("left", measured(kwh=300.9))
    assert view.soc_pct == pytest.approx(70 + 0.9 * 0.9 / 60 * 100, abs=0.05)
    assert view.charged_since_kwh == pytest.approx(0.9)
    sources["tesla"].reading = SocReading(71.5, clock.now, "mqtt")          # the next poll
    view = garage.observe("left", measured(kwh=300.9))
    assert (view.soc_pct, view.charged_since_kwh) == (71.5, 0.0)
    # unplugged, nothing is added
    clock.now += 60
    assert garage.observe("left", measured(VehicleState.NO_VEHICLE, kwh=302.0)).soc_pct == 71.5


def test_bad_manual_entries_are_refused_with_a_reason_and_change_nothing(tmp_path):
    garage = garage_of(tmp_path, [car("zoe", source="manual")])
    garage.set_manual("zoe", 50)
    for bad, words in ((101, "not a state of charge"), (float("nan"), "not a state"),
                       ("full", "expected a number"), (True, "expected a number")):
        with pytest.raises(SourceError, match=words):
            garage.set_manual("zoe", bad)
    with pytest.raises(KeyError, match="no car is called 'golf'"):
        garage.set_manual("golf", 50)
    assert garage.view("zoe").soc_pct == 50.0


def test_a_corrupt_vehicles_file_is_set_aside_and_the_cars_still_work(tmp_path):
    (tmp_path / "vehicles.json").write_text("{not json")
    garage = garage_of(tmp_path, [car("zoe", source="manual")])
    assert garage.view("zoe").soc_pct is None
    assert list(tmp_path.glob("vehicles.json.corrupt-*"))
    garage.set_manual("zoe", 20)
    assert json.loads((tmp_path / "vehicles.json").read_text())["manual"]["zoe"]["soc_pct"] == 20


def test_without_cars_each_charger_has_one_that_reports_through_the_charger(tmp_path):
    garage = garage_of(tmp_path, [], chargers=("0",))
    view = garage.observe("0", measured(soc=47.0))
    assert (view.name, view.soc_pct, view.source) == ("car", 47.0, "ocpp")
    garage.set_manual("car", 50)               # the owner can still type it in
    assert garage.observe("0", measured()).soc_pct == 50.0
    (tmp_path / "two").mkdir()
    two = garage_of(tmp_path / "two", [], chargers=("a", "b"))
    assert two.observe("b", measured()).name == "car_b"


async def test_a_source_that_cannot_be_built_leaves_the_other_cars(tmp_path):
    def make(cfg, _d, _c):
        if cfg["name"] == "broken":
            raise ValueError("no such broker")
        return StubSource(SocReading(70.0, 1_000_000.0, "mqtt"))
    garage = Garage([car("broken", charger="left"), car("fine", charger="right")],
                    ["left", "right"], tmp_path, clock=Clock(), make_source=make)
    await garage.start()
    assert "no such broker" in garage.observe("left", measured()).problem
    assert garage.observe("right", measured()).soc_pct == 70.0
    await garage.stop()


# ---- Scheduled mode stops at the target ----------------------------------------------------

def _site():
    return SiteReadings(pv_on_grid_w=(0.0,) * 3, grid_w=(1000.0,) * 3,
                        consumption_w=(1000.0,) * 3, battery_soc_pct=50.0, battery_power_w=0.0,
                        active_soc_limit_pct=10.0, active_input_source=1, age_s=0.0)


@pytest.mark.parametrize("soc, target, stops", [(80.0, 80.0, True), (81.5, 80.0, True),
                                                (79.9, 80.0, False), (None, 80.0, False),
                                                (90.0, None, False)])
def test_scheduled_mode_stops_at_the_target_soc(soc, target, stops):
    controller = ChargeController(ControlSettings(max_current_a=16.0))
    inputs = ControllerInputs(mode=Mode.SCHEDULED, start_stop=1, set_current_a=16.0,
                              max_current_a=16.0, site=_site(),
                              ev=EvReadings(vehicle_state=VehicleState.CONNECTED),
                              plan_current_a=16.0, vehicle_soc_pct=soc, target_soc_pct=target)
    decision = controller.step(inputs, 100.0, datetime(2026, 12, 7, 2, 0))
    if stops:
        assert decision.current_a == 0.0 and decision.bound_by == "target_soc"
        assert decision.status == ChargerStatus.CHARGED
        assert f"target {target:.0f} % is reached" in decision.reason
    else:
        assert decision.current_a == 16.0 and decision.bound_by != "target_soc"


def test_auto_and_manual_do_not_stop_at_the_target():
    controller = ChargeController(ControlSettings(max_current_a=16.0))
    inputs = ControllerInputs(mode=Mode.MANUAL, start_stop=1, set_current_a=10.0,
                              max_current_a=16.0, site=_site(),
                              ev=EvReadings(vehicle_state=VehicleState.CONNECTED),
                              vehicle_soc_pct=95.0, target_soc_pct=80.0)
    assert controller.step(inputs, 100.0, datetime(2026, 12, 7, 2, 0)).current_a == 10.0


def test_a_soc_of_the_wrong_kind_is_refused_by_the_controller_inputs():
    with pytest.raises(ValueError, match="vehicle_soc_pct"):
        ControllerInputs(mode=Mode.SCHEDULED, start_stop=1, set_current_a=6, max_current_a=16,
                         vehicle_soc_pct=float("nan"))
