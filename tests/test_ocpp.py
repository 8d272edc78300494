"""OCPP 1.6J end to end: our central system + OcppCharger <-> the simulated charge point, over
real WebSockets on loopback (free ports), in accelerated time. Assertions are what the
controller sees through the Charger interface (and what the station actually applies)."""
from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

import aiohttp
import pytest
from ocpp.v16 import call

from phaeton.chargers.base import Capability, ChargerUnavailable, VehicleState
from phaeton.chargers.ocpp import (
    MEASURANDS_BASIC,
    MEASURANDS_FULL,
    TX_DEFAULT_PROFILE_ID,
    TX_PROFILE_ID,
    OcppCharger,
    OcppChargerConfig,
)
from phaeton.chargers.ocpp_server import OcppCentralSystem
from phaeton.clock import ScaledClock
from phaeton.sim.ev import SimulatedEV
from phaeton.sim.ocpp_cp import SimulatedChargePoint

REPO_ROOT = Path(__file__).resolve().parent.parent
SPEED = 50.0          # simulated seconds per real second
WAIT_S = 5.0          # upper bound for "eventually" (real seconds); never a timing assertion


async def eventually(predicate, what: str, timeout_s: float = WAIT_S):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.01)


async def state_of(charger) -> VehicleState | None:
    try:
        return (await charger.read()).vehicle_state
    except ChargerUnavailable:
        return None


async def ocpp_status(charger) -> str | None:
    """The connector status as the controller can see it (measurement extra)."""
    try:
        return (await charger.read()).extra["ocpp_status"]
    except ChargerUnavailable:
        return None


async def measured(charger, name: str):
    """One field of the current measurement, None while there is none."""
    try:
        return getattr(await charger.read(), name)
    except ChargerUnavailable:
        return None


def profiles_sent(sim, purpose=None):
    """SetChargingProfile payloads the station received (camelCase, as on the wire)."""
    found = [payload for action, payload in sim.received if action == "SetChargingProfile"]
    if purpose:
        found = [p for p in found if p["csChargingProfiles"]["chargingProfilePurpose"] == purpose]
    return found


async def _is(value_coro, expected) -> bool:
    return (await value_coro) == expected


async def _more(value_coro, threshold) -> bool:
    value = await value_coro
    return value is not None and value > threshold


class Rig:
    def __init__(self):
        self.clock = ScaledClock(SPEED)
        self.central = OcppCentralSystem(host="127.0.0.1", port=0)
        self.chargers: list[OcppCharger] = []
        self.sims: list[SimulatedChargePoint] = []

    async def charger(self, cp_id="CP1", **config) -> OcppCharger:
        config.setdefault("call_timeout_s", 2.0)
        charger = OcppCharger(OcppChargerConfig(cp_id, **config), self.central, self.clock)
        await charger.start()
        self.chargers.append(charger)
        return charger

    async def sim(self, cp_id="CP1", ev=None, **options) -> SimulatedChargePoint:
        options.setdefault("reconnect_delay_s", 2.0)
        sim = SimulatedChargePoint(self.central.url_for(cp_id), ev or SimulatedEV(), self.clock,
                                   **options)
        await sim.start()
        self.sims.append(sim)
        return sim

    async def pair(self, charger_config=None, ev=None, **sim_options):
        charger = await self.charger(**(charger_config or {}))
        sim = await self.sim(ev=ev, **sim_options)
        await eventually(lambda: charger.configured and sim.connected, "charger configured")
        return charger, sim

    async def close(self):
        for sim in self.sims:
            await sim.stop()
        for charger in self.chargers:
            await charger.stop()
        await self.central.stop()


@pytest.fixture
async def rig():
    rig = Rig()
    yield rig
    await rig.close()


# ---- the whole session ----------------------------------------------------------------------

async def test_whole_session_life_cycle(rig):
    ev = SimulatedEV(capacity_kwh=60, soc_pct=40)
    charger, sim = await rig.pair({"meter_interval_s": 10}, ev=ev)

    assert charger.connection_text == "OCPP 1.6J CP1"
    assert charger.identity.manufacturer == "Phaeton" and charger.identity.serial == "SIM0001"
    assert Capability.PHASE_SWITCHING not in charger.capabilities
    assert (await charger.read()).vehicle_state is VehicleState.NO_VEHICLE
    # the station was told what to sample and how often
    assert sim.configuration["MeterValuesSampledData"] == MEASURANDS_FULL
    assert sim.configuration["MeterValueSampleInterval"] == "10"

    await charger.set_current(10)
    assert sim.offered_current_a() == 10.0
    assert charger.last_error is None

    await sim.plug_in()          # Authorize + StartTransaction
    await eventually(lambda: sim.transaction_id is not None, "transaction started")
    assert charger.transaction_id == sim.transaction_id
    await eventually(lambda: state_of(charger), "readable")
    await eventually(lambda: measured(charger, "total_power_w"), "meter values arrived")
    m = await charger.read()
    assert m.vehicle_state is VehicleState.CHARGING
    assert m.current_a == (10.0, 10.0, 10.0)
    assert m.voltage_v == (230.0, 230.0, 230.0)
    assert m.total_power_w == pytest.approx(6900.0)
    assert m.applied_current_a == 10.0
    first_energy = m.session_energy_kwh
    await eventually(lambda: _more(measured(charger, "session_energy_kwh"), first_energy + 0.05),
                     "session energy rises")
    m = await charger.read()
    assert m.lifetime_energy_kwh == pytest.approx(sim.meter_wh / 1000.0, abs=0.05)
    assert m.session_energy_kwh == pytest.approx(
        (sim.meter_wh - sim.meter_start_wh) / 1000.0, abs=0.05)
    assert m.vehicle_soc_pct == pytest.approx(ev.soc_pct, abs=0.5)
    assert {Capability.SESSION_ENERGY, Capability.VEHICLE_SOC} <= charger.capabilities

    # below 6 A pauses: the station suspends, the controller sees a connected, idle car
    await charger.set_current(4.5)
    assert sim.offered_current_a() == 0.0
    assert sim.status == "SuspendedEVSE"
    await eventually(lambda: _is(ocpp_status(charger), "SuspendedEVSE"), "status reported")
    m = await charger.read()
    assert m.vehicle_state is VehicleState.CONNECTED and m.applied_current_a == 0.0
    soc_paused = ev.soc_pct
    await eventually(lambda: _is(measured(charger, "total_power_w"), 0.0), "meter shows no power")
    assert ev.soc_pct == pytest.approx(soc_paused, abs=0.05)

    # resume
    await charger.set_current(16)
    assert sim.offered_current_a() == 16.0
    await eventually(lambda: state_of(charger), "readable")
    await eventually(lambda: _is(ocpp_status(charger), "Charging"), "charging again")
    await eventually(lambda: _is(measured(charger, "current_a"), (16.0, 16.0, 16.0)),
                     "16 A measured")

    # disable: limit 0 and the transaction is stopped remotely
    await charger.set_enabled(False)
    await eventually(lambda: sim.transaction_id is None, "remote stop")
    await eventually(lambda: charger.transaction_id is None, "stop seen by the charger")
    await eventually(lambda: _is(ocpp_status(charger), "Finishing"), "Finishing reported")
    m = await charger.read()
    assert m.vehicle_state is VehicleState.CONNECTED
    assert m.session_energy_kwh > 0.1                     # the finished session's energy
    assert sim.offered_current_a() == 0.0

    # enable: remote start of a new transaction, charging at the requested 16 A
    await charger.set_enabled(True)
    await eventually(lambda: sim.transaction_id is not None, "remote start")
    await eventually(lambda: _is(ocpp_status(charger), "Charging"), "charging after remote start")
    assert sim.offered_current_a() == 16.0
    assert charger.transaction_id == sim.transaction_id

    # unplug: transaction ends, no vehicle
    await sim.plug_out()
    await eventually(lambda: _is(ocpp_status(charger), "Available"), "available")
    m = await charger.read()
    assert m.vehicle_state is VehicleState.NO_VEHICLE
    assert charger.transaction_id is None
    assert m.session_energy_kwh is None


async def test_transaction_ids_increase(rig):
    _, sim = await rig.pair()
    ids = []
    for _ in range(3):
        await sim.plug_in()
        await eventually(lambda: sim.transaction_id is not None, "started")
        ids.append(sim.transaction_id)
        await sim.plug_out()
    assert ids == sorted(ids) and len(set(ids)) == 3


async def test_full_car_reads_charged(rig):
    ev = SimulatedEV(capacity_kwh=5, soc_pct=99.0, taper_start_pct=100.0)
    charger, sim = await rig.pair({"meter_interval_s": 5}, ev=ev, meter_interval_s=60)
    await charger.set_current(16)
    await sim.plug_in()
    await eventually(lambda: ev.full, "car full", timeout_s=10)
    await eventually(lambda: _is(ocpp_status(charger), "SuspendedEV"), "SuspendedEV reported")
    assert (await charger.read()).vehicle_state is VehicleState.CHARGED
    # removing the car makes it NO_VEHICLE again
    await sim.plug_out()
    await eventually(lambda: _is(ocpp_status(charger), "Available"), "available")
    assert (await charger.read()).vehicle_state is VehicleState.NO_VEHICLE


async def test_car_that_never_charged_is_connected_not_charged(rig):
    ev = SimulatedEV(wants_charge=False)
    charger, sim = await rig.pair(ev=ev)
    await charger.set_current(16)
    await sim.plug_in()
    await eventually(lambda: _is(ocpp_status(charger), "SuspendedEV"), "SuspendedEV")
    assert (await charger.read()).vehicle_state is VehicleState.CONNECTED


async def test_fault_is_reported_with_its_error_code(rig):
    charger, sim = await rig.pair()
    await sim.set_fault("GroundFailure")
    await eventually(lambda: _is(ocpp_status(charger), "Faulted"), "faulted")
    m = await charger.read()
    assert m.vehicle_state is VehicleState.ERROR and m.error_reason == "GroundFailure"
    await sim.clear_fault()
    await eventually(lambda: _is(ocpp_status(charger), "Available"), "cleared")
    assert (await charger.read()).vehicle_state is VehicleState.NO_VEHICLE


# ---- limits: TxProfile vs TxDefault, units, reconnects ---------------------------------------

async def test_tx_default_without_transaction_and_tx_profile_during_one(rig):
    charger, sim = await rig.pair()
    await charger.set_current(11)
    defaults = profiles_sent(sim, "TxDefaultProfile")
    assert profiles_sent(sim, "TxProfile") == []
    assert defaults[-1]["connectorId"] == 1
    profile = defaults[-1]["csChargingProfiles"]
    assert profile["chargingProfileId"] == TX_DEFAULT_PROFILE_ID
    assert profile["chargingSchedule"]["chargingRateUnit"] == "A"
    assert profile["chargingSchedule"]["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 11.0}]
    assert "numberPhases" not in profile["chargingSchedule"]["chargingSchedulePeriod"][0]

    await sim.plug_in()
    await eventually(lambda: profiles_sent(sim, "TxProfile"), "TxProfile for the transaction")
    await charger.set_current(7)
    tx_profile = profiles_sent(sim, "TxProfile")[-1]
    assert tx_profile["connectorId"] == 1
    assert tx_profile["csChargingProfiles"]["transactionId"] == sim.transaction_id
    assert tx_profile["csChargingProfiles"]["chargingProfileId"] == TX_PROFILE_ID
    assert profiles_sent(sim, "TxDefaultProfile")[-1]["csChargingProfiles"][
        "chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 7.0
    assert sim.offered_current_a() == 7.0

    # after the transaction the station drops the TxProfile; the TxDefault carries the limit
    await sim.plug_out()
    assert not any(p["charging_profile_purpose"] == "TxProfile" for _, p in sim.profiles)
    assert sim.offered_current_a() == 7.0


async def test_same_limit_is_not_resent_but_a_change_is(rig):
    charger, sim = await rig.pair()
    await charger.set_current(10)
    count = len(profiles_sent(sim))
    await charger.set_current(10)
    await charger.set_current(10.0)
    assert len(profiles_sent(sim)) == count
    await charger.set_current(12)
    assert len(profiles_sent(sim)) == count + 1


async def test_station_profile_rules(rig):
    """The simulated station follows OCPP 1.6 purposes and stacking (through real calls)."""
    from phaeton.chargers.ocpp import charging_profile
    charger, sim = await rig.pair(max_current_a=32)
    now = rig.clock.time() - 10

    async def send(connector, purpose, pid, limit, tx=None, level=None):
        profile = charging_profile(purpose, pid, limit, "A", 230, 3, now, tx)
        if level is not None:
            profile.stack_level = level
        result = await charger.call(call.SetChargingProfile(connector_id=connector,
                                                            cs_charging_profiles=profile))
        return result.status

    assert await send(1, "TxProfile", 1, 8) == "Rejected"            # no transaction
    assert await send(0, "TxDefaultProfile", 2, 20) == "Accepted"     # all connectors
    assert sim.offered_current_a() == 20.0
    assert await send(1, "TxDefaultProfile", 3, 14) == "Accepted"     # connector's own wins
    assert sim.offered_current_a() == 14.0
    assert await send(1, "TxDefaultProfile", 4, 9, level=5) == "Accepted"  # higher stack wins
    assert sim.offered_current_a() == 9.0
    assert await send(1, "ChargePointMaxProfile", 5, 6) == "Rejected"  # connector 0 only
    assert await send(0, "ChargePointMaxProfile", 5, 6) == "Accepted"
    assert sim.offered_current_a() == 6.0                            # min with the station cap
    result = await charger.call(call.ClearChargingProfile(id=5))
    assert result.status == "Accepted" and sim.offered_current_a() == 9.0
    result = await charger.call(call.ClearChargingProfile(id=999))
    assert result.status == "Unknown"


async def test_w_only_station_gets_watts(rig):
    charger, sim = await rig.pair({"phases": 3, "voltage_v": 230}, rate_units="Power")
    assert charger.rate_unit == "W"
    await charger.set_current(10)
    assert charger.last_error is None
    schedule = profiles_sent(sim)[-1]["csChargingProfiles"]["chargingSchedule"]
    assert schedule["chargingRateUnit"] == "W"
    assert schedule["chargingSchedulePeriod"][0]["limit"] == 6900.0
    assert sim.offered_current_a() == pytest.approx(10.0)
    await sim.plug_in()
    await eventually(lambda: _is(measured(charger, "current_a"), (10.0, 10.0, 10.0)),
                     "car draws 10 A")


async def test_limit_reapplied_after_reconnect_with_boot(rig):
    charger, sim = await rig.pair()
    await charger.set_current(12)
    await sim.disconnect()
    sim.profiles.clear()                        # a rebooted station forgot our profiles
    await eventually(lambda: not charger.connected, "disconnect seen")
    assert "connection closed" in charger.last_error
    with pytest.raises(ChargerUnavailable, match="not connected|connection closed"):
        await charger.read()
    with pytest.raises(ChargerUnavailable):
        await charger.set_current(8)            # remembered, applied on reconnect
    await eventually(lambda: charger.configured and sim.offered_current_a() == 8.0,
                     "limit re-applied after reconnect")
    assert sim.boots == 2 and sim.connections == 2


async def test_limit_reapplied_after_reconnect_without_boot(rig):
    charger, sim = await rig.pair(boot_on_reconnect=False)
    await sim.plug_in()
    await charger.set_current(13)
    await sim.disconnect()
    sim.profiles.clear()
    await eventually(lambda: sim.connections == 2 and sim.connected, "reconnected")
    await eventually(lambda: sim.offered_current_a() == 13.0, "limit re-applied without boot")
    assert sim.boots == 1
    tx_profile = profiles_sent(sim, "TxProfile")[-1]
    assert tx_profile["csChargingProfiles"]["transactionId"] == sim.transaction_id


async def test_second_connection_for_same_id_replaces_the_first(rig):
    charger, first = await rig.pair(reconnect_delay_s=10_000)
    second = await rig.sim(reconnect_delay_s=10_000)
    await eventually(lambda: second.connected and not first.connected, "second took over")
    await eventually(lambda: charger.configured, "configured on the new connection")
    await charger.set_current(9)
    assert second.offered_current_a() == 9.0
    assert charger.connected


# ---- meter values ------------------------------------------------------------------------------

async def test_station_without_soc_gets_basic_measurands(rig):
    charger, sim = await rig.pair(supports_soc=False)
    assert sim.configuration["MeterValuesSampledData"] == MEASURANDS_BASIC
    await charger.set_current(16)
    await sim.plug_in()
    await eventually(lambda: measured(charger, "total_power_w"), "power measured")
    m = await charger.read()
    assert m.vehicle_soc_pct is None and Capability.VEHICLE_SOC not in charger.capabilities


async def test_energy_in_kwh_is_understood(rig):
    charger, _ = await rig.pair(energy_unit="kWh", lifetime_energy_wh=2_345_678)
    sim_reply = await charger.call(call.TriggerMessage(requested_message="MeterValues",
                                                       connector_id=1))
    assert sim_reply.status == "Accepted"
    await eventually(lambda: measured(charger, "lifetime_energy_kwh"), "energy arrived")
    assert (await charger.read()).lifetime_energy_kwh == pytest.approx(2345.678, abs=0.001)


async def test_id_tag_allow_list_refuses_unknown_cards(rig):
    charger, sim = await rig.pair({"id_tags": frozenset({"MYCARD"})})
    await sim.plug_in()                         # the simulator presents SIMTAG
    await eventually(lambda: _is(ocpp_status(charger), "Preparing"), "preparing")
    assert sim.transaction_id is None and charger.transaction_id is None
    assert (await charger.read()).vehicle_state is VehicleState.CONNECTED
    # a station that starts without asking first gets Invalid and no transaction is tracked
    await sim.plug_out()
    sim.authorize_before_start = False
    await sim.plug_in()
    assert sim.starts_refused == 1
    assert sim.transaction_id is None and charger.transaction_id is None
    # our own remote start tag is always accepted
    await charger.set_enabled(True)
    await eventually(lambda: sim.transaction_id is not None, "remote start accepted")
    assert charger.transaction_id == sim.transaction_id


# ---- refused connections -------------------------------------------------------------------------

async def test_unknown_charge_point_id_is_refused(rig, caplog):
    charger = await rig.charger("CP1")
    caplog.set_level(logging.WARNING)
    stranger = await rig.sim("EVIL9")
    await eventually(lambda: stranger.last_error, "refused")
    assert "404" in stranger.last_error
    assert not stranger.connected and not charger.connected
    assert ("EVIL9", "unknown charge point id 'EVIL9'") in rig.central.refusals
    assert "unknown charge point id" in caplog.text


async def test_wrong_or_missing_password_is_refused(rig):
    charger = await rig.charger("CP1", password="s3cret")
    wrong = await rig.sim(password="guess")
    await eventually(lambda: wrong.last_error, "refused")
    assert "401" in wrong.last_error and not charger.connected
    await wrong.stop()
    anonymous = await rig.sim()
    await eventually(lambda: anonymous.last_error, "refused")
    assert "401" in anonymous.last_error
    await anonymous.stop()
    assert [r for _, r in rig.central.refusals][:2] == [
        "wrong password", "HTTP Basic authentication required"]
    right = await rig.sim(password="s3cret")
    await eventually(lambda: charger.configured, "accepted with the right password")
    assert right.connected


async def test_wrong_subprotocol_is_refused(rig):
    charger = await rig.charger("CP1")
    sim = await rig.sim(subprotocol="ocpp2.0.1")
    await eventually(lambda: sim.last_error, "refused")
    assert "400" in sim.last_error and not charger.connected
    assert "subprotocol ocpp1.6 required" in rig.central.refusals[-1][1]


# ---- garbage and unknown actions ---------------------------------------------------------------

async def test_malformed_frames_get_call_errors_or_are_ignored(rig):
    charger, sim = await rig.pair()
    await sim.send_raw("this is not json")                     # nothing to answer
    await sim.send_raw('{"an": "object"}')                     # not an array
    await sim.send_raw('[2, "g1", "Heartbeat"]', reply_id="g1")  # call with 3 elements
    await sim.send_raw('[2, "g2", "Heartbeat", {}', reply_id="g2")  # broken JSON, id readable
    await sim.send_raw('[9, "g3", {}]', reply_id="g3")          # unknown message type
    await sim.send_raw('[2, "g4", "StatusNotification", {"connectorId": "one"}]',
                       reply_id="g4")                           # schema violation
    await eventually(lambda: len(sim.raw_replies) == 4, "four CallErrors")
    assert sim.raw_replies["g1"][:3] == [4, "g1", "FormationViolation"]
    assert sim.raw_replies["g2"][:3] == [4, "g2", "FormationViolation"]
    assert sim.raw_replies["g3"][:3] == [4, "g3", "ProtocolError"]
    assert sim.raw_replies["g4"][0] == 4
    # the connection and the service carry on
    assert charger.connected and sim.connected
    await charger.set_current(14)
    assert sim.offered_current_a() == 14.0 and charger.last_error is None


async def test_unknown_action_from_the_station_gets_a_call_error(rig):
    charger, sim = await rig.pair()
    await sim.send_raw(json.dumps([2, "u1", "DataTransfer", {"vendorId": "acme"}]),
                       reply_id="u1")
    await sim.send_raw(json.dumps([2, "u2", "BrewCoffee", {}]), reply_id="u2")
    await eventually(lambda: len(sim.raw_replies) == 2, "answers")
    assert sim.raw_replies["u1"][:3] == [4, "u1", "NotImplemented"]
    assert sim.raw_replies["u2"][0] == 4 and sim.raw_replies["u2"][2] in (
        "NotImplemented", "NotSupported")
    assert charger.connected


async def test_unknown_action_to_the_station_is_reported_not_raised_wildly(rig):
    charger, sim = await rig.pair()
    with pytest.raises(ChargerUnavailable, match="NotImplemented"):
        await charger.call(call.UnlockConnector(connector_id=1))
    assert charger.connected
    await charger.set_current(6)
    assert sim.offered_current_a() == 6.0


# ---- a station that refuses, errors or hangs ----------------------------------------------------

@pytest.mark.parametrize("answer, words", [("Rejected", "Rejected"),
                                           ("CallError", "CallError InternalError")])
async def test_refused_profile_is_reported_and_retried(rig, answer, words):
    charger, sim = await rig.pair()
    sim.profile_answer = answer
    await charger.set_current(10)               # does not raise into the controller
    assert words in charger.last_error and "TxDefaultProfile" in charger.last_error
    assert charger.connected
    assert (await charger.read()).applied_current_a is None
    sim.profile_answer = "Accepted"
    await charger.set_current(10)               # same value: retried because it failed
    assert charger.last_error is None
    assert sim.offered_current_a() == 10.0
    assert (await charger.read()).applied_current_a == 10.0


async def test_station_that_never_answers_times_out_honestly(rig):
    charger, sim = await rig.pair({"call_timeout_s": 0.3}, profile_answer="silent")
    await charger.set_current(10)
    assert "no answer within 0.3 s" in charger.last_error
    assert charger.connected                    # the link itself is alive
    m = await charger.read()                    # and the service still reports
    assert m.vehicle_state is VehicleState.NO_VEHICLE and m.applied_current_a is None
    await sim.plug_in()                         # the station's own calls still work
    await eventually(lambda: charger.transaction_id is not None, "transaction seen")
    sim.profile_answer = "Accepted"
    await charger.set_current(10)
    assert charger.last_error is None and sim.offered_current_a() == 10.0


# ---- input checking and the not-connected contract -----------------------------------------------

async def test_not_connected_contract(rig):
    charger = await rig.charger("CP1")
    assert not charger.connected and charger.identity is None
    assert charger.last_error
    with pytest.raises(ChargerUnavailable, match="OCPP 1.6J CP1"):
        await charger.read()
    with pytest.raises(ChargerUnavailable):
        await charger.set_current(10)
    with pytest.raises(ChargerUnavailable):
        await charger.set_enabled(False)
    with pytest.raises(TypeError, match="number of amps"):
        await charger.set_current("10")
    with pytest.raises(TypeError, match="True or False"):
        await charger.set_enabled("yes")


async def test_disabled_before_connect_pauses_on_connect(rig):
    charger = await rig.charger("CP1")
    with pytest.raises(ChargerUnavailable):
        await charger.set_enabled(False)
    sim = await rig.sim()
    await eventually(lambda: charger.configured, "configured")
    assert sim.offered_current_a() == 0.0


async def test_two_chargers_share_one_central_system(rig):
    one = await rig.charger("CP1")
    two = await rig.charger("CP2")
    with pytest.raises(ValueError, match="already registered"):
        await OcppCharger(OcppChargerConfig("CP1"), rig.central, rig.clock).start()
    sim1 = await rig.sim("CP1")
    sim2 = await rig.sim("CP2")
    await eventually(lambda: one.configured and two.configured, "both configured")
    await one.set_current(7)
    await two.set_current(15)
    assert (sim1.offered_current_a(), sim2.offered_current_a()) == (7.0, 15.0)


async def test_stop_leaves_the_station_paused(rig):
    charger, sim = await rig.pair()
    await charger.set_current(16)
    await charger.stop()
    assert sim.offered_current_a() == 0.0
    assert not rig.central.running


# ---- the simulator's command line ---------------------------------------------------------

async def _run_cli(*args):
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "phaeton.sim.ocpp_cp", *args, cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)


async def test_simulator_command_line_charges_a_car(rig):
    charger = await rig.charger("CLI1")
    proc = await _run_cli("--url", rig.central.url_for("CLI1"), "--plug-in", "--speed", "20")
    try:
        await eventually(lambda: charger.configured, "CLI station configured", timeout_s=20)
        await charger.set_current(8)
        await eventually(lambda: _is(ocpp_status(charger), "Charging"), "charging", 20)
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert b"online" in line and b"CLI1" in line
    finally:
        proc.terminate()
        await proc.wait()


async def test_simulator_command_line_reports_a_refusal(rig):
    await rig.charger("CLI1")
    proc = await _run_cli("--url", rig.central.url_for("NOPE"), "--connect-timeout-s", "1")
    output, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 1
    assert b"could not come online: handshake refused: HTTP 404" in output


# ---- station-wide messages and the listening port ---------------------------------------------

async def test_station_wide_fault_on_connector_zero_is_an_error(rig):
    charger, sim = await rig.pair()
    frame = [2, "s0", "StatusNotification",
             {"connectorId": 0, "errorCode": "HighTemperature", "status": "Faulted"}]
    await sim.send_raw(json.dumps(frame), reply_id="s0")
    await eventually(lambda: "s0" in sim.raw_replies, "answered")
    assert sim.raw_replies["s0"] == [3, "s0", {}]
    m = await charger.read()
    assert m.vehicle_state is VehicleState.ERROR and m.error_reason == "HighTemperature"
    frame[1], frame[3] = "s1", {"connectorId": 0, "errorCode": "NoError", "status": "Available"}
    await sim.send_raw(json.dumps(frame), reply_id="s1")
    await eventually(lambda: "s1" in sim.raw_replies, "answered")
    assert (await charger.read()).vehicle_state is VehicleState.NO_VEHICLE


async def test_station_meter_on_connector_zero_only_until_the_connector_reports(rig):
    charger, sim = await rig.pair()

    async def meter(uid, connector, wh):
        await sim.send_raw(json.dumps([2, uid, "MeterValues", {"connectorId": connector,
                                       "meterValue": [{"timestamp": "2026-01-01T00:00:00Z",
                                                       "sampledValue": [{"value": wh}]}]}]),
                           reply_id=uid)
        await eventually(lambda: uid in sim.raw_replies, f"{uid} answered")

    await meter("m1", 0, "5000")
    assert (await charger.read()).lifetime_energy_kwh == 5.0
    await meter("m2", 1, "7000")
    await meter("m3", 0, "9000")               # ignored now that the connector reports
    assert (await charger.read()).lifetime_energy_kwh == 7.0


async def test_port_in_use_is_reported_and_retried(rig):
    import socket
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    central = OcppCentralSystem(host="127.0.0.1", port=port)
    charger = OcppCharger(OcppChargerConfig("CP1"), central, rig.clock)
    try:
        await charger.start()                  # does not raise
        assert not central.running
        assert "cannot listen for charge points" in charger.last_error
        blocker.close()
        await eventually(lambda: central.running, "listening after the port was freed")
        sim = SimulatedChargePoint(
            central.url_for("CP1"), SimulatedEV(), rig.clock, reconnect_delay_s=2.0)
        await sim.start()
        rig.sims.append(sim)
        await eventually(lambda: charger.configured, "station connects")
    finally:
        blocker.close()
        await charger.stop()


async def test_trigger_message_on_demand(rig):
    charger, sim = await rig.pair()
    before = sum(1 for action, _ in sim.received if action == "TriggerMessage")
    result = await charger.call(call.TriggerMessage(requested_message="StatusNotification",
                                                    connector_id=1))
    assert result.status == "Accepted"
    result = await charger.call(call.TriggerMessage(
        requested_message="DiagnosticsStatusNotification"))
    assert result.status == "NotImplemented"
    assert sum(1 for action, _ in sim.received if action == "TriggerMessage") == before + 2


async def test_disconnect_during_an_unanswered_call_ends_the_wait(rig):
    charger, sim = await rig.pair({"call_timeout_s": 60.0}, profile_answer="silent",
                                  reconnect_delay_s=10_000)
    pending = asyncio.ensure_future(charger.set_current(10))
    await eventually(lambda: profiles_sent(sim), "profile sent, no answer coming")
    await sim.disconnect()
    await eventually(lambda: pending.done(), "set_current returned after the disconnect")
    assert pending.exception() is None          # reported, not raised
    assert not charger.connected
    assert "connection closed" in charger.last_error


async def test_station_that_never_boots_is_not_connected(rig):
    charger = await rig.charger("CP1")
    http = aiohttp.ClientSession()
    ws = await http.ws_connect(rig.central.url_for("CP1"), protocols=("ocpp1.6",))
    try:
        await eventually(lambda: charger.last_error == "connected, waiting for BootNotification",
                         "connection seen")
        assert not charger.connected
        with pytest.raises(ChargerUnavailable, match="waiting for BootNotification"):
            await charger.read()
    finally:
        await ws.close()
        await http.close()


async def test_central_system_stop_closes_connections(rig):
    charger, sim = await rig.pair(reconnect_delay_s=10_000)
    await rig.central.stop()
    await eventually(lambda: not sim.connected and not charger.connected, "both see the close")
    assert not rig.central.running


async def test_minimal_station_without_configuration_calls_still_gets_limits(rig):
    charger, sim = await rig.pair(unsupported_actions=frozenset(
        {"ChangeConfiguration", "GetConfiguration", "TriggerMessage"}))
    assert charger.rate_unit == "A"
    await charger.set_current(9)
    assert charger.last_error is None and sim.offered_current_a() == 9.0


async def test_running_transaction_is_adopted_after_a_service_restart(rig):
    await rig.charger("KEEP")                   # keeps the central system listening
    first, sim = await rig.pair({"stop_current_a": None, "meter_interval_s": 5})
    await first.set_current(16)
    await sim.plug_in()
    await eventually(lambda: sim.transaction_id is not None, "transaction")
    await first.stop()                          # the service goes away, the car keeps charging
    rig.chargers.remove(first)
    second = await rig.charger("CP1", meter_interval_s=5)
    await eventually(lambda: second.configured, "station back with the new service")
    await eventually(lambda: second.transaction_id == sim.transaction_id,
                     "transaction adopted from MeterValues")
    await second.set_current(8)
    assert profiles_sent(sim, "TxProfile")[-1]["csChargingProfiles"]["transactionId"] == \
        sim.transaction_id
    assert sim.offered_current_a() == 8.0
    assert (await second.read()).vehicle_state is VehicleState.CHARGING


async def test_the_transaction_s_id_tag_tells_which_car_is_plugged_in(rig):
    """The card the station started with is in the measurement (phaeton.vehicles picks the car
    by it) for as long as its transaction runs, and gone after it."""
    charger, sim = await rig.pair()
    await sim.plug_in()                         # the simulator presents SIMTAG
    await eventually(lambda: charger.transaction_id is not None, "transaction started")
    assert (await charger.read()).extra["id_tag"] == "SIMTAG"
    await sim.plug_out()
    await eventually(lambda: charger.transaction_id is None, "transaction ended")
    assert (await charger.read()).extra["id_tag"] is None
