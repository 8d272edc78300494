"""Auto mode: start and stop surplus charging without flapping.

- Not charging: start once the smoothed surplus has stayed >= the minimum charging power
  (min_current_a x V x phases) + `auto_start_margin_w` for `auto_enable_delay_s`.
- Charging: the current follows the smoothed surplus (rounded down to 0.1 A, never below the
  minimum). When the surplus stays below the minimum charging power for `auto_disable_delay_s`,
  charging stops, but not before it has run `auto_min_charge_duration_s`; until then it keeps the
  minimum current. (The fuse and the user's stop act elsewhere and override this.)
- Home battery below its ESS minimum (the GX's active SoC limit): the battery is in its reserve,
  so Auto does not charge the EV at all, even from exported surplus; a running charge stops at
  once and the status is 7 "Low SOC". Charging starts again through the normal enable delay
  once the SoC is back at the limit.
- Home battery below `battery_priority_soc_pct` (optional): the battery's charging power is left
  to it and the EV takes only what is left.
- While waiting, the status is 4 "Waiting for sun", or 7 "Low SOC" when the home battery takes
  the surplus first.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from phaeton.control.settings import ControlSettings
from phaeton.control.status import ChargerStatus


class Bound:
    """Names of the limit that bound a decision's current (ChargeDecision.bound_by)."""

    USER = "user"
    MAX_CURRENT = "max_current"
    CHARGER = "charger"
    FUSE = "fuse"
    SURPLUS = "surplus"
    SCHEDULE = "schedule"
    TARGET_SOC = "target_soc"     # Scheduled: the car's own SoC reached its target
    STALE_READINGS = "stale_readings"
    LOW_SOC = "low_soc"
    BATTERY_PRIORITY = "battery_priority"
    PHASE_SWITCH = "phase_switch"
    MIN_CHARGE_TIME = "min_charge_time"
    NOT_PLUGGED = "not_plugged"
    STOPPED = "stopped"
    CHARGER_OFFLINE = "charger_offline"
    CHARGER_IMPLAUSIBLE = "charger_implausible"   # it answers, but values that cannot be true
    CHARGER_ERROR = "charger_error"


@dataclass(frozen=True)
class AutoDecision:
    current_a: float
    bound_by: str
    status: ChargerStatus | None      # None: let the vehicle state decide
    reason: str


def floor_tenth(amps: float) -> float:
    """Round a current down to 0.1 A (never up by more than float noise: limits stay limits;
    13.0999996 A, a float32 reading of 13.1 A, is 13.1 A, not 13.0 A)."""
    return math.floor(amps * 10 + 1e-5) / 10


class AutoCharging:
    def __init__(self, settings: ControlSettings):
        self.settings = settings
        self.charging = False
        self.started_s: float | None = None
        self._enough_since_s: float | None = None
        self._short_since_s: float | None = None

    def reset(self) -> None:
        self.charging = False
        self.started_s = None
        self._enough_since_s = None
        self._short_since_s = None

    def _waiting(self, surplus_w: float, needed_w: float, battery_first: tuple[str, str] | None,
                 extra: str) -> AutoDecision:
        if battery_first is not None:
            bound, words = battery_first
            return AutoDecision(0.0, bound, ChargerStatus.LOW_SOC,
                                f"home battery {words}: it takes the surplus first "
                                f"({surplus_w:.0f} W left for the EV, {needed_w:.0f} W needed){extra}")
        return AutoDecision(0.0, Bound.SURPLUS, ChargerStatus.WAITING_FOR_SUN,
                            f"waiting for sun: surplus {surplus_w:.0f} W, {needed_w:.0f} W needed{extra}")

    def step(self, now_s: float, surplus_w: float, voltage_v: float, phases: int,
             battery_first: tuple[str, str] | None = None) -> AutoDecision:
        """One Auto decision from the smoothed surplus.

        `battery_first`: (Bound.LOW_SOC or Bound.BATTERY_PRIORITY, words saying why) when the home
        battery takes the surplus first, else None.
        """
        s = self.settings
        min_power_w = s.min_current_a * voltage_v * phases
        start_w = min_power_w + s.auto_start_margin_w
        if battery_first is not None and battery_first[0] == Bound.LOW_SOC:
            self.reset()
            return AutoDecision(0.0, Bound.LOW_SOC, ChargerStatus.LOW_SOC,
                                f"home battery {battery_first[1]}: Auto charges the EV again once "
                                f"it is back at that limit (surplus {surplus_w:.0f} W)")
        if not self.charging:
            self._short_since_s = None
            if surplus_w < start_w:
                self._enough_since_s = None
                return self._waiting(surplus_w, start_w, battery_first, "")
            if self._enough_since_s is None:
                self._enough_since_s = now_s
            held_s = now_s - self._enough_since_s
            if held_s < s.auto_enable_delay_s:
                return self._waiting(surplus_w, start_w, None,
                                     f"; enough for {held_s:.0f} s, starting after {s.auto_enable_delay_s:.0f} s")
            self.charging = True
            self.started_s = now_s
            self._enough_since_s = None
        ran_s = now_s - (self.started_s if self.started_s is not None else now_s)
        if surplus_w >= min_power_w:
            self._short_since_s = None
            amps = max(s.min_current_a, floor_tenth(surplus_w / (voltage_v * phases)))
            return AutoDecision(amps, Bound.SURPLUS, None,
                                f"solar surplus {surplus_w:.0f} W on {phases} phase(s)")
        if self._short_since_s is None:
            self._short_since_s = now_s
        short_s = now_s - self._short_since_s
        if short_s < s.auto_disable_delay_s:
            return AutoDecision(s.min_current_a, Bound.SURPLUS, None,
                                f"surplus {surplus_w:.0f} W below the {min_power_w:.0f} W minimum for "
                                f"{short_s:.0f} s: keeping {s.min_current_a:g} A, stopping after "
                                f"{s.auto_disable_delay_s:.0f} s")
        if ran_s < s.auto_min_charge_duration_s:
            return AutoDecision(s.min_current_a, Bound.MIN_CHARGE_TIME, None,
                                f"surplus short but charging has run only {ran_s:.0f} s of the minimum "
                                f"{s.auto_min_charge_duration_s:.0f} s: keeping {s.min_current_a:g} A")
        self.reset()
        return self._waiting(surplus_w, start_w, battery_first, "; stopped after the surplus stayed short")
