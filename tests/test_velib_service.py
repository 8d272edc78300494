"""velib export, driven by independent clients (dbus-send, busctl, gdbus, python3-dbus) on a
private dbus-daemon. Covers every row of venus-dbus.md §2 and the acceptance of issue 2."""
from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest

from velib.service import ServiceError, VeDbusService

from dbus_clients import SignalRecorder, dbus_send, py3dbus, run, SYSTEM_PYTHON

NAME = "com.victronenergy.evcharger.velibtest"


def evcharger_paths(svc: VeDbusService) -> None:
    """The EV charger paths of the reference (§4, §5), as phaeton publishes them."""
    svc.add_path("/Mgmt/ProcessName", "phaeton")
    svc.add_path("/Mgmt/ProcessVersion", "0.1.0")
    svc.add_path("/Mgmt/Connection", "Modbus TCP 192.168.1.50")
    svc.add_path("/DeviceInstance", 40)
    svc.add_path("/ProductId", 0xFFFF)
    svc.add_path("/ProductName", "EV Charging Station")
    svc.add_path("/FirmwareVersion", "4.10.0-3250")
    svc.add_path("/HardwareVersion", "NG910")
    svc.add_path("/Connected", 1)
    svc.add_path("/Serial", "ACE0012345")
    svc.add_path("/CustomName", "Garage", writeable=True, kind=str)
    svc.add_path("/Mode", 0, writeable=True, kind=int, min=0, max=2,
                 text=lambda v: ["Manual", "Auto", "Scheduled"][v])
    svc.add_path("/StartStop", 0, writeable=True, kind=int, min=0, max=1)
    svc.add_path("/SetCurrent", 6.0, writeable=True, kind=float, min=0.0, max=32.0,
                 text=lambda v: f"{v:.0f} A")
    svc.add_path("/MaxCurrent", 16.0, writeable=True, kind=float, min=6.0, max=32.0)
    svc.add_path("/MinCurrent", 6.0)
    svc.add_path("/Current", 0.0, text=lambda v: f"{v:.1f} A")
    svc.add_path("/Ac/Power", 0.0, text=lambda v: f"{v:.0f} W")
    for phase in (1, 2, 3):
        svc.add_path(f"/Ac/L{phase}/Power", None, text=lambda v: f"{v:.0f} W")
    svc.add_path("/Ac/PhaseCount", 3, writeable=True, kind=int, min=1, max=3)
    svc.add_path("/Ac/Energy/Forward", 1234.5)
    svc.add_path("/Session/Energy", 0.0)
    svc.add_path("/Session/Time", 0)
    svc.add_path("/ChargingTime", 0)
    svc.add_path("/Session/Cost", None)
    svc.add_path("/Status", 0)
    svc.add_path("/Position", 1, writeable=True, kind=int, min=0, max=1)
    svc.add_path("/AutoStart", 1, writeable=True, kind=int, min=0, max=1)
    svc.add_path("/EnableDisplay", 1, writeable=True, kind=int, min=0, max=1)
    svc.add_path("/Model", "NG910")
    svc.add_path("/Role", "evcharger")
    svc.add_path("/GxAutoMode/Enabled", 0)
    svc.add_path("/GxAutoMode/Source", "")


@pytest.fixture
async def service(private_bus):
    svc = VeDbusService(NAME)
    evcharger_paths(svc)
    await svc.register()
    yield svc
    await svc.close()


async def signals_before_marker(recorder: SignalRecorder, svc: VeDbusService) -> list[dict]:
    """Every signal sent before a marker change (/Connected flipped outside a batch), marker
    excluded. Signals from one connection arrive in order, so once the marker is seen nothing
    sent before it can still be on its way: a test can assert that a signal did NOT come."""
    svc["/Connected"] = 1 - svc["/Connected"]
    return (await recorder.until("PropertiesChanged", "/Connected"))[:-1]


def values_signalled(signals: list[dict]) -> Counter:
    """How many times each path's value went out: a PropertiesChanged counts for its own path,
    an ItemsChanged for every path it carries."""
    counts: Counter = Counter()
    for s in signals:
        if s["member"] == "PropertiesChanged":
            counts[s["path"]] += 1
        elif s["member"] == "ItemsChanged" and s["path"] == "/":
            counts.update(s["body"].keys())
    return counts


# ---- discovery and GetItems ------------------------------------------------------------------

SCANNER = r"""
import sys, json, dbus
bus = dbus.SystemBus()
found = {}
for name in bus.list_names():
    if not str(name).startswith("com.victronenergy."):
        continue
    items = bus.get_object(name, "/", introspect=False).get_dbus_method(
        "GetItems", "com.victronenergy.BusItem")()
    if "/DeviceInstance" not in items:
        continue  # dbusmonitor ignores services without a device instance
    found[str(name)] = {str(p): [type(d["Value"]).__name__, d["Value"] if not isinstance(d["Value"], dbus.Array) else list(d["Value"]), str(d["Text"])] for p, d in items.items()}
print(json.dumps(found))
"""


async def test_python3_dbus_scanner_discovers_everything_with_one_getitems(service):
    code, out, err = await run(SYSTEM_PYTHON, "-c", SCANNER)
    assert code == 0, err
    found = json.loads(out)
    items = found[NAME]
    assert set(items) == set(service.paths)
    assert items["/DeviceInstance"][:2] == ["Int32", 40]
    assert items["/ProductName"][:2] == ["String", "EV Charging Station"]
    assert items["/Mode"] == ["Int32", 0, "Manual"]
    assert items["/SetCurrent"] == ["Double", 6.0, "6 A"]
    # invalid: an empty int32 array, shown as ---
    assert items["/Ac/L1/Power"] == ["Array", [], "---"]
    assert items["/ProductId"][:2] == ["Int32", 0xFFFF]


async def test_service_without_device_instance_is_skipped_by_the_scanner(private_bus):
    svc = VeDbusService("com.victronenergy.other.noinstance")
    svc.add_path("/ProductName", "x")
    await svc.register()
    try:
        code, out, err = await run(SYSTEM_PYTHON, "-c", SCANNER)
        assert code == 0, err
        assert "com.victronenergy.other.noinstance" not in json.loads(out)
    finally:
        await svc.close()


# ---- leaf members ------------------------------------------------------------------------------

async def test_leaf_getvalue_gettext_types(service):
    assert (await py3dbus(NAME, "/Mode", "GetValue"))["ok"] == {"t": "i", "v": 0}
    assert (await py3dbus(NAME, "/SetCurrent", "GetValue"))["ok"] == {"t": "d", "v": 6.0}
    assert (await py3dbus(NAME, "/Role", "GetValue"))["ok"] == {"t": "s", "v": "evcharger"}
    assert (await py3dbus(NAME, "/Ac/L2/Power", "GetValue"))["ok"] == {"t": "ai", "v": []}
    assert (await py3dbus(NAME, "/Mode", "GetText"))["ok"] == {"t": "s", "v": "Manual"}
    assert (await py3dbus(NAME, "/Ac/L2/Power", "GetText"))["ok"] == {"t": "s", "v": "---"}


async def test_min_max_default_and_description(private_bus):
    svc = VeDbusService(NAME)
    svc.add_path("/SetCurrent", 10.0, writeable=True, kind=float, min=6.0, max=32.0,
                 default=16.0, description="requested current")
    svc.add_path("/Status", 0)
    await svc.register()
    try:
        assert (await py3dbus(NAME, "/SetCurrent", "GetMin"))["ok"] == {"t": "d", "v": 6.0}
        assert (await py3dbus(NAME, "/SetCurrent", "GetMax"))["ok"] == {"t": "d", "v": 32.0}
        assert (await py3dbus(NAME, "/SetCurrent", "GetDefault"))["ok"] == {"t": "d", "v": 16.0}
        assert (await py3dbus(NAME, "/Status", "GetMin"))["ok"] == {"t": "ai", "v": []}
        out = await dbus_send(NAME, "/SetCurrent", "GetDescription", "string:en", "int32:0")
        assert 'string "requested current"' in out
    finally:
        await svc.close()


async def test_unknown_member_gets_a_dbus_error_not_a_crash(service):
    reply = await py3dbus(NAME, "/Mode", "NoSuchMethod")
    assert reply["error"] == "org.freedesktop.DBus.Error.UnknownMethod"
    assert (await py3dbus(NAME, "/Ac", "NoSuchMethod"))["error"] == \
        "org.freedesktop.DBus.Error.UnknownMethod"
    # still serving
    assert (await py3dbus(NAME, "/Mode", "GetValue"))["ok"]["v"] == 0


async def test_missing_path_answers_unknown_object(service):
    # What a velib_python service answers; gui-v2 stays quiet only for this error name.
    unknown_object = "org.freedesktop.DBus.Error.UnknownObject"
    for path in ("/NoSuchPath", "/Ac/L4/Power", "/Mode/Sub"):
        for member, args in (("GetValue", []), ("GetText", []), ("SetValue", [["i", 1]])):
            reply = await py3dbus(NAME, path, member, *args)
            assert reply.get("error") == unknown_object, (path, member, reply)
    code, _out, err = await run("dbus-send", "--system", "--print-reply", f"--dest={NAME}",
                                "/NoSuchPath", "com.victronenergy.BusItem.SetValue",
                                "variant:int32:1")
    assert code != 0 and f"Error {unknown_object}:" in err
    # the standard interfaces stay with dbus-next, on existing and missing paths
    for path in ("/Mode", "/NoSuchPath"):
        out = await dbus_send(NAME, path, "Ping", interface="org.freedesktop.DBus.Peer")
        assert "method return" in out
    code, out, err = await run("busctl", "--system", "introspect", NAME, "/Ac")
    assert code == 0 and "com.victronenergy.BusItem" in out, err
    # and the service still answers
    assert (await py3dbus(NAME, "/Mode", "GetValue"))["ok"]["v"] == 0


# ---- root and intermediate nodes ------------------------------------------------------------

async def test_root_getvalue_and_gettext_are_keyed_without_leading_slash(service):
    value = (await py3dbus(NAME, "/", "GetValue"))["ok"]
    assert value["t"] == "dict"
    assert value["v"]["Mode"] == {"t": "i", "v": 0}
    assert value["v"]["Ac/Energy/Forward"] == {"t": "d", "v": 1234.5}
    assert value["v"]["Ac/L1/Power"] == {"t": "ai", "v": []}
    assert all(not key.startswith("/") for key in value["v"])
    text = (await py3dbus(NAME, "/", "GetText"))["ok"]
    assert text["v"]["Mode"] == {"t": "s", "v": "Manual"}
    assert text["v"]["Ac/L1/Power"] == {"t": "s", "v": "---"}


async def test_intermediate_nodes_answer_relative_to_themselves(service):
    ac = (await py3dbus(NAME, "/Ac", "GetValue"))["ok"]["v"]
    assert set(ac) == {"Power", "L1/Power", "L2/Power", "L3/Power", "PhaseCount",
                       "Energy/Forward"}
    l1 = (await py3dbus(NAME, "/Ac/L1", "GetValue"))["ok"]["v"]
    assert l1 == {"Power": {"t": "ai", "v": []}}
    session_text = (await py3dbus(NAME, "/Session", "GetText"))["ok"]["v"]
    assert set(session_text) == {"Energy", "Time", "Cost"}


async def test_getitems_with_gdbus(service):
    code, out, err = await run("gdbus", "call", "--system", "--dest", NAME, "--object-path", "/",
                               "--method", "com.victronenergy.BusItem.GetItems")
    assert code == 0, err
    assert "'/Mode': {'Value': <0>, 'Text': <'Manual'>}" in out
    assert "'/Ac/L1/Power': {'Value': <@ai []>, 'Text': <'---'>}" in out


async def test_introspect_lists_children_on_every_node(service):
    code, out, err = await run("busctl", "--system", "tree", "--list", NAME)
    assert code == 0, err
    listed = {line.strip() for line in out.splitlines() if line.strip()}
    for path in service.paths:
        assert path in listed
    assert {"/", "/Ac", "/Ac/L1", "/Mgmt", "/Session", "/GxAutoMode"} <= listed
    code, out, err = await run("busctl", "--system", "introspect", NAME, "/Mode")
    assert code == 0, err
    assert ".SetValue" in out and "PropertiesChanged" in out
    code, out, err = await run("busctl", "--system", "introspect", NAME, "/")
    assert ".GetItems" in out and "ItemsChanged" in out


# ---- SetValue: the acceptance of issue 2 ---------------------------------------------------------

async def test_setvalue_int32_accepted_and_one_propertieschanged_sent(service):
    async with SignalRecorder(NAME) as recorder:
        out = await dbus_send(NAME, "/Mode", "SetValue", "variant:int32:1")
        assert "int32 0" in out
        signals = await signals_before_marker(recorder, service)
    assert service["/Mode"] == 1
    # velib_python: a SetValue from the bus sends the leaf's PropertiesChanged, no ItemsChanged
    assert signals == [{"member": "PropertiesChanged", "path": "/Mode",
                        "body": {"Value": 1, "Text": "Auto"}}]


async def test_setvalue_string_from_cli_is_coerced(service):
    out = await dbus_send(NAME, "/Mode", "SetValue", 'variant:string:1')
    assert "int32 0" in out
    assert service["/Mode"] == 1 and type(service["/Mode"]) is int
    assert (await py3dbus(NAME, "/Mode", "GetValue"))["ok"] == {"t": "i", "v": 1}
    # float path from a CLI string, and an MQTT JSON int to a float path
    assert "int32 0" in await dbus_send(NAME, "/SetCurrent", "SetValue", "variant:string:12.5")
    assert service["/SetCurrent"] == 12.5
    assert (await py3dbus(NAME, "/SetCurrent", "SetValue", ["i", 10]))["ok"]["v"] == 0
    assert (await py3dbus(NAME, "/SetCurrent", "GetValue"))["ok"] == {"t": "d", "v": 10.0}
    # MQTT bool and whole float to an int path
    assert (await py3dbus(NAME, "/StartStop", "SetValue", ["b", True]))["ok"]["v"] == 0
    assert service["/StartStop"] == 1
    assert (await py3dbus(NAME, "/Mode", "SetValue", ["d", 2.0]))["ok"]["v"] == 0
    assert service["/Mode"] == 2


async def test_bare_value_without_variant_is_accepted(service):
    # dbus-python without introspection sends SetValue(int32) instead of SetValue(variant)
    assert (await py3dbus(NAME, "/Mode", "SetValue", ["i", 2, "bare"]))["ok"]["v"] == 0
    assert service["/Mode"] == 2


async def test_read_only_path_returns_1_and_changes_nothing(service):
    out = await dbus_send(NAME, "/Ac/Power", "SetValue", "variant:double:5")
    assert "int32 1" in out
    assert service["/Ac/Power"] == 0.0


async def test_uncoercible_type_returns_1(service):
    assert "int32 1" in await dbus_send(NAME, "/Mode", "SetValue", "variant:string:auto")
    assert (await py3dbus(NAME, "/Mode", "SetValue", ["d", 1.5]))["ok"]["v"] == 1
    assert service["/Mode"] == 0


async def test_refused_value_returns_2_and_emits_nothing(service):
    async with SignalRecorder(NAME) as recorder:
        assert "int32 2" in await dbus_send(NAME, "/Mode", "SetValue", "variant:int32:5")
        assert "int32 2" in await dbus_send(NAME, "/SetCurrent", "SetValue",
                                            "variant:double:40")
        assert "int32 1" in await dbus_send(NAME, "/Mode", "SetValue", "variant:string:x")
        # A marker change: the first signal the recorder sees must be this one.
        service["/Status"] = 2
        first = await recorder.next()
    assert first["path"] == "/Status"
    assert service["/Mode"] == 0 and service["/SetCurrent"] == 6.0


async def test_owner_hook_can_refuse(private_bus):
    calls = []

    def only_when_allowed(path, value):
        calls.append((path, value))
        return value != 2

    svc = VeDbusService(NAME)
    svc.add_path("/Mode", 0, writeable=True, kind=int, min=0, max=2, on_change=only_when_allowed)
    await svc.register()
    try:
        assert "int32 2" in await dbus_send(NAME, "/Mode", "SetValue", "variant:int32:2")
        assert svc["/Mode"] == 0
        assert "int32 0" in await dbus_send(NAME, "/Mode", "SetValue", "variant:int32:1")
        assert svc["/Mode"] == 1
        assert calls == [("/Mode", 2), ("/Mode", 1)]
    finally:
        await svc.close()


async def test_hook_that_raises_refuses_instead_of_crashing(private_bus):
    def broken(path, value):
        raise RuntimeError("bug")

    svc = VeDbusService(NAME)
    svc.add_path("/Mode", 0, writeable=True, kind=int, on_change=broken)
    await svc.register()
    try:
        assert "int32 2" in await dbus_send(NAME, "/Mode", "SetValue", "variant:int32:1")
        assert svc["/Mode"] == 0
        # the service is still answering
        assert (await py3dbus(NAME, "/Mode", "GetValue"))["ok"] == {"t": "i", "v": 0}
    finally:
        await svc.close()


async def test_equal_value_returns_0_without_signal(service):
    async with SignalRecorder(NAME) as recorder:
        assert "int32 0" in await dbus_send(NAME, "/Mode", "SetValue", "variant:int32:0")
        service["/Status"] = 1
        first = await recorder.next()
    assert first["path"] == "/Status"


async def test_invalid_both_ways(private_bus):
    svc = VeDbusService(NAME)
    svc.add_path("/Session/Cost", None, writeable=True, kind=float)   # nullable: starts None
    svc.add_path("/Mode", 0, writeable=True, kind=int)                 # not nullable
    await svc.register()
    try:
        # invalid in: MQTT null arrives as ai []
        assert (await py3dbus(NAME, "/Session/Cost", "SetValue", ["d", 1.25]))["ok"]["v"] == 0
        assert svc["/Session/Cost"] == 1.25
        assert (await py3dbus(NAME, "/Session/Cost", "SetValue", ["ai", []]))["ok"]["v"] == 0
        assert svc["/Session/Cost"] is None
        # invalid out
        assert (await py3dbus(NAME, "/Session/Cost", "GetValue"))["ok"] == {"t": "ai", "v": []}
        # a path that must hold a value refuses invalid
        assert (await py3dbus(NAME, "/Mode", "SetValue", ["ai", []]))["ok"]["v"] == 1
        assert svc["/Mode"] == 0
    finally:
        await svc.close()


# ---- batching ------------------------------------------------------------------------------------

async def test_one_itemschanged_per_batch_and_nothing_else(service):
    async with SignalRecorder(NAME) as recorder:
        with service.batch():
            service["/Ac/Power"] = 7360.0
            service["/Current"] = 10.7
            for phase in (1, 2, 3):
                service[f"/Ac/L{phase}/Power"] = 2453.3
            service["/Status"] = 2
            service["/Status"] = 2          # unchanged: no second signal
            service["/Role"] = "evcharger"  # unchanged
        signals = await signals_before_marker(recorder, service)
    # velib_python's ServiceContext.flush: only the root's ItemsChanged, no PropertiesChanged
    assert [(s["member"], s["path"]) for s in signals] == [("ItemsChanged", "/")]
    items = signals[0]["body"]
    assert set(items) == {"/Ac/Power", "/Current", "/Ac/L1/Power", "/Ac/L2/Power",
                          "/Ac/L3/Power", "/Status"}
    assert items["/Ac/Power"] == {"Value": 7360.0, "Text": "7360 W"}


async def test_signal_counter_sees_each_changed_value_exactly_once(service):
    """The acceptance of "one signal per change, never both": an independent python3-dbus
    client counts every value that goes out (dbus-flashmq republishes each one to MQTT)."""
    batch = {"/Ac/Power": 4140.0, "/Current": 6.0, "/Status": 2, "/Session/Energy": 0.5,
             "/Ac/L1/Power": 1380.0, "/Ac/L2/Power": 1380.0, "/Ac/L3/Power": 1380.0}
    async with SignalRecorder(NAME) as recorder:
        with service.batch():
            for path, value in batch.items():
                service[path] = value
        batch_signals = await signals_before_marker(recorder, service)

        service["/Session/Time"] = 60                     # owner, outside a batch
        assert "int32 0" in await dbus_send(NAME, "/SetCurrent", "SetValue",
                                            "variant:double:10")   # another process
        assert service.write("/AutoStart", 0) == 0        # in-process writer (web UI)
        service.add_path("/Session/Soc", 55.0)            # a path added while on the bus
        single_signals = await signals_before_marker(recorder, service)
    assert len(batch_signals) == 1
    assert values_signalled(batch_signals) == Counter(batch.keys())
    assert {s["member"] for s in single_signals} == {"PropertiesChanged"}
    assert values_signalled(single_signals) == Counter(
        ["/Session/Time", "/SetCurrent", "/AutoStart", "/Session/Soc"])


async def test_setvalue_during_an_open_batch_is_signalled_at_once_and_once(service):
    async with SignalRecorder(NAME) as recorder:
        with service.batch():
            service["/Mode"] = 1                          # the owner, in its batch
            service["/Current"] = 3.0
            assert service.write("/Mode", 2) == 0         # a writer while the batch is open
        signals = await signals_before_marker(recorder, service)
    assert [(s["member"], s["path"]) for s in signals] == [("PropertiesChanged", "/Mode"),
                                                          ("ItemsChanged", "/")]
    assert signals[0]["body"] == {"Value": 2, "Text": "Scheduled"}
    assert signals[1]["body"] == {"/Current": {"Value": 3.0, "Text": "3.0 A"}}


async def test_explicit_flush_and_nested_batches(service):
    async with SignalRecorder(NAME) as recorder:
        with service.batch():
            with service.batch():
                service["/Current"] = 1.0
            service["/Ac/Power"] = 230.0
        signals = await recorder.until("ItemsChanged", "/")
        assert len(signals) == 1 and set(signals[0]["body"]) == {"/Current", "/Ac/Power"}
        service._batch_depth += 1       # as an owner managing its own cycle would
        service["/Current"] = 2.0
        service._batch_depth -= 1
        service.flush()
        signals = await recorder.until("ItemsChanged", "/")
        assert len(signals) == 1 and set(signals[0]["body"]) == {"/Current"}


async def test_unbatched_owner_set_emits_only_propertieschanged(service):
    async with SignalRecorder(NAME) as recorder:
        service["/Status"] = 2
        signals = await signals_before_marker(recorder, service)
    assert signals == [{"member": "PropertiesChanged", "path": "/Status",
                        "body": {"Value": 2, "Text": "2"}}]


# ---- types ------------------------------------------------------------------------------------------

async def test_victron_type_mapping(private_bus):
    svc = VeDbusService(NAME)
    svc.add_path("/Float", 1.5)
    svc.add_path("/Bool", True)
    svc.add_path("/Int", 7)
    svc.add_path("/Big", 2 ** 40)
    svc.add_path("/Text", "é ok")
    svc.add_path("/List", [1, 2, 3])
    svc.add_path("/Dict", {"a": 1, "b": "x"})
    await svc.register()
    try:
        value = (await py3dbus(NAME, "/", "GetValue"))["ok"]["v"]
        assert value["Float"] == {"t": "d", "v": 1.5}
        assert value["Bool"] == {"t": "b", "v": True}
        assert value["Int"] == {"t": "i", "v": 7}
        assert value["Big"] == {"t": "x", "v": 2 ** 40}
        assert value["Text"] == {"t": "s", "v": "é ok"}
        assert value["List"] == {"t": "ai", "v": [{"t": "i", "v": 1}, {"t": "i", "v": 2},
                                                   {"t": "i", "v": 3}]}
        assert value["Dict"]["v"] == {"a": {"t": "i", "v": 1}, "b": {"t": "s", "v": "x"}}
    finally:
        await svc.close()


# ---- concurrency --------------------------------------------------------------------------------

WRITER = r"""
import sys, dbus
bus = dbus.SystemBus()
obj = bus.get_object(sys.argv[1], "/SetCurrent", introspect=False)
set_value = obj.get_dbus_method("SetValue", "com.victronenergy.BusItem")
codes = [int(set_value(dbus.Double(float(v)))) for v in sys.argv[2].split(",")]
print(",".join(map(str, codes)))
"""


async def test_concurrent_writes_from_two_clients(service):
    values_a = ",".join(str(6 + i % 10) for i in range(200))
    values_b = ",".join(str(16 + i % 10) for i in range(200))
    async with SignalRecorder(NAME) as recorder:
        results = await asyncio.gather(
            run(SYSTEM_PYTHON, "-c", WRITER, NAME, values_a),
            run(SYSTEM_PYTHON, "-c", WRITER, NAME, values_b))
        for code, out, err in results:
            assert code == 0, err
            assert set(out.strip().split(",")) == {"0"}
        service["/Status"] = 9   # marker: all earlier signals are before it
        signals = await recorder.until("PropertiesChanged", "/Status", timeout=10)
    changes = [s["body"]["Value"] for s in signals
               if s["member"] == "PropertiesChanged" and s["path"] == "/SetCurrent"]
    assert changes, "writes must produce signals"
    # The last signal and the value agree, and every signalled value was a written one.
    assert service["/SetCurrent"] == changes[-1]
    assert set(changes) <= {float(v) for v in (values_a + "," + values_b).split(",")}
    # no two consecutive signals carry the same value (no signal for an unchanged write)
    assert all(a != b for a, b in zip(changes, changes[1:]))


# ---- life cycle ---------------------------------------------------------------------------------

NAME_WATCHER = r"""
import sys, json, dbus
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib
DBusGMainLoop(set_as_default=True)
bus = dbus.SystemBus()
loop = GLib.MainLoop()
result = {}
def changed(name, old, new):
    if name == sys.argv[1] and new:
        items = bus.get_object(name, "/", introspect=False).get_dbus_method(
            "GetItems", "com.victronenergy.BusItem")()
        result["paths"] = sorted(str(p) for p in items)
        loop.quit()
bus.add_signal_receiver(changed, signal_name="NameOwnerChanged",
                        dbus_interface="org.freedesktop.DBus")
GLib.idle_add(lambda: print("ready", flush=True) and False)
GLib.timeout_add(8000, loop.quit)
loop.run()
print(json.dumps(result), flush=True)
"""


async def test_name_is_claimed_only_when_every_path_exists(private_bus):
    watcher = await asyncio.create_subprocess_exec(
        SYSTEM_PYTHON, "-c", NAME_WATCHER, NAME, stdout=asyncio.subprocess.PIPE)
    assert (await watcher.stdout.readline()).strip() == b"ready"
    svc = VeDbusService(NAME)
    evcharger_paths(svc)
    await svc.register()
    try:
        result = json.loads(await asyncio.wait_for(watcher.stdout.readline(), 10))
        assert result["paths"] == sorted(svc.paths)
    finally:
        await watcher.wait()
        await svc.close()


async def test_one_connection_per_service_and_clean_shutdown(private_bus):
    first = VeDbusService("com.victronenergy.evcharger.one")
    first.add_path("/DeviceInstance", 1)
    second = VeDbusService("com.victronenergy.evcharger.two")
    second.add_path("/DeviceInstance", 2)
    await first.register()
    await second.register()
    owners = []
    for name in ("com.victronenergy.evcharger.one", "com.victronenergy.evcharger.two"):
        out = await dbus_send("org.freedesktop.DBus", "/org/freedesktop/DBus", "GetNameOwner",
                              f"string:{name}", interface="org.freedesktop.DBus")
        owners.append(out.split('"')[1])
    assert owners[0] != owners[1]
    await first.close()
    out = await dbus_send("org.freedesktop.DBus", "/org/freedesktop/DBus", "NameHasOwner",
                          "string:com.victronenergy.evcharger.one",
                          interface="org.freedesktop.DBus")
    assert "boolean false" in out
    await second.close()


async def test_a_taken_name_is_a_clear_error(private_bus):
    first = VeDbusService(NAME)
    await first.register()
    second = VeDbusService(NAME)
    try:
        with pytest.raises(ServiceError, match="already owned"):
            await second.register()
    finally:
        await first.close()


async def test_remove_path(service):
    service.remove_path("/GxAutoMode/Source")
    items = await dbus_send(NAME, "/", "GetItems")
    assert "/GxAutoMode/Source" not in items and "/GxAutoMode/Enabled" in items
    reply = await py3dbus(NAME, "/GxAutoMode/Source", "GetValue")
    assert "error" in reply
    code, out, err = await run("busctl", "--system", "tree", "--list", NAME)
    assert "/GxAutoMode/Source" not in out


async def test_add_path_after_register_is_announced(service):
    async with SignalRecorder(NAME) as recorder:
        service.add_path("/Session/Soc", 55.0)
        signals = await signals_before_marker(recorder, service)
        assert signals == [{"member": "PropertiesChanged", "path": "/Session/Soc",
                            "body": {"Value": 55.0, "Text": "55.0"}}]
        with service.batch():           # inside a batch: part of its one ItemsChanged
            service.add_path("/Session/Cost2", 1.5)
            service["/Status"] = 1
        signals = await signals_before_marker(recorder, service)
        assert [(s["member"], s["path"]) for s in signals] == [("ItemsChanged", "/")]
        assert signals[0]["body"] == {"/Session/Cost2": {"Value": 1.5, "Text": "1.5"},
                                      "/Status": {"Value": 1, "Text": "1"}}


async def test_product_id_text_is_hexadecimal(private_bus):
    svc = VeDbusService(NAME)
    svc.add_path("/ProductId", 0xFFFF)
    svc.add_path("/DeviceInstance", 40)
    svc.add_path("/Sub/ProductId", 0xC024)                  # only the path /ProductId itself
    await svc.register()
    try:
        # velib_python's GetText: "0x%X" for /ProductId when no text callback is given
        assert (await py3dbus(NAME, "/ProductId", "GetText"))["ok"] == {"t": "s", "v": "0xFFFF"}
        assert (await py3dbus(NAME, "/ProductId", "GetValue"))["ok"] == {"t": "i", "v": 0xFFFF}
        assert (await py3dbus(NAME, "/DeviceInstance", "GetText"))["ok"]["v"] == "40"
        assert (await py3dbus(NAME, "/Sub/ProductId", "GetText"))["ok"]["v"] == "49188"
        text = (await py3dbus(NAME, "/", "GetText"))["ok"]["v"]
        assert text["ProductId"] == {"t": "s", "v": "0xFFFF"}
        code, out, err = await run("gdbus", "call", "--system", "--dest", NAME,
                                   "--object-path", "/",
                                   "--method", "com.victronenergy.BusItem.GetItems")
        assert code == 0, err
        assert "'/ProductId': {'Value': <65535>, 'Text': <'0xFFFF'>}" in out
        async with SignalRecorder(NAME) as recorder:
            svc["/ProductId"] = 0xC024
            signal = await recorder.next()
        assert signal["body"] == {"Value": 0xC024, "Text": "0xC024"}
        svc["/ProductId"] = None
        assert svc.get_text("/ProductId") == "---"
    finally:
        await svc.close()
    # an explicit text formatter wins
    other = VeDbusService(NAME)
    other.add_path("/ProductId", 0xFFFF, text=lambda v: f"product {v}")
    assert other.get_text("/ProductId") == "product 65535"


def test_bad_paths_are_refused_when_building():
    svc = VeDbusService(NAME)
    svc.add_path("/Ac/Power", 0.0)
    for bad in ("Ac", "/Ac/", "/A c", "//x", "/Ac/Power/Sub", "/"):
        with pytest.raises(ValueError):
            svc.add_path(bad, 1)
    with pytest.raises(ValueError):
        svc.add_path("/Ac", 1)   # already a node with children
    with pytest.raises(ValueError):
        svc.add_path("/Ac/Power", 1)  # duplicate
