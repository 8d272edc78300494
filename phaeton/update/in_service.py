"""Self-update as seen from the running service: the web UI's answers, a detached apply or
rollback, and the watch task (an interrupted switch, the daily automatic update).

An apply or rollback restarts the service, so the service never runs one itself: it starts
`phaeton update apply|rollback` as a process of its own (a new session, so `svc -t`, which
signals only the service, does not end it), and that process reports its progress in
`<data_dir>/update-status.json`, which the web UI polls (GET /api/update) across the restart.

The watch runs every minute: a stale pending marker (the switching process died) starts
`phaeton update recover`; with `update.auto`, once per day inside `update.window`, it starts
`phaeton update apply` (which does nothing when the channel has nothing newer).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from phaeton import __version__
from phaeton.update.layout import Layout
from phaeton.update.pending import is_stale, process_alive, read_pending
from phaeton.update.settings import UpdateSettings
from phaeton.update.status import RUNNING_STATES, read_status, update_status
from phaeton.update.window import auto_update_due, parse_window

log = logging.getLogger("phaeton.update")

WATCH_INTERVAL_S = 60.0


def running_interpreter() -> str:
    """This interpreter by the real path of its venv (versions/<v>/venv/bin/python), not by
    `current`: a process started with it keeps importing its own version's code after
    `current` is switched."""
    return os.path.join(os.path.realpath(os.path.dirname(sys.executable)),
                        os.path.basename(sys.executable))


class UpdateService:
    def __init__(self, config: Mapping[str, Any], config_path: str | None,
                 layout: Layout | None = None, *, python: str | None = None):
        self.settings = UpdateSettings.from_config(config)
        self.config_path = config_path
        self.layout = layout if layout is not None else Layout.of_running_code()
        self.python = python or running_interpreter()
        self._children: list[subprocess.Popen] = []

    def reconfigure(self, config: Mapping[str, Any]) -> None:
        """The `update:` section as saved from the web UI (the update commands read the file)."""
        self.settings = UpdateSettings.from_config(config)

    # ---- what the web UI shows ---------------------------------------------------------------

    def unavailable(self) -> str | None:
        """Why this service cannot update itself (None: it can)."""
        if self.layout is None or not self.layout.installed():
            return ("this phaeton was not installed by install.sh into versions/ (a source "
                    "checkout or the demo): self-update is not available")
        if not self.config_path:
            return "the service runs without a config file"
        return None

    def _context(self, trigger: str = "web"):
        from phaeton.update.engine import UpdateContext
        return UpdateContext(self.layout or Layout.for_root(None), self.settings,
                             self.config_path, trigger=trigger)

    def state(self) -> dict[str, Any]:
        from phaeton.update.engine import describe
        unavailable = self.unavailable()
        state = describe(self._context()) if self.layout is not None else {
            "installed": False, "channel": self.settings.channel, "url": self.settings.url,
            "key_configured": bool(self.settings.public_key), "auto": self.settings.auto,
            "window": self.settings.window,
            "last_check": read_status(Path(self.settings.status_path)).get("last_check"),
            "progress": {}}
        last = state.get("last_check") or {}
        return {**state, "running": __version__, "available": last.get("available"),
                "unavailable": unavailable, "busy": self.busy()}

    async def check(self) -> dict[str, Any]:
        """Ask the index now (in a thread: the control loop keeps running)."""
        from phaeton.update.engine import check
        result = await asyncio.to_thread(check, self._context())
        return {"ok": result.ok, "message": result.message,
                "available": result.release.version.text if result.release else None}

    # ---- starting an apply or rollback -------------------------------------------------------

    def busy(self) -> str | None:
        """What is running now (None: nothing)."""
        if self.layout is not None:
            marker = read_pending(self.layout.pending)
            if marker is not None and not is_stale(marker):
                return f"a switch to {marker.to} is running (pid {marker.pid})"
        status = read_status(Path(self.settings.status_path))
        pid = status.get("pid")
        if status.get("state") in RUNNING_STATES and isinstance(pid, int) \
                and process_alive(pid):
            return f"an update {status.get('action', '')} is running (pid {pid})".replace(
                "  ", " ")
        return None

    def start(self, action: str, *, trigger: str = "web",
              version: str | None = None) -> dict[str, Any]:
        """Start `phaeton update <action>` detached: {"ok": True, "pid"}, or {"ok": False,
        "message"} when it cannot (not installed for it, or one is running already)."""
        refused = self.unavailable() or self.busy()
        if refused:
            return {"ok": False, "message": refused}
        command = [self.python, "-m", "phaeton", "update", action,
                   "--config", str(self.config_path)]
        if self.layout.root is not None:   # else the child finds the install as we did
            command += ["--root", self.layout.root or "/"]
        if action == "apply":
            command += ["--trigger", trigger]
            if version:
                command += ["--version", version]
        self._reap()
        status_path = Path(self.settings.status_path)
        try:   # "starting" before the child runs: a poll right after the POST sees it busy
            update_status(status_path, state="starting", action=action, trigger=trigger,
                          pid=None, message=f"{action} started", log=[])
        except OSError as exc:
            log.warning("cannot write the update status: %s", exc)
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True,
                                 close_fds=True)
        self._children.append(child)
        log.info("started phaeton update %s (pid %d, %s)", action, child.pid, trigger)
        try:
            update_status(status_path, pid=child.pid)     # the same pid the child writes
        except OSError as exc:
            log.warning("cannot write the update status: %s", exc)
        return {"ok": True, "pid": child.pid}

    def _reap(self) -> None:
        self._children = [c for c in self._children if c.poll() is None]

    # ---- the watch ---------------------------------------------------------------------------

    async def watch(self) -> None:
        """Every minute: recover an interrupted switch; the automatic update when due."""
        if self.unavailable():
            return
        while True:
            try:
                self.watch_once()
            except Exception as exc:   # noqa: BLE001 - the watch must not end the service
                log.warning("update watch: %s", exc)
            await asyncio.sleep(WATCH_INTERVAL_S)

    def watch_once(self, now: dt.datetime | None = None) -> str | None:
        """One look; the action started ("recover", "apply") or None."""
        self._reap()
        if self.busy():
            return None
        marker = read_pending(self.layout.pending)
        if marker is not None and is_stale(marker):
            log.warning("an update to %s was interrupted; starting phaeton update recover",
                        marker.to)
            self.start("recover", trigger="auto")
            return "recover"
        if not self.settings.auto:
            return None
        now = now or dt.datetime.now(ZoneInfo(self.settings.tz))
        status_path = Path(self.settings.status_path)
        day = auto_update_due(now, parse_window(self.settings.window),
                              read_status(status_path).get("auto_day"))
        if day is None:
            return None
        update_status(status_path, auto_day=day)
        self.start("apply", trigger="auto")
        return "apply"
