"""The whole `phaeton run` against a minimal velib_python-style reference driver, both measured
in the same run.

What is compared:
- phaeton: `python -m phaeton run --config ...` (as service/run starts it on a GX, this
  interpreter in a venv like install.sh's: `installed_interpreter`) with the config
  `SimWorld.config_for_phaeton` writes: the default config with the web UI and the energy
  planner on, a fresh data directory every round; its modules, its
  dependencies and the standard library compiled to bytecode first (into this run's own
  cache), as a GX has them;
- reference: `/usr/bin/python3 benchmarks/reference_driver.py`: velib_python's VeDbusService
  re-created on Debian's dbus-python + GLib, the same 42 paths, the same three Modbus reads every
  2 s, a /SetCurrent write sent to register 1210 inside the SetValue call. It does nothing else
  (no GX readings, no control, no sessions store, no planner, no web UI): it is the floor a
  Venus driver for this charger costs;
- stack floor: `python benchmarks/stack_floor_driver.py` (the same venv): the reference's
  job exactly (`benchmarks/alfen_paths.py`), on phaeton's own stack: asyncio, phaeton's velib
  on dbus-next, pymodbus. Against the reference it shows what the chosen libraries cost by
  themselves; phaeton against it, what phaeton's own work costs.
Both drive the same Alfen simulator (pymodbus, in this process) of one simulated GX
(`phaeton.sim.world.SimWorld` at real-time speed: private dbus-daemon, settings and system
services), with a car plugged in throughout. Rounds interleave (the order of the three turns
each round); one service runs at a time, started fresh each round.

Measured per round, from the moment the process is launched:
- launch → D-Bus name owned: the arrival of the daemon's NameOwnerChanged for the name on a
  separate bus connection (no polling that would load the machine while the service starts);
  the median over each round's launch and `--starts` more start-only launches per service
  (default 7, interleaved, each stopped a second after its name), as start-up on this shared
  machine varies by ±50 ms from one launch to the next;
- CPU in the first 60 s (`--first-s`; `--settle-s` when that is shorter);
- RSS and USS (`/proc/<pid>/smaps_rollup`: Rss; Private_Clean + Private_Dirty) after
  `--settle-s` (default 120; the issue's target is after 10 minutes: `--settle-s 600`);
- steady CPU per minute over `--steady-s` after the settle time (default 60 s, or the settle
  time when that is shorter); for phaeton the planner's re-plans in that window are counted from
  its log, a re-plan costs a few tenths of a second;
- D-Bus SetValue on /SetCurrent (from another connection) → the simulator's register 1210
  receiving that value: p50 and p99 over `--changes` writes 7..15 A, 50..250 ms apart.
CPU is utime + stime of the process and its children, from the per-thread scheduler
statistics (`/proc/<pid>/task/*/schedstat`, ns) or `/proc/<pid>/stat` (10 ms ticks, includes
threads that ended), whichever is more; RSS/USS include child processes if there are any.

The table prints each figure for the three, the ratios phaeton / reference, floor / reference
and phaeton / floor (medians over the rounds; latencies pooled) and the targets of issue 14
(RSS ≤ 40 MB after 10 min; name owned ≤ 0.25 s; steady CPU ≤ 2× the reference) as met / not
met.

Run: .venv/bin/python benchmarks/service_bench.py [--rounds 3] [--settle-s 120] [--steady-s 60]
     [--changes 100] [--starts 7]; quick try (~3 min): --settle-s 30 --rounds 1; the issue's
     figures: --settle-s 600 --rounds 3.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from datetime import datetime

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from dbus_next import Message, MessageType, Variant  # noqa: E402
from dbus_next.aio import MessageBus  # noqa: E402

from phaeton.sim.world import SimWorld  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE_DRIVER = os.path.join(HERE, "reference_driver.py")
FLOOR_DRIVER = os.path.join(HERE, "stack_floor_driver.py")
SYSTEM_PYTHON = "/usr/bin/python3"
PHAETON = "phaeton"
REFERENCE = "reference"
FLOOR = "floor"
SIDES = (PHAETON, REFERENCE, FLOOR)
NAMES = {PHAETON: "com.victronenergy.evcharger.phaeton_0",
         REFERENCE: "com.victronenergy.evcharger.reference_0",
         FLOOR: "com.victronenergy.evcharger.floor_0"}
POLL_S = 2.0                       # the reference's poll = phaeton's default control tick
ALIVE_CHECK_S = 0.05
RSS_TARGET_MB = 40.0
RSS_TARGET_AFTER_S = 600.0
OWNED_TARGET_S = 0.25
STEADY_CPU_TARGET_RATIO = 2.0
REPLAN_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ .*planner: new ")


# ---- /proc -------------------------------------------------------------------------------------

def _tree(pid: int) -> list[int]:
    """pid and its live descendants."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    pending.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return found


def _cpu_one(pid: int) -> float:
    ticks_s = 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # utime, stime, and the children this process has waited for
        ticks_s = sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0
    ns = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                ns += int(f.read().split()[0])
    except OSError:
        pass
    return max(ticks_s, ns / 1e9)


def cpu_s(pid: int) -> float:
    return sum(_cpu_one(p) for p in _tree(pid))


def memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, USS) in MB of pid and its descendants, from smaps_rollup."""
    rss = uss = 0
    for p in _tree(pid):
        fields = {}
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                        fields[parts[0][:-1]] = int(parts[1])
        except OSError:
            continue
        rss += fields.get("Rss", 0)
        uss += fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0) \
            + fields.get("Private_Hugetlb", 0)
    return rss / 1024, uss / 1024


# ---- one service, one round ----------------------------------------------------------------------

class ServiceDied(Exception):
    pass


class NameWatch:
    """When a bus name gets an owner, from the daemon's NameOwnerChanged signal: the moment it
    arrives here, with no polling that would load this small machine while a service starts."""

    def __init__(self, bus: MessageBus):
        self._bus = bus
        self._owned: dict[str, float] = {}

    async def start(self) -> None:
        await self._bus.call(Message(
            destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus", member="AddMatch", signature="s",
            body=["type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged'"]))
        self._bus.add_message_handler(self._signal)

    def _signal(self, msg: Message) -> None:
        if msg.member == "NameOwnerChanged" and msg.body[2]:
            self._owned.setdefault(msg.body[0], time.perf_counter())

    def forget(self, name: str) -> None:
        self._owned.pop(name, None)

    def owned_at(self, name: str) -> float | None:
        return self._owned.get(name)


async def _name_has_owner(bus: MessageBus, name: str) -> bool:
    reply = await bus.call(Message(
        destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
        interface="org.freedesktop.DBus", member="NameHasOwner", signature="s", body=[name]))
    return bool(reply.body[0])


def _check_alive(process, log_path: str, what: str) -> None:
    if process.returncode is not None:
        with open(log_path, errors="replace") as f:
            tail = "".join(f.readlines()[-20:])
        raise ServiceDied(f"{what} ended (exit {process.returncode}); its log ends:\n{tail}")


async def _sleep_until(t: float, process, log_path: str, what: str) -> None:
    while True:
        _check_alive(process, log_path, what)
        left = t - time.perf_counter()
        if left <= 0:
            return
        await asyncio.sleep(min(left, 1.0))


def _count_replans(log_path: str, start: datetime, end: datetime) -> int:
    count = 0
    with open(log_path, errors="replace") as f:
        for line in f:
            match = REPLAN_LINE.match(line)
            if match:
                when = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")
                if start.replace(microsecond=0) <= when <= end:
                    count += 1
    return count


async def _write_latencies(client: MessageBus, name: str, world: SimWorld, changes: int,
                           rng: random.Random) -> tuple[list[float], int]:
    """SetValue /SetCurrent → register 1210: seconds per write; and how many never arrived."""
    received: asyncio.Queue = asyncio.Queue()
    world.charger_sim.on_setpoint = lambda amps: received.put_nowait((time.perf_counter(), amps))
    latencies, missed = [], 0
    try:
        for i in range(changes):
            amps = 7.0 + (i % 9)
            await asyncio.sleep(rng.uniform(0.05, 0.25))
            while not received.empty():
                received.get_nowait()
            start = time.perf_counter()
            reply = await client.call(Message(
                destination=name, path="/SetCurrent", interface="com.victronenergy.BusItem",
                member="SetValue", signature="v", body=[Variant("d", amps)]))
            if reply.message_type != MessageType.METHOD_RETURN or reply.body[0] != 0:
                missed += 1
                continue
            deadline = start + 5.0
            while True:
                try:
                    when, value = await asyncio.wait_for(
                        received.get(), max(0.0, deadline - time.perf_counter()))
                except asyncio.TimeoutError:
                    missed += 1
                    break
                if abs(value - amps) < 1e-3:
                    latencies.append(when - start)
                    break
    finally:
        world.charger_sim.on_setpoint = None
    return latencies, missed


async def _launch(side: str, tag: str, world: SimWorld, watch: NameWatch, directory: str,
                  args):
    """Start one service (phaeton with a fresh data directory); (process, log path,
    launch time), the launch time on the clock `watch` stamps the name with."""
    name = NAMES[side]
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=world.bus_address)
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    if side == PHAETON:
        config = world.config_for_phaeton(os.path.join(directory, f"data-{tag}"))
        config_path = os.path.join(directory, f"config-{tag}.yaml")
        with open(config_path, "w") as f:
            yaml.safe_dump(config, f)
        argv = [args.python, "-m", "phaeton", "run", "--config", config_path]
    else:
        driver = [SYSTEM_PYTHON, REFERENCE_DRIVER] if side == REFERENCE else \
            [args.python, FLOOR_DRIVER]
        argv = driver + ["--bus-name", name, "--modbus-host", "127.0.0.1", "--modbus-port",
                         str(world.alfen_port), "--poll-s", str(POLL_S)]
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if side == REFERENCE:       # Debian's own compiled standard library
        env.pop("PYTHONPYCACHEPREFIX", None)
    else:                       # this interpreter: the run's precompiled cache
        env["PYTHONPYCACHEPREFIX"] = args.pycache
    log_path = os.path.join(directory, f"{side}-{tag}.log")
    watch.forget(name)
    with open(log_path, "wb") as log:
        launched = time.perf_counter()
        process = await asyncio.create_subprocess_exec(*argv, env=env, cwd=ROOT,
                                                       stdout=log, stderr=log)
    return process, log_path, launched


async def _owned_s(side: str, watch: NameWatch, process, log_path: str, launched: float,
                   what: str) -> float:
    """Seconds from the launch to the service's name owned."""
    name = NAMES[side]
    while watch.owned_at(name) is None:
        _check_alive(process, log_path, what)
        if time.perf_counter() - launched > 60:
            raise ServiceDied(f"{what} did not own {name} within 60 s")
        await asyncio.sleep(ALIVE_CHECK_S)
    return watch.owned_at(name) - launched


async def _stop(side: str, process, probe: MessageBus) -> None:
    """Terminate the service; its name is gone before the next one starts."""
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 20)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
    for _ in range(500):
        if not await _name_has_owner(probe, NAMES[side]):
            break
        await asyncio.sleep(0.01)


async def start_only(side: str, number: int, world: SimWorld, probe: MessageBus,
                     watch: NameWatch, directory: str, args) -> float:
    """One more launch for the start-up figure alone: launch → name owned, then stopped
    (a second later, once the start-up work after the name has run)."""
    process, log_path, launched = await _launch(side, f"start-{number}", world, watch,
                                                directory, args)
    try:
        owned_s = await _owned_s(side, watch, process, log_path, launched,
                                 f"{side} (start {number + 1})")
        await asyncio.sleep(1.0)
    finally:
        await _stop(side, process, probe)
    return owned_s


async def run_one(side: str, round_no: int, world: SimWorld, probe: MessageBus,
                  watch: NameWatch, client: MessageBus, directory: str, args) -> dict:
    name = NAMES[side]
    what = f"{side} (round {round_no + 1})"
    first_s = min(args.first_s, args.settle_s)
    process, log_path, launched = await _launch(side, str(round_no), world, watch, directory,
                                                args)
    try:
        owned_s = await _owned_s(side, watch, process, log_path, launched, what)

        await _sleep_until(launched + first_s, process, log_path, what)
        cpu_first = cpu_s(process.pid)
        await _sleep_until(launched + args.settle_s, process, log_path, what)
        rss_mb, uss_mb = memory_mb(process.pid)
        cpu_settled, wall_start = cpu_s(process.pid), datetime.now()
        await _sleep_until(launched + args.settle_s + args.steady_s, process, log_path, what)
        cpu_end, wall_end = cpu_s(process.pid), datetime.now()
        replans = _count_replans(log_path, wall_start, wall_end) if side == PHAETON else None

        latencies, missed = await _write_latencies(client, name, world, args.changes,
                                                   random.Random(round_no))
        _check_alive(process, log_path, what)
    finally:
        await _stop(side, process, probe)
    result = {"owned_s": owned_s, "cpu_first_s": cpu_first, "first_s": first_s,
              "rss_mb": rss_mb, "uss_mb": uss_mb,
              "steady_cpu_per_min_s": (cpu_end - cpu_settled) / args.steady_s * 60.0,
              "replans": replans, "latencies": latencies, "missed": missed}
    lat = sorted(latencies)
    print(f"  round {round_no + 1} {side:9}: owned {owned_s:.3f} s, CPU first {first_s:g} s "
          f"{cpu_first:.3f} s, RSS/USS {rss_mb:.1f}/{uss_mb:.1f} MB, steady "
          f"{result['steady_cpu_per_min_s']:.3f} s/min"
          + (f" ({replans} re-plans)" if replans is not None else "")
          + (f", write→1210 p50 {statistics.median(lat) * 1000:.1f} ms" if lat else "")
          + (f", {missed} writes lost" if missed else ""), flush=True)
    return result


# ---- the table -----------------------------------------------------------------------------------

def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered))) - 1))]


def print_table(results: dict[str, list[dict]], start_owned: dict[str, list[float]],
                args) -> None:
    def median(side: str, key: str) -> float:
        return statistics.median(r[key] for r in results[side])

    def pooled(side: str, q: float) -> float:
        return _pct([x for r in results[side] for x in r["latencies"]], q) * 1000

    def row(label: str, figure, fmt: str, target: str = "", met=None):
        """figure(side) for each side; `met(phaeton's figure, the reference's)`."""
        values = {side: figure(side) for side in SIDES}
        verdict = None if met is None else met(values[PHAETON], values[REFERENCE])
        rows.append((label, values, fmt, target, verdict))

    first_s = results[PHAETON][0]["first_s"]
    rows: list = []   # (label, {side: figure}, format, target text, met or None)
    rss_note = "" if args.settle_s >= RSS_TARGET_AFTER_S else \
        f" (measured after {args.settle_s:g} s)"
    row(f"RSS after {args.settle_s:g} s, MB", lambda side: median(side, "rss_mb"), "{:.1f}",
        f"≤ {RSS_TARGET_MB:g} MB after 10 min{rss_note}", lambda p, r: p <= RSS_TARGET_MB)
    row(f"USS after {args.settle_s:g} s, MB", lambda side: median(side, "uss_mb"), "{:.1f}")
    def owned(side: str) -> float:
        return statistics.median([r["owned_s"] for r in results[side]]
                                 + start_owned[side])

    launches = args.rounds + args.starts
    row(f"launch → D-Bus name owned, s ({launches} launches)", owned, "{:.3f}",
        f"≤ {OWNED_TARGET_S:g} s", lambda p, r: p <= OWNED_TARGET_S)
    row(f"CPU in the first {first_s:g} s, s", lambda side: median(side, "cpu_first_s"),
        "{:.3f}")
    row("steady CPU per minute, s", lambda side: median(side, "steady_cpu_per_min_s"), "{:.3f}",
        f"≤ {STEADY_CPU_TARGET_RATIO:g}× the reference",
        lambda p, r: r > 0 and p / r <= STEADY_CPU_TARGET_RATIO)
    for label, q in (("p50", 0.50), ("p99", 0.99)):
        row(f"write → register 1210 {label}, ms", lambda side, q=q: pooled(side, q), "{:.1f}")

    print()
    print("phaeton run (web UI and planner on) against the reference driver "
          "(benchmarks/reference_driver.py:")
    print("velib_python's VeDbusService on dbus-python + GLib, same 42 paths, same Modbus reads "
          "every 2 s)")
    print("and the stack floor (benchmarks/stack_floor_driver.py: the reference's job on phaeton's "
          "stack, asyncio + velib on dbus-next + pymodbus),")
    print(f"measured in this run: {args.rounds} interleaved round(s), settle {args.settle_s:g} s, "
          f"steady window {args.steady_s:g} s, {args.changes} writes per round;")
    print("medians over the rounds, write latencies pooled; phaeton/ref, floor/ref and "
          "phaeton/floor are ratios of the figures.")
    width = max(len(r[0]) for r in rows) + 2
    print(f"{'':{width}}{'phaeton':>9}{'reference':>11}{'floor':>8}{'phaeton/ref':>13}"
          f"{'floor/ref':>11}{'phaeton/floor':>15}   target")

    def ratio(a: float, b: float, width: int) -> str:
        return f"{a / b:{width}.1f}" if b else f"{'-':>{width}}"

    for label, values, fmt, target, met in rows:
        p, r, f = values[PHAETON], values[REFERENCE], values[FLOOR]
        verdict = "" if met is None else ("  met" if met else "  NOT MET")
        print(f"{label:{width}}{fmt.format(p):>9}{fmt.format(r):>11}{fmt.format(f):>8}"
              f"{ratio(p, r, 13)}{ratio(f, r, 11)}{ratio(p, f, 15)}   {target}{verdict}".rstrip())
    floor_cpu, reference_cpu = (median(side, "steady_cpu_per_min_s") for side in (FLOOR, REFERENCE))
    if reference_cpu > 0 and floor_cpu / reference_cpu > STEADY_CPU_TARGET_RATIO:
        print(f"the stack floor, doing only the reference's job, takes "
              f"{floor_cpu / reference_cpu:.1f}× the reference's steady CPU: the ≤ "
              f"{STEADY_CPU_TARGET_RATIO:g}× target is below what phaeton's stack (asyncio, "
              f"dbus-next, pymodbus) costs for that job alone")
    floor_rss = median(FLOOR, "rss_mb")
    print(f"what phaeton adds to its stack: {median(PHAETON, 'rss_mb') - floor_rss:.1f} MB RSS "
          f"(the target leaves {RSS_TARGET_MB - floor_rss:.1f} MB above the floor), "
          f"{median(PHAETON, 'steady_cpu_per_min_s') - floor_cpu:.3f} s/min steady CPU")
    replans = [r["replans"] for r in results[PHAETON]]
    lost = {side: sum(r["missed"] for r in results[side]) for side in results}
    print(f"phaeton re-planned {sum(replans)} time(s) inside its steady windows; writes that "
          f"did not reach 1210 within 5 s: phaeton {lost[PHAETON]}, reference {lost[REFERENCE]}, "
          f"floor {lost[FLOOR]}")


# ---- main ----------------------------------------------------------------------------------------

def precompile(pycache: str) -> None:
    """Everything `phaeton run` can import compiled to bytecode, as a GX has it: pip compiles
    phaeton and its dependencies at install, Venus OS ships the standard library compiled. Into
    a cache of this run (PYTHONPYCACHEPREFIX), not the source tree. Without the standard library
    and site-packages here, the first round alone paid for compiling them (its name owned
    ~0.2 s later and twice the start-up CPU of the rounds after it)."""
    env = dict(os.environ, PYTHONPYCACHEPREFIX=pycache)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    compile_all = [sys.executable, "-m", "compileall", "-qq", "-j", "0"]
    subprocess.run(compile_all + ["phaeton", "velib", "benchmarks/alfen_paths.py"], cwd=ROOT,
                   env=env, check=True)
    # the reference runs on Debian's compiled standard library (no cache prefix): the module
    # the two drivers share is compiled for it beside its source (benchmarks/__pycache__)
    plain = dict(os.environ)
    plain.pop("PYTHONDONTWRITEBYTECODE", None)
    plain.pop("PYTHONPYCACHEPREFIX", None)
    subprocess.run([SYSTEM_PYTHON, "-m", "compileall", "-qq", "benchmarks/alfen_paths.py"],
                   cwd=ROOT, env=plain, check=True)
    # the libraries' own test suites and Python 2 leftovers do not compile: not an error here
    libraries = sorted({sysconfig.get_path(key) for key in ("stdlib", "platstdlib", "purelib",
                                                             "platlib")})
    subprocess.run(compile_all + ["-x", r"[/\\](tests?|idlelib|lib2to3)[/\\]", *libraries],
                   cwd=ROOT, env=env, check=False)


def installed_interpreter(directory: str) -> str:
    """This interpreter as install.sh leaves it on a GX: a venv whose site-packages holds the
    dependencies and no development hooks. The development venv has phaeton installed in
    editable mode, and its `.pth` hook imports pathlib and an import finder into every process
    it starts (about 10 ms before anything else runs), which a GX does not have. A venv of
    this interpreter sees the development venv's site-packages through a plain path line in a
    `.pth` file: its packages are found, its `.pth` files are not run. phaeton itself comes from
    the source tree, the current directory of `python -m phaeton`."""
    venv = os.path.join(directory, "venv")
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", venv], check=True)
    python = os.path.join(venv, "bin", "python")
    site_packages = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(site_packages, "development-venv.pth"), "w") as f:
        f.write("\n".join(sorted({sysconfig.get_path("purelib"),
                                  sysconfig.get_path("platlib")})) + "\n")
    return python


async def main(args) -> None:
    directory = tempfile.mkdtemp(prefix="phaeton-service-bench-")
    results: dict[str, list[dict]] = {side: [] for side in SIDES}
    start_owned: dict[str, list[float]] = {side: [] for side in SIDES}   # --starts launches
    print(f"logs and data in {directory}", flush=True)
    args.pycache = tempfile.mkdtemp(prefix="phaeton-service-bench-pycache-")
    installed = tempfile.mkdtemp(prefix="phaeton-service-bench-venv-")
    try:
        precompile(args.pycache)
        args.python = installed_interpreter(installed)
        await _rounds(args, directory, results, start_owned)
    finally:
        shutil.rmtree(args.pycache, ignore_errors=True)
        shutil.rmtree(installed, ignore_errors=True)
    print_table(results, start_owned, args)


async def _rounds(args, directory: str, results: dict[str, list[dict]],
                  start_owned: dict[str, list[float]]) -> None:
    async with SimWorld(speed=1.0) as world:
        await world.plug_in()
        probe = await MessageBus(bus_address=world.bus_address).connect()
        client = await MessageBus(bus_address=world.bus_address).connect()
        watch = NameWatch(probe)
        await watch.start()
        try:
            for round_no in range(args.rounds):
                turn = round_no % len(SIDES)
                order = SIDES[turn:] + SIDES[:turn]
                for side in order:
                    results[side].append(await run_one(side, round_no, world, probe, watch,
                                                       client, directory, args))
            for number in range(args.starts):
                turn = number % len(SIDES)
                for side in SIDES[turn:] + SIDES[:turn]:
                    owned_s = await start_only(side, number, world, probe, watch, directory,
                                               args)
                    start_owned[side].append(owned_s)
            if args.starts:
                print("  start-only launches, name owned in s: " + "; ".join(
                    f"{side} " + " ".join(f"{x:.3f}" for x in start_owned[side])
                    for side in SIDES), flush=True)
        finally:
            probe.disconnect()
            client.disconnect()


def _arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settle-s", type=float, default=120.0,
                        help="RSS/USS are taken this long after launch (the target: 600)")
    parser.add_argument("--first-s", type=float, default=60.0,
                        help="the start-up CPU window (cut to --settle-s when that is shorter)")
    parser.add_argument("--steady-s", type=float, default=None,
                        help="steady CPU window after the settle time (default 60, or "
                             "--settle-s when shorter)")
    parser.add_argument("--changes", type=int, default=100, help="SetValue writes per round")
    parser.add_argument("--starts", type=int, default=7,
                        help="start-only launches per service after the rounds, for the "
                             "name-owned figure (one launch per round is too few on a noisy "
                             "machine)")
    args = parser.parse_args()
    if args.steady_s is None:
        args.steady_s = min(60.0, args.settle_s)
    if args.rounds < 1 or args.settle_s <= 0 or args.steady_s <= 0 or args.changes < 1 \
            or args.starts < 0:
        parser.error("rounds, settle, steady window and changes must be positive, starts not "
                     "negative")
    return args


if __name__ == "__main__":
    if not os.path.exists(SYSTEM_PYTHON):
        raise SystemExit(f"the reference driver needs {SYSTEM_PYTHON} with python3-dbus and "
                         f"python3-gi (apt-get install python3-dbus python3-gi)")
    try:
        asyncio.run(main(_arguments()))
    except ServiceDied as exc:
        raise SystemExit(f"service_bench: {exc}")
