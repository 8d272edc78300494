"""`phaeton plan`: the printed table and total against the HiGHS oracle, JSON, bad input."""
from __future__ import annotations

import asyncio
import io
import json
import re
from argparse import Namespace

import pytest
from planner_oracle import solve_lp

from phaeton.config import load_config
from phaeton.planner.cli import gather_prices, make_plan, run_from_cli
from phaeton.store.energy_history import read_history
from phaeton.venus.planner_settings import PREFIX
from velib.service import VeDbusService
from velib.settings_service import SettingsService

NOW_S = 1_780_000_000.0  # a Thursday in May 2026, 20:26 UTC

SMALL = """
data_dir: {data}
charger: {{alfen: {{host: 192.168.1.50}}}}
planner:
  horizon_h: 24
  site: {{pv_kwp: 6, latitude_deg: 52.5, longitude_deg: 13.4}}
  battery: {{capacity_kwh: 10, assumed_soc_pct: 40, degradation_eur_per_kwh: 0.01}}
  ev: {{target_soc_pct: {ev_target}}}
  tariff:
    type: time_of_use
    time_of_use:
      default_import_eur_per_kwh: 0.34
      default_export_eur_per_kwh: 0.07
      windows:
        - {{start: "22:00", end: "06:00", import_eur_per_kwh: 0.18}}
        - {{start: "17:00", end: "20:00", import_eur_per_kwh: 0.45}}
"""


def write_config(tmp_path, ev_target=0, text=SMALL):
    path = tmp_path / "config.yaml"
    path.write_text(text.format(data=tmp_path / "data", ev_target=ev_target))
    return str(path)


def run(path, **extra):
    """`phaeton plan` in-process; from the config's assumptions unless `assumed=False`."""
    extra.setdefault("assumed", True)
    out, err = io.StringIO(), io.StringIO()
    code = run_from_cli(Namespace(config=path, now_s=NOW_S, **extra), out, err)
    return code, out.getvalue(), err.getvalue()


def rebuild(path):
    config = load_config(path)
    prices, _ = asyncio.run(gather_prices(config, NOW_S))
    return make_plan(config, NOW_S, prices, None)


def test_printed_total_cost_equals_the_lp_optimum(tmp_path):
    path = write_config(tmp_path)
    code, out, _ = run(path)
    assert code == 0
    total = float(re.search(r"^Total cost: (-?[\d.]+) EUR$", out, re.MULTILINE).group(1))
    problem, _, baseline = rebuild(path)
    oracle = solve_lp(problem)
    assert total == pytest.approx(oracle.cost_eur, rel=0.01, abs=1e-3)
    nothing = float(re.search(r"^Doing nothing: (-?[\d.]+)", out, re.MULTILINE).group(1))
    assert nothing == pytest.approx(baseline.cost_eur, abs=1e-3)
    assert total < nothing  # a battery and a cheap night: the plan saves money
    rows = [line for line in out.splitlines() if re.match(r"^(\w{3} \d\d |\s{7})\d\d:\d\d ", line)]
    assert len(rows) == 96  # 24 h of quarter hours, one row each
    assert "Shortfall: none" in out


def test_json_output_has_every_slot_and_the_same_totals(tmp_path):
    path = write_config(tmp_path, ev_target=80)
    code, out, _ = run(path, json=True)
    assert code == 0
    result = json.loads(out)
    assert len(result["slots"]) == 96
    first = result["slots"][0]
    assert set(first) >= {"start", "import_eur_per_kwh", "export_eur_per_kwh", "pv_kwh",
                          "load_kwh", "battery_kwh", "ev_kwh", "grid_kwh", "soc_pct", "why"}
    assert first["start_s"] == int(NOW_S // 900 * 900)
    # the car (60 kWh, assumed 30 % -> 80 %) gets its 30 kWh before 07:00, for less than
    # charging at once, and never for less than the LP relaxation (no minimum power) allows
    assert result["ev_delivered_kwh"] == pytest.approx(30.0, abs=1.0)
    assert result["shortfall"] is None
    assert result["total_cost_eur"] < result["do_nothing_cost_eur"]
    problem, _, _ = rebuild(path)
    assert result["total_cost_eur"] >= solve_lp(problem).cost_eur - 1e-6
    departure = int(NOW_S // 900 * 900) + 35 * 900  # 07:00 local on the next morning
    assert result["slots"][35]["start"].startswith("2026-05-29T07:00")
    assert all(s["ev_kwh"] < 1e-9 for s in result["slots"] if s["start_s"] >= departure)
    assert result["savings_eur"] == pytest.approx(
        result["do_nothing_cost_eur"] - result["total_cost_eur"])


def test_an_unreachable_ev_target_prints_the_shortfall(tmp_path):
    text = SMALL.replace("ev: {{target_soc_pct: {ev_target}}}",
                         "ev: {{target_soc_pct: {ev_target}, target_kwh: 400, "
                         "capacity_kwh: 450}}")
    code, out, _ = run(write_config(tmp_path, ev_target=80, text=text))
    assert code == 0
    match = re.search(r"^Shortfall: ([\d.]+) kWh \((.+)\)$", out, re.MULTILINE)
    assert match and float(match.group(1)) > 100


def test_offline_without_cache_uses_the_static_prices_and_says_so(tmp_path):
    text = SMALL.split("  tariff:")[0] + (
        "  tariff:\n    type: file\n    file: {{location: 'http://127.0.0.1:9/prices.csv'}}\n"
        "    timeout_s: 2\n    static: {{import_eur_per_kwh: 0.25, export_eur_per_kwh: 0.05}}\n")
    code, out, _ = run(write_config(tmp_path, text=text), json=True)
    assert code == 0
    result = json.loads(out)
    assert {s["import_eur_per_kwh"] for s in result["slots"]} == {0.25}
    assert any("using planner.tariff.static" in note for note in result["notes"])


def test_invalid_config_and_unusable_tariff_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("planner:\n  battery:\n    capacity_kwh: -3\n")
    code, _, err = run(str(bad))
    assert code == 1 and "planner.battery.capacity_kwh" in err
    text = SMALL.split("  tariff:")[0] + "  tariff:\n    type: tibber\n"
    code, _, err = run(write_config(tmp_path, text=text))  # refused when the config is loaded
    assert code == 1 and "planner.tariff.tibber.token: is required" in err
    code, _, err = run(str(tmp_path / "missing.yaml"))
    assert code == 2


def test_history_file_is_read_and_bad_rows_skipped(tmp_path):
    path = tmp_path / "energy_history.csv"
    path.write_text("start_s,load_kwh,pv_kwh\n1000,0.2,0.1\nnot-a-time,1,1\n1900,0.3,\n")
    history = read_history(path)
    assert list(history.t_s) == [1000.0, 1900.0]
    assert history.load_kwh[1] == 0.3 and history.pv_kwh[1] != history.pv_kwh[1]  # NaN
    assert read_history(tmp_path / "none.csv") is None


def test_without_a_home_battery_the_soc_column_is_empty(tmp_path):
    text = SMALL.replace("capacity_kwh: 10, ", "capacity_kwh: 0, ")
    code, out, _ = run(write_config(tmp_path, text=text), json=True)
    assert code == 0
    slots = json.loads(out)["slots"]
    assert all(s["soc_pct"] is None and s["battery_kwh"] == 0 for s in slots)


def test_phaeton_plan_on_the_demos_data_matches_the_lp_optimum(tmp_path):
    """`phaeton plan` with exactly the config `phaeton demo` runs: the oracle confirms it."""
    import yaml

    from phaeton.sim.demo import demo_config
    from phaeton.sim.world import SimWorld
    from phaeton.web.passwords import hash_password

    async def config_of_the_demo():
        async with SimWorld(speed=1.0) as world:
            return demo_config(world, str(tmp_path / "data"), 8088, hash_password("demo-password"))

    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(asyncio.run(config_of_the_demo())))
    code, out, err = run(str(path))
    assert code == 0, err
    total = float(re.search(r"^Total cost: (-?[\d.]+) EUR$", out, re.MULTILINE).group(1))
    problem, _, _ = rebuild(str(path))
    assert total == pytest.approx(solve_lp(problem).cost_eur, rel=0.01, abs=1e-2)


# ---- live inputs from the GX ------------------------------------------------------------------

@pytest.fixture
async def live_gx(private_bus, tmp_path):
    """A GX on the private bus: system (battery at 63 %), settings with two planner knobs
    changed on the GX (Strategy off, EvTargetSoc 90), and phaeton's charger, no car."""
    settings = SettingsService(str(tmp_path / "settings"))
    settings.add_setting(PREFIX + "Strategy", 0, 0, 2)
    settings.add_setting(PREFIX + "EvTargetSoc", 90.0, 0.0, 100.0)
    system = VeDbusService("com.victronenergy.system")
    system.add_path("/Dc/Battery/Soc", 63.0)
    system.add_path("/Control/ActiveSocLimit", 10.0)
    charger = VeDbusService("com.victronenergy.evcharger.phaeton_0")
    charger.add_path("/Status", 0)
    for service in (settings, system, charger):
        await service.register()
    yield settings, system, charger
    for service in (settings, system, charger):
        await service.close()


async def test_on_a_gx_the_plan_starts_from_the_live_soc_knobs_and_plug_state(live_gx, tmp_path):
    _, _, charger = live_gx
    path = write_config(tmp_path, ev_target=80)
    code, out, err = await asyncio.to_thread(run, path, json=True, assumed=False)
    assert code == 0, err
    result = json.loads(out)
    assert result["strategy"] == "off"                       # the GX's knob, not config's
    assert all(slot["soc_pct"] == pytest.approx(63.0) for slot in result["slots"])
    assert result["ev_delivered_kwh"] == 0.0                 # no car at the charger
    note = result["notes"][0]
    assert note.startswith("live inputs: battery SoC 63 % from the GX")
    from phaeton.venus.planner_settings import KNOBS
    assert f"knobs from the GX settings (2 of {len(KNOBS)}" in note   # 2 set on this GX
    assert "car not plugged in (com.victronenergy.evcharger.phaeton_0)" in note

    charger["/Status"] = 1                                   # a car arrives
    code, out, _ = await asyncio.to_thread(run, path, json=True, assumed=False)
    result = json.loads(out)
    # 60 kWh car, assumed at 30 %, to the GX's 90 % target
    assert result["ev_delivered_kwh"] == pytest.approx(36.0, abs=1.0)


async def test_assumed_ignores_the_gx(live_gx, tmp_path):
    code, out, _ = await asyncio.to_thread(run, write_config(tmp_path), json=True)
    result = json.loads(out)
    assert result["strategy"] == "optimise"
    assert result["notes"][0].startswith("assumed inputs: battery SoC 40 %")
    assert "(--assumed)" in result["notes"][0]


def test_without_a_gx_bus_the_plan_says_it_assumed(tmp_path, monkeypatch):
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/no-such-socket")
    code, out, _ = run(write_config(tmp_path), assumed=False)
    assert code == 0
    note = next(line for line in out.splitlines() if line.startswith("Note: assumed inputs"))
    assert "battery SoC 40 %" in note and "the GX's D-Bus is not reachable" in note


async def test_on_a_gx_the_ess_minimum_is_the_battery_floor(live_gx, tmp_path):
    settings, system, _ = live_gx
    settings[PREFIX + "Strategy"] = 2                        # optimise, set on the GX
    system["/Control/ActiveSocLimit"] = 55.0                 # BatteryLife raised it
    code, out, _ = await asyncio.to_thread(
        run, write_config(tmp_path), json=True, assumed=False)
    result = json.loads(out)
    assert result["strategy"] == "optimise"
    assert "the GX's ESS minimum 55 % as the battery floor" in result["notes"][0]
    assert min(slot["soc_pct"] for slot in result["slots"]) >= 55.0 - 1e-6
