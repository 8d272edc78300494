"""The allocator: circuit room shared between several EV chargers, with priorities and turns.

Plain examples with the numbers and reasons an owner reads, then seeded random properties
(no hypothesis): the room is never exceeded, minimums are respected, priorities win, equal
claims get equal grants, every claim gets its turn, and one claim alone gets exactly the
lowest room of its chain (what a lone controller computes).
"""
from __future__ import annotations

import math
import random

import pytest

from phaeton.control.allocator import Claim, Grant, RotationState, allocate
from phaeton.control.circuit import Circuit

MAIN = Circuit("main", 25.0)
BIG = Circuit("main", 63.0)
GARAGE = Circuit("garage", 32.0, BIG)
SHED = Circuit("shed", 16.0, MAIN)
THREE = (0, 1, 2)


def rooms(**per_circuit) -> dict[tuple[str, int], float | None]:
    """room_a from {circuit: value or (L1, L2, L3)}."""
    room: dict[tuple[str, int], float | None] = {}
    for name, value in per_circuit.items():
        values = value if isinstance(value, tuple) else (value, value, value)
        for phase in range(3):
            room[(name, phase)] = values[phase]
    return room


def currents(grants: dict[str, Grant]) -> dict[str, float | None]:
    return {name: grant.current_a for name, grant in grants.items()}


# --- plain examples ------------------------------------------------------------------------

def test_one_ev_gets_the_lowest_room_of_its_circuit_like_a_lone_controller():
    grants = allocate(rooms(main=(13.0, 20.0, 18.0)), [Claim("drive", MAIN, THREE, 6, 10)], 0, RotationState())
    assert grants == {"drive": Grant(13.0, "L1 of the 25 A fuse allows 13.0 A", "main", 0)}


@pytest.mark.parametrize("want", [0.0, 17.3, 49.0, 60.0])
def test_one_ev_gets_the_room_to_the_last_bit_whatever_it_wants(want):
    # 5.709 + (49.65 - 5.709) and 17.3 + (49.65 - 17.3) are not 49.65 in floating point: the
    # lone grant must still be exactly the room, as a lone controller computes it.
    big = Circuit("main", 63.0)
    grant = allocate(rooms(main=49.65), [Claim("drive", big, THREE, 5.709, want)], 0, RotationState())["drive"]
    assert grant.current_a == 49.65


def test_three_evs_below_one_circuit_share_it_evenly():
    claims = [Claim(name, GARAGE, THREE, 6, 16) for name in ("left", "middle", "right")]
    grants = allocate(rooms(main=50.0, garage=32.0), claims, 0, RotationState())
    for grant in grants.values():
        assert grant.current_a == pytest.approx(32 / 3)
        assert grant.reason == "L1 of the 32 A circuit 'garage' shared by 3 EVs: 10.7 A each"
        assert (grant.circuit, grant.phase, grant.waiting) == ("garage", 0, False)


def test_a_sub_circuit_and_the_main_fuse_both_bind():
    claims = [Claim("shed_a", SHED, THREE, 6, 16), Claim("shed_b", SHED, THREE, 6, 16),
              Claim("drive", MAIN, THREE, 6, 16)]
    grants = allocate(rooms(main=25.0, shed=16.0), claims, 0, RotationState())
    # All start at 6 A; they rise together until the shed is full (8 A each), then the drive
    # takes what the main fuse has left: 25 - 16 = 9 A.
    assert currents(grants) == pytest.approx({"shed_a": 8.0, "shed_b": 8.0, "drive": 9.0})
    assert grants["shed_a"].reason == "L1 of the 16 A circuit 'shed' shared by 2 EVs: 8.0 A each"
    assert grants["shed_a"].circuit == "shed"
    assert grants["drive"].reason == "L1 of the 25 A fuse shared by 3 EVs: 9.0 A for this one"
    assert grants["drive"].circuit == "main"


def test_a_claim_that_has_what_it_wants_keeps_a_share_of_the_free_room():
    claims = [Claim("slow", MAIN, (0,), 6, 6), Claim("fast", MAIN, (0,), 6, 20)]
    grants = allocate(rooms(main=40.0), claims, 0, RotationState())
    # 6 + 20 = 26 of 40 A: both reached their want, the 14 A left are split: 7 A each.
    assert currents(grants) == {"slow": 13.0, "fast": 27.0}
    grants = allocate(rooms(main=20.0), claims, 0, RotationState())
    # not enough: slow stays at its want (6), fast fills up the rest
    assert currents(grants) == {"slow": 6.0, "fast": 14.0}
    assert grants["fast"].reason == "L1 of the 25 A fuse shared by 2 EVs: 14.0 A for this one"


def test_higher_priority_fills_first_and_keeps_the_room():
    claims = [Claim("boss", MAIN, (0,), 6, 16, priority=1), Claim("guest", MAIN, (0,), 6, 16)]
    grants = allocate(rooms(main=20.0), claims, 0, RotationState())
    assert currents(grants) == {"boss": 14.0, "guest": 6.0}
    grants = allocate(rooms(main=10.0), claims, 0, RotationState())
    assert grants["boss"] == Grant(10.0, "L1 of the 25 A fuse allows 10.0 A", "main", 0)
    assert grants["guest"] == Grant(0.0, "paused: no room for its 6 A minimum on L1 of the 25 A fuse; "
                                         "boss has a higher priority", "main", 0, waiting=True)


def test_a_reason_names_at_most_three_claims():
    claims = [Claim(f"boss{i}", BIG, (0,), 6, 6, priority=1) for i in range(5)] + [Claim("guest", BIG, (0,), 6, 16)]
    grants = allocate(rooms(main=30.0), claims, 0, RotationState())
    assert grants["guest"].reason == ("paused: no room for its 6 A minimum on L1 of the 63 A fuse; "
                                      "boss0, boss1, boss2 and 2 more have a higher priority")


def test_a_clock_that_steps_back_does_not_stretch_a_turn():
    claims = [Claim("a", MAIN, THREE, 6, 16), Claim("b", MAIN, THREE, 6, 16)]
    state = RotationState(running_since={"a": 10_000.0}, waiting_since={"b": 9_000.0})
    grants = allocate(rooms(main=10.0), claims, 500, state)     # the clock went back to 500 s
    assert currents(grants) == {"a": 10.0, "b": 0.0}
    assert state.running_since == {"a": 500} and state.waiting_since == {"b": 500}
    assert currents(allocate(rooms(main=10.0), claims, 1400, state)) == {"a": 0.0, "b": 10.0}


def test_turns_rotate_when_the_room_does_not_hold_every_minimum():
    claims = [Claim("garage_left", MAIN, THREE, 6, 16), Claim("garage_right", MAIN, THREE, 6, 16)]
    state = RotationState()
    grants = allocate(rooms(main=10.0), claims, 0, state)
    assert grants["garage_left"].current_a == 10.0
    assert grants["garage_right"] == Grant(
        0.0, "paused: no room for its 6 A minimum on L1 of the 25 A fuse; its turn comes after garage_left "
             "has charged 15 min (in about 15 min)", "main", 0, waiting=True)
    grants = allocate(rooms(main=10.0), claims, 600, state)
    assert currents(grants) == {"garage_left": 10.0, "garage_right": 0.0}
    assert "(in about 5 min)" in grants["garage_right"].reason
    grants = allocate(rooms(main=10.0), claims, 900, state)
    assert currents(grants) == {"garage_left": 0.0, "garage_right": 10.0}
    assert grants["garage_left"].reason == (
        "paused after its 15 min turn: no room for its 6 A minimum on L1 of the 25 A fuse; "
        "its turn comes after garage_right has charged 15 min (in about 15 min)")
    assert grants["garage_left"].waiting
    grants = allocate(rooms(main=10.0), claims, 1800, state)
    assert currents(grants) == {"garage_left": 10.0, "garage_right": 0.0}
    assert state.running_since == {"garage_left": 1800}
    assert state.waiting_since == {"garage_right": 1800}


def test_a_running_claim_keeps_its_turn_when_a_newcomer_arrives():
    state = RotationState()
    allocate(rooms(main=10.0), [Claim("b", MAIN, THREE, 6, 16)], 0, state)
    grants = allocate(rooms(main=10.0), [Claim("a", MAIN, THREE, 6, 16), Claim("b", MAIN, THREE, 6, 16)],
                      300, state)
    assert currents(grants) == {"a": 0.0, "b": 10.0}
    assert "its turn comes after b has charged 15 min (in about 10 min)" in grants["a"].reason


def test_a_claim_that_ran_alone_for_long_gives_way_at_once():
    state = RotationState()
    allocate(rooms(main=10.0), [Claim("b", MAIN, THREE, 6, 16)], 0, state)
    grants = allocate(rooms(main=10.0), [Claim("a", MAIN, THREE, 6, 16), Claim("b", MAIN, THREE, 6, 16)],
                      7200, state)
    assert currents(grants) == {"a": 10.0, "b": 0.0}


def test_absent_claims_are_forgotten():
    state = RotationState()
    allocate(rooms(main=10.0), [Claim("a", MAIN, THREE, 6, 16), Claim("b", MAIN, THREE, 6, 16)], 0, state)
    assert set(state.running_since) | set(state.waiting_since) == {"a", "b"}
    allocate(rooms(main=10.0), [Claim("b", MAIN, THREE, 6, 16)], 10, state)
    assert state.running_since == {"b": 10} and state.waiting_since == {}


def test_too_little_room_even_alone_pauses_without_waiting_for_a_turn():
    grants = allocate(rooms(main=(4.0, 20.0, 20.0)), [Claim("drive", MAIN, THREE, 6, 10)], 0, RotationState())
    assert grants["drive"] == Grant(0.0, "paused: L1 of the 25 A fuse has 4.0 A left, below its 6 A minimum",
                                    "main", 0, waiting=False)


def test_the_house_alone_over_the_fuse_pauses_every_ev_below_it_on_that_phase():
    claims = [Claim("l1", MAIN, (0,), 6, 10), Claim("l2", MAIN, (1,), 6, 10), Claim("all", MAIN, THREE, 6, 10),
              Claim("idle", MAIN, (0,), 6, 0)]
    grants = allocate(rooms(main=(-2.5, 12.0, 12.0)), claims, 0, RotationState())
    reason = "paused: the house load alone on L1 exceeds the 25 A fuse by 2.5 A"
    assert grants["l1"] == Grant(0.0, reason, "main", 0)
    assert grants["all"] == Grant(0.0, reason, "main", 0)
    assert grants["idle"] == Grant(0.0, reason, "main", 0)
    assert grants["l2"].current_a == 12.0


def test_unknown_room_cannot_be_checked_and_takes_nothing():
    room = rooms(main=20.0, shed=16.0)
    room[("shed", 1)] = None
    claims = [Claim("shed", SHED, THREE, 6, 10), Claim("shed_l1", SHED, (0,), 6, 10),
              Claim("drive", MAIN, THREE, 6, 30)]
    grants = allocate(room, claims, 0, RotationState())
    assert grants["shed"] == Grant(None, "circuit 'shed' power on L2 not reported: the 16 A circuit 'shed' "
                                         "cannot be checked", "shed", 1)
    assert currents(grants) == {"shed": None, "shed_l1": 10.0, "drive": 10.0}
    room[("main", 0)] = None
    grants = allocate(room, claims, 0, RotationState())
    assert grants["drive"].reason == "grid power on L1 not reported: the 25 A fuse cannot be checked"
    assert currents(grants) == {"shed": None, "shed_l1": None, "drive": None}


def test_a_claim_that_wants_nothing_is_offered_what_it_could_start_with():
    grants = allocate(rooms(main=18.0), [Claim("idle", MAIN, THREE, 6, 0)], 0, RotationState())
    assert grants["idle"] == Grant(18.0, "wants no current now; may start with up to 18.0 A: "
                                         "L1 of the 25 A fuse allows 18.0 A", "main", 0)
    claims = [Claim("busy", MAIN, THREE, 6, 8), Claim("idle", MAIN, THREE, 6, 0)]
    grants = allocate(rooms(main=20.0), claims, 0, RotationState())
    # busy takes 8, the 12 A left are shared: busy may rise to 14, idle may start with 6
    assert currents(grants) == {"busy": 14.0, "idle": 6.0}
    grants = allocate(rooms(main=12.0), claims, 0, RotationState())
    assert currents(grants) == {"busy": 12.0, "idle": 0.0}
    assert grants["idle"].reason == "wants no current now; no room for its 6 A minimum on L1 of the 25 A fuse"
    assert not grants["idle"].waiting
    grants = allocate(rooms(main=4.0), [Claim("idle", MAIN, THREE, 6, 0)], 0, RotationState())
    assert grants["idle"].reason == "wants no current now; L1 of the 25 A fuse has 4.0 A left, below its 6 A minimum"


def test_a_waiting_three_phase_claim_is_not_overtaken_on_the_other_phases():
    # x runs on L1 (its turn lasts until 900 s), w (three-phase) waits for L1; single-phase
    # newcomers on L2 and L3 may not take the room w needs there.
    state = RotationState()
    allocate(rooms(main=(10.0, 10.0, 10.0)), [Claim("x", MAIN, (0,), 6, 10)], 0, state)
    claims = [Claim("x", MAIN, (0,), 6, 10), Claim("w", MAIN, THREE, 6, 10)]
    allocate(rooms(main=(10.0, 10.0, 10.0)), claims, 60, state)
    claims += [Claim("y", MAIN, (1,), 6, 10)]
    grants = allocate(rooms(main=(10.0, 10.0, 10.0)), claims, 120, state)
    assert currents(grants) == {"x": 10.0, "w": 0.0, "y": 0.0}
    assert grants["y"].reason == "paused: no room for its 6 A minimum on L2 of the 25 A fuse; w has waited longer " \
                                 "and goes first"
    grants = allocate(rooms(main=(10.0, 10.0, 10.0)), claims, 900, state)
    assert currents(grants) == {"x": 0.0, "w": 10.0, "y": 0.0}


def test_a_want_below_the_minimum_counts_as_the_minimum():
    grants = allocate(rooms(main=6.0), [Claim("a", MAIN, (0,), 6, 3), Claim("b", MAIN, (0,), 6, 3)], 0,
                      RotationState())
    assert currents(grants) == {"a": 6.0, "b": 0.0}


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="phases"):
        Claim("a", MAIN, (3,), 6, 10)
    with pytest.raises(ValueError, match="phases"):
        Claim("a", MAIN, (), 6, 10)
    with pytest.raises(ValueError, match="want_a"):
        Claim("a", MAIN, (0,), 6, -1)
    with pytest.raises(ValueError, match="min_a"):
        Claim("a", MAIN, (0,), math.nan, 1)
    with pytest.raises(ValueError, match="two claims named 'a'"):
        allocate(rooms(main=10.0), [Claim("a", MAIN, (0,), 6, 10)] * 2, 0, RotationState())
    with pytest.raises(ValueError, match="no room given for circuit 'shed' phase 0"):
        allocate(rooms(main=10.0), [Claim("a", SHED, (0,), 6, 10)], 0, RotationState())


# --- random properties -----------------------------------------------------------------------

def random_tree(rng: random.Random) -> list[Circuit]:
    """A grid connection with two sub-circuits, one of which sometimes has one of its own."""
    main = Circuit("main", rng.choice([25.0, 35.0, 50.0, 63.0]))
    left = Circuit("left", rng.choice([16.0, 25.0, 32.0]), main)
    right = Circuit("right", rng.choice([16.0, 20.0, 32.0]), main)
    tree = [main, left, right]
    if rng.random() < 0.5:
        tree.append(Circuit("left_back", rng.choice([10.0, 16.0]), left))
    return tree


def random_room(rng: random.Random, tree: list[Circuit], *, negative=0.05, unknown=0.0) -> dict:
    room: dict[tuple[str, int], float | None] = {}
    for circuit in tree:
        for phase in range(3):
            roll = rng.random()
            if roll < unknown:
                room[(circuit.name, phase)] = None
            elif roll < unknown + negative:
                room[(circuit.name, phase)] = -rng.uniform(0.1, 5.0)
            else:
                room[(circuit.name, phase)] = rng.choice([0.0, rng.uniform(0, circuit.max_current_a),
                                                          circuit.max_current_a])
    return room


def random_claims(rng: random.Random, tree: list[Circuit], n: int, *, priorities=(0, 1, 2)) -> list[Claim]:
    claims = []
    for i in range(n):
        phases = THREE if rng.random() < 0.5 else (rng.randrange(3),)
        minimum = rng.choice([6.0, 6.0, 8.0, rng.uniform(1, 10)])
        roll = rng.random()
        want = 0.0 if roll < 0.15 else rng.uniform(0.5, minimum) if roll < 0.25 else rng.uniform(minimum, 40)
        claims.append(Claim(f"ev{i:02d}", rng.choice(tree), phases, minimum, want, rng.choice(priorities)))
    return claims


def uses(claim: Claim, circuit: str, phase: int) -> bool:
    return phase in claim.phases and any(c.name == circuit for c in claim.circuit.chain)


def fits(claim: Claim, running: list[Claim], room: dict) -> bool:
    """Would `claim`'s minimum fit next to the minimums of `running` everywhere it draws?"""
    for circuit in claim.circuit.chain:
        for phase in claim.phases:
            taken = sum(other.min_a for other in running if uses(other, circuit.name, phase))
            if taken + claim.min_a > room[(circuit.name, phase)] + 1e-9:
                return False
    return True


def check_invariants(room: dict, claims: list[Claim], grants: dict[str, Grant]) -> None:
    assert set(grants) == {claim.name for claim in claims}
    # unknown room: None exactly for the claims with an unmeasured (circuit, phase)
    for claim in claims:
        unknown = any(room[(c.name, p)] is None for p in claim.phases for c in claim.circuit.chain)
        assert (grants[claim.name].current_a is None) == unknown, claim
    # (a) no (circuit, phase) exceeded; none drawn where the house alone is over
    for (circuit, phase), value in room.items():
        if value is None:
            continue
        below = [grants[c.name].current_a for c in claims
                 if uses(c, circuit, phase) and grants[c.name].current_a is not None]
        if value >= 0:
            assert sum(below) <= value + 1e-9, (circuit, phase, value, below)
        else:
            assert all(amps == 0 for amps in below), (circuit, phase, value, below)
    # (b) 0 or at least the minimum
    for claim in claims:
        amps = grants[claim.name].current_a
        assert amps is None or amps == 0 or amps >= claim.min_a, (claim, amps)
        grant = grants[claim.name]
        assert grant.reason
        if amps is not None and amps > 0:
            assert grant.circuit is not None and grant.phase in claim.phases and not grant.waiting
            assert any(c.name == grant.circuit for c in claim.circuit.chain)
        if grant.waiting:
            assert amps == 0 and claim.want_a > 0
    # (c) priority: a paused higher claim is never kept out by a lower one that runs
    running = [c for c in claims if c.want_a > 0 and (grants[c.name].current_a or 0) > 0]
    for high in claims:
        if high.want_a <= 0 or grants[high.name].current_a != 0:
            continue
        if not fits(high, [], room) or fits(high, running, room):
            continue                # its minimum never fits, or the room is there (see below)
        for low in running:
            if low.priority < high.priority and any(uses(low, c.name, p) for c in high.circuit.chain
                                                    for p in high.phases):
                others = [c for c in running if c is not low]
                assert not fits(high, others, room), (high, low, grants[high.name], grants[low.name])
    # a paused claim with room for its minimum next to everyone running is only held back by a
    # claim ahead of it in the order that waits for that room (a reservation)
    for claim in claims:
        grant = grants[claim.name]
        if claim.want_a > 0 and grant.current_a == 0 and fits(claim, [], room) and fits(claim, running, room):
            assert grant.waiting and any(words in grant.reason for words in (
                "has waited longer and goes first", "a higher priority", "is ahead of it and goes first")), \
                (claim, grant)
    # (d) equal claims that run get equal grants
    groups: dict[tuple, list[float]] = {}
    for claim in claims:
        amps = grants[claim.name].current_a
        if amps:
            key = (claim.priority, claim.min_a, claim.want_a, claim.circuit, claim.phases)
            groups.setdefault(key, []).append(amps)
    for amps in groups.values():
        assert max(amps) - min(amps) <= 1e-9, amps


@pytest.mark.parametrize("seed", range(40))
def test_random_sites_keep_every_invariant(seed):
    rng = random.Random(seed)
    for _ in range(25):
        tree = random_tree(rng)
        claims = random_claims(rng, tree, rng.choice([1, 2, 3, 5, 8, 20]))
        state = RotationState()
        now = 0.0
        for _tick in range(6):     # a few ticks, so the rotation state takes part
            room = random_room(rng, tree, unknown=0.05 if seed % 4 == 0 else 0.0)
            grants = allocate(room, claims, now, state, turn_s=rng.choice([60.0, 900.0]))
            check_invariants(room, claims, grants)
            now += rng.choice([2.0, 30.0, 300.0])


def test_twenty_chargers_mixed_phases_nested_and_negative_room():
    rng = random.Random(2026)
    for _ in range(200):
        tree = random_tree(rng)
        claims = random_claims(rng, tree, 20)
        room = random_room(rng, tree, negative=0.2)
        check_invariants(room, claims, allocate(room, claims, 0, RotationState()))


def test_equal_claims_get_equal_grants_when_all_fit():
    rng = random.Random(7)
    for _ in range(300):
        tree = random_tree(rng)
        circuit = rng.choice(tree)
        phases = THREE if rng.random() < 0.5 else (rng.randrange(3),)
        want = rng.choice([6.0, 10.0, 16.0, 32.0])
        twins = [Claim(f"twin{i}", circuit, phases, 6.0, want, 1) for i in range(rng.randint(2, 5))]
        others = random_claims(rng, tree, rng.randint(0, 8), priorities=(0,))
        room = {key: max(0.0, value) for key, value in random_room(rng, tree, negative=0.0).items()}
        for key in room:
            room[key] += 40.0          # the twins' minimums fit
        grants = allocate(room, twins + others, 0, RotationState())
        amps = {grants[t.name].current_a for t in twins}
        assert len(amps) == 1 and amps.pop() >= 6.0


@pytest.mark.parametrize("seed", range(300))
def test_one_claim_gets_the_lowest_room_of_its_chain_whatever_it_wants(seed):
    rng = random.Random(seed)
    tree = random_tree(rng)
    claim = random_claims(rng, tree, 1)[0]
    room = random_room(rng, tree, negative=0.1)
    grant = allocate(room, [claim], 0, RotationState())[claim.name]
    lowest = min(room[(c.name, p)] for p in claim.phases for c in claim.circuit.chain)
    if lowest >= claim.min_a:
        assert grant.current_a == lowest
        assert room[(grant.circuit, grant.phase)] == lowest
    else:
        assert grant.current_a == 0.0
        word = "house load alone" if lowest < 0 else "below its"
        assert word in grant.reason
        assert not grant.waiting


def fairness_run(rng: random.Random, n: int, turn_s: float, tick_s: float) -> None:
    """Ticks with constant room that holds every minimum alone but not all of them at once:
    they arrive during the first turn; each runs within n x turn_s of its arrival and never
    waits longer than that."""
    while True:
        tree = random_tree(rng)
        claims = [Claim(c.name, c.circuit, c.phases, c.min_a, max(c.want_a, c.min_a + 1.0), 0)
                  for c in random_claims(rng, tree, n)]
        room = {}
        for circuit in tree:
            for phase in range(3):
                room[(circuit.name, phase)] = rng.uniform(0.4, 1.0) * circuit.max_current_a
        oversubscribed = any(sum(c.min_a for c in claims if uses(c, circuit, phase)) > value
                             for (circuit, phase), value in room.items())
        if oversubscribed and all(fits(c, [], room) for c in claims):
            break
    # they arrive one by one during the first turn, so the turns end at different times
    arrival = {c.name: round(rng.uniform(0, turn_s) / tick_s) * tick_s for c in claims}
    state = RotationState()
    waiting_since: dict[str, float] = dict(arrival)
    longest = dict.fromkeys(waiting_since, 0.0)
    ran = set()
    now = 0.0
    end = 3 * n * turn_s
    tick = 0
    while now <= end:
        here = [c for c in claims if arrival[c.name] <= now]
        grants = allocate(room, here, now, state, turn_s=turn_s)
        if tick % 7 == 0:
            check_invariants(room, here, grants)
        tick += 1
        for claim in here:
            if grants[claim.name].current_a:
                ran.add(claim.name)
                if claim.name in waiting_since:
                    longest[claim.name] = max(longest[claim.name], now - waiting_since.pop(claim.name))
            else:
                assert grants[claim.name].waiting
                waiting_since.setdefault(claim.name, now)
        now += tick_s
    for name, since in waiting_since.items():
        longest[name] = max(longest[name], now - tick_s - since)
    assert ran == {c.name for c in claims}
    assert max(longest.values()) <= n * turn_s, longest


@pytest.mark.parametrize("seed", range(12))
def test_every_claim_gets_its_turn(seed):
    rng = random.Random(seed)
    n = rng.choice([3, 5, 8, 20])
    fairness_run(rng, n, 900.0, rng.choice([2.0, 10.0]) if n < 8 else rng.choice([30.0, 60.0]))


def test_a_three_phase_charger_is_not_starved_by_single_phase_turns():
    # Two 6 A minimums fit per phase; three single-phase chargers per phase take turns there,
    # their turns ending at different times on each phase. The three-phase one arrives later
    # and needs a free place on all three phases at once: the places it waits for are kept.
    room = rooms(main=12.0)
    arrivals = [(100.0, Claim("three", MAIN, THREE, 6, 10))]
    arrivals += [(phase * 300.0, Claim(f"l{phase + 1}_{j}", MAIN, (phase,), 6, 10)) for phase in range(3)
                 for j in range(3)]
    state = RotationState()
    first_run = None
    for now in range(0, 6 * 3600, 30):
        grants = allocate(room, [c for t, c in arrivals if t <= now], now, state)
        if "three" in grants and grants["three"].current_a:
            first_run = now
            break
    assert first_run is not None and first_run - 100 <= 900


def test_twenty_claims_on_one_phase_take_turns_in_order():
    claims = [Claim(f"ev{i:02d}", MAIN, (0,), 6, 16) for i in range(20)]
    state = RotationState()
    runs: dict[str, list[float]] = {}
    for step in range(0, 20 * 900 + 1, 60):
        grants = allocate(rooms(main=13.0), claims, step, state)
        running = [name for name, grant in grants.items() if grant.current_a]
        assert len(running) == 2                 # 13 A holds two 6 A minimums
        for name in running:
            runs.setdefault(name, []).append(step)
    assert set(runs) == {c.name for c in claims}
    assert all(times[0] <= 9 * 900 for times in runs.values())
