"""Where the system bus is, and whether it can be there at all, without connecting.

`system_bus_address()` is the address a system-bus connection of dbus-next uses (an explicit one,
else `DBUS_SYSTEM_BUS_ADDRESS`, else the standard socket). `missing_socket()` names the unix
socket path of such an address when it does not exist, so a service can say which bus it looked
for before it creates anything; it never connects, so it costs no start-up time."""
from __future__ import annotations

import os
import stat

from dbus_next import BusType
from dbus_next._private.address import get_bus_address


def system_bus_address(address: str | None = None) -> str:
    """`address`, else what dbus-next connects to for the system bus."""
    return address or get_bus_address(BusType.SYSTEM)


def missing_socket(address: str) -> str | None:
    """The socket path when every entry of `address` (entries split by ';') is a unix socket
    path that does not exist or is no socket; None when some entry may work (abstract
    sockets, tcp, ... are not checked)."""
    missing = None
    for entry in address.split(";"):
        transport, _, params = entry.partition(":")
        options = dict(p.split("=", 1) for p in params.split(",") if "=" in p)
        path = options.get("path")
        if transport != "unix" or path is None:
            return None
        try:
            if stat.S_ISSOCK(os.stat(path).st_mode):
                return None
        except OSError:
            pass
        missing = missing or path
    return missing
