"""Circuits: the fuses between the grid meter and the chargers, each one below its parent.

A `Circuit` has a name, a maximum current per phase and optionally a parent. The root (no
parent) is the grid connection with its main fuse (`site.fuse_a`); a sub-circuit is a fuse or
breaker further in, e.g. a 16 A line to the garage below the 25 A main fuse. A loadpoint hangs
below one circuit, and the current its EV may draw must fit under that circuit AND under every
circuit above it (evcc's `core/circuit` checks a requested current against its own limit and
then asks its parent the same; here the same rule is computed as a headroom).

Per tick and per phase each circuit's load is what it carries without the EVs that share its
room (`CircuitLoad.other_w`): measured load minus those EVs' measured power. The root's load is
the grid meter's import; a sub-circuit without a meter of its own carries nothing but its EVs.
The room left (limit - other load) is split evenly between the EVs sharing it, so all of them
may take their share at once without exceeding the circuit. The house is never curtailed: when
the other load alone is already over a circuit's limit on a phase the EV uses, its headroom is 0.

Pure: plain values in, `FuseHeadroom` out. The site builds the loads for every loadpoint once
per tick (`control/allocation.py`); a lone controller without the site's numbers builds the one
main-fuse circuit itself (`main_circuit_headroom`) and gets exactly the same answer.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from phaeton.control.powerflow import PHASE_NAMES, PowerFlowSnapshot, ev_phase_indices
from phaeton.control.readings import PhaseW

MAIN_CIRCUIT = "main"


@dataclass(frozen=True)
class Circuit:
    """A fuse or breaker: `max_current_a` per phase, below `parent` (None: the grid connection)."""

    name: str
    max_current_a: float
    parent: Circuit | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"circuit name must be non-empty text, got {self.name!r}")
        limit = self.max_current_a
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not math.isfinite(limit) \
                or limit <= 0:
            raise ValueError(f"circuit '{self.name}' max_current_a must be a finite number > 0, "
                             f"got {limit!r}")
        object.__setattr__(self, "max_current_a", float(limit))
        if self.parent is not None and not isinstance(self.parent, Circuit):
            raise ValueError(f"circuit '{self.name}' parent must be a Circuit or None, "
                             f"got {type(self.parent).__name__}")

    @property
    def chain(self) -> tuple[Circuit, ...]:
        """This circuit, then its parent, up to the grid connection."""
        chain: list[Circuit] = []
        circuit: Circuit | None = self
        while circuit is not None:
            chain.append(circuit)
            circuit = circuit.parent
        return tuple(chain)

    @property
    def root(self) -> Circuit:
        return self.chain[-1]

    def feeds(self, circuit: Circuit) -> bool:
        """`circuit` is this one or lies below it."""
        return self in circuit.chain

    @property
    def words(self) -> str:
        """How a reason names it: the main fuse as 'the 25 A fuse', others by name."""
        if self.parent is None:
            return f"{self.max_current_a:g} A fuse"
        return f"{self.max_current_a:g} A circuit '{self.name}'"


@dataclass(frozen=True, slots=True)
class CircuitLoad:
    """One circuit's load this tick without the EVs sharing its room, W per phase (+ drawn;
    None: not reported, the circuit cannot be checked on that phase), and how many EVs share
    the room that is left."""

    circuit: Circuit
    other_w: PhaseW
    sharing: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.sharing, bool) or not isinstance(self.sharing, int) or self.sharing < 1:
            raise ValueError(f"sharing must be a whole number >= 1, got {self.sharing!r}")


@dataclass(frozen=True)
class FuseHeadroom:
    """The highest EV current per phase the circuits allow.

    current_a None: could not be computed (a circuit's load not reported on a phase the EV
    uses). house_over_fuse: the load without the EVs already exceeds a circuit; the EV gets 0.
    circuit: the circuit that bound (or could not be checked); binding_phase: on which phase.
    """

    current_a: float | None
    binding_phase: int | None
    house_over_fuse: bool
    reason: str
    circuit: str | None = None


@dataclass(frozen=True, slots=True)
class LoadpointHeadroom:
    """What one loadpoint's circuits leave for its EV this tick: the loads of its circuit and
    every one above it (child first) and the voltage per phase. The phases the EV charges on
    are the controller's choice, so the current follows from `for_phases`."""

    loads: tuple[CircuitLoad, ...]
    voltage_v: tuple[float, float, float]

    def __post_init__(self) -> None:
        if type(self.loads) is not tuple:
            object.__setattr__(self, "loads", tuple(self.loads))
        if not self.loads:
            raise ValueError("a loadpoint's headroom needs at least one circuit")

    def for_phases(self, phases: int) -> FuseHeadroom:
        """Highest EV current per phase so that no circuit's phase exceeds its limit.

        For each phase p the EV would draw on and each circuit c above it:
        other_after + ev_new <= limit_c, so ev_new_a <= (limit_c - other_w_p / V_p) / sharing_c.
        Phases are checked in order: the first one that cannot be checked or is already over a
        limit decides; otherwise the lowest room wins and names its phase and circuit."""
        best: float | None = None
        binding: tuple[int, CircuitLoad] | None = None
        for phase in ev_phase_indices(phases):
            voltage = self.voltage_v[phase]
            for load in self.loads:
                other_w = load.other_w[phase]
                circuit = load.circuit
                if other_w is None:
                    what = "grid power" if circuit.parent is None else f"circuit '{circuit.name}' power"
                    return FuseHeadroom(None, phase, False,
                                        f"{what} on {PHASE_NAMES[phase]} not reported: fuse cannot be checked",
                                        circuit.name)
                other_a = other_w / voltage
                if other_a > circuit.max_current_a:
                    return FuseHeadroom(0.0, phase, True,
                                        f"house load alone on {PHASE_NAMES[phase]} ({other_a:.1f} A) exceeds "
                                        f"the {circuit.words}: EV paused", circuit.name)
                limit = (circuit.max_current_a - other_a) / load.sharing
                if best is None or limit < best:
                    best, binding = limit, (phase, load)
        assert best is not None and binding is not None
        phase, load = binding
        whom = "the EV" if load.sharing == 1 else f"each of {load.sharing} EVs"
        return FuseHeadroom(best, phase, False,
                            f"{PHASE_NAMES[phase]} allows {best:.1f} A for {whom} under the "
                            f"{load.circuit.words}", load.circuit.name)


def main_circuit_headroom(snapshot: PowerFlowSnapshot, main: Circuit) -> LoadpointHeadroom:
    """The headroom under the main fuse alone, for the one EV of `snapshot` (what a controller
    computes itself when the site does not hand it the circuits' numbers)."""
    other_w = (snapshot.import_without_ev_w(0), snapshot.import_without_ev_w(1),
               snapshot.import_without_ev_w(2))
    return LoadpointHeadroom((CircuitLoad(main, other_w),), snapshot.voltage_v)


def grid_connection(circuits: Sequence[Circuit]) -> Circuit:
    """The one circuit without parent that every circuit of `circuits` hangs below."""
    roots = {circuit.root for circuit in circuits}
    if len(roots) != 1:
        names = ", ".join(sorted(root.name for root in roots)) or "none"
        raise ValueError(f"circuits must hang below one grid connection, found: {names}")
    return roots.pop()
