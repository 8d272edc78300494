"""OCPP abuse against the central system: garbage frames, deeply nested JSON, an oversized
frame, wrong passwords in a loop. The server stays up, answers CallErrors where a call id can
be read, logs no traceback, throttles the guessing, and a valid charge point still works."""
from __future__ import annotations

import asyncio

import pytest

from phaeton.chargers.ocpp import OcppCharger, OcppChargerConfig
from phaeton.chargers.ocpp_server import OcppCentralSystem
from phaeton.clock import ScaledClock
from phaeton.sim.ev import SimulatedEV
from phaeton.sim.ocpp_cp import SimulatedChargePoint
from trials.logs import LogTally
from trials.ocpp_abuse import GARBAGE, RawChargePoint, brute_force, deep_call

SPEED = 50.0
PASSWORD = "correct horse battery"
WAIT_S = 10.0
GUESSES = 200             # wrong passwords at most ...
GUESS_BUDGET_S = 8.0      # ... and at most this long
MAX_WRONG_ANSWERED = 30   # answered "wrong password" within the budget: more is no throttle
MAX_WARNINGS = 20         # log lines the whole guessing may cost


async def eventually(predicate, what: str, timeout_s: float = WAIT_S) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.02)


class Site:
    """A central system with two chargers: CP1 (password) and OPEN (no password, for the raw
    client's garbage)."""

    def __init__(self):
        self.clock = ScaledClock(SPEED)
        self.central = OcppCentralSystem(host="127.0.0.1", port=0)
        self.chargers = [
            OcppCharger(OcppChargerConfig("CP1", password=PASSWORD, call_timeout_s=2.0),
                        self.central, self.clock),
            OcppCharger(OcppChargerConfig("OPEN", call_timeout_s=2.0), self.central, self.clock)]

    async def start(self) -> None:
        for charger in self.chargers:
            await charger.start()
        await eventually(lambda: self.central.running, "the central system listening")

    async def stop(self) -> None:
        for charger in self.chargers:
            await charger.stop()
        await self.central.stop()

    def url(self, cp_id: str) -> str:
        return self.central.url_for(cp_id)

    async def valid_station_works(self) -> None:
        """The real charge point CP1 connects with its password, boots and takes a limit."""
        charger = self.chargers[0]
        sim = SimulatedChargePoint(self.url("CP1"), SimulatedEV(), self.clock, password=PASSWORD,
                                   reconnect_delay_s=2.0)
        await sim.start()
        try:
            await eventually(lambda: charger.configured and sim.connected,
                             f"CP1 connected and configured (sim: {sim.last_error})")
            await charger.set_current(10)
            assert sim.offered_current_a() == 10.0
        finally:
            await sim.stop()


@pytest.fixture
async def site():
    made = Site()
    await made.start()
    yield made
    await made.stop()


@pytest.fixture
def tally():
    with LogTally() as made:
        yield made


async def test_garbage_frames_get_call_errors_and_the_connection_stays_up(site, tally):
    async with RawChargePoint(site.url("OPEN")) as cp:
        for text, call_id in GARBAGE:
            await cp.send(text)
            if call_id is not None:
                answer = await cp.answer_to(call_id)
                assert answer is not None and answer[0] == 4, (text[:60], answer)
        await cp.send(b"\xff\xfe\x00\x01 not UTF-8")
        answer = await cp.heartbeat("after-garbage")
        assert answer is not None and answer[0] == 3, answer      # same connection, still served
    await site.valid_station_works()
    assert tally.since(0).problems == []


@pytest.mark.parametrize("brackets", ["{}", "[]"])
async def test_deeply_nested_json_gets_a_call_error_not_a_dropped_connection(site, tally,
                                                                             brackets):
    async with RawChargePoint(site.url("OPEN")) as cp:
        await cp.send(deep_call("deep", 10_000, brackets))
        answer = await cp.answer_to("deep")
        assert answer is not None, "the connection was dropped instead of a CallError"
        assert answer[:2] == [4, "deep"], answer
        answer = await cp.heartbeat("after-deep")
        assert answer is not None and answer[0] == 3, answer
    await site.valid_station_works()
    assert tally.since(0).problems == []


async def test_an_oversized_frame_closes_only_that_connection(site, tally):
    async with RawChargePoint(site.url("OPEN")) as cp:
        await cp.send('[2, "big", "Heartbeat", {"x": "' + "x" * (2 << 20) + '"}]')
        assert await cp.answer_to("big") is None             # closed (1009), not answered
    async with RawChargePoint(site.url("OPEN")) as cp:       # the server is still there
        answer = await cp.heartbeat()
        assert answer is not None and answer[0] == 3, answer
    await site.valid_station_works()
    assert tally.since(0).problems == []


async def test_wrong_passwords_in_a_loop_are_throttled_and_the_station_still_gets_in(site,
                                                                                      tally):
    guessing = await brute_force(site.url("CP1"), GUESSES, GUESS_BUDGET_S)
    window = tally.since(0)
    print(f"{guessing.attempts} guesses in {guessing.real_s:.1f} s: {dict(guessing.statuses)}; "
          f"{len(window.warnings)} warnings")
    assert guessing.upgraded == 0
    assert guessing.statuses.get(401, 0) <= MAX_WRONG_ANSWERED, \
        f"not throttled: {dict(guessing.statuses)} in {guessing.real_s:.1f} s"
    assert len(window.warnings) <= MAX_WARNINGS, f"{len(window.warnings)} warnings logged"
    await site.valid_station_works()                         # from another address
    assert tally.since(0).problems == []
