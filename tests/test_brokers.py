"""The real-broker fixtures of tests/brokers.py, proved with paho-mqtt 2.1 itself: QoS 1
publish/subscribe on mosquitto and on RabbitMQ's MQTT plugin, password and TLS (server
verified against the throwaway CA), client-certificate login, and a persistent session that
gets every QoS 1 message queued for it while offline even though the broker restarted in
between (what the fleet over MQTT relies on: 0 messages lost across a broker restart)."""
from __future__ import annotations

import queue
import threading

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from brokers import Mosquitto, make_certificates, mqtt_connack, mosquitto, mosquitto_secure, rabbitmq  # noqa: F401

TIMEOUT_S = 10


class Client:
    """A paho client on its own network thread (loop_start); what it receives goes into
    `.messages` as (topic, payload, qos)."""

    def __init__(self, client_id: str, *, clean_session: bool = True,
                 username: str | None = None, password: str | None = None,
                 ca_file=None, cert_file=None, key_file=None):
        self.paho = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                client_id=client_id, clean_session=clean_session,
                                protocol=paho.MQTTv311,
                                # A refused or failed connection is the answer: no retries.
                                reconnect_on_failure=False)
        if username is not None:
            self.paho.username_pw_set(username, password)
        if ca_file is not None:
            self.paho.tls_set(ca_certs=str(ca_file),
                              certfile=str(cert_file) if cert_file else None,
                              keyfile=str(key_file) if key_file else None)
        self.messages: queue.Queue = queue.Queue()
        self.reason_code = None          # the CONNACK's, once it came
        self.session_present = None
        self._answered = threading.Event()   # a CONNACK, or the connection ended without one
        self._subscribed = threading.Event()
        self.paho.on_connect = self._on_connect
        self.paho.on_disconnect = lambda *args: self._answered.set()
        self.paho.on_subscribe = lambda *args: self._subscribed.set()
        self.paho.on_message = lambda c, u, msg: self.messages.put(
            (msg.topic, msg.payload.decode(), msg.qos))

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.reason_code = reason_code
        self.session_present = flags.session_present
        self._answered.set()

    def connect(self, host: str, port: int):
        """Connect and wait for the broker's answer: the CONNACK's reason code, or None if
        the connection ended (or TLS failed) without one."""
        self._answered.clear()
        try:
            self.paho.connect(host, port, keepalive=30)
        except OSError:                  # ssl.SSLError included
            return None
        self.paho.loop_start()
        self._answered.wait(TIMEOUT_S)
        return self.reason_code

    def subscribe(self, topic: str) -> None:
        self._subscribed.clear()
        self.paho.subscribe(topic, qos=1)
        assert self._subscribed.wait(TIMEOUT_S), "no SUBACK"

    def publish(self, topic: str, payload: str) -> None:
        """QoS 1; returns once the broker's PUBACK came."""
        info = self.paho.publish(topic, payload, qos=1)
        info.wait_for_publish(TIMEOUT_S)
        assert info.is_published(), f"no PUBACK for {payload!r}"

    def receive(self, count: int) -> list[tuple[str, str, int]]:
        return [self.messages.get(timeout=TIMEOUT_S) for _ in range(count)]

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()


@pytest.fixture
def clients():
    """Makes Clients and closes them all at the end of the test."""
    made = []

    def make(*args, **kwargs) -> Client:
        made.append(Client(*args, **kwargs))
        return made[-1]

    yield make
    for client in made:
        client.close()


def assert_round_trip(make, host, port, topic, **login) -> None:
    """A QoS 1 message from one client reaches another, which subscribed with QoS 1."""
    subscriber = make(f"sub-{topic}", **login)
    assert subscriber.connect(host, port) == 0
    subscriber.subscribe(f"{topic}/#")
    publisher = make(f"pub-{topic}", **login)
    assert publisher.connect(host, port) == 0
    publisher.publish(f"{topic}/site1", "hello")
    assert subscriber.receive(1) == [(f"{topic}/site1", "hello", 1)]


def test_mosquitto_qos1_publish_subscribe(mosquitto, clients):
    assert mosquitto.username is None and mosquitto.tls_port is None
    assert_round_trip(clients, mosquitto.host, mosquitto.port, "plain")


def test_secure_mosquitto_wants_the_password_and_speaks_verified_tls(mosquitto_secure, clients,
                                                                    tmp_path):
    broker = mosquitto_secure
    login = {"username": broker.username, "password": broker.password}
    # The server certificate is checked: a client trusting another CA gets no further.
    make_certificates(tmp_path / "other", "other")
    stranger = clients("stranger", ca_file=tmp_path / "other" / "ca.crt", **login)
    assert stranger.connect(broker.host, broker.tls_port) is None
    tls = {"ca_file": broker.ca_file}
    wrong = clients("wrong", username=broker.username, password="wrong", **tls)
    # mosquitto 2.0 answers a wrong password with 5 (not authorised), not 4.
    assert wrong.connect(broker.host, broker.tls_port) == "Not authorized"
    nobody = clients("nobody", **tls)
    assert nobody.connect(broker.host, broker.tls_port) == "Not authorized"
    # Plain MQTT on .port is password-protected as well.
    assert mqtt_connack(broker.host, broker.port) == 5          # not authorised
    assert mqtt_connack(broker.host, broker.port, broker.username, broker.password) == 0
    assert_round_trip(clients, broker.host, broker.tls_port, "secure", **login, **tls)


def test_client_certificate_is_the_login(tmp_path, clients):
    with Mosquitto(tmp_path, require_certificate=True) as broker:
        tls = {"ca_file": broker.ca_file}
        # Without a certificate the TLS handshake fails: no CONNACK at all.
        assert clients("no-cert", **tls).connect(broker.host, broker.tls_port) is None
        assert mqtt_connack(broker.host, broker.port) == 5      # no anonymous plain either
        assert_round_trip(clients, broker.host, broker.tls_port, "cert",
                          cert_file=broker.client_cert_file, key_file=broker.client_key_file,
                          **tls)
        assert f"u'{broker.client_identity}'" in broker.log_text()  # its CN is the user name


def test_persistent_session_gets_what_was_queued_across_a_broker_restart(mosquitto, clients):
    """A subscriber with clean_session False goes offline; QoS 1 messages published for it
    meanwhile survive a broker restart and all arrive, in order, when it comes back."""
    broker, count = mosquitto, 200
    subscriber = clients("fleet-site1", clean_session=False)
    assert subscriber.connect(broker.host, broker.port) == 0
    assert subscriber.session_present is False
    subscriber.subscribe("fleet/site1/#")
    subscriber.close()

    publisher = clients("fleet-hub")
    assert publisher.connect(broker.host, broker.port) == 0
    sent = [f"command {n}" for n in range(count)]
    for payload in sent:
        publisher.publish("fleet/site1/cmd", payload)   # each one PUBACKed: the broker has it
    publisher.close()

    broker.restart()                                    # SIGTERM (it saves), start again

    back = clients("fleet-site1", clean_session=False)
    assert back.connect(broker.host, broker.port) == 0
    assert back.session_present is True                 # subscription kept across the restart
    received = [payload for _, payload, _ in back.receive(count)]
    assert received == sent, f"lost {len(set(sent) - set(received))}"
    assert back.messages.empty()


@pytest.mark.slow
def test_rabbitmq_qos1_publish_subscribe(rabbitmq, clients):
    wrong = clients("rabbit-wrong", username=rabbitmq.username, password="wrong")
    assert wrong.connect(rabbitmq.host, rabbitmq.port) == "Bad user name or password"
    assert_round_trip(clients, rabbitmq.host, rabbitmq.port, "rabbit",
                      username=rabbitmq.username, password=rabbitmq.password)


@pytest.mark.slow
def test_rabbitmq_persistent_session_across_a_restart(rabbitmq, clients):
    """The same persistent-session property on RabbitMQ (its MQTT plugin keeps a durable
    queue for a clean_session False client; QoS 1 messages are stored persistently)."""
    broker, count = rabbitmq, 50
    login = {"username": broker.username, "password": broker.password}
    subscriber = clients("rabbit-site1", clean_session=False, **login)
    assert subscriber.connect(broker.host, broker.port) == 0
    subscriber.subscribe("rfleet/site1/#")
    subscriber.close()
    publisher = clients("rabbit-hub", **login)
    assert publisher.connect(broker.host, broker.port) == 0
    sent = [f"command {n}" for n in range(count)]
    for payload in sent:
        publisher.publish("rfleet/site1/cmd", payload)
    publisher.close()

    broker.restart()

    back = clients("rabbit-site1", clean_session=False, **login)
    assert back.connect(broker.host, broker.port) == 0
    assert back.session_present is True
    received = [payload for _, payload, _ in back.receive(count)]
    assert received == sent, f"lost {len(set(sent) - set(received))}"
