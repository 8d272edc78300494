"""velib export benchmark: a service with 60 paths on a private dbus-daemon.

Prints
- GetValue and GetItems round trips per second from one python3-dbus client (Debian's
  dbus-python under /usr/bin/python3, the library Victron's own tools use),
- CPU time the service process spends to publish a batch of 50 changed paths (50
  PropertiesChanged + 1 ItemsChanged, until written to the socket), median and p95,
- idle RSS of the service process.

Reference (Victron's velib_python on dbus-python, same machine, 60 paths): ~8,800 GetValue/s,
~2,600 GetItems/s, ~0.4 ms per 50-path batch, ~20 MB idle RSS.

Run: python benchmarks/dbus_bench.py [--seconds 3]
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

SERVICE = "com.victronenergy.evcharger.bench"

CLIENT = r"""
import sys, time, json, dbus
bus = dbus.SystemBus()
name, seconds = sys.argv[1], float(sys.argv[2])
mode_obj = bus.get_object(name, '/Ac/Power', introspect=False)
root_obj = bus.get_object(name, '/', introspect=False)
get_value = mode_obj.get_dbus_method('GetValue', 'com.victronenergy.BusItem')
get_items = root_obj.get_dbus_method('GetItems', 'com.victronenergy.BusItem')
out = {}
for label, call in (('GetValue', get_value), ('GetItems', get_items)):
    for _ in range(50):
        call()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(100):
            call()
        n += 100
    out[label] = n / (time.perf_counter() - t0)
print(json.dumps(out))
"""


def build_service():
    from velib.service import VeDbusService

    svc = VeDbusService(SERVICE)
    paths = []
    for i in range(60):
        path = f"/Bench/Group{i // 10}/Value{i}" if i >= 10 else f"/Ac/L{i % 3 + 1}/Item{i}"
        if i == 0:
            path = "/Ac/Power"
        svc.add_path(path, float(i), text=lambda v: f"{v:.1f} W")
        paths.append(path)
    return svc, paths


async def serve() -> None:
    """Child process: run the service and publish batches on request (commands on stdin)."""
    svc, paths = build_service()
    await svc.register()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready", flush=True)
    counter = 0
    while True:
        line = (await reader.readline()).decode().strip()
        if not line or line == "quit":
            break
        if line.startswith("publish"):
            rounds = int(line.split()[1])
            samples = []
            for _ in range(rounds):
                counter += 1
                t0 = time.process_time()
                with svc.batch():
                    for i, path in enumerate(paths[:50]):
                        svc[path] = float(counter * 100 + i)
                # Until the writer has put every message on the socket.
                await svc.bus.send(_ping(svc))
                samples.append(time.process_time() - t0)
                await asyncio.sleep(0.002)
            print(json.dumps(samples), flush=True)
        elif line == "rss":
            print(_rss_kb(os.getpid()), flush=True)
    await svc.close()


def _ping(svc):
    # A no-op signal whose write completes after the batch's messages (same FIFO writer).
    from velib import wire
    return wire.signal("/", "com.victronenergy.BusItem", "BenchMark", "", b"")


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve())
        return

    from phaeton.sim.private_bus import PrivateBus

    with PrivateBus() as bus:
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=bus.address)
        service = subprocess.Popen([sys.executable, __file__, "--serve"], env=env, text=True,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            assert service.stdout.readline().strip() == "ready"
            time.sleep(0.5)
            service.stdin.write("rss\n")
            service.stdin.flush()
            idle_rss_kb = int(service.stdout.readline())
            client = subprocess.run(["/usr/bin/python3", "-c", CLIENT, SERVICE,
                                     str(args.seconds)],
                                    env=env, capture_output=True, text=True, check=True)
            rates = json.loads(client.stdout)
            service.stdin.write("publish 300\n")
            service.stdin.flush()
            samples = json.loads(service.stdout.readline())
            service.stdin.write("quit\n")
            service.stdin.flush()
            service.wait(timeout=10)
        finally:
            if service.poll() is None:
                service.kill()
    samples.sort()
    print("velib export benchmark (60 paths, private dbus-daemon, python3-dbus client)")
    print(f"  GetValue round trips/s : {rates['GetValue']:8.0f}   (velib_python ~8,800)")
    print(f"  GetItems round trips/s : {rates['GetItems']:8.0f}   (velib_python ~2,600)")
    print(f"  publish 50 changed paths, service CPU: median "
          f"{statistics.median(samples) * 1000:.3f} ms, p95 "
          f"{samples[int(len(samples) * 0.95)] * 1000:.3f} ms   (velib_python ~0.4 ms)")
    print(f"  idle RSS               : {idle_rss_kb / 1024:8.1f} MB   (velib_python ~20 MB)")


if __name__ == "__main__":
    main()
