import os
import subprocess

from dbus_next.aio import MessageBus
from dbus_next import BusType


async def test_private_bus_is_used_by_dbus_next_and_cli(private_bus):
    assert os.environ["DBUS_SYSTEM_BUS_ADDRESS"] == private_bus
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    try:
        await bus.request_name("com.victronenergy.test_private")
        out = subprocess.run(
            ["dbus-send", "--system", "--print-reply", "--dest=org.freedesktop.DBus",
             "/org/freedesktop/DBus", "org.freedesktop.DBus.ListNames"],
            capture_output=True, text=True, check=True).stdout
        assert "com.victronenergy.test_private" in out
    finally:
        bus.disconnect()
