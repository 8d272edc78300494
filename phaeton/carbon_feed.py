"""The carbon intensity of the moment for the tick, and the site's carbon accounting on disk.

The edge between the configured carbon source (`planning/carbon`, docs/carbon.md) and the
control tick. `CarbonFeed` holds the source and refreshes it in a background task (every
`POLL_S`; the source decides itself when it really fetches): the tick only ever reads the last
series held, so a slow or failing source never blocks it. A failure is logged once (and its
end once); the last good series is used meanwhile. When the current slot has no value, the last
known one is held for up to `HOLD_S`.

Each tick the site asks `supply_g_per_kwh(now, flow)` (the intensity the loadpoints' sessions
carry for the energy beyond PV) and calls `record(now, flow, soc)` (the quarter-hour accounting
of `control.carbon_accounting`, kept in `<data_dir>/carbon_history.csv`; the battery's stored
intensity continues from the file's last quarter hour after a restart). `totals("day"|"month")`
gives the sums per local day or month.

With `carbon.source: none` the feed is inactive: no task, no file, every answer None: phaeton
behaves as without it.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from phaeton.clock import Clock
from phaeton.control.carbon_accounting import (BatteryCarbon, CarbonMeter, CarbonTotals,
                                               SiteFlows, carbon_totals, other_supply_g_per_kwh)
from phaeton.store.energy_history import CARBON_HISTORY_FILE, CarbonHistoryFile

log = logging.getLogger(__name__)

POLL_S = 60.0          # how often the background task asks the source (simulated seconds)
HOLD_S = 3600.0        # how long the last known intensity stands in for a missing slot
FIRST_FETCH_WAIT_S = 5.0   # how long start() waits for the first series (real seconds)


class CarbonFeed:
    """See the module docstring. `source` None: inactive."""

    def __init__(self, source: Any | None, *, clock: Clock,
                 history: CarbonHistoryFile | None = None, capacity_kwh: float | None = None,
                 tz: str = "UTC"):
        self.source = source
        self.clock = clock
        self.history = history
        try:
            self.zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            log.warning("time zone %r unknown: carbon totals per UTC day", tz)
            self.zone = ZoneInfo("UTC")
        battery = BatteryCarbon()
        last = history.last if history is not None else None
        if last is not None:          # the battery carries on as the last quarter hour left it
            battery = BatteryCarbon(last.battery_kwh, last.battery_g_per_kwh)
        self.meter = CarbonMeter(battery, capacity_kwh=capacity_kwh)
        self._series = None
        self._error: str | None = None
        self._held: tuple[float, float] | None = None      # (time, g/kWh) last known
        self._task: asyncio.Task | None = None

    @classmethod
    def from_config(cls, config, *, clock: Clock) -> CarbonFeed:
        """The feed of `config["carbon"]`; a config the factory refuses is logged and gives an
        inactive feed (check-config names the key)."""
        from phaeton.planning.carbon.factory import carbon_from_config
        data_dir = str(config["data_dir"])
        try:
            source = carbon_from_config(config.get("carbon"), data_dir, clock=clock)
        except ValueError as exc:          # CarbonConfigError: the key path and what is wrong
            log.error("carbon accounting off: %s", exc)
            source = None
        if source is None:
            return cls(None, clock=clock)
        history = CarbonHistoryFile(f"{data_dir}/{CARBON_HISTORY_FILE}")
        history.load()
        planner = config.get("planner") or {}
        capacity = (planner.get("battery") or {}).get("capacity_kwh")
        tz = (planner.get("site") or {}).get("tz") or "UTC"
        return cls(source, clock=clock, history=history,
                   capacity_kwh=float(capacity) if capacity else None, tz=str(tz))

    @property
    def active(self) -> bool:
        return self.source is not None

    # ---- the background refresh ----------------------------------------------------------------

    async def start(self) -> None:
        """Start the background refresh; waits a little for the first series (a static or
        cached source answers at once), never longer than FIRST_FETCH_WAIT_S."""
        if self.source is None or self._task is not None:
            return
        first = asyncio.create_task(self.refresh_once())
        try:
            await asyncio.wait_for(asyncio.shield(first), FIRST_FETCH_WAIT_S)
        except asyncio.TimeoutError:
            pass
        self._task = asyncio.create_task(self._run(first), name="phaeton-carbon")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self, first: asyncio.Task) -> None:
        await asyncio.gather(first, return_exceptions=True)
        while True:
            await self.clock.sleep(POLL_S)
            await self.refresh_once()

    async def refresh_once(self) -> None:
        """Ask the source for its series (it fetches when due); a failure keeps the last good
        series and is logged once until the source answers again."""
        if self.source is None:
            return
        try:
            series = await self.source.intensity(self.clock.time())
        except asyncio.CancelledError:
            raise
        except Exception as exc:       # noqa: BLE001 - the tick must never miss the feed
            text = f"{type(exc).__name__}: {exc}"
            if text != self._error:
                log.warning("carbon intensity not refreshed (%s); using the last good values",
                            text)
            self._error = text
            return
        if self._error is not None:
            log.info("carbon intensity refreshed again")
        self._error = None
        self._series = series

    # ---- for the tick ------------------------------------------------------------------------

    def intensity_now(self, now_s: float) -> float | None:
        """The grid's g CO2-eq/kWh at `now_s` (None: inactive or not known)."""
        series = self._series
        value = series.intensity_at(now_s) if series is not None else None
        if value is not None:
            self._held = (now_s, float(value))
            return float(value)
        if self._held is not None and 0 <= now_s - self._held[0] <= HOLD_S:
            return self._held[1]
        return None

    def supply_g_per_kwh(self, now_s: float, flow) -> float | None:
        """g/kWh of the site's supply beyond PV at `now_s` (grid and home battery mixed; the
        grid's own intensity when the flow is not known): what a session's non-solar energy
        carries. None when no intensity is known."""
        grid_g = self.intensity_now(now_s)
        if grid_g is None:
            return None
        flows = SiteFlows.of(flow)
        if flows is None:
            return grid_g
        return other_supply_g_per_kwh(flows, grid_g, self.meter.battery)

    def record(self, now_s: float, flow, battery_soc_pct: float | None) -> None:
        """This tick's flows (None: not measured) into the quarter-hour accounting; finished
        quarter hours go to the history file."""
        if self.source is None:
            return
        slots = self.meter.add(now_s, SiteFlows.of(flow), self.intensity_now(now_s),
                               battery_soc_pct)
        if slots and self.history is not None:
            self.history.append(slots)

    def totals(self, period: str) -> list[CarbonTotals]:
        """House, car and avoided emissions per local day or month ("day", "month")."""
        if self.history is None:
            return []
        return carbon_totals(self.history.slots, period, self.zone)

