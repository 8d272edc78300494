"""Issue acceptance on the simulated GX: the car tells its SoC over MQTT (a real mosquitto, as
TeslaMate publishes), phaeton plans with the measured SoC instead of the assumed one, Scheduled
mode stops the car at its target, and D-Bus and the web UI's status show the SoC and its age;
the owner's SoC typed in over D-Bus is taken, a value that is no SoC is refused.""" 
from __future__ import annotations

import asyncio
import os
from datetime import datetime

import yaml
from brokers import mosquitto  # noqa: F401  (fixture)

from phaeton.app import Phaeton
from phaeton.config import load_config
from phaeton.sim.car_mqtt import CarSocPublisher, vehicle_config
from phaeton.sim.demo import DEMO_CAR_TOPIC, demo_config
from phaeton.sim.world import SimWorld
from phaeton.web.passwords import hash_password
from tests.dbus_clients import py3dbus

START = datetime(2026, 3, 2, 5, 20)     # night tariff until 06:00, the car leaves at 07:00
SPEED = 120
SERVICE = "com.victronenergy.evcharger.phaeton_0"


async def until(condition, timeout_s=30.0):
    async def poll():
        while not condition():
            await asyncio.sleep(0.05)
    await asyncio.wait_for(poll(), timeout_s)


async def value(path):
    reply = await py3dbus(SERVICE, path, "GetValue")
    return reply["ok"]["v"] if "ok" in reply else reply


async def test_the_car_s_mqtt_soc_is_planned_with_and_scheduled_mode_stops_at_the_target(
        mosquitto, tmp_path):
    async with SimWorld(speed=SPEED, start=START, update_interval_s=5) as world:
        ev = world.outlet().ev
        ev.soc_pct = 68.0                      # the planner would assume 30 % without it
        config = demo_config(world, str(tmp_path / "data"), 8088, hash_password("x" * 12))
        config["web"]["enabled"] = False
        config["control"] = {"tick_s": 5}
        config["schedule"] = {"windows": [{"start": "05:00", "end": "09:00"}]}
        config["vehicles"] = [vehicle_config("demo_car", ev, mosquitto.host, mosquitto.port,
                                             DEMO_CAR_TOPIC)]
        path = os.path.join(tmp_path, "config.yaml")
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(config, f)
        app = Phaeton(load_config(path), config_path=path, clock=world.clock,
                      bus_address=world.bus_address)
        publisher = CarSocPublisher(ev, mosquitto.host, mosquitto.port, DEMO_CAR_TOPIC,
                                    world.clock, every_s=60)
        await app.start()
        try:
            os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = world.bus_address
            loadpoint = app.loadpoints[0]
            loadpoint.write("/Mode", 2)
            await world.plug_in()
            publisher.start()
            planner = app.site.planner

            # the plan takes the car's own SoC (a re-plan when it arrived), not the assumption
            await until(lambda: (planner.ev_outlook() or {}).get("soc_pct") is not None)
            outlook = planner.ev_outlook()
            assert 67.0 <= outlook["soc_pct"] <= 72.0 and outlook["assumed_soc_pct"] is None
            assert outlook["needed_kwh"] < 0.15 * ev.capacity_kwh        # not 50 % of it
            status = app.status()["chargers"][0] if "chargers" in app.status() else app.status()
            car = status["car"]
            assert car["name"] == "demo_car" and car["source"] == "mqtt" and not car["stale"]
            assert car["age_s"] is not None and car["range_km"] > 0
            assert await value("/Vehicle/Name") == "demo_car"
            assert 67.0 <= await value("/Vehicle/Soc") <= 80.0
            assert await value("/Vehicle/SocAge") >= 0

            # The plan itself ends near the target. Scheduled mode's time windows (the owner
            # switches the planner off on the GX) charge at full current: they stop at 80 %,
            # although the car would take more.
            switched = await py3dbus("com.victronenergy.settings",
                                     "/Settings/Phaeton/Planner/Strategy", "SetValue", ["i", 0])
            assert switched["ok"]["v"] == 0
            await until(lambda: loadpoint.last_decision is not None
                        and loadpoint.last_decision.bound_by == "target_soc", 90)
            decision = loadpoint.last_decision
            assert decision.current_a == 0.0 and decision.status == 3        # Charged
            assert "target 80 % is reached" in decision.reason
            assert 79.5 <= ev.soc_pct <= 81.5, ev.soc_pct
            stopped_at = ev.soc_pct
            await world.clock.sleep(900)                                     # 15 minutes on
            assert ev.soc_pct <= stopped_at + 0.2
            assert await value("/Status") == 3

            # The car's feed goes quiet; the owner says the car is lower (D-Bus, as the GX's
            # console would write it): the newest reading wins and it charges again; a value
            # that is no SoC is refused.
            await publisher.stop()
            refused = await py3dbus(SERVICE, "/Vehicle/ManualSoc", "SetValue", ["d", 150.0])
            assert refused["ok"]["v"] != 0
            assert app.site.garage.view("demo_car").manual_soc_pct is None
            accepted = await py3dbus(SERVICE, "/Vehicle/ManualSoc", "SetValue", ["i", 60])
            assert accepted["ok"]["v"] == 0
            await until(lambda: loadpoint.last_decision.bound_by != "target_soc")
            assert app.site.garage.view("demo_car").source == "manual"
            await until(lambda: ev.soc_pct > stopped_at + 0.5, 60)           # charging again
            assert await value("/Vehicle/ManualSoc") == 60
        finally:
            await publisher.stop()
            await app.stop()
