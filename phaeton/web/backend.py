"""What the web UI needs from the running service: the `WebBackend` protocol.

`phaeton.app.Phaeton` implements it; the web layer (`phaeton.web.app.create_web_app`) only
talks to the service through these members, so the UI can be tested against any backend made
of real parts (see tests/web_backend_for_tests.py).
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from phaeton.store.sessions import SessionStore

#: The D-Bus paths of our evcharger service that the web UI may write (SetValue semantics).
WRITEABLE_PATHS = ("/Mode", "/StartStop", "/SetCurrent", "/MaxCurrent", "/SetPhases",
                   "/AutoStart")

#: Victron SetValue return codes.
WRITE_ACCEPTED = 0
WRITE_WRONG_TYPE = 1
WRITE_REFUSED = 2


@runtime_checkable
class WebBackend(Protocol):
    """The running service as the web UI sees it."""

    def status(self) -> dict:
        """A JSON-ready snapshot of the service, refreshed every control tick.

        The top-level charger keys are the FIRST charger's (the single-charger API): mode,
        start_stop, set_current_a, min_current_a, max_current_a, charger_max_current_a, phases
        (the user's choice for Manual), phases_in_use (None while the charger does not answer),
        auto_start, status_code, status_text, reason, bound_by, charger {connected, connection,
        model, serial, firmware, error, name}, surplus_w, session {active, energy_kwh,
        duration_s, cost, currency, solar_share, peak_w}; what the car really does:
        current_a (measured, per phase L1-L3), offered_current_a (what phaeton tells the
        charger now; the setpoint is set_current_a), car_full (it refuses what is offered:
        /Status 3, control/car_full.py) and vehicle_soc_pct (when the charger reports it).

        The site's keys: time, power {pv_w, grid_w, grid_current_a, fuse_a, house_w, battery_w,
        battery_soc_pct, ev_w (the sum over all chargers)}, readings_stale, readings_age_s.

        "chargers": a list with one dict per charger, in config order (the first is the one at
        the top level), each with its `id` (see `charger_ids`), the charger keys above and
        `ev_w` (that charger's power). Unknown values are None.
        """
        ...

    def subscribe(self) -> "asyncio.Queue[dict]":
        """A new queue that receives every status snapshot published from now on."""
        ...

    def unsubscribe(self, queue: "asyncio.Queue[dict]") -> None:
        """Stop feeding `queue` (a queue returned by `subscribe`); unknown queues are ignored."""
        ...

    async def write(self, path: str, value: Any, charger_id: str | None = None) -> int:
        """Write one of WRITEABLE_PATHS exactly like a D-Bus SetValue on the evcharger service
        of the charger `charger_id` (None: the first charger, the single-charger API).

        Returns 0 accepted, 1 wrong type or not writeable, 2 refused (out of range). Raises
        KeyError for an id that is not one of `charger_ids()`.
        """
        ...

    def charger_ids(self) -> list[str]:
        """The ids of the chargers (loadpoints), in config order; never empty. The first is
        the charger of the single-charger API. An id is the loadpoint's name (its
        `device.unique_id`, "0" for the charger of a one-charger config): the suffix of its
        D-Bus service name and the `loadpoint` of its sessions in the SessionStore."""
        ...

    def sessions(self) -> "SessionStore":
        """The store of finished charging sessions (of every charger: each session's
        `loadpoint` is the id of the charger it was on)."""
        ...

    def config_path(self) -> str:
        """The path of the config file ("" when the service runs without one)."""
        ...

    def config(self) -> dict:
        """The running config as plain dicts and lists, every key defaulted. (The settings and
        schedule pages show the file instead, see config_file.py; this is their fallback when
        the file cannot be loaded.)"""
        ...

    async def apply_config(self, data: dict) -> list:
        """Validate, save (`phaeton.config.save_config`: onto the file as it is now, atomically,
        with a .bak) and apply `data` as the whole config.

        Returns the list of `phaeton.config.ConfigProblem` found; empty means applied. The
        backend decides which changes take effect live and which need a restart. Must not
        await anything before the file is written: the caller checks the file's version
        right before (config_file.py). The web UI saves the schedule windows through this too,
        with the file's config and the new windows.
        """
        ...

    def log_records(self, min_level: str = "INFO", limit: int = 500) -> list[dict]:
        """The newest log records at or above `min_level`, oldest first, at most `limit`.

        Each record: {"time": unix_s, "level": "INFO", "logger": name, "message": text}.
        """
        ...

    def plan(self) -> dict | None:
        """The planner's current plan (prices and slots), or None when there is none."""
        ...

    def realised(self) -> dict | None:
        """What the house paid per day since prices were known, against plain
        self-consumption on the same load and PV (replay/realised.py), with "currency";
        None before the first priced quarter hour."""
        ...

    async def power_history(self, since_s: float) -> dict:
        """The site's power flow from `since_s` on, a row a minute (store/power_history.py
        `as_columns`: time_s, pv_w, house_w, battery_w, grid_w, soc_pct, ev_w per charger)."""
        ...
