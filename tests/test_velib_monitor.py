"""DbusMonitor against independent python3-dbus services on a private dbus-daemon."""
from __future__ import annotations

import asyncio

import pytest

from peers import start_busitem_service
from phaeton.clock import ScaledClock
from velib.monitor import (CallTimeout, DbusMonitor, PathNotFound, ServiceNotFound, Watch)
from velib.service import VeDbusService

VEBUS = "com.victronenergy.vebus.ttyS4"
VEBUS_ITEMS = {
    "/DeviceInstance": {"value": 276},
    "/ProductName": {"value": "MultiPlus-II"},
    "/Ac/Out/L1/P": {"value": 350.5},
    "/Mode": {"value": 3, "writeable": True, "max": 4},
    "/Soc": {"value": None},
    "/Hub4/L1/AcPowerSetpoint": {"value": 0, "writeable": True, "hang": True},
}


class Recorder:
    """Collects monitor callbacks and lets a test wait for a specific one."""

    def __init__(self):
        self.events: list[tuple] = []
        self._changed = asyncio.Event()

    def value(self, service, path, value):
        self._record(("value", service, path, value))

    def added(self, service):
        self._record(("added", service))

    def removed(self, service):
        self._record(("removed", service))

    def _record(self, event):
        self.events.append(event)
        self._changed.set()

    async def wait_for(self, event: tuple) -> None:
        async def _wait():
            while event not in self.events:
                self._changed.clear()
                await self._changed.wait()
        await asyncio.wait_for(_wait(), 10)

    def kwargs(self):
        return dict(on_value_changed=self.value, on_service_added=self.added,
                    on_service_removed=self.removed)


@pytest.fixture
async def vebus(private_bus):
    peer = await start_busitem_service(VEBUS, VEBUS_ITEMS)
    yield peer
    await peer.stop()


async def test_scans_services_present_at_start_with_one_cache(vebus):
    rec = Recorder()
    async with DbusMonitor(["com.victronenergy.vebus.*"], **rec.kwargs()) as monitor:
        assert monitor.seen_services() == [VEBUS]
        assert monitor.get_value(VEBUS, "/DeviceInstance") == 276
        assert monitor.get_value(VEBUS, "/ProductName") == "MultiPlus-II"
        assert monitor.get_value(VEBUS, "/Ac/Out/L1/P") == 350.5
        assert monitor.get_value(VEBUS, "/Soc") is None  # `ai []` is invalid
        assert monitor.get_value(VEBUS, "/Soc", default=-1) == -1
        assert monitor.get_value(VEBUS, "/NoSuchPath") is None
        assert monitor.get_age(VEBUS, "/Mode") >= 0
        assert monitor.get_age(VEBUS, "/NoSuchPath") is None
        assert ("added", VEBUS) in rec.events
        assert ("value", VEBUS, "/Mode", 3) in rec.events
        # invalid values at first scan are not reported as a change
        assert not [e for e in rec.events if e[:3] == ("value", VEBUS, "/Soc")]


async def test_service_appearing_later_is_scanned_and_followed(private_bus):
    rec = Recorder()
    async with DbusMonitor(["com.victronenergy.vebus.*"], **rec.kwargs()) as monitor:
        assert monitor.seen_services() == []
        peer = await start_busitem_service(VEBUS, VEBUS_ITEMS)
        try:
            await rec.wait_for(("added", VEBUS))
            assert monitor.get_value(VEBUS, "/Ac/Out/L1/P") == 350.5

            await peer.send({"op": "items", "values": {"/Ac/Out/L1/P": 1200.0, "/Soc": 81.5}})
            await rec.wait_for(("value", VEBUS, "/Soc", 81.5))
            assert monitor.get_value(VEBUS, "/Ac/Out/L1/P") == 1200.0

            await peer.send({"op": "props", "values": {"/Mode": 1}})
            await rec.wait_for(("value", VEBUS, "/Mode", 1))
            assert monitor.get_value(VEBUS, "/Mode") == 1

            await peer.send({"op": "items", "values": {"/Soc": None}})
            await rec.wait_for(("value", VEBUS, "/Soc", None))
            assert monitor.get_value(VEBUS, "/Soc") is None
        finally:
            await peer.stop()


async def test_follows_a_velib_service_through_either_signal(private_bus):
    """velib sends PropertiesChanged alone for a single change and ItemsChanged alone for a
    batch (as velib_python does): the monitor must follow both."""
    name = "com.victronenergy.evcharger.velibpeer"
    svc = VeDbusService(name)
    svc.add_path("/DeviceInstance", 40)
    svc.add_path("/Ac/Power", 0.0)
    svc.add_path("/Status", 0)
    await svc.register()
    rec = Recorder()
    try:
        async with DbusMonitor(["com.victronenergy.evcharger.*"], **rec.kwargs()) as monitor:
            assert monitor.seen_services() == [name]
            svc["/Status"] = 2                          # PropertiesChanged only
            await rec.wait_for(("value", name, "/Status", 2))
            with svc.batch():                           # ItemsChanged only
                svc["/Ac/Power"] = 1200.0
                svc["/Status"] = 3
            await rec.wait_for(("value", name, "/Status", 3))
            assert monitor.get_value(name, "/Ac/Power") == 1200.0
            svc.add_path("/Session/Energy", 1.5)        # a new path: PropertiesChanged only
            await rec.wait_for(("value", name, "/Session/Energy", 1.5))
            assert "/Session/Energy" in monitor.get_paths(name)
    finally:
        await svc.close()


async def test_unchanged_value_refreshes_age_without_callback(vebus):
    clock = ScaledClock(speed=1000)
    rec = Recorder()
    async with DbusMonitor(["com.victronenergy.vebus.*"], clock=clock, **rec.kwargs()) as monitor:
        await clock.sleep(30)
        old_age = monitor.get_age(VEBUS, "/Mode")
        assert old_age >= 30
        before = len(rec.events)
        await vebus.send({"op": "items", "values": {"/Mode": 3, "/Soc": 50.0}})
        await rec.wait_for(("value", VEBUS, "/Soc", 50.0))
        assert monitor.get_age(VEBUS, "/Mode") < old_age
        assert [e for e in rec.events[before:] if e[2] == "/Mode"] == []


async def test_leaving_service_goes_invalid_and_is_reattached_on_return(private_bus):
    rec = Recorder()
    async with DbusMonitor(["com.victronenergy.vebus.*"], **rec.kwargs()) as monitor:
        peer = await start_busitem_service(VEBUS, VEBUS_ITEMS)
        await rec.wait_for(("added", VEBUS))
        await peer.stop()
        await rec.wait_for(("removed", VEBUS))
        assert ("value", VEBUS, "/Ac/Out/L1/P", None) in rec.events
        assert monitor.get_value(VEBUS, "/Ac/Out/L1/P") is None
        assert monitor.get_value(VEBUS, "/DeviceInstance") is None
        assert monitor.seen_services() == []

        rec.events.clear()
        items = dict(VEBUS_ITEMS, **{"/Ac/Out/L1/P": {"value": 10.0}})
        peer = await start_busitem_service(VEBUS, items)
        try:
            await rec.wait_for(("added", VEBUS))
            assert monitor.get_value(VEBUS, "/Ac/Out/L1/P") == 10.0
            assert ("value", VEBUS, "/DeviceInstance", 276) in rec.events
            await peer.send({"op": "props", "values": {"/Ac/Out/L1/P": 11.0}})
            await rec.wait_for(("value", VEBUS, "/Ac/Out/L1/P", 11.0))
        finally:
            await peer.stop()


async def test_services_without_device_instance_are_ignored_unless_watch_says_so(private_bus):
    system = await start_busitem_service("com.victronenergy.system",
                                         {"/Dc/Pv/Power": {"value": 800.0}})
    other = await start_busitem_service("com.victronenergy.tank.x",
                                        {"/Level": {"value": 40.0}})
    try:
        rec = Recorder()
        watches = [Watch("com.victronenergy.system", require_device_instance=False),
                   "com.victronenergy.tank.*"]
        async with DbusMonitor(watches, **rec.kwargs()) as monitor:
            assert monitor.seen_services() == ["com.victronenergy.system"]
            assert monitor.get_value("com.victronenergy.system", "/Dc/Pv/Power") == 800.0
            assert monitor.get_value("com.victronenergy.tank.x", "/Level") is None
            await other.send({"op": "items", "values": {"/Level": 41.0}})
            await system.send({"op": "items", "values": {"/Dc/Pv/Power": 900.0}})
            await rec.wait_for(("value", "com.victronenergy.system", "/Dc/Pv/Power", 900.0))
            # the tank's signal went out before the system's one, and was dropped
            assert not [e for e in rec.events if "com.victronenergy.tank.x" in e]
    finally:
        await system.stop()
        await other.stop()


async def test_services_not_matching_any_pattern_are_not_followed(private_bus):
    rec = Recorder()
    unrelated = await start_busitem_service("com.victronenergy.battery.x",
                                            {"/DeviceInstance": {"value": 1}})
    try:
        async with DbusMonitor(["com.victronenergy.vebus.*"], **rec.kwargs()) as monitor:
            peer = await start_busitem_service(VEBUS, VEBUS_ITEMS)
            try:
                await unrelated.send({"op": "items", "values": {"/Soc": 12.0}})
                await peer.send({"op": "items", "values": {"/Soc": 13.0}})
                await rec.wait_for(("value", VEBUS, "/Soc", 13.0))
                assert monitor.seen_services() == [VEBUS]
                assert not [e for e in rec.events if "com.victronenergy.battery.x" in e]
            finally:
                await peer.stop()
    finally:
        await unrelated.stop()


async def test_getvalue_on_root_is_used_when_getitems_is_unknown(private_bus):
    peer = await start_busitem_service(VEBUS, VEBUS_ITEMS, "--no-getitems")
    try:
        async with DbusMonitor(["com.victronenergy.vebus.*"]) as monitor:
            assert monitor.seen_services() == [VEBUS]
            assert monitor.get_value(VEBUS, "/Ac/Out/L1/P") == 350.5
            assert monitor.get_value(VEBUS, "/ProductName") == "MultiPlus-II"
    finally:
        await peer.stop()


async def test_a_change_sent_right_after_the_scan_reply_is_not_lost(private_bus):
    rec = Recorder()
    async with DbusMonitor(["com.victronenergy.vebus.*"], **rec.kwargs()) as monitor:
        for attempt in range(3):  # the change may land in the same read as the reply
            peer = await start_busitem_service(VEBUS, VEBUS_ITEMS,
                                               "--change-after-getitems", "/Mode")
            try:
                await rec.wait_for(("value", VEBUS, "/Mode", 4))
                assert monitor.get_value(VEBUS, "/Mode") == 4
            finally:
                await peer.stop()
            await rec.wait_for(("removed", VEBUS))
            rec.events.clear()


async def test_set_value_surfaces_return_codes_and_change_arrives(vebus):
    rec = Recorder()
    async with DbusMonitor(["com.victronenergy.vebus.*"], **rec.kwargs()) as monitor:
        assert await monitor.set_value(VEBUS, "/Mode", 2) == 0
        await rec.wait_for(("value", VEBUS, "/Mode", 2))
        assert monitor.get_value(VEBUS, "/Mode") == 2
        assert await monitor.set_value(VEBUS, "/Mode", 9) == 2        # refused by the owner
        assert await monitor.set_value(VEBUS, "/ProductName", "x") == 1  # not writeable
        assert await monitor.fetch_value(VEBUS, "/Mode") == 2
        assert monitor.get_value(VEBUS, "/Mode") == 2


async def test_set_value_errors_raise_clear_exceptions(vebus):
    async with DbusMonitor(["com.victronenergy.vebus.*"], call_timeout_s=0.3) as monitor:
        with pytest.raises(ServiceNotFound, match="com.victronenergy.vebus.gone"):
            await monitor.set_value("com.victronenergy.vebus.gone", "/Mode", 1)
        with pytest.raises(PathNotFound, match="/NoSuchPath"):
            await monitor.set_value(VEBUS, "/NoSuchPath", 1)
        with pytest.raises(CallTimeout, match="no reply"):
            await monitor.set_value(VEBUS, "/Hub4/L1/AcPowerSetpoint", 100)
        # the monitor still works afterwards
        assert await monitor.set_value(VEBUS, "/Mode", 1) == 0


async def test_several_services_behind_one_pattern(private_bus):
    second = "com.victronenergy.vebus.ttyS5"
    peers = [await start_busitem_service(VEBUS, VEBUS_ITEMS),
             await start_busitem_service(second, {"/DeviceInstance": {"value": 277},
                                                  "/Mode": {"value": 1}})]
    try:
        rec = Recorder()
        async with DbusMonitor(["com.victronenergy.vebus.*"], **rec.kwargs()) as monitor:
            assert monitor.seen_services() == [VEBUS, second]
            await peers[1].send({"op": "props", "values": {"/Mode": 4}})
            await rec.wait_for(("value", second, "/Mode", 4))
            assert monitor.get_value(VEBUS, "/Mode") == 3
            await peers[1].stop()
            await rec.wait_for(("removed", second))
            assert monitor.seen_services() == [VEBUS]
            assert monitor.get_value(VEBUS, "/Mode") == 3
    finally:
        for peer in peers:
            await peer.stop()


async def test_a_failing_callback_does_not_break_the_monitor(vebus):
    seen = []

    def bad_callback(service, path, value):
        seen.append((path, value))
        raise RuntimeError("consumer bug")

    async with DbusMonitor(["com.victronenergy.vebus.*"], on_value_changed=bad_callback) as monitor:
        await vebus.send({"op": "items", "values": {"/Soc": 20.0}})
        await vebus.send({"op": "items", "values": {"/Soc": 21.0}})
        for _ in range(200):
            if monitor.get_value(VEBUS, "/Soc") == 21.0:
                break
            await asyncio.sleep(0.01)
        assert monitor.get_value(VEBUS, "/Soc") == 21.0
        assert ("/Soc", 20.0) in seen


def test_monitor_needs_a_pattern():
    with pytest.raises(ValueError, match="at least one"):
        DbusMonitor([])
