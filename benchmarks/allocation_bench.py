"""Benchmark: one `allocate` for 20 chargers on 3 circuits against one single-charger controller step.

The site: a 63 A three-phase grid connection with two 32 A sub-circuits below it ('left',
'right'); 20 chargers spread over the three (three-phase and single-phase on each phase, two
priorities), more than the room holds at their minimums, so admission, reservations, the
water-filling and the rotation all run. Each round the room changes a little (house load noise)
and the clock advances 2 s, with one `RotationState` kept across rounds.

In the same run, interleaved with it round by round, one `ChargeController.step` of a lone
charger (Auto, 16 A maximum, three-phase, in the sun with a varying house load) is timed: what
a tick costs today per loadpoint. Inputs are built before the clock starts; only the call is
timed.

Prints p50/p99 of both and their ratio. Pure Python, seeded, no I/O:
    python benchmarks/allocation_bench.py [--rounds 20000] [--seed 1]
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import datetime, timedelta

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from phaeton.chargers.base import VehicleState
from phaeton.control.allocator import Claim, RotationState, allocate
from phaeton.control.circuit import Circuit
from phaeton.control.controller import ChargeController, ControllerInputs
from phaeton.control.readings import EvReadings, SiteReadings
from phaeton.control.settings import ControlSettings

V = 230.0
DT_S = 2.0
START = datetime(2026, 6, 3, 11, 0)
BUDGET_S = 1e-3                      # one allocation for 20 chargers: at most 1 ms at p99


def site_tree() -> tuple[Circuit, Circuit, Circuit]:
    main = Circuit("main", 63.0)
    return main, Circuit("left", 32.0, main), Circuit("right", 32.0, main)


def twenty_claims(rng: random.Random, tree: tuple[Circuit, ...]) -> list[Claim]:
    claims = []
    for i in range(20):
        circuit = tree[i % 3]
        phases = (0, 1, 2) if i % 2 == 0 else (i % 3,)
        want = 0.0 if i % 7 == 6 else rng.uniform(6.0, 32.0)
        claims.append(Claim(f"ev{i:02d}", circuit, phases, 6.0, want, priority=1 if i % 5 == 0 else 0))
    return claims


def room_series(rng: random.Random, tree: tuple[Circuit, ...], rounds: int) -> list[dict]:
    """Per round, the room left per circuit and phase (limit minus a noisy house load)."""
    base = {circuit.name: [rng.uniform(0.0, 0.3) * circuit.max_current_a for _ in range(3)] for circuit in tree}
    series = []
    for _ in range(rounds):
        room = {}
        for circuit in tree:
            for phase in range(3):
                house = max(0.0, base[circuit.name][phase] + rng.gauss(0.0, 1.0))
                room[(circuit.name, phase)] = circuit.max_current_a - house
        series.append(room)
    return series


def site_readings(house_w: tuple[float, float, float], ev_w: tuple[float, float, float],
                  pv_ac_w: float) -> SiteReadings:
    """Consistent GX readings: grid per phase = house + EV - PV/3 (no battery)."""
    grid = tuple(house_w[p] + ev_w[p] - pv_ac_w / 3 for p in range(3))
    return SiteReadings(pv_on_grid_w=(pv_ac_w / 3,) * 3, grid_w=grid,
                        consumption_w=tuple(house_w[p] + ev_w[p] for p in range(3)),
                        battery_soc_pct=80.0, battery_power_w=0.0, active_soc_limit_pct=10.0,
                        active_input_source=1, age_s=0.0)


def controller_inputs(rng: random.Random, amps: float) -> ControllerInputs:
    ev_w = (amps * V,) * 3 if amps > 0 else (0.0, 0.0, 0.0)
    house = tuple(max(0.0, rng.gauss(400.0, 150.0)) for _ in range(3))
    ev = EvReadings(vehicle_state=VehicleState.CHARGING if amps > 0 else VehicleState.CONNECTED,
                    power_w=ev_w, phases=3)
    return ControllerInputs(mode=1, start_stop=1, set_current_a=16, max_current_a=16, auto_start=1,
                            site=site_readings(house, ev_w, rng.uniform(6000.0, 9000.0)), ev=ev)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def run(rounds: int, seed: int) -> dict[str, list[float]]:
    rng = random.Random(seed)
    tree = site_tree()
    claims = twenty_claims(rng, tree)
    rooms = room_series(rng, tree, rounds)
    state = RotationState()
    controller = ChargeController(ControlSettings())
    amps = 0.0
    times: dict[str, list[float]] = {"allocate": [], "step": []}
    clock = time.perf_counter
    for n in range(-200, rounds):                    # 200 rounds of warm-up, not counted
        room = rooms[n % rounds]
        now_s = (n + 200) * DT_S
        started = clock()
        allocate(room, claims, now_s, state)
        allocated = clock() - started
        inputs = controller_inputs(rng, amps)
        local = START + timedelta(seconds=now_s)
        started = clock()
        decision = controller.step(inputs, now_s, local)
        stepped = clock() - started
        amps = decision.current_a
        if n >= 0:
            times["allocate"].append(allocated)
            times["step"].append(stepped)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.rounds <= 0:
        parser.error("--rounds must be > 0")
    times = run(args.rounds, args.seed)
    alloc_p50, alloc_p99 = percentile(times["allocate"], 0.5), percentile(times["allocate"], 0.99)
    step_p50, step_p99 = percentile(times["step"], 0.5), percentile(times["step"], 0.99)
    print(f"allocation_bench: {args.rounds} interleaved rounds (seed {args.seed})")
    print(f"allocate, 20 chargers / 3 circuits   p50 {alloc_p50 * 1e6:7.1f} us   p99 {alloc_p99 * 1e6:7.1f} us")
    print(f"ChargeController.step, 1 charger     p50 {step_p50 * 1e6:7.1f} us   p99 {step_p99 * 1e6:7.1f} us")
    print(f"ratio allocate / step                p50 {alloc_p50 / step_p50:7.2f}x     p99 {alloc_p99 / step_p99:7.2f}x")
    verdict = "within" if alloc_p99 <= BUDGET_S else "OVER"
    print(f"budget: allocate p99 {verdict} {BUDGET_S * 1e3:g} ms")


if __name__ == "__main__":
    main()
