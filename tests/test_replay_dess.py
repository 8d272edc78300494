"""The replay's model of Victron's execution (phaeton/replay/house.py): plain ESS, hub4 holding
a setpoint, and the Dynamic ESS delegate's decisions as dbus-systemcalc-py v2.256
(delegates/dynamicess.py) takes them for phaeton's windows. Each case names the delegate's
reactive strategy it follows."""
from __future__ import annotations

import pytest

from phaeton.replay.house import (
    BAT2GRID,
    GRID2BAT,
    STRATEGY_SELF_CONSUME,
    STRATEGY_TARGET_SOC,
    Battery,
    DessDelegate,
    Window,
    hold_setpoint,
    self_consumption,
)

BATTERY = Battery(capacity_kwh=10.0, soc_min=0.1, soc_max=1.0, max_charge_kw=5.0,
                  max_discharge_kw=5.0, eff_in=0.95, eff_out=0.95)
SLOT = 900.0
HOUR = 3600.0


def delegate() -> DessDelegate:
    return DessDelegate(BATTERY, efficiency_pct=90.25)


def window(target: float, *, start: float = 0.0, duration: float = HOUR,
           strategy: int = STRATEGY_TARGET_SOC, restrictions: int = 0,
           feedin: bool = True) -> Window:
    return Window(start, duration, target, strategy, restrictions, feedin)


def run_hour(d: DessDelegate, windows, stored: float, load_kwh: float, pv_kwh: float):
    """Four quarter hours of a house with constant load and PV (kWh per quarter hour)."""
    total_import = total_export = 0.0
    for q in range(4):
        stored, flow = d.run_slot(windows, q * SLOT, SLOT, stored, load_kwh, pv_kwh)
        total_import += flow.grid_import_kwh
        total_export += flow.grid_export_kwh
    return stored, total_import, total_export


def test_plain_ess_stores_the_surplus_and_covers_the_deficit_down_to_the_minimum():
    stored, flow = self_consumption(BATTERY, 5.0, 0.2, 1.2, 0.25)
    assert flow.charge_kwh == pytest.approx(1.0)
    assert flow.grid_import_kwh == flow.grid_export_kwh == 0.0
    assert stored == pytest.approx(5.95)
    stored, flow = self_consumption(BATTERY, 1.05, 1.0, 0.0, 0.25)   # 0.05 kWh above the floor
    assert stored == pytest.approx(1.0)
    assert flow.discharge_kwh == pytest.approx(0.05 * 0.95)
    assert flow.grid_import_kwh == pytest.approx(1.0 - 0.05 * 0.95)


def test_hub4_holds_the_setpoint_with_the_battery_taking_the_rest():
    # the plan wanted 1 kWh from the grid this quarter hour; the house only needs 0.3
    stored, flow = hold_setpoint(BATTERY, 5.0, 0.5, 0.2, 1.0, 0.25)
    assert flow.grid_import_kwh == pytest.approx(1.0)
    assert flow.charge_kwh == pytest.approx(0.7)
    # the battery's power limit: 5 kW for a quarter hour is 1.25 kWh; the grid takes the rest
    stored, flow = hold_setpoint(BATTERY, 5.0, 0.0, 0.0, 2.0, 0.25)
    assert flow.charge_kwh == pytest.approx(1.25)
    assert flow.grid_import_kwh == pytest.approx(1.25)


def test_a_target_above_the_soc_charges_from_the_grid_at_the_paced_rate():
    """SCHEDULED_CHARGE_ALLOW_GRID: (target - SoC) of the battery over the time left."""
    d = delegate()
    stored, imported, exported = run_hour(d, [window(60.0)], 5.0, 0.1, 0.0)
    assert d.last_state == "charge_allow_grid"
    assert stored / BATTERY.capacity_kwh * 100 == pytest.approx(60.0, abs=0.3)
    # 1 kWh stored needs 1/0.95 from the grid, plus the house's 0.4
    assert imported == pytest.approx(1.0 / 0.95 + 0.4, abs=0.05)
    assert exported == 0.0


def test_grid_to_battery_restricted_with_no_sun_idles_below_the_target():
    """IDLE_NO_OPPORTUNITY: the target cannot be reached without the grid."""
    d = delegate()
    stored, imported, _ = run_hour(d, [window(60.0, restrictions=GRID2BAT)], 5.0, 0.1, 0.0)
    assert d.last_state == "idle_no_opportunity"
    assert stored == pytest.approx(5.0)
    assert imported == pytest.approx(0.4)


def test_grid_to_battery_restricted_with_sun_charges_only_the_surplus():
    """SELFCONSUME_NO_GRID: only PV goes in while the paced rate is above what PV gives."""
    d = delegate()
    stored, imported, exported = run_hour(d, [window(90.0, restrictions=GRID2BAT)], 5.0,
                                          0.1, 0.2)
    assert d.last_state == "selfconsume_no_grid"
    assert imported == 0.0 and exported == 0.0
    assert stored == pytest.approx(5.0 + 4 * 0.1 * 0.95)


def test_a_target_below_the_soc_discharges_into_the_grid():
    """SCHEDULED_DISCHARGE: export allowed and no BAT2GRID restriction."""
    d = delegate()
    stored, imported, exported = run_hour(d, [window(40.0)], 6.0, 0.1, 0.0)
    assert d.last_state in ("scheduled_discharge", "idle_maintain_targetsoc")
    assert stored / BATTERY.capacity_kwh * 100 == pytest.approx(40.0, abs=0.3)
    assert exported > 1.0          # 2 kWh out of storage less losses, less the house's 0.4


def test_battery_to_grid_restricted_only_covers_the_house():
    """SELFCONSUME_ACCEPT_DISCHARGE: with BAT2GRID the battery drives the loads, no export."""
    d = delegate()
    stored, imported, exported = run_hour(d, [window(40.0, restrictions=BAT2GRID)], 6.0,
                                          0.3, 0.0)
    assert d.last_state == "selfconsume_accept_discharge"
    assert exported == 0.0 and imported == 0.0
    assert stored == pytest.approx(6.0 - 1.2 / 0.95)


def test_at_the_target_with_sun_the_battery_idles_and_the_pv_goes_out():
    """IDLE_SCHEDULED_FEEDIN: the plan wanted the PV sold, not stored."""
    d = delegate()
    stored, imported, exported = run_hour(d, [window(50.0)], 5.0, 0.1, 0.5)
    assert d.last_state == "idle_scheduled_feedin"
    assert stored == pytest.approx(5.0)
    assert exported == pytest.approx(1.6)


def test_at_the_target_without_sun_the_grid_feeds_the_house():
    """IDLE_MAINTAIN_TARGETSOC: the battery holds its energy for later."""
    d = delegate()
    stored, imported, exported = run_hour(d, [window(50.0)], 5.0, 0.3, 0.0)
    assert d.last_state == "idle_maintain_targetsoc"
    assert stored == pytest.approx(5.0)
    assert imported == pytest.approx(1.2)


def test_the_charge_hysteresis_keeps_an_idle_battery_from_topping_up_a_small_drop():
    """After idling, a charge starts only when the SoC is a full hysteresis (1 % of a 10 kWh
    battery) below the target."""
    d = delegate()
    run_hour(d, [window(50.0)], 5.0, 0.3, 0.0)
    stored, imported, _ = run_hour(d, [window(50.5, start=0.0)], 5.0, 0.3, 0.0)
    assert d.last_state == "idle_maintain_targetsoc"
    assert stored == pytest.approx(5.0)
    stored, imported, _ = run_hour(d, [window(52.0)], 5.0, 0.3, 0.0)
    assert d.last_state == "charge_allow_grid"
    assert stored > 5.15


def test_a_self_consumption_window_and_no_window_are_plain_ess():
    """SCHEDULED_SELFCONSUME, and NO_WINDOW's fall-back to plain ESS."""
    for windows in ([window(80.0, strategy=STRATEGY_SELF_CONSUME)], []):
        d = delegate()
        stored, imported, exported = run_hour(d, windows, 5.0, 0.1, 0.5)
        assert imported == exported == 0.0
        assert stored == pytest.approx(5.0 + 1.6 * 0.95)
