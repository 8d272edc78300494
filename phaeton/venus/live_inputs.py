"""What `phaeton plan` reads from a running GX: the home battery's SoC, the planner knobs as
set on the GX, and whether a car is plugged in (phaeton's own charger service).

One short D-Bus connection, a few GetValue calls, no subscriptions. `LiveUnavailable` when the
bus or the system service cannot be reached; the caller then plans from config assumptions.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from dbus_next import BusType
from dbus_next.aio import MessageBus

from phaeton.control.readings import clean_value
from phaeton.venus.planner_settings import PREFIX
from velib.monitor import DbusCallError, call_method
from velib.values import unwrap

SYSTEM = "com.victronenergy.system"
SETTINGS = "com.victronenergy.settings"
PHAETON_PREFIX = "com.victronenergy.evcharger.phaeton_"
BUS_ITEM = "com.victronenergy.BusItem"
STATUS_DISCONNECTED = 0


class LiveUnavailable(Exception):
    """The GX's D-Bus or its system service is not there (with the reason)."""


@dataclass(frozen=True)
class LiveInputs:
    battery_soc_pct: float | None            # None: the GX reports no battery SoC
    knob_values: dict[str, Any] = field(default_factory=dict)   # full setting path -> value
    ev_plugged: bool | None = None           # None: phaeton's charger service is not running
    charger_service: str | None = None
    ess_minimum_soc_pct: float | None = None  # /Control/ActiveSocLimit


async def _get_value(bus: MessageBus, service: str, path: str, timeout_s: float) -> Any:
    reply = await call_method(bus, service, path, BUS_ITEM, "GetValue", timeout_s=timeout_s)
    return unwrap(reply.body[0]) if reply.body else None


async def _read(bus: MessageBus, timeout_s: float) -> LiveInputs:
    try:
        soc = await _get_value(bus, SYSTEM, "/Dc/Battery/Soc", timeout_s)
    except DbusCallError as exc:
        raise LiveUnavailable(f"{SYSTEM} did not answer: {exc}") from None
    soc = clean_value(soc)
    try:
        ess_minimum = clean_value(
            await _get_value(bus, SYSTEM, "/Control/ActiveSocLimit", timeout_s))
    except DbusCallError:
        ess_minimum = None

    knob_values: dict[str, Any] = {}
    try:
        subtree = await _get_value(bus, SETTINGS, PREFIX.rstrip("/"), timeout_s)
    except DbusCallError:
        subtree = None      # no settings service or no knobs yet: the config's values apply
    if isinstance(subtree, dict):
        knob_values = {PREFIX + str(name).lstrip("/"): value for name, value in subtree.items()}

    names = await call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                              "org.freedesktop.DBus", "ListNames", timeout_s=timeout_s)
    chargers = sorted(n for n in names.body[0] if n.startswith(PHAETON_PREFIX))
    plugged = None
    service = chargers[0] if chargers else None
    if service is not None:
        try:
            status = await _get_value(bus, service, "/Status", timeout_s)
        except DbusCallError:
            status = None
        if isinstance(status, int) and not isinstance(status, bool):
            plugged = status != STATUS_DISCONNECTED
    return LiveInputs(soc, knob_values, plugged, service, ess_minimum)


async def read_live_inputs(bus_address: str | None = None, timeout_s: float = 2.0) -> LiveInputs:
    """Read once from the GX's system bus (or `bus_address`); LiveUnavailable if it is not
    reachable within about `timeout_s` per step."""
    try:
        connecting = (MessageBus(bus_address=bus_address) if bus_address
                      else MessageBus(bus_type=BusType.SYSTEM)).connect()
        bus = await asyncio.wait_for(connecting, timeout_s)
    except (OSError, asyncio.TimeoutError, ValueError) as exc:
        raise LiveUnavailable(f"the GX's D-Bus is not reachable ({exc or type(exc).__name__})") \
            from None
    except Exception as exc:  # noqa: BLE001 - dbus-next raises its own types on auth/handshake
        raise LiveUnavailable(f"the GX's D-Bus is not usable ({exc})") from None
    try:
        return await _read(bus, timeout_s)
    finally:
        bus.disconnect()

