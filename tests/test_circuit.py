"""Circuits above loadpoints: headroom under a circuit and every circuit above it, all EVs left
out of the measured load, the site's share-out between loadpoints, the controller using it."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from phaeton.chargers.base import VehicleState
from phaeton.control.allocation import LoadpointDraw, share_site, solar_fraction
from phaeton.control.circuit import Circuit, CircuitLoad, LoadpointHeadroom, main_circuit_headroom
from phaeton.control.controller import ChargeController, ControllerInputs
from phaeton.control.powerflow import build_snapshot
from phaeton.control.readings import EvReadings, SiteReadings
from phaeton.control.settings import ControlSettings
from phaeton.control.surplus import raw_surplus

V = 230.0
SETTINGS = ControlSettings(fuse_a=25)
NOON = datetime(2026, 6, 1, 12, 0)
MAIN = Circuit("main", 25)
GARAGE = Circuit("garage", 16, parent=MAIN)


def charging(amps: float, phases: int = 3) -> EvReadings:
    power = (amps * V, amps * V if phases == 3 else 0.0, amps * V if phases == 3 else 0.0)
    return EvReadings(vehicle_state=VehicleState.CHARGING, power_w=power, phases=phases)


def plugged() -> EvReadings:
    return EvReadings(vehicle_state=VehicleState.CONNECTED)


def site(house_w=(300.0, 300.0, 300.0), evs=(), pv_w=0.0, **kw) -> SiteReadings:
    """A consistent site: the grid carries the house and every EV, minus AC PV spread evenly."""
    ev_w = [sum(ev.phase_power_w(V)[i] for ev in evs) for i in range(3)]
    consumption = tuple(house_w[i] + ev_w[i] for i in range(3))
    grid = tuple(consumption[i] - pv_w / 3 for i in range(3))
    return SiteReadings(grid_w=grid, consumption_w=consumption, pv_on_grid_w=(pv_w / 3,) * 3, **kw)


def test_a_circuit_knows_its_chain_and_checks_its_values():
    shed = Circuit("shed", 10, parent=GARAGE)
    assert shed.chain == (shed, GARAGE, MAIN) and shed.root == MAIN
    assert GARAGE.feeds(shed) and MAIN.feeds(shed) and not shed.feeds(GARAGE)
    assert (MAIN.words, GARAGE.words) == ("25 A fuse", "16 A circuit 'garage'")
    with pytest.raises(ValueError, match="max_current_a must be a finite number > 0"):
        Circuit("x", 0)
    with pytest.raises(ValueError, match="circuit name must be non-empty"):
        Circuit("", 16)
    with pytest.raises(ValueError, match="sharing must be a whole number >= 1"):
        CircuitLoad(MAIN, (0.0, 0.0, 0.0), sharing=0)
    with pytest.raises(ValueError, match="one grid connection, found: main, other"):
        share_site(site(), {"a": LoadpointDraw(MAIN, plugged()), "b": LoadpointDraw(Circuit("other", 25), plugged())},
                   SETTINGS)


@pytest.mark.parametrize("house_a, expected_a, binding, words", [
    (12.0, 13.0, "main", "under the 25 A fuse"),                   # the parent binds
    (3.0, 16.0, "garage", "under the 16 A circuit 'garage'"),      # the child binds
])
def test_a_sub_circuit_gets_the_lower_of_its_own_and_its_parents_room(house_a, expected_a, binding, words):
    """A 16 A garage line under the 25 A main fuse, the house on the main: the EV gets
    min(child, parent) and the reason names the circuit that bound."""
    ev = charging(10)
    share = share_site(site(house_w=(house_a * V,) * 3, evs=[ev]), {"garage": LoadpointDraw(GARAGE, ev)},
                       SETTINGS).loadpoints["garage"]
    head = share.headroom.for_phases(3)
    assert head.current_a == pytest.approx(expected_a)
    assert head.circuit == binding and words in head.reason
    assert f"allows {expected_a:.1f} A for the EV" in head.reason


def test_a_metered_sub_circuit_counts_its_own_other_loads():
    """The garage's meter sees 5, 18 and 5 A beside the EV: L2 is over its 16 A already, L1
    leaves 11 A (the main fuse, with 300 W more of house, would leave 18.7 A)."""
    ev = charging(10)
    others_w = (1150.0, 4140.0, 1150.0)
    garage_w = tuple(others_w[i] + ev.phase_power_w(V)[i] for i in range(3))
    readings = site(house_w=tuple(o + 300.0 for o in others_w), evs=[ev])
    share = share_site(readings, {"g": LoadpointDraw(GARAGE, ev)}, SETTINGS,
                       circuit_meters={"garage": garage_w}).loadpoints["g"]
    over = share.headroom.for_phases(3)
    assert (over.current_a, over.house_over_fuse, over.binding_phase, over.circuit) == (0.0, True, 1, "garage")
    assert over.reason == "house load alone on L2 (18.0 A) exceeds the 16 A circuit 'garage': EV paused"
    one = share.headroom.for_phases(1)                 # L1 only: 16 - 5 under the garage line
    assert one.current_a == pytest.approx(11.0) and one.circuit == "garage"


def test_every_ev_is_left_out_of_the_load_and_the_room_is_shared():
    """Two EVs on the main fuse draw 10 A each beside a 300 W house: both are subtracted, and
    the room is split so both can take their share at once."""
    a, b = charging(10), charging(10)
    result = share_site(site(evs=[a, b]), {"a": LoadpointDraw(MAIN, a), "b": LoadpointDraw(MAIN, b)}, SETTINGS)
    assert result.snapshot.house_w == pytest.approx((300.0, 300.0, 300.0))
    assert result.snapshot.import_without_ev_w(0) == pytest.approx(300.0)
    each = (25 - 300 / V) / 2
    for name in ("a", "b"):
        head = result.loadpoints[name].headroom.for_phases(3)
        assert head.current_a == pytest.approx(each)
        assert f"L1 allows {each:.1f} A for each of 2 EVs under the 25 A fuse" == head.reason
    # Each controller alone would see the other EV as house load and allow 25 - 11.3 = 13.7 A
    # each: 27.4 A together. The shares add up to the room.
    alone = main_circuit_headroom(build_snapshot(site(evs=[a, b]), a, SETTINGS), MAIN).for_phases(3)
    assert alone.current_a == pytest.approx(25 - (300 + 2300) / V)
    assert 2 * each <= 25 - 300 / V + 1e-9


def test_a_loadpoint_that_does_not_share_keeps_its_draw_as_load():
    busy, idle = charging(8), EvReadings()
    result = share_site(site(evs=[busy]), {"busy": LoadpointDraw(MAIN, busy, sharing=False),
                                            "idle": LoadpointDraw(MAIN, idle)}, SETTINGS)
    # "idle" is not plugged in (so not sharing either): it gets what it would if it joined,
    # with the busy EV's 8 A counted as load.
    assert result.loadpoints["idle"].headroom.for_phases(3).current_a == pytest.approx(25 - 8 - 300 / V)


def test_a_phase_not_reported_is_not_checked():
    ev = charging(10)
    grid_missing = replace(site(evs=[ev]), grid_w=(2600.0, None, 2600.0))
    share = share_site(grid_missing, {"lp": LoadpointDraw(GARAGE, ev)}, SETTINGS).loadpoints["lp"]
    head = share.headroom.for_phases(3)
    assert head.current_a is None and head.reason == "grid power on L2 not reported: fuse cannot be checked"
    assert share.headroom.for_phases(1).current_a == pytest.approx(16.0)     # L1 only: fine
    metered = share_site(site(evs=[ev]), {"lp": LoadpointDraw(GARAGE, ev)}, SETTINGS,
                         circuit_meters={"garage": (2300.0, None, 2300.0)}).loadpoints["lp"]
    assert metered.headroom.for_phases(3).reason == \
        "circuit 'garage' power on L2 not reported: fuse cannot be checked"


def test_surplus_and_green_share_are_split_between_the_loadpoints():
    a, b = charging(6), charging(6)
    sunny = site(evs=[a, b], pv_w=12000.0, battery_power_w=0.0)
    result = share_site(sunny, {"a": LoadpointDraw(MAIN, a), "b": LoadpointDraw(MAIN, b)}, SETTINGS)
    total = 12000.0 - 900.0                                   # PV minus the house: all free
    assert [result.loadpoints[n].surplus.raw_w for n in "ab"] == pytest.approx([total / 2, total / 2])
    assert result.loadpoints["a"].solar_fraction == 1.0       # 8280 W of EVs, 11100 W free
    cloudy = site(evs=[a, b], pv_w=4440.0, battery_power_w=0.0)
    shares = share_site(cloudy, {"a": LoadpointDraw(MAIN, a), "b": LoadpointDraw(MAIN, b)}, SETTINGS)
    assert shares.loadpoints["b"].solar_fraction == pytest.approx((4440 - 900) / 8280)


w = st.floats(min_value=0, max_value=9000, allow_nan=False)


@hsettings(max_examples=200)
@given(house=st.tuples(w, w, w), ev_w=st.tuples(w, w, w), pv=st.floats(0, 15000), battery=st.floats(-5000, 5000),
       soc=st.floats(0, 100), phases=st.sampled_from([1, 3]), state=st.sampled_from(list(VehicleState)))
def test_one_loadpoint_gets_exactly_what_the_controller_computes_alone(house, ev_w, pv, battery, soc, phases, state):
    ev = EvReadings(vehicle_state=state, power_w=ev_w)
    readings = replace(site(house_w=house, evs=[ev], pv_w=pv), battery_power_w=battery, battery_soc_pct=soc)
    share = share_site(readings, {"lp": LoadpointDraw(MAIN, ev)}, SETTINGS).loadpoints["lp"]
    snapshot = build_snapshot(readings, ev, SETTINGS)
    assert share.headroom.for_phases(phases) == main_circuit_headroom(snapshot, MAIN).for_phases(phases)
    assert share.surplus == raw_surplus(snapshot, readings, SETTINGS.battery_priority_soc_pct)
    power = snapshot.ev_total_w
    free = max(0.0, snapshot.pv_total_w - (snapshot.house_total_w or 0.0))
    assert share.solar_fraction == (min(power, free) / power if power > 0 else 0.0)   # the session's rule
    assert solar_fraction(snapshot) == share.solar_fraction


def test_the_controller_with_the_sites_share_decides_as_it_does_alone():
    """Same inputs, one loadpoint: the site's share-out changes no decision, step by step."""
    alone, with_site = ChargeController(SETTINGS), ChargeController(SETTINGS)
    amps, bounds = 0.0, set()
    for t in range(0, 600, 2):
        ev = charging(amps)
        house = (300.0 + (4000.0 if 200 <= t < 260 or 320 <= t < 360 else 0.0), 300.0, 300.0)
        readings = site(house_w=house, evs=[ev], pv_w=9000.0 if t < 300 else 1000.0, battery_power_w=0.0)
        base = dict(mode=1 if t < 300 else 0, start_stop=1, set_current_a=16, max_current_a=16,
                    site=readings, ev=ev)
        share = share_site(readings, {"lp": LoadpointDraw(MAIN, ev)}, SETTINGS).loadpoints["lp"]
        mine = alone.step(ControllerInputs(**base), float(t), NOON)
        theirs = with_site.step(ControllerInputs(**base, site_share=share), float(t), NOON)
        assert theirs == mine
        assert alone.fuse_cut_needed(readings, ev, 16.0, 3) == with_site.fuse_cut_needed(readings, ev, 16.0, 3, share)
        amps, bounds = mine.current_a, bounds | {mine.bound_by}
    assert {"fuse", "surplus", "user"} <= bounds


def test_the_controller_cuts_to_the_sub_circuit_and_names_it():
    controller = ChargeController(SETTINGS)
    ev = charging(16)
    readings = site(evs=[ev])
    share = share_site(readings, {"lp": LoadpointDraw(GARAGE, ev)}, SETTINGS).loadpoints["lp"]
    inputs = ControllerInputs(mode=0, start_stop=1, set_current_a=20, max_current_a=32, site=readings, ev=ev,
                              site_share=share)
    d = ChargeController(replace(SETTINGS, max_current_a=32)).step(inputs, 1.0, NOON)
    assert (d.current_a, d.bound_by, d.status, d.fuse_limit_a) == (16.0, "fuse", 20, 16.0)
    assert d.reason == "L1 allows 16.0 A for the EV under the 16 A circuit 'garage'"
    assert controller.fuse_cut_needed(readings, ev, 16.5, 3, share)
    assert not controller.fuse_cut_needed(readings, ev, 16.0, 3, share)
    with pytest.raises(ValueError, match="site_share must be a LoadpointShare"):
        ControllerInputs(mode=0, start_stop=1, set_current_a=6, max_current_a=16, site_share=share.headroom)


# -- the property: granted currents never take a circuit over its limit ---------------------------

@st.composite
def sites_with_circuits(draw):
    """A tree of circuits (main + up to 3 below), each metered or not; house load only where
    every circuit between it and the main is metered (an unmetered circuit carries only EVs);
    1..4 loadpoints with their draw, phases and whether they share."""
    circuits = [Circuit("main", draw(st.floats(10, 63)))]
    metered = {"main": True}
    for i in range(draw(st.integers(0, 3))):
        parent = draw(st.sampled_from(circuits))
        circuit = Circuit(f"c{i}", draw(st.floats(6, 40)), parent=parent)
        circuits.append(circuit)
        metered[circuit.name] = draw(st.booleans())
    amps = st.floats(0, 30)
    house = {c.name: (tuple(draw(amps) for _ in range(3))
                      if all(metered[x.name] for x in c.chain) else (0.0, 0.0, 0.0)) for c in circuits}
    loadpoints = {}
    for i in range(draw(st.integers(1, 4))):
        phases = draw(st.sampled_from([1, 3]))
        drawing = draw(st.floats(0, 32))
        ev = EvReadings(vehicle_state=draw(st.sampled_from([VehicleState.CHARGING, VehicleState.CONNECTED,
                                                            VehicleState.NO_VEHICLE])),
                        current_a=(drawing, drawing if phases == 3 else 0.0, drawing if phases == 3 else 0.0))
        loadpoints[f"lp{i}"] = (LoadpointDraw(draw(st.sampled_from(circuits)), ev, draw(st.booleans())), phases)
    pv_a = draw(st.floats(0, 20))
    return circuits, metered, house, loadpoints, pv_a


def _load_a(circuit, circuits, house, ev_a, loadpoints):
    """What a circuit carries per phase (A): house below it and every EV below it."""
    below = [c for c in circuits if circuit.feeds(c)]
    return [sum(house[c.name][p] for c in below)
            + sum(ev_a[name][p] for name, (lp, _) in loadpoints.items() if circuit.feeds(lp.circuit))
            for p in range(3)]


@hsettings(max_examples=400, deadline=None)
@given(world=sites_with_circuits())
def test_granted_currents_never_take_a_circuit_over_its_limit(world):
    """Every sharing loadpoint takes the current its headroom allows, all at once; the others
    keep their draw. No phase of any circuit then exceeds its limit, and a phase the house
    already took over its limit gets nothing more from the EVs."""
    circuits, metered, house, loadpoints, pv_a = world
    now_a = {name: list(lp.ev.current_a) for name, (lp, _) in loadpoints.items()}
    main = circuits[0]
    grid_a = [a - pv_a for a in _load_a(main, circuits, house, now_a, loadpoints)]
    readings = SiteReadings(grid_w=[a * V for a in grid_a], consumption_w=(0.0, 0.0, 0.0),
                            pv_on_grid_w=(pv_a * V,) * 3)
    meters = {c.name: tuple(a * V for a in _load_a(c, circuits, house, now_a, loadpoints))
              for c in circuits[1:] if metered[c.name]}
    result = share_site(readings, {name: lp for name, (lp, _) in loadpoints.items()}, SETTINGS,
                        circuit_meters=meters)
    granted = {}
    for name, (lp, phases) in loadpoints.items():
        if lp.sharing:
            head = result.loadpoints[name].headroom.for_phases(phases)
            assert head.current_a is not None and head.current_a >= 0
            granted[name] = [head.current_a if p < phases else 0.0 for p in range(3)]
        else:
            granted[name] = now_a[name]
    idle = {name: (granted[name] if not lp.sharing else [0.0, 0.0, 0.0]) for name, (lp, _) in loadpoints.items()}
    for circuit in circuits:
        after = _load_a(circuit, circuits, house, granted, loadpoints)
        without = _load_a(circuit, circuits, house, idle, loadpoints)   # house + non-sharing EVs
        after[:] = [a - (pv_a if circuit.parent is None else 0.0) for a in after]
        without[:] = [a - (pv_a if circuit.parent is None else 0.0) for a in without]
        for p in range(3):
            assert after[p] <= max(circuit.max_current_a, without[p]) + 1e-6, (circuit.name, p, after, without)
