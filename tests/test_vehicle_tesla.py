"""The Tesla Fleet API SoC source against a local Fleet API (tests/peers/tesla_fleet.py):
authentication with rotating refresh tokens, never waking a car unasked, rate limits, bad
answers. Time-dependent behaviour runs on a fake clock; nothing sleeps more than 0.1 s."""
from __future__ import annotations

import asyncio
import json
import os
import stat
import time

import pytest

from phaeton.vehicles.base import SocReading, SourceError
from phaeton.vehicles.tesla import (
    DEFAULT_API_URL, DEFAULT_AUTH_URL, KM_PER_MILE, MIN_INTERVAL_S, MIN_WAKE_INTERVAL_S,
    WAKE_CHECK_S, TeslaFleetSource, backoff_s, parse_charge_state, parse_config,
    parse_vehicle_state, token_digest)
from tests.peers.tesla_fleet import VIN, TeslaFleetPeer


class FakeClock:
    def __init__(self):
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def peer():
    fleet = TeslaFleetPeer()
    await fleet.start()
    yield fleet
    await fleet.stop()


@pytest.fixture
def clock():
    return FakeClock()


def config(peer: TeslaFleetPeer, **overrides) -> dict:
    return {"vin": VIN, "client_id": peer.client_id, "refresh_token": peer.initial_refresh_token,
            "api_url": peer.url, "auth_url": peer.url + "/oauth2/v3/token", **overrides}


def source(peer, tmp_path, clock=time.time, **overrides) -> TeslaFleetSource:
    return TeslaFleetSource(config(peer, **overrides), tmp_path / f"tesla-{VIN}.json",
                            clock=clock)


def stored(tmp_path) -> dict:
    return json.loads((tmp_path / f"tesla-{VIN}.json").read_text())


# -- a reading --------------------------------------------------------------------------------


async def test_a_reading_has_the_soc_the_range_in_km_and_the_cars_time(peer, tmp_path):
    car = source(peer, tmp_path)
    reading = await car.poll_once()
    assert reading == car.latest() == SocReading(
        soc_pct=57.0, at_s=1_700_000_000.123, source="tesla", range_km=180.0 * KM_PER_MILE)
    assert car.problem is None
    assert peer.paths() == ["POST token", f"GET {VIN}", "GET vehicle_data"]
    token = peer.calls("/token")[0]
    assert token.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert token.form == {"grant_type": "refresh_token", "client_id": peer.client_id,
                          "refresh_token": peer.initial_refresh_token}
    data = peer.calls("/vehicle_data")[0]
    assert data.query == {"endpoints": "charge_state"}
    assert data.bearer is not None and data.bearer == peer.calls(VIN)[0].bearer


async def test_the_access_token_is_reused_until_shortly_before_it_expires(peer, tmp_path, clock):
    car = source(peer, tmp_path, clock)
    await car.poll_once()
    clock.advance(peer.access_lifetime_s - 600)
    await car.poll_once()
    assert len(peer.calls("/token")) == 1
    clock.advance(400)   # within 5 minutes of the end: refreshed before the call
    await car.poll_once()
    assert len(peer.calls("/token")) == 2
    assert peer.paths()[-3:] == ["POST token", f"GET {VIN}", "GET vehicle_data"]


async def test_client_secret_is_sent_when_configured(tmp_path):
    fleet = TeslaFleetPeer(client_secret="s3cret")
    await fleet.start()
    try:
        car = source(fleet, tmp_path, client_secret="s3cret")
        await car.poll_once()
        assert car.problem is None
        assert fleet.calls("/token")[0].form["client_secret"] == "s3cret"
    finally:
        await fleet.stop()


# -- refresh token rotation -------------------------------------------------------------------


async def test_the_rotated_refresh_token_is_stored_privately_and_used_after_a_restart(
        peer, tmp_path):
    peer.grace_s = 0          # the spent token is refused at once: only the new one works
    first = source(peer, tmp_path)
    await first.poll_once()
    rotated = peer.newest_refresh_token
    assert rotated != peer.initial_refresh_token
    path = tmp_path / f"tesla-{VIN}.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stored(tmp_path)["refresh_token"] == rotated
    assert stored(tmp_path)["origin_sha256"] == token_digest(peer.initial_refresh_token)
    assert peer.initial_refresh_token not in path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]     # no temp file left over

    peer.expire_access_tokens()   # the restarted source must refresh with the stored token
    restarted = source(peer, tmp_path)   # the same config, still with the first token
    await restarted.poll_once()
    assert restarted.problem is None and restarted.latest() is not None
    assert peer.calls("/token")[-1].form["refresh_token"] == rotated
    assert stored(tmp_path)["refresh_token"] == peer.newest_refresh_token != rotated
    assert stored(tmp_path)["origin_sha256"] == token_digest(peer.initial_refresh_token)


async def test_a_restart_reuses_the_stored_access_token_without_a_refresh(peer, tmp_path):
    await source(peer, tmp_path).poll_once()
    restarted = source(peer, tmp_path)
    await restarted.poll_once()
    assert restarted.problem is None
    assert len(peer.calls("/token")) == 1


async def test_a_new_refresh_token_in_the_config_overrides_the_stored_one(peer, tmp_path):
    await source(peer, tmp_path).poll_once()
    assert stored(tmp_path)["refresh_token"] == peer.newest_refresh_token
    fresh = peer.authorise()     # the owner authorised phaeton again: the old chain is dead
    peer.expire_access_tokens()
    car = source(peer, tmp_path, refresh_token=fresh)
    await car.poll_once()
    assert car.problem is None and car.latest() is not None
    assert peer.calls("/token")[-1].form["refresh_token"] == fresh
    assert stored(tmp_path)["origin_sha256"] == token_digest(fresh)


async def test_a_corrupt_state_file_falls_back_to_the_configs_token(peer, tmp_path):
    (tmp_path / f"tesla-{VIN}.json").write_text("{not json")
    car = source(peer, tmp_path)
    await car.poll_once()
    assert car.problem is None
    assert peer.calls("/token")[0].form["refresh_token"] == peer.initial_refresh_token
    assert stored(tmp_path)["refresh_token"] == peer.newest_refresh_token


async def test_a_state_file_that_cannot_be_written_is_a_problem_but_the_reading_comes(
        peer, tmp_path):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    car = TeslaFleetSource(config(peer), blocked / "tesla.json")
    await car.poll_once()
    assert car.latest() is not None
    assert "cannot store the rotated Tesla refresh token" in car.problem


# -- sleeping cars ----------------------------------------------------------------------------


async def test_an_asleep_car_is_not_woken_without_wake(peer, tmp_path, clock):
    peer.state = "asleep"
    car = source(peer, tmp_path, clock)
    await car.poll_once()
    assert car.latest() is None
    assert "asleep" in car.problem and "wake is off" in car.problem
    assert peer.calls("/wake_up") == [] and peer.calls("/vehicle_data") == []
    assert car.next_poll_at == pytest.approx(clock.now + 600)
    clock.advance(600)
    await car.poll_once()
    assert peer.calls("/wake_up") == [] and peer.calls("/vehicle_data") == []
    assert peer.state == "asleep"


async def test_an_asleep_car_is_woken_with_wake_but_not_again_within_wake_interval(
        peer, tmp_path, clock):
    peer.state = "asleep"
    car = source(peer, tmp_path, clock, wake=True)
    await car.poll_once()
    assert len(peer.calls("/wake_up", "POST")) == 1
    assert peer.calls("/vehicle_data") == []
    assert "woken up" in car.problem
    assert car.next_poll_at == pytest.approx(clock.now + WAKE_CHECK_S)

    await asyncio.sleep(0.1)      # the car comes online (wake_delay_s 0.05)
    clock.advance(WAKE_CHECK_S)
    await car.poll_once()
    assert car.problem is None and car.latest().soc_pct == 57.0
    assert peer.paths()[-2:] == [f"GET {VIN}", "GET vehicle_data"]

    peer.state = "asleep"         # asleep again: no second wake-up within wake_interval_s
    clock.advance(600)
    await car.poll_once()
    assert len(peer.calls("/wake_up")) == 1
    assert "next wake-up is allowed in" in car.problem
    assert car.latest().soc_pct == 57.0

    restarted = source(peer, tmp_path, clock, wake=True)   # ... also not after a restart
    await restarted.poll_once()
    assert len(peer.calls("/wake_up")) == 1

    clock.advance(6 * 3600)       # the default wake_interval_s has passed
    await car.poll_once()
    assert len(peer.calls("/wake_up")) == 2


async def test_a_408_from_vehicle_data_means_asleep_not_an_error(peer, tmp_path, clock):
    car = source(peer, tmp_path, clock)
    await car.poll_once()
    good = car.latest()
    peer.state, peer.reported_state = "asleep", "online"   # it fell asleep a moment ago
    for _ in range(3):
        clock.advance(600)
        await car.poll_once()
        assert "408" in car.problem and "sleep" in car.problem
        assert car.next_poll_at == pytest.approx(clock.now + 600)   # no back-off: not an error
    assert car.latest() is good
    assert len(peer.calls("/vehicle_data")) == 4
    assert peer.calls("/wake_up") == []


# -- authentication failures ------------------------------------------------------------------


async def test_a_401_refreshes_the_token_once_and_repeats_the_call(peer, tmp_path):
    car = source(peer, tmp_path)
    await car.poll_once()
    peer.expire_access_tokens()
    peer.charge_state["battery_level"] = 60
    await car.poll_once()
    assert car.problem is None and car.latest().soc_pct == 60.0
    assert peer.paths()[3:] == [f"GET {VIN}", "POST token", f"GET {VIN}", "GET vehicle_data"]


@pytest.mark.parametrize("refusal", [(401, "login_required"), (400, "invalid_grant")])
async def test_a_refused_refresh_token_is_a_clear_problem_and_stops_all_requests(
        peer, tmp_path, clock, refusal):
    peer.refusal = refusal
    car = source(peer, tmp_path, clock, refresh_token="EU_refresh_unknown")
    await car.poll_once()
    status, code = refusal
    assert car.problem == (
        f"Tesla token refresh refused ({status} {code}): the refresh token is no longer valid "
        "— authorise phaeton again and put the new refresh token in the config")
    for _ in range(5):
        clock.advance(3600)
        await car.poll_once()
    assert peer.paths() == ["POST token"]
    assert code in car.problem
    assert car.next_poll_at == pytest.approx(clock.now + 600)


async def test_a_spent_refresh_token_is_refused_after_the_grace_period(peer, tmp_path):
    """Tesla keeps the most recently used refresh token valid for 24 h; then it is refused."""
    await source(peer, tmp_path).poll_once()      # spends the initial token
    # a copy that did not see the rotation (say, its state file was lost) ...
    within = TeslaFleetSource(config(peer), tmp_path / "a" / "tesla.json")
    await within.poll_once()                       # ... still works within the grace period
    assert within.problem is None
    peer.grace_s = 0
    after = TeslaFleetSource(config(peer), tmp_path / "b" / "tesla.json")
    await after.poll_once()                        # ... and is refused after it
    assert "Tesla token refresh refused (401 login_required)" in after.problem


async def test_a_wrong_client_id_is_named(peer, tmp_path):
    car = source(peer, tmp_path, client_id="not-the-app")
    await car.poll_once()
    assert car.problem.startswith("Tesla token refresh refused (401 invalid_client)")
    assert "'not-the-app'" in car.problem
    await car.poll_once()
    assert len(peer.requests) == 1


async def test_no_refresh_token_at_all_is_a_problem_without_requests(peer, tmp_path):
    car = source(peer, tmp_path, refresh_token="")
    await car.poll_once()
    assert "no Tesla refresh token" in car.problem
    assert peer.requests == []


# -- rate limits and back-off -----------------------------------------------------------------


async def test_a_429_retry_after_is_honoured(peer, tmp_path, clock):
    car = source(peer, tmp_path, clock)
    await car.poll_once()
    good = car.latest()
    peer.rate_limit(retry_after_s=1800)
    clock.advance(600)
    await car.poll_once()
    assert "rate limit" in car.problem and "429" in car.problem and "1800 s" in car.problem
    assert car.next_poll_at == pytest.approx(clock.now + 1800)
    assert car.latest() is good
    calls = len(peer.requests)
    clock.advance(1799)
    await car.poll_once()            # even when asked directly: no request before Retry-After
    assert len(peer.requests) == calls
    clock.advance(1)
    await car.poll_once()
    assert car.problem is None and len(peer.requests) == calls + 2


async def test_a_short_retry_after_does_not_shorten_the_interval(peer, tmp_path, clock):
    car = source(peer, tmp_path, clock)
    await car.poll_once()
    peer.rate_limit(retry_after_s=5)
    await car.poll_once()
    assert car.next_poll_at == pytest.approx(clock.now + 600)


async def test_server_errors_back_off_exponentially_up_to_an_hour(peer, tmp_path, clock):
    car = source(peer, tmp_path, clock)
    await car.poll_once()
    good = car.latest()
    peer.api_status = 503
    delays = []
    for _ in range(5):
        await car.poll_once()
        delays.append(round(car.next_poll_at - clock.now))
        clock.advance(delays[-1])
    assert delays == [600, 1200, 2400, 3600, 3600]
    assert car.problem == "Tesla Fleet API answered HTTP 503 upstream internal error to vehicle"
    assert car.latest() is good
    peer.api_status = None
    await car.poll_once()
    assert car.problem is None and car.next_poll_at == pytest.approx(clock.now + 600)


async def test_an_unreachable_api_is_a_problem(tmp_path):
    cfg = {"vin": VIN, "client_id": "x", "refresh_token": "y",
           "api_url": "http://127.0.0.1:9", "auth_url": "http://127.0.0.1:9"}
    car = TeslaFleetSource(cfg, tmp_path / "tesla.json")
    await car.poll_once()
    assert car.problem.startswith("cannot reach Tesla at 127.0.0.1 (token refresh)")


# -- bad answers ------------------------------------------------------------------------------


@pytest.mark.parametrize("answer, complaint", [
    ("<html>502 Bad Gateway</html>", "the answer is not JSON"),
    (json.dumps({"response": {"state": "online"}}), "no charge_state object"),
    (json.dumps({"response": {"charge_state": {"battery_level": "NaN"}}}),
     "charge_state.battery_level: nan is not a state of charge"),
    (json.dumps({"response": {"charge_state": {"battery_level": 140}}}),
     "charge_state.battery_level: 140 is not a state of charge"),
    (json.dumps({"response": {"charge_state": {"battery_level": None}}}),
     "charge_state.battery_level: expected a number, got NoneType"),
    (json.dumps({"response": {"charge_state": {"battery_level": 50, "battery_range": -3}}}),
     "charge_state.battery_range: -3 km is not a range"),
    (json.dumps({"response": {"charge_state": {"battery_level": 50, "timestamp": "soon"}}}),
     "charge_state.timestamp: expected milliseconds"),
])
async def test_a_bad_answer_is_a_problem_and_the_last_good_reading_stays(
        peer, tmp_path, clock, answer, complaint):
    car = source(peer, tmp_path, clock)
    await car.poll_once()
    good = car.latest()
    peer.vehicle_data_text = answer
    clock.advance(600)
    await car.poll_once()
    assert car.problem.startswith("Tesla vehicle_data") and complaint in car.problem
    assert car.latest() is good
    assert car.next_poll_at == pytest.approx(clock.now + 600)
    clock.advance(600)
    await car.poll_once()
    assert car.next_poll_at == pytest.approx(clock.now + 1200)   # backing off


async def test_a_state_the_api_does_not_document_reads_no_data(peer, tmp_path):
    peer.state = "updating"
    car = source(peer, tmp_path, wake=True)
    await car.poll_once()
    assert "'updating'" in car.problem
    assert peer.calls("/vehicle_data") == [] and peer.calls("/wake_up") == []


# -- the polling task -------------------------------------------------------------------------


async def test_start_polls_in_a_task_and_stop_ends_it(peer, tmp_path):
    car = source(peer, tmp_path)
    await car.start()
    for _ in range(50):
        if car.latest() is not None:
            break
        await asyncio.sleep(0.01)
    assert car.latest().soc_pct == 57.0
    task = car._task
    await car.stop()
    assert task.done() and car._task is None
    calls = len(peer.requests)
    await asyncio.sleep(0.05)
    assert len(peer.requests) == calls


# -- configuration and parsing ----------------------------------------------------------------


def test_config_defaults_and_floors():
    cfg = parse_config({"vin": VIN.lower(), "client_id": "abc", "refresh_token": "r"})
    assert cfg.vin == VIN
    assert (cfg.api_url, cfg.token_url) == (DEFAULT_API_URL, DEFAULT_AUTH_URL)
    assert (cfg.interval_s, cfg.wake, cfg.wake_interval_s) == (600.0, False, 6 * 3600.0)
    low = parse_config({"vin": VIN, "client_id": "abc", "interval_s": 5, "wake_interval_s": 60})
    assert (low.interval_s, low.wake_interval_s) == (MIN_INTERVAL_S, MIN_WAKE_INTERVAL_S)
    na = parse_config({"vin": VIN, "client_id": "abc", "auth_url": "https://auth.tesla.com/",
                       "api_url": "https://fleet-api.prd.na.vn.cloud.tesla.com/"})
    assert na.token_url == "https://auth.tesla.com/oauth2/v3/token"
    assert na.api_url == "https://fleet-api.prd.na.vn.cloud.tesla.com"
    assert "refresh_token" not in repr(cfg) and "'r'" not in repr(cfg)


@pytest.mark.parametrize("bad, key", [
    ({"vin": ""}, "vin"), ({"vin": "5YJ3E7EB0NF00000O"}, "vin"), ({"client_id": ""}, "client_id"),
    ({"api_url": "http://fleet.example.com"}, "api_url"), ({"auth_url": "ftp://x"}, "auth_url"),
    ({"interval_s": "often"}, "interval_s"), ({"interval_s": -1}, "interval_s"),
    ({"wake": "yes"}, "wake"),
])
def test_config_errors_name_the_key(bad, key):
    with pytest.raises(ValueError, match=key):
        parse_config({"vin": VIN, "client_id": "abc", **bad})


def test_parse_charge_state_never_dates_a_reading_into_the_future():
    body = {"response": {"charge_state": {"battery_level": 80, "timestamp": 2_000_000_000_000}}}
    assert parse_charge_state(body, now_s=1_900_000_000.0).at_s == 1_900_000_000.0
    undated = {"response": {"charge_state": {"battery_level": 80, "battery_range": None}}}
    assert parse_charge_state(undated, now_s=5.0) == SocReading(80.0, 5.0, "tesla", None)


def test_parse_vehicle_state():
    assert parse_vehicle_state({"response": {"state": "Asleep"}}) == "asleep"
    with pytest.raises(SourceError, match="no response.state"):
        parse_vehicle_state({"response": {}})
    with pytest.raises(SourceError, match="no response object"):
        parse_vehicle_state({"response": None, "error": "x"})


def test_backoff_doubles_from_the_interval_and_is_capped():
    assert [backoff_s(n, 600) for n in range(1, 6)] == [600, 1200, 2400, 3600, 3600]
    assert backoff_s(3, 5000) == 5000
