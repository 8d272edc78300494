"""Fixtures shared by the web tests: a real-parts backend and the app on a real test server."""
from __future__ import annotations

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from phaeton.clock import ScaledClock
from phaeton.web.app import create_web_app
from phaeton.web.passwords import hash_password
from tests.web_backend_for_tests import WebBackendForTests

PASSWORD = "correct horse battery"
PASSWORD_HASH = hash_password(PASSWORD)


@pytest.fixture
async def backend(private_bus, tmp_path):
    """A WebBackendForTests on the private bus, files in tmp_path."""
    made = await WebBackendForTests.create(tmp_path, bus_address=private_bus)
    yield made
    await made.close()


async def start_client(backend, **web_config) -> TestClient:
    """The web app for `backend` on a real 127.0.0.1 server (free port) and a client to it."""
    clock = web_config.pop("clock", None) or ScaledClock(1.0)
    config = {"password_hash": PASSWORD_HASH, **web_config}
    app = create_web_app(backend, config, clock=clock)
    client = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    return client


@pytest.fixture
async def client(backend):
    """A client of the app with the test password set."""
    made = await start_client(backend)
    yield made
    await made.close()


async def login(client) -> dict:
    """Log the client in; the headers a write then needs (the CSRF token)."""
    response = await client.post("/api/login", json={"password": PASSWORD})
    assert response.status == 200, await response.text()
    token = (await response.json())["csrf_token"]
    return {"X-CSRF-Token": token}


def client_at(address: str) -> aiohttp.ClientSession:
    """A real HTTP client whose connections come from `address` (any 127.x.y.z works on
    Linux): a second machine on the LAN, as the server sees it. Use with `client.make_url`."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)))


async def config_and_version(client) -> tuple[dict, str]:
    """GET /api/config: the config and the version a save must send back."""
    data = await (await client.get("/api/config")).json()
    return data["config"], data["version"]
