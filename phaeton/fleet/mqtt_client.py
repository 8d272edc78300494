"""A small MQTT 3.1.1 client on asyncio streams: what the fleet needs and nothing more.

Why not paho-mqtt: its connect and TLS handshake block the calling thread (up to its 5 s
timeout on a slow uplink), which would stall the control tick of a GX, and a thousand simulated
sites in one process would be a thousand paho clients with their own loops. The subset the
fleet uses is small: CONNECT with a last will and a persistent session, SUBSCRIBE at QoS 1,
PUBLISH at QoS 0 and 1 both ways, PUBACK, PINGREQ, DISCONNECT. QoS 2 is never asked for
(subscriptions are QoS 1, so a broker never sends it). Tests run it against Debian's mosquitto
and RabbitMQ's MQTT plugin, with paho-mqtt as the independent peer.

`MqttClient.start()` keeps a connection up (exponential back-off with jitter between tries),
re-subscribes on every connect, and calls `on_message(topic, payload, retain)` for each
PUBLISH received; the PUBACK of a QoS 1 message is sent only after the handler returned, so a
message the site had no time to store is delivered again. `publish(..., qos=1)` returns once
the broker confirmed it and raises `MqttDisconnected` when the connection drops first (the
caller keeps the message, e.g. in an outbox, and sends it again after `on_connect`).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import struct
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

log = logging.getLogger("phaeton.fleet.mqtt")

CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 12, 13, 14
PUBREC, PUBREL, PUBCOMP = 5, 6, 7

CONNACK_ERRORS = {1: "the broker does not speak MQTT 3.1.1",
                  2: "the broker refused the client id",
                  3: "the broker is unavailable",
                  4: "the broker refused the user name or password",
                  5: "the broker does not authorise this client"}
MAX_PACKET = 1 << 20                 # a schedule of 672 slots is ~30 kB; refuse absurd frames


class MqttError(Exception):
    """The broker refused us or spoke something that is not MQTT."""


class MqttDisconnected(MqttError):
    """The connection dropped before the broker confirmed a QoS 1 publish."""


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


def _string(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack("!H", len(data)) + data


def _remaining_length(length: int) -> bytes:
    out = bytearray()
    while True:
        digit, length = length % 128, length // 128
        out.append(digit | (0x80 if length else 0))
        if not length:
            return bytes(out)


def packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes([kind << 4 | flags]) + _remaining_length(len(body)) + body


def connect_packet(client_id: str, keepalive_s: int, *, clean_session: bool,
                   username: str | None, password: str | None, will: Will | None) -> bytes:
    flags = 0x02 if clean_session else 0
    payload = _string(client_id)
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        payload += _string(will.topic) + struct.pack("!H", len(will.payload)) + will.payload
    if username is not None:
        flags |= 0x80
        payload += _string(username)
        if password is not None:
            flags |= 0x40
            secret = password.encode("utf-8")
            payload += struct.pack("!H", len(secret)) + secret
    header = _string("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive_s)
    return packet(CONNECT, 0, header + payload)


def publish_packet(topic: str, payload: bytes, qos: int, retain: bool, packet_id: int = 0,
                   dup: bool = False) -> bytes:
    flags = (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    body = _string(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
    return packet(PUBLISH, flags, body)


class Oversize(bytes):
    """The start of a PUBLISH body longer than MAX_PACKET (the rest was read and dropped);
    `length` is the whole body's."""

    length: int = 0


async def read_packet(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
    """(type, flags, body) of the next packet; MqttError on a frame that is not MQTT. A
    PUBLISH longer than MAX_PACKET comes back as an `Oversize` head (topic and packet id
    intact), so it can be acknowledged and dropped: a broker redelivers an unacknowledged
    QoS 1 message at every reconnect, and one absurd message would otherwise cut the link
    forever."""
    first = (await reader.readexactly(1))[0]
    length, shift = 0, 0
    for _ in range(4):
        digit = (await reader.readexactly(1))[0]
        length |= (digit & 0x7F) << shift
        shift += 7
        if not digit & 0x80:
            break
    else:
        raise MqttError("malformed remaining length from the broker")
    if length > MAX_PACKET:
        if first >> 4 != PUBLISH:
            raise MqttError(f"the broker sent a {length}-byte packet (more than {MAX_PACKET})")
        head = Oversize(await reader.readexactly(min(length, 65536 + 4)))
        head.length = length
        left = length - len(head)
        while left:
            left -= len(await reader.readexactly(min(left, 1 << 16)))
        return first >> 4, first & 0x0F, head
    return first >> 4, first & 0x0F, await reader.readexactly(length)


def parse_publish(flags: int, body: bytes) -> tuple[str, bytes, int, int, bool]:
    """(topic, payload, qos, packet id, retain) of a PUBLISH body."""
    (topic_len,) = struct.unpack_from("!H", body)
    topic = body[2:2 + topic_len].decode("utf-8")
    offset, qos = 2 + topic_len, (flags >> 1) & 0x03
    packet_id = 0
    if qos:
        (packet_id,) = struct.unpack_from("!H", body, offset)
        offset += 2
    return topic, body[offset:], qos, packet_id, bool(flags & 0x01)


def backoff_s(attempt: int, initial_s: float, max_s: float, rng: random.Random) -> float:
    """Wait before try `attempt` (0-based): initial * 2^attempt, capped, +-20 % jitter."""
    base = min(max_s, initial_s * (2 ** min(attempt, 30)))
    return base * rng.uniform(0.8, 1.2)


MessageHandler = Callable[[str, bytes, bool], Awaitable[None] | None]


class MqttClient:
    def __init__(self, host: str, port: int, client_id: str, *, username: str | None = None,
                 password: str | None = None, ssl_context: ssl.SSLContext | None = None,
                 keepalive_s: int = 30, clean_session: bool = False, will: Will | None = None,
                 on_message: MessageHandler | None = None,
                 on_connect: Callable[[bool], Awaitable[None] | None] | None = None,
                 on_disconnect: Callable[[str], None] | None = None,
                 on_oversize: Callable[[str, int], None] | None = None,
                 backoff_initial_s: float = 1.0, backoff_max_s: float = 60.0,
                 connect_timeout_s: float = 10.0, rng: random.Random | None = None):
        self.host, self.port, self.client_id = host, int(port), client_id
        self.username, self.password, self.ssl_context = username, password, ssl_context
        self.keepalive_s, self.clean_session, self.will = int(keepalive_s), clean_session, will
        self.on_message, self.on_connect, self.on_disconnect = on_message, on_connect, \
            on_disconnect
        self.on_oversize = on_oversize
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, backoff_max_s
        self.connect_timeout_s = connect_timeout_s
        self._rng = rng or random.Random()
        self._subscriptions: dict[str, int] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task | None = None
        self._next_id = 0
        self._waiting: dict[int, asyncio.Future] = {}
        self._connected = asyncio.Event()
        self.last_error: str | None = None
        self.connects = 0
        self._stopping = False

    # ---- public ------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, timeout_s: float | None = None) -> bool:
        try:
            async with asyncio.timeout(timeout_s):
                await self._connected.wait()
        except TimeoutError:
            return False
        return True

    def subscribe(self, filters: Iterable[str], qos: int = 1) -> None:
        """Topic filters to hold; (re)sent at every connect, and now if connected."""
        new = [f for f in filters if f not in self._subscriptions]
        for topic_filter in new:
            self._subscriptions[topic_filter] = min(qos, 1)
        if new and self._writer is not None and self.connected:
            self._send_subscribe({f: self._subscriptions[f] for f in new})

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, *, final: tuple[str, bytes, bool] | None = None) -> None:
        """Disconnect cleanly (the broker does not send the will); `final` = (topic, payload,
        retain) is published at QoS 1 first, e.g. an "offline" status."""
        self._stopping = True
        if self._writer is not None and self.connected:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    if final is not None:
                        await self.publish(final[0], final[1], qos=1, retain=final[2])
                    self._writer.write(packet(DISCONNECT, 0, b""))
                    await self._writer.drain()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        await self._drop("stopped")

    async def publish(self, topic: str, payload: bytes, *, qos: int = 0,
                      retain: bool = False) -> None:
        """Send a PUBLISH; at QoS 1 wait for the broker's PUBACK. MqttDisconnected when not
        connected or the connection drops before the PUBACK."""
        writer = self._writer
        if writer is None or not self.connected or writer.is_closing():
            raise MqttDisconnected("not connected to the broker")
        if qos == 0:
            try:
                writer.write(publish_packet(topic, payload, 0, retain))
                await writer.drain()
            except (ConnectionError, OSError) as exc:
                raise self._lost(exc) from None
            return
        packet_id = self._packet_id()
        done = asyncio.get_running_loop().create_future()
        self._waiting[packet_id] = done
        try:
            writer.write(publish_packet(topic, payload, 1, retain, packet_id))
            await writer.drain()
            await done
        except (ConnectionError, OSError) as exc:
            raise self._lost(exc) from None
        finally:
            self._waiting.pop(packet_id, None)
            if done.done() and not done.cancelled():
                done.exception()      # retrieved: the drop is reported once, by this raise

    def _lost(self, exc: BaseException) -> MqttDisconnected:
        """A write found the connection gone: not connected from now on (a caller that
        retries while `connected` must not spin before the reader notices), the reader's
        task closes it."""
        self._connected.clear()
        return MqttDisconnected(f"the connection dropped: {exc}")

    # ---- the connection ------------------------------------------------------------------

    def _packet_id(self) -> int:
        for _ in range(65535):
            self._next_id = self._next_id % 65535 + 1
            if self._next_id not in self._waiting:
                return self._next_id
        raise MqttError("no free packet id (65535 publishes in flight)")

    def _send_subscribe(self, filters: dict[str, int]) -> None:
        body = struct.pack("!H", self._packet_id())
        for topic_filter, qos in filters.items():
            body += _string(topic_filter) + bytes([qos])
        self._writer.write(packet(SUBSCRIBE, 0x02, body))

    async def _run(self) -> None:
        attempt = 0
        while not self._stopping:
            try:
                await self._session()
                attempt = 0   # a session that was up: start the back-off again from 1 s
            except asyncio.CancelledError:
                raise
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, MqttError,
                    ssl.SSLError, UnicodeDecodeError, struct.error) as exc:
                self.last_error = str(exc) or type(exc).__name__
            await self._drop(self.last_error or "connection closed")
            if self._stopping:
                return
            delay = backoff_s(attempt, self.backoff_initial_s, self.backoff_max_s, self._rng)
            attempt += 1
            log.debug("%s: reconnecting in %.1f s (%s)", self.client_id, delay, self.last_error)
            await asyncio.sleep(delay)

    async def _session(self) -> None:
        async with asyncio.timeout(self.connect_timeout_s):
            reader, writer = await asyncio.open_connection(
                self.host, self.port, ssl=self.ssl_context,
                server_hostname=self.host if self.ssl_context else None)
        self._writer = writer
        writer.write(connect_packet(self.client_id, self.keepalive_s,
                                    clean_session=self.clean_session, username=self.username,
                                    password=self.password, will=self.will))
        await writer.drain()
        async with asyncio.timeout(self.connect_timeout_s):
            kind, _flags, body = await read_packet(reader)
        if kind != CONNACK or len(body) != 2:
            raise MqttError(f"expected CONNACK, got packet type {kind}")
        if body[1]:
            raise MqttError(CONNACK_ERRORS.get(body[1], f"CONNACK return code {body[1]}"))
        session_present = bool(body[0] & 0x01)
        if self._subscriptions:
            self._send_subscribe(dict(self._subscriptions))
        self._connected.set()
        self.connects += 1
        self.last_error = None
        log.info("%s: connected to %s:%d (session %s)", self.client_id, self.host, self.port,
                 "resumed" if session_present else "new")
        pinger = asyncio.get_running_loop().create_task(self._ping(writer))
        try:
            if self.on_connect is not None:
                result = self.on_connect(session_present)
                if asyncio.iscoroutine(result):
                    asyncio.get_running_loop().create_task(result)
            await self._read(reader, writer)
        finally:
            pinger.cancel()

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        timeout = self.keepalive_s * 1.5 if self.keepalive_s else None
        while True:
            async with asyncio.timeout(timeout):
                kind, flags, body = await read_packet(reader)
            if kind == PUBLISH:
                topic, payload, qos, packet_id, retain = parse_publish(flags, body)
                if isinstance(body, Oversize):
                    log.warning("%s: dropped a %d-byte message on %s (more than %d)",
                                self.client_id, body.length, topic, MAX_PACKET)
                    if self.on_oversize is not None:
                        self.on_oversize(topic, body.length)
                elif self.on_message is not None:
                    try:
                        result = self.on_message(topic, payload, retain)
                        if asyncio.iscoroutine(result):
                            await result
                    except Exception:  # noqa: BLE001 - a handler bug must not drop the link
                        log.exception("%s: handling a message on %s failed", self.client_id,
                                      topic)
                if qos == 1:
                    writer.write(packet(PUBACK, 0, struct.pack("!H", packet_id)))
                elif qos == 2:   # never subscribed at QoS 2; answer per the protocol anyway
                    writer.write(packet(PUBREC, 0, struct.pack("!H", packet_id)))
            elif kind == PUBACK and len(body) >= 2:
                (packet_id,) = struct.unpack_from("!H", body)
                future = self._waiting.get(packet_id)
                if future is not None and not future.done():
                    future.set_result(None)
            elif kind == PUBREL and len(body) >= 2:
                writer.write(packet(PUBCOMP, 0, body[:2]))
            elif kind == SUBACK:
                if any(code == 0x80 for code in body[2:]):
                    log.warning("%s: the broker refused a subscription (not authorised?)",
                                self.client_id)
            elif kind in (PINGRESP,):
                pass
            else:
                raise MqttError(f"unexpected packet type {kind} from the broker")

    async def _ping(self, writer: asyncio.StreamWriter) -> None:
        if not self.keepalive_s:
            return
        while not writer.is_closing():
            await asyncio.sleep(self.keepalive_s / 2)
            if not writer.is_closing():
                writer.write(packet(PINGREQ, 0, b""))

    async def _drop(self, reason: str) -> None:
        was_connected = self.connected
        self._connected.clear()
        writer, self._writer = self._writer, None
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(MqttDisconnected(f"the connection dropped: {reason}"))
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()
        if was_connected:
            log.info("%s: disconnected from %s:%d (%s)", self.client_id, self.host, self.port,
                     reason)
            if self.on_disconnect is not None:
                self.on_disconnect(reason)
