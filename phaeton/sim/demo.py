"""`phaeton demo`: a complete simulated GX with phaeton and its web UI, on a private bus.

Starts a private dbus-daemon (never the machine's system bus), velib's settings service, a
simulated `com.victronenergy.system` (a June day of PV, house load and an ESS battery that
carries out Dynamic ESS windows), an Alfen simulator (or with --ocpp an OCPP 1.6J charge point),
a car that plugs in, and phaeton in Scheduled mode (the energy plan against a day/night tariff,
solar surplus on top) with its web UI; prints the bus address, the URL, the web password and commands to poke it; stops cleanly
on Ctrl-C (or after --seconds), leaving no process or file behind.
"""
from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
from datetime import datetime, timezone

import yaml

from phaeton.app import Phaeton, setup_logging
from phaeton.config import load_config
from phaeton.logbuffer import LogBuffer
from phaeton.sim.world import SimWorld, free_tcp_port
from phaeton.web.passwords import hash_password

log = logging.getLogger("phaeton.demo")
SERVICE = "com.victronenergy.evcharger.phaeton_0"


def _banner(world: SimWorld, url: str, password: str, speed: float, ocpp: bool) -> str:
    bus = world.bus_address
    send = (f"DBUS_SYSTEM_BUS_ADDRESS='{bus}' dbus-send --system --print-reply "
            f"--dest={SERVICE}")
    charger = f"OCPP charge point -> {world.ocpp_url}" if ocpp else \
        f"Alfen simulator on Modbus TCP 127.0.0.1:{world.alfen_port}"
    return f"""
phaeton demo is running ({speed:g}x time)
  web UI       : {url}   (password for changes: {password})
  D-Bus        : {bus}
  charger      : {charger}
Try:
  {send} / com.victronenergy.BusItem.GetItems
  {send} /Mode com.victronenergy.BusItem.SetValue variant:int32:1      # Auto (solar only)
  {send} /StartStop com.victronenergy.BusItem.SetValue variant:string:0  # stop
  DBUS_SYSTEM_BUS_ADDRESS='{bus}' busctl --system tree {SERVICE}
Ctrl-C stops everything.
"""


DAY_PRICE, NIGHT_PRICE, EXPORT_PRICE = 0.40, 0.15, 0.08    # EUR/kWh of the demo's tariff
NIGHT = ("23:00", "06:00")


def demo_config(world: SimWorld, data_dir: str, web_port: int, password_hash: str) -> dict:
    """The config `phaeton demo` runs phaeton with (also used by the tests): a day/night
    tariff, the car to reach 80 % by 07:00, and the planner steering the home battery
    through Dynamic ESS, which the simulated GX carries out."""
    config = world.config_for_phaeton(data_dir)
    config["web"].update({"port": web_port, "password_hash": password_hash})
    config["control"] = {"auto": {"enable_delay_s": 60}}
    zone = local_tz_name()
    config["planner"].update({
        "strategy": "optimise", "ess_control": "dess_schedule",
        "site": {**config["planner"]["site"], "tz": zone},
        "tariff": {"type": "time_of_use", "time_of_use": {
            "tz": zone, "default_import_eur_per_kwh": DAY_PRICE,
            "default_export_eur_per_kwh": EXPORT_PRICE,
            "windows": [{"start": NIGHT[0], "end": NIGHT[1],
                         "import_eur_per_kwh": NIGHT_PRICE}]}}})
    config["planner"]["ev"].update({"departure_time": "07:00", "target_soc_pct": 80})
    return config


def local_tz_name() -> str:
    """The machine's zone (the simulated day runs in local wall time), e.g. Europe/Berlin."""
    offset = datetime.now(timezone.utc).astimezone().utcoffset()
    if offset is None or offset.total_seconds() == 0:
        return "UTC"
    link = os.path.realpath("/etc/localtime")
    return link.split("zoneinfo/", 1)[1] if "zoneinfo/" in link else "UTC"


async def run_demo(speed: float = 1.0, ocpp: bool = False, port: int = 8088,
                   seconds: float | None = None, ready=None) -> int:
    """Run until SIGINT/SIGTERM or `seconds`; `ready(world, app, url)` is called once up."""
    directory = tempfile.mkdtemp(prefix="phaeton-demo-")
    buffer = LogBuffer()
    try:
        async with SimWorld(speed=speed, charger="ocpp" if ocpp else "alfen") as world:
            password = secrets.token_urlsafe(9)
            config = demo_config(world, os.path.join(directory, "data"),
                                 port or free_tcp_port(), hash_password(password))
            config_path = os.path.join(directory, "config.yaml")
            with open(config_path, "w", encoding="utf-8") as f:
                yaml.safe_dump(config, f, sort_keys=False)
            app = Phaeton(load_config(config_path), config_path=config_path, clock=world.clock,
                          bus_address=world.bus_address, log_buffer=buffer)
            await app.start()
            try:
                if ocpp:
                    await world.start_charge_point()
                app.loadpoints[0].write("/Mode", 2)   # Scheduled: the plan, with solar on top
                await world.plug_in()
                url = f"http://127.0.0.1:{config['web']['port']}/"
                print(_banner(world, url, password, speed, ocpp), flush=True)
                if ready is not None:
                    await ready(world, app, url)
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                    loop.add_signal_handler(sig, stop.set)
                try:
                    await asyncio.wait_for(stop.wait(), seconds)
                except asyncio.TimeoutError:
                    pass
                finally:
                    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                        loop.remove_signal_handler(sig)
            finally:
                await app.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print("phaeton demo stopped", flush=True)
    return 0


def run_from_cli(args) -> int:
    buffer = LogBuffer()
    setup_logging("WARNING", buffer)
    return asyncio.run(run_demo(speed=args.speed, ocpp=args.ocpp, port=args.port,
                                seconds=getattr(args, "seconds", None)))


if __name__ == "__main__":
    sys.exit(run_from_cli(type("Args", (), {"speed": 60.0, "ocpp": False, "port": 0})()))
