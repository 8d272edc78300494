"""The rules of a config with several chargers (`chargers:`) and circuits (`circuits:`), on
plain data: what `phaeton.config` reports besides the schema, each as (key path, message).

- `chargers` replaces the one-charger `charger` section and the charger's own keys of `device`
  (`unique_id`, `custom_name`): setting both is refused, not silently merged.
- Ids must not repeat (each is a D-Bus service name), nor a Modbus socket (host, port, socket
  unit) or an OCPP connector (charge point id, connector id): two loadpoints would drive one
  outlet against each other.
- Circuits: unique names, `main` is the grid connection (site.fuse_a) and cannot be defined
  again, every parent exists, no loops; every charger names an existing circuit.
- A limit that can never be met: a single-phase charger on a phase the grid connection does
  not have, or a circuit whose limit is below the minimum current of a charger below it.

Pure: no I/O and no import of `phaeton.config` (which calls these).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAIN = "main"
SINGLE_CHARGER_DEVICE_KEYS = ("unique_id", "custom_name")

Path = tuple[Any, ...]


def first_charger_section(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The `charger` section that means the same as a `chargers` entry (its extra keys off)."""
    extra = {"id", "phase", "priority", "circuit", "custom_name", "instance", "ev_capacity_kwh"}
    return {key: value for key, value in entry.items() if key not in extra}


def single_charger_keys_with_several(data: Mapping[str, Any],
                                     defaults: Mapping[str, Any]) -> list[tuple[Path, str]]:
    """The one-charger keys a config with a non-empty `chargers` list must not set to anything
    but their defaults (`defaults`: the whole default config; the web UI saves every key)."""
    entries = data.get("chargers")
    if not isinstance(entries, list) or not entries:
        return []
    found: list[tuple[Path, str]] = []
    if data.get("charger") not in (None, {}, defaults.get("charger")):
        found.append((("charger",), "must not be set together with chargers: with several "
                                    "chargers each one is an entry of chargers"))
    device, default_device = data.get("device"), defaults.get("device") or {}
    if isinstance(device, Mapping):
        for key in SINGLE_CHARGER_DEVICE_KEYS:
            if key in device and device[key] != default_device.get(key):
                own = "id" if key == "unique_id" else key
                found.append((("device", key), f"must not be set together with chargers: "
                                               f"each charger has its own chargers[i].{own}"))
    return found


def layout_problems(data: Mapping[str, Any], bad_paths: set[Path]) -> list[tuple[Path, str]]:
    """The rules of the module docstring on a defaulted config (keys already reported as
    wrong, `bad_paths`, are not judged again)."""
    entries = [e if isinstance(e, Mapping) else {} for e in data.get("chargers") or []]
    circuits = [c if isinstance(c, Mapping) else {} for c in data.get("circuits") or []]

    def usable(path: Path) -> bool:
        return not any(path[:n] in bad_paths for n in range(len(path) + 1))

    found: list[tuple[Path, str]] = []
    found += _repeats(entries, "chargers", lambda e: e.get("id"), "id",
                      lambda value: f"repeats the id of chargers[{value}]", usable)
    found += _repeats(entries, "chargers", _modbus_socket, "alfen",
                      lambda value: f"drives the same Modbus socket as chargers[{value}] "
                                    f"(host, port and socket_unit_id)", usable)
    found += _repeats(entries, "chargers", _ocpp_connector, "ocpp",
                      lambda value: f"drives the same OCPP connector as chargers[{value}] "
                                    f"(charge_point_id and connector_id)", usable)
    limits = _circuit_limits(data, circuits, usable, found)
    site_phases = (data.get("site") or {}).get("phases")
    for index, entry in enumerate(entries):
        base: Path = ("chargers", index)
        circuit = entry.get("circuit", MAIN)
        if usable(base + ("circuit",)) and isinstance(circuit, str) and circuit not in limits:
            known = ", ".join(sorted(limits)) or MAIN
            found.append((base + ("circuit",), f"names no circuit: {circuit!r} (known: {known})"))
            continue
        phase = entry.get("phase")
        if entry.get("phases") == 1 and site_phases == 1 and phase in ("L2", "L3") \
                and usable(base + ("phase",)):
            found.append((base + ("phase",), f"must be L1: the grid connection has one phase, "
                                             f"got {phase}"))
        minimum = entry.get("min_current_a")
        if isinstance(circuit, str) and _number(minimum) and usable(base + ("min_current_a",)):
            for name, limit in _chain_limits(circuit, limits):
                if limit < minimum:
                    found.append((base + ("circuit",),
                                  f"can never charge: circuit {name!r} allows {limit:g} A, "
                                  f"below this charger's min_current_a ({minimum:g} A)"))
                    break
    return found


def _modbus_socket(entry: Mapping[str, Any]) -> tuple | None:
    alfen = entry.get("alfen")
    if entry.get("protocol", "alfen") != "alfen" or not isinstance(alfen, Mapping):
        return None
    host = alfen.get("host")
    return None if host is None else (str(host).lower(), alfen.get("port"), alfen.get("socket_unit_id"))


def _ocpp_connector(entry: Mapping[str, Any]) -> tuple | None:
    ocpp = entry.get("ocpp")
    if entry.get("protocol") != "ocpp" or not isinstance(ocpp, Mapping):
        return None
    cp = ocpp.get("charge_point_id")
    return None if cp is None else (cp, ocpp.get("connector_id"))


def _repeats(items: list[Mapping[str, Any]], list_key: str, key_of, key_name: str, message,
             usable) -> list[tuple[Path, str]]:
    """Each item whose key (`key_of`) an earlier item already has."""
    seen: dict[Any, int] = {}
    found: list[tuple[Path, str]] = []
    for index, item in enumerate(items):
        try:
            key = key_of(item)
            hash(key)
        except TypeError:
            continue
        path = (list_key, index, key_name)
        if key is None or not usable(path):
            continue
        if key in seen:
            found.append((path, message(seen[key])))
        else:
            seen[key] = index
    return found


def _circuit_limits(data: Mapping[str, Any], circuits: list[Mapping[str, Any]], usable,
                    found: list[tuple[Path, str]]) -> dict[str, tuple[float, str | None]]:
    """Every circuit's (limit, parent) by name, main included; problems go to `found`."""
    fuse = (data.get("site") or {}).get("fuse_a")
    limits: dict[str, tuple[float, str | None]] = {MAIN: (float(fuse) if _number(fuse) else 0.0, None)}
    for index, circuit in enumerate(circuits):
        base: Path = ("circuits", index)
        name = circuit.get("name")
        if not isinstance(name, str) or not usable(base + ("name",)):
            continue
        if name == MAIN:
            found.append((base + ("name",), "must not be main: main is the grid connection "
                                            "(site.fuse_a)"))
            continue
        if name in limits:
            found.append((base + ("name",), f"repeats the circuit name {name!r}"))
            continue
        limit = circuit.get("max_current_a")
        limits[name] = (float(limit) if _number(limit) else 0.0, circuit.get("parent", MAIN))
    for index, circuit in enumerate(circuits):
        base = ("circuits", index)
        name, parent = circuit.get("name"), circuit.get("parent", MAIN)
        if name not in limits or name == MAIN or not usable(base + ("parent",)):
            continue
        if parent not in limits:
            found.append((base + ("parent",), f"names no circuit: {parent!r}"))
            limits[name] = (limits[name][0], MAIN)
            continue
        seen = {name}
        while parent is not None and parent not in seen:
            seen.add(parent)
            parent = limits[parent][1] if parent in limits else None
        if parent is not None:
            found.append((base + ("parent",), f"makes a loop: {name!r} hangs below itself"))
            limits[name] = (limits[name][0], MAIN)
    return limits


def _chain_limits(name: str, limits: dict[str, tuple[float, str | None]]) -> list[tuple[str, float]]:
    """(name, limit) of the circuit and every circuit above it (loops already broken)."""
    chain: list[tuple[str, float]] = []
    current: str | None = name
    while current is not None and current in limits and len(chain) <= len(limits):
        limit, parent = limits[current]
        chain.append((current, limit))
        current = parent
    return chain


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
