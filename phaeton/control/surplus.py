"""Solar surplus available to the EV, and its smoothing.

Raw surplus (W) = export at the grid meter (-grid) + what the EV already draws
                + the home battery's power when the battery may give way to the EV.

The battery term: at/above `battery_priority_soc_pct` the battery's charging power counts as
available to the EV (the ESS charges with whatever the EV leaves). Below it the battery gets the
surplus first, so only a *discharging* battery counts (negatively: power the ESS pulls out of
the battery to feed the EV is not surplus). A battery below its ESS active SoC limit is always
treated as below priority.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from phaeton.control.powerflow import PowerFlowSnapshot
from phaeton.control.readings import SiteReadings


@dataclass(frozen=True)
class Surplus:
    raw_w: float
    battery_has_priority: bool     # the battery's charging power was left to the battery


def battery_has_priority(site: SiteReadings, priority_soc_pct: float) -> bool:
    """True when the home battery should take the surplus before the EV."""
    soc = site.battery_soc_pct
    if soc is None:
        return priority_soc_pct > 0   # unknown SoC: keep the priority when one is configured
    if site.active_soc_limit_pct is not None and soc < site.active_soc_limit_pct:
        return True
    return soc < priority_soc_pct


def raw_surplus(snapshot: PowerFlowSnapshot, site: SiteReadings, priority_soc_pct: float) -> Surplus | None:
    """The unsmoothed surplus; None when the grid meter is not reported."""
    grid = snapshot.grid_total_w
    if grid is None:
        return None
    battery = snapshot.battery_w or 0.0
    priority = battery_has_priority(site, priority_soc_pct)
    battery_term = min(battery, 0.0) if priority else battery
    return Surplus(raw_w=-grid + snapshot.ev_total_w + battery_term, battery_has_priority=priority)


class SurplusSmoother:
    """Exponential smoothing with time constant `time_constant_s`, driven by the time between calls.

    new = old + (raw - old) * (1 - exp(-dt / tau)); the first value is taken as is; tau 0 means
    no smoothing. A step with dt <= 0 (same instant, clock jumped back) does not move the value.
    """

    def __init__(self, time_constant_s: float):
        if not time_constant_s >= 0:
            raise ValueError(f"smoothing time constant must be >= 0 s, got {time_constant_s!r}")
        self.time_constant_s = float(time_constant_s)
        self.value_w: float | None = None
        self._last_s: float | None = None

    def reset(self) -> None:
        self.value_w = None
        self._last_s = None

    def update(self, raw_w: float, now_s: float) -> float:
        if not math.isfinite(raw_w):
            raise ValueError(f"surplus must be a finite number of W, got {raw_w!r}")
        if self.value_w is None or self._last_s is None:
            self.value_w, self._last_s = float(raw_w), now_s
            return self.value_w
        dt_s = now_s - self._last_s
        self._last_s = max(self._last_s, now_s)
        if dt_s <= 0:
            return self.value_w
        if self.time_constant_s == 0:
            self.value_w = float(raw_w)
        else:
            alpha = 1.0 - math.exp(-dt_s / self.time_constant_s)
            self.value_w += (raw_w - self.value_w) * alpha
        return self.value_w
