#!/usr/bin/python3
"""A Venus-style D-Bus service exported the velib_python way, with Debian's python3-dbus.

Run by the tests as an independent peer (/usr/bin/python3, dbus-python + GLib) on the bus in
DBUS_SYSTEM_BUS_ADDRESS:

    busitem_service.py NAME ITEMS_JSON [--no-getitems] [--change-after-getitems PATH]

ITEMS_JSON maps path → {"value": v, "writeable": bool, "max": number, "hang": bool}.
The root object answers GetItems (unless --no-getitems) and GetValue; every leaf answers
GetValue/GetText/SetValue and emits PropertiesChanged. SetValue returns 1 when the path is
not writeable, 2 above "max", 0 otherwise (and then signals the change); with "hang" it never
answers. The well-known name is claimed last; then "ready" is printed. With
--change-after-getitems, right after answering the first GetItems the service adds 1 to PATH
and sends ItemsChanged (a scanner must not lose that change).

Commands on stdin, one JSON object per line, each answered with "ok":
    {"op": "items", "values": {path: value}}   one ItemsChanged on / for all of them
    {"op": "props", "values": {path: value}}   one PropertiesChanged per leaf
    {"op": "quit"}
A value null means invalid (sent as an empty int32 array).
"""
import json
import sys

import dbus
import dbus.service
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

BUSITEM = "com.victronenergy.BusItem"


def to_dbus(value):
    if value is None:
        return dbus.Array([], signature="i", variant_level=1)
    if isinstance(value, bool):
        return dbus.Boolean(value, variant_level=1)
    if isinstance(value, int):
        return dbus.Int32(value, variant_level=1)
    if isinstance(value, float):
        return dbus.Double(value, variant_level=1)
    return dbus.String(value, variant_level=1)


def text_of(value):
    return "---" if value is None else str(value)


class Leaf(dbus.service.Object):
    def __init__(self, conn, path, spec, root):
        dbus.service.Object.__init__(self, conn, path)
        self.path = path
        self.value = spec.get("value")
        self.writeable = spec.get("writeable", False)
        self.maximum = spec.get("max")
        self.hang = spec.get("hang", False)
        self.root = root

    @dbus.service.method(BUSITEM, out_signature="v")
    def GetValue(self):
        return to_dbus(self.value)

    @dbus.service.method(BUSITEM, out_signature="s")
    def GetText(self):
        return text_of(self.value)

    @dbus.service.method(BUSITEM, in_signature="v", out_signature="i",
                         async_callbacks=("reply", "error"))
    def SetValue(self, value, reply, error):
        if self.hang:
            return  # never answers: the caller must time out
        if not self.writeable:
            reply(1)
            return
        if isinstance(value, dbus.Array) and len(value) == 0:
            new = None
        elif isinstance(value, (dbus.String, str)):
            new = str(value)
        elif isinstance(value, dbus.Double):
            new = float(value)
        else:
            new = int(value)
        if self.maximum is not None and new is not None and not isinstance(new, str) \
                and new > self.maximum:
            reply(2)
            return
        reply(0)
        if new != self.value:
            self.value = new
            self.PropertiesChanged({"Value": to_dbus(new), "Text": text_of(new)})
            self.root.ItemsChanged({self.path: {"Value": to_dbus(new), "Text": text_of(new)}})

    @dbus.service.signal(BUSITEM, signature="a{sv}")
    def PropertiesChanged(self, changes):
        pass


class Root(dbus.service.Object):
    def __init__(self, conn):
        dbus.service.Object.__init__(self, conn, "/")
        self.leaves = {}

    @dbus.service.method(BUSITEM, out_signature="v")
    def GetValue(self):
        return dbus.Dictionary({p[1:]: to_dbus(l.value) for p, l in self.leaves.items()},
                               signature="sv", variant_level=1)

    @dbus.service.signal(BUSITEM, signature="a{sa{sv}}")
    def ItemsChanged(self, changes):
        pass


class RootWithItems(Root):
    change_after_getitems = None

    @dbus.service.method(BUSITEM, out_signature="a{sa{sv}}")
    def GetItems(self):
        if self.change_after_getitems:
            GLib.idle_add(self._change, self.change_after_getitems)
            self.change_after_getitems = None
        return {p: {"Value": to_dbus(l.value), "Text": text_of(l.value)}
                for p, l in self.leaves.items()}

    def _change(self, path):
        leaf = self.leaves[path]
        leaf.value += 1
        self.ItemsChanged({path: {"Value": to_dbus(leaf.value), "Text": text_of(leaf.value)}})
        return False


def main():
    name, items = sys.argv[1], json.loads(sys.argv[2])
    DBusGMainLoop(set_as_default=True)
    conn = dbus.SystemBus(private=True)
    root = (Root if "--no-getitems" in sys.argv else RootWithItems)(conn)
    if "--change-after-getitems" in sys.argv:
        root.change_after_getitems = sys.argv[sys.argv.index("--change-after-getitems") + 1]
    for path, spec in items.items():
        root.leaves[path] = Leaf(conn, path, spec, root)
    bus_name = dbus.service.BusName(name, conn, do_not_queue=True)  # claimed last
    loop = GLib.MainLoop()

    def on_stdin(source, condition):
        line = sys.stdin.readline()
        if not line:
            loop.quit()
            return False
        cmd = json.loads(line)
        if cmd["op"] == "quit":
            loop.quit()
            return False
        changes = {}
        for path, value in cmd["values"].items():
            leaf = root.leaves.get(path)
            if leaf is None:
                leaf = root.leaves[path] = Leaf(conn, path, {"value": value}, root)
            leaf.value = value
            changes[path] = {"Value": to_dbus(value), "Text": text_of(value)}
            if cmd["op"] == "props":
                leaf.PropertiesChanged(changes[path])
        if cmd["op"] == "items":
            root.ItemsChanged(changes)
        conn.flush()  # signals are on the bus before we say "ok"
        print("ok", flush=True)
        return True

    GLib.io_add_watch(sys.stdin, GLib.IO_IN | GLib.IO_HUP, on_stdin)
    print("ready", flush=True)
    loop.run()
    del bus_name


if __name__ == "__main__":
    main()
