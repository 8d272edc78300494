"""Real MQTT brokers for the tests: Debian's mosquitto and RabbitMQ's MQTT plugin.

Each broker is a private process of the test that starts it: free loopback ports (chosen by
binding port 0), its config, data, certificates and log in a directory the caller owns (a
pytest temp dir), never a fixed port or a shared path. Nothing here uses a system broker
that installing the Debian packages may have started (on 1883/5672): we never use those ports.

Test modules import the fixtures they need:

    from brokers import mosquitto, mosquitto_secure, rabbitmq

`mosquitto` is anonymous on `.port`; `mosquitto_secure` wants `.username`/`.password` on
`.port` and on `.tls_port` (TLS, verified against `.ca_file`); `rabbitmq` wants
`.username`/`.password` on `.port`. All expose `.host` (127.0.0.1).

This module needs no MQTT client library: readiness is checked with a bare MQTT 3.1.1
CONNECT written on a socket.
"""
from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

HOST = "127.0.0.1"
MOSQUITTO = "/usr/sbin/mosquitto"            # Debian's; /usr/sbin is not on every PATH
MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"
# The real server script: /usr/sbin/rabbitmq-server is Debian's wrapper, which `su`s to the
# rabbitmq user and writes to /var/log/rabbitmq; this one runs as us with our environment.
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
EPMD = "/usr/bin/epmd"


def free_port() -> int:
    """A loopback port nobody listens on right now (the kernel's pick for port 0)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _wait_for_port(host: str, port: int, process: subprocess.Popen, timeout: float) -> bool:
    """True once `port` accepts a TCP connection; False if `process` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def _mqtt_string(value: str) -> bytes:
    data = value.encode()
    return len(data).to_bytes(2, "big") + data


def mqtt_connack(host: str, port: int, username: str | None = None,
                 password: str | None = None, timeout: float = 2.0) -> int:
    """Connect with a bare MQTT 3.1.1 CONNECT (clean session) and disconnect again.

    Returns the CONNACK return code (0 accepted, 4 bad user name or password, 5 not
    authorised); raises OSError if the broker does not answer with a CONNACK."""
    flags = 0x02                                   # clean session
    payload = _mqtt_string(f"probe-{secrets.token_hex(4)}")
    if username is not None:
        flags |= 0x80
        payload += _mqtt_string(username)
        if password is not None:
            flags |= 0x40
            payload += _mqtt_string(password)
    body = _mqtt_string("MQTT") + bytes([4, flags]) + (30).to_bytes(2, "big") + payload
    length, remaining = b"", len(body)             # "remaining length": 7 bits a byte
    while True:
        byte, remaining = remaining % 128, remaining // 128
        length += bytes([byte | (0x80 if remaining else 0)])
        if not remaining:
            break
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(b"\x10" + length + body)
        answer = b""
        while len(answer) < 4:
            chunk = s.recv(4 - len(answer))
            if not chunk:
                raise OSError("connection closed before CONNACK")
            answer += chunk
        if answer[0] != 0x20:
            raise OSError(f"not a CONNACK: {answer!r}")
        if answer[3] == 0:
            s.sendall(b"\xe0\x00")                 # DISCONNECT
        return answer[3]


def _stop_process(process: subprocess.Popen, timeout: float) -> None:
    """SIGTERM, then wait; SIGKILL its whole process group (its own session) if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# OpenSSL config for the throwaway certificates: the CA, the server's (127.0.0.1 and
# localhost in subjectAltName, which is what TLS clients check) and a client's.
_OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""
_EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def make_certificates(directory: Path, client_cn: str) -> None:
    """ca.crt/ca.key, server.crt/server.key and client.crt/client.key in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    cnf = directory / "openssl.cnf"
    cnf.write_text(_OPENSSL_CNF)

    def openssl(*args: str) -> None:
        result = subprocess.run(["openssl", *args], cwd=directory, capture_output=True,
                                text=True)
        if result.returncode != 0:
            raise RuntimeError(f"openssl {' '.join(args)} failed:\n{result.stderr}")

    openssl("req", "-x509", "-new", "-config", str(cnf), "-extensions", "ca_ext", *_EC_KEY,
            "-keyout", "ca.key", "-out", "ca.crt", "-days", "7",
            "-subj", "/CN=phaeton test CA")
    for name, cn, ext in (("server", "localhost", "server_ext"),
                          ("client", client_cn, "client_ext")):
        openssl("req", "-new", "-config", str(cnf), *_EC_KEY, "-keyout", f"{name}.key",
                "-out", f"{name}.csr", "-subj", f"/CN={cn}")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "7",
                "-extfile", str(cnf), "-extensions", ext)


class Mosquitto:
    """Debian's mosquitto (2.0) on free loopback ports, all its files in `directory`.

    password=True: only `username`/`password` may connect (`allow_anonymous false`).
    tls=True: also a TLS listener on `tls_port` (server cert for 127.0.0.1/localhost from a
    throwaway CA, `ca_file`; a client cert from the same CA, `client_cert_file`/
    `client_key_file`). require_certificate=True (implies tls): the TLS listener wants a
    client certificate and takes its CN (`client_identity`) as the user name; anonymous
    clients are refused everywhere then.

    Persistence is on: mosquitto writes `mosquitto.db` on a clean shutdown (SIGTERM, as
    `stop()` sends), so `restart()` keeps persistent sessions, their subscriptions and the
    QoS 1 messages queued for them while offline (checked: none lost). A crash (`kill()`)
    keeps only the last autosave: mosquitto 2.0.11 saves at most every AUTOSAVE_S and only
    when its loop wakes up, so the last ~2 s of messages can be lost and messages
    acknowledged since then are delivered again.

    The log (`log_type all`: every packet) goes to mosquitto.log; `log_text()` reads it.
    """

    AUTOSAVE_S = 1

    def __init__(self, directory: Path, *, password: bool = False, tls: bool = False,
                 require_certificate: bool = False, username: str = "phaeton"):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        tls = tls or require_certificate
        self.host = HOST
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.username = username if password else None
        self.password = secrets.token_hex(8) if password else None
        self.ca_file = self.client_cert_file = self.client_key_file = None
        self.client_identity = "phaeton-test-client" if tls else None
        self.log_file = self.directory / "mosquitto.log"
        self.config_file = self.directory / "mosquitto.conf"
        self._process: subprocess.Popen | None = None

        lines = [
            # As root, mosquitto 2 drops to the `mosquitto` user, which could not read or
            # write our (0700) pytest directory; "root" keeps it as it is. As anyone else,
            # `user` is ignored.
            "user root" if os.geteuid() == 0 else "",
            # Log to stderr, which start() sends into mosquitto.log (together with any
            # message from before the config is read, such as a config error).
            "log_dest stderr",
            "log_type all",
            "log_timestamp_format %H:%M:%S",
            "connection_messages true",
            "persistence true",
            f"persistence_location {self.directory}/",
            f"autosave_interval {self.AUTOSAVE_S}",
            "max_queued_messages 100000",
            f"allow_anonymous {'false' if password or require_certificate else 'true'}",
        ]
        if password:
            passwd = self.directory / "passwd"
            subprocess.run([MOSQUITTO_PASSWD, "-c", "-b", str(passwd), self.username,
                            self.password], check=True, capture_output=True)
            lines.append(f"password_file {passwd}")
        lines.append(f"listener {self.port} {HOST}")
        if tls:
            make_certificates(self.directory, self.client_identity)
            self.ca_file = self.directory / "ca.crt"
            self.client_cert_file = self.directory / "client.crt"
            self.client_key_file = self.directory / "client.key"
            lines += [f"listener {self.tls_port} {HOST}",
                      f"cafile {self.ca_file}",
                      f"certfile {self.directory / 'server.crt'}",
                      f"keyfile {self.directory / 'server.key'}"]
            if require_certificate:
                lines += ["require_certificate true", "use_identity_as_username true"]
        self.config_file.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> "Mosquitto":
        """Start it (same ports and data as before, after a stop) and wait until every
        listener accepts connections; RuntimeError with its log if it does not."""
        if self._process is not None:
            raise RuntimeError("mosquitto is already running")
        with open(self.log_file, "ab") as log:
            self._process = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.config_file)], stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        # (The bare TCP probe of the TLS port logs an "SSL ... unexpected eof"; harmless.)
        for port in filter(None, (self.port, self.tls_port)):
            if not _wait_for_port(self.host, port, self._process, timeout):
                self.stop()
                raise RuntimeError(f"mosquitto did not listen on {port}:\n{self.log_text()}")
        return self

    def stop(self) -> None:
        """SIGTERM (mosquitto saves its persistence file), and wait until it has gone."""
        if self._process is not None:
            _stop_process(self._process, timeout=10)
            self._process = None

    def kill(self) -> None:
        """SIGKILL, a crash: only what the last autosave wrote survives."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def restart(self) -> "Mosquitto":
        self.stop()
        return self.start()

    def close(self) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def __enter__(self) -> "Mosquitto":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


class RabbitMq:
    """Debian's rabbitmq-server (3.10) with only the MQTT plugin, a private node.

    Everything is its own: node name, Erlang cookie (HOME), mnesia and log directories,
    config, enabled_plugins file, and an epmd on its own port (ERL_EPMD_PORT), which we start
    and stop ourselves, so nothing is shared with (or left running beside) a system
    RabbitMQ or another test's node. MQTT on `port` wants `username`/`password` (the node's
    default user, with all permissions on vhost "/"); AMQP listens on `amqp_port`.

    It starts in about 10-15 s here (Erlang boot and the mnesia/quorum setup of a new node),
    hence the module-scoped fixture. Stopping (SIGTERM) takes about 2 s.
    """

    def __init__(self, directory: Path, *, username: str = "phaeton"):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.host = HOST
        self.port = free_port()
        self.amqp_port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.username = username
        self.password = secrets.token_hex(8)
        self.node = f"phaeton-test-{secrets.token_hex(4)}@localhost"
        self.stdout_file = self.directory / "rabbitmq-stdout.log"
        self.started_in: float | None = None      # seconds the last start() took
        self._process: subprocess.Popen | None = None
        self._epmd: subprocess.Popen | None = None

        (self.directory / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        (self.directory / "rabbitmq-env.conf").write_text("")  # not /etc/rabbitmq's
        (self.directory / "rabbitmq.conf").write_text(
            f"mqtt.listeners.tcp.default = {HOST}:{self.port}\n"
            "mqtt.allow_anonymous = false\n"
            f"default_user = {self.username}\n"
            f"default_pass = {self.password}\n"
            # The default 50 MB free-disk alarm would block publishers on a nearly full
            # CI disk; our few messages need nothing like it.
            "disk_free_limit.absolute = 1MB\n")

    def _environment(self) -> dict[str, str]:
        d = self.directory
        return {
            **os.environ,
            "HOME": str(d),                        # .erlang.cookie goes here
            "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),   # absent
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_PID_FILE": str(d / "rabbitmq.pid"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": HOST,
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            # Erlang distribution on loopback only.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": HOST,
        }

    def start(self, timeout: float = 120.0) -> "RabbitMq":
        """Start epmd, then the node; wait until an MQTT CONNECT with our user is accepted.
        RuntimeError with its log if that does not happen within `timeout`."""
        if self._process is not None:
            raise RuntimeError("rabbitmq is already running")
        # Our own epmd in the foreground (the node would otherwise start `epmd -daemon`,
        # which outlives it): Erlang finds it on ERL_EPMD_PORT and starts no other.
        self._epmd = subprocess.Popen(
            [EPMD, "-port", str(self.epmd_port), "-address", HOST],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        if not _wait_for_port(self.host, self.epmd_port, self._epmd, 10):
            self.stop()
            raise RuntimeError(f"epmd did not listen on {self.epmd_port}")
        with open(self.stdout_file, "ab") as out:
            # The script traps SIGTERM and passes it on to the Erlang VM, which shuts the
            # node down cleanly.
            self._process = subprocess.Popen(
                [RABBITMQ_SERVER], env=self._environment(), cwd=self.directory,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        began = time.monotonic()
        deadline = began + timeout
        while True:
            if self._process.poll() is not None:
                break
            try:
                if mqtt_connack(self.host, self.port, self.username, self.password) == 0:
                    self.started_in = time.monotonic() - began
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                break
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"rabbitmq's MQTT did not accept a connection:\n{self.log_text()}")

    def stop(self) -> None:
        if self._process is not None:
            _stop_process(self._process, timeout=60)
            self._process = None
        if self._epmd is not None:
            _stop_process(self._epmd, timeout=5)
            self._epmd = None

    def restart(self) -> "RabbitMq":
        self.stop()
        return self.start()

    def close(self) -> None:
        self.stop()

    def log_text(self) -> str:
        parts = []
        for path in [self.stdout_file, *sorted((self.directory / "log").glob("*.log"))]:
            if path.exists():
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')}")
        return "\n".join(parts)

    def __enter__(self) -> "RabbitMq":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def _skip_without(*programs: str) -> None:
    missing = [p for p in programs if not os.access(p, os.X_OK)]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (dev/test installs them)")


@pytest.fixture
def mosquitto(tmp_path):
    """An anonymous mosquitto of this test's own (plain MQTT on `.port`)."""
    _skip_without(MOSQUITTO)
    with Mosquitto(tmp_path / "mosquitto") as broker:
        yield broker


@pytest.fixture
def mosquitto_secure(tmp_path):
    """A mosquitto wanting `.username`/`.password`, plain on `.port` and TLS on `.tls_port`
    (verify against `.ca_file`)."""
    _skip_without(MOSQUITTO, MOSQUITTO_PASSWD)
    with Mosquitto(tmp_path / "mosquitto", password=True, tls=True) as broker:
        yield broker


@pytest.fixture(scope="module")
def rabbitmq(tmp_path_factory):
    """One RabbitMQ MQTT broker per test module (it takes seconds to start); tests should
    use their own client ids and topics."""
    _skip_without(RABBITMQ_SERVER, EPMD)
    with RabbitMq(tmp_path_factory.mktemp("rabbitmq")) as broker:
        yield broker
