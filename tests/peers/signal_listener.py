#!/usr/bin/python3
"""Print the BusItem signals a service sends, one JSON object per line (python3-dbus peer).

    signal_listener.py SERVICE_NAME

Prints "ready" once subscribed, then {"member": ..., "path": ..., "body": ...} per
PropertiesChanged / ItemsChanged from that service. Invalid values (empty arrays) print as null.
"""
import json
import sys

import dbus
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib


def plain(value):
    if isinstance(value, dbus.Array):
        return None if len(value) == 0 else [plain(v) for v in value]
    if isinstance(value, dbus.Dictionary):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, dbus.Boolean):
        return bool(value)
    if isinstance(value, (dbus.Double,)):
        return float(value)
    if isinstance(value, (dbus.Int16, dbus.Int32, dbus.Int64, dbus.UInt16, dbus.UInt32,
                          dbus.UInt64, dbus.Byte)):
        return int(value)
    if isinstance(value, dbus.String):
        return str(value)
    return value


def main():
    DBusGMainLoop(set_as_default=True)
    bus = dbus.SystemBus(private=True)

    def on_signal(*args, member=None, path=None):
        print(json.dumps({"member": member, "path": path, "body": plain(args[0])}), flush=True)

    for member in ("PropertiesChanged", "ItemsChanged"):
        bus.add_signal_receiver(on_signal, signal_name=member,
                                dbus_interface="com.victronenergy.BusItem",
                                bus_name=sys.argv[1], member_keyword="member",
                                path_keyword="path")
    # a round trip makes sure the match rules are in place before we say so
    bus.get_object("org.freedesktop.DBus", "/org/freedesktop/DBus").GetId(
        dbus_interface="org.freedesktop.DBus")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
