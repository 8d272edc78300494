"""The fleet on the simulated GX with a real mosquitto (issue acceptance): `phaeton` with the
demo's config (the planner steering the battery through Dynamic ESS) and `fleet.enabled`
takes a pushed schedule, acknowledges it, the simulated GX's battery follows it through the
Dynamic ESS windows in its slots, and the execution acks report the energy moved; bad
schedules are refused with reasons; with the broker stopped for a whole schedule the site
still runs it and every ack arrives after the broker returns."""
from __future__ import annotations

import asyncio
import json
import os
from datetime import datetime

import yaml
from brokers import mosquitto  # noqa: F401  (fixture)

from phaeton.app import Phaeton
from phaeton.config import load_config
from phaeton.fleet.contract import iso, seal
from phaeton.fleet.mqtt_client import MqttClient
from phaeton.sim.demo import demo_config
from phaeton.sim.world import SimWorld
from phaeton.web.passwords import hash_password
from tests.dbus_clients import py3dbus

KEY = "fleet-test-key-0123456789"
SITE = "gx-0001"
START = datetime(2026, 3, 2, 1, 50)      # night: no PV, the house runs from the grid
SPEED = 120


class Operator:
    def __init__(self, broker):
        self.acks: list[dict] = []
        self.client = MqttClient(broker.host, broker.port, "operator", clean_session=False,
                                 on_message=lambda t, p, r: self.acks.append(json.loads(p)))
        self.client.subscribe([f"phaeton/fleet/{SITE}/ack"])

    async def push(self, body, key=KEY):
        await self.client.publish(f"phaeton/fleet/{SITE}/schedule", seal(body, key), qos=1)

    def of(self, ident):
        return [a for a in self.acks if a.get("schedule_id") == ident]

    def states(self, ident):
        return [a["state"] for a in self.of(ident)]


async def until(condition, timeout_s=30.0):
    async def poll():
        while not condition():
            await asyncio.sleep(0.02)
    await asyncio.wait_for(poll(), timeout_s)


def body(ident, start_s, slots):
    return {"type": "schedule", "id": ident, "version": 1, "site": SITE,
            "issued_at": iso(start_s - 900), "valid_from": iso(start_s), "priority": "fleet",
            "slots": slots}


async def test_a_pushed_schedule_runs_the_gx_battery_and_is_acknowledged(mosquitto, tmp_path):
    async with SimWorld(speed=SPEED, start=START, update_interval_s=5) as world:
        config = demo_config(world, str(tmp_path / "data"), 8088, hash_password("x" * 12))
        config["web"]["enabled"] = False
        config["control"] = {"tick_s": 5}
        config["fleet"] = {"enabled": True, "site_id": SITE, "hmac_key": KEY, "telemetry_s": 60,
                           "broker": {"host": mosquitto.host, "port": mosquitto.port,
                                      "keepalive_s": 5}}
        path = os.path.join(tmp_path, "config.yaml")
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(config, f)
        app = Phaeton(load_config(path), config_path=path, clock=world.clock,
                      bus_address=world.bus_address)
        operator = Operator(mosquitto)
        operator.client.start()
        await app.start()
        try:
            os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = world.bus_address
            fleet = app.site.fleet
            await until(lambda: fleet.client.connected and operator.client.connected)
            now = world.clock.time()
            first = int(now // 900 + 1) * 900

            # bad ones first: each refused with its reason, nothing stored
            await operator.push(body("forged", first, [{"battery": "charge", "kw": 3}]),
                                key="someone-elses-key-000")
            await operator.push(body("late", first - 3600, [{"battery": "idle"}]))
            await operator.push(body("greedy", first, [{"battery": "charge", "kw": 40}]))
            await until(lambda: all("refused" in operator.states(i)
                                    for i in ("forged", "late", "greedy")))
            reasons = {i: operator.of(i)[-1] for i in ("forged", "late", "greedy")}
            assert reasons["forged"]["code"] == "bad_signature"
            assert reasons["late"]["code"] == "expired"
            assert reasons["greedy"]["code"] == "limits"
            assert "fuse" in reasons["greedy"]["reason"]
            assert fleet.store.live() == []

            # a good one: charge 3 kW for a quarter hour, then give 2 kW back
            await operator.push(body("trade-1", first, [{"battery": "charge", "kw": 3},
                                                        {"battery": "discharge", "kw": 2}]))
            await until(lambda: "accepted" in operator.states("trade-1"))
            await until(lambda: world.clock.time() > first + 120, 60)
            # the GX runs phaeton's Dynamic ESS window with the fleet's target
            assert world.settings["/Settings/DynamicEss/Mode"] == 4
            target = world.dess_target_at(world.clock.time())
            assert target is not None and target.target_soc_pct > world.site.battery_soc_pct
            source = await py3dbus("com.victronenergy.evcharger.phaeton_0",
                                   "/Planner/BatterySource", "GetValue")
            assert source["ok"]["v"] == "fleet:trade-1@1"
            shown = app.site.planner.plan_dict()["fleet"]        # what the web UI shows
            assert shown["source"] == "fleet:trade-1@1" and shown["connected"]
            await until(lambda: "completed" in operator.states("trade-1"), 60)
            executed = [a for a in operator.of("trade-1") if a["state"] == "executed"]
            assert [a["slot"] for a in executed] == [0, 1]
            charged, discharged = executed[0]["battery_kwh"], executed[1]["battery_kwh"]
            # 3 kW AC for 15 min is 0.75 kWh, about 0.71 kWh into the battery
            assert 0.5 < charged < 0.8, executed[0]
            assert -0.65 < discharged < -0.35, executed[1]
            assert executed[1]["soc_end_pct"] < executed[1]["soc_start_pct"]

            # the broker is away for the whole of the next schedule
            start = int(world.clock.time() // 900 + 1) * 900
            await operator.push(body("offline", start, [{"battery": "charge", "kw": 2},
                                                        {"battery": "idle"}]))
            await until(lambda: "accepted" in operator.states("offline"))
            await asyncio.to_thread(mosquitto.stop)
            await until(lambda: world.clock.time() > start + 30, 60)
            soc_before = world.site.battery_soc_pct
            await until(lambda: world.clock.time() > start + 600, 60)
            assert app.site.planner.state()["/Planner/BatterySource"] == "fleet:offline@1"
            assert world.site.battery_soc_pct > soc_before + 1      # it charges, offline
            await until(lambda: world.clock.time() > start + 1900, 60)
            assert fleet.store.pending_count() == 3      # executed, executed, completed
            await asyncio.to_thread(mosquitto.start)
            await until(lambda: "completed" in operator.states("offline"), 30)
            assert operator.states("offline") == ["received", "accepted", "executed",
                                                  "executed", "completed"]
            seqs = [a["seq"] for a in operator.acks]
            assert seqs == sorted(seqs)
            assert app.site.planner.state()["/Planner/BatterySource"] == "local"
        finally:
            os.environ.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
            await operator.client.stop()
            await app.stop()


async def test_the_fleet_is_switched_on_from_a_saved_config_without_a_restart(mosquitto,
                                                                               tmp_path):
    async with SimWorld(speed=10, start=START, update_interval_s=5) as world:
        config = demo_config(world, str(tmp_path / "data"), 8088, hash_password("x" * 12))
        config["web"]["enabled"] = False
        path = os.path.join(tmp_path, "config.yaml")
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(config, f)
        app = Phaeton(load_config(path), config_path=path, clock=world.clock,
                      bus_address=world.bus_address)
        statuses = []
        watcher = MqttClient(mosquitto.host, mosquitto.port, "watcher",
                             on_message=lambda t, p, r: statuses.append(json.loads(p)))
        watcher.subscribe([f"phaeton/fleet/{SITE}/status"])
        watcher.start()
        await app.start()
        try:
            assert app.site.fleet is None
            data = app.config()
            data["fleet"] = {"enabled": True, "site_id": SITE, "hmac_key": KEY,
                             "broker": {"host": mosquitto.host, "port": mosquitto.port}}
            assert await app.apply_config(data) == []
            await until(lambda: any(s.get("online") for s in statuses))
            assert app.site.planner.fleet is app.site.fleet
            data["fleet"]["enabled"] = False
            assert await app.apply_config(data) == []
            # switched off: the site says it is offline, and the planner forgets it
            await until(lambda: statuses[-1].get("online") is False)
            assert app.site.fleet is None and app.site.planner.fleet is None
        finally:
            await watcher.stop()
            await app.stop()
