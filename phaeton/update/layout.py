"""The install's directories (docs/install.md, docs/update.md) and its two links.

    /data/phaeton/versions/<version>/   one version: the unpacked release and its venv/
    /data/phaeton/current  -> versions/<version>   the version the service runs
    /data/phaeton/previous -> versions/<version>   the one before (what rollback returns to)
    /data/phaeton/service/                         daemontools' run script (runs current/venv)

A link is switched atomically: a new link under a temporary name is renamed over the old one
(rename(2) replaces it in one step), so `current` always names a whole version. `--root PREFIX`
(as install.sh's) puts it all under PREFIX/data/phaeton for tests.
"""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

INSTALL_DIR = "data/phaeton"


@dataclass(frozen=True)
class Layout:
    dest: Path                         # /data/phaeton

    @classmethod
    def for_root(cls, root: str | None) -> "Layout":
        return cls(Path(root or "/").joinpath(INSTALL_DIR))

    @classmethod
    def of_running_code(cls, executable: str | None = None) -> "Layout | None":
        """The install this interpreter belongs to: its venv is <dest>/versions/<v>/venv (the
        venv's directory resolved, not the interpreter, which links to the system's Python)."""
        executable = executable or sys.executable
        bin_dir = Path(os.path.realpath(os.path.dirname(executable)))
        if bin_dir.name != "bin" or bin_dir.parent.name != "venv":
            return None
        versions = bin_dir.parent.parent.parent
        if versions.name != "versions":
            return None
        return cls(versions.parent)

    # ---- paths -------------------------------------------------------------------------------

    @property
    def root(self) -> str | None:
        """The --root prefix ("" for /; None when the install is not under data/phaeton)."""
        if self.dest.parts[-2:] != ("data", "phaeton"):
            return None
        prefix = str(self.dest.parent.parent)
        return "" if prefix == "/" else prefix

    @property
    def versions(self) -> Path:
        return self.dest / "versions"

    @property
    def current(self) -> Path:
        return self.dest / "current"

    @property
    def previous(self) -> Path:
        return self.dest / "previous"

    @property
    def pending(self) -> Path:
        return self.dest / "update-pending"

    @property
    def downloads(self) -> Path:
        return self.dest / "update-download"

    @property
    def service_dir(self) -> Path:
        return self.dest / "service"

    @property
    def installer(self) -> Path:
        return self.dest / "install.sh"

    def version_dir(self, version: str) -> Path:
        return self.versions / version

    def python_of(self, version: str) -> Path:
        return self.version_dir(version) / "venv" / "bin" / "python"

    # ---- the links ---------------------------------------------------------------------------

    def installed(self) -> bool:
        """Installed by install.sh in this layout (an older install has /data/phaeton/venv)."""
        return self.current.is_symlink()

    def _linked_version(self, link: Path) -> str | None:
        try:
            target = os.readlink(link)
        except OSError:
            return None
        return Path(target).name

    def current_version(self) -> str | None:
        return self._linked_version(self.current)

    def previous_version(self) -> str | None:
        """The previous version when its directory is still there."""
        version = self._linked_version(self.previous)
        return version if version and self.version_dir(version).is_dir() else None

    def point(self, link: Path, version: str | None) -> None:
        """Make `link` name versions/<version> atomically (None: remove it)."""
        if version is None:
            try:
                link.unlink()
            except FileNotFoundError:
                pass
            return
        temporary = link.with_name(f".{link.name}.{os.getpid()}.tmp")
        try:
            temporary.unlink()
        except FileNotFoundError:
            pass
        os.symlink(f"versions/{version}", temporary)
        os.replace(temporary, link)

    def versions_present(self) -> list[str]:
        if not self.versions.is_dir():
            return []
        return sorted(p.name for p in self.versions.iterdir()
                      if p.is_dir() and not p.name.startswith(".")
                      and not p.name.endswith((".partial", ".old")))

    def prune(self) -> list[str]:
        """Delete every version but current and previous, and leftovers of unfinished
        installs; the names deleted."""
        keep = {self.current_version(), self.previous_version()}
        removed = []
        if not self.versions.is_dir():
            return removed
        for entry in sorted(self.versions.iterdir()):
            if entry.name.startswith("."):
                shutil.rmtree(entry, ignore_errors=True)     # .unpack-* of a stopped apply
                removed.append(entry.name)
            elif entry.is_dir() and entry.name not in keep:
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry.name)
        return removed
