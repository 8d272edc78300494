"""The site: the GX system it reads, the energy planner and battery writer, the energy history,
and the control loop that drives its loadpoints.

Every `control.tick_s` (and at once after a user's write, or when a GX update shows a load
spike the fuse cannot take) one tick:
read every loadpoint's charger → read the GX once → each loadpoint decides (pure), applies and
accounts its session → the house load and PV go into the energy history → ONE snapshot
(`phaeton.snapshot.SiteSnapshot`) is published to `snapshots`, where the D-Bus services and
the web UI (and later metrics and the fleet client) take it from.

A tick that raises is logged and the next one runs. `stop_control()` stops the loop and leaves
every charger at its safe current with its session saved; `close()` then releases the rest.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Callable, Sequence

from velib.settings import SettingsClient

from phaeton.carbon_feed import CarbonFeed, GxNotifier
from phaeton.clock import Clock
from phaeton.config import Config, config_to_dict
from phaeton.chargers.base import ChargerMeasurement
from phaeton.control.allocation import (LoadpointDraw, LoadpointShare, SiteShare, allocate_site,
                                        hold_raises_for_cuts, in_charger_phases, on_grid_phases,
                                        share_site)
from phaeton.control.allocator import Claim, RotationState
from phaeton.control.carbon_budget import BudgetSettings
from phaeton.control.readings import EvReadings, SiteReadings
from phaeton.control.settings import ControlSettings
from phaeton.loadpoint import Loadpoint
from phaeton.planner.paths import paths_before_start
from phaeton.planning.energy_meter import QuarterHourMeter
from phaeton.publisher import SnapshotPublisher
from phaeton.site_layout import ChargerEntry, charger_entries, circuits
from phaeton.snapshot import SiteSnapshot
from phaeton.vehicles.garage import Garage
from phaeton.venus.system_reader import GxSystemReader

if TYPE_CHECKING:
    from phaeton.fleet.site_client import FleetSite
    from phaeton.planner.service import PlannerService
    from phaeton.store.energy_history import EnergyHistoryFile, MoneyHistoryFile
    from phaeton.venus.ess_writer import EssWriter

log = logging.getLogger("phaeton.app")   # the service's log name, as before the split

SETTINGS_WAIT_S = 5.0             # how long start-up waits for com.victronenergy.settings
MIN_TICK_GAP_S = 0.02             # seconds between two ticks at the least
READ_SLACK_S = 3.0                # a charger read may take a tick and this much longer


class Site:
    """One GX site with its loadpoints (at least one); see the module docstring."""

    def __init__(self, config: Config, loadpoints: Sequence[Loadpoint], *, clock: Clock,
                 settings: SettingsClient, bus_address: str | None = None,
                 entries: Sequence[ChargerEntry] | None = None,
                 build_loadpoint: Callable[[Config, ChargerEntry], Loadpoint] | None = None):
        if not loadpoints:
            raise ValueError("a site needs at least one loadpoint")
        self.config = config
        self.loadpoints = list(loadpoints)
        entries = list(entries) if entries is not None else charger_entries(config)
        if [e.id for e in entries] != [lp.name for lp in self.loadpoints]:
            raise ValueError("the site's charger entries must match its loadpoints, in order")
        self.entries = entries
        self.circuits = circuits(config)
        self.build_loadpoint = build_loadpoint    # for chargers added by a saved config
        self._tick_lock = asyncio.Lock()          # a tick and a change of the chargers
        self.clock = clock
        self.bus_address = bus_address
        self.settings = settings
        # the site's own settings (fuse, voltage, staleness, the first charger's position)
        self.control_settings = ControlSettings.from_config(entries[0].config)
        self.system = GxSystemReader(clock=clock, bus_address=bus_address,
                                     on_change=self._gx_updated)
        # measured house load and PV per quarter hour: what the forecasts learn from
        self.energy_meter = QuarterHourMeter()
        # carbon: the intensity of the moment and the accounting (inactive with source none)
        self.carbon = CarbonFeed.from_config(config, clock=clock)
        # -- carbon budget: alerts as GX notifications, over the first charger's bus connection
        self.carbon.notifier = GxNotifier(lambda: self.loadpoints[0].evcharger.service.bus,
                                          lambda: "phaeton EV charging")
        # -- end carbon budget
        # The planner, its battery writer and the energy history the forecasts learn from need
        # numpy (about 12 MB, and seconds of a Cerbo's start-up): start() builds them right
        # after the D-Bus names are owned. Until then /Planner/* show `paths_before_start`.
        self.energy_history: EnergyHistoryFile | None = None
        self.money_history: MoneyHistoryFile | None = None
        self.ess_writer: EssWriter | None = None
        self.planner: PlannerService | None = None
        self.fleet: FleetSite | None = None      # when fleet.enabled, built with the planner
        self.snapshots: SnapshotPublisher[SiteSnapshot] = SnapshotPublisher()
        self.snapshots.attach(self._show_on_dbus)
        for loadpoint in self.loadpoints:
            loadpoint.evcharger.add_planner_paths(self.planner_state())
            loadpoint.on_wake(self.wake)
            self._take_manual_soc(loadpoint)
        self.garage = self._build_garage(config)     # the cars and their SoC sources

        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task] = []
        self.ticks = 0
        self._last_site_share: SiteShare | None = None
        self.rotation = RotationState()       # who charges or waits since when (several EVs)
        self.turn_s = float(config["control"]["turn_s"])
        self.fuse_wakes = 0          # steps run early because a GX update broke the fuse
        self.tick_timers: list[Callable[[float], None]] = []   # each tick's real duration (s): metrics

    # ---- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        for loadpoint in self.loadpoints:
            loadpoint.continue_session()
        await self.system.start()
        await self.settings.start()
        await self._attach_settings()
        for loadpoint in self.loadpoints:
            await loadpoint.register()
        # The drivers after the names, as the planner: owning the name does not wait for a
        # charger (it may be unreachable), and a driver's library (pymodbus, ocpp) loads with
        # its first connection. Their first connection attempts begin before the planner's
        # imports, which on a GX take seconds.
        for loadpoint in self.loadpoints:
            await loadpoint.start()
        await asyncio.sleep(0)
        self._build_planning()
        await self.planner.start()
        await self.garage.start()
        if self.fleet is not None:
            from phaeton.fleet.from_config import fleet_link
            self.fleet.connect(fleet_link(self.config["fleet"]))
        await self.carbon.start()
        self.settings.on_appeared(self._settings_appeared)
        self._tasks.append(asyncio.create_task(self._control_loop(), name="phaeton-control"))

    async def stop_control(self) -> None:
        """Stop the loop; every charger at its safe current, every running session saved."""
        self._stopping = True
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for loadpoint in self.loadpoints:
            await loadpoint.leave_safe()

    async def close(self) -> None:
        """The planner hands the battery back; drivers, D-Bus names and readers are released."""
        await self.carbon.stop()
        await self.garage.stop()
        try:
            if self.fleet is not None:
                await asyncio.wait_for(self.fleet.close(), 5)
        except Exception as exc:
            log.warning("while stopping the fleet client: %s", exc)
        try:
            if self.planner is not None:
                await asyncio.wait_for(self.planner.stop(), 10)
        except Exception as exc:
            log.warning("while stopping: %s", exc)
        for loadpoint in self.loadpoints:
            await loadpoint.close()
        for closer in (self.system.close, self.settings.close):
            try:
                await asyncio.wait_for(closer(), 10)
            except Exception as exc:
                log.warning("while stopping: %s", exc)

    async def _attach_settings(self) -> None:
        """Device instances and custom names through com.victronenergy.settings (the GX's or
        the simulator's). Without a settings service the configured instances are used."""
        try:
            await self.settings.wait_until_available(SETTINGS_WAIT_S)
        except Exception:
            for loadpoint in self.loadpoints:
                log.warning("no settings service; using device instance %s from the config",
                            loadpoint.device_instance)
            return
        for loadpoint in self.loadpoints:
            await loadpoint.attach_settings()

    async def _settings_appeared(self) -> None:
        """com.victronenergy.settings came (back) after start-up: what could not be set up
        without it is set up now (once), and the planner adds its settings."""
        for loadpoint in self.loadpoints:
            if not loadpoint.settings_attached:
                log.info("settings service appeared: allocating the device instance now")
                await loadpoint.attach_settings()
        await self.planner.settings_appeared()

    async def apply_config(self, config: Config) -> None:
        """A saved config: control settings, schedule and session price take effect now (what
        is under way carries on); the planner is rebuilt when its inputs changed."""
        old, self.config = self.config, config
        if self.build_loadpoint is not None and (old["chargers"] or config["chargers"]):
            await self._apply_chargers(old, config)
        entries = {entry.id: entry for entry in charger_entries(config)}
        if list(entries) != [lp.name for lp in self.loadpoints]:
            log.warning("chargers added, removed or renamed in the config: that takes a "
                        "restart; the running chargers keep their settings until then")
        self.control_settings = ControlSettings.from_config(
            next(iter(entries.values())).config)
        for loadpoint in self.loadpoints:
            entry = entries.get(loadpoint.name)
            if entry is None:
                continue
            loadpoint.update_settings(ControlSettings.from_config(entry.config),
                                      config["session"]["price_per_kwh"],
                                      config["session"]["currency"])
        if [(e.id, e.circuit) for e in entries.values()] == [(e.id, e.circuit) for e in self.entries]:
            self.entries = list(entries.values())
            self.circuits = circuits(config)
        if _planner_inputs(old) != _planner_inputs(config):
            await self._restart_planner(config)
        if old["fleet"] != config["fleet"] or _planner_inputs(old) != _planner_inputs(config):
            await self._restart_fleet(config)
        if old["vehicles"] != config["vehicles"] or list(old["chargers"]) != list(config["chargers"]):
            await self.garage.stop()
            self.garage = self._build_garage(config)
            await self.garage.start()
            log.info("cars and their SoC sources restarted with the saved configuration")
        self.carbon.budget = BudgetSettings.from_config(     # carbon budget: takes effect now
            (config.get("carbon") or {}).get("budget"))
        self._wake.set()

    async def _apply_chargers(self, old: Config, config: Config) -> None:
        """A saved `chargers` list: a charger that is gone or whose own keys changed is left at
        its safe current with its session saved and its service removed; a new (or changed)
        one is built, started and registered. The others carry on untouched."""
        wanted = charger_entries(config)
        before = {entry.id: (entry, lp) for entry, lp in zip(self.entries, self.loadpoints)}
        same = {entry.id for entry in wanted if entry.id in before
                and _charger_keys(before[entry.id][0]) == _charger_keys(entry)}
        async with self._tick_lock:
            for entry_id, (entry, loadpoint) in before.items():
                if entry_id not in same:
                    await loadpoint.leave_safe()
                    await loadpoint.close()
                    log.info("charger %s removed (its service is gone)", entry_id)
            loadpoints = []
            for entry in wanted:
                if entry.id in same:
                    loadpoints.append(before[entry.id][1])
                    continue
                assert self.build_loadpoint is not None
                loadpoint = self.build_loadpoint(config, entry)
                loadpoint.evcharger.add_planner_paths(self.planner_state())
                loadpoint.on_wake(self.wake)
                self._take_manual_soc(loadpoint)
                loadpoint.continue_session()
                if self.settings.available:
                    await loadpoint.attach_settings()
                await loadpoint.register()
                await loadpoint.start()
                loadpoints.append(loadpoint)
                log.info("charger %s added as %s", entry.id, loadpoint.evcharger.name)
            self.loadpoints[:] = loadpoints
            self.entries = wanted
            self.circuits = circuits(config)
            self._last_site_share = None

    # ---- the cars ------------------------------------------------------------------------------

    def _build_garage(self, config: Config) -> Garage:
        planner = config["planner"]
        return Garage(config["vehicles"], [entry.id for entry in charger_entries(config)],
                      config["data_dir"], clock=self.clock.time,
                      charge_efficiency=float(planner["ev"]["charge_efficiency_pct"]) / 100.0,
                      default_capacity_kwh=float(planner["ev"]["capacity_kwh"]))

    def _take_manual_soc(self, loadpoint: Loadpoint) -> None:
        """/Vehicle/ManualSoc on this charger's D-Bus service sets its car's SoC."""
        def manual_soc(value: float) -> bool:
            if loadpoint.car is None:
                return False        # no car at this charger: the write is refused
            self.garage.set_manual(loadpoint.car.name, value, loadpoint.last_measurement)
            self._wake.set()        # the next tick uses it
            return True
        loadpoint.evcharger.on_manual_soc = manual_soc

    def ev_target_soc_pct(self, charger: str) -> float | None:
        """The SoC Scheduled mode stops at for the car at `charger` (None: no planner yet, or
        the target is set in kWh)."""
        if self.planner is None:
            return None
        try:
            return self.planner.ev_target_soc_pct(charger if len(self.loadpoints) > 1 else None)
        except Exception:  # noqa: BLE001 - no target is no stop
            log.exception("planner: the car's target")
            return None

    # ---- the planner ---------------------------------------------------------------------------

    def planner_state(self) -> dict:
        """The /Planner/* paths' values now (before the planner started: its first values)."""
        if self.planner is None:
            return paths_before_start(self.entries[0].config["planner"])
        return self.planner.state()

    def _build_planning(self) -> None:
        """The energy history, the battery writer and the planner (see `__init__`)."""
        from phaeton.store.energy_history import (HISTORY_FILE, MONEY_HISTORY_FILE,
                                                  EnergyHistoryFile, MoneyHistoryFile)
        self.energy_history = EnergyHistoryFile(f"{self.config['data_dir']}/{HISTORY_FILE}")
        self.energy_history.load()
        self.money_history = MoneyHistoryFile(
            f"{self.config['data_dir']}/{MONEY_HISTORY_FILE}")
        self.money_history.load()
        self.fleet = self._build_fleet(self.config)
        self.ess_writer, self.planner = self._build_planner(self.config)

    def _build_fleet(self, config: Config):
        """The fleet site (docs/fleet.md) when `fleet.enabled`, else None."""
        if not config["fleet"]["enabled"]:
            return None
        from phaeton import __version__
        from phaeton.fleet.from_config import build_fleet_site
        return build_fleet_site(
            charger_entries(config)[0].config, [(e.id, e.config) for e in self.entries],
            clock=self.clock, readings=self.system.readings,
            blocked=lambda: self.planner.battery_blocked() if self.planner else None,
            local_steers=lambda: bool(self.planner and self.planner.local_steers()),
            version=__version__)

    def _build_planner(self, config: Config) -> tuple[EssWriter, PlannerService]:
        """The battery writer `planner.ess_control` asks for, and the planner using it. The
        planner plans for the first loadpoint's EV (with that charger's limits), or with
        several chargers for every car at once."""
        from phaeton.planner.service import PlannerService, build_ess_writer
        config = charger_entries(config)[0].config
        writer = build_ess_writer(config, self.settings, clock=self.clock,
                                  bus_address=self.bus_address, system_value=self.system.value)
        several = len(self.loadpoints) > 1
        planner = PlannerService(config, self.clock, self.settings, self.system.value, writer,
                                 ev_state=None if several else self.loadpoints[0].ev_state,
                                 car_states=self._car_states if several else None,
                                 carbon_series=self.carbon.series,
                                 history=self.energy_history.history)
        planner.fleet = self.fleet
        return writer, planner

    def _car_states(self) -> dict:
        """Every loadpoint's car as the planner sees it, by charger id."""
        return {loadpoint.name: loadpoint.ev_state() for loadpoint in self.loadpoints}

    async def _restart_planner(self, config: Config) -> None:
        """A new planner (and battery writer) for a changed config; the old one hands the
        battery back first."""
        await self.planner.stop()
        self.ess_writer, self.planner = self._build_planner(config)
        await self.planner.start()
        log.info("planner restarted with the saved configuration")

    async def _restart_fleet(self, config: Config) -> None:
        """The fleet client for a changed config (its broker, key or the site's limits): the
        old one disconnects; its schedules and outbox stay in the data dir for the new one."""
        if self.fleet is not None:
            await self.fleet.close()
        self.fleet = self._build_fleet(config)
        if self.fleet is not None:
            from phaeton.fleet.from_config import fleet_link
            self.fleet.connect(fleet_link(config["fleet"]))
        if self.planner is not None:
            self.planner.fleet = self.fleet

    # ---- the control loop ----------------------------------------------------------------------

    async def _control_loop(self) -> None:
        tick_s = float(self.config["control"]["tick_s"])
        while not self._stopping:
            started = self.clock.monotonic()
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("control tick failed; the next one runs as usual")
            ended = self.clock.monotonic()
            remaining = tick_s - (ended - started)
            if remaining > 0 and not self._wake.is_set():
                try:
                    await asyncio.wait_for(self._wake.wait(), remaining / self.clock.speed)
                except asyncio.TimeoutError:
                    pass
            # At least MIN_TICK_GAP_S between the end of a tick and the next, however long the
            # tick took or however often it is woken: D-Bus answers, the web server and
            # SIGTERM must never starve. A wake after a quiet spell (a user's write) runs at
            # once; only the loop's turn is given then.
            gap_s = MIN_TICK_GAP_S - (self.clock.monotonic() - ended)
            await asyncio.sleep(max(0.0, gap_s) / self.clock.speed)
            self._wake.clear()

    def wake(self) -> None:
        """Run the next tick now (a user's write takes effect within one tick)."""
        self._wake.set()

    def _gx_updated(self) -> None:
        """A GX update between ticks: when a load spike leaves less fuse headroom than a
        charger was told, the next step runs now (it cuts), not at the next tick."""
        if self._wake.is_set():
            return
        watching = [lp for lp in self.loadpoints if lp.applied_current_a]
        if not watching:
            return
        readings = self.system.readings()
        shares = self._share(readings, [lp.last_measurement for lp in self.loadpoints])
        if any(loadpoint.fuse_cut_needed(readings, shares.get(loadpoint.name))
               for loadpoint in watching):
            self.fuse_wakes += 1
            self._wake.set()

    async def tick(self) -> SiteSnapshot:
        """One control tick (see the module docstring); returns the snapshot it published."""
        async with self._tick_lock:
            started = time.perf_counter()
            snapshot = await self._tick()
            for timer in self.tick_timers:
                timer(time.perf_counter() - started)
            return snapshot

    async def _tick(self) -> SiteSnapshot:
        timeout_s = float(self.config["control"]["tick_s"]) / self.clock.speed + READ_SLACK_S
        chargers = [await loadpoint.read(timeout_s) for loadpoint in self.loadpoints]
        readings = self.system.readings()
        now = self.clock.time()
        price = self.planner.import_price_now(now)
        shares = self._share(readings, [reading.measurement for reading in chargers])
        carbon = self.carbon.supply_g_per_kwh(now, self._site_flow(shares))
        several = len(self.loadpoints) > 1
        if self.fleet is not None:
            self.fleet.tick(now)
        for loadpoint, reading in zip(self.loadpoints, chargers):
            loadpoint.car = self._observe_car(loadpoint.name, reading.measurement)
            allowance_w = self._fleet_ev_w(now, loadpoint.name, reading.measurement)
            if allowance_w is None:
                allowance_w = self.planner.ev_allowance_w(now,
                                                          loadpoint.name if several else None)
            await loadpoint.step(reading, readings, allowance_w,
                                 share=shares.get(loadpoint.name), price_per_kwh=price,
                                 carbon_g_per_kwh=carbon,
                                 target_soc_pct=self.ev_target_soc_pct(loadpoint.name))
        self._record_energy(readings, shares)
        snapshot = self.snapshot(readings)
        self.snapshots.publish(snapshot)
        self.ticks += 1
        return snapshot

    def _observe_car(self, charger: str, measurement: ChargerMeasurement | None):
        try:
            return self.garage.observe(charger, measurement)
        except Exception:  # noqa: BLE001 - a car fault leaves the charger to its mode
            log.exception("cars: the car at charger %s", charger)
            return None

    def _fleet_ev_w(self, now: float, charger: str,
                    measurement: ChargerMeasurement | None) -> float | None:
        """A fleet EV window's power for this charger now (W), or None."""
        if self.fleet is None:
            return None
        try:
            energy = measurement.lifetime_energy_kwh if measurement is not None else None
            return self.fleet.ev_allowance_w(now, charger, energy)
        except Exception:  # noqa: BLE001 - a fleet fault leaves the charger to its mode
            log.exception("fleet: EV window")
            return None

    def _share(self, readings: SiteReadings | None,
               measurements: Sequence[ChargerMeasurement | None]) -> dict[str, LoadpointShare]:
        """Each loadpoint's circuits headroom, surplus and green share from one GX reading and
        every charger's measurement (in grid phase order: a single-phase charger wired to L2
        draws on the grid's L2); empty when the GX has not been read yet."""
        if readings is None:
            return {}
        draws = {}
        for entry, loadpoint, measurement in zip(self.entries, self.loadpoints, measurements):
            ev = EvReadings.from_measurement(measurement) if measurement is not None else EvReadings()
            top_a = min(loadpoint.choices.max_current_a, loadpoint.limits.max_current_a)
            max_w = top_a * entry.phases * self.control_settings.nominal_voltage_v
            draws[entry.id] = LoadpointDraw(self.circuits[entry.circuit],
                                            on_grid_phases(ev, self._grid_phase(entry)),
                                            priority=entry.priority, max_w=max_w)
        try:
            site_share = share_site(readings, draws, self.control_settings,
                                    evs_known=all(m is not None for m in measurements))
        except ValueError as exc:      # readings the share-out cannot use: each EV alone
            log.error("the site's share-out failed (%s); each charger checks the main fuse "
                      "from its own EV this tick", exc)
            self._last_site_share = None
            return {}
        if len(self.entries) > 1:
            claims = [self._claim(entry, lp, draws[entry.id])
                      for entry, lp in zip(self.entries, self.loadpoints) if draws[entry.id].sharing]
            site_share = allocate_site(site_share, draws, claims, self.control_settings,
                                       self.clock.monotonic(), self.rotation, self.turn_s)
            site_share = hold_raises_for_cuts(
                site_share, claims,
                {lp.name: lp.applied_current_a for lp in self.loadpoints},
                {entry.id: _highest_current(m) for entry, m in zip(self.entries, measurements)})
        self._last_site_share = site_share
        return {entry.id: in_charger_phases(site_share.loadpoints[entry.id], self._grid_phase(entry))
                for entry in self.entries}

    def _claim(self, entry: ChargerEntry, loadpoint: Loadpoint, draw: LoadpointDraw) -> Claim:
        """What one plugged-in loadpoint asks of the circuits (in grid phases)."""
        phases_in_use = loadpoint.phases_in_use or entry.phases
        phases = (0, 1, 2) if phases_in_use == 3 else (self._grid_phase(entry),)
        return Claim(entry.id, draw.circuit, phases, loadpoint.limits.min_current_a,
                     loadpoint.wish_a(), entry.priority)

    @staticmethod
    def _grid_phase(entry: ChargerEntry) -> int:
        """The grid phase a charger's own L1 is on (0 unless it is single-phase)."""
        return entry.grid_phase if entry.phases == 1 else 0

    def _record_energy(self, readings: SiteReadings, shares: dict[str, LoadpointShare]) -> None:
        """House load (without the EVs) and PV of this tick into the quarter-hour history;
        stale or missing readings count as not measured. (The power flow is the site's, with
        every EV, from this tick's share-out.)"""
        site_share = self._last_site_share if shares else None
        flow = site_share.snapshot if site_share is not None else None
        fresh = (readings is not None and flow is not None
                 and not readings.is_stale(self.control_settings.stale_after_s))
        slots = self.energy_meter.add(self.clock.time(),
                                      flow.house_total_w if fresh else None,
                                      flow.pv_total_w if fresh else None,
                                      flow.grid_total_w if fresh else None)
        if slots:
            self.energy_history.append(slots)
            if self.money_history is not None and self.planner is not None:
                self.money_history.append(slots, self.planner.price_at)
        # carbon accounting per quarter hour (nothing without a carbon source)
        self.carbon.record(self.clock.time(), flow if fresh else None,
                           readings.battery_soc_pct if readings is not None else None)

    def _site_flow(self, shares: dict[str, LoadpointShare]):
        """This tick's power flow of the whole site (None: the share-out did not run)."""
        site_share = self._last_site_share if shares else None
        return site_share.snapshot if site_share is not None else None

    # ---- the snapshot --------------------------------------------------------------------------

    def snapshot(self, readings: SiteReadings | None) -> SiteSnapshot:
        """The site and its loadpoints as they are now (`readings` None: before the first
        tick)."""
        return SiteSnapshot(
            time_s=self.clock.time(), readings=readings,
            fuse_a=float(self.config["site"]["fuse_a"]),
            nominal_voltage_v=float(self.config["site"]["nominal_voltage_v"]),
            stale_after_s=self.control_settings.stale_after_s,
            planner_state=self.planner_state(),
            loadpoints=tuple(loadpoint.snapshot() for loadpoint in self.loadpoints),
            carbon=self.carbon.view(self.clock.time()))    # carbon budget: None without a source

    def _show_on_dbus(self, snapshot: SiteSnapshot) -> None:
        """Each loadpoint's D-Bus service shows its part of the snapshot (one ItemsChanged)."""
        for loadpoint, part in zip(self.loadpoints, snapshot.loadpoints):
            loadpoint.evcharger.show(part, snapshot.planner_state, snapshot.carbon)


def _planner_inputs(config: Config) -> tuple:
    """The parts of the config the planner is built from."""
    data = config_to_dict(config)
    return tuple(data.get(section) for section in ("planner", "site", "charger", "chargers",
                                                   "data_dir"))


def _charger_keys(entry: ChargerEntry) -> tuple:
    """What a loadpoint is built from (a change rebuilds it): its charger's keys, its name and
    instance. (Its circuit, phase and priority are the site's to use: they change live.)"""
    return config_to_dict(entry.config["charger"]), entry.custom_name, entry.instance


def _highest_current(measurement: ChargerMeasurement | None) -> float | None:
    """The highest phase current a charger reads (None: no reading)."""
    if measurement is None:
        return None
    currents = [a for a in measurement.current_a if a is not None]
    return max(currents) if currents else None
