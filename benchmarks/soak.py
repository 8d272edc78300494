"""Soak: the fault tier's trials (tests/faults/), run longer, with the figures printed.

- D-Bus fuzz: random SetValue writes from python3-dbus at phaeton's evcharger service on a
  scripted GX (writes tried, accepted, refused, refused-but-changed, crashes, errors logged);
- Modbus faults: every fault kind of the fault proxy (kill, stall, garble, nan, random), each
  `--repeats` times on one charging car: /Connected during the fault, the time from the charger
  answering again to the setpoint back on register 1210 (simulated and real seconds), log
  lines per simulated minute of the fault, errors logged (by phaeton, and by asyncio for a
  library that failed inside it);
- kill -9: the session/state writer killed `--kills` times (sessions lost or duplicated, files
  that did not open cleanly).

Everything runs on loopback and a private dbus-daemon, in temporary directories. The exit code
is 1 when any trial found something (the findings are printed), else 0.

Run: python benchmarks/soak.py [--writes 10000] [--repeats 3] [--kills 50] [--speed 20]
     [--seed 1] [--only dbus,modbus,crash]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests"), os.path.join(ROOT, "tests", "faults")]

from phaeton.sim.private_bus import PrivateBus  # noqa: E402
from scripted_gx import NAME, ScriptedGx  # noqa: E402
from trials.crash import run_crash_loop  # noqa: E402
from trials.dbus_fuzz import fuzz_findings, run_fuzz  # noqa: E402
from trials.logs import LogTally  # noqa: E402
from trials.modbus import (ALFEN_TIMEOUT_S, FAULT_KINDS, FAULT_S, FaultRig,  # noqa: E402
                           fault_findings, run_fault)

TRIALS = ("dbus", "modbus", "crash")


async def soak_dbus(bus: str, writes: int, seed: int) -> list[str]:
    with LogTally() as tally, tempfile.TemporaryDirectory(prefix="phaeton-soak-") as directory:
        async with ScriptedGx(bus, directory) as gx:
            app = await gx.start_phaeton()
            result = await run_fuzz(NAME, writes, seed, timeout_s=120 + writes * 0.1)
            ticks = app.site.ticks
            await gx.until(lambda: app.site.ticks >= ticks + 3, 60, "the control loop ticking on")
            limits = app.loadpoints[0].limits
        errors = tally.since(0).problems
    summary = result.summary or {}
    findings = fuzz_findings(result, limits.max_current_a, limits.min_current_a)
    findings += [f"logged: {text}" for text in errors]
    codes = summary.get("codes", {})
    refused = sum(n for code, n in codes.items() if code != "0") + \
        sum(summary.get("errors", {}).values())
    print(f"\nD-Bus fuzz (python3-dbus, seed {seed}, {result.real_s:.0f} s)")
    rows = [("writes tried", summary.get("tried", 0)),
            ("accepted (code 0)", summary.get("accepted", 0)),
            ("refused (code 1/2 or a D-Bus error)", refused),
            ("refused but changed a value", summary.get("refused_changed", "?")),
            ("accepted odd number text", summary.get("lenient_accepted", "?")),
            ("writes without an answer", summary.get("no_answer", "?")),
            ("crashes (service left the bus)", int(bool(summary.get("lost"))) if summary else 1),
            ("ERROR/traceback log records", len(errors))]
    for label, value in rows:
        print(f"  {label:<38} {value:>8}")
    print("  codes: " + ", ".join(f"{c}: {n}" for c, n in sorted(codes.items())) + "; errors: "
          + ", ".join(f"{e.rsplit('.', 1)[-1]}: {n}"
                      for e, n in sorted(summary.get("errors", {}).items())))
    return findings


async def soak_modbus(bus: str, repeats: int, speed: float, seed: int) -> list[str]:
    findings: list[str] = []
    print(f"\nModbus faults ({FAULT_S:g} s simulated each, clock x{speed:g}, Modbus timeout "
          f"{ALFEN_TIMEOUT_S:g} s real; 'back' = charger answering again -> setpoint on 1210)")
    print(f"  {'fault':<7} {'#':>2} {'/Conn 0':>8} {'back sim s':>10} {'back real s':>11} "
          f"{'lines/min':>9} {'warnings':>8} {'errors':>6} {'asyncio':>7}  findings")
    with LogTally() as tally, tempfile.TemporaryDirectory(prefix="phaeton-soak-") as directory:
        async with FaultRig(bus, directory, speed=speed, seed=seed) as rig:
            for round_number in range(1, repeats + 1):
                for kind in FAULT_KINDS:
                    result = await run_fault(rig, tally, kind)
                    found = fault_findings(result, speed, library=True)
                    findings += [f"{kind} #{round_number}: {text}" for text in found]
                    share = sum(1 for c in result.connected_samples if c == 0) \
                        / max(1, len(result.connected_samples))
                    print(f"  {kind:<7} {round_number:>2} {share:>7.0%} "
                          f"{result.reconnect_s:>10.2f} {result.reconnect_real_s:>11.3f} "
                          f"{result.log_lines_per_min:>9.1f} {len(result.log_warnings):>8} "
                          f"{len(result.log_problems):>6} {len(result.library_problems):>7}  "
                          f"{len(found) or '-'}")
    return findings


async def soak_crash(kills: int, seed: int) -> list[str]:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="phaeton-soak-") as directory:
        result = await run_crash_loop(directory, kills, seed)
    print(f"\nkill -9 during session writes ({time.monotonic() - started:.0f} s)")
    for label, value in (("kills", result.kills), ("sessions finished", result.sessions),
                         ("commits reported", result.writes_reported),
                         ("problems after a kill", len(result.findings))):
        print(f"  {label:<38} {value:>8}")
    return result.findings


async def main(args: argparse.Namespace) -> int:
    findings: list[str] = []
    with PrivateBus() as bus:
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = bus.address
        os.environ["DBUS_SESSION_BUS_ADDRESS"] = bus.address
        if "dbus" in args.only:
            findings += await soak_dbus(bus.address, args.writes, args.seed)
        if "modbus" in args.only:
            findings += await soak_modbus(bus.address, args.repeats, args.speed, args.seed)
        if "crash" in args.only:
            findings += await soak_crash(args.kills, args.seed)
    print(f"\n{len(findings)} finding(s)" + "".join(f"\n  - {text}" for text in findings))
    return 1 if findings else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=10_000, help="D-Bus writes (10000)")
    parser.add_argument("--repeats", type=int, default=3, help="each Modbus fault kind (3)")
    parser.add_argument("--kills", type=int, default=50, help="kill -9 rounds (50)")
    parser.add_argument("--speed", type=float, default=20.0, help="simulated clock speed (20)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", default=",".join(TRIALS),
                        type=lambda text: [t for t in text.split(",") if t],
                        help="trials to run, comma-separated: dbus,modbus,crash")
    parsed = parser.parse_args()
    unknown = set(parsed.only) - set(TRIALS)
    if unknown:
        parser.error(f"unknown trial(s) {', '.join(sorted(unknown))}")
    sys.exit(asyncio.run(main(parsed)))
