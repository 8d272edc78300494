"""Limit of failed logins (pure logic; the clock is passed in), built so that nobody else's
wrong guesses can lock the owner out.

The rule:
- An address with no failed login on record is never refused: its password is always checked,
  and the right one always gets in, however many others are guessing.
- Only failures count. An address gets `per_client` failures free; each further one blocks it
  twice as long as the one before: `first_block_s`, 2x, 4x ... up to `max_block_s`. A right
  password clears the address's record; otherwise it is forgotten `forget_s` after its last
  failure.
- When more than `overall` failures came from all addresses together within `window_s` (many
  addresses guessing together), every address with a failure on record is refused until the
  rate drops again. A brute force from many addresses thus gets one guess per address, while
  an owner at an address that has not been guessing still gets in.

(The caller checks one password at a time per address, so concurrent guesses from one address
cannot slip past the count, and checks a bounded number of passwords at once over all.)
"""
from __future__ import annotations

import collections
from dataclasses import dataclass

from phaeton.clock import Clock


@dataclass
class _Record:
    failures: int
    last_s: float


class LoginRateLimiter:
    """Failed logins per client (see the module for the rule)."""

    def __init__(self, clock: Clock, *, per_client: int = 5, overall: int = 30,
                 window_s: float = 60.0, first_block_s: float = 60.0,
                 max_block_s: float = 3600.0, forget_s: float = 86400.0,
                 max_clients: int = 10_000):
        self.clock = clock
        self.per_client = per_client
        self.overall = overall
        self.window_s = window_s
        self.first_block_s = first_block_s
        self.max_block_s = max_block_s
        self.forget_s = forget_s
        self.max_clients = max_clients
        self._clients: dict[str, _Record] = {}  # oldest last failure first
        self._recent: collections.deque[float] = collections.deque()  # all failures, in time

    def retry_after_s(self, client: str) -> float:
        """0 when `client` may try now, else the seconds until it may."""
        now = self.clock.monotonic()
        self._expire(now)
        record = self._clients.get(client)
        if record is None:
            return 0.0
        waits = [0.0, record.last_s + self.block_s(record.failures) - now]
        if len(self._recent) >= self.overall:
            waits.append(self._recent[-self.overall] + self.window_s - now)
        return max(waits)

    def block_s(self, failures: int) -> float:
        """How long an address is blocked after its `failures`-th failure in a row."""
        if failures < self.per_client:
            return 0.0
        return min(self.max_block_s, self.first_block_s * 2.0 ** min(failures - self.per_client,
                                                                    64))

    def under_attack(self) -> bool:
        """True while the failures of all addresses together are over the overall limit."""
        self._expire(self.clock.monotonic())
        return len(self._recent) >= self.overall

    def record_failure(self, client: str) -> None:
        """Count one wrong password from `client`."""
        now = self.clock.monotonic()
        self._expire(now)
        record = self._clients.pop(client, None) or _Record(0, now)
        record.failures += 1
        record.last_s = now
        self._clients[client] = record  # now the newest
        while len(self._clients) > self.max_clients:
            self._clients.pop(next(iter(self._clients)))
        self._recent.append(now)

    def record_success(self, client: str) -> None:
        """A right password from `client`: forget its failures."""
        self._clients.pop(client, None)

    def _expire(self, now: float) -> None:
        while self._recent and self._recent[0] <= now - self.window_s:
            self._recent.popleft()
        while self._clients:
            oldest = next(iter(self._clients))
            if self._clients[oldest].last_s > now - self.forget_s:
                break
            del self._clients[oldest]
