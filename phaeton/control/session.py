"""Charging sessions, from plug-in to unplug: energy, duration, peak power, cost, solar share.

Pure: `SessionTracker.update(ev, snapshot, now_s)` is called with the charger's readings, the
power-flow snapshot (or None) and the wall time in unix seconds (wall time, so a session
persisted before a restart continues with the right duration). It returns the records to store.

Energy comes from the charger's lifetime counter: each update adds the counter's increase since
the last valid value. While the counter is missing, energy is estimated from the EV power x the
time step; when the counter returns, its increase over the gap replaces that estimate. A counter
that goes down (charger replaced or reset) is re-based: the step adds nothing rather than a
negative or a huge jump (`forget_counter()` re-bases on purpose: the service's plausibility
check confirmed a new counter level). Steps are also capped at what `MAX_POWER_W` could deliver
in that time, so a corrupt counter cannot add absurd energy.

Solar share: for each step, the EV's solar power is min(EV power, max(0, PV - house load)) from
the snapshot: PV serves the house first, and the rest can cover the EV (solar power the home
battery charged earlier and gives back later is not counted). The step's energy is split by
solar power / EV power; solar_share = solar energy / energy (0 when no energy was charged).

Cost is accumulated, not computed at the end: each step's energy is valued at the price per
kWh in force while it arrived (`price_per_kwh`, which the owner of the tracker may change at
any time: today it is the config's flat `session.price_per_kwh`, later the tariff's price of
the current slot), so the cost is Σ price × kWh. Energy estimated while the counter is missing
keeps its value apart and, when the counter's increase replaces the estimate, the counter's
energy is valued at the gap's mean price (as the solar share keeps the gap's solar fraction).
The solar share is the same kind of sum (Σ solar fraction × kWh).

CO₂ is a third sum of the same kind (docs/carbon.md, "Accounting"): each step's energy carries
solar fraction × the PV lifecycle factor (`carbon_accounting.PV_G_PER_KWH`) + the rest × the
intensity of the site's other supply at that moment (`carbon_g_per_kwh`: grid import and home
battery discharge mixed, as the site works it out; None = no intensity known now). Energy that
arrives while no intensity is known is valued at the session's mean intensity of the energy
that had one; a session that never had one has `co2_kg` None (not 0): no carbon source.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from phaeton.chargers.base import VehicleState
from phaeton.control.carbon_accounting import PV_G_PER_KWH
from phaeton.control.powerflow import PowerFlowSnapshot
from phaeton.control.readings import EvReadings

MAX_POWER_W = 50_000.0    # no home charger delivers more; caps the energy one step can add
NOMINAL_VOLTAGE_V = 230.0


@dataclass(frozen=True)
class SessionStarted:
    session_id: str
    started_at_s: float
    start_counter_kwh: float | None


@dataclass(frozen=True)
class SessionEnded:
    session_id: str
    started_at_s: float
    ended_at_s: float
    duration_s: float
    energy_kwh: float
    solar_energy_kwh: float
    solar_share: float
    peak_power_w: float
    cost: float
    currency: str
    co2_kg: float | None = None       # None: no carbon intensity was known during the session


@dataclass
class _Running:
    session_id: str
    started_at_s: float
    last_update_s: float
    energy_kwh: float = 0.0
    solar_energy_kwh: float = 0.0
    peak_power_w: float = 0.0
    last_counter_kwh: float | None = None     # last valid lifetime counter
    gap_estimate_kwh: float = 0.0             # power-integrated energy while the counter is missing
    gap_solar_kwh: float = 0.0
    start_counter_kwh: float | None = None
    last_counter_s: float | None = None       # when last_counter_kwh was read
    cost: float = 0.0                         # Σ price × kWh of energy_kwh
    gap_cost: float = 0.0                     # Σ price × kWh of gap_estimate_kwh
    co2_g: float = 0.0                        # Σ g/kWh × kWh of the energy_kwh that had one
    co2_kwh: float = 0.0                      # the part of energy_kwh that had an intensity
    gap_co2_g: float = 0.0                    # the same two for gap_estimate_kwh
    gap_co2_kwh: float = 0.0
    carbon_known: bool = False                # an intensity was known at some update


RECORD_VERSION = 1


class SessionTracker:
    """One charger's sessions (see the module). `price_per_kwh` (in `currency`) values the
    energy that arrives from now on."""

    def __init__(self, price_per_kwh: float = 0.30, currency: str = "EUR"):
        self.price_per_kwh = price_per_kwh
        self.currency = str(currency)
        self._running: _Running | None = None

    @property
    def price_per_kwh(self) -> float:
        """The price of the energy the next updates add (the cost so far stays as it is)."""
        return self._price_per_kwh

    @price_per_kwh.setter
    def price_per_kwh(self, price_per_kwh: float) -> None:
        if isinstance(price_per_kwh, bool) or not isinstance(price_per_kwh, (int, float)) \
                or not math.isfinite(price_per_kwh) or price_per_kwh < 0:
            raise ValueError(f"price_per_kwh must be a number >= 0, got {price_per_kwh!r}")
        self._price_per_kwh = float(price_per_kwh)

    # -- live values ---------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self._running is not None

    @property
    def energy_kwh(self) -> float:
        r = self._running
        return 0.0 if r is None else r.energy_kwh + r.gap_estimate_kwh

    @property
    def solar_energy_kwh(self) -> float:
        r = self._running
        return 0.0 if r is None else r.solar_energy_kwh + r.gap_solar_kwh

    def duration_s(self, now_s: float) -> float:
        return 0.0 if self._running is None else max(0.0, now_s - self._running.started_at_s)

    @property
    def cost(self) -> float:
        """Σ price × kWh of the running session so far (0 when idle)."""
        r = self._running
        return 0.0 if r is None else round(r.cost + r.gap_cost, 4)

    @property
    def co2_kg(self) -> float | None:
        """kg CO2-eq of the running session so far; None when idle or when no carbon intensity
        has been known since it started (energy charged without one is valued at the
        session's mean intensity)."""
        r = self._running
        if r is None or not r.carbon_known:
            return None
        energy = r.energy_kwh + r.gap_estimate_kwh
        known_kwh = r.co2_kwh + r.gap_co2_kwh
        co2_g = r.co2_g + r.gap_co2_g
        if known_kwh <= 0:
            return 0.0 if energy <= 0 else None
        return co2_g / known_kwh * max(energy, known_kwh) / 1000.0

    @property
    def peak_power_w(self) -> float:
        return 0.0 if self._running is None else self._running.peak_power_w

    @property
    def solar_share(self) -> float:
        energy = self.energy_kwh
        return 0.0 if energy <= 0 else min(1.0, self.solar_energy_kwh / energy)

    # -- persistence ---------------------------------------------------------------------------
    def running_record(self) -> dict[str, Any] | None:
        """The running session as a JSON-friendly dict for the service to persist (None when idle)."""
        if self._running is None:
            return None
        record = asdict(self._running)
        record["version"] = RECORD_VERSION
        return record

    def restore(self, record: Mapping[str, Any]) -> None:
        """Continue a session saved with `running_record()` (after a restart). Raises ValueError when
        the record is malformed; the tracker is unchanged then. A record without the cost sums
        (saved before cost was accumulated) is valued at the current price, as it was then."""
        if not isinstance(record, Mapping):
            raise ValueError(f"session record must be a mapping, got {type(record).__name__}")
        if record.get("version") != RECORD_VERSION:
            raise ValueError(f"session record version {record.get('version')!r} is not {RECORD_VERSION}")
        values: dict[str, Any] = {}
        for name in ("session_id",):
            if not isinstance(record.get(name), str) or not record[name]:
                raise ValueError(f"session record '{name}' must be a non-empty string")
            values[name] = record[name]
        for name in ("started_at_s", "last_update_s", "energy_kwh", "solar_energy_kwh", "peak_power_w",
                     "gap_estimate_kwh", "gap_solar_kwh"):
            value = record.get(name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or (name != "started_at_s" and name != "last_update_s" and value < 0):
                raise ValueError(f"session record '{name}' must be a finite number"
                                 f"{'' if name.endswith('_s') else ' >= 0'}, got {value!r}")
            values[name] = float(value)
        for name in ("last_counter_kwh", "start_counter_kwh", "last_counter_s"):
            value = record.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                raise ValueError(f"session record '{name}' must be a number or null, got {value!r}")
            values[name] = None if value is None else float(value)
        for name, energy in (("cost", "energy_kwh"), ("gap_cost", "gap_estimate_kwh")):
            value = record.get(name, values[energy] * self.price_per_kwh)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise ValueError(f"session record '{name}' must be a finite number, got {value!r}")
            values[name] = float(value)
        for name in ("co2_g", "co2_kwh", "gap_co2_g", "gap_co2_kwh"):
            value = record.get(name, 0.0)      # absent: saved before CO2 was accounted
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0:
                raise ValueError(f"session record '{name}' must be a finite number >= 0, "
                                 f"got {value!r}")
            values[name] = float(value)
        known = record.get("carbon_known", False)
        if not isinstance(known, bool):
            raise ValueError(f"session record 'carbon_known' must be true or false, "
                             f"got {known!r}")
        values["carbon_known"] = known
        self._running = _Running(**values)

    def forget_counter(self) -> None:
        """The charger's counter moved to a new level (meter reset or replaced, confirmed by
        `plausibility.judge_counter`): the next reading is a new base, its step is not energy."""
        if self._running is not None:
            self._running.last_counter_kwh = None

    # -- the update ----------------------------------------------------------------------------
    def update(self, ev: EvReadings, snapshot: PowerFlowSnapshot | None, now_s: float,
               nominal_voltage_v: float = NOMINAL_VOLTAGE_V, *, solar_fraction: float | None = None,
               price_per_kwh: float | None = None,
               carbon_g_per_kwh: float | None = None) -> list[SessionStarted | SessionEnded]:
        """Advance with one reading; returns SessionStarted/SessionEnded records (usually none).

        `solar_fraction`: the part of this EV's power that free PV covers, as the site shares it
        between its EVs (None: worked out from `snapshot` as if this EV were alone).
        `price_per_kwh`: the price of this moment (a dynamic tariff's, negative allowed; None:
        the flat `price_per_kwh`); the energy since the last update is valued at it.
        `carbon_g_per_kwh`: g CO2-eq/kWh of the site's supply other than PV at this moment (grid
        and home battery; None: not known, e.g. no carbon source); the non-solar part of the
        energy since the last update carries it, the solar part the PV lifecycle factor.

        Call it only with real readings (not while the charger is offline): NO_VEHICLE ends the
        session, an ERROR state does not."""
        events: list[SessionStarted | SessionEnded] = []
        plugged = ev.connected
        if self._running is not None:
            self._account(ev, snapshot, now_s, nominal_voltage_v, solar_fraction, price_per_kwh,
                          carbon_g_per_kwh)
            if ev.vehicle_state is VehicleState.NO_VEHICLE:
                events.append(self._end(now_s))
        elif plugged:
            counter = ev.lifetime_energy_kwh
            session_id = f"{round(now_s * 1000)}"
            self._running = _Running(session_id=session_id, started_at_s=now_s, last_update_s=now_s,
                                     last_counter_kwh=counter, start_counter_kwh=counter,
                                     last_counter_s=None if counter is None else now_s,
                                     carbon_known=_intensity(carbon_g_per_kwh) is not None)
            events.append(SessionStarted(session_id, now_s, counter))
        return events

    def _account(self, ev: EvReadings, snapshot: PowerFlowSnapshot | None, now_s: float,
                 nominal_voltage_v: float, green: float | None = None,
                 price_now: float | None = None, carbon_now: float | None = None) -> None:
        r = self._running
        assert r is not None
        dt_s = now_s - r.last_update_s
        if dt_s < 0:
            dt_s = 0.0          # clock went back: count no time, keep the counter base
        r.last_update_s = max(r.last_update_s, now_s)
        power_w = snapshot.ev_total_w if snapshot is not None else ev.total_w(nominal_voltage_v)
        power_w = min(max(0.0, power_w), MAX_POWER_W)
        r.peak_power_w = max(r.peak_power_w, power_w)
        solar_fraction = 0.0
        if green is not None:
            solar_fraction = min(1.0, max(0.0, green))
        elif snapshot is not None and power_w > 0:
            free_pv_w = max(0.0, snapshot.pv_total_w - (snapshot.house_total_w or 0.0))
            solar_fraction = min(power_w, free_pv_w) / power_w
        price = self.price_per_kwh if price_now is None else price_now
        other_g = _intensity(carbon_now)
        if other_g is not None:
            r.carbon_known = True
        counter = ev.lifetime_energy_kwh
        if counter is None:
            step_kwh = power_w * dt_s / 3.6e6
            r.gap_estimate_kwh += step_kwh
            r.gap_solar_kwh += step_kwh * solar_fraction
            r.gap_cost += step_kwh * price
            if other_g is not None:
                r.gap_co2_kwh += step_kwh
                r.gap_co2_g += step_kwh * _step_g_per_kwh(solar_fraction, other_g)
            return
        if r.last_counter_kwh is None or counter < r.last_counter_kwh or r.last_counter_s is None:
            # First valid value, or the counter went down (reset/replaced): re-base. An estimate
            # made while the counter was missing stands.
            r.energy_kwh += r.gap_estimate_kwh
            r.solar_energy_kwh += r.gap_solar_kwh
            r.cost += r.gap_cost
            r.co2_kwh += r.gap_co2_kwh
            r.co2_g += r.gap_co2_g
        else:
            # the part of the step that has an intensity, and its g/kWh
            known, step_g = (1.0, _step_g_per_kwh(solar_fraction, other_g)) \
                if other_g is not None else (0.0, 0.0)
            if r.gap_estimate_kwh > 0:
                # The counter's increase covers the gap and replaces the estimate (same solar
                # split, the gap's mean price, the gap's mean intensity where it had one).
                solar_fraction = r.gap_solar_kwh / r.gap_estimate_kwh
                price = r.gap_cost / r.gap_estimate_kwh
                known = min(1.0, r.gap_co2_kwh / r.gap_estimate_kwh)
                step_g = r.gap_co2_g / r.gap_co2_kwh if r.gap_co2_kwh > 0 else 0.0
            cap_kwh = MAX_POWER_W * max(0.0, now_s - r.last_counter_s) / 3.6e6
            step_kwh = min(counter - r.last_counter_kwh, cap_kwh)
            r.energy_kwh += step_kwh
            r.solar_energy_kwh += step_kwh * solar_fraction
            r.cost += step_kwh * price
            r.co2_kwh += step_kwh * known
            r.co2_g += step_kwh * known * step_g
        r.gap_estimate_kwh = 0.0
        r.gap_solar_kwh = 0.0
        r.gap_cost = 0.0
        r.gap_co2_g = 0.0
        r.gap_co2_kwh = 0.0
        r.last_counter_kwh = counter
        r.last_counter_s = max(now_s, r.last_counter_s or now_s)

    def _end(self, now_s: float) -> SessionEnded:
        r = self._running
        assert r is not None
        energy = self.energy_kwh
        solar = min(self.solar_energy_kwh, energy)
        ended = SessionEnded(session_id=r.session_id, started_at_s=r.started_at_s, ended_at_s=now_s,
                             duration_s=max(0.0, now_s - r.started_at_s), energy_kwh=energy,
                             solar_energy_kwh=solar, solar_share=(solar / energy) if energy > 0 else 0.0,
                             peak_power_w=r.peak_power_w, cost=self.cost,
                             currency=self.currency, co2_kg=self.co2_kg)
        self._running = None
        return ended


def _intensity(g_per_kwh: float | None) -> float | None:
    """A usable intensity (finite, >= 0) or None."""
    if g_per_kwh is None or isinstance(g_per_kwh, bool) \
            or not isinstance(g_per_kwh, (int, float)) or not math.isfinite(g_per_kwh) \
            or g_per_kwh < 0:
        return None
    return float(g_per_kwh)


def _step_g_per_kwh(solar_fraction: float, other_g_per_kwh: float) -> float:
    """g/kWh of one step's EV energy: the solar part at the PV lifecycle factor, the rest at
    the site's other supply."""
    return solar_fraction * PV_G_PER_KWH + (1.0 - solar_fraction) * other_g_per_kwh
