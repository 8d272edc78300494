"""Limits others cannot turn against the owner, and the headers of every response.

Real server on loopback, real HTTP clients; other machines on the LAN are clients whose
connections come from other loopback addresses (127.0.0.x).
"""
from __future__ import annotations

import asyncio
import json

import pytest

from phaeton.web.stream_limit import StreamLimit, TooManyStreams
from tests.web_fixtures import (PASSWORD, backend, client, client_at, login,  # noqa: F401
                                start_client)

# ---- item 9a: failed logins ----------------------------------------------------------------


async def test_wrong_guesses_from_many_addresses_do_not_lock_the_owner_out(client):
    guessers = [client_at(f"127.0.0.{10 + n}") for n in range(40)]
    try:
        statuses = [(await g.post(client.make_url("/api/login"),
                                  json={"password": f"guess {n}"})).status
                    for n, g in enumerate(guessers)]
        assert statuses == [401] * 40
        # the owner, at an address that has not been guessing, gets in at once
        async with client_at("127.0.0.2") as owner:
            response = await owner.post(client.make_url("/api/login"), json={"password": PASSWORD})
            assert response.status == 200, await response.text()
            response = await owner.post(client.make_url("/api/current"), json={"current_a": 8},
                                        headers={"Authorization": f"Bearer {PASSWORD}"})
            assert response.status == 200
        # while the guessing goes on, an address that guessed gets no second try ...
        response = await guessers[0].post(client.make_url("/api/login"),
                                          json={"password": "guess again"})
        assert response.status == 429
        assert "too many failed logins" in (await response.json())["error"]
        assert int(response.headers["Retry-After"]) > 0
        # ... and a new address gets one guess, then waits too
        async with client_at("127.0.0.60") as newcomer:
            url = client.make_url("/api/login")
            assert (await newcomer.post(url, json={"password": "one"})).status == 401
            assert (await newcomer.post(url, json={"password": "two"})).status == 429
    finally:
        for guesser in guessers:
            await guesser.close()


async def test_an_address_that_guessed_is_blocked_even_for_the_right_password(client):
    for _ in range(5):
        assert (await client.post("/api/login", json={"password": "guess"})).status == 401
    assert (await client.post("/api/login", json={"password": PASSWORD})).status == 429
    async with client_at("127.0.0.2") as owner:  # the owner elsewhere is not affected
        response = await owner.post(client.make_url("/api/login"), json={"password": PASSWORD})
        assert response.status == 200


# ---- item 9b: event streams per address ----------------------------------------------------

async def _next_event(response) -> tuple[str, dict]:
    event, data = None, None
    while True:
        raw = await asyncio.wait_for(response.content.readline(), 5)
        if not raw:
            raise EOFError("the stream ended")
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = json.loads(line[6:])
        elif line == "" and event:
            return event, data


async def _open_stream(session, client):
    response = await session.get(client.make_url("/api/events"))
    if response.status == 200:
        assert (await _next_event(response))[0] == "hello"
    return response


async def test_one_address_cannot_take_every_event_stream(client, backend):
    held = []
    try:
        for _ in range(4):
            response = await client.get("/api/events")
            assert response.status == 200
            assert (await _next_event(response))[0] == "hello"
            held.append(response)
        fifth = await client.get("/api/events")
        assert fifth.status == 429
        assert "at most 4 per address" in (await fifth.json())["error"]
        async with client_at("127.0.0.2") as owner:
            mine = await _open_stream(owner, client)
            assert mine.status == 200
            backend.publish(power={"pv_w": 321.0})
            event, status = await _next_event(mine)
            while event != "status" or status["power"]["pv_w"] != 321.0:
                event, status = await _next_event(mine)
            mine.close()
        held.pop().close()  # a tab closed: the address may open one again
        for _ in range(100):
            again = await client.get("/api/events")
            if again.status == 200:
                break
            again.close()
            backend.publish()  # a write to the closed stream ends it on the server
            await asyncio.sleep(0.02)
        assert again.status == 200
        held.append(again)
    finally:
        for response in held:
            response.close()


async def test_when_all_streams_are_taken_the_address_with_most_gives_one_up(backend):
    client = await start_client(backend, max_sse_clients=6)
    sessions = {name: client_at(address) for name, address in
                (("greedy", "127.0.0.3"), ("other", "127.0.0.4"), ("owner", "127.0.0.2"))}
    try:
        greedy = [await _open_stream(sessions["greedy"], client) for _ in range(4)]
        other = [await _open_stream(sessions["other"], client) for _ in range(2)]
        assert [r.status for r in greedy + other] == [200] * 6
        mine = await _open_stream(sessions["owner"], client)
        assert mine.status == 200  # the greedy address's oldest stream made room
        backend.publish()
        with pytest.raises(EOFError):
            while True:
                await _next_event(greedy[0])
        third = await _open_stream(sessions["other"], client)
        assert third.status == 503  # 3 streams vs its 2: no more giving up
        assert "too many live connections" in (await third.json())["error"]
        for response in greedy[1:] + other + [mine]:
            response.close()
    finally:
        for session in sessions.values():
            await session.close()
        await client.close()


def test_stream_limit_rule():
    limit = StreamLimit(per_client=2, total=3)
    a1, a2 = limit.open("a"), limit.open("a")
    with pytest.raises(TooManyStreams) as refused:
        limit.open("a")
    assert refused.value.status == 429
    b1 = limit.open("b")
    c1 = limit.open("c")  # full: "a" holds 2, "c" none -> a's oldest makes room
    assert a1.ended and not a2.ended and limit.count == 3
    with pytest.raises(TooManyStreams) as refused:
        limit.open("d")  # a, b and c hold one each: none holds two more than d
    assert refused.value.status == 503
    limit.close(b1)
    limit.close(b1)  # twice is harmless
    assert limit.open("d") and limit.count == 3
    limit.close(c1)
    limit.close(a2)
    assert limit.count == 1


# ---- items 9c and 9d: headers ----------------------------------------------------------------

async def test_event_stream_has_the_security_headers_and_no_server_version(client):
    response = await client.get("/api/events")
    try:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "same-origin"
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["Server"] == "phaeton"
    finally:
        response.close()


async def test_no_response_names_the_server_software_or_its_version(client):
    headers = await login(client)
    responses = [await client.get(url) for url in (
        "/", "/settings", "/static/app.css", "/api/status", "/api/openapi.json",
        "/api/nothing-here", "/static/nothing.css")]
    responses.append(await client.delete("/api/status"))  # 405
    responses.append(await client.post("/api/mode", json={"mode": 1}))  # 403: no CSRF token
    responses.append(await client.post("/api/mode", data=b"{", headers={
        **headers, "Content-Type": "application/json"}))  # 400
    stream = await client.get("/api/events")
    responses.append(stream)
    assert [r.status for r in responses] == [200, 200, 200, 200, 200, 404, 404, 405, 403, 400,
                                             200]
    for response in responses:
        assert response.headers["Server"] == "phaeton", response.url
        assert response.headers["X-Content-Type-Options"] == "nosniff", response.url
    stream.close()


async def test_a_request_aiohttp_cannot_parse_gets_no_version_either(client):
    """Raw bytes on a socket: no HTTP client sends a request line like this."""
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    await writer.drain()
    answer = (await asyncio.wait_for(reader.read(), 5)).decode("latin-1")
    writer.close()
    head = answer.split("\r\n\r\n", 1)[0]
    assert head.split(" ")[1] == "400", head
    server = [line for line in head.split("\r\n") if line.lower().startswith("server:")]
    assert server == ["Server: phaeton"], head
    assert "Python" not in answer and "aiohttp" not in answer
