"""Can a charger's answer be believed? Pure checks the service runs on every measurement.

A charger that answers garbage (NaN everywhere, random words, a negative station maximum, a
lifetime counter of 2e304 kWh) is not "connected" in any useful sense: its values must not reach
the controller, the session or D-Bus. `judge_measurement()` decides, per tick:

- every field is checked on its own (`measurement_problems`): per-phase currents, voltages and
  powers, the total power, the applied and the station maximum current within physical ranges
  (a little negative noise allowed), phases 1..3, a known vehicle state
  (`VehicleState.UNKNOWN` = the charger could not say), SoC 0..100 %, energies >= 0. None
  means "not provided" and is fine, except for the fields the driver says it always reports
  (`Charger.required_readings`: an Alfen meter without a voltage or current on any phase is
  answering NaN). NaN, infinities and non-numbers are never fine.
- the lifetime energy counter is checked against the last good value (`judge_counter`): it may
  not go down, and it may not rise by more than the charger could deliver since the last good
  value was first seen (wired phases x max current x nominal voltage x 1.25, plus 10 s of slack
  for a meter that updates in steps). Values above 1e8 kWh are never accepted. A missing value
  (None) is not a problem: the last good one is kept.
- a counter that really changed level (meter reset, charger replaced) settles: a new level that
  stays self-consistent (never down, never faster than the charger) for `REBASE_CONFIRM_S` is
  adopted as the new base (`CounterVerdict.rebased`, so the session re-bases instead of
  counting the step). Random garbage is never self-consistent.

Any problem makes the whole measurement untrusted for that tick (`Judgement.trusted` False,
`Judgement.reason` "charger answers implausible values: <field>=<value>, ..."). The counter state
only moves on when the other fields are fine.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from phaeton.chargers.base import ChargerMeasurement, VehicleState

MAX_PHASE_CURRENT_A = 100.0        # no AC wallbox delivers more per phase (config allows <= 80)
MAX_PHASE_VOLTAGE_V = 500.0        # phase-to-neutral; 0 V is a phase that is not wired
MAX_PHASE_POWER_W = MAX_PHASE_CURRENT_A * 300.0
NOISE_A = 1.0                      # a meter may show a little below 0 A ...
NOISE_W = 250.0                    # ... and a little below 0 W
MAX_LIFETIME_KWH = 1e8             # 100 GWh: centuries of 22 kW around the clock
COUNTER_TOLERANCE_KWH = 0.01       # a counter reading this much lower is rounding, not a drop
COUNTER_SLACK_S = 10.0             # a meter that updates in steps may be ahead by this much
POWER_MARGIN = 1.25                # on top of phases x max current x nominal voltage
REBASE_CONFIRM_S = 60.0            # a new counter level must hold this long to be believed
MAX_PROBLEMS_SHOWN = 3

UNTRUSTED_PREFIX = "charger answers implausible values"


# ---- single fields ---------------------------------------------------------------------------

def show_value(value: Any) -> str:
    """A value for a reason text: numbers short, anything else as a short repr."""
    if isinstance(value, float):
        return f"{value:.4g}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def number_problem(name: str, value: Any, low: float, high: float) -> str | None:
    """'name=value' when `value` is not None and not a finite number within [low, high]."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or not low <= value <= high:
        return f"{name}={show_value(value)}"
    return None


def phase_problems(name: str, values: Any, low: float, high: float) -> list[str]:
    """Problems of a per-phase triple (L1, L2, L3); up to 3 entries, None entries are fine."""
    if not isinstance(values, (tuple, list)) or len(values) > 3:
        return [f"{name}={show_value(values)}"]
    found = []
    for index, value in enumerate(values):
        problem = number_problem(f"{name}[L{index + 1}]", value, low, high)
        if problem:
            found.append(problem)
    return found


def plausible_station_max_current(amps: Any) -> bool:
    """A station maximum current worth believing (0 is a station that allows nothing now)."""
    return amps is not None and number_problem("", amps, 0.0, MAX_PHASE_CURRENT_A) is None


def vehicle_state_problem(m: ChargerMeasurement) -> str | None:
    if not isinstance(m.vehicle_state, VehicleState):
        return f"vehicle_state={show_value(m.vehicle_state)}"
    if m.vehicle_state is VehicleState.UNKNOWN:
        return f"vehicle_state=unknown ({m.error_reason or 'not reported'})"
    return None


def missing_readings(m: ChargerMeasurement, required: frozenset[str]) -> list[str]:
    """The `required` fields that `m` does not report (per-phase: on no phase)."""
    found = []
    for name in sorted(required):
        value = getattr(m, name, None)
        if value is None or (isinstance(value, (tuple, list)) and all(v is None for v in value)):
            found.append(f"{name}=NaN")
    return found


def measurement_problems(m: Any, required: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """Every field of one measurement that cannot be true, and every `required` field it does
    not report (the lifetime counter only on its own, without history: `judge_counter` checks
    its steps)."""
    if not isinstance(m, ChargerMeasurement):
        return (f"measurement={type(m).__name__}",)
    found: list[str] = missing_readings(m, required)
    state = vehicle_state_problem(m)
    if state:
        found.append(state)
    found += phase_problems("voltage_v", m.voltage_v, 0.0, MAX_PHASE_VOLTAGE_V)
    found += phase_problems("current_a", m.current_a, -NOISE_A, MAX_PHASE_CURRENT_A)
    found += phase_problems("power_w", m.power_w, -NOISE_W, MAX_PHASE_POWER_W)
    checks = (
        ("total_power_w", m.total_power_w, -3 * NOISE_W, 3 * MAX_PHASE_POWER_W),
        ("applied_current_a", m.applied_current_a, 0.0, MAX_PHASE_CURRENT_A),
        ("station_max_current_a", m.station_max_current_a, 0.0, MAX_PHASE_CURRENT_A),
        ("lifetime_energy_kwh", m.lifetime_energy_kwh, 0.0, MAX_LIFETIME_KWH),
        ("session_energy_kwh", m.session_energy_kwh, 0.0, MAX_LIFETIME_KWH),
        ("vehicle_soc_pct", m.vehicle_soc_pct, 0.0, 100.0),
    )
    for name, value, low, high in checks:
        problem = number_problem(name, value, low, high)
        if problem:
            found.append(problem)
    if m.phases is not None and (isinstance(m.phases, bool) or m.phases not in (1, 2, 3)):
        found.append(f"phases={show_value(m.phases)}")
    if m.error_reason is not None and not isinstance(m.error_reason, str):
        found.append(f"error_reason={show_value(m.error_reason)}")
    if not isinstance(m.extra, dict):
        found.append(f"extra={show_value(m.extra)}")
    return tuple(found)


# ---- the lifetime counter --------------------------------------------------------------------

def charger_max_power_w(wired_phases: int, max_current_a: float, nominal_voltage_v: float) -> float:
    """The most a charger can deliver, with a margin: what bounds its counter's steps."""
    return wired_phases * max_current_a * nominal_voltage_v * POWER_MARGIN


def max_counter_step_kwh(max_power_w: float, elapsed_s: float) -> float:
    """The largest counter increase `max_power_w` can explain after `elapsed_s`."""
    return max_power_w * (max(0.0, elapsed_s) + COUNTER_SLACK_S) / 3.6e6


@dataclass(frozen=True)
class CounterState:
    """The last good lifetime value (and when it was first seen), and a candidate new level."""

    last_kwh: float | None = None
    last_s: float | None = None
    candidate_kwh: float | None = None     # a level that disagrees with last_kwh ...
    candidate_s: float | None = None       # ... first seen (or last risen) then
    candidate_since_s: float | None = None  # ... and self-consistent since then


@dataclass(frozen=True)
class CounterVerdict:
    value_kwh: float | None        # the counter to use now (None: missing or rejected)
    problem: str | None            # why the reading was rejected
    state: CounterState
    rebased: bool = False          # a new level was adopted: do not count the step


def _step_problem(from_kwh: float, from_s: float, reading_kwh: float, now_s: float,
                  max_power_w: float) -> str | None:
    """Why `reading_kwh` cannot follow `from_kwh` (seen at `from_s`), or None."""
    step_kwh = reading_kwh - from_kwh
    if step_kwh < -COUNTER_TOLERANCE_KWH:
        return f"lower than the last good {from_kwh:.3f}"
    elapsed_s = now_s - from_s
    if step_kwh > max_counter_step_kwh(max_power_w, elapsed_s):
        return (f"{step_kwh:.4g} kWh more in {max(0.0, elapsed_s):.0f} s than "
                f"{max_power_w / 1000:.1f} kW can deliver")
    return None


def _follow_candidate(state: CounterState, reading_kwh: float, now_s: float,
                      max_power_w: float) -> CounterState:
    """The candidate level after this reading: kept (and raised) when the reading follows it,
    else this reading is the new candidate."""
    if state.candidate_kwh is not None and state.candidate_s is not None \
            and _step_problem(state.candidate_kwh, state.candidate_s, reading_kwh, now_s,
                              max_power_w) is None:
        if reading_kwh > state.candidate_kwh:
            return dataclasses.replace(state, candidate_kwh=reading_kwh, candidate_s=now_s)
        return state
    return dataclasses.replace(state, candidate_kwh=reading_kwh, candidate_s=now_s,
                               candidate_since_s=now_s)


def _accepted(state: CounterState, reading_kwh: float, now_s: float) -> CounterVerdict:
    clear = dict(candidate_kwh=None, candidate_s=None, candidate_since_s=None)
    if state.last_kwh is not None and reading_kwh <= state.last_kwh:
        # unchanged (or rounding just below): the last good value and its time stand
        return CounterVerdict(state.last_kwh, None, dataclasses.replace(state, **clear))
    return CounterVerdict(reading_kwh, None, CounterState(last_kwh=reading_kwh, last_s=now_s))


def judge_counter(state: CounterState, reading_kwh: Any, now_s: float,
                  max_power_w: float) -> CounterVerdict:
    """One lifetime-counter reading (kWh) at `now_s` (monotonic seconds) against the history."""
    if reading_kwh is None:
        return CounterVerdict(None, None, state)
    absolute = number_problem("lifetime_energy_kwh", reading_kwh, 0.0, MAX_LIFETIME_KWH)
    if absolute:
        return CounterVerdict(None, absolute, state)
    reading_kwh = float(reading_kwh)
    if state.last_kwh is None or state.last_s is None:
        return CounterVerdict(reading_kwh, None, CounterState(last_kwh=reading_kwh, last_s=now_s))
    why = _step_problem(state.last_kwh, state.last_s, reading_kwh, now_s, max_power_w)
    if why is None:
        return _accepted(state, reading_kwh, now_s)
    followed = _follow_candidate(state, reading_kwh, now_s, max_power_w)
    assert followed.candidate_since_s is not None
    if now_s - followed.candidate_since_s >= REBASE_CONFIRM_S:
        return CounterVerdict(reading_kwh, None,
                              CounterState(last_kwh=reading_kwh, last_s=now_s), rebased=True)
    return CounterVerdict(None, f"lifetime_energy_kwh={reading_kwh:.4g} ({why})", followed)


# ---- the whole measurement -------------------------------------------------------------------

@dataclass(frozen=True)
class ChargerBounds:
    """What the configuration says the charger can do."""

    wired_phases: int
    max_current_a: float           # charger.max_current_a
    nominal_voltage_v: float
    required_readings: frozenset[str] = frozenset()   # Charger.required_readings

    def max_power_w(self, station_max_current_a: float | None) -> float:
        """The bound for counter steps: the larger of the configured and the station's
        maximum current (the station may run on its own settings while phaeton is away)."""
        amps = self.max_current_a
        if plausible_station_max_current(station_max_current_a):
            amps = max(amps, float(station_max_current_a))   # type: ignore[arg-type]
        return charger_max_power_w(self.wired_phases, amps, self.nominal_voltage_v)


@dataclass(frozen=True)
class Judgement:
    measurement: ChargerMeasurement | None   # trusted: with the judged lifetime counter
    problems: tuple[str, ...]
    counter: CounterState                    # the counter state to keep
    counter_rebased: bool = False

    @property
    def trusted(self) -> bool:
        return not self.problems

    @property
    def reason(self) -> str | None:
        return untrusted_reason(self.problems) if self.problems else None


def untrusted_reason(problems: tuple[str, ...] | list[str]) -> str:
    """'charger answers implausible values: a=1, b=2, c=3 (+2 more)'."""
    shown = ", ".join(problems[:MAX_PROBLEMS_SHOWN])
    more = len(problems) - MAX_PROBLEMS_SHOWN
    return f"{UNTRUSTED_PREFIX}: {shown}" + (f" (+{more} more)" if more > 0 else "")


def judge_measurement(m: Any, counter: CounterState, now_s: float,
                      bounds: ChargerBounds) -> Judgement:
    """Believe `m` or say why not. The counter state moves on only when every other field is
    plausible (a rejected counter still advances its candidate level)."""
    problems = measurement_problems(m, bounds.required_readings)
    if problems:
        return Judgement(None, problems, counter)
    verdict = judge_counter(counter, m.lifetime_energy_kwh, now_s,
                            bounds.max_power_w(m.station_max_current_a))
    if verdict.problem:
        return Judgement(None, (verdict.problem,), verdict.state)
    trusted = dataclasses.replace(m, lifetime_energy_kwh=verdict.value_kwh)
    return Judgement(trusted, (), verdict.state, verdict.rebased)
