"""The composition root: builds phaeton's parts from the config, and is the web UI's backend.

`Phaeton` builds one `Loadpoint` per charger (driver, controller, user choices, D-Bus service,
sessions; `phaeton/loadpoint.py`) and the `Site` around them (GX reader, settings, planner,
energy history, the control loop; `phaeton/site.py`), starts and stops them, and answers the web
UI (`phaeton.web.backend.WebBackend`) from the snapshot the site publishes every tick
(`phaeton/snapshot.py`, `phaeton/web/status.py`). SIGTERM stops cleanly: every charger is left
at its safe current, running sessions are saved, the D-Bus names released.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from functools import partial
from typing import TYPE_CHECKING, Any

from velib.address import missing_socket, system_bus_address
from velib.settings import SettingsClient

from phaeton.chargers.factory import build_charger
from phaeton.clock import REAL_CLOCK, Clock
from phaeton.config import Config, ConfigError, config_to_dict, load_config, save_config
from phaeton.control.controller import ChargeController, Mode
from phaeton.control.session import SessionTracker
from phaeton.control.settings import ControlSettings
from phaeton.loadpoint import Loadpoint
from phaeton.logbuffer import LogBuffer
from phaeton.site import Site
from phaeton.site_layout import ChargerEntry, charger_entries
from phaeton.snapshot import SiteSnapshot
from phaeton.store.power_history import PowerHistory, as_columns
from phaeton.store.sessions import SessionStore
from phaeton.store.state_file import StateFile
from phaeton.venus.evcharger_service import ChargerLimits, EvChargerService, UserChoices
from phaeton.web.on_demand import OnDemandWebServer
from phaeton.web.status import status_of

if TYPE_CHECKING:
    from phaeton.metrics import Metrics
    from phaeton.update.in_service import UpdateService

log = logging.getLogger("phaeton.app")


class Phaeton:
    """One phaeton service. `await start()`, `await stop()`; also the web UI's backend."""

    def __init__(self, config: Config, *, config_path: str | None = None,
                 clock: Clock = REAL_CLOCK, bus_address: str | None = None,
                 log_buffer: LogBuffer | None = None):
        self.cfg = config
        self._config_path = config_path
        self.clock = clock
        self.bus_address = bus_address
        self.log_buffer = log_buffer or LogBuffer()
        self.data_dir = str(config["data_dir"])
        os.makedirs(self.data_dir, exist_ok=True)

        entries = charger_entries(config)
        self.session_store = SessionStore(os.path.join(self.data_dir, "sessions.sqlite"),
                                          history_limit=config["session"]["history_limit"],
                                          loadpoint=entries[0].id)
        self._settings = SettingsClient(clock=clock, bus_address=bus_address)
        loadpoints = [self._build_loadpoint(config, entry) for entry in entries]
        self.site = Site(config, loadpoints, clock=clock, settings=self._settings,
                         bus_address=bus_address, entries=entries,
                         build_loadpoint=self._build_loadpoint)
        self.flow_history = PowerHistory(os.path.join(self.data_dir, "power_history.jsonl"))
        self.site.snapshots.attach(self.flow_history.observe)            # the charts
        self._status_cache: tuple[SiteSnapshot | None, dict] = (None, {})
        self._stopping = False
        self.web_server: OnDemandWebServer | None = None
        # built once the D-Bus name is owned (`start`): none of it is needed before
        self.metrics: Metrics | None = None             # /metrics, /health
        self.updates: UpdateService | None = None       # /api/update
        self._update_watch: asyncio.Task | None = None

    @property
    def loadpoints(self) -> list[Loadpoint]:
        """The site's loadpoints, one per charger, in config order."""
        return self.site.loadpoints

    def _build_loadpoint(self, site_config: Config, entry: ChargerEntry) -> Loadpoint:
        """One charger as a loadpoint. First run: a plain wallbox (Manual, started, full
        current; the circuits still cap it), which is what an owner expects when the car is
        plugged in; then the user's choices from `<data_dir>/state.json` (with a `chargers`
        list: `state_<id>.json`)."""
        config = entry.config
        charger_cfg = config["charger"]
        charger = build_charger(config, self.clock)
        limits = ChargerLimits(
            min_current_a=float(charger_cfg["min_current_a"]),
            max_current_a=float(charger_cfg["max_current_a"]),
            wired_phases=int(charger_cfg["phases"]))
        defaults = UserChoices(
            mode=int(Mode.MANUAL), start_stop=1, set_current_a=float(charger_cfg["max_current_a"]),
            max_current_a=float(charger_cfg["max_current_a"]), phases=int(charger_cfg["phases"]),
            auto_start=1, position=int(charger_cfg["position"]),
            custom_name=entry.custom_name)
        make_service = partial(EvChargerService, entry.id, device_instance=entry.instance,
                               connection=charger.connection_text, bus_address=self.bus_address)
        state_name = f"state_{entry.id}.json" if site_config["chargers"] else "state.json"
        return Loadpoint(
            entry.id, charger, ChargeController(ControlSettings.from_config(config)),
            limits=limits, default_choices=defaults,
            state_file=StateFile(os.path.join(self.data_dir, state_name)),
            tracker=SessionTracker(config["session"]["price_per_kwh"],
                                   config["session"]["currency"]),
            session_store=self.session_store, make_service=make_service, clock=self.clock,
            settings=self._settings, device_instance=entry.instance)

    # ---- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        await self.site.start()
        from phaeton.metrics import Metrics
        from phaeton.update.in_service import UpdateService
        # before the control loop's first tick, which the site has only scheduled
        self.metrics = Metrics.for_site(self.site, self.session_store)
        self.updates = UpdateService(self.cfg, self._config_path)
        await self._start_web()
        self._update_watch = asyncio.create_task(self.updates.watch(), name="phaeton-update")
        for loadpoint in self.loadpoints:
            log.info("phaeton running as %s (charger: %s)", loadpoint.evcharger.name,
                     loadpoint.charger.connection_text)

    async def stop(self) -> None:
        """Leave the chargers at their safe current, save the sessions, release the names."""
        if self._stopping:
            return
        self._stopping = True
        if self._update_watch is not None:
            self._update_watch.cancel()
        await self.site.stop_control()
        if self.web_server is not None:
            await self.web_server.close()
        await self.site.close()
        self.flow_history.flush()
        self.session_store.close()
        log.info("phaeton stopped")

    async def _start_web(self) -> None:
        """The web UI's port is bound now; aiohttp is loaded at the first visit
        (`phaeton/web/on_demand.py`), so a service nobody browses does not carry it."""
        web = self.cfg["web"]
        if not web["enabled"]:
            return
        server = OnDemandWebServer(web["host"], web["port"], self._build_web_runner,
                                   _serve_on_socket)
        try:
            server.listen()
        except OSError as exc:
            log.error("web UI could not listen on %s:%s: %s", web["host"], web["port"], exc)
            return
        self.web_server = server
        log.info("web UI on http://%s:%s/", web["host"], web["port"])

    async def _build_web_runner(self):
        from aiohttp import web as aioweb

        from phaeton.web.app import create_web_app
        app = create_web_app(self, config_to_dict(self.cfg["web"]))
        runner = aioweb.AppRunner(app, access_log=None)
        await runner.setup()
        return runner

    # ---- the web UI's backend (phaeton.web.backend.WebBackend) -------------------------------

    def status(self) -> dict:
        """The last tick's snapshot as the web UI's status; before the first tick the owner's
        choices and limits, the rest None (the same keys)."""
        snapshot = self.site.snapshots.latest
        if snapshot is None:
            return status_of(self.site.snapshot(None))
        cached, status = self._status_cache
        if cached is not snapshot:
            status = status_of(snapshot)
            self._status_cache = (snapshot, status)
        return status

    def subscribe(self) -> asyncio.Queue:
        return self.site.snapshots.subscribe(view=status_of)

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self.site.snapshots.unsubscribe(queue)

    async def write(self, path: str, value: Any, charger_id: str | None = None) -> int:
        """A SetValue on one charger's service (None: the first charger); KeyError for an
        unknown id."""
        return self.loadpoint(charger_id).write(path, value)

    def charger_ids(self) -> list[str]:
        """The chargers' ids, in config order (the first is the single-charger API's)."""
        return [loadpoint.name for loadpoint in self.loadpoints]

    def loadpoint(self, charger_id: str | None = None) -> Loadpoint:
        """The loadpoint of `charger_id` (None: the first); KeyError when there is none."""
        if charger_id is None:
            return self.loadpoints[0]
        for loadpoint in self.loadpoints:
            if loadpoint.name == charger_id:
                return loadpoint
        raise KeyError(charger_id)

    def sessions(self) -> SessionStore:
        return self.session_store

    def config_path(self) -> str:
        return self._config_path or ""

    def config(self) -> dict:
        return config_to_dict(self.cfg)

    async def apply_config(self, data: dict) -> list:
        """Validate, save atomically (with a backup) and apply what can change live: control
        settings and schedule (what is under way carries on), session price and currency, the
        planner (restarted with the new config when its inputs changed), and with a `chargers`
        list the chargers themselves (added, removed or changed ones get or lose their D-Bus
        service now, the others carry on). The one-charger `charger` and `device` sections,
        the web server and logging need a restart."""
        if not self._config_path:
            from phaeton.config import ConfigProblem
            return [ConfigProblem("", None, "phaeton was started without a config file")]
        try:
            config = save_config(self._config_path, data)
        except ConfigError as exc:
            return list(exc.problems)
        self.cfg = config
        if self.updates is not None:
            self.updates.reconfigure(config)
        await self.site.apply_config(config)
        log.info("configuration saved and applied (changes to the one-charger sections, web "
                 "and logging need a restart)")
        return []

    def schedule(self) -> list[dict]:
        return config_to_dict(self.cfg).get("schedule", {}).get("windows", [])

    async def set_schedule(self, windows: list[dict]) -> list:
        data = config_to_dict(self.cfg)
        data.setdefault("schedule", {})["windows"] = windows
        return await self.apply_config(data)

    def log_records(self, min_level: str = "INFO", limit: int = 500) -> list[dict]:
        return self.log_buffer.records(min_level, limit)

    async def power_history(self, since_s: float) -> dict:
        """The site's power flow from `since_s` on (the dashboard's chart)."""
        return as_columns(await self.flow_history.read(since_s), self.charger_ids())

    def plan(self) -> dict | None:
        """The current plan (the `phaeton plan --json` shape) for the web UI; None before
        the first plan."""
        return self.site.planner.plan_dict()

    def realised(self) -> dict | None:
        """What the house paid per day against plain self-consumption (the web UI's chart)."""
        history = self.site.money_history
        if history is None:
            return None
        from phaeton.replay.loop import battery_of
        from phaeton.replay.realised import realised_by_day
        result = realised_by_day(history.rows, battery_of(self.cfg),
                                 str(self.cfg["planner"]["site"]["tz"]))
        if result is not None:
            result["currency"] = str(self.cfg["session"]["currency"])
        return result


async def _serve_on_socket(runner, sock) -> None:
    from aiohttp import web as aioweb
    await aioweb.SockSite(runner, sock).start()


# ---- command line -----------------------------------------------------------------------------

def setup_logging(level: str, buffer: LogBuffer) -> None:
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(getattr(logging, str(level).upper(), logging.INFO))
    console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(console)
    buffer.setLevel(logging.INFO)
    root.addHandler(buffer)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


async def run_service(config: Config, config_path: str | None, log_buffer: LogBuffer) -> int:
    address = system_bus_address()
    socket_path = missing_socket(address)
    if socket_path is not None:       # before anything is created on disk
        log.error("phaeton could not start: no system D-Bus at %s (socket %s does not exist); "
                  "the address comes from DBUS_SYSTEM_BUS_ADDRESS when set, else the standard "
                  "socket. On a GX it is always there; on a PC try `phaeton demo`.",
                  address, socket_path)
        return 1
    service = Phaeton(config, config_path=config_path, log_buffer=log_buffer)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await service.start()
    except Exception as exc:
        bus = f" (system D-Bus at {address})" if isinstance(exc, OSError) else ""
        log.error("phaeton could not start%s: %s", bus, exc)
        await service.stop()
        return 1
    await stop.wait()
    log.info("stopping")
    await service.stop()
    return 0


def run_from_cli(args) -> int:
    """`phaeton run --config PATH`."""
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            where = f"{args.config}:{problem.line}" if problem.line else args.config
            print(f"{where}: {problem.key_path}: {problem.message}", file=sys.stderr)
        print("phaeton: refusing to start with an invalid config", file=sys.stderr)
        return 1
    buffer = LogBuffer()
    setup_logging(config["logging"]["level"], buffer)
    return asyncio.run(run_service(config, args.config, buffer))
