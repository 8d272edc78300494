"""A `com.victronenergy.settings` service compatible with Victron's localsettings.

Used by the simulator (`phaeton demo`) and the tests; real GX devices run localsettings itself.
It follows localsettings' D-Bus API (reference venus-dbus.md §6):

- interface `com.victronenergy.Settings` on `/` and on every group node:
  AddSetting (s s v s v v → i), AddSilentSetting (same), AddSettings (aa{sv} → aa{sv}),
  RemoveSettings (as → ai); on every setting: GetAttributes (→ v v v i), GetSilent (→ i);
- every setting is a BusItem (GetValue, GetText, SetValue → 0 or -1, GetMin/GetMax/GetDefault),
  `/` and groups answer GetValue/GetText/GetItems, every node answers Introspect, a missing
  path answers UnknownObject: all of this comes from `velib.service.VeDbusService`, which this
  class extends (the Settings interface is answered by `_handle_settings`);
- like localsettings, every changed, added or removed setting sends one PropertiesChanged on
  its own path, also when AddSettings adds several at once; no ItemsChanged is ever sent;
- AddSetting(s) error codes: -1 called on a setting, -2 path containing `/_`, -3 unknown type
  (a bool default), -4 invalid path, -5 type differs from the existing setting, -6 invalid
  default, -7 default out of range, -8 the path is a group, -9 not under `/Settings/`;
- an existing setting keeps its value when added again (its attributes are updated);
- a new `.../ClassAndVrmInstance` setting ("evcharger:40") gets the next free instance of its
  class when another device already holds that one ("evcharger:41", ...);
- every change is saved at once to `<data dir>/settings.json` (write to a temporary file,
  fsync, rename) and reloaded at start.

Run it: `python -m velib.settings_service --data-dir DIR` (bus from DBUS_SYSTEM_BUS_ADDRESS).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import re
import signal
import tempfile
from dataclasses import dataclass
from typing import Any

from dbus_next import Message, MessageFlag, MessageType

from velib.service import VeDbusService
from velib.values import CoercionError, coerce, unwrap, wrap

log = logging.getLogger("velib.settings_service")

SERVICE_NAME = "com.victronenergy.settings"
SETTINGS_IFACE = "com.victronenergy.Settings"
SETTINGS_FILE = "settings.json"
FILE_VERSION = 1

# AddSetting(s) result codes, as localsettings returns them
OK = 0
ERR_NOT_A_GROUP = -1
ERR_UNDERSCORE = -2
ERR_UNKNOWN_TYPE = -3
ERR_INVALID_PATH = -4
ERR_TYPE_DIFFERS = -5
ERR_INVALID_DEFAULT = -6
ERR_DEFAULT_OUT_OF_RANGE = -7
ERR_IS_GROUP = -8
ERR_NOT_UNDER_SETTINGS = -9

ERROR_MEANINGS = {
    ERR_NOT_A_GROUP: "called on a setting, not on a group",
    ERR_UNDERSCORE: "path elements may not start with '_'",
    ERR_UNKNOWN_TYPE: "unknown type (use int, float or string)",
    ERR_INVALID_PATH: "invalid path",
    ERR_TYPE_DIFFERS: "the setting exists with another type",
    ERR_INVALID_DEFAULT: "invalid default value",
    ERR_DEFAULT_OUT_OF_RANGE: "default value out of range",
    ERR_IS_GROUP: "the path is a group",
    ERR_NOT_UNDER_SETTINGS: "the path is not under /Settings/",
}

KINDS = {"i": int, "f": float, "s": str}
_ELEMENT = re.compile(r"^[A-Za-z0-9_]+$")
_INSTANCE = re.compile(r"^([^:]+):(\d+)$")


class AddError(Exception):
    """One AddSetting(s) entry that cannot be added; `code` is the localsettings code."""

    def __init__(self, code: int):
        super().__init__(ERROR_MEANINGS.get(code, str(code)))
        self.code = code


@dataclass
class Setting:
    """The attributes of one setting (its value lives in the exported item)."""

    type: str              # 'i', 'f' or 's'
    default: Any
    min: Any = None        # None: no range
    max: Any = None
    silent: bool = False

    def in_range(self, value: Any) -> bool:
        if self.type == "s" or self.min is None:
            return True
        return self.min <= value <= self.max


def _type_of_default(default: Any) -> str:
    if isinstance(default, bool):
        raise AddError(ERR_UNKNOWN_TYPE)
    if isinstance(default, int):
        return "i"
    if isinstance(default, float):
        return "f"
    if isinstance(default, str):
        return "s"
    raise AddError(ERR_UNKNOWN_TYPE)


def _convert(kind: str, value: Any, code: int) -> Any:
    try:
        result = coerce(value, KINDS[kind])
    except CoercionError:
        raise AddError(code) from None
    if result is None:
        raise AddError(code)
    return result


def _join(base: str, relative: str) -> str:
    """localsettings joins a group object path and a (group,) name; tolerate extra slashes."""
    if base == "/":
        return "/" + relative.lstrip("/")
    return base + "/" + relative.lstrip("/")


class SettingsService(VeDbusService):
    """The settings service; `await SettingsService(data_dir).register()` to go on the bus."""

    # localsettings answers -1 for every refused SetValue
    code_not_writeable = -1
    code_refused = -1
    # localsettings signals each setting with its own PropertiesChanged, batch or not
    items_changed_for_batches = False

    def __init__(self, data_dir: str, *, name: str = SERVICE_NAME,
                 bus_address: str | None = None):
        super().__init__(name, bus_address=bus_address)
        self.data_dir = data_dir
        self.file_path = os.path.join(data_dir, SETTINGS_FILE)
        self.settings: dict[str, Setting] = {}
        os.makedirs(data_dir, exist_ok=True)
        self._load()

    # ---------------------------------------------------------------- public API (in-process)
    def add_setting(self, path: str, default: Any, min: Any = None, max: Any = None,
                    silent: bool = False, kind: str | None = None) -> Any:
        """Add (or re-add) a setting at an absolute path; returns its value. Raises AddError."""
        value = self._add(path, default, kind, min, max, silent)
        self.save()
        return value

    # ---------------------------------------------------------------- adding and removing
    def _add(self, path: str, default: Any, kind: str | None, minimum: Any, maximum: Any,
             silent: bool) -> Any:
        if "/_" in path:
            raise AddError(ERR_UNDERSCORE)
        elements = path.split("/")[1:]
        if not path.startswith("/") or not elements or \
                not all(_ELEMENT.match(e) for e in elements):
            raise AddError(ERR_INVALID_PATH)
        if not path.startswith("/Settings/"):
            raise AddError(ERR_NOT_UNDER_SETTINGS)
        if path not in self and path in self._node_map():
            raise AddError(ERR_IS_GROUP)
        for i in range(2, len(elements)):
            if "/" + "/".join(elements[:i]) in self.settings:
                raise AddError(ERR_INVALID_PATH)  # a setting cannot have children
        if kind is None:
            kind = _type_of_default(default)
        elif kind not in KINDS:
            raise AddError(ERR_UNKNOWN_TYPE)
        default = _convert(kind, default, ERR_INVALID_DEFAULT)
        setting = Setting(kind, default, silent=bool(silent))
        if kind != "s" and minimum is not None and maximum is not None:
            low = _convert(kind, minimum, ERR_INVALID_DEFAULT)
            high = _convert(kind, maximum, ERR_INVALID_DEFAULT)
            if not (low == 0 and high == 0):   # localsettings: min = max = 0 means no range
                if not low <= default <= high:
                    raise AddError(ERR_DEFAULT_OUT_OF_RANGE)
                setting.min, setting.max = low, high
        existing = self.settings.get(path)
        if existing is not None:
            if existing.type != kind:
                raise AddError(ERR_TYPE_DIFFERS)
            value = self[path]
            if existing != setting:
                self.settings[path] = setting
                self._export(path, setting, value)
            return value
        value = default
        if path.endswith("/ClassAndVrmInstance") and kind == "s":
            value = self._free_instance(path, default)
        self.settings[path] = setting
        self._export(path, setting, value)
        return value

    def _export(self, path: str, setting: Setting, value: Any) -> None:
        if path in self:
            self.remove_path(path)
        low, high = (0, 0) if setting.min is None else (setting.min, setting.max)
        self.add_path(path, value, writeable=True, kind=KINDS[setting.type], min=low, max=high,
                      default=setting.default)

    def _free_instance(self, path: str, wanted: str) -> str:
        match = _INSTANCE.match(wanted)
        if match is None:
            return wanted
        device_class, instance = match.group(1), int(match.group(2))
        taken = set()
        for other, setting in self.settings.items():
            if other != path and other.endswith("/ClassAndVrmInstance"):
                held = _INSTANCE.match(str(self[other]))
                if held and held.group(1) == device_class:
                    taken.add(int(held.group(2)))
        while instance in taken:
            instance += 1
        return f"{device_class}:{instance}"

    def _remove(self, path: str) -> int:
        if path not in self.settings:
            return -1
        del self.settings[path]
        self[path] = None          # consumers see it go invalid
        self.remove_path(path)
        return 0

    # ---------------------------------------------------------------- BusItem SetValue
    def set_value_from_bus(self, item, variant: Any) -> int:
        setting = self.settings.get(item.path)
        if setting is None:
            return -1
        try:
            value = coerce(unwrap(variant), KINDS[setting.type])
        except CoercionError:
            return -1
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return -1
        if not setting.in_range(value):
            return -1
        if value == self[item.path]:
            return 0
        if not setting.silent:
            log.info("setting %s changed: %r -> %r", item.path, self[item.path], value)
        self[item.path] = value
        self._persist()
        return 0

    # ---------------------------------------------------------------- the Settings interface
    def _handle(self, msg: Message):
        if msg.message_type is MessageType.METHOD_CALL and msg.interface == SETTINGS_IFACE:
            try:
                return self._handle_settings(msg)
            except Exception:
                log.exception("answering %s on %s", msg.member, msg.path)
                return self._answer(Message.new_error(
                    msg, "org.freedesktop.DBus.Error.Failed", "internal error"), msg)
        return super()._handle(msg)

    def handle_extra(self, msg: Message, path: str, member: str) -> bool:
        # Clients that call without an interface name (or with BusItem) reach us here.
        if member in _SETTINGS_METHODS:
            return self._handle_settings(msg)
        return False

    def _is_group(self, path: str) -> bool:
        """`/`, `/Settings` and any path below it that is not (under) a setting: like the
        groups of a real GX, which always has /Settings/Devices and the rest."""
        if path in ("/", "/Settings"):
            return True
        if not path.startswith("/Settings/") or path in self.settings:
            return False
        elements = path.split("/")[1:]
        if not all(_ELEMENT.match(e) for e in elements):
            return False
        return not any("/" + "/".join(elements[:i]) in self.settings
                       for i in range(2, len(elements)))

    def _handle_settings(self, msg: Message):
        path, member, sig = msg.path, msg.member, msg.signature
        expected = _SETTINGS_METHODS.get(member)
        if expected is None:
            return None
        in_sig, out_sig = expected
        if sig != in_sig:
            return self._answer(Message.new_error(
                msg, "org.freedesktop.DBus.Error.InvalidArgs",
                f"{member} takes ({in_sig}), got ({sig})"), msg)
        if member in ("GetAttributes", "GetSilent"):
            setting = self.settings.get(path)
            if setting is None:
                if member == "GetSilent":
                    return self._reply_body(msg, out_sig, [-1])
                return self._answer(Message.new_error(
                    msg, "org.freedesktop.DBus.Error.UnknownObject",
                    f"{path} is not a setting"), msg)
            silent = 1 if setting.silent else 0
            if member == "GetSilent":
                return self._reply_body(msg, out_sig, [silent])
            low, high = (0, 0) if setting.min is None else (setting.min, setting.max)
            return self._reply_body(msg, out_sig, [wrap(setting.default), wrap(low),
                                                   wrap(high), silent])
        if not self._is_group(path) and path not in self.settings:
            return self._answer(Message.new_error(
                msg, "org.freedesktop.DBus.Error.UnknownObject", f"no object {path}"), msg)
        if member in ("AddSetting", "AddSilentSetting"):
            group, name, default, kind, minimum, maximum = msg.body
            code = self._add_one_setting(path, group, name, unwrap(default), kind,
                                         unwrap(minimum), unwrap(maximum),
                                         member == "AddSilentSetting")
            return self._reply_body(msg, out_sig, [code])
        if member == "AddSettings":
            return self._reply_body(msg, out_sig, [self._add_many(path, msg.body[0])])
        if member == "RemoveSettings":
            if path in self.settings:
                return self._reply_body(msg, out_sig, [[-1] * len(msg.body[0])])
            # not batched: each removed setting first goes invalid, then disappears
            codes = [self._remove(_join(path, p)) for p in msg.body[0]]
            self._persist()
            return self._reply_body(msg, out_sig, [codes])
        return None

    def _add_one_setting(self, group_path: str, group: str, name: str, default: Any,
                         kind: str, minimum: Any, maximum: Any, silent: bool) -> int:
        if group_path in self.settings:
            return ERR_NOT_A_GROUP
        path = _join(_join(group_path, group) if group else group_path, name)
        try:
            with self.batch():
                self._add(path, default, kind, minimum, maximum, silent)
        except AddError as exc:
            return exc.code
        self._persist()
        return OK

    def _add_many(self, group_path: str, entries: list) -> list:
        results = []
        with self.batch():
            for entry in entries:
                raw_path = entry.get("path")
                path_text = unwrap(raw_path) if raw_path is not None else None
                result = {"path": wrap(path_text if isinstance(path_text, str) else "")}
                try:
                    if group_path in self.settings:
                        raise AddError(ERR_NOT_A_GROUP)
                    if not isinstance(path_text, str) or not path_text.strip("/"):
                        raise AddError(ERR_INVALID_PATH)
                    if "default" not in entry:
                        raise AddError(ERR_INVALID_DEFAULT)
                    value = self._add(
                        _join(group_path, path_text), unwrap(entry["default"]), None,
                        unwrap(entry["min"]) if "min" in entry else None,
                        unwrap(entry["max"]) if "max" in entry else None,
                        bool(unwrap(entry["silent"])) if "silent" in entry else False)
                except AddError as exc:
                    result["error"] = wrap(exc.code)
                else:
                    result["error"] = wrap(OK)
                    result["value"] = wrap(value)
                results.append(result)
        self._persist()
        return results

    def _reply_body(self, msg: Message, signature: str, body: list) -> bool:
        return self._answer(Message.new_method_return(msg, signature, body), msg)

    def _answer(self, reply: Message, call: Message) -> bool:
        if not call.flags & MessageFlag.NO_REPLY_EXPECTED and self.bus is not None:
            self.bus.send(reply)
        return True

    def extra_introspection(self, path: str) -> list[str]:
        lines = [f'  <interface name="{SETTINGS_IFACE}">']
        if path in self.settings:
            lines += ['    <method name="GetAttributes"><arg direction="out" type="v"/>'
                      '<arg direction="out" type="v"/><arg direction="out" type="v"/>'
                      '<arg direction="out" type="i"/></method>',
                      '    <method name="GetSilent"><arg direction="out" type="i"/></method>']
        else:
            for member in ("AddSetting", "AddSilentSetting"):
                lines.append(f'    <method name="{member}">' + "".join(
                    f'<arg direction="in" type="{t}"/>' for t in ("s", "s", "v", "s", "v", "v"))
                    + '<arg direction="out" type="i"/></method>')
            lines += ['    <method name="AddSettings"><arg direction="in" type="aa{sv}"/>'
                      '<arg direction="out" type="aa{sv}"/></method>',
                      '    <method name="RemoveSettings"><arg direction="in" type="as"/>'
                      '<arg direction="out" type="ai"/></method>']
        lines.append("  </interface>")
        return lines

    # ---------------------------------------------------------------- persistence
    def save(self) -> None:
        """Write all settings to the data file atomically (temporary file, fsync, rename)."""
        document = {"version": FILE_VERSION, "settings": {
            path: {"type": s.type, "value": self[path], "default": s.default, "min": s.min,
                   "max": s.max, "silent": s.silent}
            for path, s in sorted(self.settings.items())}}
        fd, tmp = tempfile.mkstemp(prefix=".settings-", suffix=".tmp", dir=self.data_dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(document, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.file_path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def _persist(self) -> None:
        """save(), but a full or read-only disk is logged instead of failing the bus call
        (the change stays in effect and is written with the next successful save)."""
        try:
            self.save()
        except OSError as exc:
            log.error("cannot save settings to %s: %s", self.file_path, exc)

    def _load(self) -> None:
        try:
            with open(self.file_path, encoding="utf-8") as f:
                document = json.load(f)
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            broken = self.file_path + ".broken"
            log.error("cannot read %s (%s); starting with no settings, old file kept as %s",
                      self.file_path, exc, broken)
            try:
                os.replace(self.file_path, broken)
            except OSError:
                pass
            return
        entries = document.get("settings") if isinstance(document, dict) else None
        if not isinstance(entries, dict):
            log.error("%s has no 'settings' object; starting with no settings", self.file_path)
            return
        for path, entry in entries.items():
            try:
                kind = entry["type"]
                self._add(path, entry["default"], kind, entry.get("min"), entry.get("max"),
                          entry.get("silent", False))
                value = _convert(kind, entry["value"], ERR_INVALID_DEFAULT)
                if self.settings[path].in_range(value):
                    self[path] = value
                else:
                    log.warning("%s: stored value %r out of range; using the default",
                                path, value)
            except (AddError, KeyError, TypeError) as exc:
                log.warning("%s: skipping stored setting %s: %s", self.file_path, path, exc)


_SETTINGS_METHODS = {
    "AddSetting": ("ssvsvv", "i"),
    "AddSilentSetting": ("ssvsvv", "i"),
    "AddSettings": ("aa{sv}", "aa{sv}"),
    "RemoveSettings": ("as", "ai"),
    "GetAttributes": ("", "vvvi"),
    "GetSilent": ("", "i"),
}


async def _serve(data_dir: str) -> None:
    service = SettingsService(data_dir)
    await service.register()
    print(f"{SERVICE_NAME} ready ({len(service.settings)} settings from {service.file_path})",
          flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    disconnected = asyncio.ensure_future(asyncio.shield(service.bus.wait_for_disconnect()))
    waiter = asyncio.ensure_future(stop.wait())
    await asyncio.wait([disconnected, waiter], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    disconnected.cancel()
    service.save()
    await service.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m velib.settings_service",
        description="A localsettings-compatible com.victronenergy.settings service "
                    "(on the bus of DBUS_SYSTEM_BUS_ADDRESS).")
    parser.add_argument("--data-dir", required=True, help="directory for settings.json")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_serve(args.data_dir))
    except Exception as exc:  # e.g. the name is owned, the bus is not there
        print(f"settings service failed: {exc}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
