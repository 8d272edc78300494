"""Automatic 1-phase / 3-phase switching: a small state machine.

Switching needs the charger's PHASE_SWITCHING capability, a 3-phase charger connection and
`phase_switching_enabled`. With the smoothed surplus S and the 3-phase minimum charging power
P3 = min_current_a x V x 3:

- on 1 phase, switch up when S >= P3 + hysteresis for `phase_switch_delay_s` without a break;
- on 3 phases, switch down when S < P3 - hysteresis for `phase_switch_delay_s`;
- at most one switch per `phase_switch_grace_s` (counted from the start of the last switch);
- a switch: pause (0 A) and report /Status 22 (to 3 phases) or 23 (to 1 phase); after
  `phase_switch_settle_s` the new phase count applies and charging resumes.

Outside Auto the caller can ask for a phase count (`wanted_phases`, e.g. 3 for Manual): that
switch starts at once (no delay, no grace: the user asked) but still pauses and settles.
"""
from __future__ import annotations

from dataclasses import dataclass

from phaeton.control.settings import ControlSettings
from phaeton.control.status import ChargerStatus


@dataclass(frozen=True)
class PhaseDecision:
    phases: int                          # phase count to apply now
    switching: bool                      # a switch is running: the EV must get 0 A
    status: ChargerStatus | None         # 22/23 while switching
    reason: str


class PhaseSwitcher:
    def __init__(self, settings: ControlSettings, voltage_v: float | None = None):
        self.settings = settings
        self.voltage_v = voltage_v or settings.nominal_voltage_v
        self.phases = settings.charger_phases
        self._target: int | None = None
        self._switch_started_s: float | None = None
        self._last_switch_s: float | None = None
        self._condition_since_s: float | None = None

    @property
    def three_phase_min_w(self) -> float:
        return self.settings.min_current_a * self.voltage_v * 3

    @property
    def switching(self) -> bool:
        return self._target is not None

    def _start(self, target: int, now_s: float, why: str) -> PhaseDecision:
        self._target = target
        self._switch_started_s = now_s
        self._condition_since_s = None
        return self._progress(now_s, why)

    def _progress(self, now_s: float, why: str = "") -> PhaseDecision:
        assert self._target is not None and self._switch_started_s is not None
        elapsed_s = now_s - self._switch_started_s
        status = (ChargerStatus.SWITCHING_TO_3_PHASE if self._target == 3
                  else ChargerStatus.SWITCHING_TO_1_PHASE)
        if elapsed_s >= self.settings.phase_switch_settle_s and elapsed_s > 0:
            self.phases = self._target
            self._last_switch_s = self._switch_started_s
            self._target = None
            self._switch_started_s = None
            return PhaseDecision(self.phases, False, None, f"switched to {self.phases} phase(s)")
        left_s = max(0.0, self.settings.phase_switch_settle_s - elapsed_s)
        text = f"switching to {self._target} phase(s): paused, {left_s:.0f} s to settle"
        return PhaseDecision(self.phases, True, status, f"{why}; {text}" if why else text)

    def cancel(self) -> None:
        """Forget timers (e.g. vehicle unplugged). A running switch completes on the next step."""
        self._condition_since_s = None

    def step(self, now_s: float, surplus_w: float | None, allowed: bool,
             wanted_phases: int | None = None) -> PhaseDecision:
        """Advance the machine. `surplus_w` None = unknown (timers reset, no automatic switch)."""
        if not allowed:
            self._target = None
            self._switch_started_s = None
            self._condition_since_s = None
            self.phases = self.settings.charger_phases
            return PhaseDecision(self.phases, False, None, "")
        if self._target is not None:
            return self._progress(now_s)
        if wanted_phases is not None:
            self._condition_since_s = None
            if wanted_phases != self.phases:
                return self._start(wanted_phases, now_s, f"{wanted_phases} phase(s) requested")
            return PhaseDecision(self.phases, False, None, "")
        if surplus_w is None:
            self._condition_since_s = None
            return PhaseDecision(self.phases, False, None, "")
        hysteresis = self.settings.phase_switch_hysteresis_w
        if self.phases == 1:
            condition = surplus_w >= self.three_phase_min_w + hysteresis
            target, words = 3, f"surplus {surplus_w:.0f} W above {self.three_phase_min_w + hysteresis:.0f} W"
        else:
            condition = surplus_w < self.three_phase_min_w - hysteresis
            target, words = 1, f"surplus {surplus_w:.0f} W below {self.three_phase_min_w - hysteresis:.0f} W"
        if not condition:
            self._condition_since_s = None
            return PhaseDecision(self.phases, False, None, "")
        if self._condition_since_s is None:
            self._condition_since_s = now_s
        held_s = now_s - self._condition_since_s
        if held_s < self.settings.phase_switch_delay_s:
            return PhaseDecision(self.phases, False, None,
                                 f"{words} for {held_s:.0f} s of {self.settings.phase_switch_delay_s:.0f} s")
        if self._last_switch_s is not None and now_s - self._last_switch_s < self.settings.phase_switch_grace_s:
            wait_s = self.settings.phase_switch_grace_s - (now_s - self._last_switch_s)
            return PhaseDecision(self.phases, False, None, f"{words}; next phase switch allowed in {wait_s:.0f} s")
        return self._start(target, now_s, words)
