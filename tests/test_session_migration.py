"""Sessions per loadpoint: a sessions.sqlite written by the one-charger store (schema version 1,
the code of commit V1_COMMIT, run as it was) opens with every session and the running record;
loadpoints keep their running sessions and histories apart; a newer file is left as it is."""
from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from dataclasses import asdict
from pathlib import Path

import pytest

from phaeton.store import sessions as sessions_module
from phaeton.store.sessions import (DEFAULT_LOADPOINT, SCHEMA_VERSION, ChargingSession,
                                    SessionStore, SessionStoreError)

REPO = Path(__file__).resolve().parent.parent
# the last commit of phaeton/store/sessions.py with schema version 1 (one charger)
V1_COMMIT = "10212673d9e8aed789b8be9411cf7166d08f53c3"
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
DAY_S = 86400
RUNNING = {"session_id": "7", "started_at_s": T0 + 9 * DAY_S, "energy_kwh": 4.25,
           "meter_start_kwh": 1500.5}


def load_v1_store(directory: Path):
    """The module phaeton/store/sessions.py as it was at V1_COMMIT, imported from a file."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs the git history of the repository (git show V1_COMMIT)")
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{V1_COMMIT}:phaeton/store/sessions.py"],
        check=True, capture_output=True, text=True).stdout
    path = directory / "sessions_v1.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("sessions_v1", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["sessions_v1"] = module      # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["sessions_v1"]
    assert module.SCHEMA_VERSION == 1
    return module


def v1_sessions(v1):
    """Sessions with every field set, one whose extra holds nested JSON and one in CHF."""
    made = []
    for day in range(6):
        made.append(v1.ChargingSession(
            start_s=T0 + day * DAY_S + 0.25, end_s=T0 + day * DAY_S + 3600 * (day + 1),
            energy_kwh=1.5 * day + 0.125, duration_s=3600.0 * (day + 1), peak_w=7400.0 + day,
            cost=0.3 * day, currency="CHF" if day == 4 else "EUR", solar_share=day / 10,
            extra={"car": "Zoe", "tags": ["work", day]} if day == 2 else {}))
    return made


@pytest.fixture
def v1_database(tmp_path):
    """A sessions.sqlite written by the version-1 store: six sessions (ids 1..6; a seventh was
    deleted, so the next id is 8, not 7) and a running record. Returns (path, stored sessions)."""
    v1 = load_v1_store(tmp_path)
    path = tmp_path / "sessions.sqlite"
    with v1.SessionStore(path) as store:
        for session in v1_sessions(v1):
            store.add(session)
        stored = store.list_sessions(limit=100)
        store.add(v1_sessions(v1)[0])            # id 7, deleted below
        store.save_running(RUNNING)
    with closing(sqlite3.connect(path)) as raw:
        raw.execute("DELETE FROM sessions WHERE id = 7")
        raw.commit()
    assert [s.id for s in stored] == [6, 5, 4, 3, 2, 1]
    return path, stored


def fields(session) -> dict:
    values = asdict(session)
    values.pop("loadpoint", None)
    return values


def schema_of(path: Path) -> list[tuple]:
    with closing(sqlite3.connect(path)) as raw:
        return raw.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()


def test_a_version_1_database_opens_with_every_session_and_the_running_record(v1_database):
    path, before = v1_database
    with SessionStore(path) as store:
        after = store.list_sessions(limit=100)
        assert [fields(s) for s in after] == [fields(s) for s in before]
        assert {s.loadpoint for s in after} == {DEFAULT_LOADPOINT}
        assert store.load_running() == RUNNING
        assert store.totals().count == 6
        assert store.totals().cost_by_currency == pytest.approx({"CHF": 1.2, "EUR": 3.3})
        new_id = store.add(ChargingSession(T0 + 20 * DAY_S, T0 + 20 * DAY_S + 60, 1.0, 60.0,
                                           3000.0, 0.2, "EUR", 0.0))
    assert new_id == 8                    # ids go on after the highest ever given (7)
    with closing(sqlite3.connect(path)) as raw:
        assert raw.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_the_migration_keeps_the_web_queries_results(v1_database, tmp_path):
    path, _ = v1_database
    v1 = load_v1_store(tmp_path)
    with v1.SessionStore(path) as old:
        csv_before = old.export_csv()
        totals_before = old.totals(since_s=T0 + DAY_S, until_s=T0 + 5 * DAY_S)
        page_before = old.list_sessions(since_s=T0, limit=2, offset=1)
    with SessionStore(path) as store:
        assert store.export_csv() == csv_before
        assert asdict(store.totals(since_s=T0 + DAY_S, until_s=T0 + 5 * DAY_S)) \
            == asdict(totals_before)
        assert [fields(s) for s in store.list_sessions(since_s=T0, limit=2, offset=1)] \
            == [fields(s) for s in page_before]


def test_the_migrated_rows_belong_to_the_loadpoint_the_store_is_opened_with(v1_database):
    path, before = v1_database
    with SessionStore(path, loadpoint="garage") as store:
        assert store.load_running() == RUNNING
        assert len(store.list_sessions(loadpoint="garage")) == len(before)
        assert store.list_sessions(loadpoint=DEFAULT_LOADPOINT) == []
        assert store.load_running(loadpoint=DEFAULT_LOADPOINT) is None


def test_a_migrated_database_has_the_schema_of_a_new_one(v1_database, tmp_path):
    path, _ = v1_database
    SessionStore(path).close()
    migrated = schema_of(path)
    fresh = tmp_path / "fresh.sqlite"
    SessionStore(fresh).close()
    without_sequence = [row for row in migrated if row[1] != "sqlite_sequence"]
    assert without_sequence == [row for row in schema_of(fresh) if row[1] != "sqlite_sequence"]


def test_a_second_open_changes_nothing(v1_database):
    path, _ = v1_database
    SessionStore(path).close()
    with closing(sqlite3.connect(path)) as raw:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    image = path.read_bytes()
    with SessionStore(path) as store:
        assert store.totals().count == 6
        assert store.load_running() == RUNNING
    with closing(sqlite3.connect(path)) as raw:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert path.read_bytes() == image


def test_a_failed_migration_leaves_version_1_as_it_was(v1_database, monkeypatch):
    """Every step of the migration ran, then the disk failed before the commit: nothing of it
    stays, and the next open migrates."""
    path, before = v1_database
    schema_before = schema_of(path)
    real = sessions_module._MIGRATIONS[1]

    def fails_at_the_end(connection, loadpoint):
        real(connection, loadpoint)
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setitem(sessions_module._MIGRATIONS, 1, fails_at_the_end)
    with pytest.raises(SessionStoreError, match="disk I/O error"):
        SessionStore(path)
    assert schema_of(path) == schema_before
    with closing(sqlite3.connect(path)) as raw:
        assert raw.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
        assert raw.execute("SELECT COUNT(*) FROM sessions").fetchone() == (6,)
        assert raw.execute("SELECT id, record_json FROM running_session").fetchone()[0] == 1
    monkeypatch.undo()
    with SessionStore(path) as store:
        assert [fields(s) for s in store.list_sessions()] == [fields(s) for s in before]
        assert store.load_running() == RUNNING


def test_two_loadpoints_each_keep_their_running_session(tmp_path):
    path = tmp_path / "sessions.sqlite"
    with SessionStore(path, loadpoint="garage") as garage, \
            SessionStore(path, loadpoint="street") as street:
        garage.save_running({"started_at_s": T0, "energy_kwh": 1.0})
        street.save_running({"started_at_s": T0 + 60, "energy_kwh": 2.0})
        assert garage.load_running() == {"started_at_s": T0, "energy_kwh": 1.0}
        assert street.load_running() == {"started_at_s": T0 + 60, "energy_kwh": 2.0}
        garage.finish_running(ChargingSession(T0, T0 + 600, 1.5, 600.0, 7400.0, 0.5, "EUR",
                                              0.2))
        assert garage.load_running() is None
        assert street.load_running() == {"started_at_s": T0 + 60, "energy_kwh": 2.0}
        assert [s.loadpoint for s in street.list_sessions()] == ["garage"]   # reads see all
        assert street.list_sessions(loadpoint="street") == []
        assert street.totals(loadpoint="garage").energy_kwh == 1.5
        street.clear_running()
        assert street.load_running() is None
    with SessionStore(path) as one_store:     # one store can serve both by name, too
        one_store.save_running({"energy_kwh": 3.0}, loadpoint="street")
        assert one_store.load_running(loadpoint="street") == {"energy_kwh": 3.0}
        assert one_store.load_running() is None
        assert one_store.load_running(loadpoint="garage") is None


def test_each_loadpoint_keeps_its_own_bounded_history(tmp_path):
    with SessionStore(tmp_path / "sessions.sqlite", history_limit=2) as store:
        for day in range(4):
            store.add(ChargingSession(T0 + day * DAY_S, T0 + day * DAY_S + 60, 1.0, 60.0,
                                      1000.0, 0.0, "EUR", 0.0, loadpoint="garage"))
        store.add(ChargingSession(T0, T0 + 60, 2.0, 60.0, 1000.0, 0.0, "EUR", 0.0))
        assert [(s.loadpoint, int((s.start_s - T0) // DAY_S)) for s in store.list_sessions()] \
            == [("garage", 3), ("garage", 2), (DEFAULT_LOADPOINT, 0)]
        csv_rows = store.export_csv(loadpoint=DEFAULT_LOADPOINT).splitlines()
        assert len(csv_rows) == 2 and csv_rows[1].startswith("5,")


@pytest.mark.parametrize("loadpoint", ["", None, 3])
def test_a_loadpoint_is_non_empty_text(tmp_path, loadpoint):
    with pytest.raises(ValueError, match="loadpoint must be non-empty text"):
        SessionStore(tmp_path / "s.sqlite", loadpoint=loadpoint)
    assert not (tmp_path / "s.sqlite").exists()


def test_a_database_from_a_newer_phaeton_is_refused_and_kept_unchanged(tmp_path, caplog):
    """The file is not migrated, not written, and kept beside (under the name every unusable
    file gets); the service goes on with a new, empty file and says why in the log."""
    path = tmp_path / "sessions.sqlite"
    with SessionStore(path) as store:
        store.add(ChargingSession(T0, T0 + 60, 1.0, 60.0, 1000.0, 0.0, "EUR", 0.0))
        store.save_running({"energy_kwh": 1.0})
    with closing(sqlite3.connect(path)) as raw:
        raw.execute(f"UPDATE schema_version SET version = {SCHEMA_VERSION + 1}")
        raw.execute("DROP TABLE running_session")    # what a later version might well do
        raw.commit()
    image = path.read_bytes()
    assert not os.path.exists(f"{path}-wal")
    with caplog.at_level(logging.ERROR), SessionStore(path) as store:
        assert store.totals().count == 0
    kept = [name for name in os.listdir(tmp_path) if name.startswith("sessions.sqlite.corrupt-")
            and not name.endswith(("-wal", "-shm"))]
    assert len(kept) == 1
    assert (tmp_path / kept[0]).read_bytes() == image
    assert f"schema version {SCHEMA_VERSION + 1} is newer than this phaeton's " \
           f"{SCHEMA_VERSION}" in caplog.text
    assert "cannot be used" in caplog.text and kept[0] in caplog.text


def test_a_file_without_a_version_row_is_judged_by_its_columns(v1_database):
    path, before = v1_database
    with closing(sqlite3.connect(path)) as raw:
        raw.execute("DROP TABLE schema_version")
        raw.commit()
    with SessionStore(path) as store:
        assert len(store.list_sessions()) == len(before)
        assert store.load_running() == RUNNING
    with closing(sqlite3.connect(path)) as raw:
        assert raw.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_another_programs_database_is_kept_aside_untouched(tmp_path, caplog):
    path = tmp_path / "sessions.sqlite"
    with closing(sqlite3.connect(path)) as raw:
        raw.execute("CREATE TABLE notes (text TEXT)")
        raw.execute("INSERT INTO notes VALUES ('keep me')")
        raw.commit()
    image = path.read_bytes()
    with caplog.at_level(logging.ERROR), SessionStore(path) as store:
        assert store.totals().count == 0
    kept = [name for name in os.listdir(tmp_path) if name.startswith("sessions.sqlite.corrupt-")]
    assert [(tmp_path / name).read_bytes() for name in kept] == [image]
    assert "not a session database" in caplog.text
