"""The Alfen simulator as a plain Modbus client sees it (no phaeton driver involved)."""
import asyncio
import os
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient

from phaeton.clock import ScaledClock
from phaeton.sim.alfen import AlfenSimulator
from phaeton.sim.ev import SimulatedEV

ROOT = Path(__file__).resolve().parents[1]


def f32_words(value):
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return [hi, lo]


def as_f32(regs):
    return struct.unpack(">f", struct.pack(">HH", *regs))[0]


@pytest.fixture
def clock():
    return ScaledClock(100.0)


@pytest.fixture
async def sim(clock):
    simulator = AlfenSimulator(clock=clock, ev=SimulatedEV(onboard_max_current_a=32.0))
    simulator.plug_in()
    await simulator.start()
    yield simulator
    await simulator.close()


@pytest.fixture
async def client(sim):
    c = AsyncModbusTcpClient("127.0.0.1", port=sim.port, timeout=1, retries=0, reconnect_delay=0)
    assert await c.connect()
    yield c
    c.close()


async def test_setpoint_written_as_whole_float32_is_applied(sim, client):
    response = await client.write_registers(1210, f32_words(14.0), device_id=1)
    assert not response.isError()
    regs = (await client.read_holding_registers(1206, count=10, device_id=1)).registers
    assert as_f32(regs[0:2]) == 14.0                 # 1206 applied max current
    assert 0 < (regs[2] << 16 | regs[3]) <= 60       # 1208 remaining validity
    assert as_f32(regs[4:6]) == 14.0                 # 1210 setpoint
    assert regs[8] == 1                              # 1214 applied flag
    assert sim.phase_currents_a() == [14.0, 14.0, 14.0]


async def test_half_setpoint_writes_are_refused(sim, client):
    await client.write_registers(1210, f32_words(10.0), device_id=1)
    for request in (client.write_register(1210, 0x4140, device_id=1),
                    client.write_register(1211, 0, device_id=1),
                    client.write_registers(1211, [0, 1], device_id=1)):
        response = await request
        assert response.isError() and response.exception_code in (2, 3)
    assert sim.setpoint_a == 10.0 and sim.setpoint_writes == 1


async def test_bad_values_and_read_only_registers_are_refused(sim, client):
    for value in (-1.0, float("nan")):
        response = await client.write_registers(1210, f32_words(value), device_id=1)
        assert response.isError() and response.exception_code == 3
    response = await client.write_register(1215, 2, device_id=1)
    assert response.isError() and response.exception_code == 3
    assert sim.phases == 3
    response = await client.write_registers(1206, f32_words(20.0), device_id=1)
    assert response.isError() and response.exception_code == 2
    response = await client.write_registers(1100, f32_words(63.0), device_id=200)
    assert response.isError() and response.exception_code == 2
    response = await client.write_register(1215, 1, device_id=1)
    assert not response.isError() and sim.phases == 1


async def test_unknown_unit_gets_gateway_path_unavailable(client):
    response = await client.read_holding_registers(1200, count=16, device_id=7)
    assert response.isError() and response.exception_code == 10
    # and the station registers are not on the socket unit
    response = await client.read_holding_registers(100, count=17, device_id=1)
    assert response.isError() and response.exception_code == 2


async def test_validity_expiry_applies_safe_current_zero(clock):
    async with AlfenSimulator(clock=clock, safe_current_a=0.0, validity_s=30.0) as sim:
        sim.plug_in()
        c = AsyncModbusTcpClient("127.0.0.1", port=sim.port, timeout=1, retries=0,
                                 reconnect_delay=0)
        await c.connect()
        try:
            await c.write_registers(1210, f32_words(16.0), device_id=1)
            assert sim.mode3_state() == "C2"
            while sim.setpoint_active:
                await asyncio.sleep(0.01)
            regs = (await c.read_holding_registers(1200, count=16, device_id=1)).registers
            assert as_f32(regs[6:8]) == 0.0          # 1206: safe current 0
            assert regs[14] == 0                     # 1214: setpoint not applied
            assert struct.pack(">5H", *regs[1:6]).rstrip(b"\0") in (b"C1", b"B1")
            assert sim.phase_currents_a() == [0.0, 0.0, 0.0]
        finally:
            c.close()


async def test_energy_counts_what_the_car_draws(sim, clock):
    assert sim.phase_currents_a() == [6.0, 6.0, 6.0]   # the safe current (brings energy up to date)
    t0, start_wh = clock.monotonic(), sum(sim.energy_wh)
    await asyncio.sleep(0.3)   # about 30 simulated seconds
    sim.phase_currents_a()
    elapsed = clock.monotonic() - t0
    delivered = sum(sim.energy_wh) - start_wh
    expected = (230.0 + 231.0 + 229.0) * 6.0 * elapsed / 3600.0
    assert delivered == pytest.approx(expected, rel=0.05)


async def test_reboot_drops_setpoint_and_connections(sim, client):
    await client.write_registers(1210, f32_words(20.0), device_id=1)
    sim.reboot()
    assert not sim.setpoint_active and sim.applied_current_a == 6.0
    await asyncio.sleep(0.05)
    assert not client.connected


async def test_set_nan_hook(sim, client):
    sim.set_nan(344)
    regs = (await client.read_holding_registers(344, count=2, device_id=1)).registers
    assert regs == [0xFFFF, 0xFFFF]
    with pytest.raises(ValueError, match="not in the Alfen register map"):
        sim.set_nan(345)
    with pytest.raises(ValueError, match="mode-3 state must be one of"):
        sim.force_mode3("X")


def test_constructor_checks():
    with pytest.raises(ValueError, match="phases must be 1 or 3"):
        AlfenSimulator(phases=2)
    with pytest.raises(ValueError, match="safe_current_a must be a finite number"):
        AlfenSimulator(safe_current_a=-1)


async def test_command_line_runs_and_stops_on_ctrl_c():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "phaeton.sim.alfen", "--port", str(port),
                             "--speed", "10", "--plugged-in"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    try:
        c = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0, reconnect_delay=0)
        for _ in range(400):
            if await c.connect():
                break
            await asyncio.sleep(0.025)
        assert c.connected, "simulator did not start listening"
        regs = (await c.read_holding_registers(140, count=17, device_id=200)).registers
        assert struct.pack(">17H", *regs).rstrip(b"\0") == b"NG910"
        c.close()
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out
    assert f"listening on 127.0.0.1:{port}" in out
    assert "EV plugged in" in out
    assert "stopped" in out
    assert "Traceback" not in out


async def test_fault_hook_garbles_the_measurement_registers_only(sim, client):
    async def words(unit, address, count):
        return (await client.read_holding_registers(address, count=count, device_id=unit)).registers

    identity = await words(200, 100, 68)                     # name .. serial (no clock)
    sim.fault = "negative_max_current"
    assert as_f32((await words(200, 1100, 2))) == -16.0
    sim.fault = "huge_energy"
    energy = struct.unpack(">d", struct.pack(">HHHH", *(await words(1, 374, 4))))[0]
    assert energy == 2.2e307
    sim.fault = "nan"
    assert await words(1, 300, 78) == [0xFFFF] * 78
    assert await words(1, 1200, 16) == [0xFFFF] * 16
    assert await words(200, 1100, 6) == [0xFFFF] * 6
    sim.fault = "nan_floats"
    meter = await words(1, 300, 78)
    assert meter[0] != 0xFFFF and meter[6:8] == [0xFFFF, 0xFFFF]   # meter state kept, 306 NaN
    assert meter[74:78] == [0xFFFF] * 4                              # 374 NaN
    control = await words(1, 1200, 16)
    assert control[1] != 0xFFFF and control[15] == 3                 # mode-3 state and phases
    assert await words(200, 1100, 2) == [0xFFFF, 0xFFFF]
    sim.fault = "random"
    first, second = await words(1, 300, 78), await words(1, 300, 78)
    assert first != second and first != [0xFFFF] * 78
    assert await words(200, 100, 68) == identity            # a reconnect still identifies it
    response = await client.write_registers(1210, f32_words(12.0), device_id=1)
    assert not response.isError() and sim.setpoint_a == 12.0   # writes are taken as usual
    sim.fault = None
    assert as_f32((await words(200, 1100, 2))) == 32.0
    with pytest.raises(ValueError, match="fault must be None or one of"):
        sim.fault = "smoke"
