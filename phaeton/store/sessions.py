"""Finished charging sessions and the running one, in SQLite (stdlib `sqlite3`, WAL journal).

Every call is one short transaction on a small table, so the API is synchronous. A caller on the
event loop that wants to be strict may run calls in an executor: the store serialises calls
with a lock and its connection may be used from any thread.

The history is bounded: after each added session only the newest `history_limit` are kept. The
running session (a free JSON record, e.g. start time and energy so far) is stored in its own
one-row table so a restart mid-session can continue it.

A database file that SQLite reports as corrupt or not a database is moved aside as
`<name>.corrupt-<UTC timestamp>` (with its -wal/-shm files), logged, and a fresh one is started.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import sqlite3
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from phaeton.store.state_file import move_aside

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    start_s REAL NOT NULL,
    end_s REAL NOT NULL,
    energy_kwh REAL NOT NULL,
    duration_s REAL NOT NULL,
    peak_w REAL NOT NULL,
    cost REAL NOT NULL,
    currency TEXT NOT NULL,
    solar_share REAL NOT NULL,
    extra_json TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS sessions_by_start ON sessions (start_s);
CREATE TABLE IF NOT EXISTS running_session (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    record_json TEXT NOT NULL
);
"""

_COLUMNS = ("id", "start_s", "end_s", "energy_kwh", "duration_s", "peak_w", "cost", "currency",
            "solar_share", "extra_json")

# SQLite primary result codes that mean the file itself is damaged
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26

T = TypeVar("T")


class _DamagedFile(sqlite3.DatabaseError):
    """The file opened but its content is not a session database we can use."""


class SessionStoreError(Exception):
    """The session database cannot be opened or written (e.g. read-only directory)."""


@dataclass(frozen=True)
class ChargingSession:
    """One finished charging session. Times are unix seconds; `solar_share` is 0..1."""

    start_s: float
    end_s: float
    energy_kwh: float
    duration_s: float
    peak_w: float
    cost: float
    currency: str
    solar_share: float
    extra: Mapping[str, Any] = field(default_factory=dict)
    id: int | None = None

    def validate(self) -> None:
        """Raise `ValueError` naming the first field that cannot be stored."""
        for name in ("start_s", "end_s", "energy_kwh", "duration_s", "peak_w", "cost",
                     "solar_share"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise ValueError(f"session {name} must be a finite number, got {value!r}")
        if self.end_s < self.start_s:
            raise ValueError(f"session end_s ({self.end_s}) is before start_s ({self.start_s})")
        for name in ("energy_kwh", "duration_s", "peak_w", "cost"):
            if getattr(self, name) < 0:
                raise ValueError(f"session {name} must be ≥ 0, got {getattr(self, name)}")
        if not 0 <= self.solar_share <= 1:
            raise ValueError(f"session solar_share must be within 0..1, got {self.solar_share}")
        if not isinstance(self.currency, str) or not self.currency:
            raise ValueError(f"session currency must be non-empty text, got {self.currency!r}")
        if not isinstance(self.extra, Mapping):
            raise ValueError(f"session extra must be a mapping, got {type(self.extra).__name__}")


@dataclass(frozen=True)
class SessionTotals:
    """Sums over a set of sessions; costs are summed per currency."""

    count: int
    energy_kwh: float
    solar_energy_kwh: float
    duration_s: float
    cost_by_currency: dict[str, float]


class SessionStore:
    """Sessions in the SQLite file at `path` (created when missing; its directory must exist)."""

    def __init__(self, path: str | os.PathLike, history_limit: int = 1000):
        if isinstance(history_limit, bool) or not isinstance(history_limit, int) \
                or history_limit < 1:
            raise ValueError(f"history_limit must be a whole number ≥ 1, got {history_limit!r}")
        self.path = Path(path)
        self.history_limit = history_limit
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        with self._lock:
            self._open()

    # -- opening and recovery ------------------------------------------------------------------

    def _open(self) -> None:
        try:
            self._connection = self._connect()
        except sqlite3.DatabaseError as exc:
            if not _is_corruption(exc):
                raise SessionStoreError(f"cannot open session database {self.path}: {exc}") \
                    from exc
            self._recover(exc)

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=5, check_same_thread=False,
                                     isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            check = connection.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise _DamagedFile(f"database disk image is malformed ({check})")
            version = self._migrate(connection)
        except BaseException:
            connection.close()
            raise
        if version != SCHEMA_VERSION:
            connection.close()
            raise _DamagedFile(f"schema version {version} is not {SCHEMA_VERSION} (written "
                               f"by another phaeton version?)")
        return connection

    @staticmethod
    def _migrate(connection: sqlite3.Connection) -> int:
        with _transaction(connection):
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    connection.execute(statement)
            row = connection.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                connection.execute("INSERT INTO schema_version (version) VALUES (?)",
                                   (SCHEMA_VERSION,))
                return SCHEMA_VERSION
            return int(row[0])

    def _recover(self, cause: Exception) -> None:
        """Move the damaged database (and its -wal/-shm) aside and start an empty one."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        moved = move_aside(self.path, "corrupt")
        for suffix in ("-wal", "-shm"):
            companion = Path(f"{self.path}{suffix}")
            if not companion.exists():
                continue
            if moved is None:
                move_aside(companion, "corrupt")
                continue
            try:
                os.replace(companion, Path(f"{moved}{suffix}"))
            except OSError as exc:
                log.error("could not move %s aside: %s", companion, exc)
        if moved is None:
            raise SessionStoreError(f"session database {self.path} is damaged ({cause}) and "
                                    f"could not be moved aside") from cause
        log.error("session database %s is damaged (%s); kept it as %s and started a new one",
                  self.path, cause, moved)
        try:
            self._connection = self._connect()
        except sqlite3.DatabaseError as exc:
            raise SessionStoreError(f"cannot create session database {self.path}: {exc}") \
                from exc

    def _run(self, action: Callable[[sqlite3.Connection], T]) -> T:
        """Run one short action; on corruption recover once and retry on the fresh database."""
        with self._lock:
            if self._connection is None:
                raise SessionStoreError("session store is closed")
            try:
                return action(self._connection)
            except sqlite3.DatabaseError as exc:
                if not _is_corruption(exc):
                    raise SessionStoreError(f"session database {self.path}: {exc}") from exc
                self._recover(exc)
                return action(self._connection)

    def close(self) -> None:
        """Close the database; later calls raise `SessionStoreError`."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def __enter__(self) -> SessionStore:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # -- finished sessions ---------------------------------------------------------------------

    def add(self, session: ChargingSession) -> int:
        """Store a finished session, drop the oldest beyond `history_limit`; returns its id."""
        return self._store_finished(session, clear_running=False)

    def finish_running(self, session: ChargingSession) -> int:
        """Store the finished running session and forget its running record in ONE
        transaction: a crash between the two would otherwise continue the stored session after
        a restart and store it twice."""
        return self._store_finished(session, clear_running=True)

    def _store_finished(self, session: ChargingSession, clear_running: bool) -> int:
        session.validate()
        try:
            extra_json = json.dumps(dict(session.extra), sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"session extra cannot be stored as JSON: {exc}") from exc

        def insert(connection: sqlite3.Connection) -> int:
            with _transaction(connection):
                cursor = connection.execute(
                    "INSERT INTO sessions (start_s, end_s, energy_kwh, duration_s, peak_w, cost,"
                    " currency, solar_share, extra_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (session.start_s, session.end_s, session.energy_kwh, session.duration_s,
                     session.peak_w, session.cost, session.currency, session.solar_share,
                     extra_json))
                connection.execute(
                    "DELETE FROM sessions WHERE id NOT IN (SELECT id FROM sessions "
                    "ORDER BY start_s DESC, id DESC LIMIT ?)", (self.history_limit,))
                if clear_running:
                    connection.execute("DELETE FROM running_session")
                return int(cursor.lastrowid)
        return self._run(insert)

    def list_sessions(self, since_s: float | None = None, until_s: float | None = None,
                      limit: int = 100, offset: int = 0) -> list[ChargingSession]:
        """Sessions that started in [since_s, until_s), newest first, paged by limit/offset."""
        if limit < 0 or offset < 0:
            raise ValueError(f"limit and offset must be ≥ 0, got {limit} and {offset}")
        return self._select(since_s, until_s, limit, offset)

    def _select(self, since_s: float | None, until_s: float | None, limit: int,
                offset: int) -> list[ChargingSession]:
        """`limit` -1 = all (SQLite's convention)."""
        where, params = _time_filter(since_s, until_s)
        rows = self._run(lambda connection: connection.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM sessions {where} "
            f"ORDER BY start_s DESC, id DESC LIMIT ? OFFSET ?",
            (*params, limit, offset)).fetchall())
        return [_session_from_row(row) for row in rows]

    def totals(self, since_s: float | None = None,
               until_s: float | None = None) -> SessionTotals:
        """Count, energy, solar energy, duration and cost of sessions in [since_s, until_s)."""
        where, params = _time_filter(since_s, until_s)

        def query(connection: sqlite3.Connection) -> SessionTotals:
            count, energy, solar, duration = connection.execute(
                f"SELECT COUNT(*), COALESCE(SUM(energy_kwh), 0), "
                f"COALESCE(SUM(energy_kwh * solar_share), 0), COALESCE(SUM(duration_s), 0) "
                f"FROM sessions {where}", params).fetchone()
            costs = connection.execute(
                f"SELECT currency, SUM(cost) FROM sessions {where} GROUP BY currency "
                f"ORDER BY currency", params).fetchall()
            return SessionTotals(int(count), float(energy), float(solar), float(duration),
                                 {currency: float(cost) for currency, cost in costs})
        return self._run(query)

    def export_csv(self, since_s: float | None = None, until_s: float | None = None) -> str:
        """All sessions in [since_s, until_s), oldest first, as CSV text with a header row."""
        sessions = self._select(since_s, until_s, limit=-1, offset=0)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["id", "start_utc", "end_utc", "start_s", "end_s", "energy_kwh",
                         "duration_s", "peak_w", "cost", "currency", "solar_share", "extra"])
        for session in reversed(sessions):
            writer.writerow([
                session.id, _iso_utc(session.start_s), _iso_utc(session.end_s),
                _plain(session.start_s), _plain(session.end_s), _plain(session.energy_kwh),
                _plain(session.duration_s), _plain(session.peak_w), _plain(session.cost),
                session.currency, _plain(session.solar_share),
                json.dumps(dict(session.extra), sort_keys=True)])
        return out.getvalue()

    # -- the running session -------------------------------------------------------------------

    def save_running(self, record: Mapping[str, Any]) -> None:
        """Store the running session's record (any JSON object), replacing the previous one."""
        if not isinstance(record, Mapping):
            raise ValueError(f"running session record must be a mapping, "
                             f"got {type(record).__name__}")
        try:
            record_json = json.dumps(dict(record), sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"running session record cannot be stored as JSON: {exc}") from exc

        def upsert(connection: sqlite3.Connection) -> None:
            with _transaction(connection):
                connection.execute(
                    "INSERT INTO running_session (id, record_json) VALUES (1, ?) "
                    "ON CONFLICT (id) DO UPDATE SET record_json = excluded.record_json "
                    "WHERE record_json != excluded.record_json", (record_json,))
        self._run(upsert)

    def load_running(self) -> dict[str, Any] | None:
        """The running session's record, or None when no session is running."""
        row = self._run(lambda connection: connection.execute(
            "SELECT record_json FROM running_session WHERE id = 1").fetchone())
        if row is None:
            return None
        try:
            record = json.loads(row[0])
        except json.JSONDecodeError as exc:
            log.error("running session record in %s is unreadable (%s); dropping it",
                      self.path, exc)
            self.clear_running()
            return None
        return record if isinstance(record, dict) else None

    def clear_running(self) -> None:
        """Forget the running session (it ended or was abandoned)."""
        def delete(connection: sqlite3.Connection) -> None:
            with _transaction(connection):
                connection.execute("DELETE FROM running_session")
        self._run(delete)


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error) on an autocommit connection."""

    def __init__(self, connection: sqlite3.Connection):
        self._connection = connection

    def __enter__(self) -> None:
        self._connection.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is None:
            self._connection.execute("COMMIT")
        else:
            try:
                self._connection.execute("ROLLBACK")
            except sqlite3.Error:
                pass


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    if isinstance(exc, _DamagedFile):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    return "malformed" in str(exc) or "not a database" in str(exc)


def _time_filter(since_s: float | None, until_s: float | None) -> tuple[str, tuple[float, ...]]:
    clauses, params = [], []
    if since_s is not None:
        clauses.append("start_s >= ?")
        params.append(float(since_s))
    if until_s is not None:
        clauses.append("start_s < ?")
        params.append(float(until_s))
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)


def _session_from_row(row: tuple[Any, ...]) -> ChargingSession:
    values = dict(zip(_COLUMNS, row))
    try:
        extra = json.loads(values.pop("extra_json"))
    except json.JSONDecodeError:
        extra = {}
    return ChargingSession(extra=extra if isinstance(extra, dict) else {}, **values)


def _iso_utc(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _plain(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else repr(float(number))
