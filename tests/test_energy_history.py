"""The quarter-hour energy history the forecasts learn from: integration of the tick readings
(gaps, boundaries, a clock set back) and the CSV file (round trip, bad lines, trimming, a data
directory that cannot be written)."""
from __future__ import annotations

import logging
import math
import os
import tempfile
from pathlib import Path

import pytest

from phaeton.planning.energy_meter import SLOT_S, QuarterHourMeter, SlotEnergy
from phaeton.store.energy_history import EnergyHistoryFile, read_history

from unprivileged import run_unprivileged

T0 = 1_780_000_200          # the start of a quarter hour (unix s)


def feed(meter, start_s, end_s, load_w, pv_w, step_s=2.0):
    done, t = [], start_s
    while t <= end_s:
        done += meter.add(t, load_w, pv_w)
        t += step_s
    return done


def test_constant_power_gives_exact_quarter_hours():
    meter = QuarterHourMeter()
    done = feed(meter, T0, T0 + 3 * SLOT_S, 2000.0, 1000.0)
    assert [s.start_s for s in done] == [T0, T0 + SLOT_S, T0 + 2 * SLOT_S]
    for slot in done:
        assert slot.load_kwh == pytest.approx(0.5) and slot.pv_kwh == pytest.approx(0.25)


def test_readings_between_boundaries_are_split_by_time():
    meter = QuarterHourMeter()
    feed(meter, T0, T0 + SLOT_S - 10, 3600.0, 0.0, step_s=10)   # last reading 10 s before
    [first] = meter.add(T0 + SLOT_S + 20, 0.0, 0.0)             # 10 s old, 20 s new slot
    assert first.load_kwh == pytest.approx(3600.0 * SLOT_S / 3.6e6)
    done = feed(meter, T0 + SLOT_S + 30, T0 + 2 * SLOT_S, 0.0, 0.0, step_s=10)
    assert done[0].load_kwh == pytest.approx(3600.0 * 20 / 3.6e6)


def test_a_part_measured_quarter_hour_is_not_learned_from():
    meter = QuarterHourMeter()
    done = feed(meter, T0 + 400, T0 + SLOT_S + 10, 1000.0, 500.0)   # started 400 s late
    assert math.isnan(done[0].load_kwh) and math.isnan(done[0].pv_kwh)


def test_a_gap_in_the_readings_is_not_filled():
    meter = QuarterHourMeter()
    feed(meter, T0, T0 + 100, 1000.0, 0.0)
    done = meter.add(T0 + 700, 1000.0, 0.0)           # 10 min without readings
    done += feed(meter, T0 + 702, T0 + SLOT_S + 5, 1000.0, 0.0)
    assert math.isnan(done[0].load_kwh)               # 300 s of 900 measured
    # a longer outage (service stopped) closes the open slot, skips the rest
    meter = QuarterHourMeter()
    feed(meter, T0, T0 + 600, 1000.0, 0.0)
    done = meter.add(T0 + 5 * SLOT_S + 3, 1000.0, 0.0)
    assert [s.start_s for s in done] == [T0] and math.isnan(done[0].load_kwh)
    # stopped late in a quarter hour: what was measured (over 80 %) still counts
    meter = QuarterHourMeter()
    feed(meter, T0, T0 + 800, 1000.0, 0.0)
    [slot] = meter.add(T0 + 5 * SLOT_S + 3, 1000.0, 0.0)
    assert slot.load_kwh == pytest.approx(1000.0 * 800 / 3.6e6)


def test_unknown_power_and_nonsense_count_as_not_measured():
    meter = QuarterHourMeter()
    done = feed(meter, T0, T0 + SLOT_S, None, float("nan"))
    assert math.isnan(done[0].load_kwh) and math.isnan(done[0].pv_kwh)
    meter = QuarterHourMeter()
    done = feed(meter, T0, T0 + SLOT_S, -500.0, 800.0)   # a meter's negative blip: 0, not less
    assert done[0].load_kwh == 0.0 and done[0].pv_kwh == pytest.approx(0.2)


def test_a_clock_set_back_starts_over_without_a_bogus_slot():
    meter = QuarterHourMeter()
    feed(meter, T0, T0 + 600, 1000.0, 0.0)
    assert meter.add(T0 - 3600, 1000.0, 0.0) == []
    done = feed(meter, T0 - 3600 + 2, T0 - 3600 + SLOT_S, 1000.0, 0.0)
    assert [s.start_s for s in done] == [T0 - 3600]


def slots(n, start=T0, load=0.3, pv=0.1):
    return [SlotEnergy(start + i * SLOT_S, load, pv) for i in range(n)]


def test_file_round_trip_survives_a_restart(tmp_path):
    path = tmp_path / "energy_history.csv"
    history = EnergyHistoryFile(path)
    history.append(slots(3) + [SlotEnergy(T0 + 3 * SLOT_S, math.nan, math.nan)])  # left out
    history.append([SlotEnergy(T0 + 4 * SLOT_S, 0.2, math.nan)])
    assert path.read_text().splitlines()[0] == "start_s,load_kwh,pv_kwh"
    again = EnergyHistoryFile(path)
    again.load()
    data = again.history()
    assert list(data.t_s) == [T0, T0 + SLOT_S, T0 + 2 * SLOT_S, T0 + 4 * SLOT_S]
    assert data.load_kwh[-1] == 0.2 and math.isnan(data.pv_kwh[-1])
    assert EnergyHistoryFile(tmp_path / "none.csv").history() is None


def test_damaged_lines_are_skipped_and_the_rest_kept(tmp_path):
    path = tmp_path / "energy_history.csv"
    path.write_bytes(b"start_s,load_kwh,pv_kwh\n1000,0.2,0.1\n\xff\xfe garbage\n1900,x,0\n"
                     b"2800,0.3,\n")
    history = read_history(path)
    assert list(history.t_s) == [1000.0, 2800.0]
    assert len(history.load_kwh) == len(history.pv_kwh) == 2


def test_old_days_are_trimmed_with_an_atomic_rewrite(tmp_path):
    path = tmp_path / "energy_history.csv"
    history = EnergyHistoryFile(path, keep_days=1)
    history.append(slots(96 + 96))                   # two days: within the day of slack
    assert history.rows == 192
    history.append(slots(1, start=T0 + 192 * SLOT_S))
    assert history.rows == 96
    lines = path.read_text().splitlines()
    assert len(lines) == 97 and lines[1].startswith(f"{T0 + 97 * SLOT_S},")
    reloaded = EnergyHistoryFile(path, keep_days=1)
    reloaded.load()
    assert reloaded.rows == 96


def test_an_unwritable_data_directory_keeps_the_history_in_memory(caplog):
    directory = Path(tempfile.mkdtemp(prefix="phaeton-ro-"))
    try:
        path = directory / "energy_history.csv"
        EnergyHistoryFile(path).append(slots(1))
        before = path.read_text()
        path.chmod(0o444)
        directory.chmod(0o555)

        def append_read_only():
            with caplog.at_level(logging.WARNING):
                history = EnergyHistoryFile(path)
                history.load()
                history.append(slots(2, start=T0 + SLOT_S))
                history.append(slots(1, start=T0 + 3 * SLOT_S))
            warnings = [r for r in caplog.records if "not written" in r.getMessage()]
            return history.rows, len(warnings)

        assert run_unprivileged(append_read_only) == "(4, 1)"   # one warning, nothing lost
        assert path.read_text() == before
    finally:
        directory.chmod(0o755)
        for entry in directory.iterdir():
            entry.chmod(0o644)
            entry.unlink()
        directory.rmdir()


def test_money_history_keeps_measured_priced_quarter_hours_across_a_restart(tmp_path):
    from phaeton.store.energy_history import MoneyHistoryFile, read_money_history
    path = tmp_path / "money_history.csv"
    history = MoneyHistoryFile(path)
    prices = {0: (0.30, 0.05), 900: (0.32, 0.05)}
    history.append([SlotEnergy(0, 0.3, 0.1, 0.2, 0.0),
                    SlotEnergy(900, 0.3, 0.5, 0.0, 0.2),
                    SlotEnergy(1800, 0.3, 0.5, 0.0, 0.2),           # no price: left out
                    SlotEnergy(2700, 0.3, 0.5)],                     # grid not measured
                   lambda start: prices.get(start))
    with path.open("a") as handle:
        handle.write("3600,garbage,,,\n")                           # a damaged line
    again = MoneyHistoryFile(path)
    again.load()
    assert again.rows == read_money_history(path) == [
        (0, 0.3, 0.1, 0.2, 0.0, 0.30, 0.05), (900, 0.3, 0.5, 0.0, 0.2, 0.32, 0.05)]


def test_the_meter_keeps_grid_import_and_export_apart():
    meter = QuarterHourMeter()
    slots = []
    for second in range(0, 1801, 10):
        grid = 1200.0 if second < 450 else -400.0       # import, then export
        slots += meter.add(second, 500.0, 300.0, grid)
    first = slots[0]
    assert first.grid_import_kwh == pytest.approx(1200 * 450 / 3.6e6)
    assert first.grid_export_kwh == pytest.approx(400 * 450 / 3.6e6)
