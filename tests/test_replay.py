"""`phaeton replay`: the record's checks, the known answers, and the command an owner runs.

The houses here are made up to give known answers (a flat price, the true forecast); the
year on a real household is benchmarks/replay_bench.py's job."""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import subprocess
import sys

import pytest

from phaeton.config import config_to_dict, load_config
from phaeton.replay.cli import ReplayError, replay
from phaeton.replay.history import HistoryError, read_record
from phaeton.replay.loop import MODES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START = int(dt.datetime(2017, 3, 1, tzinfo=dt.timezone.utc).timestamp())
DAY = 86400


def house_kwh(t: int) -> tuple[float, float]:
    """A house with an evening peak and a sunny day, the same every day."""
    hour = (t % DAY) / 3600.0
    load = 0.1 + (0.25 if 18 <= hour < 22 else 0.0)
    pv = 0.8 * math.sin((hour - 6) / 12 * math.pi) if 6 < hour < 18 else 0.0
    return load, pv


def write_history(path, days: int = 12, *, step: int = 900, skip=(), rows=None) -> str:
    lines = ["start_s,load_kwh,pv_kwh"]
    if rows is None:
        for i in range(days * DAY // step):
            t = START + i * step
            if t in skip:
                continue
            load, pv = house_kwh(t)
            scale = step / 900
            lines.append(f"{t},{load * scale:.4f},{pv * scale:.4f}")
    else:
        lines += rows
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def write_prices(path, days: int = 14, *, flat: bool = False) -> str:
    lines = ["start,spot_eur_per_kwh"]
    for i in range(days * 24):
        t = START + i * 3600
        hour = (t % DAY) / 3600
        price = 0.08 if flat else 0.05 + 0.08 * (17 <= hour < 21) - 0.04 * (11 <= hour < 15)
        lines.append(f"{t},{price:.4f}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def write_config(tmp_path, prices: str, *, export_price: float | None = None,
                 wear: float = 0.02) -> dict:
    export = f"\n    export_formula: {{fixed_eur_per_kwh: {export_price}}}" \
        if export_price is not None else ""
    text = f"""
charger:
  alfen: {{host: 192.0.2.1}}
planner:
  site: {{tz: UTC, latitude_deg: 47.7, longitude_deg: 9.2, pv_kwp: 5}}
  battery: {{capacity_kwh: 10, max_charge_kw: 5, max_discharge_kw: 5,
            round_trip_efficiency_pct: 90, degradation_eur_per_kwh: {wear}}}
  tariff:
    type: file
    file: {{location: {prices}}}
    import_formula: {{adder_eur_per_kwh: 0.20}}{export}
"""
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return config_to_dict(load_config(str(path)))


# ---- the record ---------------------------------------------------------------------------

@pytest.mark.parametrize("rows, message", [
    (["1488326400,0.1,0.0", "1488326400,0.1,0.0"], ":3: start_s 1488326400 repeats line 2"),
    (["1488327300,0.1,0.0", "1488326400,0.1,0.0"], ":3: start_s 1488326400 is before line 2"),
    (["1488326400,-0.1,0.0", "1488327300,0.1,0.0"], ":2: load_kwh -0.1 is negative"),
    (["1488326400,0.1,0.0", "1488327300,250,0.0"], ":3: load_kwh 250 kWh in 15 min is beyond"),
    (["1488326400,0.1,0.0", "1488327300,abc,0.0"], ":3: load_kwh 'abc' is not a number"),
    (["1488326400,0.1,0.0", "1488327300,nan,0.0"], ":3: load_kwh 'nan' is not a finite"),
    (["1488326400,0.1,0.0", "1488327400,0.1,0.0"], ":3: start_s 1488327400 is not on a quarter"),
    (["1488326400,0.1"], ":2: expected 3 fields"),
])
def test_a_bad_record_is_refused_naming_the_line(tmp_path, rows, message):
    path = write_history(tmp_path / "h.csv", rows=rows)
    with pytest.raises(HistoryError, match="h.csv" + message.replace("(", r"\(")):
        read_record(path)


def test_a_record_without_the_service_s_header_is_refused(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("time,load,pv\n1488326400,0.1,0.0\n")
    with pytest.raises(HistoryError, match=r"h.csv:1: the header must be start_s,load_kwh,pv_kwh"):
        read_record(path)


def test_hourly_rows_are_split_into_four_quarter_hours(tmp_path):
    record = read_record(write_history(tmp_path / "h.csv", days=2, step=3600))
    assert record.load_kwh.size == 2 * 96
    hourly = sum(4 * house_kwh(START + h * 3600)[0] for h in range(48))   # the rows' kWh
    assert record.load_kwh.sum() == pytest.approx(hourly, rel=1e-3)
    assert list(record.load_kwh[:4]) == pytest.approx([house_kwh(START)[0]] * 4, rel=1e-3)
    assert any("hourly rows" in note for note in record.notes)


def test_a_short_gap_in_the_replayed_days_is_filled_and_said(tmp_path):
    gap = {START + 9 * DAY + 12 * 3600 + q * 900 for q in range(4)}     # one hour at noon
    record = read_record(write_history(tmp_path / "h.csv", skip=gap))
    filled = record.filled(START + 8 * DAY, START + 10 * DAY)
    at = filled.index(min(gap))
    assert not math.isnan(filled.pv_kwh[at])
    assert 0.7 < filled.pv_kwh[at] < 0.81          # between its measured neighbours
    assert any("4 unmeasured quarter hour(s)" in note for note in filled.notes)


def test_a_long_gap_in_the_replayed_days_is_refused_with_the_line_before_it(tmp_path):
    gap = {START + 9 * DAY + q * 900 for q in range(12)}               # three hours
    path = write_history(tmp_path / "h.csv", skip=gap)
    record = read_record(path)
    line_before = 1 + 9 * 96                       # the header is line 1
    with pytest.raises(HistoryError, match=rf"3 h not measured after line {line_before} .*"
                                           r"--fill-gaps fills longer ones"):
        record.filled(START + 8 * DAY, START + 10 * DAY)


def test_a_long_gap_is_filled_from_the_day_before_only_when_asked(tmp_path):
    gap = {START + 9 * DAY + q * 900 for q in range(12)}
    record = read_record(write_history(tmp_path / "h.csv", skip=gap))
    filled = record.filled(START + 8 * DAY, START + 10 * DAY, long_gaps=True)
    at = filled.index(START + 9 * DAY)
    assert list(filled.load_kwh[at:at + 12]) == list(record.load_kwh[at - 96:at - 84])
    assert any("12 unmeasured quarter hour(s) in gaps longer than 2 h filled from the same "
               "time on the last measured day before" in note for note in filled.notes)


# ---- the replay -----------------------------------------------------------------------------

def test_too_little_house_before_the_first_day_is_refused(tmp_path):
    config = write_config(tmp_path, write_prices(tmp_path / "p.csv"))
    history = write_history(tmp_path / "h.csv")
    with pytest.raises(ReplayError, match=r"starts 3.0 days before --from; the forecasts need "
                                          r"at least 7 days"):
        replay(config, history, "2017-03-04", 2, "setpoint")


def test_prices_that_do_not_cover_the_days_are_refused(tmp_path):
    config = write_config(tmp_path, write_prices(tmp_path / "p.csv", days=9))
    history = write_history(tmp_path / "h.csv")
    with pytest.raises(ReplayError, match=r"has no price for 96 replayed quarter hour\(s\), "
                                          r"the first at 2017-03-10 00:00 UTC"):
        replay(config, history, "2017-03-09", 2, "setpoint")


def test_days_beyond_the_record_are_refused(tmp_path):
    config = write_config(tmp_path, write_prices(tmp_path / "p.csv"))
    history = write_history(tmp_path / "h.csv", days=10)
    with pytest.raises(HistoryError, match=r"covers 2017-03-01 to 2017-03-10, the replay needs "
                                           r"2017-03-10 to 2017-03-11"):
        replay(config, history, "2017-03-10", 2, "setpoint")


def test_with_a_flat_price_self_consumption_is_the_optimum(tmp_path):
    """Nothing to gain from prices: storing the surplus for the evening is all there is. (No
    wear: with wear, the optimum keeps the last evening's energy in the battery, where the
    stored-energy value pays it without the wear of taking it out.)"""
    config = write_config(tmp_path, write_prices(tmp_path / "p.csv", flat=True),
                          export_price=0.05, wear=0.0)
    result = replay(config, write_history(tmp_path / "h.csv"), "2017-03-09", 2, "setpoint")
    costs = {name: cell["cost_eur"] for name, cell in result["strategies"].items()}
    assert costs["nothing"] > costs["self_consumption"] + 1.0
    assert costs["self_consumption"] == pytest.approx(costs["perfect_foresight"], abs=0.05)
    assert result["strategies"]["self_consumption"]["share_of_optimum"] > 0.98


def test_with_the_true_forecast_the_loop_reaches_the_optimum(tmp_path):
    """The plan re-made every quarter hour over 48 h, told what really happens and executed
    by hub4's setpoint, costs what perfect foresight over the whole period costs."""
    import asyncio

    from phaeton.replay.cli import _prices, replay_window
    from phaeton.replay.loop import battery_of, replay_mode
    from phaeton.replay.report import perfect_foresight, period_cost
    from phaeton.planning.knobs import PlannerKnobs
    import numpy as np

    config = write_config(tmp_path, write_prices(tmp_path / "p.csv"))
    record = read_record(write_history(tmp_path / "h.csv"))
    from_s, to_s = replay_window("2017-03-09", 2, "UTC")
    series, prices = asyncio.run(_prices(config, from_s, to_s))
    slots = (to_s - from_s) // 900
    trace = asyncio.run(replay_mode(config, record, series, from_s, slots, "setpoint",
                                    true_forecast=True))
    battery = battery_of(config)
    knobs = PlannerKnobs.from_config(config["planner"])
    first = record.index(from_s)
    starts = from_s + 900 * np.arange(slots)
    optimum = perfect_foresight(starts, record.load_kwh[first:first + slots],
                                record.pv_kwh[first:first + slots], prices, battery, knobs, True)
    looped = period_cost(trace, prices, 0.02, battery, 0, slots)
    best = period_cost(optimum, prices, 0.02, battery, 0, slots)
    nothing_cost = float((np.clip(record.load_kwh[first:first + slots]
                                  - record.pv_kwh[first:first + slots], 0, None)
                          * prices.buy).sum()
                         - (np.clip(record.pv_kwh[first:first + slots]
                                    - record.load_kwh[first:first + slots], 0, None)
                            * prices.sell).sum())
    assert best < nothing_cost - 1.0
    assert (nothing_cost - looped) / (nothing_cost - best) > 0.97


def test_the_command_prints_every_strategy_per_month_and_the_forecast_errors(tmp_path):
    write_config(tmp_path, write_prices(tmp_path / "p.csv"))
    history = write_history(tmp_path / "h.csv")
    command = [sys.executable, "-m", "phaeton", "replay", "--config",
               str(tmp_path / "config.yaml"), "--history", history, "--from", "2017-03-09",
               "--days", "2"]
    done = subprocess.run(command + ["--json"], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result["strategies"]) == {"nothing", "self_consumption", *MODES,
                                         "perfect_foresight"}
    assert result["strategies"]["perfect_foresight"]["share_of_optimum"] == 1.0
    assert result["strategies"]["nothing"]["share_of_optimum"] == 0.0
    assert result["period"]["days"] == 2 and result["period"]["slots"] == 192
    for mode in MODES:
        assert set(result["forecast_mae"][mode]["pv"]) == {"0-1h", "1-4h", "4-24h", "24-48h"}
        assert result["forecast_mae"][mode]["load"]["1-4h"]["persistence"] == 0.0
    assert "100 %" in done.stderr                       # the progress lines
    text = subprocess.run(command + ["--mode", "dess_schedule"], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)
    assert text.returncode == 0, text.stderr
    assert "2017-03" in text.stdout and "dess_schedule" in text.stdout
    assert "setpoint" not in text.stdout.splitlines()[1]
    bad = subprocess.run(command[:-4] + ["--from", "2017-02-30", "--days", "2"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert bad.returncode == 2
    assert "--from '2017-02-30' is not a date (YYYY-MM-DD)" in bad.stderr


def test_what_the_house_paid_per_day_against_plain_self_consumption():
    from phaeton.replay.house import Battery
    from phaeton.replay.realised import realised_by_day

    battery = Battery(capacity_kwh=10, soc_min=0.1, soc_max=1.0, max_charge_kw=5,
                      max_discharge_kw=5, eff_in=1.0, eff_out=1.0)
    noon, evening = START + 12 * 3600, START + 19 * 3600
    rows = [
        # noon: 1 kWh surplus; the house sold it at 0.05 (the plan kept the battery for later)
        (noon, 0.2, 1.2, 0.0, 1.0, 0.30, 0.05),
        # evening: 1 kWh needed; the house bought it at 0.40
        (evening, 1.0, 0.0, 1.0, 0.0, 0.40, 0.05),
        # the next day, a quarter hour the house covered itself
        (START + DAY + 19 * 3600, 0.5, 0.0, 0.0, 0.0, 0.40, 0.05),
    ]
    result = realised_by_day(rows, battery, "UTC")
    first, second = result["days"]
    assert first["date"] == "2017-03-01"
    assert first["paid"] == pytest.approx(0.40 - 0.05)
    # self-consumption stored the noon surplus and ran the evening off it
    assert first["self_consumption"] == pytest.approx(0.0)
    assert first["saved"] == pytest.approx(-0.35)
    # the next day self-consumption's battery is empty again (at its minimum): it buys
    assert second["self_consumption"] == pytest.approx(0.5 * 0.40)
    assert second["paid"] == 0.0
    assert result["total"]["saved"] == pytest.approx(-0.35 + 0.2)
    assert realised_by_day([], battery, "UTC") is None
