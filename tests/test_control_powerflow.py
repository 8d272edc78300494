"""Power-flow snapshot: balance, no double-counted EV, fuse headroom; readings normalisation."""
from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from phaeton.chargers.base import VehicleState
from phaeton.control.circuit import Circuit, main_circuit_headroom
from phaeton.control.powerflow import build_snapshot
from phaeton.control.readings import EvReadings, SiteReadings, sum_phases
from phaeton.control.settings import ControlSettings

SETTINGS = ControlSettings()


def fuse_headroom(snapshot, fuse_a, phases):
    """The headroom under the one main fuse, as the controller computes it alone."""
    return main_circuit_headroom(snapshot, Circuit("main", fuse_a)).for_phases(phases)


w = st.floats(min_value=0, max_value=9000, allow_nan=False)
triple = st.tuples(w, w, w)


@hsettings(max_examples=300)
@given(house=triple, ev=triple, pv_on_grid=triple, pv_on_output=triple, pv_dc=st.floats(0, 8000),
       battery=st.floats(-6000, 6000), loss_fraction=st.floats(0, 0.04))
def test_balance_holds_for_consistent_readings(house, ev, pv_on_grid, pv_on_output, pv_dc, battery, loss_fraction):
    """Readings made by the physics (inverter loss included) always balance within tolerance."""
    dc_flow = pv_dc - battery                       # what the inverter converts (+ DC -> AC)
    loss = abs(dc_flow) * loss_fraction
    inverter_ac = dc_flow - loss
    grid = tuple(house[i] + ev[i] - pv_on_grid[i] - pv_on_output[i] - inverter_ac / 3 for i in range(3))
    site = SiteReadings(pv_on_grid_w=pv_on_grid, pv_on_output_w=pv_on_output, pv_dc_w=pv_dc, grid_w=grid,
                        consumption_w=tuple(house[i] + ev[i] for i in range(3)), battery_power_w=battery)
    snap = build_snapshot(site, EvReadings(vehicle_state=VehicleState.CHARGING, power_w=ev), SETTINGS)
    assert snap.house_w == pytest.approx(house, abs=1e-6)
    assert snap.balance_error_w == pytest.approx(loss, abs=1e-6)
    assert snap.balance_ok


def test_inconsistent_readings_are_flagged():
    site = SiteReadings(grid_w=(1000, 1000, 1000), consumption_w=(500, 500, 500), battery_power_w=0)
    snap = build_snapshot(site, EvReadings(), SETTINGS)
    assert snap.balance_error_w == pytest.approx(1500)
    assert not snap.balance_ok
    assert not build_snapshot(SiteReadings(), EvReadings(), SETTINGS).balance_ok   # nothing reported


def test_ev_is_not_counted_twice():
    site = SiteReadings(grid_w=(3980, 3980, 3980), consumption_w=(3980, 3980, 3980))
    ev = EvReadings(vehicle_state=VehicleState.CHARGING, power_w=(3680, 3680, 3680))
    assert build_snapshot(site, ev, SETTINGS).house_w == (300, 300, 300)
    separate = ControlSettings(consumption_includes_ev=False)
    site2 = SiteReadings(grid_w=(3980, 3980, 3980), consumption_w=(300, 300, 300))
    snap = build_snapshot(site2, ev, separate)
    assert snap.house_w == (300, 300, 300) and snap.balance_ok


def test_fuse_headroom_per_phase_with_measured_voltage():
    site = SiteReadings(grid_w=(4000, 1000, -500), consumption_w=(4000, 1000, 300))
    snap = build_snapshot(site, EvReadings(voltage_v=(200, 230, 230)), SETTINGS)
    three = fuse_headroom(snap, 25, 3)
    assert three.current_a == pytest.approx(25 - 4000 / 200) and three.binding_phase == 0
    assert "L1 allows 5.0 A" in three.reason
    assert fuse_headroom(snap, 40, 3).binding_phase == 0


def test_fuse_headroom_counts_the_ev_already_drawing():
    site = SiteReadings(grid_w=(5000, 5000, 5000), consumption_w=(5000, 5000, 5000))
    ev = EvReadings(vehicle_state=VehicleState.CHARGING, current_a=(16, 16, 16))   # 3680 W each at nominal
    head = fuse_headroom(build_snapshot(site, ev, SETTINGS), 25, 3)
    assert head.current_a == pytest.approx(25 - (5000 - 3680) / 230)
    assert not head.house_over_fuse


def test_house_over_fuse_gives_zero_and_says_why():
    site = SiteReadings(grid_w=(300, 300, 6100), consumption_w=(300, 300, 6100))
    snap = build_snapshot(site, EvReadings(), SETTINGS)
    head = fuse_headroom(snap, 25, 3)
    assert (head.current_a, head.house_over_fuse, head.binding_phase) == (0.0, True, 2)
    assert "house load alone on L3 (26.5 A) exceeds the 25 A fuse" in head.reason
    # A single-phase EV on L1 is not limited by L3.
    assert fuse_headroom(snap, 25, 1).current_a == pytest.approx(25 - 300 / 230)


def test_missing_grid_phase_cannot_be_checked():
    site = SiteReadings(grid_w=(300, None, 300), consumption_w=(300, 300, 300))
    head = fuse_headroom(build_snapshot(site, EvReadings(), SETTINGS), 25, 3)
    assert head.current_a is None and "L2 not reported" in head.reason


def test_readings_normalise_invalid_values():
    site = SiteReadings(grid_w=[100, math.nan], pv_dc_w=math.inf, battery_soc_pct="80",
                        consumption_w=(True, 5, None), active_input_source=1.0)
    assert site.grid_w == (100.0, None, None)
    assert site.pv_dc_w is None and site.battery_soc_pct is None
    assert site.consumption_w == (None, 5.0, None)
    assert site.active_input_source == 1
    assert sum_phases((None, None, None)) is None
    assert sum_phases((None, 2.0, 3.0)) == 5.0
    with pytest.raises(ValueError, match="grid_w has 4 phases"):
        SiteReadings(grid_w=(1, 2, 3, 4))
    with pytest.raises(ValueError, match="vehicle_state must be a VehicleState"):
        EvReadings(vehicle_state="charging")


def test_ev_phase_power_estimates():
    assert EvReadings(current_a=(10, None, None)).phase_power_w(230) == (2300, 0, 0)
    assert EvReadings(total_power_w=6900, phases=3).phase_power_w(230) == (2300, 2300, 2300)
    assert EvReadings(total_power_w=3000, phases=1).phase_power_w(230) == (3000, 0, 0)
    assert EvReadings(current_a=(10, 10, 10), voltage_v=(240, 0, None)).phase_power_w(230) == (2400, 2300, 2300)
    assert EvReadings(total_power_w=6900).total_w(230) == 6900
