"""plausibility: which charger answers can be believed (pure)."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from phaeton.chargers.base import ChargerMeasurement, VehicleState
from phaeton.control.plausibility import (
    MAX_LIFETIME_KWH,
    REBASE_CONFIRM_S,
    ChargerBounds,
    CounterState,
    judge_counter,
    judge_measurement,
    max_counter_step_kwh,
    measurement_problems,
    untrusted_reason,
)

BOUNDS = ChargerBounds(wired_phases=3, max_current_a=16.0, nominal_voltage_v=230.0)
POWER_W = BOUNDS.max_power_w(None)          # 3 x 16 A x 230 V x 1.25 = 13.8 kW


def good(**changes) -> ChargerMeasurement:
    values = dict(vehicle_state=VehicleState.CHARGING, voltage_v=(230.0, 231.0, 229.0),
                  current_a=(16.0, 16.0, 16.0), power_w=(3680.0, 3696.0, 3664.0),
                  total_power_w=11040.0, lifetime_energy_kwh=1000.0, applied_current_a=16.0,
                  phases=3, station_max_current_a=32.0)
    values.update(changes)
    return ChargerMeasurement(**values)


def test_a_normal_measurement_is_believed():
    assert measurement_problems(good()) == ()
    assert measurement_problems(ChargerMeasurement(VehicleState.NO_VEHICLE)) == ()   # all None
    # a little meter noise, a phase that is not wired (0 V), a charger error: all true things
    assert measurement_problems(good(current_a=(-0.2, 0.0, 0.0), voltage_v=(230.0, 0.0, 0.0),
                                     vehicle_state=VehicleState.ERROR,
                                     error_reason="charger error (state F)")) == ()


@pytest.mark.parametrize("changes, problem", [
    ({"station_max_current_a": -16.0}, "station_max_current_a=-16"),
    ({"station_max_current_a": 3.4e38}, "station_max_current_a=3.4e+38"),
    ({"current_a": (16.0, float("nan"), 16.0)}, "current_a[L2]=nan"),
    ({"voltage_v": (230.0, 231.0, -5.0)}, "voltage_v[L3]=-5"),
    ({"power_w": (1e20, 0.0, 0.0)}, "power_w[L1]=1e+20"),
    ({"total_power_w": float("inf")}, "total_power_w=inf"),
    ({"applied_current_a": -3.0}, "applied_current_a=-3"),
    ({"phases": 7}, "phases=7"),
    ({"phases": True}, "phases=True"),
    ({"lifetime_energy_kwh": 2.2e304}, "lifetime_energy_kwh=2.2e+304"),
    ({"lifetime_energy_kwh": -1.0}, "lifetime_energy_kwh=-1"),
    ({"session_energy_kwh": float("nan")}, "session_energy_kwh=nan"),
    ({"vehicle_soc_pct": 140.0}, "vehicle_soc_pct=140"),
    ({"current_a": "16"}, "current_a='16'"),
    ({"current_a": (1.0, 2.0, 3.0, 4.0)}, "current_a=(1.0, 2.0, 3.0, 4.0)"),
    ({"vehicle_state": "charging"}, "vehicle_state='charging'"),
    ({"vehicle_state": VehicleState.UNKNOWN,
      "error_reason": "mode-3 state not available (register 1201 reads NaN)"},
     "vehicle_state=unknown (mode-3 state not available (register 1201 reads NaN))"),
    ({"error_reason": 42}, "error_reason=42"),
    ({"extra": None}, "extra=None"),
])
def test_each_field_that_cannot_be_true_is_named(changes, problem):
    assert problem in measurement_problems(good(**changes))


def test_fields_the_charger_always_reports_must_be_there():
    required = frozenset({"voltage_v", "current_a"})
    assert measurement_problems(good(), required) == ()
    assert measurement_problems(good(current_a=(None, 0.0, None)), required) == ()
    nan_meter = ChargerMeasurement(VehicleState.CHARGING, station_max_current_a=32.0)
    assert measurement_problems(nan_meter, required) == ("current_a=NaN", "voltage_v=NaN")
    assert measurement_problems(nan_meter) == ()        # a charger that never measures: fine
    bounds = ChargerBounds(3, 16.0, 230.0, required_readings=required)
    judged = judge_measurement(nan_meter, CounterState(), 0.0, bounds)
    assert judged.reason == "charger answers implausible values: current_a=NaN, voltage_v=NaN"


def test_something_that_is_no_measurement_at_all():
    assert measurement_problems(None) == ("measurement=NoneType",)
    assert measurement_problems({"current_a": 1}) == ("measurement=dict",)


def test_the_reason_says_what_and_shows_at_most_three():
    assert untrusted_reason(["a=1"]) == "charger answers implausible values: a=1"
    assert untrusted_reason(["a=1", "b=2", "c=3", "d=4", "e=5"]) == \
        "charger answers implausible values: a=1, b=2, c=3 (+2 more)"


# ---- the counter -----------------------------------------------------------------------------

def run(readings, start=CounterState(), dt_s=2.0, power_w=POWER_W):
    """Judge (kWh or None) readings dt_s apart; the verdicts."""
    state, verdicts = start, []
    for i, kwh in enumerate(readings):
        verdict = judge_counter(state, kwh, i * dt_s, power_w)
        verdicts.append(verdict)
        state = verdict.state
    return verdicts


def test_counter_follows_real_charging_and_keeps_the_last_good_value_when_missing():
    step = 11.0 * 2 / 3600                     # 11 kW for 2 s
    verdicts = run([1000.0, 1000.0 + step, None, 1000.0 + 3 * step])
    assert [v.problem for v in verdicts] == [None] * 4
    assert [v.value_kwh for v in verdicts] == [1000.0, 1000.0 + step, None, 1000.0 + 3 * step]
    assert verdicts[2].state.last_kwh == 1000.0 + step           # missing: kept


def test_one_huge_reading_is_rejected_and_counting_goes_on_from_the_last_good():
    """Issue 11 item 3: 2.2e304 kWh once must not stick."""
    verdicts = run([1000.0, 2.2e304, 1000.005, 1000.01])
    assert verdicts[1].value_kwh is None and "lifetime_energy_kwh=2.2e+304" in verdicts[1].problem
    assert verdicts[1].state.last_kwh == 1000.0
    assert [v.value_kwh for v in verdicts[2:]] == [1000.005, 1000.01]


def test_jumps_no_charger_can_make_are_rejected():
    limit = max_counter_step_kwh(POWER_W, 2.0)   # 13.8 kW for 2 s plus 10 s of slack
    assert limit == pytest.approx(13800 * 12 / 3.6e6)
    ok, too_much = run([1000.0, 1000.0 + 0.9 * limit]), run([1000.0, 1000.0 + 1.1 * limit])
    assert ok[1].problem is None
    assert too_much[1].value_kwh is None and "can deliver" in too_much[1].problem
    # after an hour away, an hour's worth is fine
    hour = judge_counter(CounterState(1000.0, 0.0), 1010.0, 3600.0, POWER_W)
    assert hour.problem is None and hour.value_kwh == 1010.0


def test_decreasing_and_negative_and_nan_are_rejected_small_rounding_is_not():
    verdicts = run([1000.0, 999.0, -5.0, float("nan"), 999.995])
    assert "lower than the last good" in verdicts[1].problem
    assert "lifetime_energy_kwh=-5" in verdicts[2].problem
    assert "lifetime_energy_kwh=nan" in verdicts[3].problem
    assert verdicts[4].problem is None and verdicts[4].value_kwh == 1000.0   # never backwards


def test_the_time_since_a_value_was_first_seen_bounds_its_step():
    """A counter that updates once a minute: its step covers the whole minute, not the 2 s since
    the last (unchanged) reading."""
    minute_kwh = 11.0 / 60                     # 11 kW for a minute
    verdicts = run([1000.0] * 30 + [1000.0 + minute_kwh])
    assert verdicts[-1].problem is None


def test_a_new_level_that_holds_is_adopted_garbage_never():
    """A reset or replaced meter: the lower level is adopted after it has held
    REBASE_CONFIRM_S without contradicting itself; random values never settle."""
    readings = [1000.0] + [5.0 + 0.001 * i for i in range(60)]
    verdicts = run(readings, dt_s=2.0)
    adopted = [i for i, v in enumerate(verdicts) if v.rebased]
    assert len(adopted) == 1
    assert (adopted[0] - 1) * 2.0 >= REBASE_CONFIRM_S
    assert all(v.value_kwh is None for v in verdicts[1:adopted[0]])
    assert all(v.problem is None for v in verdicts[adopted[0]:])
    assert verdicts[-1].value_kwh == pytest.approx(5.059)
    import random
    noise = random.Random(7)
    garbage = [1000.0] + [noise.uniform(0, 1e6) for _ in range(200)]
    assert not any(v.rebased or (v.problem is None and i) for i, v in enumerate(run(garbage)))


def test_values_beyond_any_lifetime_are_never_adopted():
    verdicts = run([1000.0] + [MAX_LIFETIME_KWH * 10] * 100)
    assert all(v.value_kwh is None and not v.rebased for v in verdicts[1:])
    assert verdicts[-1].state.last_kwh == 1000.0


# ---- the whole measurement -------------------------------------------------------------------

def test_judging_a_measurement():
    first = judge_measurement(good(), CounterState(), 0.0, BOUNDS)
    assert first.trusted and first.reason is None and first.measurement == good()
    # a garbage field: untrusted, the counter state does not move
    bad = judge_measurement(good(station_max_current_a=-16.0, lifetime_energy_kwh=1000.001),
                            first.counter, 2.0, BOUNDS)
    assert not bad.trusted and bad.measurement is None and bad.counter == first.counter
    assert bad.reason == "charger answers implausible values: station_max_current_a=-16"
    # a counter jump alone: untrusted too
    jump = judge_measurement(good(lifetime_energy_kwh=5000.0), first.counter, 4.0, BOUNDS)
    assert not jump.trusted and "lifetime_energy_kwh=5000" in jump.reason
    # a missing counter is no problem: the measurement goes on without one
    missing = judge_measurement(good(lifetime_energy_kwh=None), first.counter, 6.0, BOUNDS)
    assert missing.trusted and missing.measurement.lifetime_energy_kwh is None
    # rounding just below the last good value: the last good value is used
    below = judge_measurement(good(lifetime_energy_kwh=999.999), first.counter, 8.0, BOUNDS)
    assert below.trusted and below.measurement.lifetime_energy_kwh == 1000.0


def test_the_station_maximum_widens_the_power_bound():
    assert BOUNDS.max_power_w(None) == pytest.approx(13800.0)
    assert BOUNDS.max_power_w(32.0) == pytest.approx(27600.0)
    assert BOUNDS.max_power_w(-16.0) == pytest.approx(13800.0)
    assert BOUNDS.max_power_w(10.0) == pytest.approx(13800.0)


garbage_float = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                          st.integers(-10**30, 10**30), st.text(max_size=3), st.booleans())
garbage_triple = st.one_of(st.tuples(garbage_float, garbage_float, garbage_float),
                           st.lists(garbage_float, max_size=5), garbage_float)


@hsettings(max_examples=300, deadline=None)
@given(state=st.one_of(st.sampled_from(list(VehicleState)), garbage_float),
       voltage=garbage_triple, current=garbage_triple, power=garbage_triple, total=garbage_float,
       energy=garbage_float, applied=garbage_float, phases=garbage_float, station=garbage_float,
       soc=garbage_float)
def test_any_garbage_is_judged_without_raising_and_a_believed_one_is_usable(
        state, voltage, current, power, total, energy, applied, phases, station, soc):
    from phaeton.control.readings import EvReadings

    m = ChargerMeasurement(vehicle_state=state, voltage_v=voltage, current_a=current,
                           power_w=power, total_power_w=total, lifetime_energy_kwh=energy,
                           applied_current_a=applied, phases=phases,
                           station_max_current_a=station, vehicle_soc_pct=soc)
    judgement = judge_measurement(m, CounterState(1000.0, 0.0), 2.0, BOUNDS)
    if judgement.trusted:
        ev = EvReadings.from_measurement(judgement.measurement)     # the controller's input
        assert ev.total_w(230.0) >= 0
        for value in (station, applied, total, judgement.measurement.lifetime_energy_kwh):
            assert value is None or (isinstance(value, (int, float)) and math.isfinite(value))
    else:
        assert judgement.reason.startswith("charger answers implausible values: ")
