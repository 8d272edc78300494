"""A WebBackend made of real parts, for the web UI tests and the web benchmark.

- the six writeable paths live on a real `velib.service.VeDbusService` registered on the
  (private) system bus, with the reference ranges, so `write()` gets D-Bus SetValue semantics;
- sessions in a real `SessionStore` (SQLite file);
- the config in a real YAML file, validated and saved with `phaeton.config`;
- log records from a real `LogBuffer` attached to the "phaeton" logger.

`publish(**changes)` changes the status (nested keys with dicts: power={"pv_w": 3000}) and
hands the new snapshot to every subscriber, like one control tick of the service.
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
from phaeton.store.sessions import SessionStore
from velib.service import VeDbusService

SERVICE_NAME = "com.victronenergy.evcharger.phaeton_web_test"

STATUS_OF_PATH = {"/Mode": "mode", "/StartStop": "start_stop", "/SetCurrent": "set_current_a",
                  "/MaxCurrent": "max_current_a", "/SetPhases": "phases",
                  "/AutoStart": "auto_start"}


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
                    "serial": "ACE0001", "firmware": "6.4.0", "error": None},
        "power": {"pv_w": 4200.0, "grid_w": [2400.0, 2300.0, 2300.0],
                  "grid_current_a": [10.4, 10.0, 10.0], "fuse_a": float(config["site"]["fuse_a"]),
                  "house_w": 650.0, "battery_w": -500.0, "battery_soc_pct": 64.0,
                  "ev_w": 11040.0},
        "readings_stale": False, "readings_age_s": 0.4,
        "session": {"active": True, "energy_kwh": 7.25, "duration_s": 2520.0, "cost": 1.81,
                    "currency": "EUR", "solar_share": 0.38, "peak_w": 11100.0},
    }


class WebBackendForTests:
    """A real-parts WebBackend; create with `await WebBackendForTests.create(tmp_path)`."""

    def __init__(self, service: VeDbusService, store: SessionStore, config_file: Path,
                 log_buffer: LogBuffer):
        self.service = service
        self.store = store
        self.config_file = config_file
        self.log_buffer = log_buffer
        self.cfg = config_to_dict(load_config(config_file))
        self._status = initial_status(self.cfg)
        self._subscribers: set[asyncio.Queue] = set()
        self.writes: list[tuple[str, Any, int]] = []
        self._saved_log_level = logging.NOTSET
        self.plan_data: dict | None = None

    @classmethod
    async def create(cls, directory: Path, config_text: str = "",
                     bus_address: str | None = None) -> "WebBackendForTests":
        config_file = Path(directory) / "config.yaml"
        if not config_file.exists():
            config_file.write_text(config_text or
                                   "charger:\n  protocol: alfen\n  alfen:\n    host: 127.0.0.1\n",
                                   encoding="utf-8")
        cfg = load_config(config_file)
        svc = VeDbusService(SERVICE_NAME, bus_address)
        charger = cfg["charger"]
        svc.add_path("/Mode", 0, writeable=True, kind=int, min=0, max=2)
        svc.add_path("/StartStop", 1, writeable=True, kind=int, min=0, max=1)
        svc.add_path("/SetCurrent", 16.0, writeable=True, kind=float, min=0.0,
                     max=float(charger["max_current_a"]))
        svc.add_path("/MaxCurrent", float(charger["max_current_a"]), writeable=True, kind=float,
                     min=float(charger["min_current_a"]), max=float(charger["max_current_a"]))
        svc.add_path("/SetPhases", 3, writeable=True, kind=int, min=1, max=3,
                     on_change=lambda _path, value: value in (1, 3))
        svc.add_path("/AutoStart", 1, writeable=True, kind=int, min=0, max=1)
        await svc.register()
        store = SessionStore(Path(directory) / "sessions.db")
        log_buffer = LogBuffer(capacity=500)
        logger = logging.getLogger("phaeton")
        logger.addHandler(log_buffer)
        made = cls(svc, store, config_file, log_buffer)
        made._saved_log_level = logger.level
        logger.setLevel(logging.DEBUG)
        return made

    async def close(self) -> None:
        logger = logging.getLogger("phaeton")
        logger.removeHandler(self.log_buffer)
        logger.setLevel(self._saved_log_level)
        self.store.close()
        await self.service.close()

    # ---- simulation side -----------------------------------------------------------------

    def publish(self, **changes: Any) -> dict:
        """Apply `changes` (dict values merge one level deep), hand the snapshot out."""
        status = copy.deepcopy(self._status)
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(status.get(key), dict):
                status[key].update(value)
            else:
                status[key] = value
        status["time"] = time.time()
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

    async def write(self, path: str, value: Any) -> int:
        if path not in STATUS_OF_PATH:
            return 1
        code = self.service.write(path, value)
        self.writes.append((path, value, code))
        if code == 0:
            self.publish(**{STATUS_OF_PATH[path]: self.service[path]})
        return code

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

    def plan(self) -> dict | None:
        return copy.deepcopy(self.plan_data)
