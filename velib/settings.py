"""Client for `com.victronenergy.settings` (Victron's localsettings, or ours in the simulator).

- `add_settings([...])` calls AddSettings on `/` (or a group) with {path, default, min, max,
  silent} and returns the current values (an existing setting keeps its value);
- `get()` reads the cached value, `read()` asks the service, `write()` returns SetValue's code
  (0 accepted, -1 refused by localsettings);
- `subscribe(path, callback)` / `on_changed`: called when a setting changes, whoever changed it
  (PropertiesChanged on the setting or ItemsChanged on `/`);
- `allocate_device_instance(unique_id)` adds `/Settings/Devices/<unique_id>/ClassAndVrmInstance`
  ("evcharger:40"), returns the instance the settings service allocated (it bumps a clash to the
  next free one) and calls back with the new instance when someone changes it later.

The client follows the settings service with its own `DbusMonitor` (one bus connection), so a
restarted settings service is re-read automatically.
"""
from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable

from velib.clock import REAL_CLOCK, Clock
from velib.monitor import DbusCallError, DbusMonitor, Watch, call_method
from velib.values import unwrap, wrap

log = logging.getLogger(__name__)

SETTINGS_SERVICE = "com.victronenergy.settings"
SETTINGS_IFACE = "com.victronenergy.Settings"

ADD_ERRORS = {
    -1: "called on a setting, not on a group",
    -2: "path elements may not start with '_'",
    -3: "unknown type (use int, float or string)",
    -4: "invalid path",
    -5: "the setting exists with another type",
    -6: "invalid default value",
    -7: "default value out of range",
    -8: "the path is a group",
    -9: "the path is not under /Settings/",
}

_ELEMENT = re.compile(r"^[A-Za-z0-9_]+$")
_INSTANCE = re.compile(r"^\s*([^:\s]+)\s*:\s*(\d+)\s*$")

ChangeCallback = Callable[[str, Any], None]


@dataclass(frozen=True)
class SettingSpec:
    """One setting to add: absolute path (`/Settings/...`), default (its type is the setting's
    type: int, float or str), optional range and silent flag."""

    path: str
    default: Any
    min: Any = None
    max: Any = None
    silent: bool = False

    def as_entry(self, group: str) -> dict:
        path = self.path
        if group != "/":
            prefix = group.rstrip("/") + "/"
            if not path.startswith(prefix):
                raise ValueError(f"{self.path} is not inside the group {group}")
            path = path[len(prefix):]
        entry = {"path": wrap(path), "default": wrap(self.default)}
        if self.min is not None:
            entry["min"] = wrap(self.min)
        if self.max is not None:
            entry["max"] = wrap(self.max)
        if self.silent:
            entry["silent"] = wrap(1)
        return entry


class SettingsError(Exception):
    """AddSettings refused some settings; `failures` maps path → localsettings error code and
    `values` holds the settings that were added."""

    def __init__(self, failures: dict[str, int], values: dict[str, Any]):
        details = ", ".join(f"{path}: {code} ({ADD_ERRORS.get(code, 'unknown error')})"
                            for path, code in failures.items())
        super().__init__(f"settings service refused {details}")
        self.failures = failures
        self.values = values


def parse_class_and_instance(text: Any) -> tuple[str, int]:
    """'evcharger:40' → ('evcharger', 40); ValueError for anything else."""
    match = _INSTANCE.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"not a ClassAndVrmInstance value ('class:instance'): {text!r}")
    return match.group(1), int(match.group(2))


class SettingsClient:
    """Talk to the settings service. `await start()` first (or `async with`)."""

    def __init__(self, *, on_changed: ChangeCallback | None = None, clock: Clock = REAL_CLOCK,
                 call_timeout_s: float = 5.0, bus_address: str | None = None,
                 service_name: str = SETTINGS_SERVICE):
        self.service_name = service_name
        self.on_changed = on_changed
        self.call_timeout_s = call_timeout_s
        self._values: dict[str, Any] = {}
        # A method reply can be handled after a change signal the service sent later (the
        # signal is handled as it is read, the reply when its caller resumes): count signals
        # so a reply never overwrites a newer value.
        self._signal_count = 0
        self._signalled_at: dict[str, int] = {}
        self._subscribers: dict[str, list[ChangeCallback]] = {}
        self._available = asyncio.Event()
        self._appeared: list[Callable[[], Awaitable[None]]] = []
        self._appeared_tasks: set[asyncio.Task] = set()
        self.monitor = DbusMonitor(
            [Watch(service_name, require_device_instance=False)],
            on_value_changed=self._on_value_changed, on_service_added=self._on_added,
            on_service_removed=self._on_removed, clock=clock, call_timeout_s=call_timeout_s,
            bus_address=bus_address)

    async def start(self) -> None:
        await self.monitor.start()

    async def close(self) -> None:
        for task in list(self._appeared_tasks):
            task.cancel()
        await asyncio.gather(*self._appeared_tasks, return_exceptions=True)
        await self.monitor.close()

    async def __aenter__(self) -> "SettingsClient":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    @property
    def available(self) -> bool:
        """True while the settings service is on the bus (and was read)."""
        return self._available.is_set()

    async def wait_until_available(self, timeout_s: float) -> None:
        """Wait for the settings service to appear (e.g. at boot); TimeoutError if it does not."""
        try:
            await asyncio.wait_for(self._available.wait(), timeout_s)
        except asyncio.TimeoutError:
            raise TimeoutError(f"{self.service_name} did not appear within {timeout_s:g} s") \
                from None

    # ------------------------------------------------------------------ settings
    async def add_settings(self, specs: Iterable[SettingSpec | dict], group: str = "/"
                           ) -> dict[str, Any]:
        """AddSettings on `group`; returns {absolute path: current value}. Raises SettingsError
        when the service refused some (the others are added), DbusCallError on bus errors."""
        specs = [s if isinstance(s, SettingSpec) else SettingSpec(**s) for s in specs]
        if not specs:
            return {}
        entries = [spec.as_entry(group) for spec in specs]
        asked_at = self._signal_count
        reply = await call_method(self._bus(), self.service_name, group, SETTINGS_IFACE,
                                  "AddSettings", "aa{sv}", [entries], self.call_timeout_s)
        values: dict[str, Any] = {}
        failures: dict[str, int] = {}
        results = reply.body[0] if reply.body else []
        for spec, result in zip(specs, results):
            code = unwrap(result.get("error", wrap(0)))
            if code != 0:
                failures[spec.path] = int(code)
                continue
            value = unwrap(result["value"]) if "value" in result else spec.default
            if self._signalled_at.get(spec.path, -1) >= asked_at:
                # a change signal came in while the reply was on its way: it is newer
                value = self._values.get(spec.path, value)
            values[spec.path] = value
            self._store(spec.path, value)
        for spec in specs[len(results):]:
            failures[spec.path] = -4
        if failures:
            raise SettingsError(failures, values)
        return values

    def get(self, path: str, default: Any = None) -> Any:
        """The last known value of a setting (from the service's items, add_settings or a
        change signal); kept while the service is away."""
        value = self._values.get(path)
        return default if value is None else value

    async def read(self, path: str) -> Any:
        """GetValue from the service now."""
        asked_at = self._signal_count
        value = await self.monitor.fetch_value(self.service_name, path)
        if self._signalled_at.get(path, -1) >= asked_at:
            return self._values.get(path, value)   # a change signal overtook the reply
        self._store(path, value)
        return value

    async def write(self, path: str, value: Any) -> int:
        """SetValue; returns the service's code (0 accepted, -1 refused: type or range)."""
        return await self.monitor.set_value(self.service_name, path, value)

    def subscribe(self, path: str, callback: ChangeCallback) -> Callable[[], None]:
        """Call `callback(path, value)` whenever the setting changes; returns an unsubscribe
        function."""
        self._subscribers.setdefault(path, []).append(callback)

        def unsubscribe() -> None:
            callbacks = self._subscribers.get(path, [])
            if callback in callbacks:
                callbacks.remove(callback)
        return unsubscribe

    # ------------------------------------------------------------------ device instance
    async def allocate_device_instance(self, unique_id: str, device_class: str = "evcharger",
                                       preferred: int = 40,
                                       on_change: Callable[[int], None] | None = None) -> int:
        """Ask the settings service for a VRM device instance; returns it. `on_change(instance)`
        is called when the setting changes later (e.g. from the GUI)."""
        if not _ELEMENT.match(unique_id or "") or unique_id.startswith("_"):
            raise ValueError(f"unique_id {unique_id!r} must be letters, digits and '_' only "
                             "(not starting with '_')")
        if not _ELEMENT.match(device_class or ""):
            raise ValueError(f"device class {device_class!r} must be letters, digits and '_'")
        if not isinstance(preferred, int) or isinstance(preferred, bool) or preferred < 0:
            raise ValueError(f"preferred instance must be an int >= 0, got {preferred!r}")
        path = f"/Settings/Devices/{unique_id}/ClassAndVrmInstance"
        values = await self.add_settings([SettingSpec(path, f"{device_class}:{preferred}")])
        try:
            _, instance = parse_class_and_instance(values[path])
        except ValueError as exc:
            raise SettingsError({path: -6}, values) from exc
        if on_change is not None:
            current = {"instance": instance}

            def changed(_path: str, value: Any) -> None:
                try:
                    _, new_instance = parse_class_and_instance(value)
                except ValueError:
                    log.warning("ignoring unusable %s = %r", path, value)
                    return
                if new_instance != current["instance"]:
                    current["instance"] = new_instance
                    on_change(new_instance)
            self.subscribe(path, changed)
        return instance

    # ------------------------------------------------------------------ internals
    def _bus(self):
        if self.monitor.bus is None:
            raise DbusCallError("the settings client is not started")
        return self.monitor.bus

    def _store(self, path: str, value: Any) -> None:
        """Remember a value; call back when it differs from the last known one. The first
        value seen for a path is not a change, and neither is invalid (service gone): the
        last known value is kept."""
        if value is None:
            return
        known = path in self._values
        old = self._values.get(path)
        self._values[path] = value
        if known and (type(old) is not type(value) or old != value):
            self._notify(path, value)

    def _on_value_changed(self, service: str, path: str, value: Any) -> None:
        self._signalled_at[path] = self._signal_count
        self._signal_count += 1
        self._store(path, value)

    def _notify(self, path: str, value: Any) -> None:
        callbacks = list(self._subscribers.get(path, []))
        if self.on_changed is not None:
            callbacks.append(self.on_changed)
        for callback in callbacks:
            try:
                callback(path, value)
            except Exception:
                log.exception("settings callback for %s failed", path)

    def on_appeared(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run `await callback()` each time the settings service appears from now on (late at
        boot, or restarted), e.g. to add settings that could not be added before."""
        self._appeared.append(callback)

    def _on_added(self, service: str) -> None:
        self._available.set()
        for callback in self._appeared:
            task = asyncio.get_running_loop().create_task(self._run_appeared(callback))
            self._appeared_tasks.add(task)
            task.add_done_callback(self._appeared_tasks.discard)

    async def _run_appeared(self, callback: Callable[[], Awaitable[None]]) -> None:
        try:
            await callback()
        except Exception:
            log.exception("settings service appeared, but a follow-up failed")

    def _on_removed(self, service: str) -> None:
        self._available.clear()
