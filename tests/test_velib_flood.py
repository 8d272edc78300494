"""A publisher that sends faster than the bus drains must queue, not drop its connection."""
from __future__ import annotations

import asyncio

from dbus_next import BusType, Message
from dbus_next.aio import MessageBus

from velib.service import VeDbusService

NAME = "com.victronenergy.test.flood"


async def test_back_to_back_batches_all_arrive(private_bus):
    svc = VeDbusService(NAME)
    for i in range(10):
        svc.add_path(f"/Value{i}", 0)
    await svc.register()
    listener = await MessageBus(bus_type=BusType.SYSTEM).connect()
    received = []
    done = asyncio.Event()
    batches = 3000

    def on_message(msg: Message):
        if msg.member == "ItemsChanged":
            received.append(msg.body[0]["/Value0"]["Value"].value)
            if len(received) == batches:
                done.set()

    listener.add_message_handler(on_message)
    await listener.call(Message(
        destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
        interface="org.freedesktop.DBus", member="AddMatch", signature="s",
        body=[f"type='signal',interface='com.victronenergy.BusItem',member='ItemsChanged'"]))
    try:
        for n in range(1, batches + 1):      # no yielding: the socket buffer fills up
            with svc.batch():
                for i in range(10):
                    svc[f"/Value{i}"] = n
        await asyncio.wait_for(done.wait(), 60)
        assert received == list(range(1, batches + 1))
        assert svc.bus.connected
    finally:
        listener.disconnect()
        await svc.close()
