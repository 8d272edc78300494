"""Benchmark: a year of 10 s steps of the site model + charge controller + a commuting car.

The car is home evenings, nights and weekends; Auto (solar surplus) while its SoC is >= 40 %,
Scheduled (22:00-06:00) below that.

Prints the wall time, microseconds per step and the result (energy charged, solar share).
Pure Python, seeded, no I/O:  python benchmarks/control_bench.py [--days 365] [--seed 1]
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import datetime

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from phaeton.chargers.base import Capability, VehicleState
from phaeton.control.controller import ChargeController, ControllerInputs
from phaeton.control.readings import EvReadings
from phaeton.control.session import SessionEnded, SessionTracker
from phaeton.control.settings import ControlSettings
from phaeton.sim.ev import SimulatedEV
from phaeton.sim.site import SiteModel

DT_S = 10.0
V = 230.0
CAPABILITIES = frozenset({Capability.PHASE_SWITCHING})


def run(days: int, seed: int) -> dict:
    settings = ControlSettings()
    controller = ChargeController(settings)
    site = SiteModel(seed=seed, start=datetime(2026, 1, 1))
    car = SimulatedEV(capacity_kwh=60, soc_pct=50)
    sessions = SessionTracker(price_per_kwh=0.30)
    rng = random.Random(seed)
    ev_w = (0.0, 0.0, 0.0)
    counter_kwh = 0.0
    ended = 0
    session_kwh = solar_kwh = 0.0
    leave_h, home_h = 7.5, 17.5
    steps = int(days * 86400 / DT_S)
    started = time.perf_counter()
    for _ in range(steps):
        readings = site.step(DT_S, ev_w)
        day_s = site.t_s % 86400
        if day_s < DT_S:                              # a new day: today's commute, weekends at home
            weekend = site.now.weekday() >= 5
            leave_h = 25.0 if weekend else rng.uniform(6.5, 8.5)
            home_h = rng.uniform(16.0, 19.0)
        hour = day_s / 3600
        home = hour < leave_h or hour >= home_h
        if home and not car.plugged_in:
            car.plug_in()
        elif not home and car.plugged_in:
            car.plug_out()
            car.soc_pct = max(5.0, car.soc_pct - rng.uniform(5, 25))
        state = (VehicleState.NO_VEHICLE if not car.plugged_in else VehicleState.CHARGING if ev_w[0]
                 else VehicleState.CHARGED if car.full else VehicleState.CONNECTED)
        ev = EvReadings(vehicle_state=state, power_w=ev_w, lifetime_energy_kwh=counter_kwh)
        # The user lets the sun charge (Auto) and switches to the night schedule when the car runs low.
        mode = 2 if car.soc_pct < 40 else 1
        inputs = ControllerInputs(mode=mode, start_stop=1, set_current_a=16, max_current_a=16, auto_start=1,
                                  capabilities=CAPABILITIES, site=readings, ev=ev)
        decision = controller.step(inputs, site.t_s, site.now)
        for event in sessions.update(ev, decision.snapshot, site.t_s):
            if isinstance(event, SessionEnded):
                ended += 1
                session_kwh += event.energy_kwh
                solar_kwh += event.solar_energy_kwh
        amps, used = car.step(DT_S, decision.current_a, decision.phases)
        if amps <= 0:
            ev_w = (0.0, 0.0, 0.0)
        elif used == 3:
            ev_w = (amps * V, amps * V, amps * V)
        else:
            ev_w = (amps * V, 0.0, 0.0)
        counter_kwh += (ev_w[0] + ev_w[1] + ev_w[2]) * DT_S / 3.6e6
    wall_s = time.perf_counter() - started
    session_kwh += sessions.energy_kwh
    solar_kwh += sessions.solar_energy_kwh
    return {"steps": steps, "wall_s": wall_s, "us_per_step": wall_s / steps * 1e6,
            "energy_kwh": counter_kwh, "session_kwh": session_kwh, "sessions": ended, "solar_kwh": solar_kwh,
            "solar_share": solar_kwh / session_kwh if session_kwh > 0 else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.days <= 0:
        parser.error("--days must be > 0")
    result = run(args.days, args.seed)
    print(f"control_bench: {args.days} days, {result['steps']} steps of {DT_S:g} s (site model + controller + car)")
    print(f"wall time      {result['wall_s']:.1f} s")
    print(f"per step       {result['us_per_step']:.1f} us")
    print(f"EV energy      {result['energy_kwh']:.0f} kWh (sessions counted {result['session_kwh']:.0f} kWh"
          f" in {result['sessions']} sessions)")
    print(f"solar share    {result['solar_share']:.1%} ({result['solar_kwh']:.0f} kWh from PV surplus)")


if __name__ == "__main__":
    main()
