#!/usr/bin/python3
"""A minimal reference EV-charger driver, built the way a Victron driver on velib_python is.

What phaeton's benchmarks compare against (`benchmarks/dbus_bench.py`,
`benchmarks/service_bench.py`).
velib_python is not on the package registry, so this file re-creates what its `VeDbusService`
(velib_python `vedbus.py`) does, on the same stack: Debian's dbus-python (`python3-dbus`) with a
GLib main loop (`python3-gi`), run by `/usr/bin/python3`. It is written from the facts of
vedbus.py, not copied:

- one `dbus.service.Object` per path, answering `GetValue`, `GetText`, `SetValue` and
  `GetDescription` on `com.victronenergy.BusItem`, and emitting `PropertiesChanged` {Value, Text};
  one object per intermediate node (`/Ac`, `/Ac/L1`) answering `GetValue`/`GetText` with a dict
  keyed relative to the node; the root `/` also answers `GetItems` (every path: {Value, Text})
  and emits `ItemsChanged`. Every object answers `Introspect` (dbus-python does that);
- invalid (None) is an empty `ai` array; ints are int32 (int64 when they do not fit), floats
  doubles, strings strings; `GetText` of None is `---`, of `/ProductId` without a formatter hex;
- `SetValue`: 1 when the path is not writeable or the value cannot be converted to the path's
  type, 0 when the value equals the current one (nothing else happens), otherwise the owner's
  callback decides: accepted → the value is stored, `PropertiesChanged` is sent, 0; refused → 2;
- a change outside a batch is one `PropertiesChanged` on its path; changes inside
  `with service:` are one `ItemsChanged` on `/` when the block ends;
- every path exists before the well-known name is requested (`do_not_queue`, as
  `VeDbusService.register`).

One deliberate difference: velib_python connects to the session bus when
DBUS_SESSION_BUS_ADDRESS is set; this driver always uses the system bus (DBUS_SYSTEM_BUS_ADDRESS
points it at a private bus), as phaeton does.

The driver publishes `com.victronenergy.evcharger.<name>` with the 42 paths phaeton's evcharger
service publishes (`phaeton/venus/evcharger_service.py` plus the seven read-only `/Planner/*`
paths, which stay at their start values here), and drives an Alfen NG9xx the way phaeton's
Alfen driver does (`phaeton/chargers/alfen.py`, `shared/reference/alfen-modbus.md`), with a
small blocking Modbus TCP client of its own (this interpreter has no pymodbus; blocking I/O in the
main loop is what Victron's dbus-modbus-client does too). The paths, the write rules and the
register decoding are in `alfen_paths.py`, shared with `stack_floor_driver.py`:

- once per connection: station identity, unit 200, registers 100..177;
- every `--poll-s` (default 2 s): station status (unit 200, 1100..1105), socket meter (unit 1,
  300..377), socket control (unit 1, 1200..1215), then all measured paths in one batch
  (one ItemsChanged);
- a write to `/SetCurrent` (or `/StartStop`) is written to register 1210 (FLOAT32, one 0x10
  request) inside the SetValue call, before the reply; the setpoint is re-sent every 20 s so the
  station keeps it (validity time 60 s). Below 6 A, or stopped, the setpoint is 0.

Run (Debian: `apt-get install python3-dbus python3-gi`):

    DBUS_SYSTEM_BUS_ADDRESS=... /usr/bin/python3 benchmarks/reference_driver.py \\
        --bus-name com.victronenergy.evcharger.reference_0 --modbus-host 127.0.0.1 \\
        [--modbus-port 502] [--poll-s 2]

Without `--modbus-host` only the D-Bus part runs (no polling). `--commands-on-stdin` is for
`dbus_bench.py`: it reads `publish <json list of {path: value} batches>` lines, applies each
batch as one `with service:` block, and prints the process CPU seconds of each batch (until the
messages are written) as a JSON list; `quit` ends the driver.
"""
import argparse
import json
import logging
import os
import signal
import socket
import struct
import sys
import time

try:
    import dbus
    import dbus.service
    from dbus.mainloop.glib import DBusGMainLoop
    from gi.repository import GLib
except ImportError as _missing:
    sys.stderr.write(
        "reference_driver.py needs Debian's dbus-python and PyGObject for this interpreter "
        "(%s): apt-get install python3-dbus python3-gi, and run it with /usr/bin/python3 (%s)\n"
        % (sys.executable, _missing))
    sys.exit(2)

import alfen_paths as alfen  # noqa: E402  (this script's directory is on the path)

log = logging.getLogger("reference_driver")

BUSITEM = "com.victronenergy.BusItem"

# ---- velib_python's VeDbusService, re-created ---------------------------------------------------


def wrap(value):
    """A Python value as the variant velib_python puts on the bus."""
    if value is None:
        return dbus.Array([], signature=dbus.Signature("i"), variant_level=1)
    if isinstance(value, float):
        return dbus.Double(value, variant_level=1)
    if isinstance(value, bool):
        return dbus.Boolean(value, variant_level=1)
    if isinstance(value, int):
        if -2 ** 31 <= value < 2 ** 31:
            return dbus.Int32(value, variant_level=1)
        return dbus.Int64(value, variant_level=1)
    if isinstance(value, str):
        return dbus.String(value, variant_level=1)
    if isinstance(value, list):
        if not value:
            return dbus.Array([], signature=dbus.Signature("u"), variant_level=1)
        return dbus.Array([wrap(v) for v in value], variant_level=1)
    if isinstance(value, dict):
        return dbus.Dictionary({k: wrap(v) for k, v in value.items()}, variant_level=1)
    return value


_INTEGERS = (dbus.Byte, dbus.Int16, dbus.UInt16, dbus.Int32, dbus.UInt32, dbus.Int64,
             dbus.UInt64)


def unwrap(value):
    """A value from the bus as a plain Python value; an empty array is None (invalid)."""
    if isinstance(value, dbus.Boolean):
        return bool(value)
    if isinstance(value, _INTEGERS):
        return int(value)
    if isinstance(value, dbus.Double):
        return float(value)
    if isinstance(value, (dbus.String, dbus.Signature, dbus.ObjectPath)):
        return str(value)
    if isinstance(value, dbus.Array):
        items = [unwrap(v) for v in value]
        return items or None
    if isinstance(value, (dbus.Dictionary, dict)):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [unwrap(v) for v in value]
    return value


class BusItem(dbus.service.Object):
    """One path: value, text, writes (see the module docstring for the rules)."""

    def __init__(self, bus, path, value, description, writeable, kind, text, on_change):
        dbus.service.Object.__init__(self, bus, path)
        self.path = path
        self.value = value
        self.description = description
        self.writeable = writeable
        self.kind = kind
        self.text = text
        self.on_change = on_change

    def set_local(self, value):
        """Store a new value; the {Value, Text} change, or None when nothing changed."""
        if value == self.value:
            return None
        self.value = value
        return {"Value": wrap(value), "Text": self.GetText()}

    @dbus.service.method(BUSITEM, in_signature="v", out_signature="i")
    def SetValue(self, value):
        if not self.writeable:
            return 1
        value = unwrap(value)
        if self.kind is not None and value is not None:
            try:
                value = self.kind(value)
            except (TypeError, ValueError):
                return 1
        if value == self.value:
            return 0
        if self.on_change is not None and not self.on_change(self.path, value):
            return 2
        change = self.set_local(value)
        if change is not None:
            self.PropertiesChanged(change)
        return 0

    @dbus.service.method(BUSITEM, out_signature="v")
    def GetValue(self):
        return wrap(self.value)

    @dbus.service.method(BUSITEM, out_signature="s")
    def GetText(self):
        if self.value is None:
            return "---"
        if self.text is not None:
            return self.text(self.value)
        if self.path == "/ProductId" and isinstance(self.value, int):
            return "0x%X" % self.value
        return str(self.value)

    @dbus.service.method(BUSITEM, in_signature="si", out_signature="s")
    def GetDescription(self, language, length):
        return self.description or "No description given"

    @dbus.service.signal(BUSITEM, signature="a{sv}")
    def PropertiesChanged(self, changes):
        pass


class TreeNode(dbus.service.Object):
    """An intermediate node (`/Ac`): GetValue/GetText of every path below it."""

    def __init__(self, bus, path, service):
        dbus.service.Object.__init__(self, bus, path)
        self.node = path
        self.service = service

    def _below(self, texts):
        prefix = self.node if self.node.endswith("/") else self.node + "/"
        cut = len(prefix)
        out = {}
        for path, item in self.service.items.items():
            if path.startswith(prefix):
                out[path[cut:]] = item.GetText() if texts else wrap(item.value)
        return out

    @dbus.service.method(BUSITEM, out_signature="v")
    def GetValue(self):
        return dbus.Dictionary(self._below(False), signature="sv", variant_level=1)

    @dbus.service.method(BUSITEM, out_signature="v")
    def GetText(self):
        return dbus.Dictionary(self._below(True), signature="ss", variant_level=1)


class RootNode(TreeNode):
    """`/`: also GetItems and the ItemsChanged signal."""

    @dbus.service.method(BUSITEM, out_signature="a{sa{sv}}")
    def GetItems(self):
        return {path: {"Value": wrap(item.value), "Text": item.GetText()}
                for path, item in self.service.items.items()}

    @dbus.service.signal(BUSITEM, signature="a{sa{sv}}")
    def ItemsChanged(self, changes):
        pass


class Batch:
    """`with service as batch:` collects changes; one ItemsChanged when the block ends."""

    def __init__(self, service):
        self.service = service
        self.changes = {}

    def __setitem__(self, path, value):
        change = self.service.items[path].set_local(value)
        if change is not None:
            self.changes[path] = change

    def __getitem__(self, path):
        return self.service.items[path].value

    def flush(self):
        if self.changes:
            self.service.root.ItemsChanged(self.changes)
            self.changes = {}


class Service:
    """A Venus D-Bus service: paths are added first, then the name is requested."""

    def __init__(self, name, bus):
        self.name = name
        self.bus = bus
        self.items = {}
        self.nodes = {}
        self.root = self.nodes["/"] = RootNode(bus, "/", self)
        self._batches = []
        self._bus_name = None

    def add_path(self, path, value, description="", writeable=False, kind=None, text=None,
                 on_change=None):
        parts = path.split("/")
        for end in range(2, len(parts)):
            node = "/".join(parts[:end])
            if node not in self.nodes and node not in self.items:
                self.nodes[node] = TreeNode(self.bus, node, self)
        self.items[path] = BusItem(self.bus, path, value, description, writeable, kind, text,
                                   on_change)

    def register(self):
        self._bus_name = dbus.service.BusName(self.name, self.bus, do_not_queue=True)

    def __getitem__(self, path):
        return self.items[path].value

    def __setitem__(self, path, value):
        item = self.items[path]
        change = item.set_local(value)
        if change is not None:
            item.PropertiesChanged(change)

    def __enter__(self):
        batch = Batch(self)
        self._batches.append(batch)
        return batch

    def __exit__(self, *exc):
        self._batches.pop().flush()


# ---- a small Modbus TCP client (function codes 0x03 and 0x10) ---------------------------------


class ModbusError(Exception):
    pass


class ModbusTcp:
    """Blocking Modbus TCP master; one request at a time, reconnects on the next request."""

    def __init__(self, host, port, timeout_s=3.0):
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self.sock = None
        self.transaction = 0

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def _connect(self):
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock

    def _receive(self, count):
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise ModbusError("connection closed by the station")
            data += chunk
        return data

    def _request(self, unit, pdu):
        if self.sock is None:
            self._connect()
        self.transaction = (self.transaction + 1) & 0xFFFF
        try:
            self.sock.sendall(struct.pack(">HHHB", self.transaction, 0, len(pdu) + 1, unit) + pdu)
            while True:
                tid, protocol, length, _unit = struct.unpack(">HHHB", self._receive(7))
                body = self._receive(length - 1)
                if tid == self.transaction and protocol == 0:
                    break                          # a late answer to an older request: skip it
        except (OSError, ModbusError, struct.error) as exc:
            self.close()
            raise ModbusError(str(exc) or type(exc).__name__)
        if body[0] & 0x80:
            raise ModbusError("unit %d: Modbus exception %d" % (unit, body[1]))
        if body[0] != pdu[0]:
            raise ModbusError("unit %d: answer to function %d" % (unit, body[0]))
        return body

    def read(self, unit, address, count):
        body = self._request(unit, struct.pack(">BHH", 0x03, address, count))
        if body[1] != 2 * count or len(body) != 2 + 2 * count:
            raise ModbusError("unit %d: %d bytes for %d registers" % (unit, body[1], count))
        return alfen.Registers(address, body[2:])

    def write(self, unit, address, words):
        data = struct.pack(">%dH" % len(words), *words)
        self._request(unit, struct.pack(">BHHB", 0x10, address, len(words), len(data)) + data)


# ---- the driver ------------------------------------------------------------------------------

class ReferenceDriver:
    def __init__(self, bus, name, modbus, station_unit, socket_unit, max_current_a):
        self.bus = bus
        self.modbus = modbus
        self.station_unit, self.socket_unit = station_unit, socket_unit
        self.max_current_a = max_current_a
        self.connected = False
        self.written_a = None
        self.written_at = 0.0
        self.session = None                  # (monotonic s, lifetime kWh) while a car is present
        self.service = Service(name, bus)
        connection = "Modbus TCP %s:%d" % (modbus.host, modbus.port) if modbus else ""
        alfen.declare_paths(self.service.add_path, self._accept, connection, "reference_driver",
                            max_current_a)

    # ---- writes from the bus ------------------------------------------------------------------

    def _accept(self, path, value):
        ok, setpoint = alfen.accept_write(path, value, self.service.__getitem__,
                                          self.max_current_a)
        if ok and setpoint is not None:
            self._write_setpoint(setpoint)
        return ok

    def _write_setpoint(self, amps):
        if self.modbus is None or not self.connected:
            return
        try:
            self.modbus.write(self.socket_unit, alfen.SETPOINT_REGISTER,
                              alfen.setpoint_words(amps))
        except ModbusError as exc:
            self._lost(exc)
            return
        self.written_a, self.written_at = amps, time.monotonic()

    # ---- polling ------------------------------------------------------------------------------

    def poll(self):
        try:
            if not self.connected:
                self._connect()
            status = self.modbus.read(self.station_unit, *alfen.STATUS)
            meter = self.modbus.read(self.socket_unit, *alfen.METER)
            control = self.modbus.read(self.socket_unit, *alfen.CONTROL)
        except ModbusError as exc:
            self._lost(exc)
            return True
        values, self.session = alfen.measured_values(status, meter, control, self.session,
                                                     time.monotonic())
        self._publish(values)
        if time.monotonic() - self.written_at >= alfen.SETPOINT_REFRESH_S:
            svc = self.service
            self._write_setpoint(alfen.target(svc["/SetCurrent"], svc["/StartStop"],
                                              svc["/MaxCurrent"]))
        return True                          # keep the GLib timeout

    def _connect(self):
        identity = self.modbus.read(self.station_unit, *alfen.IDENTITY)
        self.connected = True
        log.info("connected to %s:%d", self.modbus.host, self.modbus.port)
        self._publish(alfen.identity_values(identity))
        self.written_at = 0.0                # the station may have lost it: send it now

    def _lost(self, exc):
        if self.connected:
            log.warning("lost %s:%d: %s", self.modbus.host, self.modbus.port, exc)
        self.connected = False
        self.modbus.close()
        self.session = None
        self._publish(alfen.lost_values())

    def _publish(self, values):
        with self.service as batch:
            for path, value in values.items():
                batch[path] = value

    # ---- commands on stdin (dbus_bench.py) ----------------------------------------------------

    def command(self, line, loop):
        verb, _, rest = line.strip().partition(" ")
        if verb == "publish":
            samples = []
            for values in json.loads(rest):
                start = time.process_time()
                with self.service as batch:
                    for path, value in values.items():
                        batch[path] = value
                self.bus.flush()             # until every message is written to the socket
                samples.append(time.process_time() - start)
            sys.stdout.write(json.dumps(samples) + "\n")
            sys.stdout.flush()
        elif verb in ("quit", ""):
            loop.quit()
            return False
        return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bus-name", default="com.victronenergy.evcharger.reference_0")
    parser.add_argument("--modbus-host", help="the Alfen's address; without it no polling")
    parser.add_argument("--modbus-port", type=int, default=502)
    parser.add_argument("--poll-s", type=float, default=2.0)
    parser.add_argument("--station-unit", type=int, default=alfen.STATION_UNIT_DEFAULT)
    parser.add_argument("--socket-unit", type=int, default=alfen.SOCKET_UNIT_DEFAULT)
    parser.add_argument("--max-current-a", type=float, default=16.0)
    parser.add_argument("--commands-on-stdin", action="store_true",
                        help="benchmark commands on stdin (see the module docstring)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")

    DBusGMainLoop(set_as_default=True)
    bus = dbus.SystemBus()
    modbus = ModbusTcp(args.modbus_host, args.modbus_port) if args.modbus_host else None
    driver = ReferenceDriver(bus, args.bus_name, modbus, args.station_unit, args.socket_unit,
                             args.max_current_a)
    driver.service.register()
    loop = GLib.MainLoop()
    if modbus is not None:
        GLib.idle_add(lambda: driver.poll() and False)       # the first poll right away
        GLib.timeout_add(int(args.poll_s * 1000), driver.poll)
    if args.commands_on_stdin:
        GLib.io_add_watch(sys.stdin.fileno(), GLib.IO_IN | GLib.IO_HUP,
                          lambda *_: driver.command(sys.stdin.readline(), loop))
        sys.stdout.write("ready\n")
        sys.stdout.flush()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, lambda: loop.quit() or False)
    loop.run()
    if modbus is not None:
        modbus.close()


if __name__ == "__main__":
    main()
