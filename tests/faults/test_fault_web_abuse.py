"""Web abuse against the web UI and REST API (real-parts backend, real server on loopback):
unauthenticated, forged and cross-site writes change nothing; /static/ never serves a file
outside it; a 10 MB body is refused (413) before it is read; one address cannot hold every
event stream; no response names the server's software versions; guesses from many addresses
do not lock the owner out. Every loop is bounded."""
from __future__ import annotations

import asyncio
import json

from tests.web_fixtures import PASSWORD, backend, client, login, start_client  # noqa: F401
from trials.web_abuse import LEAKS, TRAVERSALS, WRITES, client_from, raw_request

TEN_MB = 10 * 1024 * 1024
SENT_AT_MOST = 1024 * 1024           # of the 10 MB, before the answer must have come
STREAMS_TRIED = 51                   # one more than the server's 50 streams over all
SECURITY_HEADERS = ("X-Content-Type-Options", "X-Frame-Options", "Content-Security-Policy",
                    "Referrer-Policy")


def where(client) -> tuple[str, int]:
    return client.server.host, client.server.port


def state_of(backend) -> tuple:
    """Everything a write could change: the D-Bus values, the config file, recorded writes."""
    paths = ("/Mode", "/StartStop", "/SetCurrent", "/MaxCurrent", "/SetPhases", "/AutoStart")
    return ({p: backend.service[p] for p in paths}, backend.config_file.read_bytes(),
            list(backend.writes))


async def test_unauthenticated_forged_and_cross_site_writes_change_nothing(client, backend):
    before = state_of(backend)
    for method, url, body in WRITES:                          # no credentials at all
        response = await client.request(method, url, json=body)
        assert response.status in (401, 403), (url, response.status)
        response = await client.request(method, url, json=body,
                                        cookies={"phaeton_session": "forged"})
        assert response.status in (401, 403), (url, response.status)
    async with client_from("127.0.0.3") as other:            # a wrong Bearer password
        for method, url, body in WRITES:
            response = await other.request(method, client.make_url(url), json=body,
                                           headers={"Authorization": "Bearer guess"})
            assert response.status in (401, 429), (url, response.status)
    headers = await login(client)                             # logged in, but ...
    for method, url, body in WRITES:
        for extra in ({}, {"X-CSRF-Token": "forged"},         # ... no or a forged token
                      {**headers, "Origin": "http://evil.example"},      # ... cross-site
                      {**headers, "Origin": "null"},
                      {**headers, "Referer": "http://evil.example/page"}):
            response = await client.request(method, url, json=body, headers=extra)
            assert response.status == 403, (url, extra, response.status)
    assert state_of(backend) == before
    response = await client.post("/api/login", json={"password": PASSWORD})
    assert response.status == 200                             # the password is unchanged


async def test_static_files_never_come_from_outside_the_static_directory(client):
    host, port = where(client)
    assert (await raw_request(host, port, f"GET /static/app.css HTTP/1.1\nHost: {host}\n"
                                          f"Connection: close\n")).status == 200
    for path in TRAVERSALS:
        answer = await raw_request(host, port, f"GET {path} HTTP/1.1\nHost: {host}\n"
                                               f"Connection: close\n")
        assert answer.status in (400, 403, 404), (path, answer.status)
        text = answer.body.decode("utf-8", "replace")
        assert not any(leak in text for leak in LEAKS), (path, text[:200])


async def test_a_10_mb_body_is_refused_before_it_is_read(client):
    host, port = where(client)
    token = (await login(client))["X-CSRF-Token"]
    cookie = "; ".join(f"{c.key}={c.value}" for c in client.session.cookie_jar)
    part = b" " * (64 * 1024)
    parts = [b"{"] + [part] * (SENT_AT_MOST // len(part))
    logged_in = (f"Cookie: {cookie}\nX-CSRF-Token: {token}\nContent-Type: application/json\n")
    answer = await raw_request(host, port, f"POST /api/mode HTTP/1.1\nHost: {host}\n{logged_in}"
                                           f"Content-Length: {TEN_MB}\n", parts)
    assert answer.status == 413, answer
    assert "too large" in json.loads(answer.body)["error"]
    chunked = [b"%x\r\n%s\r\n" % (len(p), p) for p in parts]
    answer = await raw_request(host, port, f"POST /api/mode HTTP/1.1\nHost: {host}\n{logged_in}"
                                           f"Transfer-Encoding: chunked\n", chunked)
    assert answer.status == 413, answer
    answer = await raw_request(host, port, f"POST /api/mode HTTP/1.1\nHost: {host}\n"
                                           f"Content-Type: application/json\n"
                                           f"Content-Length: {TEN_MB}\n", parts)
    assert answer.status in (401, 413), answer                # not read, whichever comes first


async def test_one_address_cannot_hold_every_event_stream(backend):
    client = await start_client(backend)
    opened, refused = [], None
    try:
        async with client_from("127.0.0.1") as greedy, client_from("127.0.0.2") as owner:
            for _ in range(STREAMS_TRIED):
                response = await greedy.get(client.make_url("/api/events"))
                if response.status != 200:
                    refused = response.status
                    response.release()
                    break
                opened.append(response)
            assert refused in (429, 503), f"{len(opened)} streams from one address, none refused"
            assert len(opened) < STREAMS_TRIED - 1, "one address took every slot"
            stream = await owner.get(client.make_url("/api/events"))
            try:
                assert stream.status == 200                  # another address still gets one
                first = await asyncio.wait_for(stream.content.readline(), 10)
                assert first.startswith(b"retry:") or first.startswith(b"event:"), first
                missing = [h for h in SECURITY_HEADERS if h not in stream.headers]
                assert not missing, f"/api/events lacks {missing}"
                assert "aiohttp" not in stream.headers.get("Server", "").lower()
            finally:
                stream.close()
            for response in opened:
                response.close()
    finally:
        await client.close()


async def test_no_response_names_the_server_software_or_its_version(client):
    host, port = where(client)
    answers = []
    for path in ("/", "/api/status", "/api/nothing-here", "/static/app.css", "/static/nope"):
        answers.append((path, await raw_request(
            host, port, f"GET {path} HTTP/1.1\nHost: {host}\nConnection: close\n")))
    answers.append(("bad request line", await raw_request(host, port, "NONSENSE\n")))
    for what, answer in answers:
        server = answer.headers.get("server", "")
        assert "python" not in server.lower() and "aiohttp" not in server.lower(), (what, server)
        if what != "bad request line" and answer.status < 500:
            missing = [h for h in SECURITY_HEADERS if h.lower() not in answer.headers]
            assert not missing, (what, missing)


async def test_guesses_from_forty_addresses_do_not_lock_the_owner_out(client):
    async def guess(address: str) -> int:
        async with client_from(address) as guesser:
            response = await guesser.post(client.make_url("/api/login"),
                                          json={"password": f"guess from {address}"})
            return response.status

    statuses = await asyncio.gather(*(guess(f"127.0.0.{n}") for n in range(10, 50)))
    assert set(statuses) <= {401, 429}
    async with client_from("127.0.0.60") as owner:
        response = await owner.post(client.make_url("/api/login"), json={"password": PASSWORD})
        assert response.status == 200, await response.text()
    async with client_from("127.0.0.61") as one:              # one address guessing on ...
        statuses = [(await one.post(client.make_url("/api/login"),
                                    json={"password": f"guess {n}"})).status for n in range(8)]
    assert statuses[-1] == 429, statuses                      # ... is throttled
