"""SettingsService (localsettings API, reference venus-dbus.md §6) driven by independent tools:
busctl, dbus-send and python3-dbus peers, on a private dbus-daemon."""
from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest

from peers import Peer
from velib.settings_service import AddError, SettingsService

DEST = "com.victronenergy.settings"
SETTINGS = "com.victronenergy.Settings"
BUSITEM = "com.victronenergy.BusItem"


class ToolError(Exception):
    pass


async def run_tool(*argv: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 20)
    if process.returncode != 0:
        raise ToolError(err.decode().strip())
    return out.decode()


async def busctl(path: str, interface: str, member: str, signature: str = "", *args) -> list:
    """`busctl call` with JSON output; returns the reply's values (variants as their data)."""
    argv = ["busctl", "--system", "--json=short", "call", DEST, path, interface, member]
    if signature:
        argv += [signature, *[str(a) for a in args]]
    out = await run_tool(*argv)
    return json.loads(out)["data"] if out.strip() else []


def entries(*items: dict) -> list[str]:
    """busctl arguments for an aa{sv} of simple {key: (sig, value)} dicts."""
    argv = [str(len(items))]
    for item in items:
        argv.append(str(len(item)))
        for key, (sig, value) in item.items():
            argv += [key, sig, str(value)]
    return argv


def results(reply: list) -> list[dict]:
    return [{k: v["data"] for k, v in entry.items()} for entry in reply[0]]


@pytest.fixture
async def service(private_bus, tmp_path):
    svc = SettingsService(str(tmp_path / "data"))
    await svc.register()
    yield svc
    await svc.close()


async def get_value(path: str):
    return (await busctl(path, BUSITEM, "GetValue"))[0]


# ---------------------------------------------------------------- AddSetting / AddSettings
async def test_add_setting_with_dbus_send_then_busitem_methods(service):
    out = await run_tool("dbus-send", "--system", "--print-reply", f"--dest={DEST}", "/Settings",
                         f"{SETTINGS}.AddSetting", "string:Phaeton", "string:MaxCurrent",
                         "variant:int32:16", "string:i", "variant:int32:6",
                         "variant:int32:32")
    assert out.strip().endswith("int32 0")
    assert await get_value("/Settings/Phaeton/MaxCurrent") == {"type": "i", "data": 16}
    assert await busctl("/Settings/Phaeton/MaxCurrent", BUSITEM, "GetText") == ["16"]
    assert (await busctl("/Settings/Phaeton/MaxCurrent", BUSITEM, "GetMin"))[0]["data"] == 6
    assert (await busctl("/Settings/Phaeton/MaxCurrent", BUSITEM, "GetMax"))[0]["data"] == 32
    assert (await busctl("/Settings/Phaeton/MaxCurrent", BUSITEM, "GetDefault"))[0]["data"] == 16
    attrs = await busctl("/Settings/Phaeton/MaxCurrent", SETTINGS, "GetAttributes")
    assert [a["data"] if isinstance(a, dict) else a for a in attrs] == [16, 6, 32, 0]


async def test_add_settings_infers_types_and_returns_values(service):
    reply = await busctl("/", SETTINGS, "AddSettings", "aa{sv}", *entries(
        {"path": ("s", "/Settings/Phaeton/Current"), "default": ("i", 6),
         "min": ("i", 0), "max": ("i", 32)},
        {"path": ("s", "/Settings/Phaeton/Efficiency"), "default": ("d", 0.92)},
        {"path": ("s", "/Settings/Phaeton/Name"), "default": ("s", "garage"),
         "silent": ("i", 1)}))
    assert results(reply) == [
        {"path": "/Settings/Phaeton/Current", "error": 0, "value": 6},
        {"path": "/Settings/Phaeton/Efficiency", "error": 0, "value": 0.92},
        {"path": "/Settings/Phaeton/Name", "error": 0, "value": "garage"},
    ]
    assert await get_value("/Settings/Phaeton/Current") == {"type": "i", "data": 6}
    assert await get_value("/Settings/Phaeton/Efficiency") == {"type": "d", "data": 0.92}
    assert await get_value("/Settings/Phaeton/Name") == {"type": "s", "data": "garage"}
    assert (await busctl("/Settings/Phaeton/Name", SETTINGS, "GetAttributes"))[3] == 1


async def test_add_settings_on_a_group_takes_relative_paths(service):
    await busctl("/", SETTINGS, "AddSettings", "aa{sv}", *entries(
        {"path": ("s", "/Settings/Devices/x/CustomName"), "default": ("s", "")}))
    reply = await busctl("/Settings/Devices", SETTINGS, "AddSettings", "aa{sv}", *entries(
        {"path": ("s", "phaeton_1/CustomName"), "default": ("s", "Carport")}))
    assert results(reply) == [{"path": "phaeton_1/CustomName", "error": 0, "value": "Carport"}]
    assert (await get_value("/Settings/Devices/phaeton_1/CustomName"))["data"] == "Carport"


async def test_existing_setting_keeps_its_value_when_added_again(service):
    spec = entries({"path": ("s", "/Settings/P/Limit"), "default": ("i", 10),
                    "min": ("i", 0), "max": ("i", 50)})
    await busctl("/", SETTINGS, "AddSettings", "aa{sv}", *spec)
    assert await busctl("/Settings/P/Limit", BUSITEM, "SetValue", "v", "i", 25) == [0]
    reply = await busctl("/", SETTINGS, "AddSettings", "aa{sv}", *spec)
    assert results(reply)[0]["value"] == 25
    # re-adding with a new range keeps the value too, and the new range applies
    reply = await busctl("/", SETTINGS, "AddSettings", "aa{sv}", *entries(
        {"path": ("s", "/Settings/P/Limit"), "default": ("i", 10), "min": ("i", 0),
         "max": ("i", 100)}))
    assert results(reply)[0] == {"path": "/Settings/P/Limit", "error": 0, "value": 25}
    assert await busctl("/Settings/P/Limit", BUSITEM, "SetValue", "v", "i", 80) == [0]
    out = await run_tool("dbus-send", "--system", "--print-reply", f"--dest={DEST}", "/Settings",
                         f"{SETTINGS}.AddSetting", "string:P", "string:Limit",
                         "variant:int32:10", "string:i", "variant:int32:0",
                         "variant:int32:100")
    assert out.strip().endswith("int32 0")
    assert (await get_value("/Settings/P/Limit"))["data"] == 80


@pytest.mark.parametrize("item, code", [
    ({"path": ("s", "/Settings/P/_Hidden"), "default": ("i", 1)}, -2),
    ({"path": ("s", "/Settings/P/Flag"), "default": ("b", "true")}, -3),
    ({"path": ("s", "/Settings/P/Bad-Name"), "default": ("i", 1)}, -4),
    ({"path": ("s", "/Settings/P//Empty"), "default": ("i", 1)}, -4),
    ({"path": ("s", "/Settings/P/Amps"), "default": ("i", 40), "min": ("i", 0),
      "max": ("i", 32)}, -7),
    ({"path": ("s", "/Other/P/Amps"), "default": ("i", 1)}, -9),
    ({"path": ("s", "/Settings/P/NoDefault")}, -6),
])
async def test_add_settings_error_codes(service, item, code):
    reply = await busctl("/", SETTINGS, "AddSettings", "aa{sv}", *entries(item))
    result = results(reply)[0]
    assert result["error"] == code
    assert "value" not in result
    with pytest.raises(ToolError):
        await get_value(item["path"][1])


async def test_type_differs_and_group_errors(service):
    await busctl("/", SETTINGS, "AddSettings", "aa{sv}", *entries(
        {"path": ("s", "/Settings/P/Amps"), "default": ("i", 6)}))
    reply = await busctl("/", SETTINGS, "AddSettings", "aa{sv}", *entries(
        {"path": ("s", "/Settings/P/Amps"), "default": ("s", "six")},
        {"path": ("s", "/Settings/P"), "default": ("i", 1)},
        {"path": ("s", "/Settings/P/Amps/Sub"), "default": ("i", 1)}))
    assert [r["error"] for r in results(reply)] == [-5, -8, -4]
    assert (await get_value("/Settings/P/Amps"))["data"] == 6
    # AddSettings on a setting instead of a group
    reply = await busctl("/Settings/P/Amps", SETTINGS, "AddSettings", "aa{sv}", *entries(
        {"path": ("s", "X"), "default": ("i", 1)}))
    assert results(reply)[0]["error"] == -1


@pytest.mark.parametrize("default, kind, minimum, maximum, code", [
    ("variant:int32:1", "b", "variant:int32:0", "variant:int32:0", -3),
    ("variant:string:abc", "i", "variant:int32:0", "variant:int32:0", -6),
    ("variant:int32:50", "i", "variant:int32:0", "variant:int32:10", -7),
    ("variant:double:0.5", "f", "variant:double:0", "variant:double:1", 0),
    ("variant:int32:5", "s", "variant:int32:0", "variant:int32:0", 0),
])
async def test_add_setting_codes(service, default, kind, minimum, maximum, code):
    out = await run_tool("dbus-send", "--system", "--print-reply", f"--dest={DEST}", "/Settings",
                         f"{SETTINGS}.AddSetting", "string:P", "string:X", default,
                         f"string:{kind}", minimum, maximum)
    assert out.strip().endswith(f"int32 {code}")


async def test_add_setting_outside_settings_and_with_underscore(service):
    for group, name, code in (("Other", "X", -9), ("Settings/P", "_X", -2)):
        out = await run_tool("dbus-send", "--system", "--print-reply", f"--dest={DEST}", "/",
                             f"{SETTINGS}.AddSetting", f"string:{group}", f"string:{name}",
                             "variant:int32:1", "string:i", "variant:int32:0",
                             "variant:int32:0")
        assert out.strip().endswith(f"int32 {code}")


# ---------------------------------------------------------------- SetValue
async def test_set_value_codes_and_coercion(service):
    await busctl("/", SETTINGS, "AddSettings", "aa{sv}", *entries(
        {"path": ("s", "/Settings/P/Amps"), "default": ("i", 6), "min": ("i", 6),
         "max": ("i", 32)},
        {"path": ("s", "/Settings/P/Ratio"), "default": ("d", 0.5)},
        {"path": ("s", "/Settings/P/Name"), "default": ("s", "a")}))
    amps = "/Settings/P/Amps"
    assert await busctl(amps, BUSITEM, "SetValue", "v", "i", 40) == [-1]      # above max
    assert await busctl(amps, BUSITEM, "SetValue", "v", "i", 5) == [-1]       # below min
    assert await busctl(amps, BUSITEM, "SetValue", "v", "s", "lots") == [-1]  # wrong type
    assert (await get_value(amps))["data"] == 6
    assert await busctl(amps, BUSITEM, "SetValue", "v", "s", "16") == [0]     # dbus CLI style
    assert await get_value(amps) == {"type": "i", "data": 16}
    assert await busctl(amps, BUSITEM, "SetValue", "v", "d", 20.0) == [0]
    assert await get_value(amps) == {"type": "i", "data": 20}
    assert await busctl(amps, BUSITEM, "SetValue", "v", "i", 20) == [0]       # equal
    assert await busctl(amps, BUSITEM, "SetValue", "v", "ai", 0) == [-1]      # invalid
    assert await busctl("/Settings/P/Ratio", BUSITEM, "SetValue", "v", "i", 1) == [0]
    assert await get_value("/Settings/P/Ratio") == {"type": "d", "data": 1.0}
    assert await busctl("/Settings/P/Name", BUSITEM, "SetValue", "v", "i", 7) == [0]
    assert await get_value("/Settings/P/Name") == {"type": "s", "data": "7"}


async def signals_until(listener: Peer, path: str) -> list[dict]:
    """The signal_listener's lines up to and including the first PropertiesChanged on `path`
    (signals from one connection arrive in order: nothing sent earlier can come later)."""
    seen = []
    while not seen or (seen[-1]["member"], seen[-1]["path"]) != ("PropertiesChanged", path):
        line = await asyncio.wait_for(listener.process.stdout.readline(), 10)
        seen.append(json.loads(line))
    return seen


async def test_a_change_sends_one_propertieschanged_refusals_nothing(service):
    await busctl("/", SETTINGS, "AddSettings", "aa{sv}", *entries(
        {"path": ("s", "/Settings/P/Amps"), "default": ("i", 6), "min": ("i", 0),
         "max": ("i", 32)},
        {"path": ("s", "/Settings/P/Marker"), "default": ("i", 0)}))
    listener = await Peer.start("signal_listener.py", DEST)
    try:
        assert await busctl("/Settings/P/Amps", BUSITEM, "SetValue", "v", "i", 99) == [-1]
        assert await busctl("/Settings/P/Amps", BUSITEM, "SetValue", "v", "i", 10) == [0]
        assert await busctl("/Settings/P/Marker", BUSITEM, "SetValue", "v", "i", 1) == [0]
        seen = await signals_until(listener, "/Settings/P/Marker")
        # like localsettings: the setting's own PropertiesChanged, and no ItemsChanged
        assert [(s["member"], s["path"]) for s in seen] == [
            ("PropertiesChanged", "/Settings/P/Amps"), ("PropertiesChanged", "/Settings/P/Marker")]
        assert seen[0]["body"]["Value"] == 10
    finally:
        await listener.stop()


async def test_settings_added_or_removed_together_each_send_one_propertieschanged(service):
    await busctl("/", SETTINGS, "AddSettings", "aa{sv}", *entries(
        {"path": ("s", "/Settings/P/Marker"), "default": ("i", 0)}))
    listener = await Peer.start("signal_listener.py", DEST)
    try:
        # AddSettings adds both in one batch: still one PropertiesChanged each, as localsettings
        await busctl("/", SETTINGS, "AddSettings", "aa{sv}", *entries(
            {"path": ("s", "/Settings/P/A"), "default": ("i", 1)},
            {"path": ("s", "/Settings/P/B"), "default": ("s", "x")}))
        await busctl("/", SETTINGS, "RemoveSettings", "as", 1, "/Settings/P/A")
        assert await busctl("/Settings/P/Marker", BUSITEM, "SetValue", "v", "i", 1) == [0]
        seen = await signals_until(listener, "/Settings/P/Marker")
        assert [(s["member"], s["path"]) for s in seen[:-1]] == [
            ("PropertiesChanged", "/Settings/P/A"), ("PropertiesChanged", "/Settings/P/B"),
            ("PropertiesChanged", "/Settings/P/A")]
        assert [s["body"]["Value"] for s in seen[:-1]] == [1, "x", None]   # removed: invalid
    finally:
        await listener.stop()


async def test_missing_path_answers_unknown_object(service):
    await busctl("/", SETTINGS, "AddSettings", "aa{sv}", *entries(
        {"path": ("s", "/Settings/P/A"), "default": ("i", 1)}))
    add_setting = ["string:G", "string:N", "variant:int32:1", "string:i", "variant:int32:0",
                   "variant:int32:0"]
    for path, member, args in (("/Settings/P/Nope", f"{BUSITEM}.GetValue", []),
                               ("/Settings/P/A/Sub", f"{BUSITEM}.SetValue", ["variant:int32:1"]),
                               ("/Nowhere", f"{SETTINGS}.AddSetting", add_setting)):
        with pytest.raises(ToolError, match="^Error org.freedesktop.DBus.Error.UnknownObject:"):
            await run_tool("dbus-send", "--system", "--print-reply", f"--dest={DEST}", path,
                           member, *args)


# ---------------------------------------------------------------- RemoveSettings, reading trees
async def test_remove_settings(service):
    await busctl("/", SETTINGS, "AddSettings", "aa{sv}", *entries(
        {"path": ("s", "/Settings/P/A"), "default": ("i", 1)},
        {"path": ("s", "/Settings/P/B"), "default": ("i", 2)}))
    reply = await busctl("/", SETTINGS, "RemoveSettings", "as", 2, "/Settings/P/A",
                         "/Settings/P/Nope")
    assert reply == [[0, -1]]
    with pytest.raises(ToolError):
        await get_value("/Settings/P/A")
    assert (await get_value("/Settings/P/B"))["data"] == 2
    assert not os.path.exists(service.file_path) or \
        "/Settings/P/A" not in json.load(open(service.file_path))["settings"]


async def test_get_value_text_items_on_root_and_groups_and_introspection(service):
    await busctl("/", SETTINGS, "AddSettings", "aa{sv}", *entries(
        {"path": ("s", "/Settings/P/A"), "default": ("i", 1)},
        {"path": ("s", "/Settings/P/Sub/B"), "default": ("s", "x")}))
    root = (await busctl("/", BUSITEM, "GetValue"))[0]["data"]
    assert {k: v["data"] for k, v in root.items()} == {"Settings/P/A": 1, "Settings/P/Sub/B": "x"}
    group = (await busctl("/Settings/P", BUSITEM, "GetValue"))[0]["data"]
    assert {k: v["data"] for k, v in group.items()} == {"A": 1, "Sub/B": "x"}
    text = (await busctl("/Settings/P", BUSITEM, "GetText"))[0]["data"]
    assert text == {"A": "1", "Sub/B": "x"}
    items = (await busctl("/", BUSITEM, "GetItems"))[0]
    assert items["/Settings/P/A"]["Value"]["data"] == 1
    tree = await run_tool("busctl", "--system", "--list", "tree", DEST)
    assert set(tree.split()) >= {"/Settings/P/A", "/Settings/P/Sub/B", "/Settings/P/Sub"}
    leaf = await run_tool("busctl", "--system", "introspect", DEST, "/Settings/P/A")
    assert ".GetAttributes" in leaf and ".SetValue" in leaf
    group_xml = await run_tool("busctl", "--system", "introspect", DEST, "/Settings/P")
    assert ".AddSettings" in group_xml and ".RemoveSettings" in group_xml


async def test_bad_signature_gets_a_clear_error_and_service_survives(service):
    with pytest.raises(ToolError, match="AddSettings takes"):
        await busctl("/", SETTINGS, "AddSettings", "s", "oops")
    with pytest.raises(ToolError):
        await busctl("/Nowhere", SETTINGS, "AddSettings", "aa{sv}", 0)
    assert await busctl("/", SETTINGS, "AddSettings", "aa{sv}", 0) == [[]]


# ---------------------------------------------------------------- device instances
async def test_class_and_vrm_instance_is_bumped_to_the_next_free_one(service):
    async def add(unique, wanted):
        reply = await busctl("/", SETTINGS, "AddSettings", "aa{sv}", *entries(
            {"path": ("s", f"/Settings/Devices/{unique}/ClassAndVrmInstance"),
             "default": ("s", wanted)}))
        return results(reply)[0]["value"]

    assert await add("phaeton_a", "evcharger:40") == "evcharger:40"
    assert await add("phaeton_b", "evcharger:40") == "evcharger:41"
    assert await add("phaeton_c", "evcharger:40") == "evcharger:42"
    assert await add("battery_x", "battery:40") == "battery:40"   # other class, no clash
    assert await add("phaeton_a", "evcharger:40") == "evcharger:40"  # existing keeps its value
    # a freed instance is reused
    path_b = "/Settings/Devices/phaeton_b/ClassAndVrmInstance"
    assert await busctl(path_b, BUSITEM, "SetValue", "v", "s", "evcharger:50") == [0]
    assert await add("phaeton_d", "evcharger:41") == "evcharger:41"


# ---------------------------------------------------------------- persistence, process
async def start_service_process(data_dir: str) -> Peer:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "velib.settings_service", "--data-dir", data_dir,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    line = await asyncio.wait_for(process.stdout.readline(), 20)
    assert b"ready" in line, (line, await process.stderr.read())
    return Peer(process)


async def test_settings_survive_a_restart_of_the_service_process(private_bus, tmp_path):
    data_dir = str(tmp_path / "conf")
    proc = await start_service_process(data_dir)
    try:
        await busctl("/", SETTINGS, "AddSettings", "aa{sv}", *entries(
            {"path": ("s", "/Settings/P/Amps"), "default": ("i", 6), "min": ("i", 0),
             "max": ("i", 32)},
            {"path": ("s", "/Settings/P/Ratio"), "default": ("d", 0.5)},
            {"path": ("s", "/Settings/Devices/a/ClassAndVrmInstance"),
             "default": ("s", "evcharger:40")}))
        assert await busctl("/Settings/P/Amps", BUSITEM, "SetValue", "v", "i", 16) == [0]
    finally:
        await proc.stop()
    assert proc.process.returncode == 0
    proc = await start_service_process(data_dir)
    try:
        assert await get_value("/Settings/P/Amps") == {"type": "i", "data": 16}
        assert await get_value("/Settings/P/Ratio") == {"type": "d", "data": 0.5}
        assert await busctl("/Settings/P/Amps", BUSITEM, "SetValue", "v", "i", 33) == [-1]
        reply = await busctl("/", SETTINGS, "AddSettings", "aa{sv}", *entries(
            {"path": ("s", "/Settings/Devices/b/ClassAndVrmInstance"),
             "default": ("s", "evcharger:40")}))
        assert results(reply)[0]["value"] == "evcharger:41"
    finally:
        await proc.stop()
    assert not [f for f in os.listdir(data_dir) if f.endswith(".tmp")]


async def test_unreadable_settings_file_is_kept_aside_and_service_starts(private_bus, tmp_path):
    data_dir = tmp_path / "conf"
    data_dir.mkdir()
    (data_dir / "settings.json").write_text("{not json")
    svc = SettingsService(str(data_dir))
    await svc.register()
    try:
        assert svc.settings == {}
        assert (data_dir / "settings.json.broken").read_text() == "{not json"
        reply = await busctl("/", SETTINGS, "AddSettings", "aa{sv}", *entries(
            {"path": ("s", "/Settings/P/A"), "default": ("i", 1)}))
        assert results(reply)[0]["error"] == 0
    finally:
        await svc.close()
    stored = json.loads((data_dir / "settings.json").read_text())
    assert stored["settings"]["/Settings/P/A"]["value"] == 1


async def test_stored_entries_that_make_no_sense_are_skipped(private_bus, tmp_path):
    (tmp_path / "settings.json").write_text(json.dumps({"version": 1, "settings": {
        "/Settings/P/Good": {"type": "i", "value": 7, "default": 1, "min": 0, "max": 10},
        "/Settings/P/Bad": {"type": "i", "value": "seven", "default": 1},
        "/Settings/P/Unknown": {"type": "q", "value": 1, "default": 1},
        "/Settings/P/OutOfRange": {"type": "i", "value": 70, "default": 1, "min": 0,
                                   "max": 10}}}))
    svc = SettingsService(str(tmp_path))
    assert svc["/Settings/P/Good"] == 7
    assert "/Settings/P/Unknown" not in svc.settings
    assert svc["/Settings/P/Bad"] == 1            # unusable value: back to the default
    assert svc["/Settings/P/OutOfRange"] == 1


async def test_a_failing_save_is_logged_and_the_service_keeps_working(service, caplog):
    await busctl("/", SETTINGS, "AddSettings", "aa{sv}", *entries(
        {"path": ("s", "/Settings/P/A"), "default": ("i", 1)}))
    os.remove(service.file_path)
    os.mkdir(service.file_path)          # the rename onto it now fails
    assert await busctl("/Settings/P/A", BUSITEM, "SetValue", "v", "i", 2) == [0]
    assert (await get_value("/Settings/P/A"))["data"] == 2
    assert "cannot save settings" in caplog.text
    os.rmdir(service.file_path)
    assert await busctl("/Settings/P/A", BUSITEM, "SetValue", "v", "i", 3) == [0]
    stored = json.load(open(service.file_path))
    assert stored["settings"]["/Settings/P/A"]["value"] == 3
    assert not [f for f in os.listdir(service.data_dir) if f.endswith(".tmp")]


async def test_simulator_can_seed_settings_in_process(private_bus, tmp_path):
    svc = SettingsService(str(tmp_path))
    assert svc.add_setting("/Settings/CGwacs/Hub4Mode", 1, 1, 3) == 1
    with pytest.raises(AddError) as caught:
        svc.add_setting("/Settings/CGwacs/Hub4Mode", "one")
    assert caught.value.code == -5 and "another type" in str(caught.value)
    await svc.register()
    try:
        assert await get_value("/Settings/CGwacs/Hub4Mode") == {"type": "i", "data": 1}
        assert await busctl("/Settings/CGwacs/Hub4Mode", BUSITEM, "SetValue", "v", "i", 4) == [-1]
    finally:
        await svc.close()
    assert json.load(open(svc.file_path))["settings"]["/Settings/CGwacs/Hub4Mode"]["max"] == 3
