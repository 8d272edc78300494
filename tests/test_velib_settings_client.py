"""SettingsClient against our settings service and against an independent python3-dbus
localsettings look-alike; other writers are busctl processes."""
from __future__ import annotations

import asyncio

import pytest

from peers import Peer
from velib.monitor import ServiceNotFound
from velib.settings import (SettingSpec, SettingsClient, SettingsError,
                            parse_class_and_instance)
from velib.settings_service import SettingsService

DEST = "com.victronenergy.settings"


async def busctl_set(path: str, sig: str, value) -> str:
    process = await asyncio.create_subprocess_exec(
        "busctl", "--system", "call", DEST, path, "com.victronenergy.BusItem", "SetValue",
        "v", sig, str(value), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, err
    return out.decode().strip()


class Changes:
    def __init__(self):
        self.items: list = []
        self._event = asyncio.Event()

    def __call__(self, *args):
        self.items.append(args if len(args) > 1 else args[0])
        self._event.set()

    async def wait_for(self, item) -> None:
        async def _wait():
            while item not in self.items:
                self._event.clear()
                await self._event.wait()
        await asyncio.wait_for(_wait(), 10)


@pytest.fixture
async def service(private_bus, tmp_path):
    svc = SettingsService(str(tmp_path / "data"))
    await svc.register()
    yield svc
    await svc.close()


@pytest.fixture
async def client(service):
    async with SettingsClient() as settings_client:
        yield settings_client


async def test_add_settings_returns_values_and_existing_ones_keep_theirs(client, service):
    values = await client.add_settings([
        SettingSpec("/Settings/Phaeton/MaxCurrent", 16, 6, 32),
        {"path": "/Settings/Phaeton/Name", "default": "garage"},
        SettingSpec("/Settings/Phaeton/Ratio", 0.5, silent=True)])
    assert values == {"/Settings/Phaeton/MaxCurrent": 16, "/Settings/Phaeton/Name": "garage",
                      "/Settings/Phaeton/Ratio": 0.5}
    assert service.settings["/Settings/Phaeton/Ratio"].silent
    assert await client.write("/Settings/Phaeton/MaxCurrent", 20) == 0
    again = await client.add_settings([SettingSpec("/Settings/Phaeton/MaxCurrent", 16, 6, 32)])
    assert again == {"/Settings/Phaeton/MaxCurrent": 20}
    assert client.get("/Settings/Phaeton/MaxCurrent") == 20
    assert await client.read("/Settings/Phaeton/Name") == "garage"


async def test_add_settings_on_a_group(client):
    values = await client.add_settings(
        [SettingSpec("/Settings/Devices/x_1/CustomName", "Carport")], group="/Settings/Devices")
    assert values == {"/Settings/Devices/x_1/CustomName": "Carport"}
    with pytest.raises(ValueError, match="not inside the group"):
        await client.add_settings([SettingSpec("/Settings/Other/X", 1)],
                                  group="/Settings/Devices")


async def test_refused_settings_raise_with_codes_and_the_rest_is_added(client):
    with pytest.raises(SettingsError) as caught:
        await client.add_settings([SettingSpec("/Settings/P/Flag", True),
                                   SettingSpec("/Other/P/X", 1),
                                   SettingSpec("/Settings/P/Amps", 40, 0, 32),
                                   SettingSpec("/Settings/P/Good", 3)])
    assert caught.value.failures == {"/Settings/P/Flag": -3, "/Other/P/X": -9,
                                     "/Settings/P/Amps": -7}
    assert caught.value.values == {"/Settings/P/Good": 3}
    assert "out of range" in str(caught.value)
    assert await client.read("/Settings/P/Good") == 3


async def test_writes_and_change_callbacks_from_other_writers(service):
    changes = Changes()
    async with SettingsClient(on_changed=changes) as client:
        await client.add_settings([SettingSpec("/Settings/P/Amps", 6, 0, 32)])
        amps = Changes()
        unsubscribe = client.subscribe("/Settings/P/Amps", amps)
        assert await client.write("/Settings/P/Amps", 99) == -1
        assert await client.write("/Settings/P/Amps", "abc") == -1
        assert client.get("/Settings/P/Amps") == 6
        assert await busctl_set("/Settings/P/Amps", "i", 12) == "i 0"
        await amps.wait_for(("/Settings/P/Amps", 12))
        await changes.wait_for(("/Settings/P/Amps", 12))
        assert client.get("/Settings/P/Amps") == 12
        unsubscribe()
        assert await client.write("/Settings/P/Amps", 13) == 0
        await changes.wait_for(("/Settings/P/Amps", 13))
        assert amps.items == [("/Settings/P/Amps", 12)]
        # only real changes are reported, refusals and the first sight are not
        assert changes.items == [("/Settings/P/Amps", 12), ("/Settings/P/Amps", 13)]


async def test_a_change_signalled_before_the_add_reply_is_not_undone_by_the_reply(service):
    """Someone changes a setting the moment AddSettings created it: the change signal leaves
    the service before the reply (which still holds the default). The client must end with
    the changed value, not the stale one the reply carries."""
    path = "/Settings/P/Strategy"
    add_many = service._add_many

    def add_then_someone_changes_it(group_path, entries):
        results = add_many(group_path, entries)     # the reply body: the default, 0
        service[path] = 1                           # the GX GUI writes 1; its signal goes first
        return results

    service._add_many = add_then_someone_changes_it
    changes = Changes()
    async with SettingsClient(on_changed=changes) as client:
        values = await client.add_settings([SettingSpec(path, 0, 0, 2)])
        assert values[path] == 1
        assert client.get(path) == 1
        assert await client.read(path) == 1
        assert (path, 0) not in changes.items       # no bogus change back to the default


async def test_device_instance_allocation_and_live_update(service):
    async with SettingsClient() as first, SettingsClient() as second:
        assert await first.allocate_device_instance("phaeton_a") == 40
        updates = Changes()
        assert await second.allocate_device_instance("phaeton_b", on_change=updates) == 41
        assert await first.allocate_device_instance("phaeton_a") == 40   # stable on re-ask
        assert await first.allocate_device_instance("bms_1", "battery", 512) == 512
        path = "/Settings/Devices/phaeton_b/ClassAndVrmInstance"
        assert await busctl_set(path, "s", "evcharger:45") == "i 0"      # e.g. from the GUI
        await updates.wait_for(45)
        assert await busctl_set(path, "s", "nonsense") == "i 0"
        assert await busctl_set(path, "s", "evcharger:46") == "i 0"
        await updates.wait_for(46)
        assert updates.items == [45, 46]


async def test_device_instance_arguments_are_checked(client):
    for bad in ("", "with space", "_hidden", "a/b"):
        with pytest.raises(ValueError, match="unique_id"):
            await client.allocate_device_instance(bad)
    with pytest.raises(ValueError, match="preferred"):
        await client.allocate_device_instance("ok", preferred=-1)
    assert parse_class_and_instance(" evcharger : 7 ") == ("evcharger", 7)
    with pytest.raises(ValueError, match="class:instance"):
        parse_class_and_instance("evcharger")


async def test_without_settings_service_calls_fail_clearly_until_it_appears(private_bus,
                                                                           tmp_path):
    async with SettingsClient() as client:
        assert not client.available
        with pytest.raises(ServiceNotFound, match=DEST):
            await client.add_settings([SettingSpec("/Settings/P/A", 1)])
        with pytest.raises(TimeoutError, match="did not appear"):
            await client.wait_until_available(0.05)
        svc = SettingsService(str(tmp_path))
        await svc.register()
        try:
            await client.wait_until_available(10)
            assert await client.allocate_device_instance("phaeton_0") == 40
        finally:
            await svc.close()


async def test_client_follows_a_restarted_settings_service(private_bus, tmp_path):
    svc = SettingsService(str(tmp_path))
    await svc.register()
    changes = Changes()
    async with SettingsClient() as client:
        instance = await client.allocate_device_instance("phaeton_0", on_change=changes)
        assert instance == 40
        await svc.close()
        for _ in range(500):
            if not client.available:
                break
            await asyncio.sleep(0.01)
        assert not client.available
        assert client.get("/Settings/Devices/phaeton_0/ClassAndVrmInstance") == "evcharger:40"
        svc = SettingsService(str(tmp_path))     # reloads the saved file
        await svc.register()
        try:
            await client.wait_until_available(10)
            assert changes.items == []           # coming back is not a change
            await busctl_set("/Settings/Devices/phaeton_0/ClassAndVrmInstance", "s",
                             "evcharger:43")
            await changes.wait_for(43)
        finally:
            await svc.close()


async def test_works_with_an_independent_localsettings_lookalike(private_bus):
    peer = await Peer.start("mini_localsettings.py")
    try:
        async with SettingsClient() as client:
            await client.wait_until_available(10)
            assert await client.allocate_device_instance("phaeton_a") == 40
            updates = Changes()
            assert await client.allocate_device_instance("phaeton_b", on_change=updates) == 41
            values = await client.add_settings([SettingSpec("/Settings/P/Amps", 6, 0, 32)])
            assert values == {"/Settings/P/Amps": 6}
            assert await client.write("/Settings/P/Amps", 40) == -1
            assert await client.write("/Settings/P/Amps", 10) == 0
            await busctl_set("/Settings/Devices/phaeton_b/ClassAndVrmInstance", "s",
                             "evcharger:44")
            await updates.wait_for(44)
            with pytest.raises(SettingsError) as caught:
                await client.add_settings([SettingSpec("/Settings/P/Flag", False)])
            assert caught.value.failures == {"/Settings/P/Flag": -3}
    finally:
        await peer.stop()
