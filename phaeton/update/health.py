"""Is the new version really running and well? Asked after `svc -t`, until a deadline.

Healthy means, at the same moment:
- every D-Bus name of the service (`com.victronenergy.evcharger.phaeton_<id>`, one per
  charger) is owned, and its `/Mgmt/ProcessVersion` is the new version (so it is not the old
  process that has not let go yet);
- when the web UI is on: `GET /health` answers with the new version, and 200 (ready) when the
  old version was ready before the switch. When the old one was not ready either (the charger
  switched off, say), an answer from the new version is enough: an update must not be rolled
  back for what it did not cause.

`judge` is the pure decision; `probe` and `wait_healthy` do the I/O.
"""
from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable

from dbus_next import Message, MessageType
from dbus_next.aio import MessageBus
from velib.address import system_bus_address

PROCESS_VERSION = "/Mgmt/ProcessVersion"


@dataclass(frozen=True)
class WebAnswer:
    status: int | None                 # None: no answer
    version: str | None
    failed: tuple[str, ...] = ()       # /health's failed checks
    error: str | None = None

    @property
    def ready(self) -> bool:
        return self.status == 200


@dataclass(frozen=True)
class Observation:
    names: dict[str, str | None]       # D-Bus name -> its ProcessVersion (None: not owned)
    web: WebAnswer | None              # None: the web UI is off


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str


def judge(seen: Observation, expected: str, require_ready: bool) -> Verdict:
    """Whether `seen` shows version `expected` running and well; else what is missing."""
    if not seen.names:
        return Verdict(False, "no D-Bus name to check")
    for name, version in seen.names.items():
        if version is None:
            return Verdict(False, f"{name} is not on the D-Bus")
        if version != expected:
            return Verdict(False, f"{name} is still served by version {version}")
    web = seen.web
    if web is None:
        return Verdict(True, f"phaeton {expected} owns {', '.join(seen.names)}")
    if web.status is None:
        return Verdict(False, f"the web UI does not answer /health ({web.error})")
    if web.version != expected:
        return Verdict(False, f"/health answers for version {web.version}")
    if require_ready and not web.ready:
        failed = ", ".join(web.failed) or f"HTTP {web.status}"
        return Verdict(False, f"/health is not ready ({failed})")
    note = "" if web.ready else f" (not ready: {', '.join(web.failed)}, as before the update)"
    return Verdict(True, f"phaeton {expected} owns {', '.join(seen.names)} and answers "
                         f"/health{note}")


def web_health(url: str, timeout_s: float = 3.0) -> WebAnswer:
    """GET /health: its status, version and failed checks."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            status, body = response.status, response.read(65536)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read(65536)
    except (urllib.error.URLError, OSError) as exc:
        return WebAnswer(None, None, error=str(getattr(exc, "reason", exc)))
    try:
        data = json.loads(body)
    except ValueError:
        return WebAnswer(status, None, error="not JSON")
    if not isinstance(data, dict):
        return WebAnswer(status, None, error="not a JSON object")
    failed = tuple(str(name) for name in data.get("failed") or ())
    version = data.get("version")
    return WebAnswer(status, str(version) if version is not None else None, failed)


async def _dbus_versions(bus_address: str, names: tuple[str, ...]) -> dict[str, str | None]:
    bus = await MessageBus(bus_address=bus_address).connect()
    try:
        found: dict[str, str | None] = {}
        for name in names:
            owned = await bus.call(Message(
                destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus", member="NameHasOwner", signature="s",
                body=[name]))
            if owned.message_type != MessageType.METHOD_RETURN or not owned.body[0]:
                found[name] = None
                continue
            reply = await bus.call(Message(destination=name, path=PROCESS_VERSION,
                                           interface="com.victronenergy.BusItem",
                                           member="GetValue"))
            if reply.message_type != MessageType.METHOD_RETURN:
                found[name] = "unknown"
                continue
            value = reply.body[0]
            found[name] = str(getattr(value, "value", value))
        return found
    finally:
        bus.disconnect()


def dbus_versions(names: tuple[str, ...], bus_address: str | None = None,
                  timeout_s: float = 5.0) -> dict[str, str | None]:
    """Each name's ProcessVersion on the system bus (None: not owned; all None: no bus)."""
    async def ask() -> dict[str, str | None]:
        return await asyncio.wait_for(_dbus_versions(system_bus_address(bus_address), names),
                                      timeout_s)
    try:
        return asyncio.run(ask())
    except Exception:   # noqa: BLE001 - no bus, a timeout, a broken reply: not healthy
        return {name: None for name in names}


def probe(names: tuple[str, ...], health_url: str | None,
          bus_address: str | None = None) -> Observation:
    return Observation(dbus_versions(names, bus_address),
                       web_health(health_url) if health_url else None)


def wait_healthy(expected: str, names: tuple[str, ...], health_url: str | None, *,
                 timeout_s: float, require_ready: bool, settle_s: float = 5.0,
                 interval_s: float = 1.0, bus_address: str | None = None,
                 look: Callable[[], Observation] | None = None) -> Verdict:
    """Poll until `judge` has said healthy for `settle_s` without a break (a version that
    starts and then crashes is not healthy), or `timeout_s` is over (then: the last reason)."""
    look = look or (lambda: probe(names, health_url, bus_address))
    deadline = time.monotonic() + timeout_s
    healthy_since: float | None = None
    while True:
        verdict = judge(look(), expected, require_ready)
        now = time.monotonic()
        if not verdict.ok:
            healthy_since = None
            if now >= deadline:
                return Verdict(False, f"not healthy after {timeout_s:g} s: {verdict.reason}")
        elif healthy_since is None:
            healthy_since = now          # healthy before the deadline: let it settle
        if verdict.ok and now - healthy_since >= settle_s:
            return verdict
        time.sleep(interval_s)
