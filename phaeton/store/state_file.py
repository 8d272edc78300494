"""The user's choices that must survive a restart (mode, start/stop, currents, ...) as JSON.

Writes are atomic (temp file in the same directory, fsync, rename, fsync of the directory), so
after a power cut the file is either the old or the new version, never half of each. A save
that changes nothing does not touch the disk (a GX stores /data on flash). A corrupt or
unreadable file is moved aside as `<name>.corrupt-<UTC timestamp>` (never deleted), logged, and
the defaults are used.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def write_file_atomically(path: str | os.PathLike, data: bytes) -> None:
    """Replace `path` with `data` so that readers only ever see the old or the new content.

    Writes a temp file in the same directory, fsyncs it, renames it over `path` and fsyncs the
    directory. Keeps the mode of an existing file (new files get 0644). On error the temp file
    is removed, `path` is untouched and the `OSError` is raised.
    """
    target = Path(path)
    directory = target.parent
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o644
    import tempfile     # the first write, not the service's start
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as temp_file:
            temp_file.write(data)
            temp_file.flush()
            os.fsync(temp_file.fileno())
        os.chmod(temp_name, mode)
        os.replace(temp_name, target)
    except BaseException:
        try:
            os.unlink(temp_name)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    """Make a rename durable; some file systems refuse fsync on a directory, which is fine."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def move_aside(path: Path, reason: str) -> Path | None:
    """Rename a bad file to `<name>.<reason>-<UTC timestamp>` (unique); None if that failed."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    candidate = path.with_name(f"{path.name}.{reason}-{stamp}")
    counter = 1
    while candidate.exists():
        counter += 1
        candidate = path.with_name(f"{path.name}.{reason}-{stamp}-{counter}")
    try:
        os.replace(path, candidate)
    except OSError as exc:
        log.error("could not move %s aside to %s: %s", path, candidate, exc)
        return None
    return candidate


class StateFileError(OSError):
    """The state could not be written; the file on disk still holds the previous state."""


class StateFile:
    """A JSON object on disk with defaults: `load() -> dict`, `save(dict) -> bool`.

    `defaults` fills keys the file does not have (e.g. a key added in a newer version).
    """

    def __init__(self, path: str | os.PathLike, defaults: Mapping[str, Any] | None = None):
        self.path = Path(path)
        self.defaults = dict(defaults or {})
        self._saved: bytes | None = None  # what the file holds, as far as we know

    def load(self) -> dict[str, Any]:
        """The stored state over the defaults; the defaults alone when the file is missing.

        A corrupt file (not JSON, not an object) or an unreadable one is moved aside, logged,
        and the defaults are returned. Never raises for a bad file.
        """
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            self._saved = None
            return dict(self.defaults)
        except OSError as exc:
            return self._set_aside(f"cannot be read ({exc.strerror or exc})")
        try:
            stored = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return self._set_aside(f"is not valid JSON ({exc})")
        if not isinstance(stored, dict):
            return self._set_aside(f"holds {type(stored).__name__}, not a JSON object")
        self._saved = raw
        return {**self.defaults, **stored}

    def _set_aside(self, problem: str) -> dict[str, Any]:
        moved = move_aside(self.path, "corrupt")
        if moved is not None:
            log.error("state file %s %s; kept it as %s and started from the defaults",
                      self.path, problem, moved)
        else:
            log.error("state file %s %s and could not be moved aside; using the defaults",
                      self.path, problem)
        self._saved = None
        return dict(self.defaults)

    def save(self, state: Mapping[str, Any]) -> bool:
        """Store `state`; True when written, False when the file already held exactly that.

        Raises `ValueError` for a value JSON cannot store and `StateFileError` when the write
        failed (the previous file is then intact).
        """
        if not isinstance(state, Mapping):
            raise ValueError(f"state must be a mapping, got {type(state).__name__}")
        try:
            encoded = (json.dumps(dict(state), sort_keys=True, indent=1, allow_nan=False)
                       + "\n").encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"state cannot be stored as JSON: {exc}") from exc
        if self._saved is None:
            try:
                self._saved = self.path.read_bytes()
            except OSError:
                self._saved = None
        if encoded == self._saved:
            return False
        try:
            write_file_atomically(self.path, encoded)
        except OSError as exc:
            error = StateFileError(f"cannot write state file {self.path}: "
                                   f"{exc.strerror or exc}")
            error.errno = exc.errno
            raise error from exc
        self._saved = encoded
        return True
