"""problem_builder: slots, departure, price alignment, knobs, EV need, tariff mapping."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from phaeton.config import default_config
from phaeton.planner.service import tariff_mapping
from phaeton.planning.knobs import EvState, PlannerInputError, PlannerKnobs, SiteFacts
from phaeton.planning.problem_builder import (
    build_problem,
    departure_slot,
    next_departure_s,
    slot_starts_s,
)
from phaeton.planning.tariffs.factory import tariff_from_config
from phaeton.planning.tariffs.series import GridPrices

BERLIN = ZoneInfo("Europe/Berlin")


def local(*args) -> float:
    return dt.datetime(*args, tzinfo=BERLIN).timestamp()


def prices(start_s, n, buy=0.3, sell=0.05):
    return GridPrices(int(start_s), 900, np.full(n, buy), np.full(n, sell), "test")


def test_slots_start_at_the_current_quarter_hour_and_cover_the_horizon():
    now = local(2026, 6, 1, 10, 7, 30)
    starts = slot_starts_s(now, 48)
    assert starts[0] == local(2026, 6, 1, 10, 0) and starts.size == 192
    assert np.all(np.diff(starts) == 900)
    for bad in (12, 49, float("nan"), "48"):
        with pytest.raises(PlannerInputError, match="horizon_h"):
            slot_starts_s(now, bad)


def test_departure_is_the_next_local_occurrence_also_across_dst():
    evening = local(2026, 3, 28, 20, 0)  # the night the clocks go forward
    leave = next_departure_s(evening, 7 * 60, "Europe/Berlin")
    assert leave == local(2026, 3, 29, 7, 0)
    assert leave - evening == 10 * 3600  # one hour less than on a normal night
    morning = local(2026, 6, 1, 6, 59)
    assert next_departure_s(morning, 7 * 60, "Europe/Berlin") == local(2026, 6, 1, 7, 0)
    assert next_departure_s(local(2026, 6, 1, 7, 0), 7 * 60, "Europe/Berlin") \
        == local(2026, 6, 2, 7, 0)
    starts = slot_starts_s(evening, 24)
    assert departure_slot(starts, leave) == 40
    with pytest.raises(PlannerInputError, match="departure"):
        next_departure_s(evening, 1440, "Europe/Berlin")
    with pytest.raises(PlannerInputError, match="time zone"):
        next_departure_s(evening, 60, "Mars/Olympus")


def facts(**changes):
    base = SiteFacts(battery_capacity_kwh=10, horizon_h=24)
    return SiteFacts(**{**base.__dict__, **changes})


def test_prices_are_aligned_and_gaps_left_for_the_optimizer():
    now = local(2026, 6, 1, 10, 0)
    late = prices(now + 3600, 20)  # starts an hour late and stops early
    problem = build_problem(now_s=now, facts=facts(), knobs=PlannerKnobs(), prices=late,
                            load_kwh=np.full(96, 0.1), pv_kwh=np.zeros(96),
                            battery_soc_pct=50, ev=None)
    buy = problem.import_price_eur_per_kwh
    assert np.isnan(buy[:4]).all() and (buy[4:24] == 0.3).all() and np.isnan(buy[24:]).all()
    with pytest.raises(PlannerInputError, match="900 s grid"):
        build_problem(now_s=now, facts=facts(), knobs=PlannerKnobs(),
                      prices=GridPrices(int(now), 3600, np.ones(3), np.ones(3), "x"),
                      load_kwh=np.zeros(96), pv_kwh=np.zeros(96), battery_soc_pct=50, ev=None)


def test_knobs_set_the_battery_limits_and_a_missing_soc_plans_from_the_floor():
    now = local(2026, 6, 1, 10, 0)
    knobs = PlannerKnobs(minimum_soc_pct=10, reserve_soc_pct=30, allow_grid_charging=False,
                         allow_export=False, degradation_eur_per_kwh=float("nan"))
    problem = build_problem(now_s=now, facts=facts(), knobs=knobs, prices=prices(now, 96),
                            load_kwh=np.zeros(96), pv_kwh=np.zeros(96),
                            battery_soc_pct=None, ev=None)
    battery = problem.battery
    assert battery.soc_min == 0.3 and battery.soc_now == 0.3  # reserve above the minimum
    assert battery.allow_grid_charging is False and battery.degradation_eur_per_kwh == 0.0
    assert problem.grid.export_allowed is False
    assert build_problem(now_s=now, facts=facts(battery_capacity_kwh=0), knobs=knobs,
                         prices=prices(now, 96), load_kwh=np.zeros(96), pv_kwh=np.zeros(96),
                         battery_soc_pct=40, ev=None).battery is None


def test_ev_need_from_soc_from_kwh_and_from_what_the_session_already_delivered():
    now = local(2026, 6, 1, 22, 0)
    site = facts(ev_capacity_kwh=50, ev_charge_efficiency=0.9, ev_assumed_soc_pct=20)

    def need(ev, **knobs):
        problem = build_problem(now_s=now, facts=site, knobs=PlannerKnobs(**knobs),
                                prices=prices(now, 96), load_kwh=np.zeros(96),
                                pv_kwh=np.zeros(96), battery_soc_pct=50, ev=ev)
        return None if problem.ev is None else problem.ev.energy_needed_kwh

    assert need(EvState(plugged=False)) is None
    assert need(EvState(True, 40.0), ev_target_soc_pct=80) == pytest.approx(20.0)
    assert need(EvState(True, None), ev_target_soc_pct=80) == pytest.approx(30.0)  # assumed 20 %
    assert need(EvState(True, None, session_kwh=10), ev_target_soc_pct=80) \
        == pytest.approx(21.0)
    assert need(EvState(True, 90.0), ev_target_soc_pct=80) is None
    assert need(EvState(True, 90.0), ev_target_kwh=12) == pytest.approx(12.0)


def test_config_defaults_become_knobs_and_facts():
    config = default_config()
    config["charger"]["alfen"] = {"host": "x"}
    config["planner"]["ev"]["departure_time"] = "06:45"
    knobs = PlannerKnobs.from_config(config["planner"])
    assert knobs.ev_departure_min == 405 and knobs.strategy == 2
    site = SiteFacts.from_config(config)
    assert site.import_limit_kw == pytest.approx(25 * 3 * 230 / 1000)
    assert site.export_limit_kw == site.import_limit_kw  # null = the fuse's power
    assert site.ev_min_kw == pytest.approx(6 * 3 * 0.23)
    assert site.ev_max_kw == pytest.approx(16 * 3 * 0.23)


async def test_tariff_section_maps_to_what_tariff_from_config_accepts(tmp_path):
    tariff = default_config()["planner"]["tariff"]
    for kind in ("static", "time_of_use"):
        built = tariff_from_config(tariff_mapping({**tariff, "type": kind}), tmp_path)
        series = await built.prices(local(2026, 6, 1, 10, 0))
        assert series.import_eur_per_kwh[0] == pytest.approx(0.30)
    entsoe = tariff_mapping({**tariff, "type": "entsoe",
                             "entsoe": {"token": "abc", "area": "10Y1001A1001A82H"}})
    assert entsoe["token"] == "abc" and entsoe["import_formula"]["factor"] == 1.0
    assert "fixed_eur_per_kwh" not in entsoe["export_formula"]  # null left out
    tariff_from_config(entsoe, tmp_path)  # accepted as is
