"""The car's SoC from an MQTT topic: TeslaMate (`teslamate/cars/1/battery_level`, a plain
number), Home Assistant's MQTT statestream, evcc (`evcc/loadpoints/1/vehicleSoc`) or any
publisher of JSON.

    vehicles[].soc: {source: mqtt, mqtt: {host, port, topic, field, range_field, time_field,
                     username, password, tls, ca_file}}

`field` "" means the payload is the number itself; otherwise a dotted path into a JSON payload.
The reading's time is `time_field` when the publisher sends one, else the moment it arrived
(a retained message arrives at once on subscribing: its age is then unknown, so without a
`time_field` it counts from the subscription). A payload that is not a SoC leaves the last
good reading in place and says why (`problem`). The connection is the fleet's own client
(phaeton.fleet.mqtt_client): non-blocking, reconnecting with back-off.
"""
from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any

from phaeton.fleet.mqtt_client import MqttClient
from phaeton.vehicles.base import SocReading, SourceError, checked_soc, json_reading

log = logging.getLogger("phaeton.vehicles")


def parse_payload(payload: bytes, cfg: Mapping[str, Any], received_s: float,
                  topic: str) -> SocReading:
    """One MQTT payload as a reading (SourceError when it is not one)."""
    where = f"MQTT {topic}"
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SourceError(f"{where}: the payload is not text") from None
    field = str(cfg.get("field") or "")
    if not field:
        return SocReading(checked_soc(text, where), received_s, "mqtt")
    return json_reading(text, cfg, received_s, where, "mqtt")


class MqttSocSource:
    kind = "mqtt"

    def __init__(self, cfg: Mapping[str, Any], name: str, *,
                 clock: Callable[[], float] = time.time):
        self.cfg, self.name, self.clock = cfg, name, clock
        self.topic = str(cfg["topic"])
        self._latest: SocReading | None = None
        self._problem: str | None = None
        context = None
        if cfg.get("tls"):
            context = ssl.create_default_context(cafile=cfg.get("ca_file") or None)
        self.client = MqttClient(str(cfg["host"]), int(cfg.get("port") or 1883),
                                 f"phaeton-car-{name}"[:23], username=cfg.get("username") or None,
                                 password=cfg.get("password") or None, ssl_context=context,
                                 clean_session=True, on_message=self._on_message,
                                 on_disconnect=self._on_disconnect)
        self.client.subscribe([self.topic], qos=0)

    def _on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        try:
            reading = parse_payload(payload, self.cfg, self.clock(), topic)
        except SourceError as exc:
            if self._problem != str(exc):
                log.warning("car %s: %s", self.name, exc)
            self._problem = str(exc)
            return
        self._latest, self._problem = reading, None

    def _on_disconnect(self, reason: str) -> None:
        self._problem = f"MQTT broker {self.cfg['host']}: {reason}"

    async def start(self) -> None:
        self.client.start()

    async def stop(self) -> None:
        await self.client.stop()

    def latest(self) -> SocReading | None:
        return self._latest

    @property
    def problem(self) -> str | None:
        return self._problem
