"""ChargeController: modes, limits, fuse, AutoStart, stale readings, and its invariants."""
from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from phaeton.chargers.base import VehicleState
from phaeton.control.controller import ChargeController, ControllerInputs
from phaeton.control.readings import EvReadings, SiteReadings
from phaeton.control.settings import ControlSettings, ScheduleWindow
from phaeton.control.status import ChargerStatus

V = 230.0
NOON = datetime(2026, 6, 3, 12, 0)   # a Wednesday


def site_for(house=(300.0, 300.0, 300.0), ev=(0.0, 0.0, 0.0), pv_ac_w=0.0, battery_w=0.0,
             soc=80.0, soc_limit=10.0, age_s=0.0) -> SiteReadings:
    """Consistent GX readings: grid per phase = house + EV - PV/3 + battery/3 (battery on AC)."""
    grid = tuple(house[i] + ev[i] - pv_ac_w / 3 + battery_w / 3 for i in range(3))
    return SiteReadings(pv_on_grid_w=(pv_ac_w / 3,) * 3, grid_w=grid,
                        consumption_w=tuple(house[i] + ev[i] for i in range(3)),
                        battery_soc_pct=soc, battery_power_w=battery_w, active_soc_limit_pct=soc_limit,
                        active_input_source=1, age_s=age_s)


def ev_power(amps: float, phases: int) -> tuple[float, float, float]:
    if amps <= 0:
        return (0.0, 0.0, 0.0)
    return (amps * V, amps * V, amps * V) if phases == 3 else (amps * V, 0.0, 0.0)


class Rig:
    """Controller in a closed loop with a car that draws whatever it is offered (next step)."""

    def __init__(self, settings: ControlSettings | None = None, *, mode=1, start_stop=1, set_current_a=16.0,
                 max_current_a=16.0, auto_start=1, capabilities=frozenset(), house=(300.0, 300.0, 300.0),
                 pv_ac_w=0.0, battery_w=0.0, soc=80.0, soc_limit=10.0, plugged=True, start=NOON):
        self.settings = settings or ControlSettings()
        self.controller = ChargeController(self.settings)
        self.mode, self.start_stop, self.set_current_a = mode, start_stop, set_current_a
        self.max_current_a, self.auto_start, self.capabilities = max_current_a, auto_start, frozenset(capabilities)
        self.house, self.pv_ac_w, self.battery_w, self.soc, self.soc_limit = house, pv_ac_w, battery_w, soc, soc_limit
        self.plugged = plugged
        self.age_s = 0.0
        self.t = 0.0
        self.start = start
        self.amps = 0.0
        self.phases = self.settings.charger_phases
        self.charger_connected = True

    def inputs(self) -> ControllerInputs:
        ev_w = ev_power(self.amps, self.phases)
        if not self.plugged:
            state = VehicleState.NO_VEHICLE
        else:
            state = VehicleState.CHARGING if self.amps > 0 else VehicleState.CONNECTED
        ev = EvReadings(vehicle_state=state, power_w=ev_w, phases=self.phases)
        site = site_for(self.house, ev_w, self.pv_ac_w, self.battery_w, self.soc, self.soc_limit, self.age_s)
        return ControllerInputs(mode=self.mode, start_stop=self.start_stop, set_current_a=self.set_current_a,
                                max_current_a=self.max_current_a, auto_start=self.auto_start,
                                capabilities=self.capabilities, site=site, ev=ev,
                                charger_connected=self.charger_connected)

    def step(self, dt_s: float = 10.0):
        self.t += dt_s
        decision = self.controller.step(self.inputs(), self.t, self.start + timedelta(seconds=self.t))
        if decision.start_stop_request == 1:
            self.start_stop = 1
        self.amps = decision.current_a if self.plugged else 0.0
        self.phases = decision.phases
        return decision

    def run(self, seconds: float, dt_s: float = 10.0):
        return [self.step(dt_s) for _ in range(int(round(seconds / dt_s)))]


def sunny(surplus_w: float) -> dict:
    return {"pv_ac_w": surplus_w + 900.0}


# --- Manual ------------------------------------------------------------------------------------

def test_manual_uses_set_current_within_the_limits():
    rig = Rig(mode=0, set_current_a=10, max_current_a=32)
    d = rig.step()
    assert (d.current_a, d.bound_by, d.enabled) == (10.0, "user", True)
    rig.set_current_a = 20
    d = rig.step()
    assert (d.current_a, d.bound_by) == (16.0, "charger")
    rig.max_current_a = 12
    d = rig.step()
    assert (d.current_a, d.bound_by) == (12.0, "max_current")
    assert "MaxCurrent 12 A" in d.reason


def test_manual_below_minimum_pauses_instead_of_undercharging():
    rig = Rig(mode=0, set_current_a=4)
    d = rig.step()
    assert d.current_a == 0.0
    assert "below the 6 A minimum" in d.reason


def test_manual_station_maximum_limits():
    rig = Rig(mode=0, set_current_a=16)
    inputs = rig.inputs()
    capped = ControllerInputs(**{**inputs.__dict__, "charger_max_current_a": 13.0})
    d = rig.controller.step(capped, 10, NOON)
    assert (d.current_a, d.bound_by) == (13.0, "charger")


# --- StartStop and AutoStart ---------------------------------------------------------------------

def test_start_stop_zero_wins_in_every_mode():
    for mode in (0, 1, 2):
        rig = Rig(mode=mode, start_stop=0, auto_start=1, **sunny(8000))
        for d in rig.run(600):
            assert d.current_a == 0.0
            assert d.reason.startswith("stopped by user")
            assert d.bound_by == "stopped"
            assert d.status == ChargerStatus.CONNECTED


def test_autostart_on_plug_in_requests_start():
    rig = Rig(mode=0, start_stop=0, auto_start=1, plugged=False)
    d = rig.step()
    assert d.status == ChargerStatus.DISCONNECTED and d.start_stop_request is None
    rig.plugged = True
    d = rig.step()
    assert d.start_stop_request == 1
    assert d.current_a == 16.0          # starts in the same tick
    d = rig.step()
    assert d.start_stop_request is None  # only on the edge


def test_without_autostart_plug_in_waits_for_start():
    rig = Rig(mode=0, start_stop=0, auto_start=0, plugged=False)
    rig.step()
    rig.plugged = True
    d = rig.step()
    assert d.start_stop_request is None
    assert d.status == ChargerStatus.WAITING_FOR_START and d.current_a == 0.0
    rig.start_stop = 1
    d = rig.step()
    assert d.current_a == 16.0


def test_restart_with_car_already_plugged_is_not_a_plug_in():
    rig = Rig(mode=0, start_stop=0, auto_start=1, plugged=True)
    d = rig.step()
    assert d.start_stop_request is None and d.current_a == 0.0


# --- Auto: surplus --------------------------------------------------------------------------------

def test_sunny_day_starts_after_the_enable_delay():
    settings = ControlSettings(auto_enable_delay_s=60, auto_smoothing_s=0)
    rig = Rig(settings, **sunny(6000))
    decisions = rig.run(120)
    first_charging = next(i for i, d in enumerate(decisions) if d.current_a > 0)
    assert all(d.status == ChargerStatus.WAITING_FOR_SUN for d in decisions[:first_charging])
    assert (first_charging + 1) * 10 - 10 >= 60   # surplus seen at t=10, start at t>=70
    d = decisions[-1]
    assert d.current_a == pytest.approx(6000 / (3 * V), abs=0.1)
    assert d.bound_by == "surplus"


def test_no_surplus_waits_for_sun():
    rig = Rig(**sunny(1500))   # less than 6 A x 3 phases
    for d in rig.run(600):
        assert d.current_a == 0.0 and d.status == ChargerStatus.WAITING_FOR_SUN
    assert "waiting for sun" in d.reason


def test_passing_cloud_shorter_than_disable_delay_does_not_stop():
    rig = Rig(**sunny(6000))
    rig.run(600)
    assert rig.amps > 6
    rig.pv_ac_w = 0.0                       # cloud for 150 s < 180 s disable delay
    during = rig.run(150)
    assert all(d.current_a >= 6.0 for d in during)
    rig.pv_ac_w = sunny(6000)["pv_ac_w"]
    after = rig.run(300)
    assert all(d.current_a >= 6.0 for d in after)
    assert after[-1].current_a > 8


def test_long_cloud_stops_after_the_disable_delay():
    rig = Rig(**sunny(6000))
    rig.run(600)
    rig.pv_ac_w = 0.0
    during = rig.run(600)
    stopped_at = next(i for i, d in enumerate(during) if d.current_a == 0)
    assert stopped_at * 10 >= 180
    assert during[-1].status == ChargerStatus.WAITING_FOR_SUN


def test_minimum_charge_duration_keeps_charging():
    settings = ControlSettings(auto_enable_delay_s=0, auto_disable_delay_s=0, auto_min_charge_duration_s=300,
                               auto_smoothing_s=0)
    rig = Rig(settings, **sunny(5000))
    d = rig.step()
    assert d.current_a > 0
    rig.pv_ac_w = 0.0
    held = rig.run(280)
    assert all(d.current_a == 6.0 for d in held)
    assert held[-1].bound_by == "min_charge_time"
    later = rig.run(60)
    assert later[-1].current_a == 0.0


def test_low_battery_soc_gives_the_battery_the_surplus():
    # Battery below its ESS active SoC limit, charging 5 kW from PV: the EV waits, status 7.
    rig = Rig(pv_ac_w=5900, battery_w=5000, soc=15, soc_limit=20)
    for d in rig.run(300):
        assert d.current_a == 0.0
    assert d.status == ChargerStatus.LOW_SOC and d.bound_by == "low_soc"
    assert "below its ESS minimum 20%" in d.reason
    # Same power with a full-enough battery: its charging power goes to the EV.
    rig.soc = 80
    d = rig.run(300)[-1]
    assert d.current_a > 6


def test_below_the_ess_minimum_auto_leaves_even_exported_surplus():
    # Battery in its reserve and not charging (e.g. at its charge limit): 6 kW goes to the grid,
    # but Auto still does not start the EV.
    rig = Rig(pv_ac_w=7000, battery_w=0, soc=5, soc_limit=10)
    for d in rig.run(600):
        assert (d.current_a, d.status, d.bound_by) == (0.0, ChargerStatus.LOW_SOC, "low_soc")
    assert "below its ESS minimum 10%" in d.reason


def test_falling_below_the_ess_minimum_stops_a_running_charge_at_once():
    rig = Rig(pv_ac_w=7000, soc=40, soc_limit=10)
    assert rig.run(300)[-1].current_a > 6
    rig.soc_limit = 50          # BatteryLife raised the limit above the SoC
    d = rig.step()
    assert (d.current_a, d.status) == (0.0, ChargerStatus.LOW_SOC)
    rig.soc = 50                # back at the limit: starts again through the enable delay
    d = rig.step()
    assert d.current_a == 0.0 and d.status == ChargerStatus.WAITING_FOR_SUN
    assert rig.run(300)[-1].current_a > 6


def test_battery_priority_soc():
    settings = ControlSettings(battery_priority_soc_pct=90)
    rig = Rig(settings, pv_ac_w=5900, battery_w=5000, soc=70)
    d = rig.run(300)[-1]
    assert (d.current_a, d.status, d.bound_by) == (0.0, ChargerStatus.LOW_SOC, "battery_priority")
    rig.soc = 95
    assert rig.run(300)[-1].current_a > 6


def test_stale_readings_fall_back_to_the_safe_current():
    rig = Rig(**sunny(6000))
    rig.run(600)
    assert rig.amps > 0
    rig.age_s = 45
    d = rig.step()
    assert (d.current_a, d.bound_by) == (0.0, "stale_readings")
    assert "stale (45 s old, limit 30 s)" in d.reason and "fail-safe current 0 A" in d.reason
    safe = Rig(ControlSettings(safe_current_a=8), **sunny(6000))
    safe.age_s = 100
    d = safe.step()
    assert (d.current_a, d.bound_by) == (8.0, "stale_readings")


def test_missing_site_readings_are_stale():
    rig = Rig()
    inputs = ControllerInputs(**{**rig.inputs().__dict__, "site": None})
    d = rig.controller.step(inputs, 10, NOON)
    assert d.current_a == 0.0 and d.bound_by == "stale_readings" and "missing" in d.reason


# --- Fuse -------------------------------------------------------------------------------------------

def test_house_spike_is_cut_at_once_and_recovers_after_the_delay():
    rig = Rig(mode=0, set_current_a=16)
    assert rig.run(30)[-1].current_a == 16.0
    rig.house = (3000.0, 300.0, 300.0)                 # oven on L1: 25 - 13.0 = 11.9 A left
    d = rig.step()
    assert d.current_a == pytest.approx(11.9, abs=0.05)
    assert (d.bound_by, d.status) == ("fuse", ChargerStatus.CHARGING_LIMIT)
    assert "L1" in d.reason
    rig.house = (300.0, 300.0, 300.0)                  # oven off: hold for 30 s
    held = rig.run(20)
    assert all(x.current_a == pytest.approx(11.9, abs=0.05) for x in held)
    assert "fuse recovery" in held[-1].reason
    assert rig.run(20)[-1].current_a == 16.0


def test_saving_new_settings_mid_charge_keeps_the_fuse_hold_and_the_auto_timers():
    rig = Rig(mode=0, set_current_a=16)
    rig.run(30)
    rig.house = (3000.0, 300.0, 300.0)
    rig.step()
    rig.house = (300.0, 300.0, 300.0)
    rig.controller.update_settings(replace(rig.settings, auto_start_margin_w=500.0))
    assert rig.step().bound_by == "fuse"               # still held after the save
    # Auto: a save during the enable delay does not restart the delay
    auto = Rig(ControlSettings(auto_enable_delay_s=60), **sunny(6000))
    assert auto.run(40)[-1].current_a == 0.0
    auto.controller.update_settings(replace(auto.settings, battery_priority_soc_pct=5.0))
    assert auto.run(30)[-1].current_a > 6            # 70 s of surplus: started
    # new limits do apply at once
    auto.controller.update_settings(replace(auto.settings, max_current_a=8.0))
    assert auto.step().current_a == 8.0


def test_house_alone_over_the_fuse_gives_the_ev_nothing():
    rig = Rig(mode=0, set_current_a=16)
    rig.run(20)
    rig.house = (300.0, 6000.0, 300.0)
    d = rig.step()
    assert d.current_a == 0.0 and d.bound_by == "fuse"
    assert "house load alone on L2" in d.reason
    assert d.snapshot.house_w == (300.0, 6000.0, 300.0)   # the house is never reduced


def test_charger_offline_and_errors():
    rig = Rig(mode=0)
    rig.charger_connected = False
    d = rig.step()
    assert (d.current_a, d.status, d.bound_by) == (0.0, ChargerStatus.DISCONNECTED, "charger_offline")
    rig.charger_connected = True
    inputs = rig.inputs()
    broken = ControllerInputs(**{**inputs.__dict__, "ev": EvReadings(
        vehicle_state=VehicleState.ERROR, error_reason="Residual current detected")})
    d = rig.controller.step(broken, 100, NOON)
    assert (d.current_a, d.status) == (0.0, ChargerStatus.RESIDUAL_CURRENT)
    assert "Residual current detected" in d.reason



def test_an_unreachable_charger_s_draw_is_not_counted_as_house_load_in_auto():
    """The charger stops answering while it keeps charging at 16 A (its own safe current): the
    GX still sees the car's 11 kW in its consumption. That draw is neither house load nor a
    deficit: no surplus is computed on it, and after the charger returns Auto carries on from
    the true surplus instead of a smoothed -11 kW."""
    settings = ControlSettings(auto_enable_delay_s=0, auto_disable_delay_s=120,
                               auto_smoothing_s=60)
    rig = Rig(settings, **sunny(12000))
    rig.run(600)
    assert rig.amps == 16.0
    drawing = ev_power(16.0, 3)
    offline = ControllerInputs(**{**rig.inputs().__dict__, "ev": EvReadings(),
                                  "charger_connected": False,
                                  "site": site_for(ev=drawing, **sunny(12000))})
    for t in range(10):
        d = rig.controller.step(offline, rig.t + 10 * (t + 1), NOON)
        assert d.bound_by == "charger_offline"
        assert d.surplus_w is None
        assert d.snapshot is not None and d.snapshot.house_total_w is None
    rig.t += 100
    back = rig.step()
    assert back.surplus_w == pytest.approx(12000.0 - 0.0, abs=1.0)
    assert back.current_a == 16.0

# --- Scheduled --------------------------------------------------------------------------------------

def test_scheduled_mode_charges_only_inside_windows():
    window = ScheduleWindow(start=datetime(2000, 1, 1, 22).time(), end=datetime(2000, 1, 1, 6).time(),
                            days=frozenset({4}), current_a=10)     # Friday night
    settings = ControlSettings(schedule_windows=(window,))
    rig = Rig(settings, mode=2, start=datetime(2026, 6, 5, 21, 0))   # Friday 21:00
    d = rig.step()
    assert (d.current_a, d.status) == (0.0, ChargerStatus.WAITING_FOR_START)
    assert "next window Fri 22:00" in d.reason
    rig.t = 3600 - 10
    d = rig.step()                                                 # Friday 22:00
    assert (d.current_a, d.bound_by) == (10.0, "schedule")
    rig.t = 9 * 3600 - 20
    assert rig.step().current_a == 10.0                            # Saturday 05:59:50
    assert rig.step().current_a == 0.0                             # Saturday 06:00


# --- Input validation -------------------------------------------------------------------------------

@pytest.mark.parametrize("field,value,words", [
    ("mode", 3, "mode must be 0 (Manual), 1 (Auto) or 2 (Scheduled)"),
    ("start_stop", 2, "start_stop must be 0 or 1"),
    ("set_current_a", float("nan"), "set_current_a must be a finite number"),
    ("max_current_a", -1, "max_current_a must be a finite number >= 0"),
    ("auto_start", "yes", "auto_start must be 0 or 1"),
])
def test_bad_inputs_are_refused_with_a_specific_error(field, value, words):
    kwargs = dict(mode=1, start_stop=1, set_current_a=10, max_current_a=16)
    kwargs[field] = value
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        ControllerInputs(**kwargs)


# --- Invariants (hypothesis) ------------------------------------------------------------------------

phase_load = st.floats(min_value=0, max_value=8000, allow_nan=False)
houses = st.tuples(phase_load, phase_load, phase_load)


@hsettings(max_examples=150, deadline=None)
@given(house=houses, ev_now_a=st.floats(0, 32), pv=st.floats(0, 15000), set_a=st.floats(0, 40),
       max_a=st.floats(0, 40), mode=st.sampled_from([0, 1, 2]), phases=st.sampled_from([1, 3]),
       fuse_a=st.sampled_from([16.0, 25.0, 35.0]), battery=st.floats(-5000, 5000), soc=st.floats(0, 100),
       min_a=st.sampled_from([6.0, 8.0]), charger_max=st.sampled_from([10.0, 16.0, 32.0]))
def test_one_decision_respects_fuse_house_and_current_range(house, ev_now_a, pv, set_a, max_a, mode, phases,
                                                           fuse_a, battery, soc, min_a, charger_max):
    settings = ControlSettings(fuse_a=fuse_a, min_current_a=min_a, max_current_a=max(charger_max, min_a),
                               charger_phases=phases, auto_enable_delay_s=0, auto_smoothing_s=0,
                               schedule_windows=(ScheduleWindow(start=NOON.time(), end=NOON.time()),))
    ev_w = ev_power(ev_now_a, phases)
    site = site_for(house, ev_w, pv, battery, soc)
    inputs = ControllerInputs(mode=mode, start_stop=1, set_current_a=set_a, max_current_a=max_a,
                              site=site, ev=EvReadings(vehicle_state=VehicleState.CHARGING, power_w=ev_w))
    d = ChargeController(settings).step(inputs, 1.0, NOON)
    upper = min(settings.max_current_a, max_a)
    assert d.current_a == 0 or settings.min_current_a <= d.current_a <= upper + 1e-9
    assert d.snapshot.house_w == pytest.approx(house)            # the house is never reduced
    used = range(3) if phases == 3 else range(1)
    for p in used:
        house_alone_w = site.grid_w[p] - ev_w[p]
        predicted_w = house_alone_w + d.current_a * V
        if house_alone_w > fuse_a * V:
            assert d.current_a == 0
        else:
            assert predicted_w <= fuse_a * V + 1e-6


@hsettings(max_examples=60, deadline=None)
@given(loads=st.lists(st.tuples(houses, st.floats(0, 12000)), min_size=5, max_size=40),
       mode=st.sampled_from([0, 1]), start_stop=st.sampled_from([0, 1]))
def test_closed_loop_never_overloads_the_fuse_because_of_the_ev(loads, mode, start_stop):
    rig = Rig(mode=mode, start_stop=start_stop, auto_start=0,
              settings=ControlSettings(auto_enable_delay_s=0, auto_smoothing_s=10))
    for house, pv in loads:
        rig.house, rig.pv_ac_w = house, pv
        d = rig.step()
        ev_w = ev_power(d.current_a, d.phases)
        grid_after = site_for(house, ev_w, pv).grid_w
        grid_without = site_for(house, (0.0, 0.0, 0.0), pv).grid_w
        for p in range(3):
            assert grid_after[p] <= 25 * V + 1e-6 or ev_w[p] == 0 or grid_without[p] > 25 * V
            if grid_without[p] > 25 * V:
                assert ev_w[p] == 0
        if start_stop == 0:
            assert d.current_a == 0
        assert d.current_a == 0 or 6.0 <= d.current_a <= 16.0


@pytest.mark.parametrize("text,status", [
    ("Welded contactor", 9), ("RCD tripped", 11), ("Overtemperature", 14), ("Mains undervoltage", 12),
    ("Overvoltage on L2", 13), ("Ground fault", 8), ("Control pilot error", 10), ("firmware crashed", 24),
    (None, 24),
])
def test_charger_errors_map_to_the_closest_status(text, status):
    from phaeton.control.status import error_status
    assert error_status(text) == status


maybe_w = st.one_of(st.none(), st.floats(-20000, 20000), st.just(float("nan")))
maybe_triple = st.tuples(maybe_w, maybe_w, maybe_w)


@hsettings(max_examples=200, deadline=None)
@given(grid=maybe_triple, consumption=maybe_triple, pv=maybe_triple, pv_dc=maybe_w, battery=maybe_w,
       soc=st.one_of(st.none(), st.floats(0, 100)), limit=st.one_of(st.none(), st.floats(0, 100)),
       age=st.one_of(st.none(), st.floats(0, 100)), ev_w=maybe_triple, mode=st.sampled_from([0, 1, 2]),
       state=st.sampled_from(list(VehicleState)), counter=maybe_w)
def test_invalid_or_absent_readings_never_crash_and_keep_the_limits(grid, consumption, pv, pv_dc, battery, soc,
                                                                    limit, age, ev_w, mode, state, counter):
    site = SiteReadings(grid_w=grid, consumption_w=consumption, pv_on_grid_w=pv, pv_dc_w=pv_dc,
                        battery_power_w=battery, battery_soc_pct=soc, active_soc_limit_pct=limit, age_s=age)
    ev = EvReadings(vehicle_state=state, power_w=ev_w, lifetime_energy_kwh=counter)
    controller = ChargeController(ControlSettings(auto_enable_delay_s=0))
    for t in (1.0, 2.0):
        d = controller.step(ControllerInputs(mode=mode, start_stop=1, set_current_a=16, max_current_a=16,
                                             site=site, ev=ev), t, NOON)
        assert d.current_a == 0 or 6 <= d.current_a <= 16
        assert d.reason
    if mode == 1 and any(g is None or math.isnan(g) for g in grid):
        assert d.current_a == 0 and d.bound_by in ("stale_readings", "not_plugged", "charger_error")


def test_auto_without_grid_power_on_a_phase_uses_the_safe_current():
    rig = Rig(**sunny(6000))
    rig.run(300)
    inputs = rig.inputs()
    site = inputs.site
    broken = SiteReadings(**{**site.__dict__, "grid_w": (site.grid_w[0], None, site.grid_w[2])})
    d = rig.controller.step(ControllerInputs(**{**inputs.__dict__, "site": broken}), rig.t + 10, NOON)
    assert (d.current_a, d.bound_by) == (0.0, "stale_readings")
    assert "grid power not reported on L2" in d.reason
    rig.mode = 0
    d = rig.controller.step(ControllerInputs(**{**rig.inputs().__dict__, "site": broken}), rig.t + 20, NOON)
    assert d.current_a == 16 and "fuse not checked: GX grid power not reported on L2" in d.reason


def test_ageing_readings_never_raise_the_current():
    """A grid meter that stopped updating (but is not stale yet) must not let the car's own
    rising draw look like growing surplus: the current is held, never raised."""
    rig = Rig(mode=1, pv_ac_w=9000.0)
    rig.run(200)
    charging_a = rig.amps
    assert 6 <= charging_a < 16
    rig.age_s = 15.0                 # older than 10 s, younger than the 30 s stale limit
    rig.pv_ac_w = 20000.0            # whatever the frozen values would suggest
    held = rig.run(20)
    assert all(d.current_a <= charging_a for d in held)
    assert "holding" in held[-1].reason
    rig.pv_ac_w, rig.house = 0.0, (5000.0, 5000.0, 5000.0)   # lowering (a fuse cut) still works
    assert rig.step().current_a < charging_a
    rig.pv_ac_w, rig.house, rig.age_s = 20000.0, (300.0, 300.0, 300.0), 0.0   # fresh: may rise
    assert max(d.current_a for d in rig.run(300)) > charging_a


def test_fuse_cut_needed_between_ticks_only_when_the_applied_current_breaks_the_fuse():
    controller = ChargeController(ControlSettings(fuse_a=25))
    ev = EvReadings(vehicle_state=VehicleState.CHARGING, power_w=ev_power(16, 3), phases=3)
    calm = site_for(ev=ev_power(16, 3))
    spike = site_for(house=(3000.0, 300.0, 300.0), ev=ev_power(16, 3))   # 12 A left on L1
    assert not controller.fuse_cut_needed(calm, ev, 16.0, 3)
    assert controller.fuse_cut_needed(spike, ev, 16.0, 3)
    assert not controller.fuse_cut_needed(spike, ev, 11.9, 3)       # already below the headroom
    assert not controller.fuse_cut_needed(spike, ev, 0.0, 3)        # not charging
    assert not controller.fuse_cut_needed(replace(spike, age_s=999.0), ev, 16.0, 3)  # stale: the tick decides


def test_a_charger_answering_implausible_values_gets_the_fail_safe_current():
    problem = "charger answers implausible values: station_max_current_a=-16"
    site = site_for()
    ev = EvReadings(vehicle_state=VehicleState.CHARGING, power_w=ev_power(16, 3))

    def decide(safe_a=6.0, **changes):
        controller = ChargeController(ControlSettings(safe_current_a=safe_a))
        inputs = dict(mode=0, start_stop=1, set_current_a=16, max_current_a=16, site=site,
                      ev=ev, charger_connected=False, charger_problem=problem)
        inputs.update(changes)
        return controller.step(ControllerInputs(**inputs), 1.0, NOON)

    d = decide()
    assert (d.enabled, d.current_a, d.status, d.bound_by) == (True, 6.0, 0, "charger_implausible")
    assert d.reason == f"{problem}: fail-safe current 6 A"
    assert decide(safe_a=0.0).current_a == 0.0
    assert decide(max_current_a=5).current_a == 0.0         # /MaxCurrent below 6 A: stop
    assert decide(mode=1).current_a == 6.0                    # in every mode
    assert decide(start_stop=0).enabled is False              # the user's stop still holds
    offline = decide(charger_problem=None)
    assert (offline.current_a, offline.bound_by) == (0.0, "charger_offline")
    with pytest.raises(ValueError, match="charger_problem must be text"):
        ControllerInputs(mode=0, start_stop=1, set_current_a=16, max_current_a=16,
                         charger_problem=3)


def test_an_unknown_vehicle_state_never_charges():
    controller = ChargeController(ControlSettings())
    d = controller.step(ControllerInputs(
        mode=0, start_stop=1, set_current_a=16, max_current_a=16, site=site_for(),
        ev=EvReadings(vehicle_state=VehicleState.UNKNOWN, error_reason="register 1201 NaN")),
        1.0, NOON)
    assert d.current_a == 0 and d.bound_by == "charger_error"
