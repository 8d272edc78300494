"""`phaeton demo` runs headless: the charger appears on its private bus, the web UI answers,
and it stops leaving no dbus-daemon or temporary directory behind."""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import aiohttp

from dbus_clients import run
from phaeton.sim.demo import SERVICE, run_demo


def _daemons_for(bus_address: str) -> list[str]:
    """dbus-daemon processes serving this bus (its config lives in the bus's directory)."""
    directory = bus_address.split("path=", 1)[1].split(",", 1)[0].rsplit("/", 1)[0]
    out = subprocess.run(["pgrep", "-f", directory], capture_output=True, text=True).stdout
    return out.split()


async def test_demo_serves_dbus_and_web_then_cleans_up(monkeypatch):
    # The demo's temporary directories go into a directory of this test's own: another demo
    # running on the machine (a developer's, another test's) must not change what it sees.
    # (A short path: a unix socket path must stay under 108 bytes.)
    own = tempfile.mkdtemp(prefix="pdt-")
    monkeypatch.setattr(tempfile, "tempdir", own)
    try:
        await _demo_serves_dbus_and_web_then_cleans_up(monkeypatch, own)
    finally:
        shutil.rmtree(own, ignore_errors=True)


async def _demo_serves_dbus_and_web_then_cleans_up(monkeypatch, own: str) -> None:
    seen = {}

    async def ready(world, app, url):
        env_address = world.bus_address
        seen["bus"] = env_address
        seen["daemons_while_running"] = _daemons_for(env_address)
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", env_address)
        code, out, err = await run("dbus-send", "--system", "--print-reply", f"--dest={SERVICE}",
                                   "/ProductName", "com.victronenergy.BusItem.GetValue")
        seen["product"] = out
        code, out, err = await run("dbus-send", "--system", "--print-reply", f"--dest={SERVICE}",
                                   "/Mode", "com.victronenergy.BusItem.GetValue")
        seen["mode"] = out
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "api/status") as response:
                seen["http"] = response.status
                seen["status"] = await response.json()
            async with session.get(url) as response:
                seen["page"] = response.status

    assert await run_demo(speed=30, port=0, seconds=3, ready=ready) == 0
    assert "EV Charging Station" in seen["product"]
    assert "int32 2" in seen["mode"]                 # the demo follows the energy plan
    assert seen["http"] == 200 and seen["page"] == 200
    assert "mode" in seen["status"]
    assert len(seen["daemons_while_running"]) == 1
    assert _daemons_for(seen["bus"]) == []
    assert seen["bus"].split("path=", 1)[1].startswith(own)   # it did use ours
    assert os.listdir(own) == []


def test_demo_command_line_runs_and_stops():
    result = subprocess.run([sys.executable, "-m", "phaeton", "demo", "--speed", "30",
                             "--port", "0", "--seconds", "3"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "web UI" in result.stdout and "dbus-send" in result.stdout
    assert "phaeton demo stopped" in result.stdout


def test_ctrl_c_in_the_terminal_stops_the_demo_cleanly():
    """A terminal's Ctrl-C goes to the whole foreground process group: the demo must still shut
    down over its bus (the bus daemon stays up until phaeton is done) and leave nothing."""
    import re
    import signal
    import time

    process = subprocess.Popen([sys.executable, "-m", "phaeton", "demo", "--speed", "30",
                                "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)   # its own group, a terminal
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if "Ctrl-C stops everything" in line or not line:
                break
        address = re.search(r"D-Bus\s+: (\S+)", "".join(lines)).group(1)
        assert len(_daemons_for(address)) == 1
        time.sleep(2)
        os.killpg(process.pid, signal.SIGINT)                      # Ctrl-C
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0, err
    assert "phaeton demo stopped" in out
    assert "Traceback" not in err and "failed" not in err, err
    assert _daemons_for(address) == []


async def test_the_logs_page_of_phaeton_demo_shows_the_demos_log_lines():
    """`phaeton demo` as an owner starts it: the web UI's Logs API has the service's INFO lines
    (the console shows warnings only)."""
    from phaeton.sim.world import free_tcp_port
    port = free_tcp_port()
    own = tempfile.mkdtemp(prefix="pdl-")     # short: the bus socket path must fit 108 bytes
    env = dict(os.environ, TMPDIR=own)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "phaeton", "demo", "--speed", "60", "--port", str(port),
        "--seconds", "60", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env=env)
    try:
        async def banner() -> None:
            while b"web UI" not in await process.stdout.readline():
                assert process.returncode is None, "the demo ended before it was up"
        await asyncio.wait_for(banner(), 60)
        messages: list[str] = []
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                async with session.get(f"http://127.0.0.1:{port}/api/logs",
                                       params={"level": "INFO"}) as response:
                    assert response.status == 200
                    records = (await response.json())["records"]
                messages = [r["message"] for r in records if r["logger"].startswith("phaeton")]
                if any("planner: new" in m for m in messages):
                    break
                await asyncio.sleep(0.1)
        assert any("planner: new" in m for m in messages), messages
        assert {r["level"] for r in records} >= {"INFO"}
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            await asyncio.wait_for(process.wait(), 30)
        shutil.rmtree(own, ignore_errors=True)
