"""OCPP central system limits, pure: the failed-login throttle and the rate-limited report log.
Time is a fake clock (seconds)."""
from __future__ import annotations

import pytest

from phaeton.chargers.ocpp_limits import (
    BLOCK_FIRST_S,
    BLOCK_MAX_S,
    FAILURE_WINDOW_S,
    FAILURES_ALLOWED,
    FORGET_AFTER_S,
    LoginThrottle,
    ReportLimiter,
    block_duration,
)


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


def test_block_after_too_many_failures_in_a_minute(clock):
    throttle = LoginThrottle(clock)
    for _ in range(FAILURES_ALLOWED - 1):
        assert throttle.failed("10.0.0.9") == 0
        assert throttle.blocked_for("10.0.0.9") == 0
    assert throttle.failed("10.0.0.9") == BLOCK_FIRST_S
    assert throttle.blocked_for("10.0.0.9") == BLOCK_FIRST_S
    # another address, e.g. the real charge point, is not affected
    assert throttle.blocked_for("10.0.0.5") == 0
    clock.now += BLOCK_FIRST_S
    assert throttle.blocked_for("10.0.0.9") == 0


def test_failures_spread_over_more_than_a_minute_do_not_block(clock):
    throttle = LoginThrottle(clock)
    for _ in range(3 * FAILURES_ALLOWED):
        assert throttle.failed("10.0.0.9") == 0
        clock.now += FAILURE_WINDOW_S / (FAILURES_ALLOWED - 1) + 0.1


def test_blocks_grow_up_to_the_maximum_and_a_correct_login_clears_them(clock):
    throttle = LoginThrottle(clock)
    for _ in range(FAILURES_ALLOWED):
        blocked = throttle.failed("a")
    blocks = [blocked]
    for _ in range(8):       # after a block, a single failure blocks again, twice as long
        clock.now += blocks[-1]
        blocks.append(throttle.failed("a"))
    assert blocks[:3] == [BLOCK_FIRST_S, 2 * BLOCK_FIRST_S, 4 * BLOCK_FIRST_S]
    assert max(blocks) == blocks[-1] == BLOCK_MAX_S
    clock.now += BLOCK_MAX_S
    throttle.succeeded("a")
    assert throttle.failed("a") == 0          # afresh: FAILURES_ALLOWED again


def test_a_quiet_address_is_forgotten(clock):
    throttle = LoginThrottle(clock)
    for _ in range(FAILURES_ALLOWED):
        throttle.failed("a")
    clock.now += FORGET_AFTER_S
    throttle.failed("b")                       # forgetting happens when another one comes
    assert len(throttle) == 1
    assert throttle.failed("a") == 0


def test_an_address_failing_again_after_a_quiet_hour_starts_afresh(clock):
    throttle = LoginThrottle(clock)
    for _ in range(FAILURES_ALLOWED):
        throttle.failed("a")
    clock.now += FORGET_AFTER_S
    assert throttle.failed("a") == 0           # no strike left: not blocked by one failure


def test_many_addresses_cost_bounded_memory(clock):
    throttle = LoginThrottle(clock, max_addresses=50)
    for i in range(1000):
        throttle.failed(f"10.1.{i // 256}.{i % 256}")
    assert len(throttle) == 50


def test_block_duration_never_overflows():
    assert block_duration(0) == BLOCK_FIRST_S
    assert block_duration(10_000) == BLOCK_MAX_S


def test_report_limiter_logs_the_first_then_one_summary_a_period(clock):
    reports = ReportLimiter(period_s=60, clock=clock)
    lines = [reports.event("a", "failed logins from a", f"try {i}") for i in range(200)]
    assert lines[0] == "try 0" and lines[1:] == [None] * 199
    assert reports.due() == []
    assert reports.next_due_in() == 60
    clock.now += 61
    assert reports.due() == ["199 failed logins from a in the last 61 s (latest: try 199)"]
    assert reports.next_due_in() is None
    clock.now += 61
    assert reports.due() == []
    assert reports.event("a", "failed logins from a", "again") == "again"   # quiet: full line


def test_report_limiter_summarises_on_the_next_event_when_no_timer_ran(clock):
    reports = ReportLimiter(period_s=60, clock=clock)
    reports.event("k", "things", "one")
    reports.event("k", "things", "two")
    clock.now += 70
    assert reports.event("k", "things", "three") == \
        "2 things in the last 70 s (latest: three)"


def test_report_limiter_keys_are_independent_and_bounded(clock):
    reports = ReportLimiter(period_s=60, clock=clock, max_keys=10)
    assert reports.event("a", "x", "a1") == "a1"
    assert reports.event("b", "x", "b1") == "b1"
    for i in range(100):
        reports.event(i, "x", "n")
    assert len(reports._reports) <= 10
    assert reports.due(force=True) == []        # nothing suppressed, nothing to summarise
