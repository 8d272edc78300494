"""The simulated site (PV, appliances, ESS battery) used by the week test, the benchmark and the demo."""
from __future__ import annotations

from datetime import datetime

import pytest

from phaeton.control.readings import sum_phases
from phaeton.sim.site import SiteConfig, SiteModel


def run(model: SiteModel, seconds: float, ev=(0.0, 0.0, 0.0), dt_s=60.0):
    readings = None
    for _ in range(int(seconds / dt_s)):
        readings = model.step(dt_s, ev)
    return readings


def test_same_seed_same_day_different_seed_different_day():
    one, two, other = SiteModel(seed=4), SiteModel(seed=4), SiteModel(seed=5)
    trace = lambda m: [m.step(60).grid_w for _ in range(1440)]
    first = trace(one)
    assert first == trace(two)
    assert first != trace(other)


def test_pv_follows_the_day_and_the_season():
    summer = SiteModel(seed=1, start=datetime(2026, 6, 21))
    assert run(summer, 3 * 3600).pv_dc_w == 0                      # 03:00
    summer.t_s = 13.5 * 3600 - 60
    noon = summer.step(60)
    winter = SiteModel(seed=1, start=datetime(2026, 12, 21))
    winter.t_s = 13.5 * 3600 - 60
    winter_noon = winter.step(60)
    assert noon.pv_dc_w > 2 * winter_noon.pv_dc_w > 0


def test_ess_battery_covers_the_load_and_stops_at_its_minimum():
    config = SiteConfig(battery_initial_soc_pct=21.0, pv_ac_peak_w=0, pv_dc_peak_w=0, appliances=())
    site = SiteModel(seed=2, start=datetime(2026, 6, 1), config=config)
    first = site.step(60, (1000.0, 1000.0, 1000.0))                 # night, EV charging
    assert first.battery_power_w < 0
    assert sum_phases(first.grid_w) == pytest.approx(0, abs=1e-6)   # ESS holds the grid at 0
    later = run(site, 3600, ev=(1000.0, 1000.0, 1000.0))
    assert site.battery_soc_pct == pytest.approx(20.0)
    assert later.battery_power_w == 0
    assert sum_phases(later.grid_w) == pytest.approx(3000 + sum(config.base_load_w))
    limited = site.readings((3000.0, 3000.0, 3000.0))
    assert limited.battery_power_w == 0


def test_full_battery_exports_the_surplus():
    config = SiteConfig(battery_initial_soc_pct=100.0, appliances=())
    site = SiteModel(seed=3, start=datetime(2026, 6, 21), config=config)
    site.t_s = 13 * 3600
    readings = site.step(60)
    assert readings.battery_power_w <= 0
    assert sum_phases(readings.grid_w) < -3000


def test_readings_balance_with_the_inverter_losses():
    site = SiteModel(seed=9, start=datetime(2026, 5, 1))
    for _ in range(500):
        r = site.step(60, (1000.0, 0.0, 0.0))
        balance = (sum_phases(r.grid_w) + sum_phases(r.pv_on_grid_w) + r.pv_dc_w
                   - sum_phases(r.consumption_w) - r.battery_power_w)
        assert 0 <= balance <= 0.031 * (abs(r.pv_dc_w - r.battery_power_w)) + 1e-6


def test_bad_input_is_refused():
    site = SiteModel()
    with pytest.raises(ValueError, match="dt_s must be >= 0"):
        site.step(-1)
    with pytest.raises(ValueError, match="needs 3 phases"):
        site.readings((1.0, 2.0))


def test_a_dess_target_window_moves_the_battery_to_its_target_by_the_end():
    from phaeton.sim.site import DessTarget

    night = datetime(2026, 6, 2, 0, 0)                    # no PV
    model = SiteModel(seed=3, start=night, config=SiteConfig(battery_initial_soc_pct=30.0))
    end = night.timestamp() + 2 * 3600
    model.dess_target = DessTarget(70.0, end)             # +4 kWh in 2 h: 2 kW from the grid
    readings = run(model, 3600)
    assert readings.battery_power_w == pytest.approx(2000.0, rel=0.05)
    assert sum_phases(readings.grid_w) > 1900.0           # the grid pays for it
    run(model, 3600)
    assert model.battery_soc_pct == pytest.approx(70.0, abs=1.0)
    # after the window: plain self-consumption again (the house runs from the battery)
    model.dess_target = None
    assert run(model, 600).battery_power_w < 0

    # grid -> battery forbidden: at night there is no surplus, so it does not charge
    model = SiteModel(seed=3, start=night, config=SiteConfig(battery_initial_soc_pct=30.0))
    model.dess_target = DessTarget(70.0, end, restrictions=2)
    assert run(model, 600).battery_power_w <= 0.0
    # a discharge target with battery -> grid forbidden only covers the house
    model = SiteModel(seed=3, start=night, config=SiteConfig(battery_initial_soc_pct=90.0))
    model.dess_target = DessTarget(30.0, end, restrictions=1)
    readings = run(model, 600)
    assert readings.battery_power_w < 0 and min(readings.grid_w) > -50.0   # no export
