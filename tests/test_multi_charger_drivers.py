"""Several chargers per GX at the driver level: chargers built one entry at a time
(`build_charger_for`) share what their hardware shares, and each is controlled on its own.

- Alfen: the two sockets of one simulated double station (units 1 and 2) over ONE Modbus TCP
  connection, each socket's setpoint its own, the station's max current respected; two stations
  have a connection each.
- OCPP: two charge points on one central system port; one charge point with two connectors
  (a real WebSocket peer, tests/peers/ocpp_two_connectors.py) over one connection, each
  connector limited on its own; the same charge point and connector twice is refused.
- A charger stopping does not cut the other off.

Real servers on loopback, free ports, accelerated clocks."""
from __future__ import annotations

import asyncio
import copy

import pytest

from phaeton.chargers import modbus_words as mw
from phaeton.chargers.alfen import station_link_of
from phaeton.chargers.base import VehicleState
from phaeton.chargers.factory import build_charger_for
from phaeton.clock import ScaledClock
from phaeton.sim.alfen import AlfenSimulator
from phaeton.sim.ev import SimulatedEV
from phaeton.sim.ocpp_cp import SimulatedChargePoint
from phaeton.sim.world import free_tcp_port
from tests.peers.ocpp_two_connectors import TwoConnectorChargePoint

WAIT_S = 10.0     # upper bound for "eventually" (real seconds); never a timing assertion
SITE = {"site": {"nominal_voltage_v": 230.0}}   # the whole config, as far as drivers read it


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


def entry(protocol: str, section: dict, **extra) -> dict:
    """One charger entry as a loadpoint's config has it: the keys of `charger:` (defaults
    written out) plus loadpoint keys the drivers ignore."""
    return {"id": extra.pop("id", "lp"), "priority": 0, "circuit": None, "custom_name": "",
            "instance": None, "protocol": protocol, "position": 0, "min_current_a": 6,
            "max_current_a": 32, "phases": 3, "safe_current_a": 6, protocol: section, **extra}


def alfen_entry(port: int, socket: int, **extra) -> dict:
    return entry("alfen", {"host": "127.0.0.1", "port": port, "station_unit_id": 200,
                           "socket_unit_id": socket, "timeout_s": 0.5,
                           "setpoint_refresh_s": 20, "reconnect_max_s": 1}, **extra)


def ocpp_entry(port: int, cp_id: str, connector: int = 1, path: str = "/ocpp",
               **extra) -> dict:
    return entry("ocpp", {"host": "127.0.0.1", "port": port, "path": path,
                          "charge_point_id": cp_id, "connector_id": connector, "password": None,
                          "meter_interval_s": 10, "heartbeat_interval_s": 60}, **extra)


class Started:
    """Chargers started in a test, stopped at its end whatever happens."""

    def __init__(self):
        self.chargers = []

    async def start(self, charger):
        await charger.start()
        self.chargers.append(charger)
        return charger

    async def stop(self, charger):
        await charger.stop()
        self.chargers.remove(charger)

    async def close(self):
        for charger in reversed(self.chargers):
            await charger.stop()


@pytest.fixture
async def started():
    keeper = Started()
    yield keeper
    await keeper.close()


# ---- Alfen: a double station over one connection --------------------------------------------

@pytest.fixture
async def double_station():
    clock = ScaledClock(50.0)
    sim = AlfenSimulator(clock=clock, sockets=2, station_max_current_a=16.0,
                         ev=SimulatedEV(onboard_max_current_a=32.0),
                         second_ev=SimulatedEV(onboard_max_current_a=32.0))
    sim.socket(1).plug_in()
    sim.socket(2).plug_in()
    await sim.start()
    yield sim
    await sim.close()


async def test_two_alfen_sockets_share_one_connection_and_are_set_independently(
        double_station, started):
    sim = double_station
    one = await started.start(build_charger_for(alfen_entry(sim.port, 1, id="left"), SITE,
                                                sim.clock))
    two = await started.start(build_charger_for(alfen_entry(sim.port, 2, id="right"), SITE,
                                                sim.clock))
    await eventually(lambda: one.connected and two.connected, "both sockets connected")
    assert station_link_of(one) is station_link_of(two)
    assert station_link_of(one).connections_opened == 1
    assert sim.connection_count == 1

    await one.set_current(10)
    await two.set_current(7)
    assert (sim.socket(1).setpoint_a, sim.socket(2).setpoint_a) == (10.0, 7.0)
    m1, m2 = await one.read(), await two.read()
    assert m1.current_a == (10.0, 10.0, 10.0) and m2.current_a == (7.0, 7.0, 7.0)
    assert m1.vehicle_state is m2.vehicle_state is VehicleState.CHARGING
    assert m1.applied_current_a == 10.0 and m2.applied_current_a == 7.0

    # the station's own max current (16 A) caps each socket and is shown to both
    await two.set_current(25)
    assert sim.socket(2).setpoint_a == 16.0 and sim.socket(1).setpoint_a == 10.0
    m1, m2 = await one.read(), await two.read()
    assert m1.station_max_current_a == m2.station_max_current_a == 16.0
    assert m2.current_a == (16.0, 16.0, 16.0) and m1.current_a == (10.0, 10.0, 10.0)
    assert one.station_info["number_of_sockets"] == two.station_info["number_of_sockets"] == 2
    # each socket's meter is its own
    sim.socket(2).plug_out()
    assert (await two.read()).vehicle_state is VehicleState.NO_VEHICLE
    assert (await one.read()).vehicle_state is VehicleState.CHARGING
    assert sim.connection_count == 1


async def test_a_lost_station_connection_is_reopened_once_for_both_sockets(
        double_station, started):
    sim = double_station
    one = await started.start(build_charger_for(alfen_entry(sim.port, 1), SITE, sim.clock))
    two = await started.start(build_charger_for(alfen_entry(sim.port, 2), SITE, sim.clock))
    await eventually(lambda: one.connected and two.connected, "both sockets connected")
    await one.set_current(12)
    await two.set_current(8)
    sim.reboot()                       # drops the connection and both setpoints
    await eventually(lambda: (sim.socket(1).setpoint_active and sim.socket(2).setpoint_active
                              and one.connected and two.connected),
                     "both setpoints re-sent after the reconnect")
    assert (sim.socket(1).setpoint_a, sim.socket(2).setpoint_a) == (12.0, 8.0)
    assert station_link_of(one).connections_opened == 2     # one reconnect, shared
    assert sim.connection_count == 1
    assert one.reconnects == two.reconnects == 2


async def test_one_alfen_socket_stopping_leaves_the_other_running(double_station, started):
    sim = double_station
    one = await started.start(build_charger_for(alfen_entry(sim.port, 1), SITE, sim.clock))
    two = await started.start(build_charger_for(alfen_entry(sim.port, 2), SITE, sim.clock))
    await eventually(lambda: one.connected and two.connected, "both sockets connected")
    await one.set_current(10)
    await started.stop(one)
    assert not one.connected and two.connected
    assert sim.connection_count == 1                  # still open for socket 2
    await two.set_current(9)
    assert sim.socket(2).setpoint_a == 9.0
    assert (await two.read()).current_a == (9.0, 9.0, 9.0)
    writes = sim.socket(2).setpoint_writes
    await asyncio.sleep(0.6)                          # 30 simulated s: the refresh goes on
    assert sim.socket(2).setpoint_writes > writes and two.connected
    await started.stop(two)                           # the last socket closes the connection
    await eventually(lambda: sim.connection_count == 0, "connection closed")


async def test_two_alfen_stations_have_a_connection_each(started):
    clock = ScaledClock(50.0)
    async with AlfenSimulator(clock=clock) as first, AlfenSimulator(clock=clock) as second:
        a = await started.start(build_charger_for(alfen_entry(first.port, 1), SITE, clock))
        b = await started.start(build_charger_for(alfen_entry(second.port, 1), SITE, clock))
        await eventually(lambda: a.connected and b.connected, "both stations connected")
        assert station_link_of(a) is not station_link_of(b)
        assert first.connection_count == second.connection_count == 1
        await a.set_current(11)
        await b.set_current(13)
        assert (first.setpoint_a, second.setpoint_a) == (11.0, 13.0)
        await started.stop(a)
        assert second.connection_count == 1 and b.connected
        await eventually(lambda: first.connection_count == 0, "first station's closed")


def test_the_same_alfen_socket_twice_is_refused():
    port = free_tcp_port()
    first = build_charger_for(alfen_entry(port, 1), SITE)
    with pytest.raises(ValueError, match="socket 1 .* already driven"):
        build_charger_for(alfen_entry(port, 1, id="again"), SITE)
    other = build_charger_for(alfen_entry(port, 2), SITE)     # the other socket is fine
    assert other is not first


# ---- OCPP: several charge points and connectors ---------------------------------------------

async def test_two_charge_points_on_one_central_system_each_controlled(started):
    clock = ScaledClock(50.0)
    port = free_tcp_port()
    a = build_charger_for(ocpp_entry(port, "CP-A", id="a"), SITE, clock)
    b = build_charger_for(ocpp_entry(port, "CP-B", id="b"), SITE, clock)
    assert a._central is b._central                  # one server for the port
    await started.start(a)
    await started.start(b)
    url = a._central.url_for
    sim_a = SimulatedChargePoint(url("CP-A"), SimulatedEV(), clock, reconnect_delay_s=1000)
    sim_b = SimulatedChargePoint(url("CP-B"), SimulatedEV(), clock, reconnect_delay_s=1000)
    await sim_a.start()
    await sim_b.start()
    try:
        await eventually(lambda: a.configured and b.configured, "both configured")
        await a.set_current(7)
        await b.set_current(15)
        assert (sim_a.offered_current_a(), sim_b.offered_current_a()) == (7.0, 15.0)
        await sim_b.plug_in()
        await eventually(lambda: b.transaction_id is not None, "B's transaction")
        assert a.transaction_id is None
        await b.set_current(9)
        assert sim_b.offered_current_a() == 9.0 and sim_a.offered_current_a() == 7.0

        # A stops (its station paused at the safe current): B carries on over the same port
        await started.stop(a)
        assert sim_a.offered_current_a() == 6.0
        await eventually(lambda: not sim_a.connected, "A's connection closed")
        assert b.connected and a._central.running
        await b.set_current(11)
        assert sim_b.offered_current_a() == 11.0 and b.last_error is None
        await started.stop(b)
        assert not b._central.running
    finally:
        await sim_a.stop()
        await sim_b.stop()


async def test_a_two_connector_charge_point_shares_one_connection(started):
    clock = ScaledClock(50.0)
    port = free_tcp_port()
    left = build_charger_for(ocpp_entry(port, "TWIN", 1, id="left"), SITE, clock)
    right = build_charger_for(ocpp_entry(port, "TWIN", 2, id="right"), SITE, clock)
    with pytest.raises(ValueError, match="'TWIN' connector 2 is already registered.*"
                                         "same charge_point_id and connector_id"):
        build_charger_for(ocpp_entry(port, "TWIN", 2, id="again"), SITE, clock)
    await started.start(left)
    await started.start(right)
    peer = TwoConnectorChargePoint(left._central.url_for("TWIN"), "TWIN")
    await peer.start()
    try:
        await eventually(lambda: left.configured and right.configured, "both configured")
        assert peer.connections == 1 and left._session is right._session
        assert left.identity.model == right.identity.model == "Twin-2"

        # each connector's limit goes to its own connectorId
        await left.set_current(10)
        await right.set_current(16)
        assert (peer.limit(1), peer.limit(2)) == (10.0, 16.0)
        await right.set_current(6.5)
        assert (peer.limit(1), peer.limit(2)) == (10.0, 6.5)
        assert left.last_error is None and right.last_error is None

        # each sees its own connector's status, transaction and meter values
        tx = await peer.start_transaction(1)
        await peer.send_meter(1, 10.0, 1_000_500.0)
        await peer.send_meter(2, 0.0, 1_000_000.0)
        await eventually(lambda: left.transaction_id == tx, "left's transaction")
        await eventually(lambda: peer.limit(1, "TxProfile") == 10.0, "TxProfile on connector 1")
        assert right.transaction_id is None and peer.limit(2, "TxProfile") is None
        m_left, m_right = await left.read(), await right.read()
        assert m_left.vehicle_state is VehicleState.CHARGING
        assert m_right.vehicle_state is VehicleState.NO_VEHICLE
        assert m_left.current_a == (10.0, 10.0, 10.0)
        assert m_right.current_a == (0.0, 0.0, 0.0)
        assert m_left.session_energy_kwh == pytest.approx(0.5)
        assert m_left.extra["connector_id"] == 1 and m_right.extra["connector_id"] == 2
        await peer.send_status(2, "Preparing")
        await eventually(lambda: right._status == "Preparing", "right's status")
        assert (await right.read()).vehicle_state is VehicleState.CONNECTED
        assert (await left.read()).vehicle_state is VehicleState.CHARGING

        # the left connector's charger stops: its connector is paused at the safe current,
        # the connection stays for the right one
        await started.stop(left)
        assert peer.limit(1, "TxProfile") == 6.0 and peer.limit(1) == 6.0
        await asyncio.sleep(0.1)
        assert peer.connected and right.connected and not left.connected
        await right.set_current(12)
        assert peer.limit(2) == 12.0 and right.last_error is None
        # ... and the freed connector can be built again
        build_charger_for(ocpp_entry(port, "TWIN", 1, id="left-again"), SITE, clock)
    finally:
        await peer.stop()


def test_one_port_one_host_and_path():
    port = free_tcp_port()
    first = build_charger_for(ocpp_entry(port, "CP1"), SITE)
    with pytest.raises(ValueError, match=f"OCPP port {port} is already served"):
        build_charger_for(ocpp_entry(port, "CP2", path="/other"), SITE)
    assert first is not None


def test_extra_loadpoint_keys_are_ignored_and_the_old_builder_still_works():
    from phaeton.chargers.factory import build_charger
    port = free_tcp_port()
    charger = ocpp_entry(port, "OLD1", weird_new_key={"x": 1})
    built = build_charger({**SITE, "charger": copy.deepcopy(charger)})
    assert built.config.charge_point_id == "OLD1" and built.config.voltage_v == 230.0
    assert built.config.stop_current_a == 6.0


async def test_the_double_station_simulator_serves_both_sockets():
    clock = ScaledClock(50.0)
    async with AlfenSimulator(clock=clock, sockets=2) as sim:
        assert sim.socket(1) is sim and sim.socket_units == [1, 2]
        assert sim.registers(200, 1105, 1) == [2]
        sim.socket(2).setpoint_a = 9.5
        assert sim.registers(2, 1210, 2) == mw.encode_float32(9.5)
        assert sim.registers(1, 1210, 2) == mw.encode_float32(0.0)
        with pytest.raises(ValueError, match="no socket 3"):
            sim.socket(3)
    with pytest.raises(ValueError, match="sockets=2"):
        AlfenSimulator(second_ev=SimulatedEV())
    single = AlfenSimulator()
    assert single.registers(200, 1105, 1) == [1] and single.socket_units == [1]
