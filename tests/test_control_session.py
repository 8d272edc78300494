"""SessionTracker: plug-in to unplug, energy from the lifetime counter, restore, solar share."""
from __future__ import annotations

import json

import pytest

from phaeton.chargers.base import VehicleState
from phaeton.control.powerflow import build_snapshot
from phaeton.control.readings import EvReadings, SiteReadings
from phaeton.control.session import SessionEnded, SessionStarted, SessionTracker
from phaeton.control.settings import ControlSettings

SETTINGS = ControlSettings()
T0 = 1_780_000_000.0


def ev(counter, power_w=0.0, state=None):
    state = state or (VehicleState.CHARGING if power_w > 0 else VehicleState.CONNECTED)
    return EvReadings(vehicle_state=state, total_power_w=power_w, power_w=(power_w / 3,) * 3,
                      lifetime_energy_kwh=counter)


def snapshot(ev_readings, pv_w=0.0, house_w=600.0):
    per = ev_readings.power_w
    site = SiteReadings(pv_on_grid_w=(pv_w / 3,) * 3,
                        grid_w=tuple(house_w / 3 + (per[i] or 0) - pv_w / 3 for i in range(3)),
                        consumption_w=tuple(house_w / 3 + (per[i] or 0) for i in range(3)))
    return build_snapshot(site, ev_readings, SETTINGS)


def charge(tracker, counter, start_s, steps, power_w=7200.0, pv_w=0.0, dt_s=60.0):
    """Charge at power_w for `steps` steps; returns the counter and time after."""
    t = start_s
    for _ in range(steps):
        t += dt_s
        counter += power_w * dt_s / 3.6e6
        reading = ev(counter, power_w)
        tracker.update(reading, snapshot(reading, pv_w), t)
    return counter, t


def test_session_from_plug_in_to_unplug():
    tracker = SessionTracker(price_per_kwh=0.25, currency="EUR")
    assert tracker.update(ev(100.0, state=VehicleState.NO_VEHICLE), None, T0) == []
    started = tracker.update(ev(100.0), None, T0 + 10)
    assert started == [SessionStarted(started[0].session_id, T0 + 10, 100.0)]
    counter, t = charge(tracker, 100.0, T0 + 10, 60)                # 1 h at 7.2 kW
    assert tracker.energy_kwh == pytest.approx(7.2)
    assert tracker.duration_s(t) == pytest.approx(3600)
    ended = tracker.update(ev(counter, state=VehicleState.NO_VEHICLE), None, t + 30)
    assert len(ended) == 1 and isinstance(ended[0], SessionEnded)
    record = ended[0]
    assert record.energy_kwh == pytest.approx(7.2)
    assert record.duration_s == pytest.approx(3630)
    assert record.peak_power_w == pytest.approx(7200)
    assert record.cost == pytest.approx(1.8)
    assert record.currency == "EUR" and record.solar_share == 0
    assert not tracker.active


def test_solar_share_is_ev_energy_covered_by_pv_after_the_house():
    tracker = SessionTracker()
    tracker.update(ev(0.0), None, T0)
    counter, t = charge(tracker, 0.0, T0, 30, power_w=6000, pv_w=6600)     # PV covers house 600 + EV
    counter, t = charge(tracker, counter, t, 30, power_w=6000, pv_w=3600)   # half of the EV is solar
    ended = tracker.update(ev(counter, state=VehicleState.NO_VEHICLE), None, t)[0]
    assert ended.energy_kwh == pytest.approx(6.0)
    assert ended.solar_energy_kwh == pytest.approx(4.5)
    assert ended.solar_share == pytest.approx(0.75)


def test_counter_reset_does_not_lose_or_invent_energy():
    tracker = SessionTracker()
    tracker.update(ev(5000.0), None, T0)
    counter, t = charge(tracker, 5000.0, T0, 10)                 # 1.2 kWh
    # The charger is replaced / reset: its counter restarts near 0.
    counter, t = charge(tracker, 0.0, t, 10)                      # first step re-bases, 9 steps count
    assert tracker.energy_kwh == pytest.approx(1.2 + 9 * 0.12)
    assert tracker.energy_kwh > 0


def test_missing_counter_is_bridged_and_replaced_by_the_counter():
    tracker = SessionTracker()
    tracker.update(ev(10.0), None, T0)
    counter, t = charge(tracker, 10.0, T0, 5)                    # 0.6 kWh
    for _ in range(5):                                           # counter missing for 5 min, power known
        t += 60
        counter += 0.12
        reading = ev(None, 7200)
        tracker.update(reading, snapshot(reading), t)
    assert tracker.energy_kwh == pytest.approx(1.2)               # estimated from power
    counter += 0.3                                                # the car drew more than we saw
    t += 60
    reading = ev(counter, 0.0)
    tracker.update(reading, snapshot(reading), t)
    assert tracker.energy_kwh == pytest.approx(1.5)               # the counter's word replaces the estimate


def test_absurd_counter_jump_is_capped():
    tracker = SessionTracker()
    tracker.update(ev(10.0), None, T0)
    tracker.update(ev(1_000_000.0, 7000), None, T0 + 60)          # corrupt value
    assert tracker.energy_kwh <= 50_000 * 60 / 3.6e6 + 1e-9


def test_a_confirmed_new_counter_level_is_a_new_base_not_energy():
    tracker = SessionTracker()
    tracker.update(ev(10.0), None, T0)
    counter, t = charge(tracker, 10.0, T0, 10)                    # 1.2 kWh
    tracker.forget_counter()                                      # meter replaced: now 500 kWh
    tracker.update(ev(500.0, 7200), None, t + 60)
    assert tracker.energy_kwh == pytest.approx(1.2)
    charge(tracker, 500.0, t + 60, 5)                             # counts on from the new level
    assert tracker.energy_kwh == pytest.approx(1.8)
    SessionTracker().forget_counter()                             # no session: nothing to do


def test_restore_continues_the_same_session_after_a_restart():
    tracker = SessionTracker(price_per_kwh=0.3)
    started = tracker.update(ev(100.0), None, T0)[0]
    counter, t = charge(tracker, 100.0, T0, 30)                   # 3.6 kWh
    saved = json.loads(json.dumps(tracker.running_record()))      # the service persists it as JSON
    # Service down for 10 minutes while the charger kept charging at 7.2 kW.
    counter += 1.2
    t += 600
    restarted = SessionTracker(price_per_kwh=0.3)
    restarted.restore(saved)
    assert restarted.active and restarted.energy_kwh == pytest.approx(3.6)
    assert restarted.update(ev(counter, 7200), None, t) == []     # same session, no new start
    ended = restarted.update(ev(counter, state=VehicleState.NO_VEHICLE), None, t + 60)[0]
    assert ended.session_id == started.session_id
    assert ended.energy_kwh == pytest.approx(4.8)
    assert ended.duration_s == pytest.approx(30 * 60 + 600 + 60)


@pytest.mark.parametrize("change,words", [
    ({"version": 9}, "version 9"),
    ({"energy_kwh": -1}, "'energy_kwh' must be a finite number >= 0"),
    ({"started_at_s": "yesterday"}, "'started_at_s' must be a finite number"),
    ({"session_id": ""}, "'session_id' must be a non-empty string"),
    ({"last_counter_kwh": "x"}, "'last_counter_kwh' must be a number or null"),
])
def test_bad_saved_record_is_refused_and_changes_nothing(change, words):
    tracker = SessionTracker()
    tracker.update(ev(1.0), None, T0)
    record = {**tracker.running_record(), **change}
    fresh = SessionTracker()
    with pytest.raises(ValueError) as info:
        fresh.restore(record)
    assert words in str(info.value)
    assert not fresh.active
    with pytest.raises(ValueError, match="must be a mapping"):
        fresh.restore([1, 2])


def test_error_state_does_not_end_the_session_and_price_is_checked():
    tracker = SessionTracker()
    tracker.update(ev(1.0), None, T0)
    assert tracker.update(EvReadings(vehicle_state=VehicleState.ERROR, lifetime_energy_kwh=1.0), None, T0 + 5) == []
    assert tracker.active
    with pytest.raises(ValueError, match="price_per_kwh must be a number >= 0"):
        SessionTracker(price_per_kwh=-0.1)


# ---- cost accumulates price x kWh as the energy arrives ---------------------------------------

def test_cost_accumulates_each_kwh_at_the_price_in_force_when_it_arrived():
    tracker = SessionTracker(price_per_kwh=0.10)
    tracker.update(ev(0.0), None, T0)
    counter, t = charge(tracker, 0.0, T0, 30)                     # 3.6 kWh at 0.10
    assert tracker.cost == pytest.approx(0.36)
    tracker.price_per_kwh = 0.30                                  # the next slot's price
    counter, t = charge(tracker, counter, t, 20)                  # 2.4 kWh at 0.30
    assert tracker.cost == pytest.approx(3.6 * 0.10 + 2.4 * 0.30)
    ended = tracker.update(ev(counter, state=VehicleState.NO_VEHICLE), None, t + 10)[0]
    assert ended.energy_kwh == pytest.approx(6.0)
    assert ended.cost == pytest.approx(1.08)                      # not 6.0 x 0.30 = 1.80
    assert tracker.cost == 0.0                                    # idle


def test_a_restored_session_keeps_its_cost_and_goes_on_accumulating():
    tracker = SessionTracker(price_per_kwh=0.10)
    tracker.update(ev(50.0), None, T0)
    counter, t = charge(tracker, 50.0, T0, 30)                    # 3.6 kWh at 0.10
    saved = json.loads(json.dumps(tracker.running_record()))
    restarted = SessionTracker(price_per_kwh=0.30)                # the price changed meanwhile
    restarted.restore(saved)
    assert restarted.cost == pytest.approx(0.36)
    counter, t = charge(restarted, counter, t, 10)                # 1.2 kWh at 0.30
    ended = restarted.update(ev(counter, state=VehicleState.NO_VEHICLE), None, t)[0]
    assert ended.cost == pytest.approx(0.36 + 0.36)


def test_a_record_saved_before_cost_was_accumulated_is_valued_at_the_price():
    tracker = SessionTracker(price_per_kwh=0.25)
    tracker.update(ev(0.0), None, T0)
    charge(tracker, 0.0, T0, 10)                                  # 1.2 kWh
    old = {k: v for k, v in tracker.running_record().items() if k not in ("cost", "gap_cost")}
    restored = SessionTracker(price_per_kwh=0.25)
    restored.restore(old)
    assert restored.cost == pytest.approx(0.30)
    with pytest.raises(ValueError, match="'cost' must be a finite number"):
        SessionTracker().restore({**tracker.running_record(), "cost": float("nan")})


def test_energy_bridged_while_the_counter_is_missing_keeps_the_gap_prices():
    """The counter's word replaces the estimate; its energy is valued at the gap's mean
    price, and what comes after at the price then."""
    tracker = SessionTracker(price_per_kwh=0.10)
    tracker.update(ev(10.0), None, T0)
    counter, t = charge(tracker, 10.0, T0, 5)                     # 0.6 kWh at 0.10
    for price in (0.20, 0.40):                                    # counter missing: 2 steps
        tracker.price_per_kwh = price
        t += 60
        counter += 0.12
        reading = ev(None, 7200)
        tracker.update(reading, snapshot(reading), t)
    assert tracker.cost == pytest.approx(0.06 + 0.12 * 0.20 + 0.12 * 0.40)
    tracker.price_per_kwh = 1.00
    counter += 0.06                                               # the car drew a bit more
    t += 60
    reading = ev(counter, 0.0)
    tracker.update(reading, snapshot(reading), t)                 # 0.30 kWh at the gap's 0.30
    assert tracker.energy_kwh == pytest.approx(0.9)
    assert tracker.cost == pytest.approx(0.06 + 0.30 * 0.30)
    with pytest.raises(ValueError, match="price_per_kwh must be a number >= 0"):
        tracker.price_per_kwh = float("nan")
