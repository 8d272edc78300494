"""The site's fleet part (phaeton/fleet/site_client.py) against a real mosquitto: schedules are
acknowledged, refused with reasons, run slot by slot and reported with the energy moved; with
the broker away the site keeps running its schedule and the acks arrive afterwards, in order."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from brokers import mosquitto, mosquitto_secure  # noqa: F401  (fixtures)

from jsonschema import Draft202012Validator

from phaeton.fleet.contract import SiteLimits, iso, seal
from phaeton.fleet.mqtt_client import MqttClient
from phaeton.fleet.link import BrokerLink
from phaeton.fleet.site_client import FleetSite
from phaeton.fleet.slots import BatteryFacts, FleetReadings
from phaeton.store.fleet_store import FleetStore

SCHEMA = Draft202012Validator(json.loads(
    (Path(__file__).resolve().parents[1] / "docs" / "fleet.schema.json").read_text()))
KEY = "site-key-0123456789abcdef"
T0 = 1_796_000_400          # a quarter hour (2026-11-30)
LIMITS = SiteLimits(max_charge_kw=5, max_discharge_kw=5, soc_min_pct=10, soc_max_pct=95,
                    import_limit_kw=17.25, charger_max_kw={"0": 11.0})
BATTERY = BatteryFacts(capacity_kwh=10, soc_min=0.10, soc_max=0.95, charge_efficiency=0.95,
                       discharge_efficiency=0.95)


class ManualClock:
    def __init__(self, now):
        self.now = now

    def time(self):
        return self.now

    def monotonic(self):
        return self.now

    async def sleep(self, seconds):
        await asyncio.sleep(0)


class House:
    """The GX readings the site sees; a test sets them."""

    def __init__(self):
        self.readings = FleetReadings(soc_pct=50.0, battery_w=0.0, grid_w=300.0, pv_w=0.0,
                                      consumption_w=300.0)

    def __call__(self):
        return self.readings


def schedule(slots, *, ident="trade-1", version=1, start=T0, site="site-a", **extra):
    return {"type": "schedule", "id": ident, "version": version, "site": site,
            "issued_at": iso(start - 3600), "valid_from": iso(start), "priority": "fleet",
            "slots": slots, **extra}


class Operator:
    """Publishes envelopes and collects the site's acks, over the same broker."""

    def __init__(self, broker):
        self.acks: list[dict] = []
        self.status: dict | None = None
        self.telemetry: list[dict] = []
        self.client = MqttClient(broker.host, broker.port, "operator", clean_session=False,
                                 on_message=self._message)
        self.client.subscribe(["phaeton/fleet/+/ack", "phaeton/fleet/+/status",
                               "phaeton/fleet/+/telemetry"])

    def _message(self, topic, payload, _retain):
        message = json.loads(payload)
        errors = [e.message for e in SCHEMA.iter_errors(message)]
        assert not errors, (message, errors)       # every message keeps the contract
        if topic.endswith("/ack"):
            self.acks.append(message)
        elif topic.endswith("/telemetry"):
            self.telemetry.append(message)
        else:
            self.status = message

    async def start(self):
        self.client.start()
        assert await self.client.wait_connected(5)
        await asyncio.sleep(0.1)

    async def push(self, body, key=KEY, site="site-a"):
        await self.client.publish(f"phaeton/fleet/{site}/schedule", seal(body, key), qos=1)

    def states(self, ident="trade-1"):
        return [a["state"] for a in self.acks if a.get("schedule_id") == ident]

    async def wait(self, predicate, timeout_s=5.0):
        for _ in range(int(timeout_s / 0.02)):
            if predicate():
                return True
            await asyncio.sleep(0.02)
        return predicate()


@pytest.fixture
async def world(mosquitto, tmp_path):
    clock, house = ManualClock(T0 - 600), House()
    made = []

    def make_site():
        site = FleetSite(site_id="site-a", key=KEY, store=FleetStore(tmp_path / "fleet.db"),
                         limits=LIMITS, battery=BATTERY, readings=house, clock=clock)
        site.connect(BrokerLink(mosquitto.host, mosquitto.port), backoff_max_s=0.5)
        made.append(site)
        return site

    site = make_site()
    operator = Operator(mosquitto)
    await operator.start()
    assert await site.client.wait_connected(5)
    yield clock, house, site, operator, make_site
    await operator.client.stop()
    for one in made:
        if one.client is not None and one.client._task is not None:
            await one.close()


async def test_a_schedule_is_received_accepted_and_a_duplicate_changes_nothing(world):
    clock, house, site, operator, _ = world
    body = schedule([{"battery": "charge", "kw": 4}, {"battery": "idle"}])
    await operator.push(body)
    assert await operator.wait(lambda: operator.states() == ["received", "accepted"])
    await operator.push(body)           # the broker delivered it twice
    assert await operator.wait(lambda: len(operator.states()) == 3)
    duplicate = operator.acks[-1]
    assert duplicate["state"] == "accepted" and duplicate["duplicate"] is True
    assert [row.id for row in site.store.live()] == ["trade-1"]
    seqs = [a["seq"] for a in operator.acks]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    site.tick()
    assert await operator.wait(lambda: operator.status is not None)
    assert operator.status["online"] is True
    assert operator.status["schedules"] == [{"id": "trade-1", "version": 1,
                                             "state": "accepted"}]
    assert await operator.wait(lambda: operator.telemetry)
    assert operator.telemetry[0]["soc_pct"] == 50.0 and operator.telemetry[0]["grid_w"] == 300.0
    assert operator.telemetry[0]["source"] == "local"
    site.tick()                                   # within telemetry_s: nothing more
    await asyncio.sleep(0.2)
    assert len(operator.telemetry) == 1


@pytest.mark.parametrize("case, code, words", [
    ("bad_signature", "bad_signature", "HMAC does not match"),
    ("expired", "expired", "ended at"),
    ("over_fuse", "limits", "more than the fuse"),
    ("over_battery", "limits", "planner.battery.max_discharge_kw"),
    ("soc_outside", "limits", "outside the site's 10..95 %"),
    ("wrong_site", "wrong_site", "is for site 'site-b'"),
    ("bad_field", "schema", "slots[1].kw must be above 0"),
    ("not_json", "malformed", "not JSON"),
])
async def test_bad_schedules_are_refused_with_the_reason(world, case, code, words):
    clock, house, site, operator, _ = world
    bodies = {
        "bad_signature": (schedule([{"battery": "idle"}]), "not-the-site-key-at-all"),
        "expired": (schedule([{"battery": "idle"}], start=T0 - 1800), KEY),
        "over_fuse": (schedule([{"battery": "charge", "kw": 20}]), KEY),
        "over_battery": (schedule([{"battery": "discharge", "kw": 6}]), KEY),
        "soc_outside": (schedule([{"battery": "soc", "target_pct": 100}]), KEY),
        "wrong_site": (schedule([{"battery": "idle"}], site="site-b"), KEY),
        "bad_field": (schedule([{"battery": "idle"}, {"battery": "charge", "kw": 0}]), KEY),
    }
    if case == "not_json":
        await operator.client.publish("phaeton/fleet/site-a/schedule", b"\xff{oops", qos=1)
    else:
        body, key = bodies[case]
        await operator.push(body, key=key)
    assert await operator.wait(lambda: any(a["state"] == "refused" for a in operator.acks))
    refused = [a for a in operator.acks if a["state"] == "refused"][0]
    assert refused["code"] == code
    assert words in refused["reason"]
    assert site.store.live() == []
    assert site.battery_plan(T0 + 60) is None


async def test_the_battery_follows_the_slots_and_each_slot_is_reported(world):
    clock, house, site, operator, _ = world
    await operator.push(schedule([{"battery": "charge", "kw": 4}, {"battery": "idle"},
                                  {"battery": "discharge", "kw": 2},
                                  {"battery": "local"}]))
    assert await operator.wait(lambda: "accepted" in operator.states())
    assert site.battery_plan(T0 - 60) is None            # not yet: the local plan runs
    assert site.source(T0 - 60) == "local"

    # slot 0: charge 4 kW for 15 min from 50 %: the target is 50 + 4*0.25*0.95/10 = 59.5 %
    clock.now = T0
    plan = site.battery_plan(clock.now)
    assert plan.soc[0] == pytest.approx(0.50) and plan.soc[1] == pytest.approx(0.595)
    assert plan.soc[2] == pytest.approx(0.595)           # idle holds it
    assert plan.soc[3] == pytest.approx(0.595 - 2 * 0.25 / 0.95 / 10)
    assert len(plan.slot_start_s) == 3                   # up to the slot given back
    assert site.source(clock.now) == "fleet:trade-1@1"
    for second in range(0, 900, 30):                     # the battery charges at 3.8 kW DC
        clock.now = T0 + second
        house.readings = FleetReadings(soc_pct=50 + 9.5 * second / 900, battery_w=3800.0,
                                       grid_w=4300.0, pv_w=0.0, consumption_w=300.0)
        site.tick()
        # the targets hold still within the slot (no settings write per tick)
        assert site.battery_plan(clock.now).soc[1] == pytest.approx(0.595)
    # slot 1 (idle) runs with the battery still; slot 2 discharges only 1 kW: held back
    for second in range(900, 2701, 30):
        clock.now = T0 + second
        power = 0.0 if second < 1800 else -1000.0
        house.readings = FleetReadings(soc_pct=59.5, battery_w=power, grid_w=300.0,
                                       pv_w=0.0, consumption_w=300.0)
        site.tick()
    clock.now = T0 + 2700 + 30                           # slot 3 is the local plan's
    assert site.battery_plan(clock.now) is None
    site.tick()
    clock.now = T0 + 3600
    site.tick()
    assert await operator.wait(lambda: "completed" in operator.states())
    executed = [a for a in operator.acks if a["state"] == "executed"]
    assert [a["slot"] for a in executed] == [0, 1, 2]
    assert executed[0]["battery_kwh"] == pytest.approx(0.95, abs=0.01)
    assert executed[0]["asked"] == {"battery": "charge", "kw": 4}
    assert executed[0]["limited_by"] is None
    assert executed[0]["soc_start_pct"] == pytest.approx(50.0)
    assert executed[1]["battery_kwh"] == 0.0 and executed[1]["limited_by"] is None
    assert executed[2]["battery_kwh"] == pytest.approx(-0.25, abs=0.01)
    assert executed[2]["limited_by"] == "battery_power"
    assert site.store.live() == []


async def test_the_soc_limit_and_the_fuse_are_named_when_they_hold_a_slot_back(world):
    clock, house, site, operator, _ = world
    await operator.push(schedule([{"battery": "charge", "kw": 5},
                                  {"battery": "charge", "kw": 5}]))
    assert await operator.wait(lambda: "accepted" in operator.states())
    for second in range(0, 1801, 60):
        clock.now = T0 + second
        if second <= 900:    # SoC reaches the site's 95 % after a few minutes
            house.readings = FleetReadings(soc_pct=min(95.0, 93 + second / 60), battery_w=
                                           4750.0 if second < 120 else 0.0, grid_w=5000.0,
                                           pv_w=0, consumption_w=300)
        else:                # then the house draws so much the fuse holds the charge back
            house.readings = FleetReadings(soc_pct=80.0, battery_w=1000.0, grid_w=17000.0,
                                           pv_w=0, consumption_w=16000)
        site.tick()
    assert await operator.wait(lambda: "completed" in operator.states())
    executed = [a for a in operator.acks if a["state"] == "executed"]
    assert [a["limited_by"] for a in executed] == ["soc_max", "fuse"]


async def test_with_the_broker_away_the_site_runs_its_schedule_and_acks_arrive_after(
        world, mosquitto):
    clock, house, site, operator, _ = world
    await operator.push(schedule([{"battery": "charge", "kw": 2}, {"battery": "idle"}]))
    assert await operator.wait(lambda: "accepted" in operator.states())
    await asyncio.to_thread(mosquitto.stop)
    assert await operator.wait(lambda: not site.client.connected)
    for second in range(0, 1801, 60):
        clock.now = T0 + second
        house.readings = FleetReadings(soc_pct=50.0 + second / 900 * 4.75,
                                       battery_w=1900.0 if second <= 900 else 0.0,
                                       grid_w=2200.0, pv_w=0, consumption_w=300)
        if second < 1800:
            assert site.battery_plan(clock.now) is not None   # still steering, offline
        site.tick()
    assert site.store.pending_count() == 3                    # executed, executed, completed
    await asyncio.to_thread(mosquitto.start)
    assert await operator.wait(lambda: "completed" in operator.states(), 15)
    states = operator.states()
    assert states == ["received", "accepted", "executed", "executed", "completed"]
    seqs = [a["seq"] for a in operator.acks]
    assert seqs == sorted(seqs)
    assert site.store.pending_count() == 0


async def test_a_restarted_site_carries_on_with_its_stored_schedule(world):
    clock, house, site, operator, make_site = world
    await operator.push(schedule([{"battery": "discharge", "kw": 3}] * 4))
    assert await operator.wait(lambda: "accepted" in operator.states())
    clock.now = T0 + 100
    site.tick()
    await site.close()                      # the service restarts
    again = make_site()
    assert await again.client.wait_connected(5)
    assert again.source(clock.now) == "fleet:trade-1@1"
    assert again.battery_plan(clock.now) is not None
    clock.now = T0 + 1000
    again.tick()
    assert await operator.wait(lambda: "executed" in operator.states())
    # the slot the restart cut short is reported with what was measured after it
    assert [a["slot"] for a in operator.acks if a["state"] == "executed"] == [0]


async def test_a_new_version_supersedes_the_old_and_an_older_one_is_refused(world):
    clock, house, site, operator, _ = world
    await operator.push(schedule([{"battery": "idle"}], version=2))
    assert await operator.wait(lambda: "accepted" in operator.states())
    await operator.push(schedule([{"battery": "charge", "kw": 1}], version=1))
    assert await operator.wait(lambda: "refused" in operator.states())
    assert operator.acks[-1]["code"] == "superseded"
    await operator.push(schedule([{"battery": "charge", "kw": 1}], version=3))
    assert await operator.wait(lambda: operator.states().count("accepted") == 2)
    superseded = [a for a in operator.acks if a["state"] == "superseded"]
    assert superseded and superseded[0]["version"] == 2 and superseded[0]["by_version"] == 3
    clock.now = T0 + 10
    assert site.source(clock.now) == "fleet:trade-1@3"


async def test_ev_windows_give_the_named_charger_its_power(world):
    clock, house, site, operator, _ = world
    body = schedule([{"battery": "local"}] * 8,
                    ev=[{"charger": "0", "start": iso(T0 + 900), "end": iso(T0 + 1800),
                         "max_kw": 7.4}])
    await operator.push(body)
    assert await operator.wait(lambda: "accepted" in operator.states())
    assert site.ev_allowance_w(T0 + 100, "0") is None
    assert site.ev_allowance_w(T0 + 1000, "0") == pytest.approx(7400)
    assert site.ev_allowance_w(T0 + 1000, "1") is None
    assert site.battery_plan(T0 + 1000) is None          # the battery stays the local plan's


async def test_an_ev_window_with_a_target_ends_once_the_charger_delivered_it(world):
    clock, house, site, operator, _ = world
    body = schedule([{"battery": "local"}] * 8,
                    ev=[{"start": iso(T0), "end": iso(T0 + 7200), "max_kw": 11,
                         "target_kwh": 5}])
    await operator.push(body)
    assert await operator.wait(lambda: "accepted" in operator.states())
    assert site.ev_allowance_w(T0 + 10, "0", 1200.0) == pytest.approx(11000)
    assert site.ev_allowance_w(T0 + 900, "0", 1204.9) == pytest.approx(11000)
    assert site.ev_allowance_w(T0 + 1000, "0", 1205.0) is None      # 5 kWh delivered
    assert site.ev_allowance_w(T0 + 1000, "1", 1205.0) == pytest.approx(11000)  # its own count
    assert site.ev_allowance_w(T0 + 1000, "2", None) == pytest.approx(11000)  # no counter


async def test_a_signed_cancel_stops_a_schedule_and_a_forged_one_does_not(world):
    clock, house, site, operator, _ = world
    await operator.push(schedule([{"battery": "discharge", "kw": 3}] * 4))
    assert await operator.wait(lambda: "accepted" in operator.states())
    clock.now = T0 + 60
    assert site.source(clock.now) == "fleet:trade-1@1"

    def cancel(ident):
        return {"type": "command", "id": ident, "site": "site-a", "issued_at": iso(T0),
                "command": "cancel", "schedule_id": "trade-1"}
    await operator.client.publish("phaeton/fleet/site-a/command",
                                  seal(cancel("c-forged"), "a-stolen-login-no-key"), qos=1)
    assert await operator.wait(lambda: any(a.get("command_id") == "c-forged"
                                           and a["state"] == "refused" for a in operator.acks))
    assert site.source(clock.now) == "fleet:trade-1@1"          # still running
    await operator.client.publish("phaeton/fleet/site-a/command", seal(cancel("c-1"), KEY),
                                  qos=1)
    assert await operator.wait(lambda: any(a.get("command_id") == "c-1"
                                           and a["state"] == "accepted" for a in operator.acks))
    assert site.source(clock.now) == "local" and site.battery_plan(clock.now) is None
    assert site.store.recent(1)[0].state == "cancelled"


async def test_a_site_logs_in_over_tls_with_a_password(mosquitto_secure, tmp_path):
    """TLS checked against the operator's CA, with the site's broker login (fleet.broker.*)."""
    broker = mosquitto_secure
    site = FleetSite(site_id="site-a", key=KEY, store=FleetStore(tmp_path / "fleet.db"),
                     limits=LIMITS, battery=BATTERY, readings=House(),
                     clock=ManualClock(T0 - 600))
    site.connect(BrokerLink("127.0.0.1", broker.tls_port, username=broker.username,
                           password=broker.password, ca_file=str(broker.ca_file)))
    operator = MqttClient("127.0.0.1", broker.tls_port, "operator-tls",
                          username=broker.username, password=broker.password,
                          ssl_context=BrokerLink("127.0.0.1", 0, ca_file=str(broker.ca_file)).ssl_context(),
                          on_message=lambda t, p, r: acks.append(json.loads(p)))
    acks: list[dict] = []
    operator.subscribe(["phaeton/fleet/+/ack"])
    operator.start()
    try:
        assert await site.client.wait_connected(5) and await operator.wait_connected(5)
        await asyncio.sleep(0.1)
        await operator.publish("phaeton/fleet/site-a/schedule",
                               seal(schedule([{"battery": "idle"}]), KEY), qos=1)
        for _ in range(250):
            if [a["state"] for a in acks] == ["received", "accepted"]:
                break
            await asyncio.sleep(0.02)
        assert [a["state"] for a in acks] == ["received", "accepted"]
    finally:
        await operator.stop()
        await site.close()


async def test_a_repeated_superseded_or_cancelled_schedule_is_answered_as_it_stands(world):
    clock, house, site, operator, _ = world
    first = schedule([{"battery": "idle"}])
    await operator.push(first)
    await operator.push(schedule([{"battery": "idle"}], version=2))
    assert await operator.wait(lambda: "superseded" in operator.states())
    await operator.push(first)                          # version 1 once more
    assert await operator.wait(lambda: operator.acks[-1].get("duplicate"))
    assert operator.acks[-1]["state"] == "superseded" and operator.acks[-1]["by_version"] == 2

    cancel = {"type": "command", "id": "c-9", "site": "site-a", "issued_at": iso(T0),
              "command": "cancel", "schedule_id": "trade-1"}
    await operator.client.publish("phaeton/fleet/site-a/command", seal(cancel, KEY), qos=1)
    assert await operator.wait(lambda: "cancelled" in operator.states())
    await operator.push(schedule([{"battery": "idle"}], version=2))
    assert await operator.wait(lambda: operator.acks[-1].get("duplicate")
                               and operator.acks[-1]["version"] == 2)
    assert operator.acks[-1]["state"] == "cancelled"


async def test_a_message_too_big_to_be_a_schedule_is_refused_and_the_link_stays_up(world):
    """A broker redelivers an unacknowledged QoS 1 message at every reconnect: one absurd
    message must be acknowledged and dropped, not cut the site off for good."""
    clock, house, site, operator, _ = world
    await operator.client.publish("phaeton/fleet/site-a/schedule", b"{" * (3 << 20), qos=1)
    assert await operator.wait(lambda: any(a["state"] == "refused" for a in operator.acks), 10)
    refused = [a for a in operator.acks if a["state"] == "refused"][0]
    assert refused["code"] == "malformed" and "more than the 1048576" in refused["reason"]
    assert site.client.connects == 1
    await operator.push(schedule([{"battery": "idle"}]))
    assert await operator.wait(lambda: "accepted" in operator.states())
    assert site.client.connects == 1
