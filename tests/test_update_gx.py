"""Self-update on a GX-like prefix under Debian's real daemontools, against a simulated GX on a
private D-Bus, from a local release server (aiohttp on 127.0.0.1) that answers like GitHub's
releases API and serves releases built by scripts/build_release.sh --without-dependencies
(--version V) and signed with the openssl command line.

One life, in order: installed 0.1.0 -> offline (nothing changes) -> channels -> a corrupt
download, a bad signature, no key (nothing changes) -> a good update to 0.2.0 started from the
web UI (a detached apply that outlives the service's restart) -> rollback -> 0.2.1, which
crashes at start (rolled back by itself) -> an apply that died half-way (put back by the boot
line, and by `phaeton update recover`).
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
import yaml

from phaeton.sim.world import SimWorld, free_tcp_port
from phaeton.update.pending import Pending, write_pending
from tests.gx_helpers import (REPO, Supervisor, build_bundle, charger_connected, installer_env,
                              make_gx, point_config_at, process_version,
                              run_installer, unpack, until)
from tests.release_server import ReleaseServer
from tests.test_update_ed25519 import openssl_key, openssl_sign

pytestmark = [
    pytest.mark.skipif(shutil.which("svscan") is None,
                       reason="daemontools is not installed (./dev/test installs it)"),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed"),
]

CRASHING_RUN = '''

def run_from_cli(args) -> int:   # a broken release for tests/test_update_gx.py
    raise SystemExit("phaeton: this test release crashes at start on purpose")
'''


@pytest.fixture(scope="module")
def releases(tmp_path_factory) -> dict:
    """The releases, built once: 0.1.0 (installed first), 0.2.0 (good), 0.2.1 (its `phaeton
    run` exits at once), signed with `key`; `stranger` is another key."""
    out = tmp_path_factory.mktemp("releases")
    made = {version: build_bundle(out, version=version) for version in ("0.1.0", "0.2.0")}
    source = out / "crashing-source"
    source.mkdir()
    for part in ("install.sh", "config.yaml", "service", "docs", "README.md", "setup.py",
                 "phaeton", "velib", "scripts"):
        copy = shutil.copytree if (REPO / part).is_dir() else shutil.copy2
        copy(REPO / part, source / part, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                            if (REPO / part).is_dir() else {}))
    with open(source / "phaeton/app.py", "a", encoding="utf-8") as f:
        f.write(CRASHING_RUN)
    made["0.2.1"] = build_bundle(out, version="0.2.1", source=source)
    keys = out / "keys"
    keys.mkdir()
    pem, public = openssl_key(keys)
    stranger_pem, _ = openssl_key(keys, "stranger")
    return {"tarballs": made, "unpacked": unpack(made["0.1.0"], out / "unpacked"),
            "key": pem, "public_key": base64.b64encode(public).decode(),
            "stranger": stranger_pem}


def install_state(dest: Path) -> dict:
    """What an update may change: the links, the versions, the installer, the service."""
    def link(name: str) -> str | None:
        return os.readlink(dest / name) if (dest / name).is_symlink() else None
    return {"current": link("current"), "previous": link("previous"),
            "versions": sorted(os.listdir(dest / "versions")),
            "install.sh": hashlib.sha256((dest / "install.sh").read_bytes()).hexdigest(),
            "service/run": (dest / "service/run").read_text(),
            "leftovers": sorted(p.name for p in dest.iterdir()
                                if p.name in ("update-pending", "update-download"))}


def update_cli(dest: Path, gx: Path, bus: str, *args: str, config: Path | None = None
               ) -> subprocess.CompletedProcess:
    """`phaeton update ...` as an owner runs it: the installed current version's Python."""
    command = [str(dest / "current/venv/bin/python"), "-m", "phaeton", "update", *args,
               "--root", str(gx)]
    if config is not None:
        command += ["--config", str(config)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL,
                          env=installer_env(DBUS_SYSTEM_BUS_ADDRESS=bus))


def config_variant(dest: Path, tmp_path: Path, name: str, **update: object) -> Path:
    """A copy of the installed config with other `update:` keys (for --config)."""
    data = yaml.safe_load((dest / "config.yaml").read_text())
    data["update"] = {**data["update"], **update}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def publish(server: ReleaseServer, releases: dict, version: str, *, key: Path | None = None,
            corrupt: bool = False, prerelease: bool = False) -> None:
    tarball = releases["tarballs"][version]
    data = tarball.read_bytes()
    signature = openssl_sign(key or releases["key"], tarball)
    digest = hashlib.sha256(data).hexdigest()
    if corrupt:                                  # one bit flipped on the way, same size
        middle = len(data) // 2
        data = data[:middle] + bytes([data[middle] ^ 0x10]) + data[middle + 1:]
    server.publish(version, data, signature=signature, digest=digest, prerelease=prerelease)


def status_file(dest: Path) -> dict:
    return json.loads((dest / "update-status.json").read_text())


def installer_status(dest: Path, gx: Path) -> str:
    return run_installer(dest / "install.sh", gx, "--status", check=False).stdout


async def test_update_life_under_daemontools(tmp_path, releases):
    gx = make_gx(tmp_path / "gx")
    dest = gx / "data/phaeton"
    out = (await asyncio.to_thread(run_installer, releases["unpacked"] / "install.sh", gx)).stdout
    password = out.split("write it down): ", 1)[1].split()[0]
    server = ReleaseServer()
    server_port = free_tcp_port()
    supervisor = None
    async with SimWorld(speed=1) as world:
        bus = world.bus_address
        world_config = world.config_for_phaeton(str(dest))
        web_port = world_config["web"]["port"]
        point_config_at(dest / "config.yaml", world_config, update={
            "url": f"http://127.0.0.1:{server_port}/repos/phaeton-ev/phaeton/releases",
            "public_key": releases["public_key"], "health_timeout_s": 45})
        config_before = (dest / "config.yaml").read_bytes()
        (dest / "prices-test.json").write_text('{"kept": true}')   # a data file
        supervisor = Supervisor(gx / "service", bus)
        try:
            await until(lambda: process_version(bus) == "0.1.0" and charger_connected(bus),
                        "phaeton 0.1.0 on the bus")
            before = install_state(dest)
            assert before["current"] == "versions/0.1.0" and before["previous"] is None
            data_files = {p.name for p in dest.iterdir() if p.is_file()} - {"install.sh"}
            assert {"config.yaml", "sessions.sqlite", "prices-test.json"} <= data_files

            async def cli(*args: str, config: Path | None = None):
                return await asyncio.to_thread(update_cli, dest, gx, bus, *args, config=config)

            # -- offline: the server is not running; nothing changes, the reason is clear
            check = await cli("check")
            assert check.returncode == 1
            assert f"connection to 127.0.0.1:{server_port} refused" in check.stdout
            applied = await cli("apply")
            assert applied.returncode == 1, applied.stdout + applied.stderr
            assert "update not installed: connection to" in applied.stdout
            assert "phaeton 0.1.0 keeps running" in applied.stdout
            assert install_state(dest) == before
            assert status_file(dest)["last_check"]["ok"] is False

            # -- channels: stable sees 0.2.0, beta the pre-release; drafts never
            await server.start(server_port)
            publish(server, releases, "0.2.0")
            server.publish("0.3.0b1", b"not built", signature=b"", prerelease=True)
            check = await cli("check")
            assert check.returncode == 0 and "phaeton 0.2.0 is available on the stable" \
                in check.stdout, check.stdout + check.stderr
            beta = config_variant(dest, tmp_path, "beta", channel="beta")
            check = await cli("check", config=beta)
            assert "phaeton 0.3.0b1 is available on the beta channel" in check.stdout
            server.releases = [r for r in server.releases if r.version != "0.3.0b1"]

            # -- refusals before anything changes
            no_key = config_variant(dest, tmp_path, "no-key", public_key="")
            applied = await cli("apply", config=no_key)
            assert applied.returncode == 1 and "no update.public_key is configured" \
                in applied.stdout and "docs/update.md" in applied.stdout
            publish(server, releases, "0.2.0", corrupt=True)
            applied = await cli("apply")
            assert applied.returncode == 1
            assert "corrupt download" in applied.stdout and "digest mismatch" in applied.stdout
            assert install_state(dest) == before
            publish(server, releases, "0.2.0", key=releases["stranger"])
            applied = await cli("apply")
            assert applied.returncode == 1
            assert "bad signature: phaeton-0.2.0.tar.gz is not signed by the key in " \
                   "update.public_key" in applied.stdout
            assert install_state(dest) == before
            assert status_file(dest)["state"] == "failed"
            assert process_version(bus) == "0.1.0"

            # -- a good update, started from the web UI: detached, it outlives the restart
            publish(server, releases, "0.2.0")
            auth = {"Authorization": f"Bearer {password}"}
            async with aiohttp.ClientSession(f"http://127.0.0.1:{web_port}") as web:
                assert (await web.post("/api/update/apply", json={})).status == 401
                answer = await web.post("/api/update/apply", json={}, headers=auth)
                assert answer.status == 202, await answer.text()
                again = await web.post("/api/update/apply", json={}, headers=auth)
                assert again.status == 409                      # one at a time

                async def finished() -> dict | None:
                    try:
                        state = await (await web.get("/api/update")).json()
                    except (aiohttp.ClientError, ValueError):
                        return None                             # restarting
                    if state.get("busy") or state["progress"].get("state") not in (
                            "done", "failed", "rolled_back"):
                        return None
                    return state

                deadline = time.monotonic() + 180
                while (state := await finished()) is None:
                    assert time.monotonic() < deadline, status_file(dest)
                    await asyncio.sleep(1)
            assert state["progress"]["state"] == "done", state["progress"]
            assert state["running"] == "0.2.0" and state["current"] == "0.2.0"
            assert state["previous"] == "0.1.0" and state["progress"]["trigger"] == "web"
            assert process_version(bus) == "0.2.0"
            status = await asyncio.to_thread(installer_status, dest, gx)
            assert "phaeton 0.2.0 installed" in status and "running: phaeton 0.2.0" in status
            assert "previous: 0.1.0" in status
            assert (dest / "config.yaml").read_bytes() == config_before
            assert (dest / "prices-test.json").read_text() == '{"kept": true}'
            assert data_files <= {p.name for p in dest.iterdir() if p.is_file()}
            after = install_state(dest)
            assert after["current"] == "versions/0.2.0" and after["previous"] == "versions/0.1.0"
            assert after["versions"] == ["0.1.0", "0.2.0"]
            assert after["leftovers"] == [] and after["service/run"] == before["service/run"]

            # -- rollback: back to 0.1.0 with the same health check; the two swap
            rolled = await cli("rollback")
            assert rolled.returncode == 0, rolled.stdout + rolled.stderr
            assert "rolled back to phaeton 0.1.0 (was 0.2.0)" in rolled.stdout
            assert process_version(bus) == "0.1.0"
            assert "running: phaeton 0.1.0" in await asyncio.to_thread(installer_status, dest, gx)
            before = install_state(dest)
            assert before["current"] == "versions/0.1.0"
            assert before["previous"] == "versions/0.2.0"

            # -- 0.2.1 crashes at start: not healthy in time, switched back by itself
            publish(server, releases, "0.2.1")
            quick = config_variant(dest, tmp_path, "quick", health_timeout_s=12)
            applied = await cli("apply", config=quick)
            assert applied.returncode == 1, applied.stdout + applied.stderr
            assert "update to 0.2.1 failed: not healthy after 12 s" in applied.stdout
            assert "back to phaeton 0.1.0" in applied.stdout
            assert "switching back to 0.1.0" in applied.stderr      # the steps are logged
            await until(lambda: process_version(bus) == "0.1.0", "0.1.0 back on the bus")
            assert install_state(dest) == before
            assert status_file(dest)["state"] == "rolled_back"
            assert "0.2.1 failed" in status_file(dest)["message"]
            assert "running: phaeton 0.1.0" in await asyncio.to_thread(installer_status, dest, gx)

            # -- an apply that died after switching: the boot line puts it back ...
            def died_after_switching() -> None:
                write_pending(dest / "update-pending", Pending(
                    to="0.2.0", from_="0.1.0", previous="0.2.0", pid=2**22 + 17,
                    started=time.time()))
                os.remove(dest / "current")
                os.symlink("versions/0.2.0", dest / "current")
            died_after_switching()
            assert "interrupted" in (await cli("status")).stdout
            boot = await asyncio.to_thread(subprocess.run, ["bash", str(gx / "data/rc.local")],
                                           capture_output=True, text=True, env=installer_env())
            assert "an update to 0.2.0 was interrupted: back to phaeton 0.1.0" in boot.stdout
            assert install_state(dest) == before
            # ... and so does `phaeton update recover` (which also restarts and checks)
            died_after_switching()
            recovered = await cli("recover")
            assert recovered.returncode == 0, recovered.stdout + recovered.stderr
            assert "the interrupted update was undone: phaeton 0.1.0 runs again" \
                in recovered.stdout
            assert install_state(dest) == before
            assert process_version(bus) == "0.1.0"
        finally:
            await asyncio.to_thread(supervisor.stop)
            await server.stop()
