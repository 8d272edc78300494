"""The site's copy of its fleet schedules and its outbox of acks, in SQLite (`<data_dir>/fleet.db`).

- `schedules`: every accepted schedule (its body text as it was signed), in the order accepted,
  with its state (`accepted`, `executing`, `completed`, `superseded`, `cancelled`) and the next
  slot whose execution is still to be acknowledged. A restart carries on where it stopped.
- `outbox`: acks not yet confirmed by the broker (PUBACK), with a sequence number that only
  grows (AUTOINCREMENT never reuses one), so they go out in order after an outage and an
  operator can drop a duplicate by (site, seq).

Every call is one short transaction; the API is synchronous (fleet traffic is a few messages a
quarter hour). A file SQLite reports as corrupt is moved aside and a fresh one started: the
operator re-pushes what is missing, which is idempotent.
"""
from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phaeton.store.state_file import move_aside

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS schedules (
    accepted_order INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    accepted_s REAL NOT NULL,
    state TEXT NOT NULL,
    next_slot INTEGER NOT NULL DEFAULT 0,
    UNIQUE (id, version)
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    payload TEXT NOT NULL
);
"""
LIVE_STATES = ("accepted", "executing")


@dataclass(frozen=True)
class StoredSchedule:
    order: int
    id: str
    version: int
    body: str
    accepted_s: float
    state: str
    next_slot: int


class FleetStore:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._connect()
        except sqlite3.DatabaseError as exc:
            log.error("fleet database %s is damaged (%s): moved aside, starting a new one",
                      self.path, exc)
            move_aside(self.path, "corrupt")
            self._db = self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("quick_check failed")
            db.executescript(SCHEMA)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        self._db.close()

    # ---- schedules -------------------------------------------------------------------------

    def _rows(self, where: str = "", args: tuple = ()) -> list[StoredSchedule]:
        rows = self._db.execute(
            "SELECT accepted_order, id, version, body, accepted_s, state, next_slot "
            f"FROM schedules {where} ORDER BY accepted_order", args).fetchall()
        return [StoredSchedule(*row) for row in rows]

    def get(self, ident: str, version: int) -> StoredSchedule | None:
        rows = self._rows("WHERE id = ? AND version = ?", (ident, version))
        return rows[0] if rows else None

    def highest_version(self, ident: str) -> int | None:
        row = self._db.execute("SELECT MAX(version) FROM schedules WHERE id = ?",
                               (ident,)).fetchone()
        return row[0]

    def live(self) -> list[StoredSchedule]:
        """The schedules still to run or running, oldest accepted first."""
        return self._rows("WHERE state IN (?, ?)", LIVE_STATES)

    def recent(self, count: int) -> list[StoredSchedule]:
        rows = self._db.execute(
            "SELECT accepted_order, id, version, body, accepted_s, state, next_slot FROM "
            "schedules ORDER BY accepted_order DESC LIMIT ?", (count,)).fetchall()
        return [StoredSchedule(*row) for row in reversed(rows)]

    def add(self, ident: str, version: int, body: str, now_s: float,
            ack: Mapping[str, Any]) -> int:
        """Store an accepted schedule and its `accepted` ack in one transaction; the ack's seq."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("INSERT INTO schedules (id, version, body, accepted_s, state) "
                             "VALUES (?, ?, ?, ?, 'accepted')", (ident, version, body, now_s))
            return self._enqueue(ack)

    def set_state(self, ident: str, version: int, state: str,
                  ack: Mapping[str, Any] | None = None) -> int | None:
        """Change a schedule's state, with the ack that says so in the same transaction."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("UPDATE schedules SET state = ? WHERE id = ? AND version = ?",
                             (state, ident, version))
            return self._enqueue(ack) if ack is not None else None

    def slot_done(self, ident: str, version: int, next_slot: int,
                  ack: Mapping[str, Any] | None, state: str = "executing") -> int | None:
        """The schedule moved on past a slot, with the slot's execution ack (if any) in the same
        transaction."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("UPDATE schedules SET next_slot = ?, state = ? WHERE id = ? AND "
                             "version = ?", (next_slot, state, ident, version))
            return self._enqueue(ack) if ack is not None else None

    # ---- outbox ----------------------------------------------------------------------------

    def _enqueue(self, ack: Mapping[str, Any]) -> int:
        cursor = self._db.execute("INSERT INTO outbox (payload) VALUES ('')")
        seq = int(cursor.lastrowid)
        payload = json.dumps({**ack, "seq": seq}, separators=(",", ":"))
        self._db.execute("UPDATE outbox SET payload = ? WHERE seq = ?", (payload, seq))
        return seq

    def enqueue(self, ack: Mapping[str, Any]) -> int:
        """Add an ack to the outbox; its seq (also written into the payload)."""
        with self._db:
            self._db.execute("BEGIN")
            return self._enqueue(ack)

    def pending(self, after_seq: int = 0, limit: int = 100) -> list[tuple[int, str]]:
        """Acks not yet confirmed, in seq order: (seq, payload)."""
        return self._db.execute("SELECT seq, payload FROM outbox WHERE seq > ? ORDER BY seq "
                                "LIMIT ?", (after_seq, limit)).fetchall()

    def pending_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def delivered(self, seq: int) -> None:
        self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
