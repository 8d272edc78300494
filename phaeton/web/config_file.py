"""The config file as it is now, and the check that a save starts from the version it shows.

The settings and schedule pages edit the file, not the running service's copy: the file may
have been edited by hand since phaeton loaded it. GET /api/config and GET /api/schedule send
the file's config with its version (a hash of the file's bytes, `phaeton.config.config_version`,
also as the ETag); a save must send that version back (`"version"` in the body or an `If-Match`
header). If the file changed in between, the save is refused with 409 and the file is left as
it is: nothing anyone wrote in it is overwritten unseen.

The check and the save run without giving up the event loop in between (reading the file is
synchronous, and so is the first part of `apply_config` up to the write), so two saves through
the web cannot both pass the check.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from phaeton.config import (CHANGED_MESSAGE, ConfigError, ConfigProblem, config_to_dict,
                            config_version, parse_config_text)
from phaeton.web.http_json import fail


@dataclass
class FileConfig:
    """The config file now: its config (every key defaulted), version and problems.

    When the file cannot be loaded, `config` is the running service's and `problems` says why;
    `version` is None when the service runs without a config file."""

    config: dict
    version: str | None
    problems: list[ConfigProblem] = field(default_factory=list)


def read_file_config(backend) -> FileConfig:
    """The backend's config file as it is now."""
    path = backend.config_path()
    if not path:
        return FileConfig(backend.config(), None)
    try:
        content = Path(path).read_bytes()
    except FileNotFoundError:
        return FileConfig(backend.config(), config_version(None), [
            ConfigProblem("", None, "the file does not exist (any more); saving writes it")])
    except OSError as exc:
        fail(500, f"could not read the config file: {exc.strerror or exc}")
    version = config_version(content)
    try:
        config = config_to_dict(parse_config_text(content.decode("utf-8"), path))
    except UnicodeDecodeError:
        return FileConfig(backend.config(), version, [
            ConfigProblem("", None, "the file is not UTF-8 text")])
    except ConfigError as exc:
        return FileConfig(backend.config(), version, exc.problems)
    return FileConfig(config, version)


def sent_version(request: web.Request, body: dict) -> str | None:
    """The version a save says it started from: `If-Match` or the body's "version"."""
    header = request.headers.get("If-Match", "").strip()
    if header:
        return header.removeprefix("W/").strip('"')
    version = body.get("version")
    return version if isinstance(version, str) else None


def require_same_version(request: web.Request, body: dict, current: FileConfig) -> None:
    """428 when the save names no version, 409 when the file is no longer that version."""
    if current.version is None:
        return  # no file: the backend refuses the save itself
    sent = sent_version(request, body)
    if sent is None:
        fail(428, "send the version of the config you started from (\"version\" from GET "
                  "/api/config or /api/schedule, in the body or as If-Match), so a save cannot "
                  "overwrite changes it has not seen")
    if sent != current.version:
        fail(409, CHANGED_MESSAGE, version=current.version)


def version_headers(version: str | None) -> dict[str, str]:
    """The ETag header of a response that shows the file at `version`."""
    return {"ETag": f'"{version}"'} if version else {}


def problems_text(problems: list[ConfigProblem]) -> list[str]:
    """The file's problems as check-config style lines."""
    return [f"{p.key_path}: {p.message}" if p.key_path else p.message for p in problems]
