"""The power flow history behind the dashboard's chart: a row a minute of the ticks' means,
kept 48 h on disk, read back as columns; a torn line or a missing file loses nothing else."""
from __future__ import annotations

import json

import pytest

from phaeton.store.power_history import KEEP_S, STEP_S, PowerHistory, as_columns

T0 = 1_780_000_020 // 60 * 60


def values(pv, ev=None, soc=50.0):
    return {"pv_w": pv, "house_w": 500.0, "battery_w": -200.0, "grid_w": 100.0,
            "soc_pct": soc, "ev_w": {"0": ev}}


def test_each_minute_is_the_mean_of_its_ticks_and_is_written_when_it_is_over(tmp_path):
    history = PowerHistory(str(tmp_path / "h.jsonl"))
    for second, pv in ((0, 1000.0), (20, 2000.0), (40, 3000.0)):
        history.add(T0 + second, values(pv, ev=None if second == 0 else 7000.0))
    assert not (tmp_path / "h.jsonl").exists()                 # the minute is not over yet
    assert history.rows(T0)[0]["pv_w"] == 2000.0               # but it can be read
    history.add(T0 + 60, values(500.0))
    [written] = [json.loads(line) for line in (tmp_path / "h.jsonl").read_text().splitlines()]
    assert written["t"] == T0 and written["pv_w"] == 2000.0
    assert written["ev_w"] == {"0": 7000.0}                     # the tick without a value left out
    rows = history.rows(T0)
    assert [r["t"] for r in rows] == [T0, T0 + 60]


def test_nothing_measured_is_null_not_zero(tmp_path):
    history = PowerHistory(str(tmp_path / "h.jsonl"))
    history.add(T0, {"pv_w": None, "house_w": float("nan"), "battery_w": True, "ev_w": {}})
    history.add(T0 + STEP_S, values(1.0))
    row = history.rows(T0)[0]
    assert row["pv_w"] is None and row["house_w"] is None and row["battery_w"] is None


def test_rows_older_than_two_days_are_cut_back_and_a_torn_line_is_skipped(tmp_path):
    path = tmp_path / "h.jsonl"
    old = {"t": T0 - KEEP_S - 60, "pv_w": 1.0}
    path.write_text(json.dumps(old, separators=(",", ":")) + "\n" + '{"t":' + str(T0 - 60) +
                    ',"pv_w":12\n')                               # the crash's half line
    history = PowerHistory(str(path))
    history.add(T0, values(5.0))                                  # the first add prunes
    assert str(T0 - KEEP_S - 60) not in path.read_text()
    history.add(T0 + 60, values(6.0))
    assert [r["t"] for r in history.rows(0)] == [T0, T0 + 60]


def test_columns_per_field_and_per_charger(tmp_path):
    history = PowerHistory(str(tmp_path / "h.jsonl"))
    history.add(T0, values(1000.0, ev=7000.0))
    history.add(T0 + 60, {**values(2000.0), "ev_w": {"0": None, "garage": 3000.0}})
    columns = as_columns(history.rows(T0), ["0", "garage"])
    assert columns["time_s"] == [T0, T0 + 60] and columns["step_s"] == 60
    assert columns["pv_w"] == [1000.0, 2000.0]
    assert columns["ev_w"] == {"0": [7000.0, None], "garage": [None, 3000.0]}
    assert columns["soc_pct"] == [50.0, 50.0]


def test_an_unwritable_file_is_a_warning_not_a_crash(tmp_path, caplog):
    history = PowerHistory(str(tmp_path / "missing-dir" / "h.jsonl"))
    history.add(T0, values(1.0))
    history.add(T0 + 60, values(2.0))
    assert "power history not written" in caplog.text
    assert history.rows(T0)[-1]["pv_w"] == pytest.approx(2.0)


async def test_in_the_service_the_hourly_cut_back_runs_off_the_event_loop(tmp_path):
    """An fsync of half a megabyte on a GX's flash must not hold up the control tick: with an
    event loop running, the cut-back goes to a worker thread, and an append made meanwhile is
    kept."""
    import asyncio
    import threading

    path = tmp_path / "h.jsonl"
    path.write_text(json.dumps({"t": T0 - KEEP_S - 60, "pv_w": 1.0}, separators=(",", ":"))
                    + "\n")
    history = PowerHistory(str(path))
    threads: list[str] = []
    started, release = threading.Event(), threading.Event()
    real = history._prune_locked

    def slow_prune(now_s):
        threads.append(threading.current_thread().name)
        started.set()
        release.wait(5)
        real(now_s)
    history._prune_locked = slow_prune
    history.add(T0, values(5.0))                    # returns at once: the prune waits
    assert await asyncio.to_thread(started.wait, 5)
    assert threads and threads[0] != threading.main_thread().name
    history.add(T0 + 60, values(6.0))               # a minute ends while the prune runs:
    history.add(T0 + 120, values(7.0))              # the tick does not wait for the file
    assert [r["t"] for r in history.rows(T0 - 60)] == [T0, T0 + 60, T0 + 120]   # none missing
    release.set()
    for _ in range(250):
        if str(T0 + 60) in path.read_text():
            break
        await asyncio.sleep(0.02)
    assert [json.loads(line)["t"] for line in path.read_text().splitlines()] == [T0, T0 + 60]
    assert [r["t"] for r in history.rows(0)] == [T0, T0 + 60, T0 + 120]   # the old one cut


async def test_read_in_a_worker_thread_gives_what_rows_gives(tmp_path):
    history = PowerHistory(str(tmp_path / "h.jsonl"))
    for minute in range(3):
        history.add(T0 + 60 * minute, values(100.0 * minute))
    assert await history.read(T0) == history.rows(T0)
    assert [r["t"] for r in await history.read(T0 + 60)] == [T0 + 60, T0 + 120]
