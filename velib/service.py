"""Export a Venus OS D-Bus service: a tree of BusItem paths on its own bus connection.

What consumers rely on (reference venus-dbus.md §2, §3) and how this module meets it:

- Every path is a leaf object answering GetValue, GetText, SetValue, GetDescription, GetMin,
  GetMax, GetDefault. GetText of `/ProductId` without a text formatter is hexadecimal ("0xFFFF").
- `/` answers GetItems (absolute paths), GetValue/GetText (dicts keyed relative to `/`, no
  leading slash); intermediate nodes (`/Ac`, `/Ac/L1`) answer GetValue/GetText keyed relative
  to themselves. Every node answers Introspect. A path that does not exist answers
  org.freedesktop.DBus.Error.UnknownObject; an unknown member of an existing path UnknownMethod.
- One signal per change, never both (as velib_python does; dbus-flashmq republishes every
  signal to MQTT/VRM): a change made outside a batch (owner `svc[path] = v`, a SetValue from
  the bus, `write()`, `add_path` after registration) sends PropertiesChanged {"Value", "Text"}
  on the leaf's own path only; the changes made inside `batch()` send ONE ItemsChanged on `/`
  only, at the end of the batch.
- Invalid (None) is `ai []` both ways; SetValue returns 0 accepted (also when equal), 1 not
  writeable or a type that cannot be coerced, 2 refused by the owner (range or on_change hook).
  A refused write changes nothing and emits nothing. Bad input never raises.
- One bus connection per service; all paths exist before the well-known name is claimed.

Usage::

    svc = VeDbusService("com.victronenergy.evcharger.phaeton_0")
    svc.add_path("/Mode", 0, writeable=True, kind=int, min=0, max=2)
    await svc.register()
    with svc.batch():          # one ItemsChanged for the whole batch, no PropertiesChanged
        svc["/Ac/Power"] = 1200.0
        svc["/Current"] = 5.2
    svc["/Status"] = 2         # outside a batch: one PropertiesChanged on /Status

Method calls are answered directly from a raw message handler (one dict lookup per call),
instead of one dbus-next ServiceInterface object per path: it keeps a 60-path service fast and
lets any path, including intermediate nodes, be answered.
"""
from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from dbus_next import BusType, Message, MessageFlag, MessageType
from dbus_next.constants import NameFlag, RequestNameReply

from . import wire
from .bus import FastBus
from .values import CoercionError, coerce, unwrap

log = logging.getLogger("velib.service")

BUSITEM = "com.victronenergy.BusItem"
INTROSPECTABLE = "org.freedesktop.DBus.Introspectable"
UNKNOWN_OBJECT = "org.freedesktop.DBus.Error.UnknownObject"
UNKNOWN_METHOD = "org.freedesktop.DBus.Error.UnknownMethod"

# SetValue return codes (Victron vedbus conventions)
ACCEPTED = 0
NOT_WRITEABLE = 1   # also: a value of a type that cannot be coerced
REFUSED = 2         # the owner refused it: out of range, not allowed now

OnChange = Callable[[str, Any], bool]
_CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
TextFormatter = Callable[[Any], str]


class ServiceError(RuntimeError):
    """The service could not be registered (e.g. its name is already owned)."""


@dataclass
class _Item:
    path: str
    value: Any
    writeable: bool
    kind: type | None
    min: Any
    max: Any
    default: Any
    description: str
    text: TextFormatter | None
    on_change: OnChange | None
    nullable: bool
    max_length: int | None = None

    def text_of(self, value: Any) -> str:
        if value is None:
            return "---"
        if self.text is not None:
            try:
                return str(self.text(value))
            except Exception:  # a formatter bug must not break the bus answer
                log.exception("text formatter of %s failed", self.path)
        elif self.path == "/ProductId" and type(value) is int:
            return f"0x{value:X}"   # as velib_python: 0xFFFF reads "0xFFFF", not "65535"
        return str(value)


def _node_prefixes(path: str) -> list[str]:
    """'/Ac/L1/Power' -> ['/', '/Ac', '/Ac/L1']"""
    parts = path.split("/")[1:-1]
    prefixes = ["/"]
    for i in range(len(parts)):
        prefixes.append("/" + "/".join(parts[: i + 1]))
    return prefixes


def _check_path(path: str) -> None:
    if not path.startswith("/") or path == "/" or path.endswith("/") or "//" in path:
        raise ValueError(f"invalid D-Bus path {path!r}")
    for element in path[1:].split("/"):
        if not element or not all(c.isalnum() or c == "_" for c in element):
            raise ValueError(f"invalid D-Bus path {path!r}: element {element!r}")


class VeDbusService:
    """A Venus D-Bus service (one bus connection, one well-known name)."""

    # SetValue codes; a localsettings-like subclass answers -1 for every refusal.
    code_not_writeable = NOT_WRITEABLE
    code_refused = REFUSED

    def __init__(self, name: str, bus_address: str | None = None):
        self.name = name
        self._bus_address = bus_address
        self._bus: FastBus | None = None
        self._items: dict[str, _Item] = {}
        self._cache: dict[str, tuple[bytes, bytes]] = {}   # see _wire_of
        self._value_bodies: dict[str, bytes] = {}            # GetValue replies
        self._text_bodies: dict[str, bytes] = {}             # GetText replies
        self._nodes: dict[str, list[str]] | None = None    # node -> sorted leaf paths below
        self._introspect: dict[str, str] = {}
        self._batch_depth = 0
        self._pending: dict[str, None] = {}                # ordered set of changed paths
        self._items_bodies: dict[str, bytes] = {}          # node -> GetItems body
        self._registered = False

    # ---- building the tree -------------------------------------------------------------

    def add_path(self, path: str, value: Any = None, *, writeable: bool = False,
                 kind: type | None = None, min: Any = None, max: Any = None,
                 default: Any = None, description: str = "",
                 text: TextFormatter | None = None, on_change: OnChange | None = None,
                 nullable: bool | None = None, max_length: int | None = None) -> None:
        """Add a leaf. `kind` (int, float, str, bool or None for any) is what writes are
        coerced to; `min`/`max` bound writes (return 2); `on_change(path, value)` may refuse a
        write by returning False (return 2). `nullable`: may a writer set it invalid (default:
        only when the initial value is None). `max_length`: the longest text a writer may set
        (longer: return 2); text with control characters is refused (return 1) on any text
        path, so a write can never put line breaks into logs or settings files."""
        _check_path(path)
        if path in self._items:
            raise ValueError(f"path {path} already exists")
        below = path + "/"        # (not _node_map(): rebuilt at every add, 72 paths cost ~3 ms)
        if any(other.startswith(below) for other in self._items):
            raise ValueError(f"path {path} is already a node with children")
        for prefix in _node_prefixes(path)[1:]:
            if prefix in self._items:
                raise ValueError(f"{path} would be below the leaf {prefix}")
        item = _Item(path, None, writeable, kind, min, max, default, description, text,
                     on_change, value is None if nullable is None else nullable, max_length)
        item.value = self._normalise(item, value)
        self._items[path] = item
        self._items_bodies.clear()
        self._nodes = None
        self._introspect.clear()
        if self._registered:
            self._changed(path)

    def remove_path(self, path: str) -> None:
        if self._items.pop(path, None) is None:
            raise KeyError(path)
        self._cache.pop(path, None)
        self._value_bodies.pop(path, None)
        self._text_bodies.pop(path, None)
        self._items_bodies.clear()
        self._pending.pop(path, None)
        self._nodes = None
        self._introspect.clear()

    def __contains__(self, path: str) -> bool:
        return path in self._items

    def __getitem__(self, path: str) -> Any:
        return self._items[path].value

    def __setitem__(self, path: str, value: Any) -> None:
        """Set a value as the owner (no range check, no on_change). Emits PropertiesChanged at
        once, or inside a batch, its share of the batch's one ItemsChanged."""
        item = self._items[path]
        value = self._normalise(item, value)
        if value == item.value and type(value) is type(item.value):
            return
        item.value = value
        self._changed(path)

    def get_text(self, path: str) -> str:
        item = self._items[path]
        return item.text_of(item.value)

    @property
    def paths(self) -> list[str]:
        return list(self._items)

    @staticmethod
    def _normalise(item: _Item, value: Any) -> Any:
        if value is None or item.kind is None:
            return value
        if item.kind is float and type(value) is int:
            return float(value)
        if item.kind is int and type(value) is float:
            if value != int(value):
                raise ValueError(f"{item.path}: {value!r} is not a whole number")
            return int(value)
        if item.kind is int and type(value) is bool:
            return int(value)
        return value

    # ---- batching --------------------------------------------------------------------

    # Signal for the changes of a batch: one ItemsChanged on `/`. A localsettings-like
    # subclass sets this False: localsettings sends one PropertiesChanged per setting instead.
    items_changed_for_batches = True

    @contextlib.contextmanager
    def batch(self) -> Iterator["VeDbusService"]:
        """Collect every change made inside; on exit emit ONE ItemsChanged on `/` carrying every
        changed leaf, and no PropertiesChanged. Nested batches flush at the outermost exit.
        A SetValue from the bus arriving meanwhile is still signalled at once."""
        self._batch_depth += 1
        try:
            yield self
        finally:
            self._batch_depth -= 1
            if self._batch_depth == 0:
                self.flush()

    def flush(self) -> None:
        """Emit the collected changes now (one ItemsChanged)."""
        if not self._pending:
            return
        paths = list(self._pending)
        self._pending.clear()
        self._emit(paths, batched=True)

    def _changed(self, path: str, *, now: bool = False) -> None:
        """`path` changed: forget its encodings and signal it, at once or (inside a batch and
        not `now`) with the batch."""
        self._cache.pop(path, None)
        self._value_bodies.pop(path, None)
        self._text_bodies.pop(path, None)
        self._items_bodies.clear()
        if not self._registered:
            return
        if self._batch_depth and not now:
            self._pending[path] = None
        else:
            # A signal now also covers an earlier change of the path in the open batch.
            self._pending.pop(path, None)
            self._emit([path], batched=False)

    def _emit(self, paths: list[str], *, batched: bool) -> None:
        """Signal the current values of `paths`: ONE ItemsChanged on `/` for a batch,
        otherwise one PropertiesChanged per path on its own object; never both."""
        bus = self._bus
        if bus is None or not bus.connected:
            return
        if batched and self.items_changed_for_batches:
            bus.send(wire.signal("/", BUSITEM, "ItemsChanged", "a{sa{sv}}",
                                 wire.items_body([self._wire_of(p)[1] for p in paths])))
            return
        bus.send_many([wire.signal(p, BUSITEM, "PropertiesChanged", "a{sv}",
                                   wire.value_text_body(self._wire_of(p)[0])) for p in paths])

    def _wire_of(self, path: str) -> tuple[bytes, bytes]:
        """({Value, Text} entries, GetItems entry) of a path, encoded once per change."""
        cached = self._cache.get(path)
        if cached is None:
            item = self._items[path]
            entries = wire.value_text_entries(item.value, item.text_of(item.value))
            cached = self._cache[path] = (entries, wire.items_entry(path, entries))
        return cached

    def _value_body(self, path: str) -> bytes:
        body = self._value_bodies.get(path)
        if body is None:
            body = self._value_bodies[path] = wire.variant(self._items[path].value)
        return body

    def _text_body(self, path: str) -> bytes:
        body = self._text_bodies.get(path)
        if body is None:
            item = self._items[path]
            body = self._text_bodies[path] = wire.string(item.text_of(item.value))
        return body

    # ---- bus life cycle ------------------------------------------------------------------

    async def register(self) -> None:
        """Connect, answer every path, then claim the well-known name (do-not-queue)."""
        if self._registered:
            raise ServiceError(f"{self.name} is already registered")
        if self._bus_address:
            bus = FastBus(bus_address=self._bus_address)
        else:
            bus = FastBus(bus_type=BusType.SYSTEM)
        await bus.connect()
        bus.add_message_handler(self._handle)
        self._bus = bus
        self._registered = True
        reply = await bus.request_name(self.name, NameFlag.DO_NOT_QUEUE)
        if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
            self._registered = False
            bus.disconnect()
            self._bus = None
            raise ServiceError(f"D-Bus name {self.name} is already owned by another process")
        log.info("registered %s with %d paths", self.name, len(self._items))

    async def close(self) -> None:
        """Release the name and disconnect."""
        bus, self._bus = self._bus, None
        self._registered = False
        if bus is None:
            return
        if bus.connected:
            try:
                await bus.release_name(self.name)
            except Exception as exc:  # the bus may already be going away
                log.debug("release_name(%s) failed: %s", self.name, exc)
            bus.disconnect()
        with contextlib.suppress(Exception):
            await bus.wait_for_disconnect()

    @property
    def bus(self) -> FastBus | None:
        return self._bus

    # ---- answering the bus -----------------------------------------------------------------

    def _node_map(self) -> dict[str, list[str]]:
        if self._nodes is None:
            nodes: dict[str, list[str]] = {"/": []}
            for path in sorted(self._items):
                for prefix in _node_prefixes(path):
                    nodes.setdefault(prefix, []).append(path)
            self._nodes = nodes
        return self._nodes

    def _handle(self, msg: Message):
        if msg.message_type is not MessageType.METHOD_CALL:
            return None
        path = msg.path
        member = msg.member
        interface = msg.interface
        item = self._items.get(path)
        try:
            if interface == INTROSPECTABLE or (interface is None and member == "Introspect"):
                if item is None and path not in self._node_map():
                    return None
                return self._reply(msg, "s", wire.string(self._introspection(path)))
            if interface not in (BUSITEM, None):
                return None  # dbus-next answers org.freedesktop.DBus.Peer and the rest
            if item is not None:
                return self._handle_leaf(msg, item, member)
            if path in self._node_map():
                return self._handle_node(msg, path, member)
            # No object at this path: what a velib_python (libdbus) service answers, and the
            # one error gui-v2 stays quiet about while it probes optional paths.
            return self._send(msg, wire.error(msg, UNKNOWN_OBJECT,
                                              f"no object {path} on {self.name}"))
        except Exception:
            log.exception("answering %s %s on %s", member, path, self.name)
            return self._send(msg, wire.error(msg, "org.freedesktop.DBus.Error.Failed",
                                              "internal error"))

    def _reply(self, msg: Message, signature: str, body: bytes) -> bool:
        return self._send(msg, wire.method_return(msg, signature, body))

    def _send(self, msg: Message, raw: "wire.RawMessage") -> bool:
        if not msg.flags & MessageFlag.NO_REPLY_EXPECTED:
            self._bus.send(raw)
        return True

    def _unknown(self, msg: Message, path: str, member: str) -> bool:
        return self._send(msg, wire.error(
            msg, UNKNOWN_METHOD, f"{member} is not a member of {BUSITEM} on {path}"))

    def _handle_leaf(self, msg: Message, item: _Item, member: str):
        if member == "GetValue":
            return self._reply(msg, "v", self._value_body(item.path))
        if member == "GetText":
            return self._reply(msg, "s", self._text_body(item.path))
        if member == "SetValue":
            # Normally a variant; a bare value (a client without introspection) counts too.
            if len(msg.body) != 1:
                code = self.code_not_writeable
            else:
                code = self.set_value_from_bus(item, msg.body[0])
            return self._reply(msg, "i", wire.int32(code))
        if member in ("GetMin", "GetMax", "GetDefault"):
            attribute = {"GetMin": item.min, "GetMax": item.max, "GetDefault": item.default}
            return self._reply(msg, "v", wire.variant(attribute[member]))
        if member == "GetDescription":
            return self._reply(msg, "s", wire.string(item.description))
        if self.handle_extra(msg, item.path, member):
            return True
        return self._unknown(msg, item.path, member)

    def _handle_node(self, msg: Message, path: str, member: str):
        leaves = self._node_map()[path]
        if member == "GetItems":
            body = self._items_bodies.get(path)
            if body is None:
                body = self._items_bodies[path] = wire.items_body(
                    [self._wire_of(p)[1] for p in leaves])
            return self._reply(msg, "a{sa{sv}}", body)
        if member in ("GetValue", "GetText"):
            cut = 1 if path == "/" else len(path) + 1
            if member == "GetValue":
                pairs = [(p[cut:], self._items[p].value) for p in leaves]
                return self._reply(msg, "v", wire.dict_variant(pairs, "v"))
            pairs = [(p[cut:], self._items[p].text_of(self._items[p].value)) for p in leaves]
            return self._reply(msg, "v", wire.dict_variant(pairs, "s"))
        if self.handle_extra(msg, path, member):
            return True
        return self._unknown(msg, path, member)

    def handle_extra(self, msg: Message, path: str, member: str) -> bool:
        """Subclass hook for more methods on a node or leaf: answer (see `reply`) and return
        True, or return False."""
        return False

    def reply(self, msg: Message, signature: str, values: list) -> bool:
        """Answer a method call with a body of any signature (for `handle_extra`)."""
        return self._reply(msg, signature, wire.encode(signature, values))

    def write(self, path: str, value: Any) -> int:
        """Write as another process would (same coercion, checks, hook, signals and return
        code as a D-Bus SetValue); for in-process writers such as a web UI."""
        item = self._items.get(path)
        if item is None:
            return self.code_not_writeable
        return self.set_value_from_bus(item, value)

    def set_value_from_bus(self, item: _Item, variant: Any) -> int:
        """A SetValue from another process: coerce, check, ask the owner, apply, signal."""
        if not item.writeable:
            return self.code_not_writeable
        try:
            value = unwrap(variant)
            if value is None:
                if not item.nullable:
                    return self.code_not_writeable
            else:
                value = coerce(value, item.kind)
        except CoercionError:
            return self.code_not_writeable
        if isinstance(value, str):
            if _CONTROL_CHARACTERS.search(value):
                return self.code_not_writeable
            if item.max_length is not None and len(value) > item.max_length:
                return self.code_refused
        elif value is not None:
            try:
                if item.min is not None and value < item.min:
                    return self.code_refused
                if item.max is not None and value > item.max:
                    return self.code_refused
            except TypeError:
                return self.code_not_writeable
        if value == item.value and type(value) is type(item.value):
            return ACCEPTED
        if item.on_change is not None:
            try:
                if item.on_change(item.path, value) is False:
                    return self.code_refused
            except Exception:
                log.exception("on_change hook of %s failed; write refused", item.path)
                return self.code_refused
        item.value = value
        self._changed(item.path, now=True)   # a bus write is signalled at once, even in a batch
        return ACCEPTED

    def _introspection(self, path: str) -> str:
        xml = self._introspect.get(path)
        if xml is None:
            xml = self._build_introspection(path)
            self._introspect[path] = xml
        return xml

    def _build_introspection(self, path: str) -> str:
        prefix = "/" if path == "/" else path + "/"
        children: dict[str, None] = {}
        for leaf in self._node_map().get(path, []):
            if leaf.startswith(prefix):
                children[leaf[len(prefix):].split("/", 1)[0]] = None
        is_leaf = path in self._items
        lines = ['<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"',
                 ' "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">',
                 "<node>",
                 f'  <interface name="{INTROSPECTABLE}">',
                 '    <method name="Introspect"><arg direction="out" type="s"/></method>',
                 "  </interface>",
                 f'  <interface name="{BUSITEM}">']
        if is_leaf:
            lines += [
                '    <method name="GetValue"><arg direction="out" type="v"/></method>',
                '    <method name="GetText"><arg direction="out" type="s"/></method>',
                '    <method name="SetValue"><arg direction="in" type="v"/>'
                '<arg direction="out" type="i"/></method>',
                '    <method name="GetDescription"><arg direction="in" type="s"/>'
                '<arg direction="in" type="i"/><arg direction="out" type="s"/></method>',
                '    <method name="GetMin"><arg direction="out" type="v"/></method>',
                '    <method name="GetMax"><arg direction="out" type="v"/></method>',
                '    <method name="GetDefault"><arg direction="out" type="v"/></method>',
                '    <signal name="PropertiesChanged"><arg type="a{sv}"/></signal>']
        else:
            lines += [
                '    <method name="GetValue"><arg direction="out" type="v"/></method>',
                '    <method name="GetText"><arg direction="out" type="v"/></method>']
            if path == "/":
                lines += [
                    '    <method name="GetItems"><arg direction="out" type="a{sa{sv}}"/></method>',
                    '    <signal name="ItemsChanged"><arg type="a{sa{sv}}"/></signal>']
        lines.append("  </interface>")
        lines += self.extra_introspection(path)
        lines += [f'  <node name="{child}"/>' for child in children]
        lines.append("</node>")
        return "\n".join(lines) + "\n"

    def extra_introspection(self, path: str) -> list[str]:
        """Subclass hook: more <interface> XML lines for a node."""
        return []
