"""The web UI's port is open from start-up, its stack loaded at the first visit (issue 14).

`phaeton run` runs as a GX runs it (its own process, a simulated GX on a private bus). What the
process has loaded is read from `/proc/<pid>/maps`: aiohttp's compiled HTTP parser is mapped
once aiohttp is imported, so its absence says the web stack was never loaded."""
from __future__ import annotations

import asyncio
import os
import socket
import sys
import urllib.request

import pytest
import yaml
from dbus_next import Message
from dbus_next.aio import MessageBus

from phaeton.sim.world import SimWorld

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAME = "com.victronenergy.evcharger.phaeton_0"


def _aiohttp_mapped(pid: int) -> bool:
    with open(f"/proc/{pid}/maps") as f:
        return any("/aiohttp/" in line for line in f)


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=60) as reply:
        return reply.status, reply.read().decode("utf-8", "replace")


async def _start_service(world: SimWorld, tmp_path, *, web_port: int | None = None):
    config = world.config_for_phaeton(str(tmp_path / "data"))
    if web_port is not None:
        config["web"]["port"] = web_port
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=world.bus_address)
    log = open(tmp_path / "phaeton.log", "wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "phaeton", "run", "--config", str(path), env=env, cwd=ROOT,
        stdout=log, stderr=log)
    log.close()
    return process, config


async def _wait_for_log(tmp_path, text: str, process, timeout_s: float = 60.0) -> str:
    for _ in range(int(timeout_s / 0.05)):
        content = (tmp_path / "phaeton.log").read_text(errors="replace")
        if text in content:
            return content
        if process.returncode is not None:
            raise AssertionError(f"phaeton ended (exit {process.returncode}):\n{content}")
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} not logged within {timeout_s} s:\n{content}")


async def _stop(process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 30)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()


@pytest.mark.asyncio
async def test_the_web_stack_is_loaded_at_the_first_visit_and_that_visit_is_served(tmp_path):
    async with SimWorld(speed=60.0) as world:
        process, config = await _start_service(world, tmp_path)
        try:
            await _wait_for_log(tmp_path, "web UI on http://", process)
            await _wait_for_log(tmp_path, "phaeton running as", process)
            await asyncio.sleep(1.0)            # a few control ticks: still nobody visited
            assert not _aiohttp_mapped(process.pid), "aiohttp loaded although nobody visited"

            url = f"http://127.0.0.1:{config['web']['port']}"
            status, body = await asyncio.to_thread(_get, url + "/")
            assert status == 200 and "phaeton" in body.lower()
            assert _aiohttp_mapped(process.pid)
            status, body = await asyncio.to_thread(_get, url + "/api/status")
            assert status == 200 and '"mode"' in body
            await _wait_for_log(tmp_path, "web UI loaded at its first visit", process)
        finally:
            await _stop(process)
        assert process.returncode == 0
        # after the stop the port is free again
        with socket.create_server(("127.0.0.1", config["web"]["port"])):
            pass


@pytest.mark.asyncio
async def test_a_web_port_in_use_is_reported_at_start_and_the_charger_still_runs(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        async with SimWorld(speed=60.0) as world:
            process, _config = await _start_service(world, tmp_path, web_port=port)
            try:
                log = await _wait_for_log(tmp_path, "web UI could not listen on", process)
                assert f"127.0.0.1:{port}" in log
                await _wait_for_log(tmp_path, "phaeton running as", process)
                bus = await MessageBus(bus_address=world.bus_address).connect()
                try:
                    reply = await bus.call(Message(
                        destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                        interface="org.freedesktop.DBus", member="NameHasOwner",
                        signature="s", body=[NAME]))
                    assert reply.body == [True]
                finally:
                    bus.disconnect()
            finally:
                await _stop(process)
