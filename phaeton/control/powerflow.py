"""The power-flow model: one consistent picture of the site per tick, and the fuse headroom.

Power balance (totals over all phases, W, all terms as defined in `PowerFlowSnapshot`):

    grid_import + pv_ac + pv_dc = house + ev + battery_charging + losses

so `balance_error_w = grid + pv_ac + pv_dc - house - ev - battery`. It is the inverter/charger
losses plus any inconsistency between readings taken at slightly different moments. It is
flagged (`balance_ok` False) when it exceeds `BALANCE_TOLERANCE_W` plus
`BALANCE_TOLERANCE_FRACTION` of the gross flow (the sum of all sources). Per-phase balance
cannot be checked: the GX does not say how the inverter spreads battery and DC-PV power.

House load never counts the EV twice: when the GX's consumption already includes the EV
(`consumption_includes_ev`, the usual case wherever the charger is wired, /Position 0 or 1),
the EV's power is subtracted per phase.
"""
from __future__ import annotations

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
        """Grid import on a phase if the EV drew nothing (everything else unchanged)."""
        grid = self.grid_w[phase]
        return None if grid is None else grid - self.ev_w[phase]


def build_snapshot(site: SiteReadings, ev: EvReadings, settings: ControlSettings, *,
                   ev_known: bool = True) -> PowerFlowSnapshot:
    """One snapshot from the GX readings and the charger's measurement.

    `ev_known` False: the charger does not answer, so what it draws is unknown (it may well
    be charging at its own safe current). The GX's consumption then cannot be split into
    house and EV, so the house load is unknown rather than counting the car as house."""
    nominal = settings.nominal_voltage_v
    voltage = tuple(v if plausible_voltage(v) else nominal for v in ev.voltage_v)
    ev_w = ev.phase_power_w(nominal)
    if not ev_known and settings.consumption_includes_ev:
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


@dataclass(frozen=True)
class FuseHeadroom:
    """The highest EV current per phase the main fuse allows.

    current_a None: could not be computed (grid per phase not reported on a phase the EV uses).
    house_over_fuse: the house alone (without the EV) already exceeds the fuse; the EV gets 0.
    """

    current_a: float | None
    binding_phase: int | None
    house_over_fuse: bool
    reason: str


def fuse_headroom(snapshot: PowerFlowSnapshot, fuse_a: float, phases: int) -> FuseHeadroom:
    """Highest EV current per phase so no phase's grid import exceeds `fuse_a`.

    For each phase p the EV would draw on: import_after = import_now - ev_now + ev_new, and
    import_after <= fuse_a * V_p gives ev_new_a <= fuse_a - (import_now - ev_now) / V_p.
    The house is never curtailed: when import without the EV is already above the fuse on a
    phase the EV uses, the headroom is 0 and the reason names the phase.
    """
    best: float | None = None
    binding: int | None = None
    for phase in ev_phase_indices(phases):
        without_ev_w = snapshot.import_without_ev_w(phase)
        if without_ev_w is None:
            return FuseHeadroom(None, phase, False,
                                f"grid power on {PHASE_NAMES[phase]} not reported: fuse cannot be checked")
        voltage = snapshot.voltage_v[phase]
        house_a = without_ev_w / voltage
        if house_a > fuse_a:
            return FuseHeadroom(0.0, phase, True,
                                f"house load alone on {PHASE_NAMES[phase]} ({house_a:.1f} A) exceeds the "
                                f"{fuse_a:g} A fuse: EV paused")
        limit = fuse_a - house_a
        if best is None or limit < best:
            best, binding = limit, phase
    assert best is not None and binding is not None
    return FuseHeadroom(best, binding, False,
                        f"{PHASE_NAMES[binding]} allows {best:.1f} A for the EV under the {fuse_a:g} A fuse")
