"""The site's share-out, once per tick: for every loadpoint, the room its circuits leave for its
EV, its part of the solar surplus, and how green the power its EV draws is right now.

The site reads the GX once and every charger once, then calls `share_site`; each loadpoint's
controller gets its `LoadpointShare` (`ControllerInputs.site_share`) instead of working the
fuse and the surplus out from its own EV alone, which would let two EVs each take all of it.

Sharing. Loadpoints that want current (`LoadpointDraw.sharing`; by default: a vehicle is
plugged in) share evenly: on each circuit, the room left without their EVs' present draw is
split between those below it, and the site's surplus (export, plus what they draw now, plus
the battery's part) is split between all of them: higher priority first, each up to what it
can take, equal priorities evenly (`split_surplus`). They can all take their share in the same
tick and no circuit is exceeded. With two or more loadpoints the allocator then decides the
circuits' room (minimums, priorities, turns; `allocate_site`). A loadpoint that does not share keeps its present draw, which
counts as load like the house; its own numbers are what it would get if it joined. With one
loadpoint everything is exactly what a lone controller computes from its own EV.

Green share. Free PV (PV minus the house without EVs, never below 0) covers the EVs' draw in
proportion to it: every EV's power is solar by the same fraction, min(1, free PV / all EVs).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from phaeton.control.allocator import Claim, Grant, RotationState, allocate
from phaeton.control.circuit import Circuit, CircuitLoad, FuseHeadroom, LoadpointHeadroom, grid_connection
from phaeton.control.powerflow import PowerFlowSnapshot, build_site_snapshot
from phaeton.control.readings import EvReadings, PhaseW, SiteReadings, clean_phases
from phaeton.control.settings import ControlSettings
from phaeton.control.surplus import Surplus, raw_surplus


@dataclass(frozen=True)
class LoadpointDraw:
    """One loadpoint as the site sees it this tick: the circuit it hangs below, what its
    charger measures, and whether it takes part in the share-out (None: when plugged in)."""

    circuit: Circuit
    ev: EvReadings
    sharing: bool | None = None
    priority: int = 0                 # higher first for the solar surplus
    max_w: float = math.inf           # the most it can take (its maximum current, all phases)

    def __post_init__(self) -> None:
        if not isinstance(self.circuit, Circuit):
            raise ValueError(f"circuit must be a Circuit, got {type(self.circuit).__name__}")
        if not isinstance(self.ev, EvReadings):
            raise ValueError(f"ev must be EvReadings, got {type(self.ev).__name__}")
        object.__setattr__(self, "sharing", self.ev.connected if self.sharing is None else bool(self.sharing))


@dataclass(frozen=True)
class LoadpointShare:
    """What the site hands one loadpoint's controller for this tick.

    headroom: its circuits' loads (the controller picks the phases, then the current).
    surplus: its part of the unsmoothed solar surplus (None: the grid meter is not reported).
    solar_fraction: the part (0..1) of its EV's present power that free PV covers."""

    headroom: LoadpointHeadroom
    surplus: Surplus | None
    solar_fraction: float


@dataclass(frozen=True)
class SiteShare:
    """One tick's picture of the whole site (every EV in it) and each loadpoint's share."""

    snapshot: PowerFlowSnapshot
    loadpoints: dict[str, LoadpointShare]


def solar_fraction(snapshot: PowerFlowSnapshot) -> float:
    """The part of the EVs' present power covered by PV the house leaves over (0 when no EV
    draws): min(1, max(0, PV - house) / EV power)."""
    ev_w = snapshot.ev_total_w
    if ev_w <= 0:
        return 0.0
    free_pv_w = max(0.0, snapshot.pv_total_w - (snapshot.house_total_w or 0.0))
    return min(ev_w, free_pv_w) / ev_w


def split_surplus(total_w: float, draws: Mapping[str, LoadpointDraw]) -> dict[str, float]:
    """The solar surplus between loadpoints: higher priority first, each up to what it can
    take, equal priorities evenly (what one of them cannot take goes to the others); what is
    left when all are full is split evenly over all. A deficit (total <= 0) is shared evenly:
    every car in Auto slows down alike."""
    names = list(draws)
    if total_w <= 0 or not names:
        return {name: total_w / max(1, len(names)) for name in names}
    parts = dict.fromkeys(names, 0.0)
    left = total_w
    for level in sorted({draws[n].priority for n in names}, reverse=True):
        open_ = [n for n in names if draws[n].priority == level]
        while open_ and left > 1e-9:
            each = left / len(open_)
            full = [n for n in open_ if draws[n].max_w - parts[n] <= each]
            if not full:
                for n in open_:
                    parts[n] += each
                left = 0.0
                break
            for n in full:
                left -= draws[n].max_w - parts[n]
                parts[n] = draws[n].max_w
                open_.remove(n)
    if left > 1e-9:
        for n in names:
            parts[n] += left / len(names)
    return parts


def share_site(site: SiteReadings, loadpoints: Mapping[str, LoadpointDraw], settings: ControlSettings,
               *, evs_known: bool = True, circuit_meters: Mapping[str, PhaseW] | None = None) -> SiteShare:
    """Every loadpoint's headroom, surplus and green share from one reading of the site.

    The grid connection (the circuit without parent) is measured by the GX grid meter; a
    sub-circuit by `circuit_meters[name]` (W per phase, + drawn, everything below it included)
    when it has a meter, else it carries only its EVs. `evs_known` False: a charger does not
    answer (the house load is unknown then, see `build_site_snapshot`)."""
    if loadpoints:
        grid_connection([lp.circuit for lp in loadpoints.values()])
    meters = {name: clean_phases(w, f"circuit_meters['{name}']") for name, w in (circuit_meters or {}).items()}
    snapshot = build_site_snapshot(site, [lp.ev for lp in loadpoints.values()], settings,
                                   evs_known=evs_known)
    nominal = settings.nominal_voltage_v
    ev_w = {name: lp.ev.phase_power_w(nominal) for name, lp in loadpoints.items()}
    sharing = [name for name, lp in loadpoints.items() if lp.sharing]
    green = solar_fraction(snapshot)
    shares: dict[str, LoadpointShare] = {}
    for name, lp in loadpoints.items():
        pool = sharing if name in sharing else [*sharing, name]
        loads = []
        for circuit in lp.circuit.chain:
            below = [other for other, draw in loadpoints.items() if circuit.feeds(draw.circuit)]
            members = [other for other in below if other in pool]
            measured = snapshot.grid_w if circuit.parent is None else meters.get(circuit.name)
            if measured is None:           # no meter: it carries only the EVs below it
                others = [other for other in below if other not in pool]
                other_w = tuple(sum((ev_w[o][p] for o in others), 0.0) for p in range(3))
            else:
                other_w = tuple(None if measured[p] is None
                                else measured[p] - sum(ev_w[m][p] for m in members) for p in range(3))
            loads.append(CircuitLoad(circuit, other_w, len(members)))  # type: ignore[arg-type]
        pool_ev_w = tuple(sum(ev_w[m][p] for m in pool) for p in range(3))
        surplus = raw_surplus(replace(snapshot, ev_w=pool_ev_w), site, settings.battery_priority_soc_pct)
        if surplus is not None and len(pool) > 1:
            part = split_surplus(surplus.raw_w, {m: loadpoints[m] for m in pool})[name]
            surplus = Surplus(raw_w=part, battery_has_priority=surplus.battery_has_priority)
        shares[name] = LoadpointShare(LoadpointHeadroom(tuple(loads), snapshot.voltage_v), surplus, green)
    return SiteShare(snapshot, shares)


def on_grid_phases(ev: EvReadings, grid_phase: int) -> EvReadings:
    """A charger's readings in grid phase order: its own L1 is the grid's `grid_phase` (0..2;
    a single-phase charger wired to L2 or L3), its L2 and L3 follow round."""
    if grid_phase == 0:
        return ev
    return replace(ev, power_w=_rotate(ev.power_w, grid_phase),
                   current_a=_rotate(ev.current_a, grid_phase),
                   voltage_v=_rotate(ev.voltage_v, grid_phase))


def in_charger_phases(share: LoadpointShare, grid_phase: int) -> LoadpointShare:
    """A share computed in grid phase order, turned back into the charger's own order (what
    its controller checks as L1 is the grid's `grid_phase`)."""
    headroom = share.headroom
    if grid_phase == 0 or not isinstance(headroom, LoadpointHeadroom):
        return share           # (an allocator grant is one current, whatever the phase)
    back = -grid_phase
    loads = tuple(replace(load, other_w=_rotate(load.other_w, back)) for load in headroom.loads)
    return replace(share, headroom=LoadpointHeadroom(loads, _rotate(headroom.voltage_v, back)))


def _rotate(values: tuple, shift: int) -> tuple:
    """values[i] moves to position i + shift (mod 3)."""
    return tuple(values[(i - shift) % 3] for i in range(3))


# ---- several loadpoints: the allocator decides who gets how much ------------------------------

@dataclass(frozen=True)
class GrantedHeadroom:
    """The allocator's grant for one loadpoint in the place of its circuits' headroom: whatever
    phases its controller picks, the grant is the most it may take (0: paused, with why)."""

    grant: Grant

    def for_phases(self, phases: int) -> FuseHeadroom:
        g = self.grant
        house_over = g.current_a == 0 and not g.waiting and "house load alone" in g.reason
        return FuseHeadroom(g.current_a, g.phase, house_over, g.reason, g.circuit)


def circuit_room(snapshot: PowerFlowSnapshot, loadpoints: Mapping[str, LoadpointDraw],
                 claimants: set[str], nominal_voltage_v: float) -> dict[tuple[str, int], float | None]:
    """Per (circuit, phase): the current left for all `claimants` below it together. The grid
    connection's load is the grid meter's import minus the claimants' EVs; a sub-circuit
    (no meter of its own) carries only the EVs below it, the claimants' left out."""
    ev_w = {name: lp.ev.phase_power_w(nominal_voltage_v) for name, lp in loadpoints.items()}
    every = {c for lp in loadpoints.values() for c in lp.circuit.chain}
    room: dict[tuple[str, int], float | None] = {}
    for circuit in every:
        below = [name for name, lp in loadpoints.items() if circuit.feeds(lp.circuit)]
        for p in range(3):
            if circuit.parent is None:
                measured = snapshot.grid_w[p]
                if measured is None:
                    room[(circuit.name, p)] = None
                    continue
                other_w = measured - sum(ev_w[n][p] for n in below if n in claimants)
            else:
                other_w = sum(ev_w[n][p] for n in below if n not in claimants)
            room[(circuit.name, p)] = circuit.max_current_a - other_w / snapshot.voltage_v[p]
    return room


def allocate_site(share: SiteShare, loadpoints: Mapping[str, LoadpointDraw], claims: list[Claim],
                  settings: ControlSettings, now_s: float, state: RotationState,
                  turn_s: float) -> SiteShare:
    """`share` with each claiming loadpoint's headroom replaced by its allocator grant (who
    gets how much of every circuit, minimums, priorities, turns: `control/allocator.py`)."""
    room = circuit_room(share.snapshot, loadpoints, {c.name for c in claims},
                        settings.nominal_voltage_v)
    grants = allocate(room, claims, now_s, state, turn_s=turn_s)
    shares = {name: (replace(part, headroom=GrantedHeadroom(grants[name]))  # type: ignore[arg-type]
                     if name in grants else part)
              for name, part in share.loadpoints.items()}
    return SiteShare(share.snapshot, shares)


def hold_raises_for_cuts(share: SiteShare, claims: list[Claim],
                         applied_a: Mapping[str, float | None],
                         measured_a: Mapping[str, float | None],
                         tolerance_a: float = 1.0) -> SiteShare:
    """Break before make: while a car still draws more than its new grant (its cut has not
    shown in its charger's reading yet: a car takes seconds to follow, an OCPP meter reports
    every few seconds), no other car is raised above what it was told before. Otherwise one
    car's raise can land before another's cut and the circuits carry both for a while.

    `applied_a`: what each charger was told last (None: nothing yet); `measured_a`: the highest
    phase current its reading shows (None: unknown)."""
    grants = {name: part.headroom.grant for name, part in share.loadpoints.items()
              if isinstance(part.headroom, GrantedHeadroom)}
    cutting = sorted(
        name for name, grant in grants.items()
        if grant.current_a is not None and measured_a.get(name) is not None
        and measured_a[name] > grant.current_a + tolerance_a)  # type: ignore[operator]
    if not cutting:
        return share
    minimum = {claim.name: claim.min_a for claim in claims}
    parts = dict(share.loadpoints)
    for name, grant in grants.items():
        before = applied_a.get(name) or 0.0
        blockers = [other for other in cutting if other != name]
        if grant.current_a is None or grant.current_a <= before + 1e-9 or not blockers:
            continue
        held = before if before >= minimum.get(name, 0.0) else 0.0
        reason = (f"holding {held:g} A until the cut of {', '.join(blockers)} shows in its "
                  f"reading (then {grant.current_a:.1f} A)")
        parts[name] = replace(parts[name], headroom=GrantedHeadroom(
            Grant(held, reason, grant.circuit, grant.phase, grant.waiting)))
    return SiteShare(share.snapshot, parts)
