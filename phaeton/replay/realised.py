"""What the house really paid, per local day, against plain self-consumption on the same
measured load and PV: the web UI's "What the house paid" (GET /api/realised). Pure.

Paid: import x import price - export x export price, as measured per quarter hour
(`store/energy_history.py`, money_history.csv). Plain self-consumption: the same battery
(`replay/loop.battery_of`) run as ESS does (`house.self_consumption`) on the same quarter hours'
load and PV, starting at its minimum SoC on the first recorded day and carried on over gaps.
Money with the grid only: the battery's wear and the energy left in it are in neither figure.
"""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from phaeton.replay.house import Battery, self_consumption

SLOT_H = 0.25


def realised_by_day(rows, battery: Battery, tz: str) -> dict | None:
    """{"days": [{"date", "paid", "self_consumption", "saved", "load_kwh", "pv_kwh"}],
    "total": {...}} from money-history rows (start_s, load, pv, import, export, import price,
    export price); None without rows."""
    if not rows:
        return None
    zone = ZoneInfo(tz)
    stored = battery.stored_min_kwh
    days: dict[str, dict] = {}
    for start, load, pv, bought, sold, buy, sell in rows:
        date = dt.datetime.fromtimestamp(start, zone).date().isoformat()
        day = days.setdefault(date, {"date": date, "paid": 0.0, "self_consumption": 0.0,
                                     "load_kwh": 0.0, "pv_kwh": 0.0, "slots": 0})
        day["paid"] += bought * buy - sold * sell
        if battery.capacity_kwh > 0:
            stored, flow = self_consumption(battery, stored, load, pv, SLOT_H)
            sc_import, sc_export = flow.grid_import_kwh, flow.grid_export_kwh
        else:
            sc_import, sc_export = max(load - pv, 0.0), max(pv - load, 0.0)
        day["self_consumption"] += sc_import * buy - sc_export * sell
        day["load_kwh"] += load
        day["pv_kwh"] += pv
        day["slots"] += 1
    out = []
    for day in days.values():
        out.append({key: round(value, 3) if isinstance(value, float) else value
                    for key, value in day.items()})
        out[-1]["saved"] = round(day["self_consumption"] - day["paid"], 3)
    total = {"paid": round(sum(d["paid"] for d in days.values()), 2),
             "self_consumption": round(sum(d["self_consumption"] for d in days.values()), 2)}
    total["saved"] = round(total["self_consumption"] - total["paid"], 2)
    return {"days": out, "total": total, "since": rows[0][0]}
