"""Install a verified release beside the running version, without touching the running one.

    versions/.unpack-<v>/phaeton-<v>/   the tarball unpacked (tar's "data" filter: no links
                                        out, no devices, no absolute paths)
    versions/<v>.partial/               renamed from there; its venv/ is built here as
                                        install.sh builds one: --system-site-packages (Venus'
                                        numpy and PyYAML), phaeton's wheel with pip --no-index
                                        from the release's wheels/ (PyPI only if one is missing)
    versions/<v>/                       renamed when the venv imports phaeton <v> and that
                                        version accepts the config

A directory called versions/<v> is therefore always complete. The venv's scripts name their
interpreter by path; after the rename `relocate` rewrites that path.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

log = logging.getLogger("phaeton.update")


class StageError(Exception):
    """The release cannot be installed; str() says why."""


def unpack(tarball: Path, versions: Path, version: str) -> Path:
    """The release unpacked into versions/<version>.partial (replacing a leftover)."""
    top = f"phaeton-{version}"
    scratch = versions / f".unpack-{version}"
    partial = versions / f"{version}.partial"
    for leftover in (scratch, partial):
        shutil.rmtree(leftover, ignore_errors=True)
    versions.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            names = tar.getnames()
            strays = [n for n in names if n != top and not n.startswith(top + "/")]
            if strays:
                raise StageError(f"the release holds files outside {top}/ (e.g. {strays[0]!r})")
            tar.extractall(scratch, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        shutil.rmtree(scratch, ignore_errors=True)
        raise StageError(f"cannot unpack {tarball.name}: {exc}") from None
    except StageError:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    unpacked = scratch / top
    said = (unpacked / "VERSION").read_text().strip() if (unpacked / "VERSION").is_file() else ""
    if said != version:
        shutil.rmtree(scratch, ignore_errors=True)
        raise StageError(f"the release's VERSION says {said or 'nothing'!r}, the index {version!r}")
    os.rename(unpacked, partial)
    shutil.rmtree(scratch, ignore_errors=True)
    return partial


def _run(command: list[str], env: dict[str, str] | None, timeout_s: float = 900
         ) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout_s,
                          stdin=subprocess.DEVNULL)


def _last_line(result: subprocess.CompletedProcess) -> str:
    lines = [l for l in (result.stderr or result.stdout or "").splitlines() if l.strip()]
    return lines[-1].strip()[:300] if lines else f"exit {result.returncode}"


def build_venv(directory: Path, base_python: str, env: dict[str, str] | None = None) -> None:
    """directory/venv with phaeton from directory/wheels (as install.sh's install_venv)."""
    wheels = directory / "wheels"
    found = sorted(wheels.glob("phaeton-*.whl"))
    if not found:
        raise StageError("the release has no phaeton wheel in wheels/")
    venv = directory / "venv"
    made = _run([base_python, "-m", "venv", "--system-site-packages", str(venv)], env)
    if made.returncode != 0:
        raise StageError(f"'{base_python} -m venv' failed: {_last_line(made)}")
    pip = [str(venv / "bin" / "python"), "-I", "-m", "pip", "install", "-q",
           "--disable-pip-version-check", "--only-binary=:all:", "--find-links", str(wheels)]
    installed = _run(pip + ["--no-index", str(found[0])], env)
    if installed.returncode != 0:
        log.info("the release's wheels are not enough; trying PyPI")
        installed = _run(pip + [str(found[0])], env)
    if installed.returncode != 0:
        raise StageError(f"installing phaeton's dependencies failed: {_last_line(installed)}")


def venv_problem(python: Path) -> str | None:
    """Why this venv's interpreter cannot import phaeton (None: it can)."""
    probe = _run([str(python), "-I", "-c", "import phaeton.app"], None, timeout_s=120)
    return None if probe.returncode == 0 else _last_line(probe)


def check_version_dir(directory: Path, version: str, config_path: str | None) -> None:
    """The new venv imports phaeton <version>, and that version accepts the config."""
    python = str(directory / "venv" / "bin" / "python")
    probe = _run([python, "-I", "-c", "import phaeton, phaeton.app; print(phaeton.__version__)"],
                 None, timeout_s=120)
    if probe.returncode != 0:
        raise StageError(f"phaeton {version} does not import in its new venv: "
                         f"{_last_line(probe)}")
    if probe.stdout.strip() != version:
        raise StageError(f"the release's code says it is {probe.stdout.strip()!r}, not {version}")
    if config_path:
        checked = _run([python, "-I", "-m", "phaeton", "check-config", config_path], None,
                       timeout_s=120)
        if checked.returncode != 0:
            problems = " / ".join(l.strip() for l in checked.stdout.splitlines()[:3])
            raise StageError(f"phaeton {version} refuses the config: "
                             f"{problems or _last_line(checked)}")


def finish(partial: Path, final: Path) -> None:
    """Rename versions/<v>.partial to versions/<v> and point its venv's scripts there."""
    if final.exists():
        shutil.rmtree(final)
    os.rename(partial, final)
    relocate(final / "venv", str(partial / "venv"), str(final / "venv"))


def relocate(venv: Path, old: str, new: str) -> None:
    """Rewrite the venv's own path in its scripts (#! lines, activate) and pyvenv.cfg."""
    candidates = [venv / "pyvenv.cfg"]
    bin_dir = venv / "bin"
    if bin_dir.is_dir():
        candidates += [p for p in bin_dir.iterdir() if p.is_file() and not p.is_symlink()]
    for path in candidates:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if old.encode() not in data or b"\0" in data[:1024]:
            continue
        mode = path.stat().st_mode
        temporary = path.with_name(path.name + ".relocate")
        temporary.write_bytes(data.replace(old.encode(), new.encode()))
        os.chmod(temporary, mode & 0o7777)
        os.replace(temporary, path)
