"""`<data_dir>/update-status.json`: what the updater did last and is doing now.

The web UI polls it (GET /api/update) while a detached `phaeton update apply` runs, which also
outlives the service's own restart. Keys:

    state       idle | checking | downloading | verifying | installing | switching |
                health_check | rolling_back | done | up_to_date | failed | rolled_back
    action      check | apply | rollback | recover
    trigger     cli | web | auto
    from, to    the versions involved
    message     one line: the result, or why it failed
    started, updated   unix seconds;  pid   the process doing it
    log         the last lines of its progress
    last_check  {time, ok, available, channel, message}: the latest check
    auto_day    the window day ("YYYY-MM-DD") of the latest automatic update attempt

Writes are whole-file atomic replacements (a reader never sees half a file).
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

LOG_LINES = 40
RUNNING_STATES = ("starting", "checking", "downloading", "verifying", "installing",
                  "switching", "health_check", "rolling_back")


def read_status(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def update_status(path: Path, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into the file (None removes a key) and return the new content."""
    data = read_status(path)
    for key, value in fields.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    data["updated"] = time.time()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(temporary, path)
    return data


class Progress:
    """One run's progress: each step is logged and lands in the status file."""

    def __init__(self, path: Path, action: str, trigger: str, logger: logging.Logger):
        self.path = path
        self.log = logger
        self.lines: list[str] = []
        try:
            update_status(path, action=action, trigger=trigger, state="starting",
                          started=time.time(), pid=os.getpid(), log=[], message="", to=None)
        except OSError as exc:
            logger.warning("cannot write %s: %s", path, exc)

    def step(self, state: str, message: str, **fields: Any) -> None:
        self.log.info("%s", message)
        self._write(state, message, fields)

    def failed(self, state: str, message: str, **fields: Any) -> None:
        self.log.error("%s", message)
        self._write(state, message, fields)

    def _write(self, state: str, message: str, fields: dict[str, Any]) -> None:
        stamp = time.strftime("%H:%M:%S")
        self.lines = (self.lines + [f"{stamp} {message}"])[-LOG_LINES:]
        try:
            update_status(self.path, state=state, message=message, log=self.lines, **fields)
        except OSError as exc:            # a full /data must not stop a rollback
            self.log.warning("cannot write %s: %s", self.path, exc)
