"""Charger command latency on loopback: from `set_current()` to the charger holding the value.

    python benchmarks/charger_bench.py [--protocol {modbus,ocpp,all}] [--changes 1000]

modbus: AlfenCharger -> AlfenSimulator over Modbus TCP on 127.0.0.1. Latency is measured from
the `set_current` call to the moment the simulator has stored the new value in register 1210
(its write hook); every change is then checked against register 1210 as a client would read it.
ocpp: OcppCharger (our central system) -> SimulatedChargePoint over a WebSocket on 127.0.0.1,
with a car charging: latency from `set_current` until the simulated charge point has accepted
both SetChargingProfiles (TxProfile for the transaction, TxDefaultProfile for the next one).
Target: p99 < 20 ms.

Each benchmark is an async function taking the number of changes and returning a `Result`;
register it in BENCHMARKS.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from phaeton.chargers import modbus_words as mw  # noqa: E402
from phaeton.chargers.alfen import AlfenCharger, AlfenConfig  # noqa: E402
from phaeton.sim.alfen import AlfenSimulator  # noqa: E402

P99_TARGET_MS = 20.0


@dataclass
class Result:
    name: str
    latencies_ms: list[float]                 # call -> charger holds the value
    acknowledged_ms: list[float] | None = None  # call -> set_current returned

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p99_ms(self) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]

    def report(self) -> str:
        verdict = "meets" if self.p99_ms < P99_TARGET_MS else "MISSES"
        return (f"{self.name}: {len(self.latencies_ms)} changes, median {self.median_ms:.2f} ms, "
                f"p99 {self.p99_ms:.2f} ms, max {max(self.latencies_ms):.2f} ms "
                f"({verdict} the p99 < {P99_TARGET_MS:g} ms target)"
                + ("" if not self.acknowledged_ms else
                   f"; set_current returned after median "
                   f"{statistics.median(self.acknowledged_ms):.2f} ms"))


async def bench_modbus(changes: int = 1000) -> Result:
    """set_current -> simulator register 1210 holds the value, over loopback Modbus TCP."""
    arrived: dict[float, float] = {}
    sim = AlfenSimulator(station_max_current_a=32.0)
    sim.on_setpoint = lambda amps: arrived.setdefault(amps, time.perf_counter())
    sim.plug_in()
    await sim.start()
    charger = AlfenCharger(AlfenConfig("127.0.0.1", port=sim.port, timeout_s=1.0))
    await charger.start()
    try:
        for _ in range(1000):
            if charger.connected:
                break
            await asyncio.sleep(0.005)
        if not charger.connected:
            raise RuntimeError(f"driver did not connect: {charger.last_error}")
        latencies, acknowledged = [], []
        for i in range(changes):
            amps = 6.0 + (i % 200) * 0.125        # a new value every time (within 6..31 A)
            arrived.pop(amps, None)
            t0 = time.perf_counter()
            await charger.set_current(amps)
            acknowledged.append((time.perf_counter() - t0) * 1000.0)
            if amps not in arrived:
                raise RuntimeError(f"{amps} A never reached the simulator")
            latencies.append((arrived[amps] - t0) * 1000.0)
            held = mw.decode_float32(sim.registers(1, 1210, 2))
            if held != amps:
                raise RuntimeError(f"register 1210 holds {held}, expected {amps}")
        return Result("modbus (Alfen, loopback)", latencies, acknowledged)
    finally:
        await charger.stop()
        await sim.close()


async def bench_ocpp(changes: int = 1000) -> Result:
    """set_current -> the simulated charge point accepted the SetChargingProfile, over a
    loopback WebSocket. A car is charging, so every change is a TxProfile for the running
    transaction plus the TxDefaultProfile; latency runs until the last of the two is accepted."""
    from phaeton.chargers.ocpp import OcppCharger, OcppChargerConfig
    from phaeton.chargers.ocpp_server import OcppCentralSystem
    from phaeton.sim.ev import SimulatedEV
    from phaeton.sim.ocpp_cp import SimulatedChargePoint

    accepted: dict[tuple[str, float], float] = {}

    def on_profile(connector_id, profile):
        period = profile["charging_schedule"]["charging_schedule_period"][0]
        key = (profile["charging_profile_purpose"], round(float(period["limit"]), 1))
        accepted.setdefault(key, time.perf_counter())

    central = OcppCentralSystem(host="127.0.0.1", port=0)
    charger = OcppCharger(OcppChargerConfig("BENCH1", call_timeout_s=5.0), central)
    await charger.start()
    sim = SimulatedChargePoint(central.url_for("BENCH1"), SimulatedEV(capacity_kwh=1000.0),
                               meter_interval_s=3600)
    sim.on_profile = on_profile
    await sim.start()
    try:
        for _ in range(1000):
            if charger.configured:
                break
            await asyncio.sleep(0.005)
        if not charger.configured:
            raise RuntimeError(f"driver did not connect: {charger.last_error}")
        await sim.plug_in()
        for _ in range(1000):
            if charger.transaction_id is not None:
                break
            await asyncio.sleep(0.005)
        if charger.transaction_id is None:
            raise RuntimeError("no transaction started")
        await charger.set_current(32.0)
        await asyncio.sleep(0.05)   # let the TxProfile sent after StartTransaction settle
        latencies, acknowledged = [], []
        for i in range(changes):
            amps = round(6.0 + (i % 200) * 0.1, 1)    # a new value every time (6..25.9 A)
            accepted.pop(("TxProfile", amps), None)
            accepted.pop(("TxDefaultProfile", amps), None)
            t0 = time.perf_counter()
            await charger.set_current(amps)
            acknowledged.append((time.perf_counter() - t0) * 1000.0)
            if charger.last_error:
                raise RuntimeError(f"{amps} A not applied: {charger.last_error}")
            both = [accepted.get(("TxProfile", amps)), accepted.get(("TxDefaultProfile", amps))]
            if None in both:
                raise RuntimeError(f"{amps} A never reached the simulated charge point")
            latencies.append((max(both) - t0) * 1000.0)
            if sim.offered_current_a() != amps:
                raise RuntimeError(f"station offers {sim.offered_current_a()} A, expected {amps}")
        return Result("ocpp (1.6J, loopback WebSocket)", latencies, acknowledged)
    finally:
        await charger.stop()
        await sim.stop()


BENCHMARKS = {
    "modbus": bench_modbus,
    "ocpp": bench_ocpp,
}


async def run(protocol: str, changes: int) -> int:
    names = ["modbus", "ocpp"] if protocol == "all" else [protocol]
    status = 0
    for name in names:
        bench = BENCHMARKS.get(name)
        if bench is None:
            print(f"{name}: no benchmark yet (bench_{name}() is not written)")
            status = 2
            continue
        print((await bench(changes)).report())
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=["modbus", "ocpp", "all"], default="all")
    parser.add_argument("--changes", type=int, default=1000)
    args = parser.parse_args(argv)
    if args.changes < 1:
        parser.error("--changes must be at least 1")
    return asyncio.run(run(args.protocol, args.changes))


if __name__ == "__main__":
    raise SystemExit(main())
