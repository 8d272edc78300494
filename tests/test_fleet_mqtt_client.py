"""phaeton's own MQTT 3.1.1 client against Debian's mosquitto, with paho-mqtt as the
independent peer: QoS 1 both ways, the last will, a persistent session across a broker restart,
TLS with a password or a client certificate, refusals with the broker's reason, reconnecting."""
from __future__ import annotations

import asyncio
import ssl
import threading

import pytest
from brokers import mosquitto, mosquitto_secure  # noqa: F401  (fixtures)

paho = pytest.importorskip("paho.mqtt.client")

from phaeton.fleet.link import BrokerLink
from phaeton.fleet.mqtt_client import MqttClient, MqttDisconnected, Will, backoff_s


def tls_context(ca_file, cert_file=None, key_file=None):
    """The client TLS context the fleet builds from its broker settings; without a CA
    file: the system's CAs (which never signed the test broker's certificate)."""
    if ca_file is None and cert_file is None:
        return ssl.create_default_context()
    return BrokerLink("127.0.0.1", 0, ca_file=ca_file, cert_file=cert_file,
                      key_file=key_file).ssl_context()


class PahoPeer:
    """A paho-mqtt client in its own thread that records what it receives."""

    def __init__(self, host, port, client_id="peer", clean=True, **tls):
        self.messages: list[tuple[str, bytes, bool]] = []
        self.got = threading.Event()
        self.client = paho.Client(callback_api_version=paho.CallbackAPIVersion.VERSION2,
                                  client_id=client_id, clean_session=clean,
                                  protocol=paho.MQTTv311)
        self.client.on_message = self._message
        self.connected = threading.Event()
        self.client.on_connect = lambda *a: self.connected.set()
        self.client.connect(host, port)
        self.client.loop_start()
        assert self.connected.wait(5)

    def _message(self, _client, _userdata, message):
        self.messages.append((message.topic, message.payload, bool(message.retain)))
        self.got.set()

    def subscribe(self, topic_filter, qos=1):
        done = threading.Event()
        self.client.on_subscribe = lambda *a: done.set()
        self.client.subscribe(topic_filter, qos)
        assert done.wait(5)

    def publish(self, topic, payload, qos=1, retain=False):
        self.client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(5)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


async def wait_for(predicate, timeout_s=5.0):
    for _ in range(int(timeout_s / 0.02)):
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return predicate()


async def test_publish_and_receive_qos1_with_paho_as_the_peer(mosquitto):
    peer = PahoPeer(mosquitto.host, mosquitto.port)
    peer.subscribe("site/#")
    received = []
    client = MqttClient(mosquitto.host, mosquitto.port, "phaeton-site-a",
                        on_message=lambda t, p, r: received.append((t, p, r)))
    client.subscribe(["site/a/schedule"])
    client.start()
    try:
        assert await client.wait_connected(5)
        await client.publish("site/a/ack", b'{"seq": 1}', qos=1)
        await client.publish("site/a/status", b"on", qos=1, retain=True)
        assert await wait_for(lambda: len(peer.messages) == 2)
        assert peer.messages[0] == ("site/a/ack", b'{"seq": 1}', False)
        await asyncio.sleep(0.2)   # the SUBSCRIBE went out with the CONNECT
        big = bytes(range(256)) * 200   # 51 kB: a multi-byte remaining length
        await asyncio.to_thread(peer.publish, "site/a/schedule", big)
        assert await wait_for(lambda: received)
        assert received == [("site/a/schedule", big, False)]
    finally:
        await client.stop()
        peer.close()


async def test_the_last_will_is_published_when_the_site_vanishes_not_on_a_clean_stop(mosquitto):
    peer = PahoPeer(mosquitto.host, mosquitto.port)
    peer.subscribe("site/+/status")
    will = Will("site/a/status", b'{"online": false}', qos=1, retain=True)
    clean = MqttClient(mosquitto.host, mosquitto.port, "clean", will=will)
    clean.start()
    assert await clean.wait_connected(5)
    await clean.stop(final=("site/a/status", b'{"online": false, "why": "stopped"}', True))
    assert await wait_for(lambda: peer.messages)
    assert peer.messages == [("site/a/status", b'{"online": false, "why": "stopped"}', False)]

    peer.messages.clear()
    vanishing = MqttClient(mosquitto.host, mosquitto.port, "vanishing", keepalive_s=2,
                           will=Will("site/b/status", b'{"online": false}'))
    vanishing.start()
    assert await vanishing.wait_connected(5)
    vanishing._task.cancel()          # the process dies: no DISCONNECT is sent
    vanishing._writer.transport.abort()
    assert await wait_for(lambda: peer.messages, 6)
    assert peer.messages == [("site/b/status", b'{"online": false}', False)]
    await vanishing.stop()
    peer.close()


async def test_a_persistent_session_gets_what_was_sent_while_it_and_the_broker_were_down(
        mosquitto):
    received = []
    site = MqttClient(mosquitto.host, mosquitto.port, "phaeton-site-p",
                      on_message=lambda t, p, r: received.append(p),
                      backoff_initial_s=0.1, backoff_max_s=0.5)
    site.subscribe(["p/schedule"])
    site.start()
    assert await site.wait_connected(5)
    await site.stop()                         # the site goes away, its session stays

    peer = PahoPeer(mosquitto.host, mosquitto.port)
    for number in range(20):
        await asyncio.to_thread(peer.publish, "p/schedule", str(number).encode())
    peer.close()
    mosquitto.restart()                       # and the broker restarts meanwhile

    site.start()
    assert await site.wait_connected(10)
    assert await wait_for(lambda: len(received) == 20)
    assert received == [str(n).encode() for n in range(20)]
    await site.stop()


async def test_it_reconnects_by_itself_after_the_broker_restarts_and_publish_fails_meanwhile(
        mosquitto):
    dropped = []
    client = MqttClient(mosquitto.host, mosquitto.port, "reconnecting", keepalive_s=5,
                        backoff_initial_s=0.1, backoff_max_s=0.4, on_disconnect=dropped.append)
    client.start()
    assert await client.wait_connected(5)
    await asyncio.to_thread(mosquitto.stop)
    assert await wait_for(lambda: not client.connected)
    assert dropped
    with pytest.raises(MqttDisconnected):
        await client.publish("x", b"y", qos=1)
    await asyncio.to_thread(mosquitto.start)
    assert await client.wait_connected(10)
    assert client.connects == 2
    await client.publish("x", b"y", qos=1)
    await client.stop()


async def test_tls_with_a_password_and_the_brokers_reason_for_a_wrong_one(mosquitto_secure):
    broker = mosquitto_secure
    context = tls_context(str(broker.ca_file))
    good = MqttClient("127.0.0.1", broker.tls_port, "tls-good", ssl_context=context,
                      username=broker.username, password=broker.password)
    good.start()
    assert await good.wait_connected(5)
    await good.publish("t", b"1", qos=1)
    await good.stop()

    bad = MqttClient("127.0.0.1", broker.tls_port, "tls-bad", ssl_context=context,
                     username=broker.username, password="wrong", backoff_initial_s=5)
    bad.start()
    assert await wait_for(lambda: bad.last_error is not None)
    assert not bad.connected
    assert "refused the user name or password" in bad.last_error \
        or "does not authorise" in bad.last_error
    await bad.stop()

    untrusted = MqttClient("127.0.0.1", broker.tls_port, "tls-untrusted",
                           ssl_context=tls_context(None), username=broker.username,
                           password=broker.password, backoff_initial_s=5)
    untrusted.start()
    assert await wait_for(lambda: untrusted.last_error is not None)
    assert "certificate verify failed" in untrusted.last_error
    await untrusted.stop()


async def test_a_client_certificate_alone_logs_in(tmp_path):
    from brokers import Mosquitto
    with Mosquitto(tmp_path, require_certificate=True) as broker:
        with_cert = MqttClient("127.0.0.1", broker.tls_port, "cert", ssl_context=tls_context(
            str(broker.ca_file), str(broker.client_cert_file), str(broker.client_key_file)))
        with_cert.start()
        assert await with_cert.wait_connected(5)
        await with_cert.publish("t", b"1", qos=1)
        await with_cert.stop()


def test_back_off_doubles_to_its_cap_with_jitter():
    import random
    rng = random.Random(1)
    waits = [backoff_s(n, 1.0, 60.0, rng) for n in range(10)]
    assert 0.8 <= waits[0] <= 1.2 and 1.6 <= waits[1] <= 2.4 and 3.2 <= waits[2] <= 4.8
    assert all(48 <= w <= 72 for w in waits[6:])


async def test_publish_on_a_connection_the_broker_dropped_raises_at_once(mosquitto):
    """Between the broker going away and the reader noticing, a publish must fail fast (a
    caller retrying in a loop would otherwise write into a dead socket forever)."""
    client = MqttClient(mosquitto.host, mosquitto.port, "dropped", backoff_initial_s=5)
    client.start()
    assert await client.wait_connected(5)
    client._writer.transport.abort()          # the connection is gone, the reader not yet told
    for qos in (0, 1):
        with pytest.raises(MqttDisconnected):
            await asyncio.wait_for(client.publish("t", b"x", qos=qos), 2)
    await client.stop()
