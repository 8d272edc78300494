"""D-Bus export benchmark: phaeton's evcharger service against a velib_python-style reference,
both measured in the same run.

What is compared (both run at the same time on one private dbus-daemon, same 42 paths):
- phaeton: `phaeton.venus.evcharger_service.EvChargerService` (velib on dbus-next) with the seven
  read-only `/Planner/*` paths, exactly as `phaeton run` builds it, run by this interpreter;
- reference: the D-Bus part of `benchmarks/reference_driver.py` (velib_python's `VeDbusService`
  re-created on Debian's dbus-python with a GLib main loop), run by `/usr/bin/python3`, without
  Modbus. Both interpreters are CPython 3.11 here.

Rounds interleave (A, B in even rounds, B, A in odd ones); each figure is the median over the
rounds. Per round and service:
- round trips per second from one python3-dbus client (Debian's dbus-python, the library
  Victron's own tools use), one call at a time, `--seconds` each: GetValue and GetText of
  `/Ac/Power`, GetValue of `/` (every value as a dict), GetItems of `/`, and SetValue of
  `/SetCurrent` alternating 10/11 A (every write accepted and signalled with PropertiesChanged);
- the service's own CPU time (process_time) to publish one control tick: the 27 paths phaeton's
  tick sets, 10 of them changed, so one ItemsChanged with 10 entries, until it is written to the
  socket; median and p95 over `--batches` ticks;
- RSS and USS (`/proc/<pid>/smaps_rollup`: Rss, Private_Clean + Private_Dirty) of each service
  process after the last round.
Every line prints phaeton, the reference and the ratio phaeton / reference; for round trips
a ratio above 1 means phaeton is faster, for CPU and memory a ratio above 1 means phaeton costs
more.

Run: .venv/bin/python benchmarks/dbus_bench.py [--rounds 3] [--seconds 1.5] [--batches 200]
(needs /usr/bin/python3 with python3-dbus and python3-gi, as the reference driver does).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE_DRIVER = os.path.join(HERE, "reference_driver.py")
SYSTEM_PYTHON = "/usr/bin/python3"
PHAETON_NAME = "com.victronenergy.evcharger.phaeton_0"
REFERENCE_NAME = "com.victronenergy.evcharger.reference_0"
PLANNER_PATHS = ("/Planner/Strategy", "/Planner/TargetSoc", "/Planner/NextSlot",
                 "/Planner/PlannedCost", "/Planner/PlannedSavings", "/Planner/Reason",
                 "/Planner/DessConflict")

CALLS = ("GetValue /Ac/Power", "GetText /Ac/Power", "GetValue /", "GetItems /",
         "SetValue /SetCurrent")

CLIENT = r"""
import sys, time, json, dbus
bus = dbus.SystemBus()
names, seconds = json.loads(sys.argv[1]), float(sys.argv[2])
out = {}
for name in names:
    power = bus.get_object(name, '/Ac/Power', introspect=False)
    root = bus.get_object(name, '/', introspect=False)
    setcurrent = bus.get_object(name, '/SetCurrent', introspect=False)
    set_value = setcurrent.get_dbus_method('SetValue', 'com.victronenergy.BusItem')
    amps = [dbus.Double(10.0, variant_level=1), dbus.Double(11.0, variant_level=1)]
    state = [0]
    def write():
        state[0] ^= 1
        if set_value(amps[state[0]]) != 0:
            raise SystemExit('SetValue refused on ' + name)
    calls = {
        'GetValue /Ac/Power': power.get_dbus_method('GetValue', 'com.victronenergy.BusItem'),
        'GetText /Ac/Power': power.get_dbus_method('GetText', 'com.victronenergy.BusItem'),
        'GetValue /': root.get_dbus_method('GetValue', 'com.victronenergy.BusItem'),
        'GetItems /': root.get_dbus_method('GetItems', 'com.victronenergy.BusItem'),
        'SetValue /SetCurrent': write,
    }
    rates = {}
    for label, call in calls.items():
        for _ in range(50):
            call()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for _ in range(50):
                call()
            n += 50
        rates[label] = n / (time.perf_counter() - t0)
    out[name] = rates
print(json.dumps(out))
"""


def tick_values(n: int) -> dict:
    """The 27 paths phaeton's control tick sets while a car charges; 10 change every tick."""
    values = {
        "/Connected": 1, "/Mgmt/Connection": "Modbus TCP 192.168.1.50", "/Status": 2,
        "/Serial": "ACE0123456", "/Model": "NG910", "/FirmwareVersion": "4.10.0-3250",
        "/HardwareVersion": "NG910",
        "/Current": round(15.9 + 0.01 * (n % 10), 2),
        "/Ac/Power": 11000.5 + n % 97,
        "/Ac/L1/Power": 3660.5 + n % 31, "/Ac/L2/Power": 3670.5 + n % 29,
        "/Ac/L3/Power": 3650.5 + n % 37, "/Ac/PhaseCount": 3,
        "/Ac/Energy/Forward": round(1000.0 + 0.006 * n, 3),
        "/Session/Energy": round(0.006 * n, 3), "/Session/Time": 2 * n, "/ChargingTime": 2 * n,
        "/Session/Cost": round(0.01 * n, 2),
        "/Planner/Strategy": 2, "/Planner/TargetSoc": 55.0, "/Planner/NextSlot": 1780000200,
        "/Planner/PlannedCost": 1.23, "/Planner/PlannedSavings": 0.45,
        "/Planner/Reason": "plan only, the battery is not steered (planner.ess_control is off)",
        "/Planner/DessConflict": 0,
    }
    return values


# ---- phaeton's side (a child process: `dbus_bench.py --serve`) ------------------------------

async def serve() -> None:
    """Run phaeton's evcharger service; answer `publish <json>` and `quit` lines on stdin."""
    from phaeton.venus.evcharger_service import ChargerLimits, EvChargerService, UserChoices

    choices = UserChoices(mode=0, start_stop=1, set_current_a=16.0, max_current_a=16.0,
                          phases=3, auto_start=1, position=1, custom_name="")
    evcharger = EvChargerService("0", choices, ChargerLimits(6.0, 16.0, 3, False),
                                 lambda path, value: None, device_instance=40,
                                 connection="Modbus TCP 192.168.1.50")
    for path in PLANNER_PATHS:              # as phaeton.app adds the planner's state paths
        evcharger.service.add_path(path, None)
    await evcharger.register()
    svc = evcharger.service
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)   # a publish line carries every batch
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready", flush=True)
    while True:
        verb, _, rest = (await reader.readline()).decode().strip().partition(" ")
        if verb in ("", "quit"):
            break
        if verb == "publish":
            samples = []
            for values in json.loads(rest):
                start = time.process_time()
                evcharger.publish(values)
                if _queued(svc.bus):
                    # not all on the socket yet: wait for it (counted, as the reference's flush)
                    from velib import wire
                    await svc.bus.send(wire.signal("/", "com.victronenergy.BusItem",
                                                   "BenchMark", "", b""))
                samples.append(time.process_time() - start)
                await asyncio.sleep(0.002)
            print(json.dumps(samples), flush=True)
    await evcharger.close()


def _queued(bus) -> bool:
    writer = getattr(bus, "_writer", None)
    return writer is not None and (writer.buf is not None or writer.messages.qsize() > 0)


# ---- the host --------------------------------------------------------------------------------

def memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, USS) in kB from /proc/<pid>/smaps_rollup."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                fields[parts[0][:-1]] = int(parts[1])
    uss = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0) \
        + fields.get("Private_Hugetlb", 0)
    return fields.get("Rss", 0), uss


class Child:
    """A service process that reads commands on stdin and answers on stdout."""

    def __init__(self, label: str, argv: list[str], env: dict):
        self.label = label
        self.process = subprocess.Popen(argv, env=env, text=True, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE)

    def ready(self) -> None:
        line = self.process.stdout.readline().strip()
        if line != "ready":
            raise SystemExit(f"{self.label} did not start (said {line!r}); see its stderr above")

    def publish(self, batches: list[dict]) -> list[float]:
        self.process.stdin.write("publish " + json.dumps(batches) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write("quit\n")
                self.process.stdin.flush()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


def _check_system_python() -> None:
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import dbus, gi.repository.GLib"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        raise SystemExit(f"the reference needs {SYSTEM_PYTHON} with Debian's python3-dbus and "
                         f"python3-gi (apt-get install python3-dbus python3-gi):\n"
                         f"{probe.stderr.strip()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.5, help="per call type and round")
    parser.add_argument("--batches", type=int, default=200, help="published ticks per round")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve())
        return
    _check_system_python()

    from phaeton.sim.private_bus import PrivateBus

    rates: dict[str, dict[str, list[float]]] = {PHAETON_NAME: {}, REFERENCE_NAME: {}}
    publish: dict[str, list[float]] = {PHAETON_NAME: [], REFERENCE_NAME: []}
    with PrivateBus() as bus:
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=bus.address)
        env.pop("DBUS_SESSION_BUS_ADDRESS", None)
        children = {}
        try:
            children[PHAETON_NAME] = Child("phaeton", [sys.executable, __file__, "--serve"], env)
            children[REFERENCE_NAME] = Child(
                "reference", [SYSTEM_PYTHON, REFERENCE_DRIVER, "--bus-name", REFERENCE_NAME,
                              "--commands-on-stdin"], env)
            for child in children.values():
                child.ready()
            counter = 0
            for child in children.values():            # same start values in both
                child.publish([tick_values(counter)])
            time.sleep(0.5)
            for round_no in range(args.rounds):
                order = [PHAETON_NAME, REFERENCE_NAME]
                if round_no % 2:
                    order.reverse()
                client = subprocess.run([SYSTEM_PYTHON, "-c", CLIENT, json.dumps(order),
                                         str(args.seconds)],
                                        env=env, capture_output=True, text=True)
                if client.returncode != 0:
                    raise SystemExit(f"the python3-dbus client failed:\n{client.stderr}")
                for name, by_call in json.loads(client.stdout).items():
                    for label, rate in by_call.items():
                        rates[name].setdefault(label, []).append(rate)
                batches = [tick_values(counter + 1 + i) for i in range(args.batches)]
                counter += args.batches
                for name in order:
                    publish[name].extend(children[name].publish(batches))
            memory = {name: memory_kb(child.process.pid) for name, child in children.items()}
        finally:
            for child in children.values():
                child.stop()

    def ratio(a: float, b: float) -> str:
        return f"{a / b:6.2f}" if b else "     -"

    print("D-Bus export benchmark: phaeton's evcharger service (velib, dbus-next) against a")
    print("reference built like velib_python's VeDbusService (dbus-python + GLib, "
          "benchmarks/reference_driver.py),")
    print(f"both with the same 42 paths on one private dbus-daemon, measured in this run: "
          f"{args.rounds} interleaved rounds,")
    print("python3-dbus client, one call at a time; medians over the rounds.")
    print(f"{'':40}{'phaeton':>11}{'reference':>11}{'ratio':>8}")
    for label in CALLS:
        a = statistics.median(rates[PHAETON_NAME][label])
        b = statistics.median(rates[REFERENCE_NAME][label])
        print(f"  {label + ' round trips/s':38}{a:11.0f}{b:11.0f}  {ratio(a, b)}  "
              f"(>1: phaeton faster)")
    for label, pick in (("median", lambda s: statistics.median(s)),
                        ("p95", lambda s: s[min(len(s) - 1, int(len(s) * 0.95))])):
        a = pick(sorted(publish[PHAETON_NAME])) * 1000
        b = pick(sorted(publish[REFERENCE_NAME])) * 1000
        print(f"  {'publish a tick (10 of 27), ' + label + ' ms':38}{a:11.3f}{b:11.3f}  "
              f"{ratio(a, b)}  (service CPU; >1: phaeton costs more)")
    for index, label in ((0, "RSS"), (1, "USS")):
        a = memory[PHAETON_NAME][index] / 1024
        b = memory[REFERENCE_NAME][index] / 1024
        print(f"  {label + ' after the rounds, MB':38}{a:11.1f}{b:11.1f}  {ratio(a, b)}  "
              f"(>1: phaeton uses more)")


if __name__ == "__main__":
    main()
