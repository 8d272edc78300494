"""Limits that keep a hostile or broken peer from wearing out the OCPP central system or its log.

- `LoginThrottle`: failed HTTP Basic logins per client address. After FAILURES_ALLOWED failures
  within FAILURE_WINDOW_S the address is refused (HTTP 429, credentials not even read) for
  BLOCK_FIRST_S; every failure after a block blocks it again for twice as long, up to
  BLOCK_MAX_S. A correct login from the address, or FORGET_AFTER_S without failures, clears it.
  The key is the TCP peer address only: a charge point at another address is never affected,
  and nothing the client sends (URL, user name, forwarded-for headers) changes the key.
- `ReportLimiter`: at most one log line per key per REPORT_PERIOD_S. The first event is logged
  as it is; later ones are counted and reported in one summary line when the period is over.

Both are pure: time comes from the `clock` passed in (seconds, monotonic). Both keep at most
MAX_TRACKED keys (the least recently active are dropped first), so many addresses cost bounded
memory.
"""
from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

FAILURES_ALLOWED = 5        # failed logins per address within FAILURE_WINDOW_S before a block
FAILURE_WINDOW_S = 60.0
BLOCK_FIRST_S = 30.0        # the first block; each next one lasts twice as long ...
BLOCK_MAX_S = 300.0         # ... up to this
FORGET_AFTER_S = 3600.0     # an address without failures this long starts afresh
REPORT_PERIOD_S = 60.0      # at most one log line per key this often
MAX_TRACKED = 1024          # addresses / report keys kept at most


@dataclass
class _Logins:
    failures: deque = field(default_factory=lambda: deque(maxlen=FAILURES_ALLOWED))
    strikes: int = 0            # blocks so far
    blocked_until: float = 0.0
    last_failure: float = 0.0


class LoginThrottle:
    """Failed logins per client address; see the module docstring."""

    def __init__(self, clock=time.monotonic, max_addresses: int = MAX_TRACKED):
        self._clock = clock
        self._max = max_addresses
        self._addresses: OrderedDict[str, _Logins] = OrderedDict()   # least recent first

    def blocked_for(self, address: str) -> float:
        """Seconds this address must still wait before its credentials are checked (0: now)."""
        entry = self._addresses.get(address)
        if entry is None:
            return 0.0
        return max(0.0, entry.blocked_until - self._clock())

    def failed(self, address: str) -> float:
        """Count a failed login; returns how long the address is now blocked (0: not)."""
        now = self._clock()
        entry = self._entry(address, now)
        entry.last_failure = now
        entry.failures.append(now)
        while entry.failures and entry.failures[0] <= now - FAILURE_WINDOW_S:
            entry.failures.popleft()
        if entry.strikes == 0 and len(entry.failures) < FAILURES_ALLOWED:
            return 0.0
        block = block_duration(entry.strikes)
        entry.strikes += 1
        entry.blocked_until = now + block
        entry.failures.clear()
        return block

    def succeeded(self, address: str) -> None:
        """A correct login: the address starts afresh."""
        self._addresses.pop(address, None)

    def __len__(self) -> int:
        return len(self._addresses)

    def _entry(self, address: str, now: float) -> _Logins:
        entry = self._addresses.pop(address, None)
        if entry is None or now - entry.last_failure >= FORGET_AFTER_S:
            self._forget_idle(now)
            entry = _Logins()
        self._addresses[address] = entry          # most recent last
        while len(self._addresses) > self._max:
            self._addresses.popitem(last=False)
        return entry

    def _forget_idle(self, now: float) -> None:
        while self._addresses:
            oldest = next(iter(self._addresses.values()))
            if now - oldest.last_failure < FORGET_AFTER_S:
                return
            self._addresses.popitem(last=False)


def block_duration(strikes: int) -> float:
    """How long the block after `strikes` earlier blocks lasts."""
    return min(BLOCK_FIRST_S * 2 ** min(strikes, 16), BLOCK_MAX_S)


@dataclass
class _Report:
    logged_at: float        # when the last line for this key was logged
    noun: str
    count: int = 0          # events since then, not logged yet
    latest: str = ""


class ReportLimiter:
    """At most one log line per key per period; see the module docstring.

    `event()` returns the line to log now or None (counted); `due()` returns the summaries whose
    period is over (call it from a timer, or now and then); `next_due_in()` says when."""

    def __init__(self, period_s: float = REPORT_PERIOD_S, clock=time.monotonic,
                 max_keys: int = MAX_TRACKED):
        self.period_s = period_s
        self._clock = clock
        self._max = max_keys
        self._reports: OrderedDict[object, _Report] = OrderedDict()

    def event(self, key, noun: str, text: str) -> str | None:
        """One event: `text` is its full line; `noun` names such events in a summary
        ("failed logins from 10.0.0.7")."""
        now = self._clock()
        report = self._reports.get(key)
        if report is None or (report.count == 0 and now - report.logged_at >= self.period_s):
            self._put(key, _Report(now, noun), now)
            return text
        report.count += 1
        report.latest = text
        self._reports.move_to_end(key)
        if now - report.logged_at >= self.period_s:
            return self._summary(report, now)
        return None

    def due(self, force: bool = False) -> list[str]:
        """Summary lines for keys whose period is over (all pending ones with `force`)."""
        now = self._clock()
        lines = []
        for key, report in list(self._reports.items()):
            if now - report.logged_at < self.period_s and not force:
                continue
            if report.count:
                lines.append(self._summary(report, now))
        self._drop_quiet(now)
        return lines

    def next_due_in(self) -> float | None:
        """Seconds until the earliest pending summary is due; None when nothing is pending."""
        pending = [r.logged_at for r in self._reports.values() if r.count]
        if not pending:
            return None
        return max(0.0, min(pending) + self.period_s - self._clock())

    def _summary(self, report: _Report, now: float) -> str:
        line = (f"{report.count} {report.noun} in the last {now - report.logged_at:.0f} s "
                f"(latest: {report.latest})")
        report.count, report.latest, report.logged_at = 0, "", now
        return line

    def _put(self, key, report: _Report, now: float) -> None:
        self._reports.pop(key, None)
        self._reports[key] = report
        if len(self._reports) > self._max:
            self._drop_quiet(now)
        while len(self._reports) > self._max:
            self._reports.popitem(last=False)

    def _drop_quiet(self, now: float) -> None:
        """Forget keys quiet for a period: their next event is logged as a first one anyway."""
        for key, report in list(self._reports.items()):
            if report.count == 0 and now - report.logged_at >= self.period_s:
                del self._reports[key]
