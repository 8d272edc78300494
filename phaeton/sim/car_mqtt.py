"""The demo's car tells its SoC over MQTT, as TeslaMate, Home Assistant or evcc would: a private
mosquitto (Debian's, when installed) and a publisher of the simulated car's SoC.

    broker = DemoBroker.start(directory)          # None when mosquitto is not installed
    publisher = CarSocPublisher(ev, broker.host, broker.port, "demo/car", clock)
    publisher.start(); ...; await publisher.stop(); broker.stop()

The payload is JSON: {"soc": 63.2, "range_km": 284, "time": <unix s on the world's clock>}; the
config that reads it is `vehicle_config()`.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phaeton.clock import Clock
from phaeton.fleet.mqtt_client import MqttClient, MqttError
from phaeton.sim.ev import SimulatedEV

log = logging.getLogger("phaeton.sim.car")

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
KM_PER_KWH = 6.0           # the simulated car's range per kWh in its battery


def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    return found or next((p for p in MOSQUITTO_PATHS if os.access(p, os.X_OK)), None)


@dataclass
class DemoBroker:
    """A mosquitto of the demo's own on a free loopback port, anonymous, without persistence."""
    process: subprocess.Popen
    host: str
    port: int

    @classmethod
    def start(cls, directory: str | os.PathLike, timeout_s: float = 10.0) -> DemoBroker | None:
        binary = mosquitto_binary()
        if binary is None:
            return None
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        conf = Path(directory) / "mosquitto.conf"
        conf.write_text(("user root\n" if os.geteuid() == 0 else "")
                        + f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                        "log_dest none\npersistence false\n")
        process = subprocess.Popen([binary, "-c", str(conf)], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                return cls(process, "127.0.0.1", port)
            time.sleep(0.05)
        process.kill()
        process.wait()
        log.warning("mosquitto did not start; the demo's car does not publish its SoC")
        return None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class CarSocPublisher:
    """Publishes `ev`'s SoC to `topic` every `every_s` seconds of the world's clock (retained,
    as TeslaMate does, so a subscriber gets the last one at once)."""

    def __init__(self, ev: SimulatedEV, host: str, port: int, topic: str, clock: Clock, *,
                 every_s: float = 60.0):
        self.ev, self.topic, self.clock, self.every_s = ev, topic, clock, every_s
        self.client = MqttClient(host, port, "phaeton-demo-car", clean_session=True,
                                 backoff_initial_s=0.2, backoff_max_s=2.0)
        self._task: asyncio.Task | None = None
        self.published = 0

    def payload(self) -> bytes:
        soc = round(self.ev.soc_pct, 1)
        return json.dumps({"soc": soc, "range_km": round(soc / 100 * self.ev.capacity_kwh
                                                         * KM_PER_KWH),
                           "time": round(self.clock.time(), 1)}).encode()

    async def _run(self) -> None:
        while True:
            if self.client.connected:
                with contextlib.suppress(MqttError):
                    await self.client.publish(self.topic, self.payload(), qos=1, retain=True)
                    self.published += 1
            await self.clock.sleep(self.every_s)

    def start(self) -> None:
        self.client.start()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="demo-car-soc")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.client.stop()


def vehicle_config(name: str, ev: SimulatedEV, host: str, port: int, topic: str
                   ) -> dict[str, Any]:
    """The `vehicles` entry that reads what `CarSocPublisher` publishes."""
    return {"name": name, "capacity_kwh": ev.capacity_kwh, "stale_after_s": 900,
            "soc": {"source": "mqtt", "mqtt": {"host": host, "port": port, "topic": topic,
                                                "field": "soc", "range_field": "range_km",
                                                "time_field": "time"}}}
