"""Benchmark of the web UI server: requests/s on /api/status while SSE clients are held and the
control tick keeps its cadence; page weight of the dashboard.

The server side runs like in phaeton: one event loop with the web app (real-parts backend on a
private D-Bus daemon, see tests/web_backend_for_tests.py) and a tick task that publishes a status
every --tick-s and records how late each tick woke up. The load comes from a separate process
(so it does not share the server's loop): --sse clients stay connected to /api/events and count
events, while /api/status is requested (1) paced at --rate req/s, then (2) as fast as --workers
concurrent connections can go.

Targets (issue 5): 20 SSE clients + 200 req/s with no tick later than interval + 50 ms; the
dashboard < 150 kB uncompressed with all its assets.

    python benchmarks/web_bench.py [--seconds 10] [--rate 200] [--sse 20] [--workers 8]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TICK_TARGET_LATE_S = 0.050
PAGE_TARGET_BYTES = 150_000


# ---- page weight -----------------------------------------------------------------------------

def page_weight(static_dir: Path) -> dict:
    """Bytes of the dashboard's HTML plus every /static/ asset it references (uncompressed)."""
    from phaeton.web.pages import PAGES, render_page
    html = render_page(*PAGES["/"]).decode("utf-8")
    assets = sorted(set(re.findall(r'(?:src|href)="/static/([^"]+)"', html)))
    sizes = {"index.html": len(html.encode("utf-8"))}
    for name in assets:
        sizes[name] = (static_dir / name).stat().st_size
    return {"files": sizes, "total_bytes": sum(sizes.values()),
            "all_static_bytes": sum(p.stat().st_size for p in static_dir.iterdir())}


# ---- load generator (runs in its own process) ------------------------------------------------

async def _sse_client(session, url: str, counts: list, index: int, stop: asyncio.Event) -> None:
    async with session.get(url + "/api/events") as response:
        while not stop.is_set():
            try:
                line = await asyncio.wait_for(response.content.readline(), 0.5)
            except asyncio.TimeoutError:
                continue
            if not line:
                return
            if line.startswith(b"event: status"):
                counts[index] += 1


async def _paced(session, url: str, rate: float, seconds: float) -> dict:
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    sent = 0
    pending = set()

    async def one() -> None:
        nonlocal errors
        t0 = time.perf_counter()
        async with session.get(url + "/api/status") as response:
            await response.read()
            if response.status != 200:
                errors += 1
        latencies.append(time.perf_counter() - t0)

    while time.perf_counter() - start < seconds:
        due = start + sent / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one())
        pending.add(task)
        task.add_done_callback(pending.discard)
        sent += 1
    if pending:
        await asyncio.gather(*pending)
    elapsed = time.perf_counter() - start
    return _summary(latencies, errors, elapsed)


async def _flat_out(session, url: str, workers: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() - start < seconds:
            t0 = time.perf_counter()
            async with session.get(url + "/api/status") as response:
                await response.read()
                if response.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker() for _ in range(workers)))
    return _summary(latencies, errors, time.perf_counter() - start)


def _summary(latencies: list[float], errors: int, elapsed: float) -> dict:
    ordered = sorted(latencies) or [0.0]
    return {"requests": len(latencies), "errors": errors,
            "req_per_s": round(len(latencies) / elapsed, 1),
            "latency_p50_ms": round(ordered[len(ordered) // 2] * 1000, 2),
            "latency_p99_ms": round(ordered[int(len(ordered) * 0.99)] * 1000, 2)}


async def run_load(url: str, sse: int, rate: float, workers: int, seconds: float) -> dict:
    import aiohttp
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        counts = [0] * sse
        stop = asyncio.Event()
        clients = [asyncio.create_task(_sse_client(session, url, counts, i, stop))
                   for i in range(sse)]
        await asyncio.sleep(0.5)
        paced_from = time.time()
        paced = await _paced(session, url, rate, seconds)
        flat_from = time.time()
        flat = await _flat_out(session, url, workers, seconds)
        paced["window"] = [paced_from, flat_from]
        flat["window"] = [flat_from, time.time()]
        stop.set()
        await asyncio.gather(*clients, return_exceptions=True)
    return {"paced": paced, "flat_out": flat, "sse_events_min": min(counts, default=0),
            "sse_events_max": max(counts, default=0), "sse_clients": sse}


# ---- server side -----------------------------------------------------------------------------

async def serve_and_measure(args) -> dict:
    from aiohttp import web

    from phaeton.sim.private_bus import PrivateBus
    from phaeton.web.app import create_web_app
    from tests.web_backend_for_tests import WebBackendForTests

    with PrivateBus() as bus, tempfile.TemporaryDirectory() as tmp:
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = bus.address
        backend = await WebBackendForTests.create(Path(tmp), bus_address=bus.address)
        runner = web.AppRunner(create_web_app(backend, {"password_hash": None,
                                                      "max_sse_per_client": args.sse}),
                               access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        lateness: list[tuple[float, float]] = []  # (wall time, seconds late)
        stop = asyncio.Event()

        async def tick() -> None:
            loop = asyncio.get_running_loop()
            due = loop.time() + args.tick_s
            pv = 0.0
            while not stop.is_set():
                await asyncio.sleep(max(0.0, due - loop.time()))
                lateness.append((time.time(), loop.time() - due))
                pv = (pv + 137.0) % 6000
                backend.publish(power={"pv_w": pv})
                due += args.tick_s

        ticker = asyncio.create_task(tick())
        command = [sys.executable, __file__, "--load", f"http://127.0.0.1:{port}",
                   "--sse", str(args.sse), "--rate", str(args.rate),
                   "--workers", str(args.workers), "--seconds", str(args.seconds)]
        process = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE)
        out, _ = await process.communicate()
        stop.set()
        await ticker
        await runner.cleanup()
        await backend.close()
    load = json.loads(out)
    result = {"load": load, "ticks": len(lateness),
              "worst_tick_late_ms": round(max((late for _, late in lateness), default=0) * 1000,
                                          1)}
    for name in ("paced", "flat_out"):
        start, end = load[name]["window"]
        inside = [late for at, late in lateness if start <= at <= end]
        result[f"ticks_{name}"] = len(inside)
        result[f"worst_tick_late_ms_{name}_phase"] = round(max(inside, default=0) * 1000, 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--rate", type=float, default=200.0, help="paced requests per second")
    parser.add_argument("--sse", type=int, default=20, help="SSE clients held open")
    parser.add_argument("--workers", type=int, default=8, help="connections in the flat-out phase")
    parser.add_argument("--tick-s", type=float, default=2.0, help="control tick interval")
    parser.add_argument("--load", help=argparse.SUPPRESS)  # internal: be the load process
    args = parser.parse_args()
    if args.load:
        print(json.dumps(asyncio.run(run_load(args.load, args.sse, args.rate, args.workers,
                                              args.seconds))))
        return 0
    weight = page_weight(ROOT / "phaeton" / "web" / "static")
    result = asyncio.run(serve_and_measure(args))
    load = result["load"]
    print(f"dashboard page weight: {weight['total_bytes']} bytes uncompressed "
          f"({', '.join(f'{k} {v}' for k, v in weight['files'].items())}); all static files "
          f"{weight['all_static_bytes']} bytes; target < {PAGE_TARGET_BYTES}: "
          f"{'OK' if weight['total_bytes'] < PAGE_TARGET_BYTES else 'MISSED'}")
    print(f"SSE clients held: {load['sse_clients']}, status events per client "
          f"{load['sse_events_min']}..{load['sse_events_max']} over {result['ticks']} ticks")
    for name in ("paced", "flat_out"):
        phase = load[name]
        print(f"{name:8s}: {phase['req_per_s']} req/s on /api/status, {phase['errors']} errors, "
              f"p50 {phase['latency_p50_ms']} ms, p99 {phase['latency_p99_ms']} ms, worst tick "
              f"late {result['worst_tick_late_ms_' + name + '_phase']} ms "
              f"({result['ticks_' + name]} ticks)")
    ok = (load["paced"]["req_per_s"] >= 0.95 * args.rate
          and result["worst_tick_late_ms_paced_phase"] <= TICK_TARGET_LATE_S * 1000)
    print(f"target ({args.sse} SSE + {args.rate:g} req/s, no tick > interval + "
          f"{TICK_TARGET_LATE_S * 1000:g} ms): {'OK' if ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
