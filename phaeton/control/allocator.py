"""The site's share-out of circuit room between several EV chargers, once per tick.

`allocate` is pure apart from the `RotationState` it is handed (who runs since when, who waits
since when). The caller works out, per circuit and phase, the current that circuit has left for
ALL the chargers below it together (`room_a[(circuit, phase)]`: limit minus the load without
those chargers; negative when the house alone is over; None when not measured), and one `Claim`
per charger. Each claim gets a `Grant`: the highest current per phase it may take this tick.

The rules, in the order they are applied:

1. Unknown room. A claim drawing on a phase whose room is None on any circuit of its chain gets
   current None ("cannot be checked"); it is otherwise ignored: it takes nothing from the
   others' room, and its rotation memory is left as it was (it neither starts nor ends a turn).
   Phases are checked in order, each from the claim's own circuit up to the grid connection;
   the first one that cannot be checked names the circuit and phase.
2. House over. A claim drawing on a (circuit, phase) whose room is negative (the house load
   alone exceeds that circuit) gets 0 and a reason saying so; it takes nothing. It is not
   `waiting` (no turn can help it) but its waiting clock runs, so it has its place when the
   load drops. Every claim below such a circuit on that phase gets 0.
3. Admission of the minimums. Claims with want_a > 0 are ordered by priority (higher first);
   within one priority: running claims that have run less than `turn_s` (running longest
   first), then the others by how long they have waited (new claims wait since now), then
   running claims whose turn is over (the one that ran least first); ties by name. In that
   order a claim is admitted when its min_a fits on every (circuit, phase) it uses next to
   the minimums already admitted. A claim that does not fit is paused (0).
   - A claim whose minimum does not fit even with nobody else there (room < min_a) is paused
     with that reason and is not `waiting`.
   - Otherwise it is `waiting` and, when its minimum fits next to the higher priorities
     alone, it keeps its minimum reserved on every (circuit, phase) it uses: no claim after it
     in the order (same or lower priority) may be admitted into that reserved room this tick.
     This is what makes the rotation fair with mixed single/three-phase claims and nested
     circuits: a three-phase claim that waits for one busy phase cannot be overtaken forever
     by single-phase claims taking the others. The price: room it reserves may stay unused
     until the turns that block it are over. A reservation is never made
     for a claim that the higher priorities alone leave no room for, so it cannot block
     anything for good.
   A want_a between 0 and min_a counts as min_a (a charger does not charge below its
   minimum).
4. Fill. Every admitted claim starts at its min_a; then priority level by level (highest
   first) the claims of the level rise together at the same rate (water-filling), each
   stopping when it reaches its want_a or when a (circuit, phase) it uses is full. Equal
   claims (same priority, minimum, want, circuit and phases) end equal.
5. Slack. A claim that reached its want_a gets want_a plus, over its (circuit, phase)s, the
   smallest share of the room still free there divided between the claims there that reached
   their want (so it can rise next tick without the sum ever exceeding the room). A claim
   that stopped on a full (circuit, phase) keeps what it reached. With ONE claim this is
   exactly the lowest room over its chain and phases, whatever its want_a: what a lone
   controller computes.
6. Claims that want nothing (want_a == 0) are not admitted and never wait; each is offered a
   current anyway, so it can start next tick: it shares the slack of step 5 like one more
   claim that reached its want (want 0). Sharing, rather than each being offered all of the
   slack, keeps the sum of ALL grants within the room. An offer below its min_a is withdrawn
   (0, "no room for its minimum"), the last one in the order first, and the others' shares
   are worked out again without it. A lone claim that wants nothing is offered all the room.
7. Rotation memory (`RotationState`, updated in place). A claim admitted this tick runs since
   the tick it was first admitted; one paused with want_a > 0 waits since the tick it was
   first paused; one that wants nothing forgets both; an unknown-room claim keeps what it had;
   claims absent from a call are forgotten. A claim's turn is counted from when it started
   running, so one that has run longer than `turn_s` alone gives way at once when another
   one must wait for it. Rotation only happens between equal priorities: a higher priority
   always goes first. Times after `now_s` (the clock stepped back) are taken as `now_s`.
   So want_a must be what the charger would take if it were allowed, not what it draws now:
   a paused claim that reports 0 gives up its place in the queue.

Reasons, as the owner reads them: "L1 of the 25 A fuse allows 13.0 A" (alone there);
"L1 of the 32 A circuit 'garage' shared by 3 EVs: 10.7 A each" (or "… for this one" when the
grants there differ); "paused: no room for its 6 A minimum on L1 of the 25 A fuse; its turn
comes after garage_left has charged 15 min (in about 12 min)" (or "…; boss has a higher
priority", "…; w has waited longer and goes first"; "paused after its 15 min turn: …" when it
just gave way); "paused: L1 of the 25 A fuse has 4.0 A left, below its 6 A minimum"; "paused:
the house load alone on L1 exceeds the 25 A fuse by 2.5 A"; "grid power on L2 not reported:
the 25 A fuse cannot be checked"; "wants no current now; may start with up to 18.0 A: …".

Tolerances: a minimum "fits" within 1e-10 A; a (circuit, phase) is "full" within 1e-9 A.

Pure: no I/O, no clock; plain Python (one call for 20 claims on 3 circuits is well under 1 ms,
`benchmarks/allocation_bench.py`).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from phaeton.control.circuit import Circuit
from phaeton.control.powerflow import PHASE_NAMES

FIT_EPS = 1e-10      # A: a minimum fits when used + min <= room + FIT_EPS
FULL_EPS = 1e-9      # A: a (circuit, phase) with less free room than this is full


@dataclass(frozen=True)
class Claim:
    """One loadpoint's request this tick."""

    name: str                 # loadpoint id
    circuit: Circuit          # the circuit it hangs below (its chain up to the root all apply)
    phases: tuple[int, ...]   # grid phase indices it draws on: (0, 1, 2) three-phase, (k,) single-phase
    min_a: float              # its minimum current per phase (below that it must be paused: 0)
    want_a: float             # what it would take this tick (<= its maximum); 0 = wants nothing
    priority: int = 0         # higher first

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"claim name must be non-empty text, got {self.name!r}")
        if not isinstance(self.circuit, Circuit):
            raise ValueError(f"claim '{self.name}' circuit must be a Circuit, got {type(self.circuit).__name__}")
        phases = tuple(self.phases)
        if not phases or len(set(phases)) != len(phases) \
                or any(isinstance(p, bool) or p not in (0, 1, 2) for p in phases):
            raise ValueError(f"claim '{self.name}' phases must be distinct indices 0..2, got {self.phases!r}")
        object.__setattr__(self, "phases", phases)
        for what in ("min_a", "want_a"):
            value = getattr(self, what)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0:
                raise ValueError(f"claim '{self.name}' {what} must be a finite number >= 0, got {value!r}")
            object.__setattr__(self, what, float(value))
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise ValueError(f"claim '{self.name}' priority must be a whole number, got {self.priority!r}")


@dataclass(frozen=True)
class Grant:
    """What one claim may take this tick.

    current_a: the highest current per phase; 0 = paused; None = cannot be checked.
    circuit, phase: what bound it (None: nothing bound). waiting: paused for lack of room for
    its minimum while others use it (the rotation will give it a turn)."""

    current_a: float | None
    reason: str
    circuit: str | None
    phase: int | None
    waiting: bool = False


@dataclass
class RotationState:
    """Memory between ticks: since when (the caller's `now_s`) each claim runs or waits."""

    running_since: dict[str, float] = field(default_factory=dict)
    waiting_since: dict[str, float] = field(default_factory=dict)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:g} min"


def _names(names: list[str]) -> str:
    """'a', 'a and b', 'a, b and c', 'a, b, c and 4 more'."""
    if len(names) == 1:
        return names[0]
    if len(names) > 3:
        return f"{', '.join(names[:3])} and {len(names) - 3} more"
    return ", ".join(names[:-1]) + " and " + names[-1]


def allocate(room_a: Mapping[tuple[str, int], float | None], claims: Sequence[Claim], now_s: float,
             state: RotationState, *, turn_s: float = 900.0) -> dict[str, Grant]:
    """Every claim's grant for this tick (see the module docstring for the rules)."""
    n_claims = len(claims)
    # -- the (circuit, phase) constraints as indices; each claim's, phases first, child first ----
    key_index: dict[tuple[str, int], int] = {}
    key_room: list[float | None] = []
    key_circuit: list[Circuit] = []
    key_phase: list[int] = []
    key_claims: list[list[int]] = []          # the claims drawing on it
    claim_keys: list[tuple[int, ...]] = []
    shapes: dict[tuple[int, tuple[int, ...]], tuple[int, ...]] = {}
    seen: set[str] = set()
    for i, claim in enumerate(claims):
        if claim.name in seen:
            raise ValueError(f"two claims named '{claim.name}'")
        seen.add(claim.name)
        shape = (id(claim.circuit), claim.phases)
        keys = shapes.get(shape)
        if keys is None:
            chain = claim.circuit.chain
            built = []
            for phase in claim.phases:
                for circuit in chain:
                    key = (circuit.name, phase)
                    index = key_index.get(key)
                    if index is None:
                        if key not in room_a:
                            raise ValueError(f"no room given for circuit '{circuit.name}' phase {phase}")
                        index = key_index[key] = len(key_room)
                        key_room.append(room_a[key])
                        key_circuit.append(circuit)
                        key_phase.append(phase)
                        key_claims.append([])
                    built.append(index)
            keys = shapes[shape] = tuple(built)
        claim_keys.append(keys)
        for k in keys:
            key_claims[k].append(i)
    n_keys = len(key_room)
    room = [0.0 if value is None else value for value in key_room]
    wheres: list[str | None] = [None] * n_keys

    def where(k: int) -> str:
        text = wheres[k]
        if text is None:
            text = wheres[k] = f"{PHASE_NAMES[key_phase[k]]} of the {key_circuit[k].words}"
        return text

    # -- unknown room, house over, and who asks for current ----------------------------------------
    grants: list[Grant | None] = [None] * n_claims
    active: list[int] = []          # want > 0, room known and not negative
    idle: list[int] = []            # want == 0, room known and not negative
    house_over: list[int] = []      # want > 0 but a circuit's house load alone is over
    for i, claim in enumerate(claims):
        unknown = over = -1
        for k in claim_keys[i]:
            value = key_room[k]
            if value is None:
                unknown = k
                break
            if over < 0 and value < 0:
                over = k
        if unknown >= 0:
            circuit = key_circuit[unknown]
            what = "grid power" if circuit.parent is None else f"circuit '{circuit.name}' power"
            grants[i] = Grant(None, f"{what} on {PHASE_NAMES[key_phase[unknown]]} not reported: "
                                    f"the {circuit.words} cannot be checked", circuit.name, key_phase[unknown])
        elif over >= 0:
            grants[i] = Grant(0.0, f"paused: the house load alone on {PHASE_NAMES[key_phase[over]]} exceeds "
                                   f"the {key_circuit[over].words} by {-room[over]:.1f} A",
                              key_circuit[over].name, key_phase[over])
            if claim.want_a > 0:
                house_over.append(i)
        elif claim.want_a > 0:
            active.append(i)
        else:
            idle.append(i)

    # -- admission of the minimums, in rotation order ----------------------------------------------
    running_since = state.running_since
    waiting_since = state.waiting_since
    for since in (running_since, waiting_since):     # the clock stepped back: count from now
        for name, value in since.items():
            if value > now_s:
                since[name] = now_s

    def order(i: int) -> tuple:
        claim = claims[i]
        since = running_since.get(claim.name)
        if since is not None:
            if now_s - since < turn_s:
                return (-claim.priority, 0, since, claim.name)
            return (-claim.priority, 2, -since, claim.name)
        return (-claim.priority, 1, waiting_since.get(claim.name, now_s), claim.name)

    used = [0.0] * n_keys            # admitted minimums
    reserved = [0.0] * n_keys        # minimums kept for waiting claims
    above = used                     # what the higher priorities hold (admitted and reserved)
    above_used = used
    level: int | None = None
    occupants: list[list[int]] = [[] for _ in range(n_keys)]   # admitted or reserving, in order
    admitted: list[int] = []
    is_admitted = [False] * n_claims
    admitted_on = [0] * n_keys
    waiting_grants: dict[tuple, Grant] = {}
    for i in sorted(active, key=order):
        claim = claims[i]
        if claim.priority != level:
            level = claim.priority
            above_used = used[:]
            above = [used[k] + reserved[k] for k in range(n_keys)]
        minimum = claim.min_a
        keys = claim_keys[i]
        small = stuck = -1
        for k in keys:
            if room[k] + FIT_EPS < minimum:
                small = k
                break
            if stuck < 0 and used[k] + reserved[k] + minimum > room[k] + FIT_EPS:
                stuck = k
        if small >= 0:
            grants[i] = Grant(0.0, f"paused: {where(small)} has {room[small]:.1f} A left, below its "
                                   f"{minimum:g} A minimum", key_circuit[small].name, key_phase[small])
            continue
        if stuck < 0:
            admitted.append(i)
            is_admitted[i] = True
            for k in keys:
                used[k] += minimum
                admitted_on[k] += 1
                occupants[k].append(i)
            continue
        by_higher = above[stuck] + minimum > room[stuck] + FIT_EPS
        by_running = used[stuck] + minimum > room[stuck] + FIT_EPS
        since = running_since.get(claim.name)
        overtime = since is not None and now_s - since >= turn_s
        # claims in the same situation (often many) share one grant: same words, same numbers
        situation = (stuck, admitted_on[stuck], -1 if by_running else len(occupants[stuck]), minimum,
                     claim.priority, by_higher, by_running, overtime)
        grant = waiting_grants.get(situation)
        if grant is None:
            grant = waiting_grants[situation] = _waiting_grant(
                claim, claims, occupants[stuck], is_admitted, by_higher, by_running, overtime, running_since,
                now_s, turn_s, where(stuck), key_circuit[stuck].name, key_phase[stuck])
        grants[i] = grant
        for k in keys:
            if above_used[k] + minimum > room[k] + FIT_EPS:
                break
        else:                        # its minimum fits next to the higher priorities: keep it
            for k in keys:
                reserved[k] += minimum
                occupants[k].append(i)

    # -- fill: water-filling from the minimums, level by level -------------------------------------
    x = [0.0] * n_claims
    want = [0.0] * n_claims
    slack = [room[k] - used[k] for k in range(n_keys)]
    levels: dict[int, list[int]] = {}
    for i in admitted:
        claim = claims[i]
        x[i] = claim.min_a
        want[i] = claim.want_a if claim.want_a > claim.min_a else claim.min_a
        levels.setdefault(claim.priority, []).append(i)
    stopped_on: dict[int, int] = {}       # claim -> the full (circuit, phase) that stopped it
    count = [0] * n_keys                  # rising claims per (circuit, phase)
    for priority in sorted(levels, reverse=True):
        rising: list[int] = []
        for i in levels[priority]:
            if want[i] - x[i] <= FULL_EPS:
                x[i] = want[i]
                continue
            for k in claim_keys[i]:
                if slack[k] <= FULL_EPS:
                    stopped_on[i] = k
                    break
            else:
                rising.append(i)
        if not rising:
            continue
        on: dict[int, list[int]] = {}
        for i in rising:
            for k in claim_keys[i]:
                count[k] += 1
                on.setdefault(k, []).append(i)
        alive = dict.fromkeys(rising, True)
        rising.sort(key=lambda i: want[i] - x[i])   # who reaches its want first
        head = [want[i] - x[i] for i in rising]
        base = {i: x[i] for i in rising}
        left = len(rising)
        t = 0.0                                     # how far every rising claim has risen
        ptr = 0
        while left:
            while not alive[rising[ptr]]:
                ptr += 1
            step = head[ptr] - t
            for k in on:
                n = count[k]
                if n:
                    share = slack[k] / n
                    if share < step:
                        step = share
            if step < 0:
                step = 0.0
            t += step
            for k in on:
                n = count[k]
                if n:
                    slack[k] -= n * step
            while ptr < len(rising):
                i = rising[ptr]
                if alive[i]:
                    if head[ptr] - t > FULL_EPS:
                        break
                    x[i] = want[i]
                    alive[i] = False
                    left -= 1
                    for k in claim_keys[i]:
                        count[k] -= 1
                ptr += 1
            for k, members in on.items():
                if count[k] and slack[k] <= FULL_EPS:
                    for i in members:
                        if alive[i]:
                            x[i] = base[i] + t
                            alive[i] = False
                            left -= 1
                            for j in claim_keys[i]:
                                count[j] -= 1
                            for j in claim_keys[i]:
                                if slack[j] <= FULL_EPS:
                                    stopped_on[i] = j
                                    break

    # A claim alone on the (circuit, phase) that stopped it takes exactly the room there.
    for i, k in stopped_on.items():
        if admitted_on[k] == 1:
            x[i] = max(room[k], claims[i].min_a)

    # -- slack for those that have what they want, offers to those that want nothing ---------------
    total = [0.0] * n_keys
    for i in admitted:
        xi = x[i]
        for k in claim_keys[i]:
            total[k] += xi
    satisfied = [i for i in admitted if i not in stopped_on]
    base_count = [0] * n_keys
    for i in satisfied:
        for k in claim_keys[i]:
            base_count[k] += 1

    def cap(i: int, count: list[int]) -> tuple[float, int]:
        """x + the smallest share of the free room over its (circuit, phase)s, and where."""
        xi = x[i]
        best = math.inf
        bound = -1
        for k in claim_keys[i]:
            n = count[k]
            if room[k] - total[k] <= 0:
                value = xi
            else:           # = xi + free / n, written so that a lone claim gets the room exactly
                value = (room[k] - (total[k] - xi) + (n - 1) * xi) / n
                if value < xi:
                    value = xi
            if value < best:
                best, bound = value, k
        return best, bound

    offered = sorted(idle, key=lambda i: (-claims[i].priority, claims[i].name))
    withdrawn: dict[int, int] = {}        # idle claim -> the (circuit, phase) that leaves too little
    while True:
        count = base_count[:]
        for i in offered:
            for k in claim_keys[i]:
                count[k] += 1
        for i in reversed(offered):
            value, bound = cap(i, count)
            if value + FIT_EPS < claims[i].min_a:
                withdrawn[i] = bound
                offered.remove(i)
                break
        else:
            break

    current: dict[int, float] = {}
    bound_key: dict[int, int] = {}
    for i in satisfied:
        current[i], bound_key[i] = cap(i, count)
    for i, k in stopped_on.items():
        current[i], bound_key[i] = x[i], k
    for i in offered:
        value, bound_key[i] = cap(i, count)
        current[i] = max(value, claims[i].min_a)    # within FIT_EPS of it

    # -- reasons -----------------------------------------------------------------------------------
    sharing: dict[int, tuple[int, bool]] = {}    # (circuit, phase) -> EVs granted there, all equal?
    same_grant: dict[tuple[int, float, bool], Grant] = {}
    for i, value in current.items():
        claim = claims[i]
        k = bound_key[i]
        situation = (k, value, claim.want_a <= 0)
        grant = same_grant.get(situation)
        if grant is not None:       # equal claims: one grant, same words, same numbers
            grants[i] = grant
            continue
        shared = sharing.get(k)
        if shared is None:
            amps = [current[j] for j in key_claims[k] if current.get(j, 0.0) > 0]
            shared = sharing[k] = (len(amps), max(amps) - min(amps) <= 1e-9 if amps else True)
        if shared[0] <= 1:
            text = f"{where(k)} allows {value:.1f} A"
        elif shared[1]:
            text = f"{where(k)} shared by {shared[0]} EVs: {value:.1f} A each"
        else:
            text = f"{where(k)} shared by {shared[0]} EVs: {value:.1f} A for this one"
        if claim.want_a <= 0:
            text = f"wants no current now; may start with up to {value:.1f} A: {text}"
        grants[i] = same_grant[situation] = Grant(value, text, key_circuit[k].name, key_phase[k])
    for i, k in withdrawn.items():
        claim = claims[i]
        if room[k] + FIT_EPS < claim.min_a:
            text = f"{where(k)} has {room[k]:.1f} A left, below its {claim.min_a:g} A minimum"
        else:
            text = f"no room for its {claim.min_a:g} A minimum on {where(k)}"
        grants[i] = Grant(0.0, f"wants no current now; {text}", key_circuit[k].name, key_phase[k])

    # -- rotation memory ---------------------------------------------------------------------------
    if len(running_since) + len(waiting_since) > n_claims or any(
            name not in seen for name in running_since) or any(name not in seen for name in waiting_since):
        for name in [name for name in running_since if name not in seen]:
            del running_since[name]
        for name in [name for name in waiting_since if name not in seen]:
            del waiting_since[name]
    for i in admitted:
        name = claims[i].name
        if name not in running_since:
            running_since[name] = now_s
        waiting_since.pop(name, None)
    for i in active:
        if not is_admitted[i]:
            name = claims[i].name
            running_since.pop(name, None)
            if name not in waiting_since:
                waiting_since[name] = now_s
    for i in house_over:
        name = claims[i].name
        running_since.pop(name, None)
        if name not in waiting_since:
            waiting_since[name] = now_s
    for i, claim in enumerate(claims):
        if claim.want_a <= 0 and grants[i].current_a is not None:     # type: ignore[union-attr]
            running_since.pop(claim.name, None)
            waiting_since.pop(claim.name, None)
    return {claim.name: grants[i] for i, claim in enumerate(claims)}  # type: ignore[misc]


def _waiting_grant(claim: Claim, claims: Sequence[Claim], ahead: list[int], is_admitted: list[bool],
                   by_higher: bool, by_running: bool, overtime: bool, running_since: Mapping[str, float],
                   now_s: float, turn_s: float, where: str, circuit: str, phase: int) -> Grant:
    """The grant and reason of a claim paused because others take the room on one (circuit,
    phase). `ahead`: the claims before it there (admitted, or keeping their minimum while they
    wait); `by_higher`: the higher priorities alone leave too little; `by_running`: the admitted
    claims alone leave too little (else it is what waiting claims keep that leaves too little);
    `overtime`: it ran and its turn is over."""
    text = f"paused: no room for its {claim.min_a:g} A minimum on {where}"
    if overtime:
        text = f"paused after its {_minutes(turn_s)} turn: no room for its {claim.min_a:g} A minimum on {where}"
    if by_higher:
        names = [claims[j].name for j in ahead if claims[j].priority > claim.priority]
        if names:
            verb = "has" if len(names) == 1 else "have"
            return Grant(0.0, f"{text}; {_names(names)} {verb} a higher priority", circuit, phase, True)
    same = [j for j in ahead if claims[j].priority == claim.priority and is_admitted[j] == by_running]
    if not same:                                        # pragma: no cover - someone is always ahead
        same = ahead
    if by_running:
        in_turn = []
        for j in same:
            since = running_since.get(claims[j].name, now_s)    # admitted just now: its turn starts
            if now_s - since < turn_s:
                in_turn.append((since + turn_s, claims[j].name))
        if in_turn:
            ends, name = min(in_turn)
            minutes = max(1, math.ceil((ends - now_s) / 60 - 1e-9))
            return Grant(0.0, f"{text}; its turn comes after {name} has charged {_minutes(turn_s)} "
                              f"(in about {minutes} min)", circuit, phase, True)
        return Grant(0.0, f"{text}; {_names([claims[j].name for j in same])} charge there first",
                     circuit, phase, True)
    name = claims[same[0]].name
    if name in running_since:
        return Grant(0.0, f"{text}; {name} is ahead of it and goes first", circuit, phase, True)
    return Grant(0.0, f"{text}; {name} has waited longer and goes first", circuit, phase, True)
