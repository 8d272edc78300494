"""The driver against a plain pymodbus server filled by hand from Alfen's published map.

Nothing here comes from phaeton's simulator or its word codec: every register is packed with
struct, so the driver is checked against the published layout itself (big-endian, high word
first, NUL-padded ASCII), not against our own encoder.
"""
import asyncio
import struct

import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from phaeton.chargers.alfen import AlfenCharger, AlfenConfig
from phaeton.chargers.base import Capability, VehicleState
from phaeton.clock import ScaledClock


def words(fmt: str, *values) -> list[int]:
    data = struct.pack(fmt, *values)
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]


def text(value: str, registers: int) -> list[int]:
    return words(f">{2 * registers}s", value.encode("ascii"))  # struct pads with NUL


def f32(value):
    return words(">f", value)


def f64(value):
    return words(">d", value)


STATION = {
    100: text("ALF_2042", 17), 117: text("Alfen NV", 5), 122: words(">h", 4),
    123: text("4.12.1-4000", 17), 140: text("NG920", 17), 157: text("ACE7654321", 11),
    168: words(">6h", 2026, 11, 23, 10, 0, 0), 174: words(">Q", 123456789),
    1100: f32(25.0), 1102: f32(41.5), 1104: words(">H", 3), 1105: words(">H", 2),
}
SOCKET = {
    300: words(">H", 2 | 8),   # updated + error bit
    306: f32(228.5), 308: f32(229.5), 310: f32(231.25),
    320: f32(15.5), 322: f32(0.0), 324: f32(0.0), 326: f32(15.5),
    336: f32(49.98),
    338: f32(3541.75), 340: f32(0.0), 342: f32(0.0), 344: f32(3541.75),
    362: f64(12_000_000.5), 366: f64(345_678.0), 370: f64(1.25),
    374: f64(12_345_679.75),
    1200: words(">H", 1), 1201: text("C2", 5), 1206: f32(15.5), 1208: words(">I", 42),
    1210: f32(15.5), 1212: f32(8.0), 1214: words(">H", 1), 1215: words(">H", 1),
}


def fill(table: dict[int, list[int]], blocks) -> list[SimData]:
    regs = {}
    for start, end in blocks:
        for a in range(start, end):
            regs[a] = 0
    for address, values in table.items():
        for i, w in enumerate(values):
            regs[address + i] = w
    return [SimData(a, values=w, datatype=DataType.REGISTERS) for a, w in sorted(regs.items())]


class RawStation:
    """A hand-filled Modbus server recording every request it gets."""

    def __init__(self):
        self.requests: list[tuple[int, int, int, int, list[int] | None]] = []

    def device(self, unit, table, blocks):
        async def record(fc, _start, address, count, _registers, values):
            self.requests.append((unit, fc, address, count, list(values) if values else None))
            return None
        return SimDevice(unit, simdata=fill(table, blocks), action=record)

    async def start(self):
        self.server = ModbusTcpServer(
            [self.device(200, STATION, [(100, 178), (1100, 1106)]),
             self.device(1, SOCKET, [(300, 378), (1200, 1216)])],
            address=("127.0.0.1", 0))
        await self.server.serve_forever(background=True)
        self.port = self.server.transport.sockets[0].getsockname()[1]

    async def stop(self):
        await self.server.shutdown()


@pytest.fixture
async def station():
    raw = RawStation()
    await raw.start()
    yield raw
    await raw.stop()


@pytest.fixture
async def charger(station):
    drv = AlfenCharger(AlfenConfig("127.0.0.1", port=station.port, timeout_s=0.5),
                       clock=ScaledClock(10))
    await drv.start()
    for _ in range(1000):
        if drv.connected:
            break
        await asyncio.sleep(0.005)
    assert drv.connected, drv.last_error
    yield drv
    await drv.stop()


async def test_identity_from_published_map(charger):
    assert charger.identity.manufacturer == "Alfen NV"
    assert charger.identity.model == "NG920"
    assert charger.identity.firmware == "4.12.1-4000"
    assert charger.identity.serial == "ACE7654321"
    assert charger.station_info == {"station_name": "ALF_2042", "modbus_table_version": 4,
                                    "number_of_sockets": 2}
    assert charger.capabilities == {Capability.PHASE_SWITCHING, Capability.STATION_MAX_CURRENT}


async def test_measurement_from_published_map(charger):
    m = await charger.read()
    assert m.vehicle_state is VehicleState.CHARGING
    assert m.voltage_v == (228.5, 229.5, 231.25)
    assert m.current_a == (15.5, 0.0, 0.0)
    assert m.power_w == (3541.75, 0.0, 0.0)
    assert m.total_power_w == 3541.75
    assert m.lifetime_energy_kwh == 12_345.67975
    assert m.applied_current_a == 15.5
    assert m.phases == 1
    assert m.station_max_current_a == 25.0
    assert m.extra["mode3_state"] == "C2"
    assert m.extra["board_temperature_c"] == 41.5
    assert m.extra["frequency_hz"] == pytest.approx(49.98)
    assert m.extra["setpoint_validity_remaining_s"] == 42
    assert m.extra["safe_current_a"] == 8.0
    assert m.extra["setpoint_applied"] is True
    assert m.extra["setpoint_a"] == 15.5
    assert m.extra["energy_phase_kwh"] == (12_000.0005, 345.678, 0.00125)
    assert m.extra["meter_error"] is True          # bit 8 set: values kept, flagged
    assert m.extra["available"] is True


async def test_a_read_takes_three_block_requests(charger, station):
    station.requests.clear()
    await charger.read()
    assert [(unit, fc, address, count) for unit, fc, address, count, _ in station.requests] == [
        (200, 3, 1100, 6), (1, 3, 300, 78), (1, 3, 1200, 16)]


async def test_setpoint_is_one_write_multiple_of_a_big_endian_float32(charger, station):
    station.requests.clear()
    await charger.set_current(13.5)
    writes = [r for r in station.requests if r[4] is not None]
    assert writes == [(1, 16, 1210, 2, words(">f", 13.5))]
    # clamp to the station's published max current (25 A here)
    station.requests.clear()
    await charger.set_current(32)
    assert [r for r in station.requests if r[4]] == [(1, 16, 1210, 2, words(">f", 25.0))]


async def test_phases_written_on_the_socket_unit(charger, station):
    station.requests.clear()
    await charger.set_phases(3)
    assert [r for r in station.requests if r[4]] == [(1, 6, 1215, 1, [3])]
