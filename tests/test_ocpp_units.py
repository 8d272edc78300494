"""OCPP pure parts: meter values, status mapping, rate units, frame screening, Basic auth,
profile building, config validation. No I/O."""
from __future__ import annotations

import base64
import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phaeton.chargers.base import VehicleState
from phaeton.chargers.ocpp import OcppChargerConfig, charging_profile
from phaeton.chargers.ocpp_readings import (
    allowed_rate_units,
    parse_meter_values,
    vehicle_state_for,
)
from phaeton.chargers.ocpp_server import decode_basic_auth
from phaeton.chargers.ocpp_ws import (
    MAX_FRAME_CHARS,
    MAX_NESTING,
    check_frame,
    nesting_depth,
)


def sv(value, measurand=None, unit=None, phase=None):
    item = {"value": value}
    if measurand:
        item["measurand"] = measurand
    if unit:
        item["unit"] = unit
    if phase:
        item["phase"] = phase
    return item


def mv(*values):
    return [{"timestamp": "2026-01-01T00:00:00Z", "sampled_value": list(values)}]


# ---- meter values ------------------------------------------------------------------------------

def test_energy_register_in_wh_kwh_and_default_measurand():
    assert parse_meter_values(mv(sv("12345", unit="Wh",
                                    measurand="Energy.Active.Import.Register"))
                              ).energy_register_kwh == pytest.approx(12.345)
    assert parse_meter_values(mv(sv("12.5", unit="kWh",
                                    measurand="Energy.Active.Import.Register"))
                              ).energy_register_kwh == pytest.approx(12.5)
    # no measurand = Energy.Active.Import.Register, no unit = Wh (OCPP defaults)
    assert parse_meter_values(mv(sv("2000"))).energy_register_kwh == pytest.approx(2.0)


def test_per_phase_values_and_totals():
    sample = parse_meter_values(mv(
        sv("2300", "Power.Active.Import", "W", "L1"), sv("2.3", "Power.Active.Import", "kW", "L2"),
        sv("10", "Current.Import", "A", "L1"), sv("10.5", "Current.Import", "A", "L2"),
        sv("9.5", "Current.Import", "A", "L3"), sv("231", "Voltage", "V", "L1-N"),
        sv("229", "Voltage", "V", "L2"), sv("400", "Voltage", "V", "L1-L2"),
        sv("55.5", "SoC", "Percent")))
    assert sample.power_w == [2300.0, 2300.0, None]
    assert sample.total_power_w == 4600.0          # sum of phases when no total was sent
    assert sample.current_a == [10.0, 10.5, 9.5]
    assert sample.voltage_v == [231.0, 229.0, None]  # line-to-line is not a phase voltage
    assert sample.soc_pct == 55.5
    assert sample.problems == []


def test_total_power_wins_over_phase_sum():
    sample = parse_meter_values(mv(sv("7000", "Power.Active.Import", "W"),
                                   sv("2300", "Power.Active.Import", "W", "L1")))
    assert sample.total_power_w == 7000.0


def test_latest_meter_value_entry_wins():
    sample = parse_meter_values(mv(sv("1000")) + mv(sv("1500")))
    assert sample.energy_register_kwh == 1.5


@pytest.mark.parametrize("bad, words", [
    (sv("abc", "Power.Active.Import", "W"), "not a number"),
    (sv("nan", "Power.Active.Import", "W"), "not finite"),
    (sv("10", "Energy.Active.Import.Register", "varh"), "not Wh or kWh"),
    (sv("10", "Power.Active.Import", "VA"), "not W or kW"),
    (sv("10", "Current.Import", "mA", "L1"), "not A"),
    (sv("130", "SoC", "Percent"), "outside 0..100"),
    (sv("10", "Current.Import", "A", "L7"), "phase 'L7'"),
    ("just text", "not an object"),
])
def test_bad_sampled_values_are_skipped_with_a_reason(bad, words):
    sample = parse_meter_values(mv(bad, sv("5000")))
    assert sample.energy_register_kwh == 5.0       # the good value still counts
    assert len(sample.problems) == 1 and words in sample.problems[0]


def test_meter_value_shapes_that_are_not_lists():
    assert "not a list" in parse_meter_values({"x": 1}).problems[0]
    assert "without sampledValue" in parse_meter_values([{"timestamp": "t"}]).problems[0]


@given(st.lists(st.dictionaries(st.sampled_from(["value", "measurand", "unit", "phase", "x"]),
                                st.one_of(st.text(max_size=8), st.integers(), st.none(),
                                          st.floats())), max_size=6))
def test_parser_never_raises_on_junk(values):
    parse_meter_values([{"sampled_value": values}])


# ---- status mapping ----------------------------------------------------------------------------

@pytest.mark.parametrize("status, finished, state", [
    ("Available", False, VehicleState.NO_VEHICLE),
    ("Reserved", False, VehicleState.NO_VEHICLE),
    ("Preparing", False, VehicleState.CONNECTED),
    ("SuspendedEVSE", True, VehicleState.CONNECTED),
    ("SuspendedEV", False, VehicleState.CONNECTED),
    ("SuspendedEV", True, VehicleState.CHARGED),
    ("Finishing", False, VehicleState.CONNECTED),
    ("Finishing", True, VehicleState.CHARGED),
    ("Charging", False, VehicleState.CHARGING),
])
def test_status_mapping(status, finished, state):
    assert vehicle_state_for(status, car_finished=finished) == (state, None)


def test_error_statuses_carry_a_reason():
    assert vehicle_state_for("Faulted", "GroundFailure") == (VehicleState.ERROR, "GroundFailure")
    assert vehicle_state_for("Faulted", "OtherError", "RCD tripped") == (
        VehicleState.ERROR, "OtherError: RCD tripped")
    assert vehicle_state_for("Unavailable") == (VehicleState.ERROR, "unavailable")
    state, reason = vehicle_state_for("Exploded")
    assert state is VehicleState.ERROR and "Exploded" in reason


@pytest.mark.parametrize("value, units", [
    (None, ("A",)), ("", ("A",)), ("Current", ("A",)), ("Power", ("W",)),
    ("Current,Power", ("A", "W")), ("Power, Current", ("A", "W")), ("W", ("W",)),
    ("banana", ("A",)),
])
def test_allowed_rate_units(value, units):
    assert allowed_rate_units(value) == units


# ---- frames ------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    '[2,"1","Heartbeat",{}]', '[3,"1",{}]', '[4,"1","NotImplemented","x",{}]'])
def test_well_formed_frames_pass(raw):
    assert check_frame(raw).ok


@pytest.mark.parametrize("raw, code", [
    ('[2,"a1","Heartbeat"]', "FormationViolation"),
    ('[2,"a1","Heartbeat",{},5]', "FormationViolation"),
    ('[2,"a1",7,{}]', "FormationViolation"),
    ('[2,"a1","Heartbeat",[]]', "FormationViolation"),
    ('[2, "a1", "Heartbeat", {', "FormationViolation"),
    ('[8,"a1",{}]', "ProtocolError"),
])
def test_broken_calls_with_an_id_get_a_call_error(raw, code):
    verdict = check_frame(raw)
    assert not verdict.ok
    reply = json.loads(verdict.reply)
    assert reply[:3] == [4, "a1", code] and len(reply) == 5


@pytest.mark.parametrize("raw, code", [
    ("", "FormationViolation"), ("hello", "FormationViolation"), ("{}", "FormationViolation"),
    ("[]", "FormationViolation"), ("[2]", "FormationViolation"), ("null", "FormationViolation"),
    ("[2, 5, \"Heartbeat\", {}]", "FormationViolation"), ("[true, 5, {}]", "ProtocolError"),
    ("[[1], 5, {}]", "ProtocolError"), ('{"a": [2, "x"]}', "FormationViolation"),
    ("[" * 100_000, "FormationViolation"), ('{"a":' * 5000, "FormationViolation"),
])
def test_frames_without_a_readable_id_get_a_call_error_with_id_minus_one(raw, code):
    # OCPP-J 2.0.1 part 4, 4.2.3: "When also the MessageId cannot be read, the CALLERROR SHALL
    # contain "-1" as MessageId." (OCPP-J 1.6 does not say; we follow the later text.)
    verdict = check_frame(raw)
    assert not verdict.ok and verdict.reason
    assert json.loads(verdict.reply)[:3] == [4, "-1", code]


@pytest.mark.parametrize("raw", ['[3,"x"]', '[3, "x", {}, 1]', '[4,"x","a"]', "[3]",
                                 '[3, "x", {', '[4, "y", ' + "[" * 5000])
def test_broken_answers_are_never_answered(raw):
    verdict = check_frame(raw)
    assert not verdict.ok and verdict.reply is None and verdict.reason


@pytest.mark.parametrize("raw, reason", [
    ('[2, "deep1", "Heartbeat", ' + "[" * 100_000, "nested too deeply"),
    ('[2,"deep2","DataTransfer",{"vendorId":"x","data":' + '{"a":' * 40 + "1" + "}" * 40 + "}]",
     "nested deeper than 16"),
    ('[2,"big","Heartbeat",{"pad":"' + "x" * (MAX_FRAME_CHARS + 1) + '"}]', "longer than"),
])
def test_deep_or_oversized_calls_get_a_formation_violation_with_their_id(raw, reason):
    verdict = check_frame(raw)
    assert not verdict.ok and reason in verdict.reason
    assert json.loads(verdict.reply)[:3] == [4, raw.split('"')[1], "FormationViolation"]


def test_message_size_limit_is_below_the_probe_in_the_hardening_tests():
    assert 64 * 1024 <= MAX_FRAME_CHARS < 300 * 1024


def test_nesting_depth_is_iterative_and_stops_at_the_limit():
    assert nesting_depth(1, 5) == 0 and nesting_depth([], 5) == 1
    assert nesting_depth([2, "x", "A", {"a": [{"b": 1}]}], 16) == 4
    deep = []
    for _ in range(100_000):        # far beyond the recursion limit
        deep = [deep]
    assert 16 < nesting_depth(deep, 16) < 100


def test_deepest_real_frame_is_well_within_the_limit():
    profile = {"connectorId": 1, "csChargingProfiles": {"chargingSchedule": {
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6}]}}}
    assert check_frame(json.dumps([2, "p", "SetChargingProfile", profile])).ok
    assert nesting_depth([2, "p", "SetChargingProfile", profile], MAX_NESTING) == 6


@given(st.text(max_size=40))
def test_frame_check_never_raises(text):
    check_frame(text)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                    max_leaves=30))
def test_frame_check_never_raises_on_any_json(value):
    verdict = check_frame(json.dumps(value))
    if verdict.reply is not None:
        assert json.loads(verdict.reply)[0] == 4


# ---- Basic auth, profiles, config --------------------------------------------------------------

def test_decode_basic_auth():
    header = "Basic " + base64.b64encode(b"CP1:pa:ss").decode()
    assert decode_basic_auth(header) == ("CP1", "pa:ss")
    for bad in ("Bearer abc", "Basic", "Basic !!!", "Basic " + base64.b64encode(b"nocolon")
                .decode()):
        with pytest.raises(ValueError):
            decode_basic_auth(bad)


def test_charging_profile_in_amps_and_watts():
    amps = charging_profile("TxProfile", 7, 10.04, "A", 230, 3, 1_700_000_000, transaction_id=5)
    assert amps.transaction_id == 5 and amps.stack_level == 1
    assert amps.charging_schedule.charging_rate_unit == "A"
    assert amps.charging_schedule.charging_schedule_period[0].limit == 10.0
    assert amps.charging_schedule.start_schedule == "2023-11-14T22:13:20Z"
    watts = charging_profile("TxDefaultProfile", 8, 16, "W", 230, 1, 1_700_000_000)
    assert watts.charging_schedule.charging_rate_unit == "W"
    assert watts.charging_schedule.charging_schedule_period[0].limit == 3680.0
    assert Decimal(str(watts.charging_schedule.charging_schedule_period[0].limit)) % Decimal(
        "0.1") == 0


@pytest.mark.parametrize("kwargs, words", [
    ({"charge_point_id": ""}, "charge_point_id"),
    ({"charge_point_id": "a/b"}, "charge_point_id"),
    ({"charge_point_id": "CP", "connector_id": 0}, "connector_id"),
    ({"charge_point_id": "CP", "meter_interval_s": 0}, "meter_interval_s"),
    ({"charge_point_id": "CP", "heartbeat_interval_s": 2.5}, "heartbeat_interval_s"),
    ({"charge_point_id": "CP", "call_timeout_s": 0}, "call_timeout_s"),
    ({"charge_point_id": "CP", "phases": 2}, "phases"),
    ({"charge_point_id": "CP", "voltage_v": 20}, "voltage_v"),
    ({"charge_point_id": "CP", "password": ""}, "password"),
])
def test_config_errors_are_specific(kwargs, words):
    with pytest.raises(ValueError, match=words):
        OcppChargerConfig(**kwargs)
