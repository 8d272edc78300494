#!/usr/bin/python3
"""A minimal, independent com.victronenergy.settings in python3-dbus, shaped like Victron's
localsettings: AddSettings (aa{sv} -> aa{sv}) on '/', settings as BusItems with GetValue /
SetValue (0 or -1) / PropertiesChanged, GetValue on '/' and NO GetItems or ItemsChanged (as in
older localsettings). Instance clashes are bumped. Prints "ready" when the name is claimed.
"""
import sys

import dbus
import dbus.service
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

BUSITEM = "com.victronenergy.BusItem"
SETTINGS = "com.victronenergy.Settings"


class Setting(dbus.service.Object):
    def __init__(self, conn, path, value, minimum, maximum):
        dbus.service.Object.__init__(self, conn, path)
        self.value, self.minimum, self.maximum = value, minimum, maximum

    @dbus.service.method(BUSITEM, out_signature="v")
    def GetValue(self):
        return self.value

    @dbus.service.method(BUSITEM, in_signature="v", out_signature="i")
    def SetValue(self, value):
        try:
            value = type(self.value)(value)
        except (TypeError, ValueError):
            return -1
        if self.minimum is not None and not self.minimum <= value <= self.maximum:
            return -1
        if value != self.value:
            self.value = value
            self.PropertiesChanged({"Value": value, "Text": str(value)})
        return 0

    @dbus.service.signal(BUSITEM, signature="a{sv}")
    def PropertiesChanged(self, changes):
        pass


class Root(dbus.service.Object):
    def __init__(self, conn):
        dbus.service.Object.__init__(self, conn, "/")
        self.conn = conn
        self.settings = {}

    @dbus.service.method(BUSITEM, out_signature="v")
    def GetValue(self):
        return dbus.Dictionary({p[1:]: s.value for p, s in self.settings.items()},
                               signature="sv", variant_level=1)

    @dbus.service.method(SETTINGS, in_signature="aa{sv}", out_signature="aa{sv}")
    def AddSettings(self, entries):
        out = []
        for entry in entries:
            path = str(entry["path"])
            default = entry["default"]
            if isinstance(default, dbus.Boolean):
                out.append({"path": path, "error": -3})
                continue
            if path not in self.settings:
                value = default
                if path.endswith("/ClassAndVrmInstance"):
                    cls, inst = str(default).split(":")
                    taken = {str(s.value) for p, s in self.settings.items()
                             if p.endswith("/ClassAndVrmInstance")}
                    inst = int(inst)
                    while "%s:%d" % (cls, inst) in taken:
                        inst += 1
                    value = dbus.String("%s:%d" % (cls, inst))
                self.settings[path] = Setting(self.conn, path, value, entry.get("min"),
                                              entry.get("max"))
            out.append({"path": path, "error": 0, "value": self.settings[path].value})
        return out


def main():
    DBusGMainLoop(set_as_default=True)
    conn = dbus.SystemBus(private=True)
    Root(conn)
    name = dbus.service.BusName("com.victronenergy.settings", conn, do_not_queue=True)
    print("ready", flush=True)
    GLib.MainLoop().run()
    del name


if __name__ == "__main__":
    main()
