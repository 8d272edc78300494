"""How fast a house-load spike cuts the EV setpoint: GX meter update -> Alfen register 1210.

A scripted GX in real time (a private dbus-daemon, a `com.victronenergy.system` service exported
with velib publishing every second, the Alfen Modbus simulator on loopback) and phaeton in this
process, Manual at 16 A on 3 phases under a 25 A fuse. Each round the house load on L1 jumps so
that only 12 A are left; the system service publishes it at once and the clock starts; it stops
when the simulator's register 1210 receives a setpoint of 12 A or less. Then the load drops and
the current recovers before the next spike, which comes at a random moment within the tick.

Two ways are measured in interleaved rounds, in the same run:
- `meter`: phaeton as it is: every GX update checks the fuse against what the charger was told;
- `tick`: the same service with that check switched off, i.e. the previous version, which only
  cut at the next control tick (`control.tick_s` = 2 s).

Run: python benchmarks/spike_bench.py [--spikes 50]   (spikes per way; ~4 s each)
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import scripted_gx  # noqa: E402

scripted_gx.SPEED = 1.0          # real time: the latencies are wall-clock milliseconds

FUSE_A = 25.0
SPIKE_L1_W = 3000.0              # 13 A on L1: 12 A left for the EV under the 25 A fuse
CALM_W = [300.0, 300.0, 300.0]


def private_bus() -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address"],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def one_spike(gx: scripted_gx.ScriptedGx, rng: random.Random) -> float:
    """Seconds from the spike's publication to a setpoint within the fuse."""
    cut = asyncio.get_running_loop().create_future()

    def on_setpoint(amps: float) -> None:
        if amps <= 12.0 and not cut.done():
            cut.set_result(time.perf_counter())

    await asyncio.sleep(rng.uniform(0.0, 2.0))         # anywhere within the tick
    gx.alfen.on_setpoint = on_setpoint
    gx.system.house_w = [SPIKE_L1_W, 300.0, 300.0]
    gx.system.publish()
    start = time.perf_counter()
    try:
        return await asyncio.wait_for(cut, 10) - start
    finally:
        gx.alfen.on_setpoint = None
        gx.system.house_w = list(CALM_W)
        gx.system.publish()
        deadline = time.monotonic() + 20
        while gx.alfen.applied_current_a < 16 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)


async def main(spikes: int) -> None:
    daemon, address = private_bus()
    os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = address
    directory = tempfile.mkdtemp(prefix="phaeton-spike-bench-")
    rng = random.Random(7)
    latencies: dict[str, list[float]] = {"meter": [], "tick": []}
    try:
        async with scripted_gx.ScriptedGx(address, directory,
                                          site={"fuse_a": FUSE_A},
                                          control={"tick_s": 2, "fuse_recovery_delay_s": 1}) as gx:
            app = await gx.start_phaeton()
            hook = app.site.system._on_change
            gx.alfen.plug_in()
            deadline = time.monotonic() + 30
            while gx.alfen.applied_current_a < 16:
                assert time.monotonic() < deadline, "phaeton never reached 16 A"
                await asyncio.sleep(0.1)
            for _ in range(spikes):
                for way in ("meter", "tick"):              # interleaved rounds
                    app.site.system._on_change = hook if way == "meter" else None
                    latencies[way].append(await one_spike(gx, rng))
            app.site.system._on_change = hook
    finally:
        daemon.terminate()
        daemon.wait()
    print("load spike -> EV setpoint cut (GX update -> Alfen register 1210, real time, "
          f"{spikes} spikes per way, interleaved)")
    for way, values in latencies.items():
        ms = [v * 1000 for v in values]
        print(f"  {way:5s}: median {statistics.median(ms):7.1f} ms   p99 {percentile(ms, 0.99):7.1f} ms"
              f"   max {max(ms):7.1f} ms")
    ratio = percentile(latencies["tick"], 0.99) / percentile(latencies["meter"], 0.99)
    print(f"  p99 tick-only / meter-paced: {ratio:.1f}x   (target: meter p99 < 1000 ms)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spikes", type=int, default=50)
    asyncio.run(main(parser.parse_args().spikes))
