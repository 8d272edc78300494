"""The kill -9 trial: `crash_driver.py` writes sessions and state the way phaeton does, and is
killed with SIGKILL at random moments, again and again. After every kill, before the restart:
- sessions.sqlite opens cleanly (nothing moved aside as corrupt, integrity_check ok) and so
  does state.json (a JSON object, nothing moved aside);
- no session is stored twice, and no stored session still has a running record;
- every session the child reported finished is stored, with its energy;
- the running session is not lost beyond its last save: the running record holds at least the
  energy last reported saved (or the session was finished just before the kill);
- state.json holds the last reported save or the one being written.
"""
from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import sys
from dataclasses import dataclass, field

from phaeton.store.sessions import SessionStore
from phaeton.store.state_file import StateFile

DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "crash_driver.py")
START_S = 30.0                 # the child must say "ready" within this (real) time
ENERGY_EPSILON_KWH = 1e-9


@dataclass
class Reported:
    """What the child said it committed (a lower bound of what is on disk)."""

    finished: dict[float, float] = field(default_factory=dict)    # started_at_s -> kWh
    running: tuple[str, float, float] | None = None              # (id, started_at_s, kWh)
    state_sequence: int = 0
    lines: int = 0

    def take(self, line: str) -> None:
        words = line.split()
        if not line.endswith("\n") or not words:
            return             # cut short by the kill: not reported
        self.lines += 1
        if words[0] == "R":
            self.running = (words[1], float(words[2]), float(words[3]))
        elif words[0] == "F":
            self.finished[float(words[1])] = float(words[2])
            if self.running is not None and self.running[1] == float(words[1]):
                self.running = None
        elif words[0] in ("S", "ready"):
            self.state_sequence = int(words[1])


@dataclass
class CrashResult:
    kills: int = 0
    sessions: int = 0
    writes_reported: int = 0
    findings: list[str] = field(default_factory=list)


def check_files(data_dir: str, reported: Reported) -> list[str]:
    """What is wrong with the files after a kill (empty: all fine)."""
    found = []
    db_path = os.path.join(data_dir, "sessions.sqlite")
    with sqlite3.connect(db_path) as raw:
        integrity = raw.execute("PRAGMA integrity_check").fetchone()[0]
    if integrity != "ok":
        found.append(f"sessions.sqlite integrity_check: {integrity}")
    with SessionStore(db_path, history_limit=100_000) as store:
        sessions = store.list_sessions(limit=100_000)
        running = store.load_running()
    state = StateFile(os.path.join(data_dir, "state.json")).load()
    aside = sorted(name for name in os.listdir(data_dir) if ".corrupt-" in name)
    if aside:
        found.append(f"files moved aside as corrupt: {aside}")
    starts = [s.start_s for s in sessions]
    if len(starts) != len(set(starts)):
        found.append(f"{len(starts) - len(set(starts))} sessions stored twice")
    stored = {s.start_s: s.energy_kwh for s in sessions}
    if running is not None and running.get("started_at_s") in stored:
        found.append(f"session {running.get('session_id')} is stored and still running: "
                     f"a restart would store it twice")
    for start, energy in reported.finished.items():
        if start not in stored:
            found.append(f"finished session {start} is lost")
        elif abs(stored[start] - energy) > ENERGY_EPSILON_KWH:
            found.append(f"finished session {start} has {stored[start]} kWh, not {energy}")
    if reported.running is not None:
        session_id, started, energy = reported.running
        if running is not None and running.get("session_id") == session_id:
            kept = running.get("energy_kwh", 0.0) + running.get("gap_estimate_kwh", 0.0)
            if kept < energy - ENERGY_EPSILON_KWH:
                found.append(f"running session {session_id} kept {kept} kWh of the "
                             f"{energy} saved")
        elif started not in stored:
            found.append(f"running session {session_id} ({energy} kWh saved) is lost")
    name = state.get("custom_name", "")
    sequence = int(name[1:]) if isinstance(name, str) and name[1:].isdigit() else None
    if sequence is None and reported.state_sequence:
        found.append(f"state.json lost the saved choices: {state}")
    elif sequence is not None and not reported.state_sequence <= sequence \
            <= reported.state_sequence + 1:
        found.append(f"state.json holds save {sequence}, the child reported "
                     f"{reported.state_sequence}")
    return found


async def run_crash_loop(data_dir: str, kills: int, seed: int,
                         run_s: tuple[float, float] = (0.05, 0.4)) -> CrashResult:
    """Start the child, let it write for a random while, SIGKILL it, check, restart; `kills`
    times. Stops at the first finding (the files are then left as they are for a look)."""
    rng = random.Random(seed)
    result = CrashResult()
    reported = Reported()
    for round_number in range(kills):
        process = await asyncio.create_subprocess_exec(
            sys.executable, DRIVER, data_dir, str(rng.randrange(1 << 30)),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            first = await asyncio.wait_for(process.stdout.readline(), START_S)
            if not first.startswith(b"ready"):
                error = (await process.stderr.read()).decode(errors="replace")[-1500:]
                result.findings.append(f"round {round_number}: the child did not start after "
                                       f"the kill: {first!r} {error}")
                return result
            reported.take(first.decode())
            reader = asyncio.ensure_future(_follow(process.stdout, reported))
            await asyncio.sleep(rng.uniform(*run_s))
            process.send_signal(signal.SIGKILL)
            await process.wait()
            await asyncio.wait_for(reader, 10)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        result.kills += 1
        found = check_files(data_dir, reported)
        if found:
            result.findings += [f"after kill {result.kills}: {text}" for text in found]
            break
    result.sessions = len(reported.finished)
    result.writes_reported = reported.lines
    return result


async def _follow(stream: asyncio.StreamReader, reported: Reported) -> None:
    async for raw in stream:
        reported.take(raw.decode())
