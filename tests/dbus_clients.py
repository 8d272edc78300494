"""Independent D-Bus clients for the tests: dbus-send, busctl, gdbus and Debian's python3-dbus.

They run as subprocesses through asyncio, so a velib service living in the test's own event loop
keeps answering while they wait.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys

SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's python3 with dbus-python (python3-dbus)

# A python3-dbus helper: prints one JSON document for a call, converting dbus types to JSON
# while keeping their D-Bus type names, so tests can assert the wire types consumers see.
PY3DBUS_CALL = r"""
import sys, json, dbus
def plain(v):
    if isinstance(v, dbus.Array):
        return {"t": "a" + (v.signature or "?"), "v": [plain(x) for x in v]}
    if isinstance(v, dbus.Dictionary):
        return {"t": "dict", "v": {str(k): plain(x) for k, x in v.items()}}
    if isinstance(v, dbus.Boolean): return {"t": "b", "v": bool(v)}
    if isinstance(v, dbus.Double): return {"t": "d", "v": float(v)}
    if isinstance(v, dbus.Int32): return {"t": "i", "v": int(v)}
    if isinstance(v, dbus.Int64): return {"t": "x", "v": int(v)}
    if isinstance(v, dbus.UInt32): return {"t": "u", "v": int(v)}
    if isinstance(v, dbus.String): return {"t": "s", "v": str(v)}
    return {"t": type(v).__name__, "v": repr(v)}
bus = dbus.SystemBus()
service, path, member = sys.argv[1:4]
args = json.loads(sys.argv[4]) if len(sys.argv) > 4 else []
conv = {"i": dbus.Int32, "d": dbus.Double, "s": dbus.String, "b": dbus.Boolean,
        "x": dbus.Int64, "ai": lambda v, **kw: dbus.Array(v, signature="i", **kw)}
dbus_args = []
for a in args:
    kind, value = a[0], a[1]
    bare = len(a) > 2 and a[2] == "bare"
    # As Victron's clients do: the value goes as a variant (variant_level=1) unless bare.
    dbus_args.append(conv[kind](value) if bare else conv[kind](value, variant_level=1))
obj = bus.get_object(service, path, introspect=False)
try:
    result = obj.get_dbus_method(member, "com.victronenergy.BusItem")(*dbus_args)
    print(json.dumps({"ok": plain(result)}))
except dbus.exceptions.DBusException as e:
    print(json.dumps({"error": e.get_dbus_name(), "message": e.get_dbus_message()}))
"""

# A python3-dbus signal recorder: prints "ready", then one JSON line per BusItem signal from
# the given service (member, path, body), until stdin closes.
PY3DBUS_RECORDER = r"""
import sys, json, dbus, threading
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib
DBusGMainLoop(set_as_default=True)
bus = dbus.SystemBus()
owner = bus.get_name_owner(sys.argv[1])
def plain(v):
    if isinstance(v, dbus.Array): return [plain(x) for x in v]
    if isinstance(v, dbus.Dictionary): return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (dbus.Int32, dbus.Int64, dbus.UInt32, dbus.Byte)): return int(v)
    if isinstance(v, dbus.Double): return float(v)
    if isinstance(v, dbus.Boolean): return bool(v)
    if isinstance(v, dbus.String): return str(v)
    return repr(v)
def on_signal(*args, **kw):
    print(json.dumps({"member": kw["member"], "path": kw["path"], "body": plain(args[0])}),
          flush=True)
bus.add_signal_receiver(on_signal, dbus_interface="com.victronenergy.BusItem", sender_keyword="sender",
                        bus_name=owner, path_keyword="path", member_keyword="member")
loop = GLib.MainLoop()
def watch_stdin():
    sys.stdin.read()
    GLib.idle_add(loop.quit)
threading.Thread(target=watch_stdin, daemon=True).start()
# before the loop runs: signals that arrive meanwhile wait in the queue and are printed
# after "ready" (from an idle callback, a busy service's first signal could come first)
print("ready", flush=True)
loop.run()
"""


async def run(*args: str, timeout: float = 10.0) -> tuple[int, str, str]:
    """Run a command; returns (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ))
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        raise
    return process.returncode, out.decode(), err.decode()


async def dbus_send(service: str, path: str, member: str, *args: str,
                    interface: str = "com.victronenergy.BusItem") -> str:
    code, out, err = await run("dbus-send", "--system", "--print-reply", f"--dest={service}",
                               path, f"{interface}.{member}", *args)
    assert code == 0, err
    return out


async def name_has_owner(name: str) -> bool:
    """Does `name` have an owner on the (private) system bus, as dbus-send sees it."""
    out = await dbus_send("org.freedesktop.DBus", "/org/freedesktop/DBus", "NameHasOwner",
                          f"string:{name}", interface="org.freedesktop.DBus")
    return "boolean true" in out


async def py3dbus(service: str, path: str, member: str, *args) -> dict:
    """Call a BusItem method from Debian's python3-dbus. args: (kind, value) pairs."""
    code, out, err = await run(SYSTEM_PYTHON, "-c", PY3DBUS_CALL, service, path, member,
                               json.dumps(list(args)))
    assert code == 0, err
    return json.loads(out)


class SignalRecorder:
    """A python3-dbus process recording BusItem signals from one service.

    A reader task drains the process's output into a queue all the time: a busy service (a
    simulated GX publishing 20x faster than real time) must never fill the pipe, or the
    recorder blocks in print() and can no longer notice that it should stop."""

    def __init__(self, service: str):
        self.service = service
        self.process: asyncio.subprocess.Process | None = None
        self._lines: asyncio.Queue[bytes] = asyncio.Queue()
        self._reader: asyncio.Task | None = None

    async def __aenter__(self) -> "SignalRecorder":
        self.process = await asyncio.wait_for(asyncio.create_subprocess_exec(
            SYSTEM_PYTHON, "-c", PY3DBUS_RECORDER, self.service,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE), 10)
        self._reader = asyncio.create_task(self._drain())
        line = await asyncio.wait_for(self._lines.get(), 10)
        if line.strip() != b"ready":
            err = await asyncio.wait_for(self.process.stderr.read(), 5)
            raise RuntimeError(f"signal recorder did not start: {line!r} {err.decode()}")
        return self

    async def _drain(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while True:
            line = await self.process.stdout.readline()
            await self._lines.put(line)
            if not line:
                return

    async def next(self, timeout: float = 5.0) -> dict:
        line = await asyncio.wait_for(self._lines.get(), timeout)
        if not line:
            raise EOFError("recorder ended")
        return json.loads(line)

    async def until(self, member: str, path: str, timeout: float = 5.0) -> list[dict]:
        """Every signal up to and including the first `member` on `path`, within `timeout`."""
        deadline = asyncio.get_running_loop().time() + timeout
        seen = []
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError(f"no {member} on {path} within {timeout:g} s "
                                   f"({len(seen)} other signals)")
            signal = await self.next(left)
            seen.append(signal)
            if signal["member"] == member and signal["path"] == path:
                return seen

    async def __aexit__(self, *exc) -> None:
        if self.process and self.process.returncode is None:
            self.process.stdin.close()
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except asyncio.TimeoutError:
                self.process.kill()
                await asyncio.wait_for(self.process.wait(), 5)
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)


def python_executable() -> str:
    return sys.executable
