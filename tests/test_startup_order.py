"""The service's start-up order (issue 14): each charger's D-Bus name is owned before its driver
starts, so the name waits neither for the station nor for the protocol library the driver loads
with its first connection; the station's identity follows on the bus once it has answered.
Real parts: a private bus, the settings service, a GX system service, the Alfen simulator."""
from __future__ import annotations

from dbus_clients import name_has_owner
from phaeton.app import Phaeton
from phaeton.config import load_config
from scripted_gx import ScriptedGx


async def test_the_name_is_owned_before_the_driver_starts_then_the_identity_follows(
        private_bus, tmp_path):
    async with ScriptedGx(private_bus, str(tmp_path)) as gx:
        path = gx.config_path()
        app = Phaeton(load_config(path), config_path=path, clock=gx.clock)
        loadpoint = app.loadpoints[0]
        seen_when_the_driver_started: list[tuple[bool, int]] = []
        start_driver = loadpoint.charger.start

        async def start_and_look() -> None:
            seen_when_the_driver_started.append(
                (await name_has_owner(loadpoint.evcharger.name), gx.alfen.connection_count))
            await start_driver()

        loadpoint.charger.start = start_and_look
        try:
            await app.start()
            # the name was there before the driver's first connection
            assert seen_when_the_driver_started == [(True, 0)]
            await gx.until(lambda: loadpoint.evcharger.service["/Serial"] == gx.alfen.serial,
                           60, "the station's serial on the bus")
            assert loadpoint.evcharger.service["/Connected"] == 1
        finally:
            await app.stop()
