"""Behaviour of the energy planner on hand-made days a user would recognise."""
from __future__ import annotations

import numpy as np
import pytest

from phaeton.planning.baseline import do_nothing, self_consumption
from phaeton.planning.model import BatterySpec, EVDemand, GridSpec, PlanProblem
from phaeton.planning.optimizer import plan

DAY0 = 1_735_689_600  # 2025-01-01 00:00 UTC


def day(slots: int = 96, *, battery: BatterySpec | None = None, ev: EVDemand | None = None,
        grid: GridSpec | None = None, pv_peak_kwh: float = 1.5, load_kwh: float = 0.15,
        import_price=None, export_price=None) -> PlanProblem:
    """A quarter-hourly day: PV bell at noon, cheap night, expensive 17-21 h peak."""
    hour = np.arange(slots) * 0.25
    pv = pv_peak_kwh * np.clip(np.sin((hour - 6.0) / 12.0 * np.pi), 0.0, None)
    if import_price is None:
        import_price = np.where((hour >= 17) & (hour < 21), 0.45, np.where(hour < 6, 0.18, 0.30))
    if export_price is None:
        export_price = np.full(slots, 0.07)
    return PlanProblem(
        slot_start_s=DAY0 + 900.0 * np.arange(slots),
        import_price_eur_per_kwh=np.asarray(import_price, float),
        export_price_eur_per_kwh=np.asarray(export_price, float),
        load_kwh=np.full(slots, load_kwh), pv_kwh=pv, battery=battery,
        grid=grid or GridSpec(import_limit_kw=17.0, export_limit_kw=10.0), ev=ev)


def battery(**kw) -> BatterySpec:
    base = dict(capacity_kwh=10.0, soc_now=0.2, soc_min=0.1, soc_max=0.9, max_charge_kw=4.0,
                max_discharge_kw=4.0, charge_efficiency=0.95, discharge_efficiency=0.95,
                degradation_eur_per_kwh=0.01, terminal_value_eur_per_kwh=0.2)
    base.update(kw)
    return BatterySpec(**base)


def evening_ev(slots: int = 96, need: float = 20.0, **kw) -> EVDemand:
    mask = np.zeros(slots, dtype=bool)
    mask[:28] = True  # plugged in from midnight until it leaves at 07:00
    base = dict(plugged_mask=mask, departure_slot=28, energy_needed_kwh=need, max_kw=11.0,
                charge_efficiency=0.9)
    base.update(kw)
    return EVDemand(**base)


def test_stores_pv_surplus_and_discharges_at_the_evening_peak():
    p = plan(day(battery=battery()))
    hour = np.arange(96) * 0.25
    midday = (hour >= 9) & (hour < 17)
    peak = (hour >= 17) & (hour < 21)
    assert p.battery_charge_kwh[midday].sum() > 3.0
    assert p.battery_discharge_kwh[peak].sum() > 1.5
    assert any("store PV surplus" in r for r in np.asarray(p.reasons)[midday])
    assert any("discharge at peak price" in r for r in np.asarray(p.reasons)[peak])
    assert p.cost_eur < self_consumption(day(battery=battery())).cost_eur
    assert p.warnings == []


def test_soc_and_power_limits_hold_and_battery_never_charges_and_discharges_at_once():
    spec = battery(max_charge_kw=2.0, max_discharge_kw=1.0)
    p = plan(day(battery=spec, pv_peak_kwh=3.0))
    assert p.soc.min() >= 0.1 - 1e-9 and p.soc.max() <= 0.9 + 1e-9
    assert p.battery_charge_kwh.max() <= 2.0 * 0.25 + 1e-9
    assert p.battery_discharge_kwh.max() <= 1.0 * 0.25 + 1e-9
    assert np.all(p.battery_charge_kwh * p.battery_discharge_kwh == 0)
    assert p.soc[0] == pytest.approx(0.2)
    # the SoC trajectory is what the flows and efficiencies imply
    change = p.battery_charge_kwh * 0.95 - p.battery_discharge_kwh / 0.95
    assert np.allclose(np.diff(p.soc_kwh), change)


def test_energy_balance_holds_in_every_slot():
    prob = day(battery=battery(), ev=evening_ev())
    p = plan(prob)
    supply = p.grid_import_kwh - p.grid_export_kwh + prob.pv_kwh - p.pv_curtailed_kwh
    demand = prob.load_kwh + p.ev_kwh + p.battery_charge_kwh - p.battery_discharge_kwh
    assert np.allclose(supply, demand)


def test_ev_gets_its_energy_in_the_cheapest_slots_before_departure():
    prices = np.full(96, 0.30)
    prices[8:16] = 0.10  # 02:00-04:00 cheap
    prob = day(ev=evening_ev(need=15.0), import_price=prices, pv_peak_kwh=0.0)
    p = plan(prob)
    assert p.shortfall is None
    assert p.ev_delivered_kwh == pytest.approx(15.0)
    assert p.ev_kwh[28:].sum() == 0  # nothing after departure
    assert p.ev_kwh[8:16].sum() * 0.9 == pytest.approx(15.0)  # 8 slots x 2.75 kWh suffice
    assert all("cheapest slots before departure" in p.reasons[t] for t in range(8, 16)
               if p.ev_kwh[t] > 0)
    assert p.cost_eur < do_nothing(prob).cost_eur


def test_infeasible_ev_target_gives_best_effort_and_a_stated_shortfall():
    prob = day(ev=evening_ev(need=100.0), battery=battery())  # 7 h x 11 kW x 0.9 = 69.3 kWh
    p = plan(prob)
    assert p.shortfall is not None
    assert p.shortfall.ev_kwh == pytest.approx(100.0 - 69.3)
    assert "not enough time" in p.shortfall.reason
    assert p.ev_delivered_kwh == pytest.approx(69.3)


def test_ev_not_plugged_in_before_departure_is_a_shortfall_not_an_error():
    ev = EVDemand(plugged_mask=np.zeros(96, bool), departure_slot=30, energy_needed_kwh=5.0)
    p = plan(day(ev=ev))
    assert p.shortfall.ev_kwh == pytest.approx(5.0)
    assert "not plugged in" in p.shortfall.reason
    assert p.ev_kwh.sum() == 0


def test_fuse_binds_house_plus_ev_and_the_battery_helps():
    # 5 kW fuse, 2 kW house load at night: the EV alone could take 11 kW
    grid = GridSpec(import_limit_kw=5.0, export_limit_kw=5.0)
    prob = day(ev=evening_ev(need=20.0), grid=grid, load_kwh=0.5, battery=battery(soc_now=0.9),
               pv_peak_kwh=0.0)
    p = plan(prob)
    assert p.grid_import_kwh.max() <= 5.0 * 0.25 + 1e-9
    assert p.shortfall is None
    # without the battery the fuse leaves 3 kW x 7 h x 0.9 = 18.9 kWh for the EV
    alone = plan(day(ev=evening_ev(need=20.0), grid=grid, load_kwh=0.5, pv_peak_kwh=0.0))
    assert alone.shortfall.ev_kwh == pytest.approx(20.0 - 18.9)
    assert "fuse" in alone.shortfall.reason
    assert alone.grid_import_kwh.max() <= 5.0 * 0.25 + 1e-9


def test_negative_import_price_charges_from_grid_and_negative_export_price_curtails():
    hour = np.arange(96) * 0.25
    imp = np.where((hour >= 12) & (hour < 13), -0.05, 0.30)
    exp = np.where((hour >= 11) & (hour < 14), -0.10, 0.05)
    exp = np.minimum(exp, imp)
    prob = day(battery=battery(soc_now=0.5), import_price=imp, export_price=exp, pv_peak_kwh=2.0)
    p = plan(prob)
    negative_export = exp < 0
    assert p.grid_export_kwh[negative_export].sum() == pytest.approx(0.0, abs=1e-9)
    assert p.pv_curtailed_kwh[negative_export].sum() > 0
    paid_to_import = imp < 0
    assert p.grid_import_kwh[paid_to_import].sum() > 0  # being paid to import: take it
    assert any("curtail PV" in r for r in p.reasons)


def test_nan_and_infinite_prices_are_filled_and_reported():
    prob = day(battery=battery())
    prices = prob.import_price_eur_per_kwh.copy()
    prices[[5, 40, 41]] = np.nan
    prices[70] = np.inf
    prob.import_price_eur_per_kwh = prices
    p = plan(prob)
    assert np.isfinite(p.cost_eur)
    assert any("import price: 4 missing" in w for w in p.warnings)
    reference = plan(day(battery=battery()))
    assert p.cost_eur == pytest.approx(reference.cost_eur, rel=0.05)


@pytest.mark.parametrize("slots", [92, 100])
def test_23_and_25_hour_days(slots):
    prob = day(slots, battery=battery(), ev=evening_ev(slots))
    p = plan(prob)
    assert p.slot_count == slots and len(p.soc) == slots + 1
    assert p.shortfall is None and p.ev_delivered_kwh == pytest.approx(20.0)
    assert p.warnings == []
    assert p.cost_eur <= do_nothing(prob).cost_eur


def test_mixed_slot_lengths_scale_power_limits():
    # four hourly slots then eight quarter hours
    hours = np.array([1.0] * 4 + [0.25] * 8)
    starts = DAY0 + 3600 * np.concatenate([[0], np.cumsum(hours[:-1])])
    load = hours * 2.0  # 2 kW
    prob = PlanProblem(starts, np.r_[[0.1] * 4, [0.5] * 8], np.zeros(12), load, np.zeros(12),
                       battery=battery(soc_now=0.1, terminal_value_eur_per_kwh=0))
    p = plan(prob)
    assert np.allclose(p.slot_duration_h, hours)
    assert p.battery_charge_kwh[:4].max() <= 4.0 + 1e-9
    # the expensive 2 h need 4 kWh: stored beforehand, more than one hourly slot can charge
    assert p.battery_charge_kwh[:4].sum() == pytest.approx(4.0 / 0.95 / 0.95)
    assert np.allclose(p.battery_discharge_kwh[4:], 0.5)


def test_export_forbidden_means_no_export_ever():
    grid = GridSpec(import_limit_kw=17.0, export_limit_kw=10.0, export_allowed=False)
    p = plan(day(battery=battery(), grid=grid, pv_peak_kwh=3.0))
    assert p.grid_export_kwh.max() == 0
    assert p.pv_curtailed_kwh.sum() > 0  # more PV than load + battery can take


def test_grid_charging_not_allowed_limits_charging_to_pv_surplus():
    prices = np.full(96, 0.40)
    prices[:8] = 0.01
    prob = day(battery=battery(allow_grid_charging=False), import_price=prices, pv_peak_kwh=0.5)
    p = plan(prob)
    surplus = np.clip(prob.pv_kwh - prob.load_kwh, 0, None)
    assert np.all(p.battery_charge_kwh <= surplus + 1e-9)
    allowed = plan(day(battery=battery(), import_price=prices, pv_peak_kwh=0.5))
    assert allowed.battery_charge_kwh[:8].sum() > 1.0


def test_terminal_value_keeps_energy_for_after_the_horizon():
    keep = plan(day(battery=battery(soc_now=0.9, terminal_value_eur_per_kwh=0.6)))
    spend = plan(day(battery=battery(soc_now=0.9, terminal_value_eur_per_kwh=0.0)))
    assert keep.soc[-1] > spend.soc[-1] + 0.3
    assert spend.soc[-1] == pytest.approx(0.1, abs=1e-6)  # worth nothing later: used up


def test_ev_minimum_power_means_off_or_at_least_the_minimum():
    prices = np.linspace(0.1, 0.3, 96)
    ev = evening_ev(need=5.0, min_kw=4.2)
    p = plan(day(ev=ev, import_price=prices, pv_peak_kwh=0))
    charging = p.ev_kwh[p.ev_kwh > 0]
    assert np.all(charging >= 4.2 * 0.25 - 1e-9)
    assert p.ev_delivered_kwh >= 5.0 - 1e-9


def test_bad_inputs_are_repaired_and_reported_not_raised():
    prob = day(battery=battery(soc_now=0.05, charge_efficiency=1.7, capacity_kwh=10.0))
    prob.load_kwh = prob.load_kwh[:90]  # six slots missing
    prob.pv_kwh = prob.pv_kwh.copy()
    prob.pv_kwh[3] = -1.0
    prob.export_price_eur_per_kwh = np.full(96, 0.9)  # above import
    prob.grid = GridSpec(import_limit_kw=float("nan"))
    p = plan(prob)
    text = " | ".join(p.warnings)
    for expected in ("house load: 90 values for 96 slots", "PV negative", "export price above",
                     "charge_efficiency", "outside [0.1, 0.9]", "grid import limit"):
        assert expected in text
    assert np.isfinite(p.cost_eur) and p.soc.min() >= 0.05 - 1e-9


def test_no_battery_and_no_slots():
    p = plan(day())
    assert np.all(p.battery_charge_kwh == 0) and np.all(p.soc == 0)
    empty = plan(PlanProblem(np.zeros(0), [], [], [], []))
    assert empty.slot_count == 0 and "no slots to plan" in empty.warnings


def test_house_load_above_fuse_is_reported_not_hidden():
    grid = GridSpec(import_limit_kw=2.0, export_limit_kw=2.0)
    p = plan(day(grid=grid, load_kwh=1.0, pv_peak_kwh=0))  # 4 kW load, 2 kW fuse
    assert p.fuse_overload_kwh.sum() == pytest.approx(96 * 0.5)
    assert any("above the fuse limit" in w for w in p.warnings)


def test_very_negative_import_price_neither_breaks_the_plan_nor_burns_energy_in_one_slot():
    prices = np.full(96, 0.30)
    prices[40:44] = -1.0  # paid 1 EUR/kWh to import: losses would pay, the DP uses the envelope
    prob = day(battery=battery(soc_now=0.5, degradation_eur_per_kwh=0.0),
               import_price=prices, export_price=np.minimum(0.05, prices), pv_peak_kwh=0.5)
    p = plan(prob)
    assert np.all(p.battery_charge_kwh * p.battery_discharge_kwh == 0)
    assert p.grid_import_kwh[40:44].sum() > 3.0  # takes the paid energy
    assert p.cost_eur < do_nothing(prob).cost_eur
    assert p.soc.max() <= 0.9 + 1e-9


def test_an_internal_failure_falls_back_to_self_consumption(monkeypatch, caplog):
    import phaeton.planning.optimizer as optimizer

    def broken(solver):
        raise FloatingPointError("synthetic")

    monkeypatch.setattr(optimizer, "_schedule", broken)
    prob = day(battery=battery())
    p = optimizer.plan(prob)
    assert any("optimizer failed (FloatingPointError: synthetic)" in w for w in p.warnings)
    assert p.cost_eur == pytest.approx(self_consumption(prob).cost_eur)
    assert "planner optimizer failed" in caplog.text


def test_a_missing_slot_in_the_start_times_is_bridged_and_reported():
    prob = day(battery=battery())
    keep = np.r_[0:50, 51:96]  # 12:30 is missing
    prob = PlanProblem(prob.slot_start_s[keep], prob.import_price_eur_per_kwh[keep],
                       prob.export_price_eur_per_kwh[keep], prob.load_kwh[keep],
                       prob.pv_kwh[keep], battery=prob.battery)
    p = plan(prob)
    assert p.slot_count == 95
    assert p.slot_duration_h[49] == pytest.approx(0.5)
    assert p.battery_charge_kwh[49] <= 4.0 * 0.5 + 1e-9
    assert any("unevenly spaced" in w for w in p.warnings)


def test_helpers_for_soc_targets_and_round_trip_efficiency():
    ev = EVDemand.from_soc(60.0, 0.3, 0.8, plugged_mask=np.ones(4, bool), departure_slot=4)
    assert ev.energy_needed_kwh == pytest.approx(30.0)
    assert EVDemand.from_soc(60.0, 0.9, 0.8, plugged_mask=np.ones(4, bool),
                             departure_slot=4).energy_needed_kwh == 0
    spec = BatterySpec.with_round_trip(0.81, capacity_kwh=5.0, soc_now=0.5)
    assert spec.charge_efficiency == pytest.approx(0.9)
    assert spec.discharge_efficiency == pytest.approx(0.9)
