"""Password hashing, the login rate limit, the set_password command and robustness of writes."""
from __future__ import annotations

import io
import json
import random

import pytest
import yaml

from phaeton.clock import Clock
from phaeton.web import set_password as set_password_cli
from phaeton.web.client_address import client_key
from phaeton.web.login_limit import LoginRateLimiter
from phaeton.web.passwords import (PasswordHashError, check_hash_format, hash_password,
                                   verify_password)
from tests.web_fixtures import (PASSWORD, PASSWORD_HASH, backend, client, login,  # noqa: F401
                                start_client)


class SteppedClock(Clock):
    """Real Clock interface, time moved by the test."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def monotonic(self) -> float:
        return self.now_s

    def time(self) -> float:
        return self.now_s


# ---- passwords -----------------------------------------------------------------------------

def test_hash_verifies_only_the_right_password_and_hides_it():
    assert PASSWORD not in PASSWORD_HASH and PASSWORD_HASH.startswith("scrypt$16384$8$1$")
    assert verify_password(PASSWORD, PASSWORD_HASH)
    assert not verify_password(PASSWORD + " ", PASSWORD_HASH)
    assert not verify_password("x" * 5000, PASSWORD_HASH)


def test_same_password_hashes_differently_each_time():
    assert hash_password("long enough pw") != hash_password("long enough pw")


@pytest.mark.parametrize("password, words", [("short", "at least 8"), ("x" * 1025, "at most")])
def test_unusable_passwords_are_refused(password, words):
    with pytest.raises(ValueError, match=words):
        hash_password(password)


@pytest.mark.parametrize("stored, words", [
    ("plaintext", "must look like scrypt"),
    ("scrypt$x$8$1$00$00", "non-numeric"),
    ("scrypt$3$8$1$0011223344556677$00112233445566778899aabbccddeeff", "unusable scrypt"),
    ("scrypt$16384$8$1$00$00112233445566778899aabbccddeeff", "too short salt"),
])
def test_malformed_hashes_are_named(stored, words):
    with pytest.raises(PasswordHashError, match=words):
        check_hash_format(stored)


# ---- login rate limit ----------------------------------------------------------------------

def test_a_client_is_blocked_after_five_failures_then_twice_as_long_each_time():
    clock = SteppedClock()
    limiter = LoginRateLimiter(clock, per_client=5, first_block_s=60, max_block_s=200)
    for _ in range(5):
        assert limiter.retry_after_s("10.0.0.2") == 0
        limiter.record_failure("10.0.0.2")
        clock.now_s += 1
    assert limiter.retry_after_s("10.0.0.2") == pytest.approx(59)
    assert limiter.retry_after_s("10.0.0.3") == 0  # others are not blocked
    clock.now_s += 59
    assert limiter.retry_after_s("10.0.0.2") == 0
    limiter.record_failure("10.0.0.2")
    assert limiter.retry_after_s("10.0.0.2") == pytest.approx(120)
    clock.now_s += 120
    limiter.record_failure("10.0.0.2")
    assert limiter.retry_after_s("10.0.0.2") == pytest.approx(200)  # capped


def test_many_clients_guessing_together_block_those_that_failed_not_the_others():
    clock = SteppedClock()
    limiter = LoginRateLimiter(clock, per_client=5, overall=30, window_s=60)
    for n in range(30):
        limiter.record_failure(f"10.0.1.{n}")
    assert limiter.under_attack()
    assert limiter.retry_after_s("10.0.1.7") == pytest.approx(60)  # it guessed: waits
    assert limiter.retry_after_s("10.0.2.1") == 0  # never guessed: may always try
    clock.now_s += 60
    assert not limiter.under_attack()
    assert limiter.retry_after_s("10.0.1.7") == 0


def test_a_right_password_clears_the_clients_failures():
    limiter = LoginRateLimiter(SteppedClock(), per_client=2)
    limiter.record_failure("a")
    limiter.record_success("a")
    limiter.record_failure("a")
    assert limiter.retry_after_s("a") == 0


def test_failures_are_forgotten_a_day_after_the_last_one():
    clock = SteppedClock()
    limiter = LoginRateLimiter(clock, per_client=1, forget_s=86400, max_block_s=3600)
    for _ in range(20):
        limiter.record_failure("a")
    assert limiter.retry_after_s("a") == pytest.approx(3600)
    clock.now_s += 86400
    assert limiter.retry_after_s("a") == 0
    limiter.record_failure("a")
    assert limiter.retry_after_s("a") == pytest.approx(60)  # starts over


def test_the_limiter_forgets_the_oldest_client_beyond_its_bound():
    limiter = LoginRateLimiter(SteppedClock(), per_client=1, max_clients=3)
    for name in "abcd":
        limiter.record_failure(name)
    assert limiter.retry_after_s("a") == 0
    assert limiter.retry_after_s("d") > 0


@pytest.mark.parametrize("remote, key", [
    ("192.168.1.20", "192.168.1.20"),
    ("::ffff:192.168.1.20", "192.168.1.20"),
    ("2001:db8:1:2:a:b:c:d", "2001:db8:1:2::/64"),
    ("2001:db8:1:2::99", "2001:db8:1:2::/64"),
    ("fe80::1%eth0", "fe80::/64"),
    (None, "unknown"),
])
def test_clients_are_counted_by_address_and_ipv6_hosts_by_their_64(remote, key):
    assert client_key(remote) == key


# ---- set_password command ------------------------------------------------------------------

def test_set_password_stores_a_hash_and_keeps_a_backup_with_comments(tmp_path, monkeypatch,
                                                                      capsys):
    config = tmp_path / "config.yaml"
    original = "# my charger\ncharger:\n  alfen:\n    host: 192.168.1.50  # garage\n"
    config.write_text(original)
    monkeypatch.setattr("sys.stdin", io.StringIO("a long new password\n"))
    assert set_password_cli.main(["--config", str(config), "--stdin"]) == 0
    stored = yaml.safe_load(config.read_text())
    assert verify_password("a long new password", stored["web"]["password_hash"])
    assert stored["charger"]["alfen"]["host"] == "192.168.1.50"
    assert (tmp_path / "config.yaml.bak").read_text() == original
    assert "restart phaeton" in capsys.readouterr().out


@pytest.mark.parametrize("text, password, words", [
    ("charger:\n  alfen:\n    host: 192.168.1.50\n", "short", "at least 8"),
    ("site:\n  fuse_a: 2\ncharger:\n  alfen:\n    host: h\n", "a long password", "fuse_a"),
])
def test_set_password_refuses_and_changes_nothing(tmp_path, monkeypatch, capsys, text,
                                                  password, words):
    config = tmp_path / "config.yaml"
    config.write_text(text)
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    assert set_password_cli.main(["--config", str(config), "--stdin"]) == 1
    assert config.read_text() == text
    err = capsys.readouterr().err
    assert words in err and "nothing changed" in err


# ---- robustness ----------------------------------------------------------------------------

async def test_an_unusable_stored_hash_disables_writes(backend):
    client = await start_client(backend, password_hash="md5:abc")
    try:
        response = await client.post("/api/login", json={"password": PASSWORD})
        assert response.status == 403
        assert "no web password is set" in (await response.json())["error"]
    finally:
        await client.close()


def _garbage(rng: random.Random, depth: int = 0):
    kind = rng.randrange(7 if depth < 3 else 5)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, -1, 1e308, -1e-308, 2 ** 70, 3, 6.5])
    if kind == 2:
        return "".join(rng.choice("aé\u0000\"\\{}[]<>🙂 ") for _ in range(rng.randrange(12)))
    if kind == 3:
        return rng.choice(["manual", "AUTO", "start", "", "1"])
    if kind == 4:
        return rng.randrange(-5, 100)
    if kind == 5:
        return [_garbage(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {_key(rng): _garbage(rng, depth + 1) for _ in range(rng.randrange(4))}


def _key(rng: random.Random) -> str:
    return rng.choice(["mode", "start_stop", "current_a", "max_current_a", "phases",
                       "auto_start", "config", "windows", "password", "x", ""])


WRITE_ROUTES = [("POST", "/api/mode"), ("POST", "/api/startstop"), ("POST", "/api/current"),
                ("POST", "/api/max_current"), ("POST", "/api/phases"),
                ("POST", "/api/autostart"), ("PUT", "/api/config"), ("PUT", "/api/schedule"),
                ("POST", "/api/password")]


async def test_no_garbage_request_crashes_or_changes_state_without_login(client, backend):
    rng = random.Random(5)
    config_before = backend.config_file.read_text()
    values_before = {path: backend.service[path] for path in
                     ("/Mode", "/StartStop", "/SetCurrent", "/MaxCurrent", "/SetPhases",
                      "/AutoStart")}
    for n in range(300):
        method, url = rng.choice(WRITE_ROUTES)
        if n % 3 == 0:
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        else:
            body = json.dumps(_garbage(rng)).encode()
        response = await client.request(method, url, data=body,
                                        headers={"Content-Type": "application/json"})
        assert response.status in (401, 403), (url, body, await response.text())
    assert backend.config_file.read_text() == config_before
    assert {path: backend.service[path] for path in values_before} == values_before


async def test_garbage_from_a_logged_in_browser_gets_4xx_never_500(client, backend):
    headers = await login(client)
    rng = random.Random(7)
    for n in range(300):
        method, url = rng.choice(WRITE_ROUTES[:-1])  # not the password: it rate-limits
        body = json.dumps(_garbage(rng)).encode() if n % 4 else bytes(
            rng.randrange(256) for _ in range(rng.randrange(40)))
        response = await client.request(method, url, data=body, headers={
            **headers, "Content-Type": "application/json"})
        assert response.status < 500, (url, body, await response.text())
        assert "error" in await response.json() or response.status == 200


def test_right_passwords_do_not_count_towards_the_overall_limit():
    limiter = LoginRateLimiter(SteppedClock(), per_client=5, overall=3)
    limiter.record_failure("owner")
    for _ in range(10):
        limiter.record_success("owner")
    limiter.record_failure("someone")
    assert not limiter.under_attack()
    assert limiter.retry_after_s("someone") == 0


# ---- the first password, from the web UI ---------------------------------------------------

async def test_the_first_password_is_set_from_the_web_ui_and_keeps_the_configs_comments(
        backend):
    text = "# my phaeton\n" + backend.config_file.read_text() + "# the end, kept\n"
    backend.config_file.write_text(text)
    client = await start_client(backend, password_hash=None)
    try:
        assert (await (await client.get("/api/session")).json())["password_set"] is False
        response = await client.post("/api/mode", json={"mode": 1})
        assert response.status == 403
        assert "set one on the login page" in (await response.json())["error"]
        response = await client.post("/api/password", json={"new_password": "short"})
        assert response.status == 422 and "8 characters" in (await response.json())["error"]
        response = await client.post("/api/password", json={"new_password": "first-one-9"},
                                     headers={"Origin": "http://evil.example"})
        assert response.status == 403                                   # not cross-site
        response = await client.post("/api/password", json={"new_password": "first-one-9"})
        assert response.status == 200, await response.text()
        assert (await response.json())["message"] == "password set; log in with it"
        saved = backend.config_file.read_text()
        assert saved.startswith("# my phaeton\n") and "# the end, kept" in saved
        assert verify_password("first-one-9", yaml.safe_load(saved)["web"]["password_hash"])
        # from now on it is the password: a second "first" password is refused
        response = await client.post("/api/password", json={"new_password": "second-one-9"})
        assert response.status == 401
        assert verify_password("first-one-9",
                               yaml.safe_load(backend.config_file.read_text())["web"]
                               ["password_hash"])
        response = await client.post("/api/login", json={"password": "first-one-9"})
        assert response.status == 200
    finally:
        await client.close()


async def test_an_unusable_stored_hash_is_not_a_free_first_password(backend):
    client = await start_client(backend, password_hash="md5:abc")
    try:
        before = backend.config_file.read_text()
        response = await client.post("/api/password", json={"new_password": "takeover-9"})
        assert response.status == 403
        assert backend.config_file.read_text() == before
    finally:
        await client.close()
