"""How a site runs a fleet schedule, as pure rules (docs/fleet.md, "Execution on the site").

- `active_slot`: which schedule's slot holds now (the most recently accepted one that covers it;
  its `local` slot hands the time back to the local plan).
- `battery_plan`: the schedule's run from now as a `Plan` the planner's `EssWriter` executes, so
  a fleet slot goes through the very same battery path as the local plan (Dynamic ESS mode-4
  windows, every one a target-SoC window, or the ESS grid setpoint). Targets are chained from
  the SoC measured when the slot began, so they hold still within a slot (no flash write per
  tick) and re-anchor on the measured SoC at each slot. The SoC limits clip every target; DESS
  and hub4 hold the fuse and the battery's own limits.
- `SlotMeter`: the measured energy of the running slot and what held it back, for the
  `executed` ack.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from phaeton.fleet.contract import SLOT_S, Schedule, SlotCommand
from phaeton.planning.model import Plan

SLOT_H = SLOT_S / 3600.0
SHORT_SHARE = 0.8          # measured below this share of what was asked: something held it back
LIMIT_MARGIN_PCT = 1.0     # SoC within this of a limit counts as at the limit
FUSE_SHARE = 0.97          # grid import at this share of the fuse's power counts as fuse-bound


@dataclass(frozen=True)
class FleetReadings:
    """The GX's values the fleet needs (None where unknown): SoC %, battery W (+ charging, DC),
    grid W (+ import), PV W, house consumption W."""

    soc_pct: float | None = None
    battery_w: float | None = None
    grid_w: float | None = None
    pv_w: float | None = None
    consumption_w: float | None = None


@dataclass(frozen=True)
class BatteryFacts:
    """The home battery as the site's config gives it (fractions 0..1 for SoC)."""

    capacity_kwh: float
    soc_min: float
    soc_max: float
    charge_efficiency: float
    discharge_efficiency: float


@dataclass(frozen=True)
class ActiveSlot:
    schedule: Schedule
    index: int

    @property
    def command(self) -> SlotCommand:
        return self.schedule.slots[self.index]

    @property
    def start_s(self) -> int:
        return self.schedule.slot_start_s(self.index)

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.schedule.id, self.schedule.version, self.index)


def owner_at(schedules: list[Schedule], now_s: float) -> ActiveSlot | None:
    """The most recently accepted schedule (last in the list) that covers `now_s`, and its slot,
    whatever the slot asks (also `local`)."""
    for schedule in reversed(schedules):
        index = schedule.slot_index(now_s)
        if index is not None:
            return ActiveSlot(schedule, index)
    return None


def active_slot(schedules: list[Schedule], now_s: float, *, local_steers: bool) -> \
        ActiveSlot | None:
    """The fleet slot that steers the battery now, or None (the local plan runs): no schedule
    covers now, its slot is `local`, or it has priority `local` while the local plan steers."""
    owner = owner_at(schedules, now_s)
    if owner is None or owner.command.kind == "local":
        return None
    if owner.schedule.priority == "local" and local_steers:
        return None
    return owner


def _next_soc(soc: float, command: SlotCommand, facts: BatteryFacts) -> tuple[float, float, float]:
    """(SoC at the slot's end, AC kWh charged, AC kWh discharged) for one slot from `soc`."""
    cap = facts.capacity_kwh
    if command.kind == "charge":
        end = min(facts.soc_max, soc + command.kw * SLOT_H * facts.charge_efficiency / cap)
    elif command.kind == "discharge":
        end = max(facts.soc_min, soc - command.kw * SLOT_H / facts.discharge_efficiency / cap)
    elif command.kind == "soc":
        end = min(facts.soc_max, max(facts.soc_min, command.target_pct / 100.0))
    else:                                   # idle: hold the SoC
        end = soc
    end = max(end, soc) if command.kind == "charge" else end
    end = min(end, soc) if command.kind == "discharge" else end
    charged = max(0.0, end - soc) * cap / facts.charge_efficiency
    discharged = max(0.0, soc - end) * cap * facts.discharge_efficiency
    return end, charged, discharged


def battery_plan(slot: ActiveSlot, anchor_soc_pct: float, facts: BatteryFacts,
                 readings: FleetReadings) -> Plan:
    """The schedule from `slot` to its next `local` slot (or its end) as a Plan: SoC per slot
    chained from `anchor_soc_pct` (the SoC when the slot began), the battery's AC energies, and
    the grid exchange the house makes with it at today's live load and PV (the setpoint)."""
    schedule = slot.schedule
    indices = []
    for index in range(slot.index, len(schedule.slots)):
        if schedule.slots[index].kind == "local":
            break
        indices.append(index)
    count = len(indices)
    soc = np.empty(count + 1)
    soc[0] = min(1.0, max(0.0, anchor_soc_pct / 100.0))
    charge, discharge = np.zeros(count), np.zeros(count)
    for row, index in enumerate(indices):
        soc[row + 1], charge[row], discharge[row] = _next_soc(soc[row], schedule.slots[index],
                                                               facts)
    house_kw = (readings.consumption_w or 0.0) / 1000.0 - (readings.pv_w or 0.0) / 1000.0
    net = house_kw * SLOT_H + charge - discharge
    zeros = np.zeros(count)
    return Plan(slot_start_s=np.array([schedule.slot_start_s(i) for i in indices], dtype=float),
                slot_duration_h=np.full(count, SLOT_H), battery_charge_kwh=charge,
                battery_discharge_kwh=discharge, ev_kwh=zeros, grid_import_kwh=np.maximum(net, 0),
                grid_export_kwh=np.maximum(-net, 0), pv_curtailed_kwh=zeros,
                fuse_overload_kwh=zeros, soc=soc, soc_kwh=soc * facts.capacity_kwh,
                energy_cost_eur=0.0, degradation_cost_eur=0.0, terminal_value_eur=0.0,
                ev_delivered_kwh=0.0, shortfall=None,
                reasons=[f"fleet schedule {schedule.id} v{schedule.version}"], warnings=[])


@dataclass
class SlotMeter:
    """Measures one running fleet slot: battery energy (DC, integrated from the battery
    power), the SoC at its start and end, the highest grid import, and limits seen."""

    slot: ActiveSlot
    soc_start_pct: float | None = None
    soc_end_pct: float | None = None
    battery_kwh: float = 0.0
    samples: int = 0
    grid_peak_w: float = 0.0
    blocked: str | None = None       # dess_conflict / owner_off seen during the slot
    _last_s: float | None = field(default=None, repr=False)
    _last_w: float = field(default=0.0, repr=False)

    def sample(self, now_s: float, readings: FleetReadings, blocked: str | None = None) -> None:
        if self.soc_start_pct is None and readings.soc_pct is not None:
            self.soc_start_pct = readings.soc_pct
        if readings.soc_pct is not None:
            self.soc_end_pct = readings.soc_pct
        if blocked and self.blocked is None:
            self.blocked = blocked
        if readings.grid_w is not None and math.isfinite(readings.grid_w):
            self.grid_peak_w = max(self.grid_peak_w, readings.grid_w)
        if self._last_s is not None:     # the power last read holds until this reading
            low = max(self._last_s, self.slot.start_s)
            high = min(now_s, self.slot.start_s + SLOT_S)
            if high > low:
                self.battery_kwh += self._last_w * (high - low) / 3.6e6
        power = readings.battery_w
        if power is None or not math.isfinite(power):
            self._last_s = None
            return
        self._last_s, self._last_w = now_s, power
        self.samples += 1

    def limited_by(self, facts: BatteryFacts | None, import_limit_kw: float) -> str | None:
        """What held the slot back (contract.LIMITED_BY), or None when it did what it asked."""
        if self.samples == 0 or self.soc_end_pct is None:
            return "no_readings"
        if self.blocked:
            return self.blocked
        command = self.slot.command
        asked_kwh = asked_dc_kwh(command, self.soc_start_pct, facts)
        if asked_kwh is None or abs(self.battery_kwh) >= SHORT_SHARE * abs(asked_kwh) \
                or abs(asked_kwh) < 0.01:
            return None
        if facts is not None and asked_kwh > 0 \
                and self.soc_end_pct >= facts.soc_max * 100 - LIMIT_MARGIN_PCT:
            return "soc_max"
        if facts is not None and asked_kwh < 0 \
                and self.soc_end_pct <= facts.soc_min * 100 + LIMIT_MARGIN_PCT:
            return "soc_min"
        if asked_kwh > 0 and self.grid_peak_w >= FUSE_SHARE * import_limit_kw * 1000:
            return "fuse"
        return "battery_power"


def asked_dc_kwh(command: SlotCommand, soc_start_pct: float | None,
                 facts: BatteryFacts | None) -> float | None:
    """What the slot asks the battery to store (+) or give (-), DC side; None: not known."""
    if command.kind == "charge":
        return command.kw * SLOT_H * (facts.charge_efficiency if facts else 1.0)
    if command.kind == "discharge":
        return -command.kw * SLOT_H / (facts.discharge_efficiency if facts else 1.0)
    if command.kind == "soc" and soc_start_pct is not None and facts is not None:
        return (command.target_pct - soc_start_pct) / 100.0 * facts.capacity_kwh
    if command.kind == "idle":
        return 0.0
    return None
