"""The web API in front of the real service with two chargers (no test double): phaeton with two
Alfen stations (two Modbus simulators on loopback) on a scripted GX on a private bus, its web
app on a real server. A write to /api/chargers/<id>/... reaches that charger's own D-Bus
service and no other, and a finished session names the charger it was on."""
from __future__ import annotations

import os

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from dbus_clients import dbus_send
from scripted_gx import ScriptedGx
from phaeton.sim.alfen import AlfenSimulator
from phaeton.sim.ev import SimulatedEV
from phaeton.web.app import create_web_app
from tests.web_fixtures import PASSWORD, PASSWORD_HASH

NAMES = {"left": "com.victronenergy.evcharger.phaeton_left",
         "right": "com.victronenergy.evcharger.phaeton_right"}
BEARER = {"Authorization": f"Bearer {PASSWORD}"}


class TwoStationGx(ScriptedGx):
    """The scripted GX with a second Alfen station; the grid carries both cars."""

    def __init__(self, bus_address: str, directory: str):
        super().__init__(bus_address, directory)
        self.ev2 = SimulatedEV(capacity_kwh=60, soc_pct=30)
        self.alfen2 = AlfenSimulator(clock=self.clock, ev=self.ev2, safe_current_a=6.0)

    def ev_power_w(self) -> tuple[float, float, float]:
        return tuple(230.0 * (a + b) for a, b in zip(self.alfen.phase_currents_a(),
                                                     self.alfen2.phase_currents_a()))

    async def __aenter__(self):
        await self.alfen2.start()
        return await super().__aenter__()

    async def __aexit__(self, *exc):
        await super().__aexit__(*exc)
        await self.alfen2.close()

    def config_path(self) -> str:
        station = {"min_current_a": 6, "max_current_a": 16, "phases": 3, "safe_current_a": 0,
                   "protocol": "alfen"}
        config = {
            "data_dir": os.path.join(self.directory, "data"),
            "site": {"fuse_a": 40, "phases": 3},
            "chargers": [
                {"id": "left", **station, "alfen": {"host": "127.0.0.1", "port": self.alfen.port}},
                {"id": "right", **station, "custom_name": "Right",
                 "alfen": {"host": "127.0.0.1", "port": self.alfen2.port}},
            ],
            "control": {"tick_s": 2, "stale_after_s": 30, "phase_switching": {"enabled": False}},
            "web": {"enabled": False},
        }
        path = os.path.join(self.directory, "config.yaml")
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(config, f)
        return path


@pytest.fixture
async def gx(private_bus, tmp_path):
    async with TwoStationGx(private_bus, str(tmp_path)) as world:
        yield world


async def get_value(name: str, path: str) -> str:
    return (await dbus_send(name, path, "GetValue")).strip()


async def test_writes_by_id_reach_only_that_chargers_service_and_sessions_name_it(gx):
    app = await gx.start_phaeton()
    client = TestClient(TestServer(create_web_app(app, {"password_hash": PASSWORD_HASH},
                                                  clock=gx.clock), host="127.0.0.1", port=0))
    await client.start_server()
    try:
        data = await (await client.get("/api/chargers")).json()
        assert data["ids"] == ["left", "right"]
        assert [c["id"] for c in data["chargers"]] == ["left", "right"]
        assert data["chargers"][1]["charger"]["name"] == "Right"

        response = await client.post("/api/chargers/right/mode", json={"mode": "scheduled"},
                                     headers=BEARER)
        assert response.status == 200, await response.text()
        assert "int32 2" in await get_value(NAMES["right"], "/Mode")
        assert "int32 0" in await get_value(NAMES["left"], "/Mode")
        response = await client.post("/api/chargers/right/current", json={"current_a": 9},
                                     headers=BEARER)
        assert response.status == 200
        assert app.loadpoint("right").choices.set_current_a == 9.0
        assert app.loadpoint("left").choices.set_current_a == 16.0
        # below the charger's minimum a car does not charge: refused, and the text says 0 pauses
        response = await client.post("/api/chargers/right/current", json={"current_a": 3},
                                     headers=BEARER)
        assert response.status == 422
        assert "current_a = 3 refused: allowed is 0 (pause) or 6..16 A" in \
            (await response.json())["error"]
        assert app.loadpoint("right").choices.set_current_a == 9.0
        await gx.until(lambda: app.status()["chargers"][1]["set_current_a"] == 9.0, 10,
                       "the status of the right charger")
        status = await (await client.get("/api/chargers/right/status")).json()
        assert (status["mode"], status["set_current_a"]) == (2, 9.0)
        assert (await (await client.get("/api/status")).json())["mode"] == 0  # the left's

        response = await client.post("/api/mode", json={"mode": "auto"}, headers=BEARER)
        assert response.status == 200
        assert "int32 1" in await get_value(NAMES["left"], "/Mode")
        assert "int32 2" in await get_value(NAMES["right"], "/Mode")

        response = await client.post("/api/chargers/carport/mode", json={"mode": 1},
                                     headers=BEARER)
        assert response.status == 404
        assert (await response.json())["charger_ids"] == ["left", "right"]
        response = await client.post("/api/chargers/right/mode", json={"mode": 1})
        assert response.status == 401
        assert "int32 2" in await get_value(NAMES["right"], "/Mode")

        # a session on the right charger (Manual, started): plug in, charge, unplug
        response = await client.post("/api/chargers/right/mode", json={"mode": "manual"},
                                     headers=BEARER)
        assert response.status == 200
        gx.alfen2.plug_in()
        await gx.until(lambda: gx.alfen2.applied_current_a >= 6, 60, "the right car charging")
        await gx.run_for(60)
        gx.alfen2.plug_out()
        await gx.until(lambda: app.session_store.totals().count == 1, 60, "the session saved")
        data = await (await client.get("/api/sessions")).json()
        assert [s["charger_id"] for s in data["sessions"]] == ["right"]
        assert data["sessions"][0]["energy_kwh"] > 0
        data = await (await client.get("/api/sessions", params={"charger_id": "left"})).json()
        assert data["sessions"] == []
    finally:
        await client.close()
        await gx.stop_phaeton()
