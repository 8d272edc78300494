"""Surplus for the EV: grid export + EV draw + battery (unless it has priority); smoothing."""
from __future__ import annotations

import math

import pytest

from phaeton.chargers.base import VehicleState
from phaeton.control.powerflow import build_snapshot
from phaeton.control.readings import EvReadings, SiteReadings
from phaeton.control.settings import ControlSettings
from phaeton.control.surplus import SurplusSmoother, raw_surplus

SETTINGS = ControlSettings()


def surplus_for(grid_w, ev_w=(0, 0, 0), battery_w=0.0, soc=80.0, soc_limit=10.0, priority=0.0):
    site = SiteReadings(grid_w=grid_w, consumption_w=(500, 500, 500), battery_power_w=battery_w,
                        battery_soc_pct=soc, active_soc_limit_pct=soc_limit)
    ev = EvReadings(vehicle_state=VehicleState.CHARGING, power_w=ev_w)
    return raw_surplus(build_snapshot(site, ev, SETTINGS), site, priority)


def test_export_plus_ev_draw():
    assert surplus_for((-1000, -1000, -1000)).raw_w == 3000
    assert surplus_for((0, 0, 0), ev_w=(2000, 2000, 2000)).raw_w == 6000
    assert surplus_for((500, 500, 500), ev_w=(2000, 2000, 2000)).raw_w == 4500   # importing a bit


def test_battery_charging_counts_unless_it_has_priority():
    assert surplus_for((0, 0, 0), battery_w=3000, soc=80).raw_w == 3000
    prioritised = surplus_for((0, 0, 0), battery_w=3000, soc=30, priority=50)
    assert prioritised.raw_w == 0 and prioritised.battery_has_priority
    assert surplus_for((0, 0, 0), battery_w=3000, soc=15, soc_limit=20).raw_w == 0   # below ESS limit


def test_battery_discharge_for_the_ev_is_not_surplus():
    # The ESS covers 1 kW of the EV from the battery: grid 0, but only 3 kW is solar.
    assert surplus_for((0, 0, 0), ev_w=(1333.3, 1333.3, 1333.4), battery_w=-1000).raw_w == pytest.approx(3000)
    assert surplus_for((0, 0, 0), ev_w=(2000, 2000, 2000), battery_w=-1000, soc=10, priority=50).raw_w == 5000


def test_unknown_grid_gives_no_surplus():
    site = SiteReadings(consumption_w=(1, 1, 1))
    assert raw_surplus(build_snapshot(site, EvReadings(), SETTINGS), site, 0) is None


def test_smoothing_follows_the_time_constant():
    smoother = SurplusSmoother(30)
    assert smoother.update(6000, 0) == 6000
    value = smoother.update(0, 30)                     # one time constant later
    assert value == pytest.approx(6000 * math.exp(-1))
    assert smoother.update(0, 30) == value             # same instant: no change
    assert smoother.update(0, 10) == value             # clock went back: no change
    # Uneven steps: two 15 s steps equal one 30 s step.
    a, b = SurplusSmoother(30), SurplusSmoother(30)
    a.update(1000, 0), b.update(1000, 0)
    a.update(5000, 15)
    assert a.update(5000, 30) == pytest.approx(b.update(5000, 30))


def test_a_short_dip_barely_moves_the_smoothed_value():
    smoother = SurplusSmoother(30)
    for t in range(0, 300, 2):
        smoother.update(6000, t)
    for t in range(300, 310, 2):                        # 10 s cloud
        smoother.update(0, t)
    assert smoother.update(6000, 310) > 4000


def test_no_smoothing_and_bad_values():
    assert SurplusSmoother(0).update(5, 0) == 5
    s = SurplusSmoother(0)
    s.update(5, 0)
    assert s.update(7, 1) == 7
    with pytest.raises(ValueError, match="time constant must be >= 0"):
        SurplusSmoother(-1)
    with pytest.raises(ValueError, match="surplus must be a finite number"):
        SurplusSmoother(10).update(math.nan, 0)
