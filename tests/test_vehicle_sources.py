"""The car's SoC sources against real peers: MQTT through Debian's mosquitto (payloads as
TeslaMate, evcc and JSON publishers send them), the HTTP JSON source against a local aiohttp
server answering like Home Assistant's REST API; bad answers keep the last good reading and
say why."""
from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiohttp import web
from brokers import mosquitto  # noqa: F401  (fixture)

from phaeton.fleet.mqtt_client import MqttClient
from phaeton.vehicles.base import SourceError, pick, reading_time_s
from phaeton.vehicles.http_json import HttpJsonSource, parse_document
from phaeton.vehicles.mqtt import MqttSocSource, parse_payload


async def until(condition, timeout_s=10.0):
    async def poll():
        while not condition():
            await asyncio.sleep(0.02)
    await asyncio.wait_for(poll(), timeout_s)


async def publisher(broker) -> MqttClient:
    client = MqttClient(broker.host, broker.port, "test-publisher", clean_session=True)
    client.start()
    assert await client.wait_connected(10)
    return client


async def test_teslamate_plain_number_then_garbage_keeps_the_last_good_reading(mosquitto):
    source = MqttSocSource({"host": mosquitto.host, "port": mosquitto.port,
                            "topic": "teslamate/cars/1/battery_level"}, "model3")
    pub = await publisher(mosquitto)
    await source.start()
    try:
        await until(lambda: source.client.connected)
        before = time.time()
        await pub.publish("teslamate/cars/1/battery_level", b"67", qos=1)
        await until(lambda: source.latest() is not None)
        reading = source.latest()
        assert reading.soc_pct == 67.0 and reading.source == "mqtt"
        assert before - 1 <= reading.at_s <= time.time()
        assert source.problem is None

        await pub.publish("teslamate/cars/1/battery_level", b"NaN", qos=1)
        await until(lambda: source.problem is not None)
        assert "nan is not a state of charge" in source.problem.lower()
        assert source.latest().soc_pct == 67.0          # the good one stays
        await pub.publish("teslamate/cars/1/battery_level", b"140", qos=1)
        await until(lambda: "140" in (source.problem or ""))
        assert source.latest().soc_pct == 67.0
    finally:
        await source.stop()
        await pub.stop()


async def test_json_payload_with_range_and_the_publishers_time_retained(mosquitto):
    pub = await publisher(mosquitto)
    stamp = time.time() - 600                           # read ten minutes ago
    await pub.publish("home/car", json.dumps({"car": {"soc": 55.5, "range": 210},
                                              "ts": int(stamp * 1000)}).encode(),
                      qos=1, retain=True)
    source = MqttSocSource({"host": mosquitto.host, "port": mosquitto.port, "topic": "home/car",
                            "field": "car.soc", "range_field": "car.range",
                            "time_field": "ts"}, "ioniq")
    await source.start()                                # after the publish: the retained one
    try:
        await until(lambda: source.latest() is not None)
        reading = source.latest()
        assert (reading.soc_pct, reading.range_km) == (55.5, 210.0)
        assert abs(reading.at_s - stamp) < 0.01          # its own time, not the arrival
        assert 590 < reading.age_s(time.time()) < 620

        await pub.publish("home/car", b'{"car": {"range": 200}}', qos=1)
        await until(lambda: source.problem is not None)
        assert "no 'soc'" in source.problem and "car.soc" in source.problem
    finally:
        await source.stop()
        await pub.stop()


async def test_a_broker_that_is_not_there_is_a_problem_not_a_crash(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    source = MqttSocSource({"host": "127.0.0.1", "port": port, "topic": "x"}, "car")
    await source.start()
    try:
        await asyncio.sleep(0.3)
        assert source.latest() is None
        assert not source.client.connected
    finally:
        await source.stop()


def test_payload_parsing_names_what_is_wrong():
    cfg = {"field": "soc"}
    with pytest.raises(SourceError, match="not JSON"):
        parse_payload(b"soc=5", cfg, 0, "t")
    with pytest.raises(SourceError, match="expected a number, got dict"):
        parse_payload(b'{"soc": {"v": 1}}', cfg, 0, "t")
    with pytest.raises(SourceError, match="not text"):
        parse_payload(b"\xff\xfe", {}, 0, "t")
    assert pick({"a": [{"b": 3}]}, "a.0.b", "x") == 3
    assert reading_time_s("2026-12-07T10:00:00+00:00", "x") == 1796637600.0
    assert reading_time_s(1796637600000, "x") == 1796637600.0
    with pytest.raises(SourceError, match="no time zone"):
        reading_time_s("2026-12-07T10:00:00", "x")
    # a publisher's clock ahead of ours does not make a reading from the future
    assert parse_payload(b'{"soc": 5, "t": 2000}', {"field": "soc", "time_field": "t"},
                         1000, "t").at_s == 1000


# ---- HTTP ----------------------------------------------------------------------------------------

class HomeAssistant:
    """Answers GET /api/states/<entity> like Home Assistant's REST API (bearer token)."""

    def __init__(self, token: str):
        self.token = token
        self.state: object = "72"
        self.status = 200
        self.raw: str | None = None
        self.requests = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"message": "Invalid authentication"}, status=401)
        if self.status != 200:
            return web.Response(status=self.status, text="oops")
        if self.raw is not None:
            return web.Response(text=self.raw, content_type="application/json")
        return web.json_response({"entity_id": request.match_info["entity"],
                                  "state": self.state,
                                  "attributes": {"unit_of_measurement": "%", "range": 301},
                                  "last_updated": "2026-12-07T09:58:00.000000+00:00"})


@pytest.fixture
async def home_assistant():
    ha = HomeAssistant("secret-token")
    app = web.Application()
    app.router.add_get("/api/states/{entity}", ha.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    ha.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    yield ha
    await runner.cleanup()


async def test_home_assistant_sensor_with_token_time_and_failures(home_assistant):
    ha = home_assistant
    cfg = {"url": f"{ha.url}/api/states/sensor.car_battery", "field": "state",
           "range_field": "attributes.range", "time_field": "last_updated",
           "bearer_token": "secret-token", "interval_s": 30}
    source = HttpJsonSource(cfg, "zoe", clock=lambda: 1796637600.0)   # 10:00 UTC
    try:
        reading = await source.poll_once()
        assert (reading.soc_pct, reading.range_km, reading.source) == (72.0, 301.0, "http")
        assert reading.age_s(1796637600.0) == 120.0        # last_updated 09:58

        ha.state = "unavailable"                            # HA's word for a sensor gone
        assert await source.poll_once() is None
        assert "'unavailable'" in source.problem and source.latest().soc_pct == 72.0
        ha.status = 500
        assert await source.poll_once() is None
        assert "answered 500" in source.problem
        ha.status, ha.raw = 200, "<html>login</html>"
        assert await source.poll_once() is None
        assert "not JSON" in source.problem
        ha.raw, ha.state = None, 73
        assert (await source.poll_once()).soc_pct == 73.0 and source.problem is None
    finally:
        await source.stop()

    wrong = HttpJsonSource({**cfg, "bearer_token": "guess"}, "zoe")
    try:
        assert await wrong.poll_once() is None
        assert "answered 401" in wrong.problem
    finally:
        await wrong.stop()


async def test_http_source_polls_on_its_own_and_backs_off_when_down():
    source = HttpJsonSource({"url": "http://127.0.0.1:9/nothing", "field": "soc",
                             "interval_s": 30, "timeout_s": 1}, "car")
    await source.start()
    try:
        await until(lambda: source.problem is not None, 5)
        assert "HTTP http://127.0.0.1:9/nothing" in source.problem
    finally:
        await source.stop()
    assert parse_document('{"soc": "80.5"}', {"field": "soc"}, 5.0, "u").soc_pct == 80.5
