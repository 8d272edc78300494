"""The release: `python setup.py sdist` and `scripts/build_release.sh`, whose tarball installs on
a GX-like prefix with no package index at all.

The full build downloads the dependency wheels from PyPI once (module fixture).
"""
from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
VERSION = re.search(r'version="([^"]+)"', (REPO / "setup.py").read_text()).group(1)
NOT_PURE = {"numpy", "pyyaml"}   # from Venus' feed (opkg), named in wheels/README.txt


def _dist_name(wheel: str) -> str:
    return wheel.split("-")[0].lower().replace("_", "-")


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """dist/phaeton-<version>.tar.gz built by the script (into a temp dir), unpacked."""
    out = tmp_path_factory.mktemp("release")
    result = subprocess.run([str(REPO / "scripts/build_release.sh"), "--out", str(out)],
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHON": sys.executable})
    assert result.returncode == 0, result.stderr
    tarball = out / f"phaeton-{VERSION}.tar.gz"
    assert result.stdout.splitlines()[0] == str(tarball)
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
        tar.extractall(out / "unpacked", filter="data")
    assert all(n == f"phaeton-{VERSION}" or n.startswith(f"phaeton-{VERSION}/") for n in names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    return out / "unpacked" / f"phaeton-{VERSION}"


def test_sdist_builds_with_the_code_and_the_web_assets(tmp_path):
    src = tmp_path / "src"   # a copy: setuptools writes *.egg-info next to setup.py
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "__pycache__", "dist", "build", "*.egg-info", ".pytest_cache"))
    result = subprocess.run([sys.executable, "setup.py", "-q", "sdist", "--dist-dir",
                             str(tmp_path / "dist")], cwd=src, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    [sdist] = (tmp_path / "dist").glob("phaeton-*.tar.gz")
    assert sdist.name == f"phaeton-{VERSION}.tar.gz"
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"setup.py", "README.md", "phaeton/app.py", "phaeton/cli.py", "velib/values.py",
            "phaeton/web/app.py"} <= names
    assert any(n.startswith("phaeton/web/static/") for n in names)


def test_release_holds_what_an_offline_gx_needs(release):
    assert os.access(release / "install.sh", os.X_OK)
    assert (release / "VERSION").read_text().strip() == VERSION
    for part in ("config.yaml", "service/run", "service/log/run", "docs/install.md",
                 "README.md", "phaeton/app.py", "velib/values.py"):
        assert (release / part).is_file(), part
    wheels = sorted(p.name for p in (release / "wheels").glob("*.whl"))
    assert f"phaeton-{VERSION}-py3-none-any.whl" in wheels
    # only wheels a 32-bit ARM GX can use: pure Python, or built for armv7l
    assert all(w.endswith("-none-any.whl") or "armv7l" in w for w in wheels), wheels
    bundled = {_dist_name(w) for w in wheels}
    notes = (release / "wheels/README.txt").read_text()
    assert "opkg install python3-numpy python3-pyyaml" in notes

    # every runtime dependency of phaeton (the whole closure) is bundled or named as not pure
    with zipfile.ZipFile(release / "wheels" / f"phaeton-{VERSION}-py3-none-any.whl") as whl:
        metadata = whl.read(f"phaeton-{VERSION}.dist-info/METADATA").decode()
    todo = [Requirement(line.split(":", 1)[1]) for line in metadata.splitlines()
            if line.startswith("Requires-Dist:")]
    todo = [r for r in todo if r.marker is None or r.marker.evaluate({"extra": ""})]
    seen: set[str] = set()
    while todo:
        req = todo.pop()
        name = req.name.lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        for dep in importlib.metadata.requires(req.name) or []:
            dep_req = Requirement(dep)
            if dep_req.marker is None or dep_req.marker.evaluate({"extra": ""}):
                todo.append(dep_req)
    assert "aiohttp" in seen and "pymodbus" in seen
    for name in seen - bundled:
        assert name in NOT_PURE, f"{name} is neither bundled nor a documented feed package"
        assert name in notes.lower()


def test_the_pure_wheels_install_without_an_index_in_a_bare_venv(release, tmp_path):
    """Without the machine's packages: the bundled pure wheels alone give working libraries."""
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True)
    py = tmp_path / "venv/bin/python"
    pure = [str(p) for p in (release / "wheels").glob("*-none-any.whl")]
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1"}
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", *pure], check=True,
                   env=env)
    probe = ("import aiohttp, dbus_next, ocpp, pymodbus, yarl; from aiohttp import web; "
             "import phaeton, velib.values; print(phaeton.__version__)")
    result = subprocess.run([str(py), "-c", probe], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == VERSION


@pytest.fixture(scope="module")
def host_binary_wheels(release, tmp_path_factory) -> Path:
    """This machine's wheels of what is compiled: numpy and PyYAML (a GX has them from Venus'
    opkg feed as system packages; install.sh's venv sees them through --system-site-packages)
    and each package the release bundles only as a 32-bit ARM wheel. On a GX, neither is
    needed from here; on this x86 host, they stand in for them."""
    feed = tmp_path_factory.mktemp("host-binary-wheels")
    wanted = re.findall(r'"((?:numpy|pyyaml)[^"]*)"', (REPO / "setup.py").read_text())
    assert len(wanted) == 2, wanted
    for wheel in (release / "wheels").glob("*armv7l*.whl"):
        dist, version = wheel.name.split("-")[:2]
        wanted.append(f"{dist}=={version}")
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:",
                    "--no-deps", "-d", str(feed), *sorted(set(wanted))], check=True, timeout=600)
    return feed


def test_installs_from_the_unpacked_release_with_no_index(release, host_binary_wheels, tmp_path):
    root = tmp_path / "gx"
    for d in ("data", "service", "opt/victronenergy", "var/log"):
        (root / d).mkdir(parents=True)
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1",
           "PIP_FIND_LINKS": str(host_binary_wheels)}
    result = subprocess.run(["sh", str(release / "install.sh"), "--root", str(root),
                             "--python", sys.executable, "--password-generate"],
                            capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    dest = root / "data/phaeton"
    assert os.readlink(dest / "current") == f"versions/{VERSION}"
    assert sorted(p.name for p in (dest / "current/wheels").glob("*.whl")) == \
        sorted(p.name for p in (release / "wheels").glob("*.whl"))
    version = subprocess.run([str(dest / "current/venv/bin/python"), "-m", "phaeton",
                              "--version"], capture_output=True, text=True)
    assert version.stdout.strip() == f"phaeton {VERSION}"
