"""The site's power flow over the last two days, one row a minute, for the web UI's charts.

Every tick's snapshot (`observe`, a listener of the site's snapshots) adds to the minute under
way: the mean of each value over the ticks that had it (PV, house, battery and grid power, the
battery's SoC, each charger's power). When the minute is over its row is appended to
`<data_dir>/power_history.jsonl`, one JSON object a line:

    {"t": 1780000020, "pv_w": 4200.0, "house_w": 650.0, "battery_w": -500.0,
     "grid_w": 7200.0, "soc_pct": 64.0, "ev_w": {"0": 11040.0}}

(`t` the minute's start, unix s; a value nobody measured that minute is null). Nothing of it is
held in memory but the minute under way: `rows(since_s)` reads the file when a chart asks. The
file is cut back to `keep_s` (48 h) at start and then about once an hour, by writing the rows
kept to a temp file and renaming it, so it stays at about 0.5 MB and a crash leaves either
file whole. In the service that runs in a worker thread (an fsync of half a megabyte on a GX's
flash must not hold up the control tick); a minute that ends meanwhile waits in memory and the
cut-back appends it, so the tick never waits for the file. A line that cannot be read (a crash
in mid-write) is skipped.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import threading
from typing import Any

log = logging.getLogger(__name__)

STEP_S = 60
KEEP_S = 48 * 3600
PRUNE_EVERY_S = 3600
FIELDS = ("pv_w", "house_w", "battery_w", "grid_w", "soc_pct")


class PowerHistory:
    def __init__(self, path: str, *, keep_s: float = KEEP_S):
        self.path = path
        self.keep_s = float(keep_s)
        self._minute: int | None = None
        self._sums: dict[str, list[float]] = {}       # key -> [sum, count]
        self._pruned_s: float | None = None
        self._file_lock = threading.Lock()        # held while the file is written
        self._pending: list[str] = []             # rows not yet in the file
        self._pending_lock = threading.Lock()

    # ---- writing ------------------------------------------------------------------------------

    def observe(self, snapshot) -> None:
        """A published SiteSnapshot: its values into the minute under way."""
        values = flow_values(snapshot)
        if values is not None:
            self.add(snapshot.time_s, values)

    def add(self, now_s: float, values: dict[str, Any]) -> None:
        """`values`: FIELDS (numbers or None) and "ev_w" {charger id: W or None}."""
        minute = int(now_s // STEP_S) * STEP_S
        if self._minute is not None and minute != self._minute:
            self._write(self._row())
            self._sums = {}
        self._minute = minute
        for key in FIELDS:
            self._sum(key, values.get(key))
        for charger, watts in (values.get("ev_w") or {}).items():
            self._sum(f"ev_w:{charger}", watts)
        if self._pruned_s is None or now_s - self._pruned_s >= PRUNE_EVERY_S:
            self._pruned_s = now_s
            self._prune_off_the_loop(now_s)

    def flush(self) -> None:
        """Write the minute under way (at stop)."""
        if self._minute is not None and self._sums:
            self._write(self._row())
            self._sums = {}

    def _sum(self, key: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            return
        entry = self._sums.setdefault(key, [0.0, 0])
        entry[0] += float(value)
        entry[1] += 1

    def _mean(self, key: str) -> float | None:
        entry = self._sums.get(key)
        return round(entry[0] / entry[1], 1) if entry and entry[1] else None

    def _row(self) -> dict[str, Any]:
        row: dict[str, Any] = {"t": self._minute}
        row.update({key: self._mean(key) for key in FIELDS})
        row["ev_w"] = {key[5:]: self._mean(key) for key in self._sums if key.startswith("ev_w:")}
        return row

    def _write(self, row: dict[str, Any]) -> None:
        with self._pending_lock:
            self._pending.append(json.dumps(row, separators=(",", ":")) + "\n")
        if not self._file_lock.acquire(blocking=False):
            return              # a cut-back is rewriting the file: it appends the row when done
        try:
            self._append_pending()
        finally:
            self._file_lock.release()

    def _append_pending(self) -> None:
        """The rows waiting in memory into the file (the file lock held). They leave memory
        only once they are in the file, so a reader on another thread, which reads the file
        and then what waits, sees each row at least once (`stored_rows` drops the second)."""
        with self._pending_lock:
            lines = list(self._pending)
        if not lines:
            return
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.writelines(lines)
        except OSError as exc:
            log.warning("power history not written to %s: %s", self.path, exc)
        with self._pending_lock:
            del self._pending[:len(lines)]          # others may have been added behind them

    def _prune_off_the_loop(self, now_s: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.prune(now_s)               # no event loop (a script, a test): here and now
            return
        loop.run_in_executor(None, self.prune, now_s)

    def prune(self, now_s: float) -> None:
        """Keep the last `keep_s` of rows (temp file, fsync, rename)."""
        with self._file_lock:
            self._prune_locked(now_s)
            self._append_pending()

    def _prune_locked(self, now_s: float) -> None:
        try:
            with open(self.path, encoding="utf-8") as f:
                lines = f.readlines()
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("power history %s unreadable: %s", self.path, exc)
            return
        cut = now_s - self.keep_s
        kept = [line for line in lines if (_time_of(line) or 0) >= cut]
        if len(kept) == len(lines):
            return
        temp = self.path + ".tmp"
        try:
            with open(temp, "w", encoding="utf-8") as f:
                f.writelines(kept)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, self.path)
        except OSError as exc:
            log.warning("power history %s not cut back: %s", self.path, exc)

    # ---- reading ------------------------------------------------------------------------------

    def rows(self, since_s: float) -> list[dict[str, Any]]:
        """The stored rows from `since_s` on, oldest first, and the minute under way."""
        return self.stored_rows(since_s) + self._current(since_s)

    async def read(self, since_s: float) -> list[dict[str, Any]]:
        """`rows`, with the file read in a worker thread: a chart asking for two days must not
        hold up the control tick (parsing 2880 lines takes a GX a good fraction of a second).
        A minute that ends while the file is read shows at the next read."""
        stored = await asyncio.to_thread(self.stored_rows, since_s)
        return stored + self._current(since_s)

    def stored_rows(self, since_s: float) -> list[dict[str, Any]]:
        """The rows in the file and those waiting for it (safe from any thread)."""
        found: list[dict[str, Any]] = []
        try:
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    if (_time_of(line) or -math.inf) < since_s:
                        continue
                    try:
                        row = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(row, dict):
                        found.append(row)
        except FileNotFoundError:
            pass
        with self._pending_lock:
            waiting = list(self._pending)
        seen = {row.get("t") for row in found}
        for line in waiting:                       # not in the file yet (or just written)
            when = _time_of(line)
            if when is not None and when >= since_s and when not in seen:
                found.append(json.loads(line))
        return found

    def _current(self, since_s: float) -> list[dict[str, Any]]:
        """The minute under way (the event loop's thread: the tick adds to it)."""
        if self._minute is not None and self._sums and self._minute >= since_s:
            return [self._row()]
        return []


def _time_of(line: str) -> float | None:
    """The `t` of a row without parsing all of it (rows start with {"t":<number>,)."""
    if not line.startswith('{"t":'):
        return None
    end = line.find(",", 5)
    try:
        return float(line[5:end])
    except ValueError:
        return None


def flow_values(snapshot) -> dict[str, Any] | None:
    """The values of one SiteSnapshot: the power flow of the first charger's decision (the
    site's, with every EV), the GX's battery and grid, each charger's measured power."""
    site = snapshot.readings
    if site is None or site.age_s is None or site.age_s > snapshot.stale_after_s:
        return None
    first = snapshot.loadpoints[0].decision if snapshot.loadpoints else None
    flow = first.snapshot if first is not None else None
    grid = [w for w in site.grid_w if w is not None]
    return {
        "pv_w": (sum(w for w in flow.pv_ac_w if w is not None) + (flow.pv_dc_w or 0.0)
                 if flow is not None else None),
        "house_w": flow.house_total_w if flow is not None else None,
        "battery_w": site.battery_power_w,
        "grid_w": sum(grid) if grid else None,
        "soc_pct": site.battery_soc_pct,
        "ev_w": {lp.name: (lp.measurement.total_power_w if lp.measurement is not None else None)
                 for lp in snapshot.loadpoints},
    }


def as_columns(rows: list[dict[str, Any]], charger_ids: list[str]) -> dict[str, Any]:
    """Rows as the chart's columns: time_s and one list per field, ev_w per charger id."""
    return {
        "step_s": STEP_S,
        "time_s": [row.get("t") for row in rows],
        **{key: [_number(row.get(key)) for row in rows] for key in FIELDS},
        "ev_w": {charger: [_number((row.get("ev_w") or {}).get(charger)) for row in rows]
                 for charger in charger_ids},
    }


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
