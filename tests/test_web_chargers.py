"""Several chargers in the REST API: /api/chargers, writes by charger id, sessions by charger.

Real parts: the aiohttp app on a real server, a backend with one real `VeDbusService` per
charger on a private dbus-daemon (tests/web_backend_for_tests.py) and a SQLite SessionStore.
"""
from __future__ import annotations

import csv
import io

import pytest

from phaeton.store.sessions import ChargingSession
from tests.web_backend_for_tests import STATUS_OF_PATH, WebBackendForTests
from tests.web_fixtures import PASSWORD, backend, client, login, start_client  # noqa: F401

IDS = ["0", "garage_left"]
SECOND = "garage_left"


@pytest.fixture
async def backend2(private_bus, tmp_path):
    """Two chargers: "0" (the single-charger API's) and "garage_left"."""
    made = await WebBackendForTests.create(tmp_path, bus_address=private_bus, chargers=IDS)
    yield made
    await made.close()


@pytest.fixture
async def client2(backend2):
    made = await start_client(backend2)
    yield made
    await made.close()


def values(service) -> dict:
    return {path: service[path] for path in STATUS_OF_PATH}


# ---- reading -------------------------------------------------------------------------------

async def test_chargers_lists_ids_and_each_status(client2, backend2):
    data = await (await client2.get("/api/chargers")).json()
    assert data["ids"] == IDS
    assert [c["id"] for c in data["chargers"]] == IDS
    first, second = data["chargers"]
    assert (first["mode"], first["phases"], first["ev_w"]) == (0, 3, 11040.0)
    assert (second["mode"], second["phases"], second["ev_w"]) == (1, 1, 3680.0)
    assert second["reason"] == "auto: 3.7 kW of solar surplus"
    status = await (await client2.get("/api/status")).json()
    assert status["mode"] == 0 and status["reason"] == "manual: 16 A requested"  # the first's
    assert status["power"]["ev_w"] == 11040.0 + 3680.0                         # the sum
    assert status["chargers"] == data["chargers"]


async def test_one_chargers_status_by_id(client2):
    response = await client2.get(f"/api/chargers/{SECOND}/status")
    assert response.status == 200
    data = await response.json()
    assert data["id"] == SECOND and data["mode"] == 1 and data["status_text"] == "Charging"
    assert (await (await client2.get("/api/chargers/0/status")).json())["mode"] == 0


async def test_unknown_charger_is_a_json_404_naming_the_chargers(client2, backend2):
    response = await client2.get("/api/chargers/carport/status")
    assert response.status == 404
    data = await response.json()
    assert data["error"] == "no charger with id 'carport'; the chargers are '0', 'garage_left'"
    assert data["charger_ids"] == IDS
    headers = await login(client2)
    response = await client2.post("/api/chargers/carport/mode", json={"mode": 1},
                                  headers=headers)
    assert response.status == 404
    assert "no charger with id 'carport'" in (await response.json())["error"]
    response = await client2.post("/api/chargers/carport/current", data=b"{not json",
                                  headers={**headers, "Content-Type": "application/json"})
    assert response.status == 404  # the id is checked before the body
    assert backend2.writes == []


async def test_a_single_charger_is_charger_0(client, backend):
    data = await (await client.get("/api/chargers")).json()
    assert data["ids"] == ["0"] and len(data["chargers"]) == 1
    headers = await login(client)
    response = await client.post("/api/chargers/0/mode", json={"mode": "auto"}, headers=headers)
    assert response.status == 200, await response.text()
    assert await response.json() == {"ok": True, "path": "/Mode", "value": 1, "charger_id": "0"}
    assert backend.service["/Mode"] == 1
    assert (await (await client.get("/api/status")).json())["mode"] == 1


# ---- writes --------------------------------------------------------------------------------

@pytest.mark.parametrize("control, body, path, expected", [
    ("mode", {"mode": "scheduled"}, "/Mode", 2),
    ("startstop", {"start_stop": "stop"}, "/StartStop", 0),
    ("current", {"current_a": 10.5}, "/SetCurrent", 10.5),
    ("max_current", {"max_current_a": 13}, "/MaxCurrent", 13.0),
    ("phases", {"phases": 3}, "/SetPhases", 3),
    ("autostart", {"auto_start": 0}, "/AutoStart", 0),
])
async def test_a_write_to_the_second_charger_changes_only_the_second(client2, backend2, control,
                                                                     body, path, expected):
    first_before = values(backend2.services["0"])
    second_before = values(backend2.services[SECOND])
    headers = await login(client2)
    response = await client2.post(f"/api/chargers/{SECOND}/{control}", json=body,
                                  headers=headers)
    assert response.status == 200, await response.text()
    assert (await response.json())["charger_id"] == SECOND
    assert backend2.services[SECOND][path] == expected
    assert values(backend2.services[SECOND]) == {**second_before, path: expected}
    assert values(backend2.services["0"]) == first_before
    assert [w[0] for w in backend2.charger_writes] == [SECOND]
    status = await (await client2.get("/api/status")).json()
    key = STATUS_OF_PATH[path]
    assert status["chargers"][1][key] == expected
    assert status[key] == status["chargers"][0][key] == first_before[path]


async def test_the_single_charger_endpoints_act_on_the_first(client2, backend2):
    headers = await login(client2)
    response = await client2.post("/api/mode", json={"mode": "scheduled"}, headers=headers)
    assert response.status == 200
    assert await response.json() == {"ok": True, "path": "/Mode", "value": 2}  # as before
    assert backend2.services["0"]["/Mode"] == 2
    assert backend2.services[SECOND]["/Mode"] == 1


async def test_a_refused_value_names_the_second_chargers_range(client2, backend2):
    headers = await login(client2)
    response = await client2.post(f"/api/chargers/{SECOND}/current", json={"current_a": 40},
                                  headers=headers)
    assert response.status == 422
    data = await response.json()
    assert "current_a = 40 refused: allowed is 0 (pause) or 6..16 A" in data["error"]
    assert data["charger_id"] == SECOND and data["path"] == "/SetCurrent"
    response = await client2.post(f"/api/chargers/{SECOND}/phases", json={"phases": 2},
                                  headers=headers)
    assert response.status == 422 and "allowed is 1 or 3" in (await response.json())["error"]
    assert values(backend2.services[SECOND])["/SetPhases"] == 1


async def test_writes_by_id_need_a_login_like_every_write(client2, backend2):
    before = {cid: values(svc) for cid, svc in backend2.services.items()}
    url = f"/api/chargers/{SECOND}/mode"
    response = await client2.post(url, json={"mode": 2})
    assert response.status == 401 and "log in" in (await response.json())["error"]
    response = await client2.post("/api/chargers/carport/mode", json={"mode": 2})
    assert response.status == 401  # the login first: nothing about ids without one
    response = await client2.post(url, json={"mode": 2},
                                  headers={"Authorization": "Bearer wrong-password"})
    assert response.status == 401
    headers = await login(client2)
    response = await client2.post(url, json={"mode": 2})
    assert response.status == 403 and "X-CSRF-Token" in (await response.json())["error"]
    response = await client2.post(url, json={"mode": 2},
                                  headers={**headers, "Origin": "http://evil.example"})
    assert response.status == 403 and "cross-site" in (await response.json())["error"]
    assert {cid: values(svc) for cid, svc in backend2.services.items()} == before
    assert backend2.writes == []
    response = await client2.post(url, json={"mode": 2},
                                  headers={"Authorization": f"Bearer {PASSWORD}"})
    assert response.status == 200
    assert backend2.services[SECOND]["/Mode"] == 2


async def test_without_a_password_writes_by_id_are_refused(backend2):
    client = await start_client(backend2, password_hash=None)
    try:
        response = await client.post(f"/api/chargers/{SECOND}/startstop",
                                     json={"start_stop": 0})
        assert response.status == 403
        assert "no web password is set" in (await response.json())["error"]
    finally:
        await client.close()
    assert backend2.services[SECOND]["/StartStop"] == 1


async def test_the_openapi_document_has_the_charger_routes(client2):
    doc = await (await client2.get("/api/openapi.json")).json()
    assert "404" in doc["paths"]["/api/chargers/{charger_id}/mode"]["post"]["responses"]
    assert doc["paths"]["/api/chargers/{charger_id}/status"]["get"]["parameters"][0][
        "name"] == "charger_id"
    assert any(p["name"] == "charger_id"
               for p in doc["paths"]["/api/sessions"]["get"]["parameters"])


# ---- sessions ------------------------------------------------------------------------------

def _add_sessions(store) -> None:
    for day, (charger, energy) in enumerate([("0", 10.0), (SECOND, 4.0), ("0", 20.0),
                                             (SECOND, 6.0)]):
        start = 1_700_000_000 + day * 86400
        store.add(ChargingSession(start_s=start, end_s=start + 3600, energy_kwh=energy,
                                  duration_s=3600, peak_w=7000, cost=1.0, currency="EUR",
                                  solar_share=0.5, loadpoint=charger))


async def test_each_session_names_its_charger_and_the_list_filters_by_charger(client2,
                                                                            backend2):
    _add_sessions(backend2.store)
    data = await (await client2.get("/api/sessions")).json()
    assert [(s["charger_id"], s["energy_kwh"]) for s in data["sessions"]] == [
        (SECOND, 6.0), ("0", 20.0), (SECOND, 4.0), ("0", 10.0)]
    assert data["totals"]["energy_kwh"] == 40.0
    data = await (await client2.get("/api/sessions", params={"charger_id": SECOND})).json()
    assert [(s["charger_id"], s["energy_kwh"]) for s in data["sessions"]] == [
        (SECOND, 6.0), (SECOND, 4.0)]
    assert data["totals"]["count"] == 2 and data["totals"]["energy_kwh"] == 10.0
    data = await (await client2.get("/api/sessions", params={"charger_id": "removed"})).json()
    assert data["sessions"] == [] and data["totals"]["count"] == 0
    response = await client2.get("/api/sessions", params={"charger_id": "x" * 101})
    assert response.status == 400 and "too long" in (await response.json())["error"]


async def test_the_csv_names_each_sessions_charger(client2, backend2):
    _add_sessions(backend2.store)
    text = await (await client2.get("/api/sessions.csv")).text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert text.startswith("id,start_utc") and text.split("\n")[0].endswith(",charger_id")
    assert [(r["charger_id"], float(r["energy_kwh"])) for r in rows] == [
        ("0", 10.0), (SECOND, 4.0), ("0", 20.0), (SECOND, 6.0)]
    text = await (await client2.get("/api/sessions.csv", params={"charger_id": "0"})).text()
    assert [r["charger_id"] for r in csv.DictReader(io.StringIO(text))] == ["0", "0"]


async def test_garbage_to_the_charger_routes_never_crashes_or_writes_without_login(client2,
                                                                                  backend2):
    import json
    import random
    rng = random.Random(11)
    urls = [f"/api/chargers/{cid}/{control}" for cid in IDS + ["nope", "%2e%2e", "0%00"]
            for control in ("mode", "startstop", "current", "max_current", "phases",
                            "autostart")]
    bodies = [b"", b"{", b"[]", b'{"mode": 1}', b'{"current_a": 1e999}', b'{"phases": "x"}',
              json.dumps({"start_stop": [1]}).encode(), bytes(range(256))]
    before = {cid: values(svc) for cid, svc in backend2.services.items()}
    for _ in range(150):
        response = await client2.post(rng.choice(urls), data=rng.choice(bodies),
                                      headers={"Content-Type": "application/json"})
        assert response.status in (401, 403), await response.text()
    assert {cid: values(svc) for cid, svc in backend2.services.items()} == before
    headers = {**await login(client2), "Content-Type": "application/json"}
    for _ in range(150):
        response = await client2.post(rng.choice(urls), data=rng.choice(bodies),
                                      headers=headers)
        assert response.status < 500, await response.text()
        assert "error" in await response.json() or response.status == 200
