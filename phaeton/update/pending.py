"""The marker of a switch in progress: `/data/phaeton/update-pending`.

Written just before `current` is switched (by apply and rollback), removed when the new version
passed its health check or the old one is back. If the process doing it dies in between
(killed, power cut), the marker stays and says how to put the install back as it was:

    to=0.2.0          the version being switched to
    from=0.1.0        the version that ran before (the last one known to work)
    previous=0.0.9    what `previous` named before (empty: nothing)
    pid=1234          the process doing the switch
    started=1715000000

Plain `key=value` lines so that install.sh (`--boot`, POSIX sh) reads it too. Who finds a
marker whose process is gone puts the install back (`phaeton update recover`, the service's
update watch, install.sh --boot; docs/update.md).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

# A switch never takes this long (health check included); older markers are stale whatever
# their pid says (the pid may have been reused).
MAX_AGE_S = 3600


@dataclass(frozen=True)
class Pending:
    to: str
    from_: str
    previous: str | None
    pid: int
    started: float

    def text(self) -> str:
        return ("# a phaeton update is switching versions (docs/update.md); removed when done\n"
                f"to={self.to}\nfrom={self.from_}\nprevious={self.previous or ''}\n"
                f"pid={self.pid}\nstarted={int(self.started)}\n")


def write_pending(path: Path, marker: Pending) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(marker.text())
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


def read_pending(path: Path) -> Pending | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    values = dict(line.split("=", 1) for line in text.splitlines()
                  if "=" in line and not line.startswith("#"))
    try:
        return Pending(to=values["to"], from_=values["from"],
                       previous=values.get("previous") or None,
                       pid=int(values.get("pid") or 0),
                       started=float(values.get("started") or 0))
    except (KeyError, ValueError):
        # unreadable: treat as an interrupted switch to an unknown version
        return Pending(to=values.get("to", ""), from_=values.get("from", ""), previous=None,
                       pid=0, started=0)


def remove_pending(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:   # a zombie has finished
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def is_stale(marker: Pending, now: float | None = None) -> bool:
    """The process that wrote the marker is gone (or it is far too old to be running)."""
    now = time.time() if now is None else now
    return not process_alive(marker.pid) or now - marker.started > MAX_AGE_S
