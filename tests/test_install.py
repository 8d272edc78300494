"""install.sh in a prefix that mimics a GX (PREFIX/data, PREFIX/service, PREFIX/opt/victronenergy)
with Debian's real daemontools (svscan, supervise, svc, svstat, multilog) and phaeton against a
simulated GX (`SimWorld`) on a private bus.

The installer is run from a release bundle built with `scripts/build_release.sh
--without-dependencies`; the venv's dependencies come from this machine's base Python through
--system-site-packages, as Venus' packages do on a GX, and pip never reaches an index
(PIP_NO_INDEX) unless that Python lacks one of them.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from phaeton.sim.world import SimWorld
from phaeton.web.passwords import hash_password, verify_password
from tests.gx_helpers import (ORIGINAL_RC_LOCAL, build_bundle, charger_connected,
                              installer_env, make_gx, name_on_bus, point_config_at,
                              run_installer, svstat, tree, unpack, until, Supervisor)

# What --uninstall --keep-data may leave in PREFIX/data/phaeton: the rows "**kept**" of the
# table in docs/install.md (tests/test_release_docs.py checks that the two agree).
KEPT_AFTER_UNINSTALL = {"config.yaml", "config.yaml.bak", "state.json", "sessions.sqlite",
                        "sessions.sqlite-wal", "sessions.sqlite-shm", "energy_history.csv",
                        "prices-*.json", "power_history.jsonl", "fleet.db", "fleet.db-wal",
                        "fleet.db-shm"}

pytestmark = pytest.mark.skipif(shutil.which("svscan") is None,
                                reason="daemontools is not installed (./dev/test installs it)")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """An unpacked release (phaeton's wheel only), built once for this module."""
    out = tmp_path_factory.mktemp("dist")
    return unpack(build_bundle(out), out)


@pytest.fixture
def gx(tmp_path) -> Path:
    """A GX-like prefix whose /data/rc.local already has the owner's lines."""
    return make_gx(tmp_path / "gx")


@pytest.fixture
def supervisors():
    started: list[Supervisor] = []

    def start(service_dir: Path, bus_address: str) -> Supervisor:
        sup = Supervisor(service_dir, bus_address)
        started.append(sup)
        return sup

    yield start
    for sup in started:
        sup.stop()


# ---- refusals -------------------------------------------------------------------------------

def test_refuses_a_machine_that_is_not_a_gx(tmp_path, bundle):
    plain = tmp_path / "pc"
    (plain / "data").mkdir(parents=True)
    result = run_installer(bundle / "install.sh", plain, check=False)
    assert result.returncode == 1
    assert "does not look like a GX" in result.stderr
    assert "opt/victronenergy is missing" in result.stderr
    assert tree(plain) == {"data"}   # nothing was written


def test_refuses_an_unknown_option_and_keep_data_without_uninstall(gx, bundle):
    result = run_installer(bundle / "install.sh", gx, "--frobnicate", check=False)
    assert result.returncode == 1 and "unknown option: --frobnicate" in result.stderr
    result = run_installer(bundle / "install.sh", gx, "--keep-data", check=False)
    assert result.returncode == 1 and "--keep-data only goes with --uninstall" in result.stderr
    assert (gx / "data/rc.local").read_text() == ORIGINAL_RC_LOCAL
    assert not (gx / "data/phaeton").exists()


# ---- the whole life on a GX -----------------------------------------------------------------

async def test_install_reboot_upgrade_uninstall_under_daemontools(gx, bundle, supervisors):
    script = bundle / "install.sh"
    dest = gx / "data/phaeton"
    out = (await asyncio.to_thread(run_installer, script, gx)).stdout

    # first install: the sample config with a generated password, the link, ONE rc.local line
    assert "installing phaeton" in out
    password = out.split("write it down): ", 1)[1].split()[0]
    config = yaml.safe_load((dest / "config.yaml").read_text())
    assert verify_password(password, config["web"]["password_hash"])
    assert config["data_dir"] == str(dest)
    assert os.readlink(gx / "service/phaeton") == str(dest / "service")
    rc = (gx / "data/rc.local").read_text()
    assert rc.startswith(ORIGINAL_RC_LOCAL) and rc.count("phaeton-install") == 1
    run_script = (dest / "service/run").read_text()
    assert run_script.startswith("#!/bin/sh\n") and "exec 2>&1" in run_script
    assert f"exec {dest}/current/venv/bin/python -m phaeton run --config {dest}/config.yaml" \
        in run_script
    # each version in its own directory; current names it, nothing is previous yet
    assert os.readlink(dest / "current") == "versions/0.1.0"
    assert not (dest / "previous").exists()
    assert os.readlink(dest / "venv") == "current/venv"     # the path of older commands
    assert (dest / "versions/0.1.0/venv/bin/python").exists()
    assert (dest / "versions/0.1.0/wheels").is_dir()
    # the console script names the interpreter of versions/0.1.0, not of the .partial it was
    # built in; the commands an owner types work through both links
    for command in (dest / "venv/bin/phaeton", dest / "current/venv/bin/phaeton"):
        ran = subprocess.run([str(command), "--version"], capture_output=True, text=True)
        assert ran.stdout.strip() == "phaeton 0.1.0", ran.stderr
    assert f"exec multilog t s25000 n4 {gx}/var/log/phaeton" in (dest / "service/log/run").read_text()
    # the GX screen's page, as gui-v2 finds it: an enabled app with a gui-v2/*.json
    page = gx / "data/apps/enabled/phaeton/gui-v2/phaeton.json"
    assert json.loads(page.read_text())["integrations"][1]["productId"] == "0xFFFF"
    assert os.readlink(gx / "data/apps/enabled/phaeton") == str(gx / "data/apps/available/phaeton")
    assert "GX screen: Settings > Integrations > UI Plugins > phaeton" in out

    async with SimWorld(speed=1) as world:
        bus = world.bus_address
        point_config_at(dest / "config.yaml", world.config_for_phaeton(str(dest)))
        edited_config = (dest / "config.yaml").read_text()

        # svscan brings it up under supervision; it appears on the bus and reaches the charger
        sup = supervisors(gx / "service", bus)
        await until(lambda: name_on_bus(bus), "phaeton on the bus after install")
        await until(lambda: charger_connected(bus), "/Connected 1 (the simulated Alfen)")
        assert ": up (pid " in svstat(gx / "service/phaeton")
        assert ": up (pid " in svstat(gx / "service/phaeton/log")
        status = await asyncio.to_thread(run_installer, dest / "install.sh", gx, "--status")
        assert "phaeton 0.1.0 installed" in status.stdout and "venv: ok" in status.stdout
        assert "running: phaeton 0.1.0 (pid " in status.stdout
        await until(lambda: (gx / "var/log/phaeton/current").exists()
                    and "phaeton running as" in (gx / "var/log/phaeton/current").read_text(),
                    "the service's log in /var/log/phaeton/current")

        # upgrade in place: config kept byte for byte, the service restarted, still one line
        pid_before = svstat(gx / "service/phaeton").split("pid ")[1].split(")")[0]
        out = (await asyncio.to_thread(run_installer, script, gx)).stdout
        assert "upgrading phaeton 0.1.0 -> 0.1.0" in out and "config.yaml: kept" in out
        assert "web UI password: kept" in out
        assert (dest / "config.yaml").read_text() == edited_config
        assert (gx / "data/rc.local").read_text().count("phaeton-install") == 1
        await until(lambda: ": up (pid " in svstat(gx / "service/phaeton")
                    and pid_before not in svstat(gx / "service/phaeton"),
                    "the service restarted after the upgrade")
        await until(lambda: name_on_bus(bus) and charger_connected(bus),
                    "phaeton back on the bus after the upgrade")

        # reboot: everything stops, /service is rebuilt empty, rc.local brings the link back
        await asyncio.to_thread(sup.stop)
        await until(lambda: not name_on_bus(bus), "phaeton gone with the reboot")
        shutil.rmtree(gx / "service")
        (gx / "service").mkdir()
        boot = await asyncio.to_thread(subprocess.run, ["bash", str(gx / "data/rc.local")],
                                       capture_output=True, text=True, env=installer_env())
        assert os.readlink(gx / "service/phaeton") == str(dest / "service"), boot.stderr
        supervisors(gx / "service", bus)
        await until(lambda: name_on_bus(bus) and charger_connected(bus),
                    "phaeton on the bus after the reboot")

        # uninstall while running: off the bus, supervise gone, only the documented files left
        out = (await asyncio.to_thread(run_installer, dest / "install.sh", gx,
                                       "--uninstall", "--keep-data")).stdout
        assert "phaeton removed; kept in" in out
        assert not name_on_bus(bus)
    assert (gx / "data/rc.local").read_text() == ORIGINAL_RC_LOCAL
    assert stat.S_IMODE((gx / "data/rc.local").stat().st_mode) == 0o755
    assert tree(gx / "service") == set()
    assert not (gx / "var/log/phaeton").exists()
    assert not (gx / "data/apps").exists()             # made by the install, gone again
    left = {p.name for p in dest.iterdir()}
    assert "config.yaml" in left and left <= KEPT_AFTER_UNINSTALL, left
    assert (dest / "config.yaml").read_text() == edited_config
    status = await asyncio.to_thread(run_installer, script, gx, "--status", check=False)
    assert status.returncode == 1 and "not installed" in status.stdout


# ---- the layout before versions/ --------------------------------------------------------------

OLD_RUN_SCRIPT = """#!/bin/sh
exec 2>&1
cd {dest} || exit 1
exec {dest}/venv/bin/python -m phaeton run --config {dest}/config.yaml
"""


def test_an_install_of_the_layout_before_versions_is_moved_keeping_config_and_data(gx, bundle):
    """An install by an installer before self-update: /data/phaeton/{venv,wheels,VERSION}."""
    dest = gx / "data/phaeton"
    (dest / "service/log").mkdir(parents=True)
    shutil.copytree(bundle / "wheels", dest / "wheels")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(dest / "venv")],
                   check=True)
    [wheel] = (dest / "wheels").glob("phaeton-*.whl")
    subprocess.run([str(dest / "venv/bin/python"), "-m", "pip", "install", "-q",
                    "--find-links", str(dest / "wheels"), str(wheel)], check=True,
                   env=installer_env())
    (dest / "VERSION").write_text("0.1.0\n")
    shutil.copy2(bundle / "install.sh", dest / "install.sh")
    (dest / "service/run").write_text(OLD_RUN_SCRIPT.format(dest=dest))
    config = (bundle / "config.yaml").read_text().replace(
        "data_dir: /data/phaeton ", f"data_dir: {dest} ")
    config = config.replace("password_hash: null",
                            f'password_hash: "{hash_password("kept password")}"', 1)
    (dest / "config.yaml").write_text(config)
    data = {"state.json": '{"mode": 1}', "sessions.sqlite": "sessions",
            "energy_history.csv": "t,load_w\n", "prices-tibber.json": "[]"}
    for name, text in data.items():
        (dest / name).write_text(text)

    out = run_installer(bundle / "install.sh", gx).stdout
    assert "upgrading phaeton 0.1.0 -> 0.1.0" in out
    assert "moved to the layout with versions/" in out and "web UI password: kept" in out
    assert os.readlink(dest / "venv") == "current/venv" and not (dest / "wheels").exists()
    assert not (dest / "VERSION").exists()
    assert os.readlink(dest / "current") == "versions/0.1.0"
    assert (dest / "config.yaml").read_text() == config
    for name, text in data.items():
        assert (dest / name).read_text() == text, name
    assert "current/venv/bin/python" in (dest / "service/run").read_text()
    status = run_installer(dest / "install.sh", gx, "--status", check=False).stdout
    assert "phaeton 0.1.0 installed" in status and "venv: ok" in status
    assert (gx / "data/rc.local").read_text().count("phaeton-install") == 1


# ---- rc.local, uninstall, status -----------------------------------------------------------

def test_creates_rc_local_when_missing_and_uninstall_leaves_the_gx_as_it_was(tmp_path, bundle):
    root = tmp_path / "gx"
    for d in ("data", "service", "opt/victronenergy", "var/log"):
        (root / d).mkdir(parents=True)
    before = tree(root)
    run_installer(bundle / "install.sh", root, "--password-generate")
    rc = root / "data/rc.local"
    lines = rc.read_text().splitlines()
    assert lines[0] == "#!/bin/bash" and len(lines) == 2 and "--boot" in lines[1]
    assert stat.S_IMODE(rc.stat().st_mode) == 0o755
    status = run_installer(root / "data/phaeton/install.sh", root, "--status", check=False)
    assert status.returncode == 1   # installed, but no svscan supervises it
    assert "not supervised" in status.stdout and "boot: line in" in status.stdout

    # a firmware update: /service is new and Python has another version than the venv was
    # made for; the boot line repairs both from the kept wheels, offline
    dest = root / "data/phaeton"
    venv = dest / "versions/0.1.0/venv"
    [site_dir] = (venv / "lib").glob("python3.*")
    site_dir.rename(site_dir.with_name("python3.0"))
    (root / "service/phaeton").unlink()
    boot = subprocess.run(["bash", str(rc)], capture_output=True, text=True, env=installer_env())
    assert boot.returncode == 0, boot.stdout + boot.stderr
    assert os.readlink(root / "service/phaeton") == str(dest / "service")
    version = subprocess.run([str(dest / "current/venv/bin/python"), "-m", "phaeton",
                              "--version"], capture_output=True, text=True)
    assert version.stdout.startswith("phaeton ")
    assert "rebuilding it" in boot.stdout and not (venv / "lib/python3.0").exists()

    run_installer(root / "data/phaeton/install.sh", root, "--uninstall")
    assert tree(root) == before


def test_rc_local_without_final_newline_and_an_invalid_config_on_upgrade(gx, bundle):
    rc = gx / "data/rc.local"
    rc.write_text("#!/bin/bash\necho last-line-without-newline")
    run_installer(bundle / "install.sh", gx)
    lines = rc.read_text().splitlines()
    assert lines[1] == "echo last-line-without-newline" and "phaeton-install" in lines[2]

    # a config with a mistake is kept as it is, and the upgrade says what is wrong
    config = gx / "data/phaeton/config.yaml"
    broken = config.read_text().replace("fuse_a: 25", "fuse_a: 2")
    config.write_text(broken)
    result = run_installer(bundle / "install.sh", gx)
    assert "site.fuse_a" in result.stdout
    assert "config.yaml has problems" in result.stderr
    assert config.read_text() == broken

    run_installer(gx / "data/phaeton/install.sh", gx, "--uninstall")
    assert rc.read_text() == "#!/bin/bash\necho last-line-without-newline\n"
    assert not (gx / "data/phaeton").exists()


def test_uninstall_restores_rc_local_exactly_as_the_owner_had_it(tmp_path, bundle):
    root = tmp_path / "gx"
    for d in ("data", "service", "opt/victronenergy", "var/log"):
        (root / d).mkdir(parents=True)
    # an rc.local that was not executable: the install must make it so, and say it
    rc = root / "data/rc.local"
    rc.write_text("#!/bin/bash\n")
    rc.chmod(0o644)
    result = run_installer(bundle / "install.sh", root)
    assert "was not executable" in result.stderr
    assert stat.S_IMODE(rc.stat().st_mode) == 0o755
    run_installer(bundle / "install.sh", root)            # an upgrade remembers the first state
    run_installer(root / "data/phaeton/install.sh", root, "--uninstall")
    assert rc.read_text() == "#!/bin/bash\n" and stat.S_IMODE(rc.stat().st_mode) == 0o644

    # an rc.local the installer created, to which the owner then added a line: it stays
    rc.unlink()
    run_installer(bundle / "install.sh", root)
    with rc.open("a") as f:
        f.write("echo mine >> /tmp/boot.log\n")
    run_installer(root / "data/phaeton/install.sh", root, "--uninstall")
    assert rc.read_text() == "#!/bin/bash\necho mine >> /tmp/boot.log\n"
    assert not (root / "data/phaeton").exists()


def test_asks_for_the_password_on_a_terminal_without_echoing_it(gx, bundle):
    """A person at the GX's shell: too short and mismatched entries are asked again."""
    import pty
    import select

    master, slave = pty.openpty()
    process = subprocess.Popen(
        ["sh", str(bundle / "install.sh"), "--root", str(gx), "--python", sys.executable],
        stdin=slave, stdout=slave, stderr=slave, env=installer_env(), start_new_session=True)
    os.close(slave)
    screen = b""

    def wait_for(text: bytes, count: int = 1) -> None:
        nonlocal screen
        deadline = time.monotonic() + 120
        while screen.count(text) < count and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    screen += os.read(master, 4096)
                except OSError:   # the installer ended
                    break
        assert screen.count(text) >= count, screen

    prompt, again = b"empty = generate one): ", b"Again: "
    try:
        for (wait_text, count), answer in (((prompt, 1), b"short"),
                                           ((prompt, 2), b"correct horse"),
                                           ((again, 1), b"battery staple"),
                                           ((prompt, 3), b"correct horse"),
                                           ((again, 2), b"correct horse")):
            wait_for(wait_text, count)
            os.write(master, answer + b"\n")
        wait_for(b"done.")
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    assert b"too short" in screen and b"did not match" in screen
    assert b"web UI password: set" in screen
    assert b"correct horse" not in screen and b"battery staple" not in screen
    config = yaml.safe_load((gx / "data/phaeton/config.yaml").read_text())
    assert verify_password("correct horse", config["web"]["password_hash"])
    subprocess.run(["sh", str(gx / "data/phaeton/install.sh"), "--root", str(gx), "--uninstall"],
                   check=True, capture_output=True)
