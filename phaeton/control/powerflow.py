"""The power-flow model: one consistent picture of the site per tick.

Power balance (totals over all phases, W, all terms as defined in `PowerFlowSnapshot`):

    grid_import + pv_ac + pv_dc = house + ev + battery_charging + losses

so `balance_error_w = grid + pv_ac + pv_dc - house - ev - battery`. It is the inverter/charger
losses plus any inconsistency between readings taken at slightly different moments. It is
flagged (`balance_ok` False) when it exceeds `BALANCE_TOLERANCE_W` plus
`BALANCE_TOLERANCE_FRACTION` of the gross flow (the sum of all sources). Per-phase balance
cannot be checked: the GX does not say how the inverter spreads battery and DC-PV power.

House load never counts the EV twice: when the GX's consumption already includes the EV
(`consumption_includes_ev`, the usual case wherever the charger is wired, /Position 0 or 1),
the EV's power is subtracted per phase; with several chargers (`build_site_snapshot`) every
EV's. The fuse and the other circuits' headroom are in `control/circuit.py`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from phaeton.control.readings import (
    EvReadings,
    PhaseW,
    SiteReadings,
    plausible_voltage,
    sum_phases,
)
from phaeton.control.settings import ControlSettings

BALANCE_TOLERANCE_W = 150.0
BALANCE_TOLERANCE_FRACTION = 0.05
PHASE_NAMES = ("L1", "L2", "L3")


@dataclass(frozen=True)
class PowerFlowSnapshot:
    """Where the power goes right now (W; None = not reported).

    pv_ac_w: AC-coupled PV per phase. pv_dc_w: MPPT PV. house_w: AC loads without the EV, per
    phase. ev_w: the EV per phase (0 where it draws nothing). battery_w: + charging. grid_w:
    + import per phase. voltage_v: the voltage used per phase (measured by the charger or nominal).
    """

    pv_ac_w: PhaseW
    pv_dc_w: float | None
    house_w: PhaseW
    ev_w: tuple[float, float, float]
    battery_w: float | None
    grid_w: PhaseW
    voltage_v: tuple[float, float, float]
    balance_error_w: float | None
    balance_tolerance_w: float

    @property
    def pv_total_w(self) -> float:
        return (sum_phases(self.pv_ac_w) or 0.0) + (self.pv_dc_w or 0.0)

    @property
    def house_total_w(self) -> float | None:
        return sum_phases(self.house_w)

    @property
    def ev_total_w(self) -> float:
        return sum(self.ev_w)

    @property
    def grid_total_w(self) -> float | None:
        return sum_phases(self.grid_w)

    @property
    def balance_ok(self) -> bool:
        """The readings add up (None: could not be checked, counted as not ok)."""
        return self.balance_error_w is not None and abs(self.balance_error_w) <= self.balance_tolerance_w

    def import_without_ev_w(self, phase: int) -> float | None:
        """Grid import on a phase if the EVs drew nothing (everything else unchanged)."""
        grid = self.grid_w[phase]
        return None if grid is None else grid - self.ev_w[phase]


def build_snapshot(site: SiteReadings, ev: EvReadings, settings: ControlSettings, *,
                   ev_known: bool = True) -> PowerFlowSnapshot:
    """One snapshot from the GX readings and the one charger's measurement.

    `ev_known` False: the charger does not answer, so what it draws is unknown (it may well
    be charging at its own safe current). The GX's consumption then cannot be split into
    house and EV, so the house load is unknown rather than counting the car as house."""
    return build_site_snapshot(site, (ev,), settings, evs_known=ev_known)


def build_site_snapshot(site: SiteReadings, evs: Sequence[EvReadings], settings: ControlSettings, *,
                        evs_known: bool = True) -> PowerFlowSnapshot:
    """One snapshot from the GX readings and every charger's measurement: `ev_w` is all EVs
    together, so the house load and `import_without_ev_w` leave every EV out. The voltage per
    phase is the first charger's plausible measurement, else nominal. `evs_known` False: a
    charger does not answer, so the house load is unknown (see `build_snapshot`)."""
    nominal = settings.nominal_voltage_v
    if len(evs) == 1:                       # the common case, kept fast
        voltage = tuple(v if plausible_voltage(v) else nominal for v in evs[0].voltage_v)
        ev_w = evs[0].phase_power_w(nominal)
    else:
        voltage = tuple(next((ev.voltage_v[i] for ev in evs if plausible_voltage(ev.voltage_v[i])), nominal)
                        for i in range(3))
        per_ev = [ev.phase_power_w(nominal) for ev in evs]
        ev_w = (sum((w[0] for w in per_ev), 0.0), sum((w[1] for w in per_ev), 0.0),
                sum((w[2] for w in per_ev), 0.0))
    if not evs_known and settings.consumption_includes_ev:
        house: PhaseW = (None, None, None)
    elif settings.consumption_includes_ev:
        house = tuple(None if c is None else max(0.0, c - e) for c, e in zip(site.consumption_w, ev_w))
    else:
        house = site.consumption_w
    pv_ac = site.pv_ac_w
    grid_total = sum_phases(site.grid_w)
    house_total = sum_phases(house)
    pv_ac_total = sum_phases(pv_ac) or 0.0
    pv_dc = site.pv_dc_w or 0.0
    battery = site.battery_power_w or 0.0
    ev_total = sum(ev_w)
    if grid_total is None or house_total is None:
        balance = None
    else:
        balance = grid_total + pv_ac_total + pv_dc - house_total - ev_total - battery
    gross = max(grid_total or 0.0, 0.0) + pv_ac_total + max(pv_dc, 0.0) + max(-battery, 0.0)
    tolerance = BALANCE_TOLERANCE_W + BALANCE_TOLERANCE_FRACTION * gross
    return PowerFlowSnapshot(pv_ac_w=pv_ac, pv_dc_w=site.pv_dc_w, house_w=house,  # type: ignore[arg-type]
                             ev_w=ev_w, battery_w=site.battery_power_w, grid_w=site.grid_w,
                             voltage_v=voltage, balance_error_w=balance,  # type: ignore[arg-type]
                             balance_tolerance_w=tolerance)


def ev_phase_indices(phases: int) -> tuple[int, ...]:
    """Which phases the EV draws on: L1 for single-phase charging, else L1..L3."""
    return (0,) if phases == 1 else (0, 1, 2)
