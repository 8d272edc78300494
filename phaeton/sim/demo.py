"""`phaeton demo`: a complete simulated GX with phaeton and its web UI, on a private bus.

Starts a private dbus-daemon (never the machine's system bus), velib's settings service, a
simulated `com.victronenergy.system` (a June day of PV, house load and an ESS battery that
carries out Dynamic ESS windows), an Alfen simulator (or with --ocpp an OCPP 1.6J charge point),
a car that plugs in (and, when Debian's mosquitto is installed, tells its SoC over MQTT to a
private broker, as TeslaMate would: phaeton plans with it and stops at the target), and phaeton
in Scheduled mode (the energy plan against a day/night tariff, solar surplus on top) with its
web UI; prints the bus address, the URL, the web password and commands to poke it; stops cleanly
on Ctrl-C (or after --seconds), leaving no process or file behind.

`--chargers 2` runs an Alfen double station instead (one station, sockets 1 and 2, a car
each), `--chargers 3` adds the OCPP charge point with a third car: each is its own
`com.victronenergy.evcharger.phaeton_<id>` on the bus and its own card in the web UI, all in
a 20 A "garage" circuit below the 25 A main fuse (`SimWorld(chargers=...)`). The first socket
follows the plan (Scheduled), the others are plain wallboxes (Manual, the first-run default);
the cars come and go on `DEMO_SCRIPT`. `--chargers N` means N chargers, N services, N cards:
the double station's two sockets are two chargers, the charge point a third.
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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import yaml

from phaeton.app import Phaeton, setup_logging
from phaeton.config import load_config
from phaeton.logbuffer import LogBuffer
from phaeton.sim.car_mqtt import CarSocPublisher, DemoBroker, vehicle_config
from phaeton.sim.world import MAIN_FUSE_A, SimOutlet, SimWorld, free_tcp_port
from phaeton.web.passwords import hash_password

log = logging.getLogger("phaeton.demo")
SERVICE = "com.victronenergy.evcharger.phaeton_0"
SERVICE_PREFIX = "com.victronenergy.evcharger.phaeton_"


def services(world: SimWorld) -> list[str]:
    """The D-Bus name of every charger of the demo, in config order."""
    if world.chargers == 1:
        return [SERVICE]
    return [SERVICE_PREFIX + outlet.id for outlet in world.outlets]


def _outlet_text(world: SimWorld, outlet: SimOutlet) -> str:
    if outlet.kind == "ocpp":
        return f"OCPP charge point -> {world.ocpp_url}"
    socket = f", socket unit {outlet.unit}" if world.chargers > 1 else ""
    return f"Alfen simulator on Modbus TCP 127.0.0.1:{world.alfen_port}{socket}"


def _banner(world: SimWorld, url: str, password: str, speed: float, ocpp: bool) -> str:
    bus = world.bus_address
    names = services(world)
    send = (f"DBUS_SYSTEM_BUS_ADDRESS='{bus}' dbus-send --system --print-reply "
            f"--dest={names[0]}")
    if world.chargers == 1:
        chargers = f"  charger      : {_outlet_text(world, world.outlets[0])}\n"
    else:
        chargers = (f"  circuits     : main fuse {MAIN_FUSE_A:g} A > "
                    f"'garage' {world.garage_a:g} A (every charger below it)\n")
        chargers += "".join(
            f"  charger {index}    : {name} ({outlet.custom_name}): "
            f"{_outlet_text(world, outlet)}\n"
            for index, (name, outlet) in enumerate(zip(names, world.outlets), start=1))
    return f"""
phaeton demo is running ({speed:g}x time)
  web UI       : {url}   (password for changes: {password})
  D-Bus        : {bus}
{chargers}Try:
  {send} / com.victronenergy.BusItem.GetItems
  {send} /Mode com.victronenergy.BusItem.SetValue variant:int32:1      # Auto (solar only)
  {send} /StartStop com.victronenergy.BusItem.SetValue variant:string:0  # stop
  {send} /Vehicle/Soc com.victronenergy.BusItem.GetValue   # the car's own SoC
  DBUS_SYSTEM_BUS_ADDRESS='{bus}' busctl --system tree {names[0]}
Ctrl-C stops everything.
"""


DEMO_CAR_TOPIC = "demo/car/soc"


@dataclass(frozen=True)
class DemoEvent:
    """A car arriving or leaving, `at_s` simulated seconds after the demo starts."""

    at_s: float
    charger_id: str
    plugged_in: bool
    soc_drop_pct: float = 0.0      # a car back from a drive has this much less


# What the cars of a several-charger demo do on the simulated day (it starts at 08:00): the
# planned car is there from the start (like the one car of the one-charger demo), the others
# arrive within minutes; the second car goes for a drive at 10:00 and is back at 13:00 with
# 20 % less, the third leaves at 17:00. Events of a charger the demo does not have are skipped.
DEMO_SCRIPT: tuple[DemoEvent, ...] = (
    DemoEvent(0, "socket_1", True),
    DemoEvent(60, "socket_2", True),
    DemoEvent(120, "ocpp_1", True),
    DemoEvent(2 * 3600, "socket_2", False),
    DemoEvent(5 * 3600, "socket_2", True, soc_drop_pct=20.0),
    DemoEvent(9 * 3600, "ocpp_1", False),
)


async def run_script(world: SimWorld, events: Sequence[DemoEvent] = DEMO_SCRIPT,
                     start: float | None = None, online_timeout_s: float = 30.0) -> None:
    """Plug the cars in and out at their times on the world's clock, counted from `start`
    (`world.clock.monotonic()`; None: now); events of chargers the world lacks are skipped.
    An OCPP car waits (at most `online_timeout_s` real seconds) for its charge point to be
    online, so its transaction can start."""
    known = {outlet.id: outlet for outlet in world.outlets}
    start = world.clock.monotonic() if start is None else start
    for event in sorted(events, key=lambda e: e.at_s):
        outlet = known.get(event.charger_id)
        if outlet is None:
            continue
        wait_s = start + event.at_s - world.clock.monotonic()
        if wait_s > 0:
            await world.clock.sleep(wait_s)
        if outlet.kind == "ocpp" and world.charge_point is not None:
            try:
                await asyncio.wait_for(world.charge_point.online.wait(), online_timeout_s)
            except asyncio.TimeoutError:
                log.warning("the OCPP charge point is not online; its car plugs in anyway")
        if event.plugged_in:
            outlet.ev.soc_pct = max(0.0, outlet.ev.soc_pct - event.soc_drop_pct)
            await world.plug_in(outlet.id)
        else:
            await world.plug_out(outlet.id)
        log.info("demo: the car at %s %s", outlet.id,
                 "plugs in" if event.plugged_in else "leaves")


DAY_PRICE, NIGHT_PRICE, EXPORT_PRICE = 0.40, 0.15, 0.08    # EUR/kWh of the demo's tariff
NIGHT = ("23:00", "06:00")


def demo_config(world: SimWorld, data_dir: str, web_port: int, password_hash: str) -> dict:
    """The config `phaeton demo` runs phaeton with (also used by the tests): a day/night
    tariff, the car to reach 80 % by 07:00, and the planner steering the home battery
    through Dynamic ESS, which the simulated GX carries out. A world with several chargers
    gives a `chargers:` list below a `circuits:` garage (the plan is for the first car)."""
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
                   seconds: float | None = None, ready=None, chargers: int = 1,
                   log_buffer: LogBuffer | None = None) -> int:
    """Run until SIGINT/SIGTERM or `seconds`; `ready(world, app, url)` is called once up.
    `chargers` 2: an Alfen double station; 3: and an OCPP charge point (see the module).
    `log_buffer`: the handler the logging setup feeds (the web UI's Logs page shows it);
    without one, a buffer of its own is hooked to the root logger while the demo runs."""
    if chargers != 1 and ocpp:
        raise ValueError("--ocpp is the one-charger demo with an OCPP charger; --chargers 3 "
                         "has an OCPP charge point besides the Alfen double station")
    directory = tempfile.mkdtemp(prefix="phaeton-demo-")
    buffer = log_buffer if log_buffer is not None else LogBuffer()
    root = logging.getLogger()
    hooked = buffer not in root.handlers
    if hooked:
        buffer.setLevel(logging.INFO)
        root.addHandler(buffer)
    script: asyncio.Task | None = None
    # one charger: its car tells its SoC over MQTT (TeslaMate-like), when mosquitto is here
    broker = DemoBroker.start(directory) if chargers == 1 else None
    publisher: CarSocPublisher | None = None
    try:
        async with SimWorld(speed=speed, charger="ocpp" if ocpp else "alfen",
                            chargers=chargers) as world:
            password = secrets.token_urlsafe(9)
            config = demo_config(world, os.path.join(directory, "data"),
                                 port or free_tcp_port(), hash_password(password))
            if broker is not None:
                config["vehicles"] = [vehicle_config("demo_car", world.outlet().ev, broker.host,
                                                     broker.port, DEMO_CAR_TOPIC)]
            config_path = os.path.join(directory, "config.yaml")
            with open(config_path, "w", encoding="utf-8") as f:
                yaml.safe_dump(config, f, sort_keys=False)
            app = Phaeton(load_config(config_path), config_path=config_path, clock=world.clock,
                          bus_address=world.bus_address, log_buffer=buffer)
            await app.start()
            try:
                if world.ocpp_port is not None:
                    await world.start_charge_point()
                app.loadpoints[0].write("/Mode", 2)   # Scheduled: the plan, with solar on top
                if broker is not None:
                    publisher = CarSocPublisher(world.outlet().ev, broker.host, broker.port,
                                                DEMO_CAR_TOPIC, world.clock)
                    publisher.start()
                if chargers == 1:
                    await world.plug_in()
                else:
                    started = world.clock.monotonic()
                    await run_script(world, [e for e in DEMO_SCRIPT if e.at_s <= 0], started)
                    script = asyncio.create_task(run_script(
                        world, [e for e in DEMO_SCRIPT if e.at_s > 0], started),
                        name="demo-script")
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
                if script is not None:
                    await _end_task(script)
                if publisher is not None:
                    await publisher.stop()
                await app.stop()
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(directory, ignore_errors=True)
        if hooked:
            root.removeHandler(buffer)
    print("phaeton demo stopped", flush=True)
    return 0


async def _end_task(task: asyncio.Task, attempts: int = 50) -> None:
    """Cancel `task` and wait until it has ended. Cancelled again while it runs on: Python
    3.11's `asyncio.wait_for` swallows a cancellation that comes just as what it waits for
    finishes (the script waits for the OCPP charge point that way, and so does the `ocpp`
    library's every call), and the script would sleep on to its next event."""
    for _ in range(attempts):
        if task.done():
            break
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
    if not task.done():
        log.warning("the demo's script did not stop; leaving it")
    elif not task.cancelled() and task.exception() is not None:
        log.error("the demo's script failed: %r", task.exception())


def run_from_cli(args) -> int:
    buffer = LogBuffer()
    setup_logging("WARNING", buffer)
    chargers = getattr(args, "chargers", 1)
    if chargers != 1 and args.ocpp:
        print("phaeton demo: --ocpp runs one OCPP charger; --chargers 3 adds an OCPP charge "
              "point to the Alfen double station (use one or the other)", file=sys.stderr)
        return 2
    return asyncio.run(run_demo(speed=args.speed, ocpp=args.ocpp, port=args.port,
                                seconds=getattr(args, "seconds", None), chargers=chargers,
                                log_buffer=buffer))


if __name__ == "__main__":
    sys.exit(run_from_cli(type("Args", (), {"speed": 60.0, "ocpp": False, "port": 0,
                                            "chargers": 1})()))
