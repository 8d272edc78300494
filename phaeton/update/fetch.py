"""HTTP for the updater: the releases index and the release files (standard library only).

Every failure is a `FetchError` with one line an owner understands: offline (connection
refused, no DNS, no route), a timeout, an HTTP error, a file larger than announced.
"""
from __future__ import annotations

import errno
import json
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from phaeton import __version__

USER_AGENT = f"phaeton/{__version__} (self-update)"
CHUNK_BYTES = 64 * 1024
MAX_INDEX_BYTES = 4 * 1024 * 1024


class FetchError(Exception):
    """A download or request failed; str() is the one-line reason."""


def _request(url: str, accept: str) -> urllib.request.Request:
    scheme = urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise FetchError(f"{url[:200]} is not an http(s) URL")
    return urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": accept})


def describe(exc: BaseException, url: str, timeout_s: float) -> str:
    """Why `url` could not be fetched, in one line."""
    host = urlsplit(url).netloc or url
    if isinstance(exc, urllib.error.HTTPError):
        return f"{host} answered HTTP {exc.code} {exc.reason} for {url[:200]}"
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return f"no answer from {host} within {timeout_s:g} s (offline?)"
    if isinstance(reason, socket.gaierror):
        return f"cannot resolve {urlsplit(url).hostname} (no DNS: is the GX offline?)"
    if isinstance(reason, ConnectionRefusedError):
        return f"connection to {host} refused (offline, or no server there)"
    if isinstance(reason, OSError) and reason.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return f"no route to {host} (offline?)"
    return f"cannot reach {host}: {reason}"


def _open(url: str, accept: str, timeout_s: float):
    try:
        return urllib.request.urlopen(_request(url, accept), timeout=timeout_s)
    except (urllib.error.URLError, OSError) as exc:
        raise FetchError(describe(exc, url, timeout_s)) from None


def get_json(url: str, timeout_s: float = 20.0) -> Any:
    """The decoded JSON at `url` (the releases index)."""
    with _open(url, "application/vnd.github+json, application/json", timeout_s) as response:
        try:
            body = response.read(MAX_INDEX_BYTES + 1)
        except OSError as exc:
            raise FetchError(describe(exc, url, timeout_s)) from None
    if len(body) > MAX_INDEX_BYTES:
        raise FetchError(f"the index at {url[:200]} is larger than {MAX_INDEX_BYTES} bytes")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise FetchError(f"the index at {url[:200]} is not JSON ({exc})") from None


def download(url: str, path: Path, *, max_bytes: int, timeout_s: float = 60.0,
             progress: Callable[[int], None] | None = None) -> int:
    """Write the file at `url` to `path`; its size in bytes. More than `max_bytes` is an error
    (a file larger than the index announced is not the release)."""
    done = 0
    with _open(url, "application/octet-stream", timeout_s) as response, open(path, "wb") as out:
        while True:
            try:
                chunk = response.read(CHUNK_BYTES)
            except OSError as exc:
                raise FetchError(describe(exc, url, timeout_s)) from None
            if not chunk:
                break
            done += len(chunk)
            if done > max_bytes:
                raise FetchError(f"{Path(urlsplit(url).path).name} is larger than the "
                                 f"{max_bytes} bytes announced: not the release")
            out.write(chunk)
            if progress is not None:
                progress(done)
    return done
