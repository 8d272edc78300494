"""The Modbus fault proxy (phaeton/sim/modbus_fault_proxy.py) between a raw Modbus TCP client
and the Alfen simulator: each mode does what it says, and `pass` is transparent."""
from __future__ import annotations

import asyncio
import math
import struct

import pytest

from phaeton.chargers import modbus_words as mw
from phaeton.sim.alfen import AlfenSimulator
from phaeton.sim.modbus_fault_proxy import (ModbusFaultProxy, read_frame, read_request,
                                            write_request)

SOCKET, STATION = 1, 200
ANSWER_S = 2.0       # an answer on loopback comes in milliseconds; this only bounds a hang


@pytest.fixture
async def sim():
    async with AlfenSimulator(safe_current_a=6.0) as station:
        yield station


@pytest.fixture
async def proxy(sim):
    async with ModbusFaultProxy(upstream_port=sim.port, seed=1) as made:
        yield made


class RawClient:
    """One Modbus TCP connection that sends hand-made frames and reads whole answers."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self.transaction = 0

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        return cls(*await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), ANSWER_S))

    async def ask(self, request_of, *args) -> tuple[int, int, bytes]:
        """(transaction id, unit, PDU) of the answer to request_of(transaction, *args)."""
        self.transaction += 1
        self.writer.write(request_of(self.transaction, *args))
        await self.writer.drain()
        transaction, _protocol, unit, pdu = await asyncio.wait_for(read_frame(self.reader),
                                                                   ANSWER_S)
        return transaction, unit, pdu

    async def words(self, unit: int, address: int, count: int) -> list[int]:
        _, _, pdu = await self.ask(read_request, unit, address, count)
        assert pdu[0] == 3 and pdu[1] == 2 * count, pdu
        return list(struct.unpack(f">{count}H", pdu[2:]))

    def close(self) -> None:
        self.writer.close()


async def test_pass_is_transparent_both_ways(sim, proxy):
    client = await RawClient.connect(proxy.port)
    direct = await RawClient.connect(sim.port)
    try:
        assert await client.words(SOCKET, 1201, 5) == await direct.words(SOCKET, 1201, 5)
        _, _, pdu = await client.ask(write_request, SOCKET, 1210, mw.encode_float32(11.0))
        assert pdu[0] == 16
        assert sim.setpoint_a == 11.0
        assert mw.decode_float32(await client.words(SOCKET, 1210, 2)) == 11.0
    finally:
        client.close()
        direct.close()
    assert proxy.stats["answers_altered"] == 0 and proxy.stats["answers_passed"] >= 3


async def test_nan_turns_float_registers_to_nan_and_leaves_the_rest(sim, proxy):
    client = await RawClient.connect(proxy.port)
    try:
        truth = await client.words(SOCKET, 1200, 16)
        await proxy.set_mode("nan")
        words = await client.words(SOCKET, 1200, 16)
        for address in (1206, 1210, 1212):                  # FLOAT32 registers
            value = struct.unpack(">f", struct.pack(">2H", *words[address - 1200:][:2]))[0]
            assert math.isnan(value), address
        for address in (1200, 1201, 1202, 1214, 1215):      # uint16 and the mode-3 text
            assert words[address - 1200] == truth[address - 1200], address
        energy = await client.words(SOCKET, 374, 4)         # FLOAT64
        assert math.isnan(struct.unpack(">d", struct.pack(">4H", *energy))[0])
        # writes still reach the station
        await client.ask(write_request, SOCKET, 1210, mw.encode_float32(9.0))
        assert sim.setpoint_a == 9.0
        await proxy.set_mode("pass")
        assert mw.decode_float32(await client.words(SOCKET, 1210, 2)) == 9.0
    finally:
        client.close()


async def test_random_replaces_every_word_but_keeps_the_frame(sim, proxy):
    client = await RawClient.connect(proxy.port)
    try:
        truth = await client.words(SOCKET, 300, 78)
        await proxy.set_mode("random")
        garbage = await client.words(SOCKET, 300, 78)        # still a well-formed answer
        assert len(garbage) == 78
        assert sum(a != b for a, b in zip(truth, garbage)) > 60
    finally:
        client.close()


async def test_garble_damages_every_answer_and_pass_heals_a_new_connection(sim, proxy):
    await proxy.set_mode("garble")
    for _ in range(12):                      # every answer differs from a clean one, somehow
        client = await RawClient.connect(proxy.port)
        try:
            client.transaction += 1
            client.writer.write(read_request(client.transaction, SOCKET, 1210, 2))
            await client.writer.drain()
            raw = await asyncio.wait_for(_read_some(client.reader), ANSWER_S)
        finally:
            client.close()
        clean = _answer_bytes(client.transaction, SOCKET, sim.registers(SOCKET, 1210, 2))
        assert raw != clean
    assert sum(n for k, n in proxy.stats.items() if k.startswith("garble_")) == 12
    await proxy.set_mode("pass")
    client = await RawClient.connect(proxy.port)
    try:
        assert mw.decode_float32(await client.words(SOCKET, 1212, 2)) == 6.0
    finally:
        client.close()


async def test_stall_accepts_but_never_answers(sim, proxy):
    await proxy.set_mode("stall")
    client = await RawClient.connect(proxy.port)          # the TCP connection is accepted
    try:
        client.writer.write(read_request(1, SOCKET, 1210, 2))
        await client.writer.drain()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.reader.read(1), 0.5)
        assert proxy.stats["requests_dropped"] == 1
    finally:
        client.close()
    await proxy.set_mode("pass")
    client = await RawClient.connect(proxy.port)
    try:
        assert len(await client.words(SOCKET, 1210, 2)) == 2
    finally:
        client.close()


async def test_kill_closes_connections_refuses_new_ones_and_comes_back_on_the_same_port(
        sim, proxy):
    client = await RawClient.connect(proxy.port)
    port = proxy.port
    await proxy.set_mode("kill")
    assert await asyncio.wait_for(client.reader.read(), ANSWER_S) == b""   # closed on us
    client.close()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    await proxy.set_mode("pass")
    assert proxy.port == port
    client = await RawClient.connect(port)
    try:
        assert len(await client.words(STATION, 1100, 2)) == 2
    finally:
        client.close()


async def test_garble_can_be_limited_to_one_kind_of_damage(sim):
    async with ModbusFaultProxy(upstream_port=sim.port, garbles=("function",)) as proxy:
        await proxy.set_mode("garble")
        client = await RawClient.connect(proxy.port)
        try:
            _, _, pdu = await client.ask(read_request, SOCKET, 1210, 2)
        finally:
            client.close()
        assert pdu[0] not in (3, 0x83) and len(pdu) == 6      # only the function code differs
        assert proxy.stats["garble_function"] == 1


def test_only_loopback_addresses_and_known_modes():
    with pytest.raises(ValueError, match="loopback"):
        ModbusFaultProxy(upstream_port=502, upstream_host="192.168.1.20")
    with pytest.raises(ValueError, match="loopback"):
        ModbusFaultProxy(upstream_port=502, host="0.0.0.0")
    with pytest.raises(ValueError, match="garbles must be some of"):
        ModbusFaultProxy(upstream_port=502, garbles=("melt",))
    proxy = ModbusFaultProxy(upstream_port=502)
    with pytest.raises(ValueError, match="mode must be one of"):
        asyncio.run(proxy.set_mode("explode"))


async def _read_some(reader: asyncio.StreamReader) -> bytes:
    """Whatever arrives within a short quiet period after the first bytes (a garbled answer
    may be shorter or longer than a frame)."""
    data = await reader.read(1024)
    while True:
        try:
            more = await asyncio.wait_for(reader.read(1024), 0.05)
        except asyncio.TimeoutError:
            return data
        if not more:
            return data
        data += more


def _answer_bytes(transaction: int, unit: int, words: list[int]) -> bytes:
    pdu = struct.pack(f">BB{len(words)}H", 3, 2 * len(words), *words)
    return struct.pack(">HHHB", transaction, 0, len(pdu) + 1, unit) + pdu
