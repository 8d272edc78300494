"""SessionStore: finished sessions, totals, CSV, bounded history, running session, bad files."""
from __future__ import annotations

import csv
import io
import logging
import os
import sqlite3
import tempfile
from pathlib import Path

import pytest

from phaeton.store.sessions import ChargingSession, SessionStore, SessionStoreError

from unprivileged import run_unprivileged

DAY_S = 86400
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def session(start_s, hours=2.0, energy_kwh=10.0, cost=3.0, currency="EUR", solar=0.5,
            **extra):
    return ChargingSession(start_s=start_s, end_s=start_s + hours * 3600, energy_kwh=energy_kwh,
                           duration_s=hours * 3600, peak_w=11000.0, cost=cost,
                           currency=currency, solar_share=solar, extra=extra)


@pytest.fixture
def store(tmp_path):
    with SessionStore(tmp_path / "sessions.db") as opened:
        yield opened


def test_added_sessions_come_back_newest_first_after_reopening(tmp_path):
    path = tmp_path / "sessions.db"
    with SessionStore(path) as first:
        first_id = first.add(session(T0, car="Zoe", tags=["work"]))
        first.add(session(T0 + DAY_S, energy_kwh=20.5))
    with SessionStore(path) as reopened:
        listed = reopened.list_sessions()
    assert [s.start_s for s in listed] == [T0 + DAY_S, T0]
    assert listed[1].id == first_id
    assert listed[1].extra == {"car": "Zoe", "tags": ["work"]}
    assert listed[0].energy_kwh == 20.5 and listed[0].duration_s == 7200
    assert listed[0].currency == "EUR" and listed[0].peak_w == 11000


def test_date_filter_limit_and_offset(store):
    for day in range(10):
        store.add(session(T0 + day * DAY_S))
    week = store.list_sessions(since_s=T0 + 2 * DAY_S, until_s=T0 + 9 * DAY_S)
    assert [int((s.start_s - T0) // DAY_S) for s in week] == [8, 7, 6, 5, 4, 3, 2]
    page = store.list_sessions(limit=3, offset=3)
    assert [int((s.start_s - T0) // DAY_S) for s in page] == [6, 5, 4]
    assert store.list_sessions(since_s=T0 + 100 * DAY_S) == []
    with pytest.raises(ValueError, match="limit and offset must be ≥ 0"):
        store.list_sessions(limit=-1)


def test_totals_sum_energy_solar_duration_and_cost_per_currency(store):
    store.add(session(T0, energy_kwh=10, cost=3.0, solar=1.0))
    store.add(session(T0 + DAY_S, energy_kwh=30, cost=9.0, solar=0.0))
    store.add(session(T0 + 2 * DAY_S, energy_kwh=5, cost=2.5, currency="CHF", solar=0.4))
    totals = store.totals()
    assert totals.count == 3
    assert totals.energy_kwh == pytest.approx(45)
    assert totals.solar_energy_kwh == pytest.approx(12)
    assert totals.duration_s == pytest.approx(3 * 7200)
    assert totals.cost_by_currency == pytest.approx({"CHF": 2.5, "EUR": 12.0})
    first_day = store.totals(since_s=T0, until_s=T0 + DAY_S)
    assert (first_day.count, first_day.energy_kwh) == (1, 10)
    empty = store.totals(since_s=T0 + 50 * DAY_S)
    assert (empty.count, empty.energy_kwh, empty.cost_by_currency) == (0, 0, {})


def test_csv_export_has_a_header_and_one_row_per_session_oldest_first(store):
    store.add(session(T0 + DAY_S, energy_kwh=7.25, note="guest, \"blue\" car"))
    store.add(session(T0))
    rows = list(csv.DictReader(io.StringIO(store.export_csv())))
    assert [row["start_utc"] for row in rows] == ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"]
    assert rows[1]["end_utc"] == "2026-01-02T02:00:00Z"
    assert rows[1]["energy_kwh"] == "7.25" and rows[1]["currency"] == "EUR"
    assert rows[1]["extra"] == '{"note": "guest, \\"blue\\" car"}'
    only_second = list(csv.DictReader(io.StringIO(store.export_csv(since_s=T0 + 1))))
    assert len(only_second) == 1
    assert store.export_csv(since_s=T0 + 10 * DAY_S).splitlines()[0].startswith("id,start_utc")


def test_history_is_bounded_and_the_oldest_go_first(tmp_path):
    with SessionStore(tmp_path / "sessions.db", history_limit=3) as store:
        for day in [4, 0, 2, 1, 3]:
            store.add(session(T0 + day * DAY_S))
        kept = [int((s.start_s - T0) // DAY_S) for s in store.list_sessions()]
    assert kept == [4, 3, 2]


@pytest.mark.parametrize("change, message", [
    ({"end_s": T0 - 1}, "end_s .* is before start_s"),
    ({"energy_kwh": -1.0}, "energy_kwh must be ≥ 0"),
    ({"solar_share": 1.5}, "solar_share must be within 0..1"),
    ({"cost": float("nan")}, "cost must be a finite number"),
    ({"peak_w": "lots"}, "peak_w must be a finite number"),
    ({"currency": ""}, "currency must be non-empty text"),
    ({"extra": {"when": object()}}, "extra cannot be stored as JSON"),
])
def test_bad_sessions_are_refused_with_the_field_named(store, change, message):
    fields = {**session(T0).__dict__, **change}
    with pytest.raises(ValueError, match=message):
        store.add(ChargingSession(**fields))
    assert store.totals().count == 0


def test_history_limit_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="history_limit must be a whole number ≥ 1, got 0"):
        SessionStore(tmp_path / "s.db", history_limit=0)


def test_running_session_survives_a_restart_until_cleared(tmp_path):
    path = tmp_path / "sessions.db"
    record = {"start_s": T0, "energy_kwh": 3.2, "meter_start_kwh": 1500.0, "peak_w": 7400}
    with SessionStore(path) as before_restart:
        assert before_restart.load_running() is None
        before_restart.save_running({"start_s": T0, "energy_kwh": 1.0})
        before_restart.save_running(record)
    with SessionStore(path) as after_restart:
        assert after_restart.load_running() == record
        after_restart.clear_running()
        assert after_restart.load_running() is None
    with SessionStore(path) as again:
        assert again.load_running() is None
    with SessionStore(path) as store, pytest.raises(ValueError, match="cannot be stored as JSON"):
        store.save_running({"start": object()})


def test_finishing_the_running_session_is_one_transaction(tmp_path):
    """Storing the finished session and forgetting the running record succeed or fail
    together: a failure (or a crash) between them used to leave both, so the restarted service
    continued the stored session and stored it a second time."""
    path = tmp_path / "sessions.db"
    with SessionStore(path) as store:
        store.save_running({"start_s": T0, "energy_kwh": 3.0})
        with sqlite3.connect(path) as raw:          # the second step fails, e.g. a full disk
            raw.execute("CREATE TRIGGER refuse BEFORE DELETE ON running_session "
                        "BEGIN SELECT RAISE(ABORT, 'disk full'); END")
        with pytest.raises(SessionStoreError, match="disk full"):
            store.finish_running(session(T0, energy_kwh=3.0))
        assert store.list_sessions() == []          # nothing half-done
        assert store.load_running() == {"start_s": T0, "energy_kwh": 3.0}
        with sqlite3.connect(path) as raw:
            raw.execute("DROP TRIGGER refuse")
        store.finish_running(session(T0, energy_kwh=3.0))
    with SessionStore(path) as after_restart:
        assert after_restart.load_running() is None
        assert [s.start_s for s in after_restart.list_sessions()] == [T0]


def test_corrupt_database_is_moved_aside_and_a_fresh_one_started(tmp_path, caplog):
    path = tmp_path / "sessions.db"
    path.write_bytes(b"this is not an SQLite database\n" * 200)
    with caplog.at_level(logging.ERROR):
        with SessionStore(path) as store:
            store.add(session(T0))
            assert store.totals().count == 1
    kept = [name for name in os.listdir(tmp_path) if name.startswith("sessions.db.corrupt-")]
    assert len(kept) == 1
    assert (tmp_path / kept[0]).read_bytes() == b"this is not an SQLite database\n" * 200
    assert "damaged" in caplog.text and kept[0] in caplog.text


def test_damaged_pages_inside_a_real_database_are_detected(tmp_path):
    path = tmp_path / "sessions.db"
    with SessionStore(path) as store:
        for day in range(300):
            store.add(session(T0 + day * DAY_S, note="x" * 200))
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = bytearray(path.read_bytes())
    page = 4096
    for offset in range(2 * page, len(raw) - page, page):
        raw[offset:offset + 64] = b"\xa5" * 64  # scribble over every page header but the first
    path.write_bytes(bytes(raw))
    with SessionStore(path) as store:
        assert store.totals().count == 0
        store.add(session(T0))
        assert store.totals().count == 1
    assert any(".corrupt-" in name for name in os.listdir(tmp_path))


def test_damage_found_while_running_is_recovered_and_the_call_retried(tmp_path, caplog):
    path = tmp_path / "sessions.db"
    with SessionStore(path) as store:
        for day in range(300):
            store.add(session(T0 + day * DAY_S, note="x" * 300))
    with SessionStore(path) as store:  # opened and checked while the file was still good
        with open(path, "r+b") as raw:  # then the sessions' pages get damaged on disk
            for offset in range(10 * 4096, path.stat().st_size - 4096, 4096):
                raw.seek(offset)
                raw.write(b"\xa5" * 64)
        other = sqlite3.connect(path, isolation_level=None)  # another writer: caches go stale
        other.execute("INSERT INTO running_session VALUES (1, '{}')")
        other.close()
        with caplog.at_level(logging.ERROR):
            assert store.totals().count == 0
        store.add(session(T0))
        assert store.totals().count == 1
    assert "damaged" in caplog.text
    assert any(".corrupt-" in name for name in os.listdir(tmp_path))


def test_database_from_an_unknown_schema_version_is_kept_aside(tmp_path):
    path = tmp_path / "sessions.db"
    with SessionStore(path) as store:
        store.add(session(T0))
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE schema_version SET version = 99")
    with SessionStore(path) as store:
        assert store.totals().count == 0
    assert any(".corrupt-" in name for name in os.listdir(tmp_path))


def test_closed_store_says_so(tmp_path):
    store = SessionStore(tmp_path / "sessions.db")
    store.close()
    with pytest.raises(SessionStoreError, match="closed"):
        store.totals()


def test_read_only_directory_is_a_clear_error(tmp_path):
    directory = Path(tempfile.mkdtemp(prefix="phaeton-ro-"))
    try:
        directory.chmod(0o555)
        outcome = run_unprivileged(lambda: SessionStore(directory / "sessions.db"))
        assert outcome.startswith(f"SessionStoreError: cannot open session database "
                                  f"{directory / 'sessions.db'}"), outcome
        assert os.listdir(directory) == []
    finally:
        directory.rmdir()


def test_co2_is_stored_and_none_stays_none(store):
    store.add(ChargingSession(T0, T0 + 3600, 10.0, 3600.0, 7400.0, 3.0, "EUR", 0.5,
                              co2_kg=2.125))
    store.add(ChargingSession(T0 + 7200, T0 + 9000, 1.0, 1800.0, 7400.0, 0.3, "EUR", 0.0))
    newest, oldest = store.list_sessions()
    assert (newest.co2_kg, oldest.co2_kg) == (None, 2.125)


@pytest.mark.parametrize("co2_kg", [-0.1, float("nan"), "much", True])
def test_a_bad_co2_is_refused(store, co2_kg):
    with pytest.raises(ValueError, match="co2_kg must be a finite number"):
        store.add(ChargingSession(T0, T0 + 60, 1.0, 60.0, 1000.0, 0.3, "EUR", 0.0,
                                  co2_kg=co2_kg))
