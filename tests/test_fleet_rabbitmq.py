"""The same fleet flow on RabbitMQ's MQTT plugin (Debian's rabbitmq-server 3.10): a pushed
schedule is acknowledged, the site runs it while the broker restarts, and the execution acks
arrive afterwards in order. (RabbitMQ does not hand retained messages to wildcard
subscriptions, so `phaeton fleet status` needs mosquitto or another broker: docs/fleet.md.)"""
from __future__ import annotations

import asyncio
import json

import pytest
from brokers import rabbitmq  # noqa: F401  (fixture)

from phaeton.fleet.contract import seal
from phaeton.fleet.mqtt_client import MqttClient
from phaeton.fleet.link import BrokerLink
from phaeton.fleet.site_client import FleetSite
from phaeton.fleet.slots import FleetReadings
from phaeton.store.fleet_store import FleetStore
from tests.test_fleet_site import BATTERY, KEY, LIMITS, T0, ManualClock, schedule

pytestmark = pytest.mark.slow


async def wait(predicate, timeout_s=15.0):
    for _ in range(int(timeout_s / 0.05)):
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


async def test_schedule_acks_and_an_outage_on_rabbitmq(rabbitmq, tmp_path):
    broker = rabbitmq
    clock = ManualClock(T0 - 300)
    readings = FleetReadings(soc_pct=50.0, battery_w=2000.0, grid_w=2300.0, pv_w=0.0,
                             consumption_w=300.0)
    site = FleetSite(site_id="site-a", key=KEY, store=FleetStore(tmp_path / "fleet.db"),
                     limits=LIMITS, battery=BATTERY, readings=lambda: readings, clock=clock)
    site.connect(BrokerLink(broker.host, broker.port, username=broker.username,
                           password=broker.password), backoff_max_s=1.0)
    acks = []
    operator = MqttClient(broker.host, broker.port, "operator-rmq", clean_session=False,
                          username=broker.username, password=broker.password,
                          backoff_max_s=1.0, on_message=lambda t, p, r: acks.append(
                              json.loads(p)))
    operator.subscribe(["phaeton/fleet/+/ack"])
    operator.start()
    try:
        assert await site.client.wait_connected(15) and await operator.wait_connected(15)
        await asyncio.sleep(0.3)
        await operator.publish("phaeton/fleet/site-a/schedule",
                               seal(schedule([{"battery": "charge", "kw": 2}] * 2), KEY), qos=1)
        assert await wait(lambda: [a["state"] for a in acks] == ["received", "accepted"])

        await asyncio.to_thread(broker.stop)
        for second in range(0, 1801, 60):
            clock.now = T0 + second
            site.tick()
        assert site.store.pending_count() == 3
        await asyncio.to_thread(broker.start)
        assert await wait(lambda: len(acks) == 5, 60)
        assert [a["state"] for a in acks] == ["received", "accepted", "executed", "executed",
                                             "completed"]
        assert [a["seq"] for a in acks] == sorted(a["seq"] for a in acks)
        assert acks[2]["battery_kwh"] == pytest.approx(0.5, abs=0.01)
    finally:
        await operator.stop()
        await site.close()
