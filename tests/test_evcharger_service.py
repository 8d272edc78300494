"""phaeton's evcharger D-Bus service: the user's writes from every kind of client, and refusals."""
from __future__ import annotations

import pytest

from phaeton.venus.evcharger_service import ChargerLimits, EvChargerService, UserChoices

from dbus_clients import dbus_send, py3dbus

NAME = "com.victronenergy.evcharger.phaeton_7"


@pytest.fixture
async def service(private_bus):
    changes = []
    svc = EvChargerService("7", UserChoices(), ChargerLimits(min_current_a=6, max_current_a=16,
                                                             wired_phases=3,
                                                             can_switch_phases=True),
                           lambda path, value: changes.append((path, value)), device_instance=41,
                           connection="Modbus TCP 192.168.1.50")
    await svc.register()
    svc.changes = changes
    yield svc
    await svc.close()


async def test_every_reference_path_is_published(service):
    items = (await py3dbus(NAME, "/", "GetItems"))["ok"]["v"]
    required = ["/Mgmt/ProcessName", "/Mgmt/ProcessVersion", "/Mgmt/Connection", "/DeviceInstance",
                "/ProductId", "/ProductName", "/FirmwareVersion", "/HardwareVersion", "/Connected",
                "/Serial", "/CustomName", "/Mode", "/StartStop", "/SetCurrent", "/MaxCurrent",
                "/MinCurrent", "/Current", "/Ac/Power", "/Ac/L1/Power", "/Ac/L2/Power",
                "/Ac/L3/Power", "/Ac/PhaseCount", "/Ac/Energy/Forward", "/Session/Energy",
                "/Session/Time", "/ChargingTime", "/Session/Cost", "/Status", "/Position",
                "/AutoStart", "/SetPhases", "/Model", "/Role", "/GxAutoMode/Enabled",
                "/GxAutoMode/Source"]
    assert set(required) <= set(items)
    # gui-v2 shows a "Lock charger display" switch whenever /EnableDisplay is valid; neither
    # Alfen's register map nor OCPP can lock a display, so the path must not exist.
    assert "/EnableDisplay" not in items
    assert items["/DeviceInstance"]["v"]["Value"] == {"t": "i", "v": 41}
    assert items["/ProductName"]["v"]["Value"]["v"] == "EV Charging Station"
    assert items["/ProductId"]["v"]["Value"]["v"] == 0xFFFF
    assert items["/Mgmt/Connection"]["v"]["Value"]["v"] == "Modbus TCP 192.168.1.50"


async def test_writes_from_gui_mqtt_and_cli_reach_the_owner(service):
    assert "int32 0" in await dbus_send(NAME, "/Mode", "SetValue", "variant:int32:1")      # GUI
    assert (await py3dbus(NAME, "/SetCurrent", "SetValue", ["i", 10]))["ok"]["v"] == 0    # MQTT int
    assert (await py3dbus(NAME, "/AutoStart", "SetValue", ["b", False]))["ok"]["v"] == 0  # MQTT bool
    assert "int32 0" in await dbus_send(NAME, "/StartStop", "SetValue", "variant:string:1")  # CLI
    assert "int32 0" in await dbus_send(NAME, "/CustomName", "SetValue", "variant:string:Garage")
    c = service.choices
    assert (c.mode, c.set_current_a, c.auto_start, c.start_stop, c.custom_name) == \
        (1, 10.0, 0, 1, "Garage")
    assert service.changes == [("/Mode", 1), ("/SetCurrent", 10.0), ("/AutoStart", 0),
                               ("/StartStop", 1), ("/CustomName", "Garage")]


@pytest.mark.parametrize("path,value,code", [
    ("/Mode", "variant:int32:3", 2),                 # not a mode
    ("/StartStop", "variant:int32:2", 2),
    ("/SetCurrent", "variant:double:3", 2),          # between 0 and the 6 A minimum
    ("/SetCurrent", "variant:double:20", 2),         # above the charger's maximum
    ("/MaxCurrent", "variant:double:5", 2),          # below the minimum current
    ("/SetPhases", "variant:int32:2", 2),            # only 1 or 3
    ("/Ac/PhaseCount", "variant:int32:1", 1),        # the phases in use: measured, read-only
    ("/Mode", "variant:string:fast", 1),             # not a number at all
    ("/Mode", "variant:string:\uff11", 1),           # a full-width digit is not a number
    ("/AutoStart", "variant:string:\uff10", 1),
    ("/SetPhases", "variant:string:\uff13", 1),
    ("/SetCurrent", "variant:string:1_0", 1),         # Python reads 10; nobody else would
    ("/SetCurrent", "variant:string:nan", 1),
    ("/CustomName", "variant:string:" + "x" * 65, 2),  # the config's 64-character limit
    ("/CustomName", "variant:string:two\nlines", 1),  # control characters are not a name
    ("/Status", "variant:int32:2", 1),               # read-only
    ("/Ac/Power", "variant:double:100", 1),
])
async def test_invalid_writes_are_refused_and_change_nothing(service, path, value, code):
    before = dict(service.choices.as_dict())
    out = await dbus_send(NAME, path, "SetValue", value)
    assert f"int32 {code}" in out
    assert service.choices.as_dict() == before
    assert service.changes == []


async def test_a_huge_name_is_refused_and_changes_nothing(service):
    reply = await py3dbus(NAME, "/CustomName", "SetValue", ["s", "x" * 100_000])
    assert reply["ok"]["v"] == 2
    assert service.choices.custom_name == ""
    assert service.changes == []
    assert "int32 0" in await dbus_send(NAME, "/CustomName", "SetValue",
                                        "variant:string:" + "\u00e9" * 64)   # 64 is fine


async def test_zero_current_is_a_pause_not_a_refusal(service):
    assert "int32 0" in await dbus_send(NAME, "/SetCurrent", "SetValue", "variant:double:0")
    assert service.choices.set_current_a == 0.0


async def test_phase_count_refused_when_the_charger_cannot_switch(private_bus):
    svc = EvChargerService("8", UserChoices(phases=3), ChargerLimits(can_switch_phases=False),
                           lambda *a: None)
    await svc.register()
    try:
        out = await dbus_send("com.victronenergy.evcharger.phaeton_8", "/SetPhases",
                              "SetValue", "variant:int32:1")
        assert "int32 2" in out
        assert svc.choices.phases == 3
    finally:
        await svc.close()


async def test_web_write_takes_the_dbus_path(service):
    assert service.write("/Mode", "2") == 0            # the same coercion as a CLI string
    assert service.choices.mode == 2
    assert service.write("/Mode", 9) == 2
    assert service.write("/Status", 1) == 1            # not a user path
    assert (await py3dbus(NAME, "/Mode", "GetValue"))["ok"] == {"t": "i", "v": 2}


async def test_publish_is_one_batch(service):
    from dbus_clients import SignalRecorder

    async with SignalRecorder(NAME) as recorder:
        service.publish({"/Ac/Power": 4140.0, "/Current": 6.0, "/Status": 2})
        signals = await recorder.until("ItemsChanged", "/")
    assert set(signals[-1]["body"]) == {"/Ac/Power", "/Current", "/Status"}
    assert signals[-1]["body"]["/Status"]["Text"] == "Charging"


def test_restored_choices_keep_defaults_for_bad_entries():
    defaults = UserChoices(mode=0, set_current_a=16.0)
    restored = UserChoices.from_dict({"mode": 1, "set_current_a": 10, "phases": "three",
                                      "unknown": 5}, defaults)
    assert restored.mode == 1
    assert restored.set_current_a == 10.0
    assert restored.phases == defaults.phases
