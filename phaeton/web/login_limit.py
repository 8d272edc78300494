"""Rate limit of failed logins (pure logic; the clock is passed in).

Per client address at most `per_client` failures within `window_s`; over all clients at most
`overall` failures in the same window (a guard against many addresses guessing together). A
blocked client learns how many seconds to wait.

Callers count an attempt before checking the password (`record_failure`) and take it back
when the password was right (`record_success`): concurrent guesses cannot slip past the limit
while a slow hash is being checked.
"""
from __future__ import annotations

import collections

from phaeton.clock import Clock


class LoginRateLimiter:
    """Counts failed logins per client in a sliding window."""

    def __init__(self, clock: Clock, *, per_client: int = 5, overall: int = 30,
                 window_s: float = 60.0, max_clients: int = 10_000):
        self.clock = clock
        self.per_client = per_client
        self.overall = overall
        self.window_s = window_s
        self.max_clients = max_clients
        self._failures: dict[str, collections.deque[float]] = {}
        self._all: collections.deque[tuple[float, str]] = collections.deque()

    def retry_after_s(self, client: str) -> float:
        """0 when `client` may try now, else the seconds until its next allowed try."""
        now = self.clock.monotonic()
        self._expire(now)
        waits = [0.0]
        mine = self._failures.get(client)
        if mine is not None and len(mine) >= self.per_client:
            waits.append(mine[-self.per_client] + self.window_s - now)
        if len(self._all) >= self.overall:
            waits.append(self._all[-self.overall][0] + self.window_s - now)
        return max(waits)

    def record_failure(self, client: str) -> None:
        """Count one failed login by `client`."""
        now = self.clock.monotonic()
        self._expire(now)
        if client not in self._failures and len(self._failures) >= self.max_clients:
            self._failures.pop(next(iter(self._failures)))
        self._failures.setdefault(client, collections.deque()).append(now)
        self._all.append((now, client))

    def record_success(self, client: str) -> None:
        """A correct login: clear the client's failures and take back its latest attempt from
        the overall count (earlier failures of the client stay counted there)."""
        self._failures.pop(client, None)
        for index in range(len(self._all) - 1, -1, -1):
            if self._all[index][1] == client:
                del self._all[index]
                break

    def _expire(self, now: float) -> None:
        horizon = now - self.window_s
        while self._all and self._all[0][0] <= horizon:
            self._all.popleft()
        for client in [c for c, times in self._failures.items() if times[-1] <= horizon]:
            del self._failures[client]
        for times in self._failures.values():
            while times and times[0] <= horizon:
                times.popleft()
