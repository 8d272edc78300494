"""A GX-like prefix for install.sh and self-update tests: PREFIX/data, PREFIX/service,
PREFIX/opt/victronenergy under Debian's real daemontools (svscan, supervise, svc, svstat,
multilog), release bundles built by scripts/build_release.sh, and helpers that ask the private
D-Bus and svstat. Shared by tests/test_install.py and tests/test_update_gx.py.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SERVICE_NAME = "com.victronenergy.evcharger.phaeton_0"
ORIGINAL_RC_LOCAL = "#!/bin/bash\n# the owner's own lines\necho started >> /tmp/boot.log\n"


def build_bundle(out: Path, *, version: str | None = None, source: Path = REPO) -> Path:
    """scripts/build_release.sh --without-dependencies of `source` (as `version`) into `out`;
    the tarball's path."""
    command = [str(source / "scripts/build_release.sh"), "--without-dependencies",
               "--out", str(out)]
    if version is not None:
        command += ["--version", version]
    result = subprocess.run(command, check=True, capture_output=True, text=True,
                            env={**os.environ, "PYTHON": sys.executable})
    return Path(result.stdout.splitlines()[0])


def unpack(tarball: Path, into: Path) -> Path:
    with tarfile.open(tarball) as tar:
        tar.extractall(into, filter="data")
    return into / tarball.name.removesuffix(".tar.gz")


def make_gx(root: Path, rc_local: str | None = ORIGINAL_RC_LOCAL) -> Path:
    """A GX-like prefix; /data/rc.local holds the owner's lines unless `rc_local` is None."""
    for d in ("data", "service", "opt/victronenergy", "var/log"):
        (root / d).mkdir(parents=True)
    if rc_local is not None:
        rc = root / "data/rc.local"
        rc.write_text(rc_local)
        rc.chmod(0o755)
    return root


def _base_python_has_the_dependencies() -> bool:
    """The venv install.sh makes sees the base interpreter's site-packages (as it sees Venus'
    packages on a GX), not those of a venv the tests may run in."""
    probe = "import aiohttp, dbus_next, jsonschema, numpy, ocpp, pymodbus, yaml"
    return subprocess.run([getattr(sys, "_base_executable", sys.executable), "-c", probe],
                          capture_output=True).returncode == 0


OFFLINE = _base_python_has_the_dependencies()


def installer_env(**extra: str) -> dict[str, str]:
    """Offline pip (no index, no pip.conf) when the base Python has every dependency, as a GX
    with the feed's packages and the bundled wheels has; else pip may fetch them from PyPI."""
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    if OFFLINE:
        env["PIP_NO_INDEX"] = "1"
    env.update(extra)
    return env


def run_installer(script: Path, root: Path, *args: str, check: bool = True,
                  env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs install.sh with dash/busybox-like `sh`, no terminal on stdin."""
    result = subprocess.run(["sh", str(script), "--root", str(root), "--python", sys.executable,
                             *args], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            env=env or installer_env(), timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"install.sh {args} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def tree(root: Path) -> set[str]:
    """Every file, link and directory below root, relative."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


class Supervisor:
    """`svscan PREFIX/service` in its own process group; `stop()` kills svscan, every supervise,
    phaeton and multilog (the whole group), so no test leaves them behind."""

    def __init__(self, service_dir: Path, bus_address: str):
        self.process = subprocess.Popen(
            ["svscan", str(service_dir)], start_new_session=True, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": bus_address})

    def stop(self) -> None:
        if self.process.poll() is not None and not group_alive(self.process.pid):
            return
        for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait_s
            while group_alive(self.process.pid) and time.monotonic() < deadline:
                self.process.poll()
                time.sleep(0.05)
            if not group_alive(self.process.pid):
                break
        self.process.wait(timeout=5)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # zombies of the group count as gone
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def bus_call(bus_address: str, *args: str) -> str:
    result = subprocess.run(["dbus-send", f"--bus={bus_address}", "--print-reply", *args],
                            capture_output=True, text=True, timeout=10)
    return result.stdout + result.stderr


def name_on_bus(bus_address: str) -> bool:
    out = bus_call(bus_address, "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
                   "org.freedesktop.DBus.NameHasOwner", f"string:{SERVICE_NAME}")
    return "boolean true" in out


def charger_connected(bus_address: str) -> bool:
    out = bus_call(bus_address, f"--dest={SERVICE_NAME}", "/Connected",
                   "com.victronenergy.BusItem.GetValue")
    return "int32 1" in out


def process_version(bus_address: str) -> str | None:
    """/Mgmt/ProcessVersion of phaeton's service on the bus (None: not there)."""
    out = bus_call(bus_address, f"--dest={SERVICE_NAME}", "/Mgmt/ProcessVersion",
                   "com.victronenergy.BusItem.GetValue")
    if "string \"" not in out:
        return None
    return out.split("string \"", 1)[1].split("\"", 1)[0]


async def until(predicate, what: str, limit_s: float = 60.0) -> None:
    """Polls `predicate` in a thread (the world's loop keeps running) until it holds."""
    deadline = time.monotonic() + limit_s
    while not await asyncio.to_thread(predicate):
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.2)


def svstat(path: Path) -> str:
    return subprocess.run(["svstat", str(path)], capture_output=True, text=True).stdout


def point_config_at(config_path: Path, world_config: dict, **sections: dict) -> None:
    """Merge the world's charger/site/web settings (and `sections`) into the installed
    config.yaml."""
    data = yaml.safe_load(config_path.read_text())
    for key in ("charger", "site"):
        data[key] = world_config[key]
    data["web"].update(world_config["web"])
    data["control"] = {"tick_s": 0.5}
    for key, value in sections.items():
        data[key] = {**(data.get(key) or {}), **value}
    config_path.write_text(yaml.safe_dump(data, sort_keys=False))
