"""kill -9 during the session database's migration (schema 1 → 3, through 2, in one
transaction): after every kill the file holds either schema 1 or the newest schema, whole,
with every session and the running record; the next start finishes the migration.

The version-1 file is written by the version-1 store itself (tests/test_session_migration.py
loads it from git) and padded with raw rows so the migration takes long enough to be hit. The
child is killed as soon as its write-ahead log has grown past a mark: in the middle of the
migration's one transaction.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

from test_session_migration import REPO, RUNNING, load_v1_store

NEWEST = 3                       # the schema version the store migrates to
PADDING_ROWS = 100_000
KILL_AT_WAL_BYTES = (64 * 1024, 1024 * 1024, 4 * 1024 * 1024)
START_S = 30.0
CHILD = ("import sys\n"
         "from phaeton.store.sessions import SessionStore\n"
         "print('ready', flush=True)\n"
         "SessionStore(sys.argv[1]).close()\n")


def make_v1_database(tmp_path: Path) -> Path:
    v1 = load_v1_store(tmp_path)
    path = tmp_path / "sessions.sqlite"
    with v1.SessionStore(path) as store:
        store.add(v1.ChargingSession(0.0, 60.0, 1.0, 60.0, 7000.0, 0.5, "EUR", 0.5,
                                     extra={"first": True}))
        store.save_running(RUNNING)
    with closing(sqlite3.connect(path)) as raw:
        raw.executemany(
            "INSERT INTO sessions (start_s, end_s, energy_kwh, duration_s, peak_w, cost, "
            "currency, solar_share, extra_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ((60.0 * n, 60.0 * n + 60, 1.0, 60.0, 7000.0, 0.5, "EUR", 0.5, f'{{"n": {n}}}')
             for n in range(1, PADDING_ROWS + 1)))
        raw.commit()
    return path


def look(path: Path) -> tuple[int, int, str]:
    """(schema version, sessions, running record) of the file, checked whole."""
    with closing(sqlite3.connect(path)) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        version = raw.execute("SELECT version FROM schema_version").fetchone()[0]
        count = raw.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]
        records = raw.execute("SELECT record_json FROM running_session").fetchall()
        columns = {row[1] for row in raw.execute("PRAGMA table_info(sessions)")}
        assert ("loadpoint" in columns) == (version >= 2), (version, columns)
        assert ("co2_kg" in columns) == (version >= 3), (version, columns)
    assert len(records) == 1
    return version, count, records[0][0]


def run_child(path: Path, kill_at_wal_bytes: int | None) -> bool:
    """Open the store in a child; SIGKILL it once the WAL has grown past the mark. True when
    it was killed before it finished."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE,
                             env=env)
    try:
        assert child.stdout.readline() == b"ready\n"
        wal = Path(f"{path}-wal")
        deadline = time.monotonic() + START_S
        while child.poll() is None and time.monotonic() < deadline:
            if kill_at_wal_bytes is not None and wal.exists() \
                    and wal.stat().st_size >= kill_at_wal_bytes:
                child.send_signal(signal.SIGKILL)
                break
            time.sleep(0.0005)
        return child.wait(timeout=START_S) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_killed_mid_migration_the_file_is_whole_in_one_schema_or_the_other(tmp_path):
    path = make_v1_database(tmp_path)
    expected = look(path)
    assert expected[:2] == (1, PADDING_ROWS + 1)
    cut_short = 0
    for mark in KILL_AT_WAL_BYTES:
        assert not Path(f"{path}-wal").exists()    # the last look closed the file cleanly
        killed = run_child(path, mark)
        version, count, record = look(path)
        assert (count, record) == expected[1:], f"after the kill at a {mark} B log"
        if killed and version == 1:
            cut_short += 1
        assert version in (1, NEWEST), version      # never half-way (a lone version 2)
        if version == NEWEST:
            break
    assert cut_short >= 1, "no kill landed inside the migration"
    assert not run_child(path, None)
    assert look(path) == (NEWEST, *expected[1:])
    assert not any(".corrupt-" in name for name in os.listdir(tmp_path))
