"""A car that refuses the current it is offered is shown as full: /Status 3 "Charged" with the
reason, the offer unchanged; any current taken, a pause or an unplug ends it."""
from __future__ import annotations

from datetime import datetime, timedelta

from phaeton.chargers.base import VehicleState
from phaeton.control.car_full import FULL_AFTER_S, CarFullDetector
from phaeton.control.controller import CAR_FULL_REASON, ChargeController, ControllerInputs
from phaeton.control.readings import EvReadings, SiteReadings
from phaeton.control.settings import ControlSettings
from phaeton.control.status import ChargerStatus

NOON = datetime(2026, 6, 3, 12, 0)


def ev(state=VehicleState.CONNECTED, amps=0.0) -> EvReadings:
    return EvReadings(vehicle_state=state, current_a=(amps, amps, amps),
                      power_w=(amps * 230.0,) * 3, phases=3)


def test_offered_and_refused_for_two_minutes_is_full():
    detector = CarFullDetector()
    assert not detector.step(0, ev(), 16.0, 6.0)
    assert not detector.step(FULL_AFTER_S - 1, ev(), 16.0, 6.0)
    assert detector.step(FULL_AFTER_S, ev(), 16.0, 6.0)
    # the car takes current again (balancing, preconditioning): no longer full, at once
    assert not detector.step(FULL_AFTER_S + 2, ev(VehicleState.CHARGING, 7.5), 16.0, 6.0)
    assert not detector.step(FULL_AFTER_S + 4, ev(), 16.0, 6.0)      # counting again


def test_standby_draw_and_meter_noise_are_not_taking_current():
    detector = CarFullDetector()
    detector.step(0, ev(VehicleState.CHARGING, 0.4), 16.0, 6.0)       # state C, 0.4 A
    assert detector.step(FULL_AFTER_S, ev(VehicleState.CHARGING, 0.4), 16.0, 6.0)


def test_nothing_offered_is_not_a_refusal():
    detector = CarFullDetector()
    detector.step(0, ev(), 16.0, 6.0)
    assert not detector.step(60, ev(), 0.0, 6.0)          # paused (plan, no sun, stop)
    assert not detector.step(FULL_AFTER_S + 10, ev(), 16.0, 6.0)     # a new refusal starts
    assert not detector.step(FULL_AFTER_S + 60, ev(), 4.0, 6.0)      # below the minimum
    assert not detector.step(10 * FULL_AFTER_S, ev(VehicleState.NO_VEHICLE), 16.0, 6.0)


def test_a_charger_that_says_the_car_finished_is_believed_at_once():
    assert CarFullDetector().step(0, ev(VehicleState.CHARGED), 16.0, 6.0)


def test_without_a_meter_the_chargers_state_decides():
    detector = CarFullDetector()
    plain = EvReadings(vehicle_state=VehicleState.CHARGING)
    detector.step(0, plain, 16.0, 6.0)
    assert not detector.step(FULL_AFTER_S * 2, plain, 16.0, 6.0)
    idle = EvReadings(vehicle_state=VehicleState.CONNECTED)
    detector.step(0, idle, 16.0, 6.0)
    assert detector.step(FULL_AFTER_S, idle, 16.0, 6.0)


def _site() -> SiteReadings:
    return SiteReadings(pv_on_grid_w=(0.0,) * 3, grid_w=(300.0,) * 3,
                        consumption_w=(300.0,) * 3, battery_soc_pct=80.0, battery_power_w=0.0,
                        active_soc_limit_pct=10.0, active_input_source=1, age_s=0.0)


def _manual(car: EvReadings, start_stop: int = 1) -> ControllerInputs:
    return ControllerInputs(mode=0, start_stop=start_stop, set_current_a=16.0, max_current_a=16.0,
                            site=_site(), ev=car)


def test_the_controller_says_charged_keeps_offering_and_clears_when_the_car_takes_current():
    controller = ChargeController(ControlSettings())

    def step(t, car, start_stop=1):
        return controller.step(_manual(car, start_stop), t, NOON + timedelta(seconds=t))
    first = step(0, ev())
    assert first.status == ChargerStatus.CONNECTED and first.current_a == 16.0
    assert not first.car_full
    full = step(FULL_AFTER_S, ev())
    assert full.status == ChargerStatus.CHARGED and full.car_full
    assert full.current_a == 16.0 and full.enabled                    # the offer stays
    assert full.reason == f"manual: SetCurrent 16 A; {CAR_FULL_REASON}"
    back = step(FULL_AFTER_S + 2, ev(VehicleState.CHARGING, 15.8))
    assert back.status == ChargerStatus.CHARGING and not back.car_full
    # a stop by the owner is not a refusal, and a restart counts afresh
    step(FULL_AFTER_S + 4, ev())
    stopped = step(FULL_AFTER_S * 3, ev(), start_stop=0)
    assert stopped.status == ChargerStatus.WAITING_FOR_START and not stopped.car_full
    again = step(FULL_AFTER_S * 3 + 2, ev())
    assert again.status == ChargerStatus.CONNECTED and not again.car_full
