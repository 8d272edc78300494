"""A WebBackend made of real parts, for the web UI tests and the web benchmark.

- the six writeable paths live on a real `velib.service.VeDbusService` registered on the
  (private) system bus, with the reference ranges, so `write()` gets D-Bus SetValue semantics;
  one service per charger (`create(..., chargers=2)` for two);
- sessions in a real `SessionStore` (SQLite file);
- the config in a real YAML file, validated and saved with `phaeton.config`;
- log records from a real `LogBuffer` attached to the "phaeton" logger.

`publish(**changes)` changes the status (nested keys with dicts: power={"pv_w": 3000}) and
hands the new snapshot to every subscriber, like one control tick of the service;
`publish_charger(id, **changes)` changes one charger's part.
"""
from __future__ import annotations

import asyncio
import copy
import logging
import time
from pathlib import Path
from typing import Any

from phaeton.config import ConfigError, config_to_dict, load_config, save_config
from phaeton.logbuffer import LogBuffer
from phaeton.store.power_history import as_columns
from phaeton.store.sessions import SessionStore
from velib.service import VeDbusService

SERVICE_NAME = "com.victronenergy.evcharger.phaeton_web_test"

STATUS_OF_PATH = {"/Mode": "mode", "/StartStop": "start_stop", "/SetCurrent": "set_current_a",
                  "/MaxCurrent": "max_current_a", "/SetPhases": "phases",
                  "/AutoStart": "auto_start"}

#: The keys of one charger's part of the status (the top level has the first charger's).
CHARGER_KEYS = ("mode", "start_stop", "set_current_a", "min_current_a", "max_current_a",
                "charger_max_current_a", "phases", "phases_in_use", "auto_start", "status_code",
                "status_text", "reason", "bound_by", "charger", "surplus_w", "session")
#: The site's keys of the status.
SITE_KEYS = ("time", "power", "readings_stale", "readings_age_s", "carbon")


def initial_status(config: dict) -> dict:
    """A plausible status: charging 11 kW on 3 phases from PV and grid."""
    charger = config["charger"]
    return {
        "time": time.time(), "mode": 0, "start_stop": 1, "set_current_a": 16.0,
        "min_current_a": float(charger["min_current_a"]),
        "max_current_a": float(charger["max_current_a"]),
        "charger_max_current_a": float(charger["max_current_a"]), "phases": 3,
        "phases_in_use": 3,
        "auto_start": 1, "status_code": 2, "status_text": "Charging",
        "reason": "manual: 16 A requested", "bound_by": "user",
        "charger": {"connected": True, "connection": "Modbus TCP 127.0.0.1", "model": "NG910",
                    "serial": "ACE0001", "firmware": "6.4.0", "error": None, "name": ""},
        "power": {"pv_w": 4200.0, "grid_w": [2400.0, 2300.0, 2300.0],
                  "grid_current_a": [10.4, 10.0, 10.0], "fuse_a": float(config["site"]["fuse_a"]),
                  "house_w": 650.0, "battery_w": -500.0, "battery_soc_pct": 64.0,
                  "ev_w": 11040.0},
        "readings_stale": False, "readings_age_s": 0.4, "surplus_w": None, "carbon": None,
        "current_a": [15.9, 16.0, 15.8], "offered_current_a": 16.0, "car_full": False,
        "vehicle_soc_pct": None, "car": None,
        "session": {"active": True, "energy_kwh": 7.25, "duration_s": 2520.0, "cost": 1.81,
                    "currency": "EUR", "solar_share": 0.38, "peak_w": 11100.0},
    }


def further_charger_status(config: dict, number: int) -> dict:
    """A plausible status of the charger `number` (1, 2, ...) beside the first: Auto, charging
    3.68 kW on one phase from solar surplus, its session just begun."""
    charger = config["charger"]
    return {
        "mode": 1, "start_stop": 1, "set_current_a": 16.0,
        "min_current_a": float(charger["min_current_a"]),
        "max_current_a": float(charger["max_current_a"]),
        "charger_max_current_a": float(charger["max_current_a"]), "phases": 1,
        "phases_in_use": 1, "auto_start": 1, "status_code": 2, "status_text": "Charging",
        "reason": "auto: 3.7 kW of solar surplus", "bound_by": "surplus",
        "charger": {"connected": True, "connection": f"Modbus TCP 127.0.0.{number + 1}",
                    "model": "NG910", "serial": f"ACE000{number + 1}", "firmware": "6.4.0",
                    "error": None, "name": ""},
        "ev_w": 3680.0, "surplus_w": 3700.0,
        "session": {"active": True, "energy_kwh": 0.5, "duration_s": 480.0, "cost": 0.0,
                    "currency": "EUR", "solar_share": 1.0, "peak_w": 3690.0},
    }


class WebBackendForTests:
    """A real-parts WebBackend; create with `await WebBackendForTests.create(tmp_path)`.

    One charger (id "0") unless `create(..., chargers=...)` asks for more: each charger has its
    own `VeDbusService` (`services[id]`; `service` is the first's), and the status has every
    charger under "chargers" like the real service's (web/status.py)."""

    def __init__(self, services: dict[str, VeDbusService], store: SessionStore,
                 config_file: Path, log_buffer: LogBuffer):
        self.services = services
        self.service = next(iter(services.values()))
        self.store = store
        self.config_file = config_file
        self.log_buffer = log_buffer
        self.cfg = config_to_dict(load_config(config_file))
        ids = list(services)
        first = initial_status(self.cfg)
        self._site = {key: first.pop(key) for key in SITE_KEYS}
        first["ev_w"] = self._site["power"]["ev_w"]
        self._chargers: dict[str, dict] = {ids[0]: {"id": ids[0], **first}}
        for number, charger_id in enumerate(ids[1:], start=1):
            self._chargers[charger_id] = {"id": charger_id,
                                          **further_charger_status(self.cfg, number)}
        self._status = self._compose()
        self._subscribers: set[asyncio.Queue] = set()
        #: every write: (path, value, code); `charger_writes` has the charger id first.
        self.writes: list[tuple[str, Any, int]] = []
        self.charger_writes: list[tuple[str, str, Any, int]] = []
        self._saved_log_level = logging.NOTSET
        self.plan_data: dict | None = None
        self.realised_data: dict | None = None
        self.history_rows: list[dict] = []

    @classmethod
    async def create(cls, directory: Path, config_text: str = "",
                     bus_address: str | None = None,
                     chargers: int | list[str] = 1) -> "WebBackendForTests":
        """`chargers`: how many (ids "0", "1", ...) or their ids (the first is the one of the
        single-charger API). The first charger's service is SERVICE_NAME, the others'
        SERVICE_NAME + "_" + their id."""
        ids = [str(n) for n in range(chargers)] if isinstance(chargers, int) else list(chargers)
        if not ids or len(set(ids)) != len(ids):
            raise ValueError(f"chargers must be at least one, with distinct ids, got {chargers!r}")
        config_file = Path(directory) / "config.yaml"
        if not config_file.exists():
            config_file.write_text(config_text or
                                   "charger:\n  protocol: alfen\n  alfen:\n    host: 127.0.0.1\n",
                                   encoding="utf-8")
        cfg = load_config(config_file)
        services: dict[str, VeDbusService] = {}
        try:
            for number, charger_id in enumerate(ids):
                name = SERVICE_NAME if number == 0 else f"{SERVICE_NAME}_{charger_id}"
                services[charger_id] = await _make_service(
                    name, bus_address, cfg["charger"], first=number == 0)
        except BaseException:
            for svc in services.values():
                await svc.close()
            raise
        store = SessionStore(Path(directory) / "sessions.db", loadpoint=ids[0])
        log_buffer = LogBuffer(capacity=500)
        logger = logging.getLogger("phaeton")
        logger.addHandler(log_buffer)
        made = cls(services, store, config_file, log_buffer)
        made._saved_log_level = logger.level
        logger.setLevel(logging.DEBUG)
        return made

    async def close(self) -> None:
        logger = logging.getLogger("phaeton")
        logger.removeHandler(self.log_buffer)
        logger.setLevel(self._saved_log_level)
        self.store.close()
        for svc in self.services.values():
            await svc.close()

    # ---- simulation side -----------------------------------------------------------------

    def publish(self, **changes: Any) -> dict:
        """Apply `changes` to the status as the single-charger API shows it (dict values merge
        one level deep; charger keys are the first charger's; `power={"ev_w": w}` sets the
        first charger's power), hand the snapshot out."""
        first = next(iter(self._chargers))
        charger_changes = {k: v for k, v in changes.items() if k not in SITE_KEYS}
        power = changes.get("power")
        if isinstance(power, dict) and "ev_w" in power:
            charger_changes["ev_w"] = power["ev_w"]
        _merge(self._chargers[first], charger_changes)
        _merge(self._site, {k: v for k, v in changes.items() if k in SITE_KEYS})
        return self._hand_out()

    def publish_charger(self, charger_id: str, **changes: Any) -> dict:
        """Apply `changes` to one charger's status (its keys, and `ev_w`), hand it out."""
        _merge(self._chargers[charger_id], changes)
        return self._hand_out()

    def _compose(self) -> dict:
        chargers = [copy.deepcopy(c) for c in self._chargers.values()]
        status = {k: v for k, v in chargers[0].items() if k not in ("id", "ev_w")}
        status.update(copy.deepcopy(self._site))
        ev_w = [c.get("ev_w") for c in chargers]
        status["power"]["ev_w"] = (None if all(w is None for w in ev_w)
                                   else float(sum(w for w in ev_w if w is not None)))
        status["chargers"] = chargers
        return status

    def _hand_out(self) -> dict:
        self._site["time"] = time.time()
        status = self._compose()
        self._status = status
        for queue in list(self._subscribers):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(status)
        return status

    # ---- WebBackend --------------------------------------------------------------------

    def status(self) -> dict:
        return self._status

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=4)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._subscribers.discard(queue)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    async def write(self, path: str, value: Any, charger_id: str | None = None) -> int:
        if charger_id is None:
            charger_id = next(iter(self.services))
        service = self.services[charger_id]  # KeyError for an unknown id, as the protocol says
        if path not in STATUS_OF_PATH and path != "/Vehicle/ManualSoc":
            return 1
        code = service.write(path, value)
        self.writes.append((path, value, code))
        self.charger_writes.append((charger_id, path, value, code))
        if code == 0 and path in STATUS_OF_PATH:   # the car's entry shows in `car` next tick
            self.publish_charger(charger_id, **{STATUS_OF_PATH[path]: service[path]})
        return code

    def charger_ids(self) -> list[str]:
        return list(self.services)

    def sessions(self) -> SessionStore:
        return self.store

    def config_path(self) -> str:
        return str(self.config_file)

    def config(self) -> dict:
        return copy.deepcopy(self.cfg)

    async def apply_config(self, data: dict) -> list:
        try:
            config = save_config(self.config_file, data)
        except ConfigError as exc:
            return list(exc.problems)
        self.cfg = config_to_dict(config)
        logging.getLogger("phaeton.web_test").info("configuration saved")
        return []

    def schedule(self) -> list[dict]:
        """The running windows (a test helper; the web UI reads the file)."""
        return copy.deepcopy(self.cfg["schedule"]["windows"])

    def log_records(self, min_level: str = "INFO", limit: int = 500) -> list[dict]:
        return self.log_buffer.records(min_level, limit)

    async def power_history(self, since_s: float) -> dict:
        """`history_rows` (rows as store/power_history writes them) from `since_s` on."""
        return as_columns([r for r in self.history_rows if r["t"] >= since_s],
                          self.charger_ids())

    def plan(self) -> dict | None:
        return copy.deepcopy(self.plan_data)

    def realised(self) -> dict | None:
        return copy.deepcopy(self.realised_data)


def _merge(target: dict, changes: dict) -> None:
    """`target` updated with `changes`; dict values merge one level deep."""
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            target[key] = {**target[key], **value}
        else:
            target[key] = value


async def _make_service(name: str, bus_address: str | None, charger: dict, *,
                        first: bool) -> VeDbusService:
    """One charger's six writeable paths with the reference ranges, registered on the bus.
    The first charger starts as the single-charger tests expect (Manual, 3 phases); the others
    as `further_charger_status` (Auto, 1 phase)."""
    svc = VeDbusService(name, bus_address)
    svc.add_path("/Mode", 0 if first else 1, writeable=True, kind=int, min=0, max=2)
    svc.add_path("/StartStop", 1, writeable=True, kind=int, min=0, max=1)
    svc.add_path("/SetCurrent", 16.0, writeable=True, kind=float, min=0.0,
                 max=float(charger["max_current_a"]))
    svc.add_path("/MaxCurrent", float(charger["max_current_a"]), writeable=True, kind=float,
                 min=float(charger["min_current_a"]), max=float(charger["max_current_a"]))
    svc.add_path("/SetPhases", 3 if first else 1, writeable=True, kind=int, min=1, max=3,
                 on_change=lambda _path, value: value in (1, 3))
    svc.add_path("/AutoStart", 1, writeable=True, kind=int, min=0, max=1)
    svc.add_path("/Vehicle/ManualSoc", None, writeable=True, kind=float, min=0.0, max=100.0,
                 nullable=True)
    await svc.register()
    return svc
