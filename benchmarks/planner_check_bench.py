"""The energy planner's periodic check, this tree against an earlier revision, same run.

The planner service checks every few seconds whether to re-plan and applies its plan to
Dynamic ESS. This script runs the real `PlannerService` (time-of-use tariff, `dess_schedule`,
the settings service and `com.victronenergy.system` on a private dbus-daemon) and, with a
clock that moves 5 s per check, measures the CPU the process spends per check over two
simulated hours, and how many plans were made in them (with `replan_s` 3600: 1 is right, one
per quarter hour was the old behaviour). The same script runs in a `git archive` of the
reference revision (default HEAD~4), rounds interleaved, and the ratio is printed.

Run: python benchmarks/planner_check_bench.py [--ref REV] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MEASURE = r'''
import asyncio, json, sys, tempfile, time
from phaeton.clock import ScaledClock
from phaeton.config import Config, default_config
from phaeton.planner.service import PlannerService, build_ess_writer
from phaeton.sim.private_bus import PrivateBus
from velib.service import VeDbusService
from velib.settings import SettingsClient
from velib.settings_service import SettingsService

START_S = 1_780_000_000.0
CHECK_S, HOURS = 5.0, 2


class Stepped(ScaledClock):
    def __init__(self):
        super().__init__(1.0, start=START_S)
        self.offset_s = 0.0
    def monotonic(self):
        return super().monotonic() + self.offset_s


def config(data_dir):
    data = default_config()
    data["data_dir"] = data_dir
    data["charger"]["alfen"] = {"host": "192.168.1.50"}
    p = data["planner"]
    p.update(horizon_h=48, ess_control="dess_schedule", replan_s=3600)
    p["battery"].update(capacity_kwh=10, min_soc_pct=10, allow_grid_charging=True)
    p["tariff"]["type"] = "time_of_use"
    p["tariff"]["time_of_use"].update(
        default_import_eur_per_kwh=0.40, default_export_eur_per_kwh=0.05,
        windows=[{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                  "start": "22:00", "end": "06:00", "import_eur_per_kwh": 0.10,
                  "export_eur_per_kwh": None}])
    return Config(data)


async def main(bus):
    import os
    os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = bus
    directory = tempfile.mkdtemp()
    settings = SettingsService(directory + "/settings")
    settings.add_setting("/Settings/DynamicEss/Mode", 0, 0, 4)
    await settings.register()
    system = VeDbusService("com.victronenergy.system")
    system.add_path("/Dc/Battery/Soc", 20.0)
    system.add_path("/DynamicEss/Active", 0)
    await system.register()
    client = SettingsClient()
    await client.start()
    await client.wait_until_available(10)
    clock = Stepped()
    cfg = config(directory + "/data")
    writer = build_ess_writer(cfg, client, clock=clock, system_value=system.__getitem__)
    service = PlannerService(cfg, clock, client, system.__getitem__, writer, check_s=3600)
    await service.start()
    while service.plans_made < 1:
        await asyncio.sleep(0.01)
    await service.tick()
    plans0 = service.plans_made
    checks = int(HOURS * 3600 / CHECK_S)
    cpu0 = time.process_time()
    for _ in range(checks):
        clock.offset_s += CHECK_S
        await service.tick()
    cpu = time.process_time() - cpu0
    replans = service.plans_made - plans0
    await service.stop()
    await client.close(); await system.close(); await settings.close()
    print(json.dumps({"checks": checks, "cpu_ms_per_check": cpu / checks * 1000,
                      "replans": replans}))


with PrivateBus() as bus:
    asyncio.run(main(bus.address))
'''


def _tree_of(revision: str) -> str:
    directory = tempfile.mkdtemp(prefix="phaeton-ref-")
    archive = subprocess.run(["git", "-C", ROOT, "archive", revision], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", directory], input=archive, check=True)
    return directory


def _measure(tree: str) -> dict:
    out = subprocess.run([sys.executable, "-c", MEASURE], cwd=tree, check=True,
                         capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=tree)).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default="HEAD~4", help="the revision to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    reference = _tree_of(args.ref)
    described = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h %s", args.ref],
                               capture_output=True, text=True).stdout.strip()
    print(f"reference: {args.ref} = {described}")
    results: dict[str, list[dict]] = {"this tree": [], args.ref: []}
    for _ in range(args.rounds):
        results["this tree"].append(_measure(ROOT))
        results[args.ref].append(_measure(reference))
    print(f"planner check, 2 h simulated in 5 s checks, replan_s 3600; {args.rounds} "
          f"interleaved rounds, medians")
    print(f"  {'':<12} {'CPU ms/check':>13} {'re-plans':>9}")
    medians = {}
    for label, rows in results.items():
        cpu = statistics.median(r["cpu_ms_per_check"] for r in rows)
        replans = statistics.median(r["replans"] for r in rows)
        medians[label] = cpu
        print(f"  {label:<12} {cpu:>13.3f} {replans:>9.0f}")
    print(f"  ratio (this tree / {args.ref}): "
          f"{medians['this tree'] / medians[args.ref]:.2f}")


if __name__ == "__main__":
    main()
