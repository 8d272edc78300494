"""The D-Bus fuzz trial: random SetValue writes from another process (Debian's python3-dbus,
`dbus_fuzz_client.py`) against phaeton's running evcharger service, and what they did.

`run_fuzz()` returns a FuzzResult; `fuzz_findings()` lists what broke the rules:
- every write was answered and the service stayed on the bus (0 crashes);
- a refused write (code != 0 or a D-Bus error) changed no value;
- an accepted write changed its own path only, to a value of the path's type and range;
- a number path never takes text that is not an ASCII number (full-width digits, "nan");
- the choices phaeton persisted are the ones it shows.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
from dataclasses import dataclass, field

from phaeton.venus.evcharger_service import UserChoices

CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dbus_fuzz_client.py")
SYSTEM_PYTHON = "/usr/bin/python3"
WRITABLE = sorted(UserChoices.FIELDS)
# Paths nothing but a write may change (the tick publishes the others).
STATIC = ["/DeviceInstance", "/ProductId", "/ProductName", "/Mgmt/ProcessName",
          "/Mgmt/ProcessVersion", "/Role", "/MinCurrent", "/GxAutoMode/Enabled",
          "/GxAutoMode/Source"]
CUSTOM_NAME_MAX = 64          # characters: the config's device.custom_name limit (issue 11)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass
class FuzzResult:
    summary: dict | None
    lines: list[dict] = field(default_factory=list)
    stderr: str = ""
    real_s: float = 0.0

    @property
    def tried(self) -> int:
        return self.summary["tried"] if self.summary else 0

    @property
    def refused_changed(self) -> list[dict]:
        return [line for line in self.lines if line.get("rc") != 0 and line.get("changed")]


def valid_value(path: str, typed: list, max_current_a: float, min_current_a: float) -> bool:
    """Is [D-Bus type, value] one the path may hold?"""
    kind, value = typed
    if path == "/CustomName":
        return kind == "s" and len(value) <= CUSTOM_NAME_MAX and not _CONTROL.search(value)
    if path == "/SetCurrent":
        return kind == "d" and (value == 0.0 or min_current_a <= value <= max_current_a)
    if path == "/MaxCurrent":
        return kind == "d" and min_current_a <= value <= max_current_a
    allowed = {"/Mode": (0, 1, 2), "/StartStop": (0, 1), "/AutoStart": (0, 1),
               "/Position": (0, 1), "/SetPhases": (1, 3)}[path]
    return kind == "i" and value in allowed


async def run_fuzz(service: str, count: int, seed: int, timeout_s: float | None = None) -> FuzzResult:
    """Run the fuzz client to the end (at most `timeout_s` real seconds)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    process = await asyncio.create_subprocess_exec(
        SYSTEM_PYTHON, CLIENT, service, str(seed), str(count), json.dumps(WRITABLE + STATIC),
        json.dumps(WRITABLE), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    result = FuzzResult(None)

    async def read_all() -> None:
        async for raw in process.stdout:
            line = json.loads(raw)
            if "summary" in line:
                result.summary = line["summary"]
            else:
                result.lines.append(line)

    try:
        await asyncio.wait_for(asyncio.gather(read_all(), process.wait()),
                               timeout_s or 60.0 + count * 0.05)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        result.stderr = (await process.stderr.read()).decode(errors="replace")[-2000:]
    result.real_s = loop.time() - started
    return result


def fuzz_findings(result: FuzzResult, max_current_a: float, min_current_a: float) -> list[str]:
    found = []
    if result.summary is None:
        return [f"the fuzz client did not finish: {result.stderr.strip()[-500:]}"]
    summary = result.summary
    if summary["lost"]:
        found.append("the service left the bus (crashed) during the fuzz")
    if summary["no_answer"]:
        found.append(f"{summary['no_answer']} writes got no answer")
    for line in result.refused_changed[:5]:
        found.append(f"refused write #{line['i']} {line['path']} = {line['value']} "
                     f"({line.get('rc', line.get('error'))}) changed {line['changed']}")
    for line in result.lines:
        if line.get("rc") != 0:
            continue
        if line.get("lenient"):
            found.append(f"write #{line['i']} {line['path']} = {line['value']} was accepted "
                         f"(text that is not an ASCII number)")
        for path, (before, after) in line.get("changed", {}).items():
            if path != line["path"]:
                found.append(f"write #{line['i']} to {line['path']} changed {path}: "
                             f"{before} -> {after}")
            elif not valid_value(path, after, max_current_a, min_current_a):
                found.append(f"write #{line['i']} {path} = {line['value']} was accepted as "
                             f"{after}")
    return found
