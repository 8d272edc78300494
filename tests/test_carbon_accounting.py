"""Carbon accounting (docs/carbon.md, "Accounting"): hand-computed cases of the split by
source, the battery carrying the intensity of what charged it, the session's CO2 accumulated
like its cost, the quarter-hour history on disk and the totals per day and month."""
from __future__ import annotations

import asyncio
import json
from datetime import timezone
from zoneinfo import ZoneInfo

import pytest

from phaeton.carbon_feed import CarbonFeed
from phaeton.chargers.base import VehicleState
from phaeton.clock import ScaledClock
from phaeton.control.carbon_accounting import (PV_G_PER_KWH, BatteryCarbon, CarbonMeter,
                                               CarbonSlot, SiteFlows, account_step,
                                               carbon_totals, other_supply_g_per_kwh)
from phaeton.control.readings import EvReadings
from phaeton.control.session import SessionTracker
from phaeton.planning.carbon.static import StaticCarbonSource
from phaeton.store.energy_history import (CARBON_HEADER, CarbonHistoryFile,
                                          read_carbon_history)
from phaeton.store.sessions import ChargingSession, SessionStore

HOUR = 3600.0
T0 = 1_767_225_600          # 2026-01-01T00:00:00Z, a quarter-hour boundary


# ---- the split by source ---------------------------------------------------------------------

def test_everything_from_the_grid_carries_the_grid_s_intensity_and_avoids_nothing():
    step = account_step(SiteFlows(pv_w=0, house_w=1000, ev_w=0, grid_w=1000), 900, 400.0,
                        BatteryCarbon())
    assert step.house_kwh == pytest.approx(0.25)
    assert step.house_g == pytest.approx(100.0)       # 0.25 kWh x 400 g/kWh
    assert step.ev_g == 0 and step.avoided_g == pytest.approx(0.0)


def test_pv_serves_the_house_first_then_the_car_the_rest_comes_from_the_grid():
    # 3 kW PV, 1 kW house, 4 kW car, 2 kW import, one hour at 500 g/kWh
    step = account_step(SiteFlows(pv_w=3000, house_w=1000, ev_w=4000, grid_w=2000), HOUR,
                        500.0, BatteryCarbon())
    assert (step.pv_to_house_kwh, step.pv_to_ev_kwh) == pytest.approx((1.0, 2.0))
    assert step.house_g == pytest.approx(1 * PV_G_PER_KWH)                  # 41
    assert step.ev_g == pytest.approx(2 * PV_G_PER_KWH + 2 * 500)           # 1082
    assert step.avoided_g == pytest.approx(5 * 500 - 41 - 1082)             # 1377


def test_the_battery_carries_the_intensity_of_what_charged_it():
    battery = BatteryCarbon()
    # 2 kWh from PV (2 kW PV, nothing else uses it)
    step = account_step(SiteFlows(pv_w=2000, house_w=0, ev_w=0, grid_w=0, battery_w=2000),
                        HOUR, 300.0, battery)
    assert step.pv_to_battery_kwh == pytest.approx(2.0)
    assert (battery.stored_kwh, battery.g_per_kwh) == pytest.approx((2.0, 41.0))
    assert step.house_g == 0 and step.avoided_g == 0      # storing is not using
    # 2 kWh from the grid at 300 g/kWh: the mean of what is stored
    account_step(SiteFlows(pv_w=0, house_w=0, ev_w=0, grid_w=2000, battery_w=2000), HOUR,
                 300.0, battery)
    assert battery.g_per_kwh == pytest.approx((2 * 41 + 2 * 300) / 4)      # 170.5
    # the car takes 1 kWh from the battery while the grid is at 600: it carries 170.5
    step = account_step(SiteFlows(pv_w=0, house_w=0, ev_w=1000, grid_w=0, battery_w=-1000),
                        HOUR, 600.0, battery)
    assert step.ev_g == pytest.approx(170.5)
    assert step.avoided_g == pytest.approx(600 - 170.5)
    assert (battery.stored_kwh, battery.g_per_kwh) == pytest.approx((3.0, 170.5))
    # half from the battery, half from the grid: the other supply is their mix
    flows = SiteFlows(pv_w=0, house_w=0, ev_w=2000, grid_w=1000, battery_w=-1000)
    assert other_supply_g_per_kwh(flows, 600.0, battery) == pytest.approx((600 + 170.5) / 2)
    step = account_step(flows, HOUR, 600.0, battery)
    assert step.ev_g == pytest.approx(600 + 170.5)


def test_pv_charges_the_battery_before_the_grid_does():
    battery = BatteryCarbon(stored_kwh=1.0, g_per_kwh=100.0)
    # 1 kW PV, 0.5 kW house, battery charges 1.5 kW: 0.5 from PV, 1 from the grid (1 kW import)
    step = account_step(SiteFlows(pv_w=1000, house_w=500, ev_w=0, grid_w=1000, battery_w=1500),
                        HOUR, 400.0, battery)
    assert (step.pv_to_battery_kwh, step.grid_to_battery_kwh) == pytest.approx((0.5, 1.0))
    assert step.house_g == pytest.approx(0.5 * 41)
    assert battery.stored_kwh == pytest.approx(2.5)
    assert battery.g_per_kwh == pytest.approx((1 * 100 + 0.5 * 41 + 1 * 400) / 2.5)


def test_other_supply_is_the_grid_s_when_nothing_but_pv_flows():
    flows = SiteFlows(pv_w=5000, house_w=1000, ev_w=2000, grid_w=-2000)
    assert other_supply_g_per_kwh(flows, 350.0, BatteryCarbon()) == 350.0


# ---- quarter hours and totals ------------------------------------------------------------------

def test_the_meter_integrates_into_quarter_hours_and_syncs_the_battery_with_its_soc():
    meter = CarbonMeter(capacity_kwh=10.0)
    flows = SiteFlows(pv_w=0, house_w=400, ev_w=3600, grid_w=4000)
    done = []
    for i in range(0, 31):                         # every 60 s for 30 min
        done += meter.add(T0 + 60 * i, flows, 200.0 if i < 15 else 300.0, 50.0)
    assert [slot.start_s for slot in done] == [T0, T0 + 900]
    first, second = done
    assert first.car_kwh == pytest.approx(0.9) and first.house_kwh == pytest.approx(0.1)
    assert first.car_co2_g == pytest.approx(0.9 * 200)
    assert second.car_co2_g == pytest.approx(0.9 * 300)
    assert second.grid_g_per_kwh == pytest.approx(300)
    assert first.battery_kwh == pytest.approx(5.0)      # 50 % of 10 kWh


def test_no_intensity_or_no_flows_accounts_nothing_and_a_long_gap_is_not_held():
    meter = CarbonMeter()
    flows = SiteFlows(pv_w=0, house_w=1000, ev_w=0, grid_w=1000)
    assert meter.add(T0, flows, None) == []
    assert meter.add(T0 + 60, None, 300.0) == []
    slots = meter.add(T0 + 600, flows, 300.0)            # 540 s gap: not held
    slots += meter.add(T0 + 960, flows, 300.0)           # closes the first quarter hour
    assert slots == []                                   # nothing was accounted in it


def slot(start_s, house_kwh=1.0, car_kwh=2.0, house_g=100.0, car_g=500.0, avoided_g=300.0):
    return CarbonSlot(start_s, 250.0, house_kwh, car_kwh, house_g, car_g, avoided_g, 0.0, None)


def test_totals_per_local_day_and_month():
    berlin = ZoneInfo("Europe/Berlin")
    slots = [slot(T0 - 2 * HOUR),          # 2025-12-31 23:00 in Berlin
             slot(T0 - 0.5 * HOUR),        # 2026-01-01 00:30 in Berlin
             slot(T0 + 10 * HOUR), slot(T0 + 40 * 86400)]
    days = carbon_totals(slots, "day", berlin)
    assert [d.period for d in days] == ["2025-12-31", "2026-01-01", "2026-02-10"]
    assert days[1].house_co2_kg == pytest.approx(0.2) and days[1].car_co2_kg == pytest.approx(1.0)
    assert days[1].avoided_co2_kg == pytest.approx(0.6) and days[1].co2_kg == pytest.approx(1.2)
    assert days[1].car_kwh == pytest.approx(4.0)
    months = carbon_totals(slots, "month", berlin)
    assert [(m.period, m.car_co2_kg) for m in months] == [("2025-12", 0.5), ("2026-01", 1.0),
                                                          ("2026-02", 0.5)]
    in_utc = carbon_totals(slots, "day", timezone.utc)
    assert [d.period for d in in_utc] == ["2025-12-31", "2026-01-01", "2026-02-10"]
    assert in_utc[0].car_co2_kg == pytest.approx(1.0)         # 22:00 and 23:30 UTC
    with pytest.raises(ValueError):
        carbon_totals(slots, "week", berlin)


def test_the_history_survives_a_restart_and_skips_unreadable_lines(tmp_path):
    path = tmp_path / "carbon_history.csv"
    history = CarbonHistoryFile(path)
    history.load()
    history.append([slot(T0), CarbonSlot(T0 + 900, 300.0, 0.5, 1.25, 150.0, 375.0, 50.0, 4.5,
                                         120.25)])
    path.write_text(path.read_text() + "garbage,line\n" + f"{T0 + 1800},nan,1,1,1,1,1,1,\n")
    again = CarbonHistoryFile(path)
    again.load()
    assert again.slots == history.slots
    assert again.last.battery_g_per_kwh == 120.25 and again.last.battery_kwh == 4.5
    assert path.read_text().startswith(CARBON_HEADER)
    assert read_carbon_history(tmp_path / "absent.csv") is None


def test_the_history_keeps_the_newest_days(tmp_path):
    history = CarbonHistoryFile(tmp_path / "c.csv", keep_days=1)
    history.append([slot(T0 + 900 * i) for i in range(96 * 2 + 1)])
    assert len(history.slots) == 96
    assert len(read_carbon_history(tmp_path / "c.csv")) == 96


# ---- the session ------------------------------------------------------------------------------

def reading(counter, power_w=7200.0, state=VehicleState.CHARGING):
    return EvReadings(vehicle_state=state, total_power_w=power_w, power_w=(power_w / 3,) * 3,
                      lifetime_energy_kwh=counter)


def test_a_session_accumulates_co2_at_the_intensity_of_the_moment():
    tracker = SessionTracker()
    tracker.update(reading(100.0, 0.0, VehicleState.CONNECTED), None, T0, carbon_g_per_kwh=200)
    assert tracker.co2_kg == 0.0
    # 1 kWh, half solar, other supply at 200 g/kWh; then 1 kWh half solar at 400 g/kWh
    tracker.update(reading(101.0), None, T0 + 500, solar_fraction=0.5, carbon_g_per_kwh=200)
    assert tracker.co2_kg == pytest.approx((0.5 * 41 + 0.5 * 200) / 1000)
    tracker.update(reading(102.0), None, T0 + 1000, solar_fraction=0.5, carbon_g_per_kwh=400)
    assert tracker.co2_kg == pytest.approx((120.5 + 220.5) / 1000)
    ended = tracker.update(reading(102.0, 0.0, VehicleState.NO_VEHICLE), None, T0 + 1100,
                           carbon_g_per_kwh=400)
    assert ended[0].co2_kg == pytest.approx(0.341)


def test_without_a_source_the_session_s_co2_is_none_not_zero():
    tracker = SessionTracker()
    tracker.update(reading(100.0, 0.0, VehicleState.CONNECTED), None, T0)
    tracker.update(reading(103.0), None, T0 + 1800, solar_fraction=0.0)
    assert tracker.co2_kg is None
    ended = tracker.update(reading(103.0, 0.0, VehicleState.NO_VEHICLE), None, T0 + 1900)
    assert ended[0].co2_kg is None and ended[0].energy_kwh == pytest.approx(3.0)


def test_energy_without_an_intensity_is_valued_at_the_session_s_mean():
    tracker = SessionTracker()
    tracker.update(reading(100.0, 0.0, VehicleState.CONNECTED), None, T0)
    tracker.update(reading(101.0), None, T0 + 500, solar_fraction=0.0)          # unknown
    assert tracker.co2_kg is None
    tracker.update(reading(102.0), None, T0 + 1000, solar_fraction=0.0, carbon_g_per_kwh=300)
    assert tracker.co2_kg == pytest.approx(2 * 0.3)


def test_the_counter_gap_keeps_its_intensity_when_the_counter_returns():
    tracker = SessionTracker()
    tracker.update(reading(100.0, 0.0, VehicleState.CONNECTED), None, T0, carbon_g_per_kwh=100)
    tracker.update(reading(None, 3600.0), None, T0 + 500, carbon_g_per_kwh=100)
    tracker.update(reading(None, 3600.0), None, T0 + 1000, carbon_g_per_kwh=100)  # 1 kWh est.
    assert tracker.co2_kg == pytest.approx(1.0 * 0.1)
    tracker.update(reading(101.5), None, T0 + 1001, carbon_g_per_kwh=900)
    assert tracker.energy_kwh == pytest.approx(1.5)      # the counter replaces the estimate
    assert tracker.co2_kg == pytest.approx(1.5 * 0.1)   # at the gap's mean, not the new value


def test_a_restart_mid_session_keeps_the_co2(tmp_path):
    tracker = SessionTracker()
    tracker.update(reading(100.0, 0.0, VehicleState.CONNECTED), None, T0, carbon_g_per_kwh=250)
    tracker.update(reading(102.0), None, T0 + 1000, solar_fraction=0.0, carbon_g_per_kwh=250)
    with SessionStore(tmp_path / "sessions.sqlite") as store:
        store.save_running(tracker.running_record())
    with SessionStore(tmp_path / "sessions.sqlite") as store:     # the restart
        again = SessionTracker()
        again.restore(store.load_running())
        assert again.co2_kg == pytest.approx(0.5)
        again.update(reading(103.0), None, T0 + 1500, solar_fraction=0.0, carbon_g_per_kwh=450)
        ended = again.update(reading(103.0, 0.0, VehicleState.NO_VEHICLE), None, T0 + 1600,
                             carbon_g_per_kwh=450)[0]
        assert ended.co2_kg == pytest.approx(0.5 + 0.45)
        store.finish_running(ChargingSession(ended.started_at_s, ended.ended_at_s,
                                             ended.energy_kwh, ended.duration_s, 7200.0,
                                             ended.cost, "EUR", 0.0, co2_kg=ended.co2_kg))
        assert store.list_sessions()[0].co2_kg == pytest.approx(0.95)
        assert store.load_running() is None


def test_a_record_saved_before_co2_was_accounted_restores_without_co2():
    tracker = SessionTracker()
    tracker.update(reading(100.0, 0.0, VehicleState.CONNECTED), None, T0)
    tracker.update(reading(101.0), None, T0 + 500)
    record = json.loads(json.dumps(tracker.running_record()))
    for name in ("co2_g", "co2_kwh", "gap_co2_g", "gap_co2_kwh", "carbon_known"):
        del record[name]
    again = SessionTracker()
    again.restore(record)
    assert again.co2_kg is None and again.energy_kwh == pytest.approx(1.0)
    again.update(reading(102.0), None, T0 + 1000, solar_fraction=0.0, carbon_g_per_kwh=200)
    assert again.co2_kg == pytest.approx(2 * 0.2)     # the first kWh at the mean
    record["co2_g"] = -1.0
    with pytest.raises(ValueError, match="co2_g"):
        SessionTracker().restore(record)


# ---- the feed ----------------------------------------------------------------------------------

class FailingSource:
    source = "failing"

    def __init__(self):
        self.calls = 0
        self.fail = False

    async def intensity(self, now_s):
        self.calls += 1
        if self.fail:
            raise RuntimeError("boom")
        return await StaticCarbonSource(g_per_kwh=321).intensity(now_s)


async def test_the_feed_keeps_the_last_good_series_and_logs_a_failure_once(caplog):
    caplog.set_level("INFO", logger="phaeton.carbon_feed")
    clock = ScaledClock(1.0)
    source = FailingSource()
    feed = CarbonFeed(source, clock=clock)
    await feed.refresh_once()
    assert feed.intensity_now(clock.time()) == 321
    source.fail = True
    await feed.refresh_once()
    await feed.refresh_once()
    assert feed.intensity_now(clock.time()) == 321
    assert caplog.text.count("carbon intensity not refreshed") == 1
    source.fail = False
    await feed.refresh_once()
    assert "refreshed again" in caplog.text


async def test_an_inactive_feed_answers_none_and_records_nothing(tmp_path):
    clock = ScaledClock(1.0)
    feed = CarbonFeed.from_config({"data_dir": str(tmp_path), "carbon": {"source": "none"}},
                                  clock=clock)
    assert not feed.active
    await feed.start()
    assert feed.supply_g_per_kwh(clock.time(), None) is None
    feed.record(clock.time(), None, None)
    assert feed.totals("day") == []
    await feed.stop()
    assert list(tmp_path.iterdir()) == []


async def test_a_static_feed_starts_with_its_value_and_accounts_into_its_file(tmp_path):
    clock = ScaledClock(1.0, start=T0)
    config = {"data_dir": str(tmp_path),
              "carbon": {"source": "static", "static": {"g_per_kwh": 400}},
              "planner": {"site": {"tz": "UTC"}, "battery": {"capacity_kwh": 0}}}
    feed = CarbonFeed.from_config(config, clock=clock)
    await feed.start()
    try:
        assert feed.intensity_now(clock.time()) == 400
        flows = SiteFlows(pv_w=0, house_w=1000, ev_w=0, grid_w=1000)
        for i in range(17):
            feed.history.append(feed.meter.add(T0 + 60 * i, flows, 400.0))
        assert [(t.period, round(t.house_co2_kg, 6)) for t in feed.totals("day")] \
            == [("2026-01-01", 0.1)]
        assert (tmp_path / "carbon_history.csv").is_file()
    finally:
        await feed.stop()
    await asyncio.sleep(0)
