"""Follow other Venus services on the D-Bus: a value cache with ages and change callbacks.

`DbusMonitor` behaves like velib_python's dbusmonitor (reference venus-dbus.md §3):

- it watches service names by pattern (`Watch`), learns about them from NameOwnerChanged and,
  at start, from ListNames + GetNameOwner;
- per new service it adds match rules filtered by the owner's unique name (ItemsChanged on `/`,
  PropertiesChanged on every leaf), then does ONE GetItems on `/` (GetValue on `/` when the
  service does not know GetItems);
- services without `/DeviceInstance` are ignored unless their `Watch` says otherwise (the
  system and settings services have no device instance);
- signals from a sender that is not (yet) scanned are dropped; signals sent after the scan
  reply but before the scan is committed are kept and applied in order;
- a service that leaves has all its cached values set to None (with callbacks) and is
  re-scanned when it comes back.

No polling: everything is driven by signals. The monitor uses one bus connection. A service
whose scan fails (no reply within `call_timeout_s`, an error) is logged and skipped until its
name changes owner again.

The connection is a `_MonitorBus`: velib's `FastBus` (one receive buffer, large reads) that
also decodes message bodies itself. A followed GX service sends its changes once a second as
ItemsChanged (`a{sa{sv}}`, tens of paths with Value and Text each); dbus-next's generic
unmarshaller spent more CPU on those than all of phaeton's control. The bodies come out exactly
as dbus-next gives them (Variants, dicts, lists, bytes for `ay`); a signature the decoder does
not know (structs, unix fds), big-endian or malformed data go to dbus-next's own unmarshaller.
"""
from __future__ import annotations

import asyncio
import fnmatch
import logging
import struct
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from dbus_next import BusType, Message, MessageType, Variant
from dbus_next.aio import MessageBus
from dbus_next.signature import SignatureTree

from velib.bus import FastBus
from velib.clock import REAL_CLOCK, Clock
from velib.values import _variant, unwrap, wrap

log = logging.getLogger(__name__)

BUS_NAME = "org.freedesktop.DBus"
BUS_PATH = "/org/freedesktop/DBus"
BUSITEM = "com.victronenergy.BusItem"

_NO_SERVICE_ERRORS = {
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
}
_NO_OBJECT_ERRORS = {
    "org.freedesktop.DBus.Error.UnknownObject",
    "org.freedesktop.DBus.Error.UnknownMethod",
    "org.freedesktop.DBus.Error.UnknownInterface",
}


class DbusCallError(Exception):
    """A D-Bus call failed (not a refusal: refusals are return codes)."""

    def __init__(self, message: str, error_name: str | None = None):
        super().__init__(message)
        self.error_name = error_name


class ServiceNotFound(DbusCallError):
    """The destination service is not on the bus."""


class PathNotFound(DbusCallError):
    """The service is there but has no such object, or the object lacks the method."""


class CallTimeout(DbusCallError):
    """No reply within the call timeout."""


async def call_method(bus: MessageBus, destination: str, path: str, interface: str,
                      member: str, signature: str = "", body: list | None = None,
                      timeout_s: float = 5.0, serial: int | None = None) -> Message:
    """Call a method and return the METHOD_RETURN message; raise a DbusCallError subclass
    for ERROR replies (ServiceNotFound, PathNotFound, other) and CallTimeout."""
    msg = Message(destination=destination, path=path, interface=interface, member=member,
                  signature=signature, body=body or [])
    if serial is not None:
        msg.serial = serial
    try:
        reply = await asyncio.wait_for(bus.call(msg), timeout_s)
    except asyncio.TimeoutError:
        raise CallTimeout(f"{destination} {path} {member}: no reply within {timeout_s:g} s",
                          "org.freedesktop.DBus.Error.Timeout") from None
    if reply.message_type == MessageType.ERROR:
        text = reply.body[0] if reply.body else ""
        where = f"{destination} {path} {interface}.{member}"
        if reply.error_name in _NO_SERVICE_ERRORS:
            raise ServiceNotFound(f"{where}: no such service ({text})", reply.error_name)
        if reply.error_name in _NO_OBJECT_ERRORS:
            raise PathNotFound(f"{where}: {text or reply.error_name}", reply.error_name)
        raise DbusCallError(f"{where}: {reply.error_name}: {text}", reply.error_name)
    return reply


# ---------------------------------------------------------------------- body decoding
class _Undecodable(Exception):
    """The fast decoder does not handle this body; dbus-next's unmarshaller will."""


_FIXED = {  # code: (size, unpack_from)
    "y": (1, struct.Struct("<B").unpack_from),
    "b": (4, struct.Struct("<I").unpack_from),
    "n": (2, struct.Struct("<h").unpack_from),
    "q": (2, struct.Struct("<H").unpack_from),
    "i": (4, struct.Struct("<i").unpack_from),
    "u": (4, struct.Struct("<I").unpack_from),
    "x": (8, struct.Struct("<q").unpack_from),
    "t": (8, struct.Struct("<Q").unpack_from),
    "d": (8, struct.Struct("<d").unpack_from),
}
_u32 = _FIXED["u"][1]
_ALIGN = {"y": 1, "g": 1, "v": 1, "b": 4, "i": 4, "u": 4, "s": 4, "o": 4, "a": 4,
          "n": 2, "q": 2, "x": 8, "t": 8, "d": 8, "{": 8}
_readers: dict = {}          # one complete type's signature → reader(buf, base, pos)
_body_readers: dict = {}     # a body's signature → readers of its complete types


def _reader(sig: str):
    """A function (buf, base, pos) → (value, next pos) reading one complete type `sig` of a
    little-endian message starting at `base`; values as dbus-next's unmarshaller makes them."""
    read = _readers.get(sig)
    if read is None:
        if len(_readers) > 512:       # peers choose variant signatures: keep the cache small
            _readers.clear()
            _readers.update(_PINNED_READERS)
        read = _readers[sig] = _build_reader(sig)
    return read


def _build_reader(sig: str):
    code = sig[:1]
    if code in _FIXED and len(sig) == 1:
        size, unpack = _FIXED[code]
        mask = size - 1
        if code == "b":
            def read(buf, base, pos):
                pos += -(pos - base) & 3
                return unpack(buf, pos)[0] != 0, pos + 4
        else:
            def read(buf, base, pos):
                pos += -(pos - base) & mask
                return unpack(buf, pos)[0], pos + size
        return read
    if sig in ("s", "o"):
        def read(buf, base, pos):
            pos += -(pos - base) & 3
            start = pos + 4
            stop = start + _u32(buf, pos)[0]
            return buf[start:stop].decode("utf-8"), stop + 1
        return read
    if sig == "g":
        def read(buf, base, pos):
            stop = pos + 1 + buf[pos]
            return buf[pos + 1:stop].decode("ascii"), stop + 1
        return read
    if sig == "v":
        def read(buf, base, pos):
            stop = pos + 1 + buf[pos]
            inner = buf[pos + 1:stop].decode("ascii")
            value, pos = _reader(inner)(buf, base, stop + 1)
            return _variant(inner, value), pos
        return read
    if code == "a" and len(sig) > 1:
        elem = sig[1:]
        if elem == "y":
            def read(buf, base, pos):
                pos += -(pos - base) & 3
                start = pos + 4
                stop = start + _u32(buf, pos)[0]
                return bytes(buf[start:stop]), stop
            return read
        if elem[0] == "{":
            if elem[-1] != "}" or len(elem) < 4:
                raise _Undecodable(sig)
            read_key = _reader(elem[1])
            read_value = _reader(elem[2:-1])

            def read(buf, base, pos):
                pos += -(pos - base) & 3
                length = _u32(buf, pos)[0]
                pos += 4
                pos += -(pos - base) & 7
                stop = pos + length
                result = {}
                while pos < stop:
                    pos += -(pos - base) & 7
                    key, pos = read_key(buf, base, pos)
                    result[key], pos = read_value(buf, base, pos)
                if pos != stop:
                    raise _Undecodable("array length does not match its elements")
                return result, pos
            return read
        read_elem = _reader(elem)
        mask = _ALIGN.get(elem[0], 0) - 1
        if mask < 0:
            raise _Undecodable(sig)

        def read(buf, base, pos):
            pos += -(pos - base) & 3
            length = _u32(buf, pos)[0]
            pos += 4
            pos += -(pos - base) & mask
            stop = pos + length
            result = []
            while pos < stop:
                value, pos = read_elem(buf, base, pos)
                result.append(value)
            if pos != stop:
                raise _Undecodable("array length does not match its elements")
            return result, pos
        return read
    raise _Undecodable(sig)     # structs, unix fds, nonsense


_f64 = _FIXED["d"][1]
_i32 = _FIXED["i"][1]
_new_variant = Variant.__new__
_VARIANT_TYPES = {sig: SignatureTree._get(sig).types[0] for sig in ("d", "i", "s", "ai")}
_TYPE_D, _TYPE_I, _TYPE_S, _TYPE_AI = (_VARIANT_TYPES[s] for s in ("d", "i", "s", "ai"))


def _read_sv_dict(buf, base, pos):
    """`a{sv}`, a BusItem's properties (Value, Text, ...): the variants Victron services
    send (d, i, s and `ai []` for invalid) decoded inline, any other by its reader."""
    pos += -(pos - base) & 3
    length = _u32(buf, pos)[0]
    pos += 4
    pos += -(pos - base) & 7
    stop = pos + length
    result = {}
    while pos < stop:
        pos += -(pos - base) & 7
        end = pos + 4 + _u32(buf, pos)[0]
        key = buf[pos + 4:end].decode("utf-8")
        pos = end + 1
        sig_len = buf[pos]
        code = buf[pos + 1]
        variant = _new_variant(Variant)
        if sig_len == 1 and code == 0x64:                          # d
            pos += 3
            pos += -(pos - base) & 7
            variant.type = _TYPE_D
            variant.signature = "d"
            variant.value = _f64(buf, pos)[0]
            pos += 8
        elif sig_len == 1 and code == 0x73:                        # s
            pos += 3
            pos += -(pos - base) & 3
            end = pos + 4 + _u32(buf, pos)[0]
            variant.type = _TYPE_S
            variant.signature = "s"
            variant.value = buf[pos + 4:end].decode("utf-8")
            pos = end + 1
        elif sig_len == 1 and code == 0x69:                        # i
            pos += 3
            pos += -(pos - base) & 3
            variant.type = _TYPE_I
            variant.signature = "i"
            variant.value = _i32(buf, pos)[0]
            pos += 4
        elif (sig_len == 2 and code == 0x61 and buf[pos + 2] == 0x69   # ai [] (invalid)
              and _u32(buf, pos + 4 + (-(pos + 4 - base) & 3))[0] == 0):
            pos += 4
            pos += -(pos - base) & 3
            variant.type = _TYPE_AI
            variant.signature = "ai"
            variant.value = []
            pos += 4
        else:
            inner = buf[pos + 1:pos + 1 + sig_len].decode("ascii")
            value, pos = _reader(inner)(buf, base, pos + 2 + sig_len)
            variant = _variant(inner, value)
        result[key] = variant
    if pos != stop:
        raise _Undecodable("array length does not match its elements")
    return result, pos


def _read_items(buf, base, pos):
    """`a{sa{sv}}`: GetItems' reply and ItemsChanged, {path: {property: variant}}."""
    pos += -(pos - base) & 3
    length = _u32(buf, pos)[0]
    pos += 4
    pos += -(pos - base) & 7
    stop = pos + length
    result = {}
    while pos < stop:
        pos += -(pos - base) & 7
        end = pos + 4 + _u32(buf, pos)[0]
        path = buf[pos + 4:end].decode("utf-8")
        result[path], pos = _read_sv_dict(buf, base, end + 1)
    if pos != stop:
        raise _Undecodable("array length does not match its elements")
    return result, pos


_readers["a{sv}"] = _read_sv_dict
_readers["a{sa{sv}}"] = _read_items
_PINNED_READERS = dict(_readers)


def _body_reader(signature: str):
    readers = _body_readers.get(signature)
    if readers is None:
        try:
            types = SignatureTree._get(signature).types
            readers = tuple(_reader(t.signature) for t in types)
        except Exception:  # an invalid or unsupported signature
            readers = ()
        if len(_body_readers) > 256:
            _body_readers.clear()
        _body_readers[signature] = readers
    return readers


def decode_body(buf, base: int, body_start: int, end: int, signature: str) -> list:
    """The body of the little-endian message at `base` whose body is buf[body_start:end], as
    dbus-next's unmarshaller returns it; raises `_Undecodable` when it cannot."""
    readers = _body_reader(signature)
    if not readers:
        raise _Undecodable(signature)
    body = []
    pos = body_start
    try:
        for read in readers:
            value, pos = read(buf, base, pos)
            body.append(value)
    except _Undecodable:
        raise
    except Exception as exc:   # short buffer, bad UTF-8, bad variant signature ...
        raise _Undecodable(str(exc)) from None
    if pos > end:
        raise _Undecodable("body longer than announced")
    return body


class _MonitorBus(FastBus):
    """FastBus that also decodes the bodies a monitor receives (see the module docstring)."""

    def _decode_body(self, buf, start, kind, signature, body_start, end) -> list | None:
        if not signature:
            return []
        try:
            return decode_body(buf, start, body_start, end, signature)
        except _Undecodable:
            return None


@dataclass(frozen=True)
class Watch:
    """Which services to follow: a name or fnmatch pattern (`com.victronenergy.vebus.*`).

    `require_device_instance`: ignore matching services without `/DeviceInstance` (velib's
    rule for devices); set False for `com.victronenergy.system` and `.settings`.
    """

    pattern: str
    require_device_instance: bool = True

    def matches(self, name: str) -> bool:
        return fnmatch.fnmatchcase(name, self.pattern)


@dataclass
class _Scan:
    """A scan in progress: signals from `owner` after the GetItems reply are kept in order."""

    owner: str
    serial: int = 0
    replied: bool = False
    pending_signals: list = field(default_factory=list)


@dataclass
class _Service:
    name: str
    owner: str
    values: dict = field(default_factory=dict)


ValueCallback = Callable[[str, str, Any], None]
ServiceCallback = Callable[[str], None]


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


class DbusMonitor:
    """Follow services matching `watches` (Watch objects or plain patterns; plain patterns
    require /DeviceInstance).

    Callbacks (all optional, exceptions are logged and never break the monitor):
    - `on_value_changed(service, path, value)` whenever a cached value changes, including
      None → value when a service is (re)scanned and value → None when it leaves;
    - `on_service_added(service)` after a service's first scan filled the cache;
    - `on_service_removed(service)` after its values were marked invalid.
    """

    def __init__(self, watches: Iterable[Watch | str], *,
                 on_value_changed: ValueCallback | None = None,
                 on_service_added: ServiceCallback | None = None,
                 on_service_removed: ServiceCallback | None = None,
                 clock: Clock = REAL_CLOCK, call_timeout_s: float = 5.0,
                 bus_address: str | None = None):
        self.watches = [w if isinstance(w, Watch) else Watch(w) for w in watches]
        if not self.watches:
            raise ValueError("DbusMonitor needs at least one service pattern to watch")
        self.on_value_changed = on_value_changed
        self.on_service_added = on_service_added
        self.on_service_removed = on_service_removed
        self.clock = clock
        self.call_timeout_s = call_timeout_s
        self._bus_address = bus_address
        self.bus: MessageBus | None = None
        self._services: dict[str, _Service] = {}          # attached (scanned) services by name
        self._by_owner: dict[str, set[str]] = {}           # unique name → attached names
        self._scans: dict[str, _Scan] = {}                 # name → scan in progress
        self._ignored: dict[str, str] = {}                 # name → owner (no /DeviceInstance)
        self._generation: dict[str, int] = {}              # name → bumped on every owner change
        self._values: dict[tuple[str, str], Any] = {}      # (service, path) → value
        self._received_at: dict[tuple[str, str], float] = {}
        self._tasks: set[asyncio.Task] = set()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Connect, subscribe to NameOwnerChanged and scan the matching services present now."""
        if self.bus is not None:
            raise RuntimeError("the monitor is already started")
        if self._bus_address:
            self.bus = await _MonitorBus(bus_address=self._bus_address).connect()
        else:
            self.bus = await _MonitorBus(bus_type=BusType.SYSTEM).connect()
        self.bus.add_message_handler(self._on_message)
        await self._add_match(f"type='signal',sender='{BUS_NAME}',path='{BUS_PATH}',"
                              f"interface='{BUS_NAME}',member='NameOwnerChanged'")
        reply = await self._call(BUS_NAME, BUS_PATH, BUS_NAME, "ListNames")
        for name in reply.body[0]:
            if name.startswith(":") or not self._watch_for(name):
                continue
            if name in self._services or name in self._scans:
                continue  # NameOwnerChanged got there first
            try:
                owner = (await self._call(BUS_NAME, BUS_PATH, BUS_NAME, "GetNameOwner",
                                          "s", [name])).body[0]
            except DbusCallError:
                continue  # left in between
            if name not in self._services and name not in self._scans:
                self._begin_scan(name, owner)
        await self.wait_idle()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.bus is not None:
            self.bus.remove_message_handler(self._on_message)
            self.bus.disconnect()
            try:
                await asyncio.wait_for(self.bus.wait_for_disconnect(), 2.0)
            except (asyncio.TimeoutError, Exception):
                pass
            self.bus = None

    async def __aenter__(self) -> "DbusMonitor":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def wait_idle(self) -> None:
        """Wait until no scan is in progress (useful right after start or in tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # ------------------------------------------------------------------ reading
    def get_value(self, service: str, path: str, default: Any = None) -> Any:
        """The cached value, or `default` when unknown or invalid."""
        value = self._values.get((service, path))
        return default if value is None else value

    def get_age(self, service: str, path: str) -> float | None:
        """Seconds (on the monitor's clock) since the value was last received; None if never."""
        at = self._received_at.get((service, path))
        return None if at is None else self.clock.monotonic() - at

    def seen_services(self) -> list[str]:
        """Names of the services currently attached (scanned and present), sorted."""
        return sorted(self._services)

    def get_paths(self, service: str) -> list[str]:
        """The paths known for an attached service, sorted."""
        svc = self._services.get(service)
        return sorted(svc.values) if svc else []

    def owner_of(self, service: str) -> str | None:
        svc = self._services.get(service)
        return svc.owner if svc else None

    # ------------------------------------------------------------------ writing
    async def set_value(self, service: str, path: str, value: Any) -> int:
        """SetValue on (service, path); returns the service's return code (0 accepted, others
        refused). Raises ServiceNotFound, PathNotFound, CallTimeout or DbusCallError."""
        reply = await self._call(service, path, BUSITEM, "SetValue", "v", [wrap(value)])
        if reply.signature != "i":
            raise DbusCallError(f"{service} {path} SetValue: unexpected reply signature "
                                f"{reply.signature!r}")
        return int(reply.body[0])

    async def fetch_value(self, service: str, path: str) -> Any:
        """GetValue straight from the service (bypasses the cache)."""
        reply = await self._call(service, path, BUSITEM, "GetValue")
        return unwrap(reply.body[0])

    # ------------------------------------------------------------------ internals
    def _watch_for(self, name: str) -> Watch | None:
        for watch in self.watches:
            if watch.matches(name):
                return watch
        return None

    async def _call(self, destination, path, interface, member, signature="", body=None,
                    serial=None) -> Message:
        if self.bus is None:
            raise DbusCallError("the monitor is not started")
        return await call_method(self.bus, destination, path, interface, member, signature,
                                 body, self.call_timeout_s, serial)

    async def _add_match(self, rule: str) -> None:
        await self._call(BUS_NAME, BUS_PATH, BUS_NAME, "AddMatch", "s", [rule])

    async def _remove_match(self, rule: str) -> None:
        try:
            await self._call(BUS_NAME, BUS_PATH, BUS_NAME, "RemoveMatch", "s", [rule])
        except DbusCallError:
            pass

    async def _drop_rules(self, rules: list[str]) -> None:
        for rule in rules:
            await self._remove_match(rule)

    @staticmethod
    def _rules_for(owner: str) -> list[str]:
        return [
            f"type='signal',sender='{owner}',interface='{BUSITEM}',member='ItemsChanged',"
            f"path='/'",
            f"type='signal',sender='{owner}',interface='{BUSITEM}',member='PropertiesChanged'",
        ]

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _begin_scan(self, name: str, owner: str) -> None:
        gen = self._generation.get(name, 0) + 1
        self._generation[name] = gen
        self._scans[name] = _Scan(owner=owner)
        self._spawn(self._scan(name, owner, gen))

    async def _scan(self, name: str, owner: str, gen: int) -> None:
        scan = self._scans[name]
        rules = self._rules_for(owner)
        try:
            for rule in rules:
                await self._add_match(rule)
            if self._generation.get(name) != gen:
                await self._drop_rules(rules)
                return
            scan.serial = self.bus.next_serial()
            try:
                reply = await self._call(owner, "/", BUSITEM, "GetItems", serial=scan.serial)
                items = {path: unwrap(props.get("Value")) if isinstance(props, dict) else None
                         for path, props in reply.body[0].items()}
            except PathNotFound:
                # No GetItems: GetValue on / gives {relative path: value}
                scan.replied = False
                scan.pending_signals.clear()
                scan.serial = self.bus.next_serial()
                reply = await self._call(owner, "/", BUSITEM, "GetValue", serial=scan.serial)
                tree = unwrap(reply.body[0])
                if not isinstance(tree, dict):
                    raise DbusCallError(f"{name}: GetValue on / did not return a dict")
                items = {"/" + path.lstrip("/"): value for path, value in tree.items()}
        except asyncio.CancelledError:
            raise
        except DbusCallError as exc:
            log.warning("cannot scan %s: %s", name, exc)
            if self._generation.get(name) == gen:
                self._scans.pop(name, None)
            await self._drop_rules(rules)
            return
        if self._generation.get(name) != gen:
            await self._drop_rules(rules)  # the owner changed meanwhile; a newer scan takes over
            return
        self._scans.pop(name, None)
        watch = self._watch_for(name)
        if watch is not None and watch.require_device_instance and "/DeviceInstance" not in items:
            log.info("ignoring %s: no /DeviceInstance", name)
            self._ignored[name] = owner
            await self._drop_rules(rules)
            return
        self._attach(name, owner, items, scan.pending_signals)

    def _attach(self, name: str, owner: str, items: dict, pending: list) -> None:
        svc = _Service(name=name, owner=owner)
        self._services[name] = svc
        self._by_owner.setdefault(owner, set()).add(name)
        now = self.clock.monotonic()
        changed = []
        for path, value in items.items():
            svc.values[path] = True
            key = (name, path)
            old = self._values.get(key)
            self._values[key] = value
            self._received_at[key] = now
            if not _same(old, value):
                changed.append((path, value))
        self._notify_service(self.on_service_added, name)
        for path, value in changed:
            self._notify_value(name, path, value)
        for msg in pending:
            self._apply_signal(name, msg)

    def _detach(self, name: str) -> None:
        svc = self._services.pop(name, None)
        if svc is None:
            return
        names = self._by_owner.get(svc.owner)
        if names is not None:
            names.discard(name)
            if not names:
                del self._by_owner[svc.owner]
        if self.bus is not None and svc.owner not in self._by_owner:
            for rule in self._rules_for(svc.owner):
                self._spawn(self._remove_match(rule))
        now = self.clock.monotonic()
        for path in svc.values:
            key = (name, path)
            old = self._values.get(key)
            self._values[key] = None
            self._received_at[key] = now
            if old is not None:
                self._notify_value(name, path, None)
        self._notify_service(self.on_service_removed, name)

    def _on_message(self, msg: Message):
        mtype = msg.message_type
        if mtype == MessageType.SIGNAL:
            if msg.member == "NameOwnerChanged" and msg.sender == BUS_NAME:
                self._on_name_owner_changed(*msg.body)
                return False
            if msg.interface != BUSITEM or msg.member not in ("ItemsChanged", "PropertiesChanged"):
                return False
            names = self._by_owner.get(msg.sender)
            if names:
                for name in list(names):
                    self._apply_signal(name, msg)
                return False
            for scan in self._scans.values():
                if scan.owner == msg.sender and scan.replied:
                    scan.pending_signals.append(msg)
            return False
        if mtype in (MessageType.METHOD_RETURN, MessageType.ERROR) and self._scans:
            for scan in self._scans.values():
                if scan.serial and msg.reply_serial == scan.serial:
                    scan.replied = True
        return False

    def _on_name_owner_changed(self, name: str, old_owner: str, new_owner: str) -> None:
        if name.startswith(":") or self._watch_for(name) is None:
            return
        if old_owner:
            self._generation[name] = self._generation.get(name, 0) + 1
            self._scans.pop(name, None)
            self._ignored.pop(name, None)
            self._detach(name)
        if new_owner:
            self._begin_scan(name, new_owner)

    def _apply_signal(self, name: str, msg: Message) -> None:
        try:
            if msg.member == "ItemsChanged":
                if msg.path != "/" or msg.signature != "a{sa{sv}}":
                    return
                updates = [(path, props) for path, props in msg.body[0].items()]
            else:
                if msg.signature != "a{sv}":
                    return
                updates = [(msg.path, msg.body[0])]
            svc = self._services.get(name)
            if svc is None:
                return
            now = self.clock.monotonic()
            for path, props in updates:
                if "Value" not in props:
                    continue
                value = unwrap(props["Value"])
                key = (name, path)
                old = self._values.get(key)
                svc.values[path] = True
                self._values[key] = value
                self._received_at[key] = now
                if not _same(old, value):
                    self._notify_value(name, path, value)
        except Exception:  # a malformed signal from some peer must not stop the monitor
            log.exception("bad %s from %s", msg.member, msg.sender)

    def _notify_value(self, name: str, path: str, value: Any) -> None:
        if self.on_value_changed is None:
            return
        try:
            self.on_value_changed(name, path, value)
        except Exception:
            log.exception("on_value_changed(%s, %s) failed", name, path)

    def _notify_service(self, callback: ServiceCallback | None, name: str) -> None:
        if callback is None:
            return
        try:
            callback(name)
        except Exception:
            log.exception("service callback for %s failed", name)
