"""Sessions per loadpoint: a sessions.sqlite written by the one-charger store (schema version 1,
the code of commit V1_COMMIT, run as it was) opens with every session and the running record;
loadpoints keep their running sessions and histories apart; a newer file is left as it is.

Sessions with CO2: a file written by the version-2 store (the code of V2_COMMIT) opens as
version 3 with every field and the running records kept, `co2_kg` NULL for its sessions."""
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
# the last commit of phaeton/store/sessions.py with schema version 2 (per loadpoint, no
# co2_kg): its content is that of HEAD when version 3 was written; pinned so the test keeps
# writing a version-2 file after version 3 is committed
V2_COMMIT = "1821d98eaa69819dca57b640860953db7ef6be3e"
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
DAY_S = 86400
RUNNING = {"session_id": "7", "started_at_s": T0 + 9 * DAY_S, "energy_kwh": 4.25,
           "meter_start_kwh": 1500.5}


def load_old_store(directory: Path, commit: str, version: int):
    """The module phaeton/store/sessions.py as it was at `commit`, imported from a file."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip(f"needs the git history of the repository (git show {commit})")
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{commit}:phaeton/store/sessions.py"],
        check=True, capture_output=True, text=True).stdout
    name = f"sessions_v{version}"
    path = directory / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module      # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    assert module.SCHEMA_VERSION == version
    return module


def load_v1_store(directory: Path):
    """The module phaeton/store/sessions.py as it was at V1_COMMIT."""
    return load_old_store(directory, V1_COMMIT, 1)


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
    """The fields version 1 had (no loadpoint, no co2_kg)."""
    values = asdict(session)
    values.pop("loadpoint", None)
    values.pop("co2_kg", None)
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
        assert [s.co2_kg for s in after] == [None] * 6      # not accounted then
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


# ---- version 2 -> 3: co2_kg ---------------------------------------------------------------------

RUNNING_GARAGE = {"session_id": "9", "started_at_s": T0 + 12 * DAY_S, "energy_kwh": 1.5,
                  "co2_g": 300.0, "version": 1}


def all_fields(session) -> dict:
    values = asdict(session)
    values.pop("co2_kg", None)
    return values


@pytest.fixture
def v2_database(tmp_path):
    """A sessions.sqlite written by the version-2 store: sessions of two loadpoints (every
    field set; ids 1..6, a seventh deleted), a running record for each. Returns (path,
    stored sessions)."""
    v2 = load_old_store(tmp_path, V2_COMMIT, 2)
    path = tmp_path / "sessions.sqlite"
    with v2.SessionStore(path) as store:
        for day in range(6):
            store.add(v2.ChargingSession(
                start_s=T0 + day * DAY_S + 0.5, end_s=T0 + day * DAY_S + 1800 * (day + 1),
                energy_kwh=2.5 * day + 0.25, duration_s=1800.0 * (day + 1),
                peak_w=11000.0 - day, cost=-0.1 if day == 3 else 0.25 * day,
                currency="CHF" if day == 1 else "EUR", solar_share=day / 8,
                extra={"car": "ID.3", "tags": [day, {"x": None}]} if day == 5 else {},
                loadpoint="garage" if day % 2 else "street"))
        stored = store.list_sessions(limit=100)
        store.add(v2.ChargingSession(T0, T0 + 1, 0.0, 1.0, 0.0, 0.0, "EUR", 0.0))   # id 7
        store.save_running(RUNNING, loadpoint="street")
        store.save_running(RUNNING_GARAGE, loadpoint="garage")
    with closing(sqlite3.connect(path)) as raw:
        raw.execute("DELETE FROM sessions WHERE id = 7")
        raw.commit()
        assert raw.execute("SELECT version FROM schema_version").fetchall() == [(2,)]
    with v2.SessionStore(path) as store:          # what the web showed before
        csv_before = store.export_csv()
        totals_before = store.totals(loadpoint="garage")
    assert [s.id for s in stored] == [6, 5, 4, 3, 2, 1]
    return path, stored, csv_before, totals_before


def test_a_version_2_database_opens_as_version_3_with_every_field(v2_database):
    path, before, csv_before, totals_before = v2_database
    with SessionStore(path) as store:
        after = store.list_sessions(limit=100)
        assert [all_fields(s) for s in after] == [all_fields(s) for s in before]
        assert [s.co2_kg for s in after] == [None] * 6
        assert store.load_running(loadpoint="street") == RUNNING
        assert store.load_running(loadpoint="garage") == RUNNING_GARAGE
        assert store.export_csv() == csv_before
        assert asdict(store.totals(loadpoint="garage")) == asdict(totals_before)
        new_id = store.add(ChargingSession(T0 + 20 * DAY_S, T0 + 20 * DAY_S + 60, 1.0, 60.0,
                                           3000.0, 0.2, "EUR", 0.0, co2_kg=0.4))
        assert store.list_sessions(limit=1)[0].co2_kg == 0.4
    assert new_id == 8                    # ids go on after the highest ever given (7)
    with closing(sqlite3.connect(path)) as raw:
        assert raw.execute("SELECT version FROM schema_version").fetchall() == [(3,)]
        assert raw.execute("SELECT COUNT(*) FROM sessions WHERE co2_kg IS NULL").fetchone() \
            == (6,)
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_migrated_version_2_database_has_the_schema_of_a_new_one(v2_database, tmp_path):
    path, *_ = v2_database
    SessionStore(path).close()
    fresh = tmp_path / "fresh.sqlite"
    SessionStore(fresh).close()
    assert [row for row in schema_of(path) if row[1] != "sqlite_sequence"] \
        == [row for row in schema_of(fresh) if row[1] != "sqlite_sequence"]


def test_a_failed_migration_leaves_version_2_as_it_was(v2_database, monkeypatch):
    path, before, *_ = v2_database
    schema_before = schema_of(path)
    real = sessions_module._MIGRATIONS[2]

    def fails_at_the_end(connection, loadpoint):
        real(connection, loadpoint)
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setitem(sessions_module._MIGRATIONS, 2, fails_at_the_end)
    with pytest.raises(SessionStoreError, match="disk I/O error"):
        SessionStore(path)
    assert schema_of(path) == schema_before
    with closing(sqlite3.connect(path)) as raw:
        assert raw.execute("SELECT version FROM schema_version").fetchall() == [(2,)]
        assert raw.execute("SELECT COUNT(*) FROM sessions").fetchone() == (6,)
    monkeypatch.undo()
    with SessionStore(path) as store:
        assert [all_fields(s) for s in store.list_sessions()] == [all_fields(s) for s in before]


def test_a_version_1_database_goes_through_2_to_3_in_one_transaction(v1_database,
                                                                     monkeypatch):
    """v1 -> v3: both steps or neither; a failure in the second leaves version 1."""
    path, before = v1_database
    real = sessions_module._MIGRATIONS[2]

    def fails(connection, loadpoint):
        real(connection, loadpoint)
        raise sqlite3.OperationalError("disk full")

    monkeypatch.setitem(sessions_module._MIGRATIONS, 2, fails)
    with pytest.raises(SessionStoreError, match="disk full"):
        SessionStore(path)
    with closing(sqlite3.connect(path)) as raw:
        assert raw.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
        assert "loadpoint" not in {row[1] for row in raw.execute("PRAGMA table_info(sessions)")}
    monkeypatch.undo()
    with SessionStore(path) as store:
        after = store.list_sessions()
        assert [fields(s) for s in after] == [fields(s) for s in before]
        assert {s.co2_kg for s in after} == {None}
        assert store.load_running() == RUNNING
    with closing(sqlite3.connect(path)) as raw:
        assert raw.execute("SELECT version FROM schema_version").fetchall() == [(3,)]


def test_a_version_2_file_without_a_version_row_is_judged_by_its_columns(v2_database):
    path, before, *_ = v2_database
    with closing(sqlite3.connect(path)) as raw:
        raw.execute("DROP TABLE schema_version")
        raw.commit()
    with SessionStore(path) as store:
        assert [all_fields(s) for s in store.list_sessions()] == [all_fields(s) for s in before]
    with closing(sqlite3.connect(path)) as raw:
        assert raw.execute("SELECT version FROM schema_version").fetchall() == [(3,)]
        # and a version-3 file without its row is taken for version 3 (no second migration)
        raw.execute("DROP TABLE schema_version")
        raw.commit()
    with SessionStore(path) as store:
        assert len(store.list_sessions()) == 6
