"""Carbon accounting on the simulated GX: a `static` source, no PV, no home battery: the
session's co2_kg is its energy (all from the grid) x the factor, in the status while it runs
and in the store when it ends."""
from __future__ import annotations

import pytest

from scripted_gx import ScriptedGx

pytestmark = pytest.mark.slow

G_PER_KWH = 400.0


async def test_a_session_s_co2_is_its_grid_energy_times_the_static_factor(private_bus, tmp_path):
    async with ScriptedGx(private_bus, str(tmp_path),
                          carbon={"source": "static", "static": {"g_per_kwh": G_PER_KWH}}) as gx:
        app = await gx.start_phaeton()
        gx.alfen.plug_in()
        await gx.until(lambda: gx.alfen.applied_current_a == 16, 30, "charging")
        await gx.run_for(300)
        running = app.status()["session"]
        assert running["active"] and running["energy_kwh"] > 0.5
        assert running["co2_kg"] == pytest.approx(running["energy_kwh"] * G_PER_KWH / 1000,
                                                  abs=0.002)
        gx.alfen.plug_out()
        await gx.until(lambda: app.loadpoints[0].evcharger.service["/Status"] == 0, 10,
                       "Disconnected status")
        stored = app.session_store.list_sessions()
        assert len(stored) == 1
        assert stored[0].co2_kg == pytest.approx(stored[0].energy_kwh * G_PER_KWH / 1000,
                                                 rel=1e-9)
        assert app.status()["session"]["co2_kg"] == pytest.approx(stored[0].co2_kg, abs=0.001)


async def test_without_a_source_the_session_has_no_co2(private_bus, tmp_path):
    async with ScriptedGx(private_bus, str(tmp_path)) as gx:
        app = await gx.start_phaeton()
        gx.alfen.plug_in()
        await gx.until(lambda: gx.alfen.applied_current_a == 16, 30, "charging")
        await gx.run_for(60)
        assert app.status()["session"]["co2_kg"] is None
        assert not (tmp_path / "data" / "carbon_history.csv").exists()
