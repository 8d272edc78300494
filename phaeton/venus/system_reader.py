"""Reads the GX system (`com.victronenergy.system`) into the controller's `SiteReadings`.

Follows the service with velib's monitor (one GetItems, then ItemsChanged). Values that are
invalid or absent stay None; the controller sums phases treating None as absent. Staleness: the
system service only signals values that changed, and grid power changes all the time on a live
system, so `age_s` is the time since the service last told us anything (None while it is gone).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from velib.monitor import DbusMonitor, Watch

from phaeton.clock import REAL_CLOCK, Clock
from phaeton.control.readings import SiteReadings

log = logging.getLogger("phaeton.venus.system")

SYSTEM = "com.victronenergy.system"
PHASES = (1, 2, 3)


def readings_from_values(values: dict[str, Any], age_s: float | None) -> SiteReadings:
    """Pure: the system service's paths (as the monitor caches them) → SiteReadings."""
    def number(path: str) -> float | None:
        value = values.get(path)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def phases(template: str) -> tuple:
        return tuple(number(template.format(n)) for n in PHASES)

    source = number("/Ac/ActiveIn/Source")
    return SiteReadings(
        pv_on_grid_w=phases("/Ac/PvOnGrid/L{}/Power"),
        pv_on_output_w=phases("/Ac/PvOnOutput/L{}/Power"),
        pv_on_genset_w=phases("/Ac/PvOnGenset/L{}/Power"),
        pv_dc_w=number("/Dc/Pv/Power"),
        grid_w=phases("/Ac/Grid/L{}/Power"),
        consumption_w=phases("/Ac/Consumption/L{}/Power"),
        battery_soc_pct=number("/Dc/Battery/Soc"),
        battery_power_w=number("/Dc/Battery/Power"),
        active_soc_limit_pct=number("/Control/ActiveSocLimit"),
        active_input_source=None if source is None else int(source),
        age_s=age_s,
    )


class GxSystemReader:
    """`await start()`, then `readings()` at any time.

    `on_change()` is called once per update the system service sends (an ItemsChanged of many
    paths is one call, made after all its values are in), and when the service comes or goes:
    the control loop uses it to react to a load spike at the meter's pace, not the tick's."""

    def __init__(self, *, clock: Clock = REAL_CLOCK, bus_address: str | None = None,
                 on_change: Callable[[], None] | None = None):
        self.clock = clock
        self._on_change = on_change
        self._values: dict[str, Any] = {}
        self._last_update: float | None = None
        self._present = False
        self._notify_pending = False
        self.monitor = DbusMonitor(
            [Watch(SYSTEM, require_device_instance=False)],
            on_value_changed=self._changed, on_service_added=self._added,
            on_service_removed=self._removed, clock=clock, bus_address=bus_address)

    async def start(self) -> None:
        await self.monitor.start()

    async def close(self) -> None:
        await self.monitor.close()

    @property
    def present(self) -> bool:
        return self._present

    def age_s(self) -> float | None:
        if not self._present or self._last_update is None:
            return None
        return max(0.0, self.clock.monotonic() - self._last_update)

    def readings(self) -> SiteReadings:
        return readings_from_values(self._values, self.age_s())

    def value(self, path: str) -> Any:
        return self._values.get(path)

    def _changed(self, service: str, path: str, value: Any) -> None:
        if service != SYSTEM:
            return
        self._values[path] = value
        if self._present:
            self._last_update = self.clock.monotonic()
            self._notify_soon()

    def _notify_soon(self) -> None:
        """One on_change call after the values of the message being handled are all in."""
        if self._on_change is None or self._notify_pending:
            return
        self._notify_pending = True
        try:
            asyncio.get_running_loop().call_soon(self._notify)
        except RuntimeError:          # no loop (a synchronous caller): tell at once
            self._notify()

    def _notify(self) -> None:
        self._notify_pending = False
        if self._on_change is not None:
            try:
                self._on_change()
            except Exception:
                log.exception("handling a GX system update")

    def _added(self, service: str) -> None:
        if service == SYSTEM:
            self._present = True
            self._last_update = self.clock.monotonic()
            log.info("GX system service found")
            if self._on_change:
                self._on_change()

    def _removed(self, service: str) -> None:
        if service == SYSTEM:
            self._present = False
            self._values.clear()
            log.warning("GX system service left the bus; readings are stale until it returns")
            if self._on_change:
                self._on_change()
