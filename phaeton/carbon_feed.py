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

Budgets (`carbon.budget`, `control.carbon_budget`): the feed keeps running sums of today, the
month and the year (from the history at start, then each quarter hour it writes, plus the
quarter hour under way), checks every configured budget each tick and announces a threshold
crossed for the first time in its period: a log line (WARNING for the warning, ERROR for the
critical), and a GX notification through `notifier` (`GxNotifier`, set by the site). Which
level was announced is kept in `<data_dir>/carbon_budget.json` (written atomically), so a
restart announces nothing twice. `view(now)` is what the tick's snapshot shows.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from phaeton.clock import Clock
from phaeton.control.carbon_accounting import (BatteryCarbon, CarbonMeter, CarbonTotals,
                                               SiteFlows, carbon_totals, other_supply_g_per_kwh)
from phaeton.control.carbon_budget import (CRITICAL, MONTH, WARNING, YEAR, AlertState,
                                           BudgetAlert, BudgetSettings, PeriodUse, evaluate,
                                           worst_level)
from phaeton.snapshot import CarbonPeriod, CarbonView
from phaeton.store.state_file import write_file_atomically

if TYPE_CHECKING:
    from phaeton.store.energy_history import CarbonHistoryFile

log = logging.getLogger(__name__)

POLL_S = 60.0          # how often the background task asks the source (simulated seconds)
HOLD_S = 3600.0        # how long the last known intensity stands in for a missing slot
FIRST_FETCH_WAIT_S = 5.0   # how long start() waits for the first series (real seconds)
BUDGET_STATE_FILE = "carbon_budget.json"
DAY = "day"
_KEY_FORMAT = {DAY: "%Y-%m-%d", MONTH: "%Y-%m", YEAR: "%Y"}


class CarbonFeed:
    """See the module docstring. `source` None: inactive."""

    def __init__(self, source: Any | None, *, clock: Clock,
                 history: CarbonHistoryFile | None = None, capacity_kwh: float | None = None,
                 tz: str = "UTC", budget: BudgetSettings | None = None,
                 budget_state_path: str | None = None):
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
        # ---- budgets and running sums (see the module docstring) ----
        self.budget = budget if budget is not None else BudgetSettings()
        self.budget_state_path = budget_state_path
        self.alerts = self._load_alert_state()
        self.notifier: Callable[[BudgetAlert], Any] | None = None   # GxNotifier, from the site
        self._notifications: set[asyncio.Task] = set()
        self._sums: dict[str, list] = {}        # day/month/year -> [key, house_g, car_g, avoided_g]
        self.accounted_g = [0.0, 0.0, 0.0]     # house, car, avoided written since start
        self._budget_statuses: list = []
        if history is not None:
            self._sums_from_history(clock.time())

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
        from phaeton.store.energy_history import CARBON_HISTORY_FILE, CarbonHistoryFile
        history = CarbonHistoryFile(f"{data_dir}/{CARBON_HISTORY_FILE}")
        history.load()
        planner = config.get("planner") or {}
        capacity = (planner.get("battery") or {}).get("capacity_kwh")
        tz = (planner.get("site") or {}).get("tz") or "UTC"
        budget = BudgetSettings.from_config((config.get("carbon") or {}).get("budget"))
        return cls(source, clock=clock, history=history,
                   capacity_kwh=float(capacity) if capacity else None, tz=str(tz),
                   budget=budget, budget_state_path=f"{data_dir}/{BUDGET_STATE_FILE}")

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

    def series(self):
        """The last good intensity series (history and forecast; None before the first or
        without a source): what the planner plans on."""
        return self._series

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
        for slot in slots:
            self._add_slot(slot)
        self.check_budget(now_s)

    def totals(self, period: str) -> list[CarbonTotals]:
        """House, car and avoided emissions per local day or month ("day", "month")."""
        if self.history is None:
            return []
        return carbon_totals(self.history.slots, period, self.zone)


    # ---- running sums, budgets ---------------------------------------------------------------

    def _key(self, t_s: float, period: str) -> str:
        """"2026-01-31", "2026-01" or "2026": the local day, month or year of `t_s`."""
        return datetime.fromtimestamp(t_s, self.zone).strftime(_KEY_FORMAT[period])

    def _sums_from_history(self, now_s: float) -> None:
        for period in (DAY, MONTH, YEAR):
            self._sums[period] = [self._key(now_s, period), 0.0, 0.0, 0.0]
        for slot in self.history.slots if self.history is not None else ():
            self._add_slot(slot, count=False)

    def _add_slot(self, slot, *, count: bool = True) -> None:
        """One written quarter hour into the sums of its day, month and year (a later
        period than the one held starts that period again)."""
        values = (slot.house_co2_g, slot.car_co2_g, slot.avoided_co2_g)
        if count:
            for i, value in enumerate(values):
                self.accounted_g[i] += value
        for period in (DAY, MONTH, YEAR):
            key = self._key(slot.start_s, period)
            held = self._sums.get(period)
            if held is None or key > held[0]:
                held = self._sums[period] = [key, 0.0, 0.0, 0.0]
            if key == held[0]:
                for i, value in enumerate(values):
                    held[i + 1] += value

    def period_sums(self, now_s: float, period: str) -> CarbonPeriod:
        """kg of the day, month or year holding `now_s` so far, the quarter hour under way
        included."""
        key = self._key(now_s, period)
        held = self._sums.get(period)
        grams = list(held[1:]) if held is not None and held[0] == key else [0.0, 0.0, 0.0]
        open_slot = getattr(self.meter, "_open", None)    # the quarter hour under way
        if open_slot is not None and self._key(open_slot.start_s, period) == key:
            grams[0] += open_slot.house_g
            grams[1] += open_slot.car_g
            grams[2] += open_slot.avoided_g
        return CarbonPeriod(key, grams[0] / 1000.0, grams[1] / 1000.0, grams[2] / 1000.0)

    def check_budget(self, now_s: float) -> list[BudgetAlert]:
        """Every configured budget now; a threshold crossed for the first time in its period
        is logged, saved and handed to the notifier."""
        if self.source is None or not self.budget.any:
            self._budget_statuses = []
            return []
        uses = {}
        for period in (MONTH, YEAR):
            sums = self.period_sums(now_s, period)
            uses[period] = PeriodUse(sums.key, sums.house_kg, sums.car_kg)
        self._budget_statuses = evaluate(self.budget, uses, now_s, self.zone)
        alerts = self.alerts.fire(self._budget_statuses)
        if alerts:
            self._save_alert_state()
        for alert in alerts:
            log.log(logging.ERROR if alert.level >= CRITICAL else logging.WARNING, "%s",
                    alert.message())
            self._notify(alert)
        return alerts

    def _notify(self, alert: BudgetAlert) -> None:
        if self.notifier is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self.notifier(alert))
        self._notifications.add(task)
        task.add_done_callback(self._notifications.discard)

    def _load_alert_state(self) -> AlertState:
        path = self.budget_state_path
        if path is None or not os.path.exists(path):
            return AlertState()
        try:
            with open(path, encoding="utf-8") as f:
                return AlertState.from_dict(json.load(f))
        except (OSError, ValueError) as exc:
            log.warning("carbon budget state %s unreadable (%s); thresholds may be announced "
                        "again this period", path, exc)
            return AlertState()

    def _save_alert_state(self) -> None:
        if self.budget_state_path is None:
            return
        try:
            write_file_atomically(self.budget_state_path,
                                  json.dumps(self.alerts.to_dict(), indent=1).encode())
        except OSError as exc:
            log.error("carbon budget state not saved to %s: %s", self.budget_state_path, exc)

    def view(self, now_s: float) -> CarbonView | None:
        """What the snapshot shows (None: inactive)."""
        if self.source is None:
            return None
        statuses = tuple(self._budget_statuses)
        return CarbonView(
            intensity_g_per_kwh=self.intensity_now(now_s),
            today=self.period_sums(now_s, DAY), month=self.period_sums(now_s, MONTH),
            year=self.period_sums(now_s, YEAR), budgets=statuses,
            budget_state=worst_level(list(statuses)),
            accounted_kg=tuple(g / 1000.0 for g in self.accounted_g))


# ---- GX notifications ----------------------------------------------------------------------

NOTIFICATION_SERVICE = "com.victronenergy.platform"
NOTIFICATION_PATH = "/Notifications/Inject"
#: venus-platform's Notification::Type: 0 warning, 1 alarm, 2 information
GX_NOTIFICATION_TYPE = {WARNING: 0, CRITICAL: 1}


class GxNotifier:
    """Announces a budget alert in the GX's notification list: SetValue of
    "<type>\t<device name>\t<description>" on com.victronenergy.platform
    /Notifications/Inject (venus-platform, src/notifications.hpp, VeQItemInjectNotification;
    the simple format adds an inactive entry the user sees in the notifications list).
    `bus()` gives a connected bus (the first charger's service's). A GX without that path
    (older Venus OS) or without venus-platform is logged once, at INFO, and left alone."""

    def __init__(self, bus: Callable[[], Any], device_name: Callable[[], str] = lambda: "phaeton"):
        self.bus = bus
        self.device_name = device_name
        self.sent: list[str] = []
        self._unsupported_logged = False

    async def __call__(self, alert: BudgetAlert) -> bool:
        from velib.monitor import DbusCallError, call_method
        from velib.values import wrap
        bus = self.bus()
        if bus is None:
            return False
        text = "\t".join((str(GX_NOTIFICATION_TYPE.get(alert.level, 0)),
                          _one_field(self.device_name() or "phaeton"),
                          _one_field(alert.message())))
        try:
            reply = await call_method(bus, NOTIFICATION_SERVICE, NOTIFICATION_PATH,
                                      "com.victronenergy.BusItem", "SetValue", "v",
                                      [wrap(text)])
        except (DbusCallError, OSError, EOFError) as exc:
            if not self._unsupported_logged:
                log.info("GX notification not sent (%s); the GX may not support "
                         "%s %s", exc, NOTIFICATION_SERVICE, NOTIFICATION_PATH)
                self._unsupported_logged = True
            return False
        code = reply.body[0] if reply.body else 0
        if code != 0:
            log.info("GX notification refused by %s (code %s)", NOTIFICATION_SERVICE, code)
            return False
        self.sent.append(text)
        return True


def _one_field(text: str) -> str:
    return " ".join(str(text).replace("\t", " ").split())
