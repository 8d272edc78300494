"""A simulated week: site model (PV, clouds, appliances, ESS battery) + controller + a car.

Pure and seeded, 10 s steps. Every step: the snapshot balances, and the grid never exceeds the
fuse on a phase because of the EV (only a house that alone exceeds it may, with the EV at 0).
"""
from __future__ import annotations

import random
from collections import Counter
from datetime import datetime

import pytest

from phaeton.chargers.base import Capability, VehicleState
from phaeton.control.controller import ChargeController, ControllerInputs
from phaeton.control.readings import EvReadings
from phaeton.control.session import SessionEnded, SessionTracker
from phaeton.control.settings import ControlSettings
from phaeton.sim.ev import SimulatedEV
from phaeton.sim.site import DEFAULT_APPLIANCES, Appliance, SiteConfig, SiteModel

DT_S = 10.0
V = 230.0
# Mode per day of the week: Auto most days, a Manual day (full power at dinner time, the hardest
# case for the fuse) and a Scheduled day.
MODES = (1, 1, 1, 0, 2, 1, 0)
# A house with a sauna besides the usual appliances, so the fuse really gets tested.
SAUNA = Appliance("sauna", (2000.0, 2000.0, 2000.0), (2700, 5400), 1.0, (16, 22))
SITE = SiteConfig(appliances=DEFAULT_APPLIANCES + (SAUNA,))


def ev_phase_power(amps: float, used: int) -> tuple[float, float, float]:
    if amps <= 0 or used == 0:
        return (0.0, 0.0, 0.0)
    return (amps * V, amps * V, amps * V) if used == 3 else (amps * V, 0.0, 0.0)


def plugged_hours(day: int, rng: random.Random) -> list[tuple[float, float]]:
    """Hours (from the day's midnight) the car is at home and plugged in."""
    if day % 7 in (5, 6):
        return [(0.0, 7.5), (9.0 + rng.random(), 16.0 + 2 * rng.random()), (18.0, 24.0)]
    return [(0.0, 7.0 + rng.random()), (17.0 + 2 * rng.random(), 24.0)]


@pytest.mark.slow
def test_simulated_week_keeps_the_fuse_and_the_balance():
    settings = ControlSettings(fuse_a=25)
    controller = ChargeController(settings)
    site = SiteModel(seed=11, start=datetime(2026, 4, 13), config=SITE)        # a Monday in spring
    car = SimulatedEV(capacity_kwh=60, soc_pct=35, onboard_max_current_a=16)
    sessions = SessionTracker(price_per_kwh=0.3)
    rng = random.Random(5)
    schedule = {day: plugged_hours(day, rng) for day in range(7)}
    ev_w = (0.0, 0.0, 0.0)
    counter_kwh = 1000.0
    ended: list[SessionEnded] = []
    statuses: Counter[int] = Counter()
    bounds: Counter[str] = Counter()
    worst_balance = 0.0
    steps = int(7 * 86400 / DT_S)
    for _ in range(steps):
        readings = site.step(DT_S, ev_w)
        day, hour = int(site.t_s // 86400), (site.t_s % 86400) / 3600
        home = any(a <= hour < b for a, b in schedule[min(day, 6)])
        if home and not car.plugged_in:
            car.plug_in()
        elif not home and car.plugged_in:
            car.plug_out()
            car.soc_pct = max(5.0, car.soc_pct - rng.uniform(20, 50))  # driving
        drawing = any(ev_w)
        state = (VehicleState.NO_VEHICLE if not car.plugged_in else VehicleState.CHARGING if drawing
                 else VehicleState.CHARGED if car.full else VehicleState.CONNECTED)
        ev = EvReadings(vehicle_state=state, power_w=ev_w, lifetime_energy_kwh=counter_kwh,
                        phases=controller.switcher.phases)
        inputs = ControllerInputs(mode=MODES[min(day, 6)], start_stop=1, set_current_a=16, max_current_a=16,
                                  auto_start=1, capabilities=frozenset({Capability.PHASE_SWITCHING}),
                                  site=readings, ev=ev)
        decision = controller.step(inputs, site.t_s, site.now)
        ended += [e for e in sessions.update(ev, decision.snapshot, site.t_s) if isinstance(e, SessionEnded)]
        statuses[decision.status] += 1
        bounds[decision.bound_by] += 1

        snap = decision.snapshot
        assert snap.balance_ok, f"balance off by {snap.balance_error_w:.0f} W at {site.now}"
        worst_balance = max(worst_balance, abs(snap.balance_error_w) / snap.balance_tolerance_w)
        assert decision.current_a == 0 or 6.0 <= decision.current_a <= 16.0

        amps, used = car.step(DT_S, decision.current_a, decision.phases)
        ev_w = ev_phase_power(amps, used)
        counter_kwh += sum(ev_w) * DT_S / 3.6e6
        house_alone = site.readings((0.0, 0.0, 0.0)).grid_w
        after = site.readings(ev_w).grid_w                       # the grid with the EV's new draw
        for p in range(3):
            if house_alone[p] > settings.fuse_a * V:
                assert ev_w[p] == 0, f"EV drew on L{p + 1} while the house alone was over the fuse"
            elif ev_w[p] > 0:
                assert after[p] <= settings.fuse_a * V + 1e-6, f"L{p + 1} over the fuse at {site.now}"

    # The week exercised what it claims to.
    assert len(ended) >= 5
    energy = sum(e.energy_kwh for e in ended) + sessions.energy_kwh
    assert energy == pytest.approx(counter_kwh - 1000.0, rel=1e-6)
    assert energy > 30
    solar = sum(e.solar_energy_kwh for e in ended) + sessions.solar_energy_kwh
    assert 0 < solar < energy
    for status in (0, 2, 4, 20, 22, 23):
        assert statuses[status] > 0, f"status {status} never seen: {statuses}"
    assert bounds["fuse"] > 0 and bounds["surplus"] > 0 and bounds["schedule"] > 0
    assert worst_balance < 1.0
