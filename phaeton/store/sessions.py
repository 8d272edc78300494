"""Finished charging sessions and the running one, in SQLite (stdlib `sqlite3`, WAL journal).

Every call is one short transaction on a small table, so the API is synchronous. A caller on the
event loop that wants to be strict may run calls in an executor: the store serialises calls
with a lock and its connection may be used from any thread.

Sessions belong to a loadpoint (one charger), named by a short stable text: the charger's
`device.unique_id`, the suffix of its D-Bus service name (`DEFAULT_LOADPOINT` is the config's
default). A store writes for the loadpoint it was opened with; reads cover every loadpoint unless
one is named.

The history is bounded: after each added session only the newest `history_limit` of that
session's loadpoint are kept. The running session (a free JSON record, e.g. start time and energy
so far) is stored in its own table, one row per loadpoint, so a restart mid-session can continue
it.

Schema versions live in the one-row `schema_version` table. Version 1 (one charger, a one-row
`running_session`) is migrated to version 2 (a `loadpoint` column, one running row per
loadpoint) in place, in ONE transaction: a crash mid-way leaves version 1 as it was. Version 3
adds `co2_kg` (kg CO2-eq of a session, NULL when no carbon intensity was known: every session
stored before version 3) the same way; a version-1 file goes through version 2 in the same
transaction. Its rows
get the loadpoint the store is opened with.

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

SCHEMA_VERSION = 3

DEFAULT_LOADPOINT = "0"   # the default `device.unique_id`: the charger of a one-charger config

# The current schema (version 3), as a new database gets it and a migration leaves it.
_SESSIONS_TABLE = """CREATE TABLE {name} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    loadpoint TEXT NOT NULL,
    start_s REAL NOT NULL,
    end_s REAL NOT NULL,
    energy_kwh REAL NOT NULL,
    duration_s REAL NOT NULL,
    peak_w REAL NOT NULL,
    cost REAL NOT NULL,
    currency TEXT NOT NULL,
    solar_share REAL NOT NULL,
    extra_json TEXT NOT NULL DEFAULT '{{}}',
    co2_kg REAL NULL
)"""
# Version 2's sessions table, as the migration from version 1 leaves it (then 2 -> 3 runs).
_SESSIONS_V2_TABLE = """CREATE TABLE {name} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    loadpoint TEXT NOT NULL,
    start_s REAL NOT NULL,
    end_s REAL NOT NULL,
    energy_kwh REAL NOT NULL,
    duration_s REAL NOT NULL,
    peak_w REAL NOT NULL,
    cost REAL NOT NULL,
    currency TEXT NOT NULL,
    solar_share REAL NOT NULL,
    extra_json TEXT NOT NULL DEFAULT '{{}}'
)"""
_RUNNING_TABLE = """CREATE TABLE {name} (
    loadpoint TEXT PRIMARY KEY,
    record_json TEXT NOT NULL
)"""
_INDEXES = ("CREATE INDEX sessions_by_start ON sessions (start_s)",
            "CREATE INDEX sessions_by_loadpoint ON sessions (loadpoint, start_s)")

_COLUMNS = ("id", "loadpoint", "start_s", "end_s", "energy_kwh", "duration_s", "peak_w", "cost",
            "currency", "solar_share", "extra_json", "co2_kg")
# the columns version 2 had (all but co2_kg), copied as they are by the migration to 3
_V2_COLUMNS = ", ".join(column for column in _COLUMNS if column != "co2_kg")
# the columns version 1 had (also without loadpoint), copied as they are by the migration to 2
_V1_COLUMNS = ", ".join(column for column in _COLUMNS if column not in ("loadpoint", "co2_kg"))

# SQLite primary result codes that mean the file itself is damaged
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26

T = TypeVar("T")


class _DamagedFile(sqlite3.DatabaseError):
    """The file opened but its content is not a session database we can use."""


class _NewerSchema(_DamagedFile):
    """The file was written by a newer phaeton: left as it is (kept aside, never migrated)."""


class SessionStoreError(Exception):
    """The session database cannot be opened or written (e.g. read-only directory)."""


@dataclass(frozen=True)
class ChargingSession:
    """One finished charging session. Times are unix seconds; `solar_share` is 0..1.

    `loadpoint` names the charger it was charged at; None when adding means the store's own.
    `co2_kg`: kg CO2-eq of its energy (docs/carbon.md, "Accounting"); None when no carbon
    intensity was known (no source configured, or stored before schema version 3)."""

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
    loadpoint: str | None = None
    co2_kg: float | None = None

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
        # (cost may be negative: a session charged at negative prices earned money)
        for name in ("energy_kwh", "duration_s", "peak_w"):
            if getattr(self, name) < 0:
                raise ValueError(f"session {name} must be ≥ 0, got {getattr(self, name)}")
        if not 0 <= self.solar_share <= 1:
            raise ValueError(f"session solar_share must be within 0..1, got {self.solar_share}")
        if not isinstance(self.currency, str) or not self.currency:
            raise ValueError(f"session currency must be non-empty text, got {self.currency!r}")
        if not isinstance(self.extra, Mapping):
            raise ValueError(f"session extra must be a mapping, got {type(self.extra).__name__}")
        if self.loadpoint is not None:
            _check_loadpoint(self.loadpoint)
        if self.co2_kg is not None and (
                isinstance(self.co2_kg, bool) or not isinstance(self.co2_kg, (int, float))
                or not math.isfinite(self.co2_kg) or self.co2_kg < 0):
            raise ValueError(f"session co2_kg must be a finite number ≥ 0 or None, "
                             f"got {self.co2_kg!r}")


@dataclass(frozen=True)
class SessionTotals:
    """Sums over a set of sessions; costs are summed per currency."""

    count: int
    energy_kwh: float
    solar_energy_kwh: float
    duration_s: float
    cost_by_currency: dict[str, float]


class SessionStore:
    """Sessions in the SQLite file at `path` (created when missing; its directory must exist),
    written for `loadpoint` unless a call names another."""

    def __init__(self, path: str | os.PathLike, history_limit: int = 1000,
                 loadpoint: str = DEFAULT_LOADPOINT):
        if isinstance(history_limit, bool) or not isinstance(history_limit, int) \
                or history_limit < 1:
            raise ValueError(f"history_limit must be a whole number ≥ 1, got {history_limit!r}")
        self.path = Path(path)
        self.history_limit = history_limit
        self.loadpoint = _check_loadpoint(loadpoint)
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
            connection.execute("PRAGMA synchronous=NORMAL")
            check = connection.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise _DamagedFile(f"database disk image is malformed ({check})")
            self._bring_up_to_date(connection)
            connection.execute("PRAGMA journal_mode=WAL")   # after: a refused file stays as is
        except BaseException:
            connection.close()
            raise
        return connection

    def _bring_up_to_date(self, connection: sqlite3.Connection) -> None:
        """Create the schema in a new file or migrate an older one, in one transaction; refuse
        (`_NewerSchema`, nothing written) a file from a newer phaeton."""
        with _transaction(connection):
            version = _stored_version(connection)
            if version is None:
                _create_schema(connection)
                return
            if version > SCHEMA_VERSION:
                raise _NewerSchema(f"schema version {version} is newer than this phaeton's "
                                   f"{SCHEMA_VERSION} (written by a newer phaeton?)")
            if version < 1:
                raise _DamagedFile(f"schema version {version} is not a version phaeton wrote")
            if version == SCHEMA_VERSION:
                return
            log.info("migrating session database %s from schema version %d to %d",
                     self.path, version, SCHEMA_VERSION)
            while version < SCHEMA_VERSION:
                _MIGRATIONS[version](connection, self.loadpoint)
                version += 1
            _write_version(connection)

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
        what = "cannot be used" if isinstance(cause, _NewerSchema) else "is damaged"
        log.error("session database %s %s (%s); kept it as %s and started a new one",
                  self.path, what, cause, moved)
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
        """Store a finished session, drop its loadpoint's oldest beyond `history_limit`;
        returns its id."""
        return self._store_finished(session, clear_running=False)

    def finish_running(self, session: ChargingSession) -> int:
        """Store the finished running session and forget its loadpoint's running record in ONE
        transaction: a crash between the two would otherwise continue the stored session after
        a restart and store it twice."""
        return self._store_finished(session, clear_running=True)

    def _store_finished(self, session: ChargingSession, clear_running: bool) -> int:
        session.validate()
        loadpoint = session.loadpoint if session.loadpoint is not None else self.loadpoint
        try:
            extra_json = json.dumps(dict(session.extra), sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"session extra cannot be stored as JSON: {exc}") from exc

        def insert(connection: sqlite3.Connection) -> int:
            with _transaction(connection):
                cursor = connection.execute(
                    "INSERT INTO sessions (loadpoint, start_s, end_s, energy_kwh, duration_s,"
                    " peak_w, cost, currency, solar_share, extra_json, co2_kg)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (loadpoint, session.start_s, session.end_s, session.energy_kwh,
                     session.duration_s, session.peak_w, session.cost, session.currency,
                     session.solar_share, extra_json,
                     None if session.co2_kg is None else float(session.co2_kg)))
                connection.execute(
                    "DELETE FROM sessions WHERE loadpoint = ? AND id NOT IN (SELECT id FROM "
                    "sessions WHERE loadpoint = ? ORDER BY start_s DESC, id DESC LIMIT ?)",
                    (loadpoint, loadpoint, self.history_limit))
                if clear_running:
                    connection.execute("DELETE FROM running_session WHERE loadpoint = ?",
                                       (loadpoint,))
                return int(cursor.lastrowid)
        return self._run(insert)

    def list_sessions(self, since_s: float | None = None, until_s: float | None = None,
                      limit: int = 100, offset: int = 0, *,
                      loadpoint: str | None = None) -> list[ChargingSession]:
        """Sessions that started in [since_s, until_s), newest first, paged by limit/offset;
        of one loadpoint, or of all when `loadpoint` is None."""
        if limit < 0 or offset < 0:
            raise ValueError(f"limit and offset must be ≥ 0, got {limit} and {offset}")
        return self._select(since_s, until_s, limit, offset, loadpoint)

    def _select(self, since_s: float | None, until_s: float | None, limit: int,
                offset: int, loadpoint: str | None) -> list[ChargingSession]:
        """`limit` -1 = all (SQLite's convention)."""
        where, params = _filter(since_s, until_s, loadpoint)
        rows = self._run(lambda connection: connection.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM sessions {where} "
            f"ORDER BY start_s DESC, id DESC LIMIT ? OFFSET ?",
            (*params, limit, offset)).fetchall())
        return [_session_from_row(row) for row in rows]

    def totals(self, since_s: float | None = None, until_s: float | None = None, *,
               loadpoint: str | None = None) -> SessionTotals:
        """Count, energy, solar energy, duration and cost of sessions in [since_s, until_s),
        of one loadpoint or of all."""
        where, params = _filter(since_s, until_s, loadpoint)

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

    def export_csv(self, since_s: float | None = None, until_s: float | None = None, *,
                   loadpoint: str | None = None) -> str:
        """All sessions in [since_s, until_s) (of one loadpoint or of all), oldest first, as CSV
        text with a header row."""
        sessions = self._select(since_s, until_s, limit=-1, offset=0, loadpoint=loadpoint)
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

    # `loadpoint` None = the store's own loadpoint.

    def save_running(self, record: Mapping[str, Any], *, loadpoint: str | None = None) -> None:
        """Store the running session's record (any JSON object), replacing the loadpoint's
        previous one."""
        loadpoint = self._own(loadpoint)
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
                    "INSERT INTO running_session (loadpoint, record_json) VALUES (?, ?) "
                    "ON CONFLICT (loadpoint) DO UPDATE SET record_json = excluded.record_json "
                    "WHERE record_json != excluded.record_json", (loadpoint, record_json))
        self._run(upsert)

    def load_running(self, *, loadpoint: str | None = None) -> dict[str, Any] | None:
        """The loadpoint's running session record, or None when no session is running there."""
        loadpoint = self._own(loadpoint)
        row = self._run(lambda connection: connection.execute(
            "SELECT record_json FROM running_session WHERE loadpoint = ?",
            (loadpoint,)).fetchone())
        if row is None:
            return None
        try:
            record = json.loads(row[0])
        except json.JSONDecodeError as exc:
            log.error("running session record of loadpoint %s in %s is unreadable (%s); "
                      "dropping it", loadpoint, self.path, exc)
            self.clear_running(loadpoint=loadpoint)
            return None
        return record if isinstance(record, dict) else None

    def clear_running(self, *, loadpoint: str | None = None) -> None:
        """Forget the loadpoint's running session (it ended or was abandoned)."""
        loadpoint = self._own(loadpoint)

        def delete(connection: sqlite3.Connection) -> None:
            with _transaction(connection):
                connection.execute("DELETE FROM running_session WHERE loadpoint = ?",
                                   (loadpoint,))
        self._run(delete)

    def _own(self, loadpoint: str | None) -> str:
        return self.loadpoint if loadpoint is None else _check_loadpoint(loadpoint)


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


def _check_loadpoint(loadpoint: Any) -> str:
    if not isinstance(loadpoint, str) or not loadpoint:
        raise ValueError(f"loadpoint must be non-empty text, got {loadpoint!r}")
    return loadpoint


# ---- schema versions and migrations ------------------------------------------------------------

def _stored_version(connection: sqlite3.Connection) -> int | None:
    """The file's schema version, None for a new (empty) file. A file without a version row
    is judged by its columns."""
    tables = {name for (name,) in connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "schema_version" in tables:
        row = connection.execute("SELECT version FROM schema_version").fetchone()
        if row is not None:
            if isinstance(row[0], bool) or not isinstance(row[0], int):
                raise _DamagedFile(f"schema version {row[0]!r} is not a whole number")
            return row[0]
    if not tables - {"schema_version", "sqlite_sequence"}:
        return None
    if "sessions" not in tables:
        raise _DamagedFile(f"no sessions table beside {sorted(tables)}: not a session database")
    columns = {row[1] for row in connection.execute("PRAGMA table_info(sessions)")}
    if "co2_kg" in columns:
        return 3
    return 2 if "loadpoint" in columns else 1


def _create_schema(connection: sqlite3.Connection) -> None:
    connection.execute(_SESSIONS_TABLE.format(name="sessions"))
    connection.execute(_RUNNING_TABLE.format(name="running_session"))
    for statement in _INDEXES:
        connection.execute(statement)
    _write_version(connection)


def _write_version(connection: sqlite3.Connection) -> None:
    connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    connection.execute("DELETE FROM schema_version")
    connection.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))


def _rebuild_sessions(connection: sqlite3.Connection, table: str, old: str,
                      insert_columns: str, select_columns: str,
                      params: tuple[Any, ...] = ()) -> None:
    """Rebuild `sessions` with the CREATE statement `table` (SQLite's way to change a primary
    key or to get a new column into the same text a new file gets), copying `select_columns`
    of every row into `insert_columns`, keeping ids and the AUTOINCREMENT high-water mark."""
    sequence = connection.execute(
        "SELECT seq FROM sqlite_sequence WHERE name = 'sessions'").fetchone()
    for index in ("sessions_by_start", "sessions_by_loadpoint"):
        connection.execute(f"DROP INDEX IF EXISTS {index}")
    connection.execute(f"ALTER TABLE sessions RENAME TO {old}")
    connection.execute(table.format(name="sessions"))
    connection.execute(f"INSERT INTO sessions ({insert_columns}) "
                       f"SELECT {select_columns} FROM {old}", params)
    connection.execute(f"DROP TABLE {old}")
    if sequence is not None:     # ids are never reused, not even those of deleted sessions
        connection.execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'sessions'",
                           (sequence[0],))
        connection.execute("INSERT INTO sqlite_sequence (name, seq) SELECT 'sessions', ? "
                           "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence "
                           "WHERE name = 'sessions')", (sequence[0],))


def _migrate_1_to_2(connection: sqlite3.Connection, loadpoint: str) -> None:
    """Give every session and the running record `loadpoint`: both tables are rebuilt (SQLite's
    way to change a primary key), keeping ids and the AUTOINCREMENT high-water mark; the result
    is version 2's schema."""
    _rebuild_sessions(connection, _SESSIONS_V2_TABLE, "sessions_v1",
                      f"loadpoint, {_V1_COLUMNS}", f"?, {_V1_COLUMNS}", (loadpoint,))
    connection.execute("ALTER TABLE running_session RENAME TO running_v1")
    connection.execute(_RUNNING_TABLE.format(name="running_session"))
    connection.execute("INSERT INTO running_session (loadpoint, record_json) "
                       "SELECT ?, record_json FROM running_v1", (loadpoint,))
    connection.execute("DROP TABLE running_v1")
    for statement in _INDEXES:
        connection.execute(statement)


def _migrate_2_to_3(connection: sqlite3.Connection, loadpoint: str) -> None:
    """Add `co2_kg` (NULL for every stored session: its emissions were not accounted). The
    table is rebuilt rather than altered so that a migrated file has exactly the schema a new
    file gets; ids, the AUTOINCREMENT high-water mark and the running records stay."""
    del loadpoint    # every row has its own already
    _rebuild_sessions(connection, _SESSIONS_TABLE, "sessions_v2", _V2_COLUMNS, _V2_COLUMNS)
    for statement in _INDEXES:
        connection.execute(statement)


# _MIGRATIONS[n] turns schema version n into n + 1
_MIGRATIONS: dict[int, Callable[[sqlite3.Connection, str], None]] = {1: _migrate_1_to_2,
                                                                      2: _migrate_2_to_3}


# ---- queries -----------------------------------------------------------------------------------

def _filter(since_s: float | None, until_s: float | None,
            loadpoint: str | None) -> tuple[str, tuple[Any, ...]]:
    clauses: list[str] = []
    params: list[Any] = []
    if since_s is not None:
        clauses.append("start_s >= ?")
        params.append(float(since_s))
    if until_s is not None:
        clauses.append("start_s < ?")
        params.append(float(until_s))
    if loadpoint is not None:
        clauses.append("loadpoint = ?")
        params.append(_check_loadpoint(loadpoint))
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
