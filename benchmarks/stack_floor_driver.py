"""The reference driver's job on phaeton's own stack: what the chosen libraries cost by themselves.

`benchmarks/service_bench.py` compares `phaeton run` with `reference_driver.py`, a minimal
driver on Debian's dbus-python and GLib (C libraries). This driver does exactly the reference's
job (`alfen_paths.py`: the same 42 paths, write rules and register decoding; the same three
Modbus reads every `--poll-s`, the setpoint re-sent every 20 s) on what phaeton is built from:
asyncio, phaeton's `velib` service on dbus-next, pymodbus' asynchronous TCP client, run by the
project's interpreter. Nothing else: no GX readings, no control loop, no sessions store, no
planner, no web UI, no numpy.

So the benchmark can tell apart what the stack costs (this driver against the reference) from
what phaeton's own work costs (phaeton against this driver).

One difference from the reference: a write to `/SetCurrent` is answered first and written to
register 1210 right after (an asyncio task), as phaeton does; the reference writes it inside the
SetValue call.

Run: DBUS_SYSTEM_BUS_ADDRESS=... .venv/bin/python benchmarks/stack_floor_driver.py \\
         --bus-name com.victronenergy.evcharger.floor_0 --modbus-host 127.0.0.1 \\
         [--modbus-port 502] [--poll-s 2]
"""
import argparse
import asyncio
import logging
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import alfen_paths as alfen  # noqa: E402  (this script's directory is on the path)
from pymodbus.client import AsyncModbusTcpClient  # noqa: E402
from pymodbus.exceptions import ModbusException  # noqa: E402

from velib.service import VeDbusService  # noqa: E402

log = logging.getLogger("stack_floor_driver")


class ModbusError(Exception):
    pass


class FloorDriver:
    def __init__(self, name, host, port, station_unit, socket_unit, max_current_a):
        self.host, self.port = host, port
        self.station_unit, self.socket_unit = station_unit, socket_unit
        self.max_current_a = max_current_a
        self.client = None
        self.written_at = 0.0
        self.session = None
        self.writes = set()                  # the setpoint writes under way (kept referenced)
        self.service = VeDbusService(name)
        alfen.declare_paths(self.service.add_path, self._accept,
                            "Modbus TCP %s:%d" % (host, port), "stack_floor_driver",
                            max_current_a)

    # ---- Modbus ---------------------------------------------------------------------------

    async def _read(self, unit, block):
        address, count = block
        try:
            response = await self.client.read_holding_registers(address, count=count,
                                                                device_id=unit)
        except (ModbusException, OSError, asyncio.TimeoutError) as exc:
            raise ModbusError(str(exc) or type(exc).__name__) from None
        if response.isError() or len(response.registers) != count:
            raise ModbusError("unit %d: no registers %d..%d" % (unit, address, address + count))
        return alfen.Registers.from_words(address, response.registers)

    async def _write_setpoint(self, amps):
        if self.client is None or not self.client.connected:
            return
        try:
            response = await self.client.write_registers(
                alfen.SETPOINT_REGISTER, alfen.setpoint_words(amps), device_id=self.socket_unit)
        except (ModbusException, OSError, asyncio.TimeoutError) as exc:
            self._lost(exc)
            return
        if not response.isError():
            self.written_at = time.monotonic()

    # ---- writes from the bus --------------------------------------------------------------

    def _accept(self, path, value):
        ok, setpoint = alfen.accept_write(path, value, self.service.__getitem__,
                                          self.max_current_a)
        if ok and setpoint is not None:
            task = asyncio.get_running_loop().create_task(self._write_setpoint(setpoint))
            self.writes.add(task)
            task.add_done_callback(self.writes.discard)
        return ok

    # ---- polling --------------------------------------------------------------------------

    async def poll(self):
        try:
            if self.client is None or not self.client.connected:
                await self._connect()
            status = await self._read(self.station_unit, alfen.STATUS)
            meter = await self._read(self.socket_unit, alfen.METER)
            control = await self._read(self.socket_unit, alfen.CONTROL)
        except ModbusError as exc:
            self._lost(exc)
            return
        values, self.session = alfen.measured_values(status, meter, control, self.session,
                                                     time.monotonic())
        self._publish(values)
        if time.monotonic() - self.written_at >= alfen.SETPOINT_REFRESH_S:
            svc = self.service
            await self._write_setpoint(alfen.target(svc["/SetCurrent"], svc["/StartStop"],
                                                    svc["/MaxCurrent"]))

    async def _connect(self):
        client = AsyncModbusTcpClient(self.host, port=self.port, timeout=3.0, retries=0,
                                      reconnect_delay=0)
        if not await client.connect():
            client.close()
            raise ModbusError("cannot connect to %s:%d" % (self.host, self.port))
        self.client = client
        identity = await self._read(self.station_unit, alfen.IDENTITY)
        log.info("connected to %s:%d", self.host, self.port)
        self._publish(alfen.identity_values(identity))
        self.written_at = 0.0                # the station may have lost it: send it now

    def _lost(self, exc):
        if self.client is not None:
            log.warning("lost %s:%d: %s", self.host, self.port, exc)
            self.client.close()
            self.client = None
        self.session = None
        self._publish(alfen.lost_values())

    def _publish(self, values):
        with self.service.batch():
            for path, value in values.items():
                self.service[path] = value


async def run(args):
    driver = FloorDriver(args.bus_name, args.modbus_host, args.modbus_port, args.station_unit,
                         args.socket_unit, args.max_current_a)
    await driver.service.register()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    next_poll = loop.time()
    while not stop.is_set():
        await driver.poll()
        next_poll += args.poll_s
        try:
            await asyncio.wait_for(stop.wait(), max(0.0, next_poll - loop.time()))
        except asyncio.TimeoutError:
            pass
    if driver.client is not None:
        driver.client.close()
    await driver.service.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bus-name", default="com.victronenergy.evcharger.floor_0")
    parser.add_argument("--modbus-host", required=True, help="the Alfen's address")
    parser.add_argument("--modbus-port", type=int, default=502)
    parser.add_argument("--poll-s", type=float, default=2.0)
    parser.add_argument("--station-unit", type=int, default=alfen.STATION_UNIT_DEFAULT)
    parser.add_argument("--socket-unit", type=int, default=alfen.SOCKET_UNIT_DEFAULT)
    parser.add_argument("--max-current-a", type=float, default=16.0)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
