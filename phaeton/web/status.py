"""The web UI's status (`WebBackend.status()`, `/api/status`, the event stream), built from the
tick's snapshot in this one place. The keys are documented in `web/backend.py` and docs/web.md.

The top-level keys are the first charger's (the single-charger API); "chargers" has them all.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from phaeton.snapshot import LoadpointSnapshot, SiteSnapshot
from phaeton.venus.evcharger_service import STARTING_REASON, STATUS_TEXT


def status_of(snapshot: SiteSnapshot) -> dict[str, Any]:
    """Pure: the status dict of a snapshot: the site's power flow, the first charger's keys at
    the top level (the single-charger API) and every charger under "chargers" (its id first).
    Before the first control step (no decision yet) the owner's choices and limits are known
    and the rest is None."""
    chargers = [charger_status(lp) for lp in snapshot.loadpoints]
    first = snapshot.loadpoints[0]
    decision = first.decision
    flow = decision.snapshot if decision is not None else None
    site = snapshot.readings
    voltage = snapshot.nominal_voltage_v
    grid = list(site.grid_w) if site is not None else [None, None, None]
    age = site.age_s if site is not None else None
    ev_w = [c["ev_w"] for c in chargers]
    status = {key: value for key, value in chargers[0].items() if key not in ("id", "ev_w")}
    status.update({
        "time": snapshot.time_s,
        "power": {
            "pv_w": _total(flow.pv_ac_w) + (flow.pv_dc_w or 0.0) if flow is not None else None,
            "grid_w": grid,
            "grid_current_a": [None if w is None else round(w / voltage, 2) for w in grid],
            "fuse_a": snapshot.fuse_a,
            "house_w": flow.house_total_w if flow is not None else None,
            "battery_w": site.battery_power_w if site is not None else None,
            "battery_soc_pct": site.battery_soc_pct if site is not None else None,
            "ev_w": (None if all(w is None for w in ev_w)
                     else float(sum(w for w in ev_w if w is not None))),
        },
        "readings_stale": age is None or age > snapshot.stale_after_s,
        "readings_age_s": age,
        "chargers": chargers,
        "carbon": carbon_status(snapshot.carbon),
    })
    return status


BUDGET_STATE_TEXT = {0: "ok", 1: "warning", 2: "critical"}


def carbon_status(carbon) -> dict[str, Any] | None:
    """Pure: the site's carbon for the status (None without a carbon source): intensity now,
    today's, the month's and the year's kg, every configured budget and the worst level."""
    if carbon is None:
        return None

    def period(p) -> dict[str, Any]:
        return {"key": p.key, "house_kg": round(p.house_kg, 3), "car_kg": round(p.car_kg, 3),
                "total_kg": round(p.total_kg, 3), "avoided_kg": round(p.avoided_kg, 3)}

    budgets = [{"scope": b.scope, "period": b.period, "key": b.key, "budget_kg": b.budget_kg,
                "used_kg": round(b.used_kg, 3), "usage_pct": round(b.usage_pct, 1),
                "forecast_kg": None if b.forecast_kg is None else round(b.forecast_kg, 3),
                "forecast_pct": None if b.forecast_pct is None else round(b.forecast_pct, 1),
                "level": b.level, "level_text": BUDGET_STATE_TEXT.get(b.level, str(b.level))}
               for b in carbon.budgets]
    state = carbon.budget_state
    return {
        "intensity_g_per_kwh": carbon.intensity_g_per_kwh,
        "today": period(carbon.today), "month": period(carbon.month),
        "year": period(carbon.year),
        "budget": {"state": state,
                   "state_text": None if state is None else BUDGET_STATE_TEXT.get(state),
                   "budgets": budgets},
    }


def charger_status(lp: LoadpointSnapshot) -> dict[str, Any]:
    """Pure: one charger's part of the status (the keys documented in web/backend.py)."""
    decision, m = lp.decision, lp.measurement
    identity = lp.identity
    c = lp.choices
    return {
        "id": lp.name,
        "mode": c.mode, "start_stop": c.start_stop, "set_current_a": c.set_current_a,
        "min_current_a": lp.limits.min_current_a, "max_current_a": c.max_current_a,
        "charger_max_current_a": lp.limits.max_current_a,
        "phases": c.phases,
        "phases_in_use": lp.phases_in_use,
        "auto_start": c.auto_start,
        "status_code": int(decision.status) if decision is not None else None,
        "status_text": STATUS_TEXT.get(int(decision.status), str(decision.status))
        if decision is not None else "Starting",
        "reason": decision.reason if decision is not None else STARTING_REASON,
        "bound_by": str(decision.bound_by) if decision is not None else None,
        "charger": {"connected": m is not None, "connection": lp.connection,
                    "model": identity.model if identity else "",
                    "serial": identity.serial if identity else "",
                    "firmware": identity.firmware if identity else "",
                    "error": lp.error,
                    "name": c.custom_name},
        "ev_w": m.total_power_w if m is not None else None,
        "current_a": list(m.current_a) if m is not None else None,
        "offered_current_a": (None if decision is None
                              else decision.current_a if decision.enabled else 0.0),
        "car_full": bool(decision is not None and decision.car_full),
        "vehicle_soc_pct": m.vehicle_soc_pct if m is not None else None,
        "car": lp.car.as_dict() if lp.car is not None else None,
        "surplus_w": decision.surplus_w if decision is not None else None,
        "session": asdict(lp.session),
    }


def _total(phases) -> float:
    return float(sum(w for w in phases if w is not None))
