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


_PHASE_PATHS = {name: tuple(template.format(n) for n in PHASES) for name, template in (
    ("pv_on_grid_w", "/Ac/PvOnGrid/L{}/Power"), ("pv_on_output_w", "/Ac/PvOnOutput/L{}/Power"),
    ("pv_on_genset_w", "/Ac/PvOnGenset/L{}/Power"), ("grid_w", "/Ac/Grid/L{}/Power"),
    ("consumption_w", "/Ac/Consumption/L{}/Power"))}
_SINGLE_PATHS = {"pv_dc_w": "/Dc/Pv/Power", "battery_soc_pct": "/Dc/Battery/Soc",
                 "battery_power_w": "/Dc/Battery/Power",
                 "active_soc_limit_pct": "/Control/ActiveSocLimit",
                 "active_input_source": "/Ac/ActiveIn/Source"}
#: every system path the readings are made of
READING_PATHS = frozenset(p for paths in _PHASE_PATHS.values() for p in paths) | frozenset(
    _SINGLE_PATHS.values())


def readings_from_values(values: dict[str, Any], age_s: float | None) -> SiteReadings:
    """Pure: the system service's paths (as the monitor caches them) → SiteReadings. (The
    values go in as they are: `SiteReadings` turns anything but a finite number into None.)"""
    get = values.get
    fields = {name: (get(a), get(b), get(c)) for name, (a, b, c) in _PHASE_PATHS.items()}
    for name, path in _SINGLE_PATHS.items():
        fields[name] = get(path)
    return SiteReadings(**fields, age_s=age_s)


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
        self._readings: SiteReadings | None = None   # of the values now (any age); None: stale
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
        """The values now with their age. (Built once per update of the paths they come from:
        the control tick and every GX update's fuse check ask for them.)"""
        cached = self._readings
        if cached is None:
            cached = self._readings = readings_from_values(self._values, None)
        return cached.with_age(self.age_s())

    def value(self, path: str) -> Any:
        return self._values.get(path)

    def _changed(self, service: str, path: str, value: Any) -> None:
        if service != SYSTEM:
            return
        self._values[path] = value
        if path in READING_PATHS:
            self._readings = None
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
            self._readings = None
            log.warning("GX system service left the bus; readings are stale until it returns")
            if self._on_change:
                self._on_change()
