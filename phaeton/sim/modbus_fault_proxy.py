"""A Modbus TCP proxy that injects faults, for trials: client (phaeton) <-> proxy <-> server (the
Alfen simulator), on loopback only.

    proxy = ModbusFaultProxy(upstream_port=sim.port)
    await proxy.start()                  # phaeton connects to 127.0.0.1:proxy.port
    await proxy.set_mode("stall")        # ... and back with await proxy.set_mode("pass")

Modes, effective at once for every connection:
- `pass`: bytes flow unchanged in both directions.
- `kill`: every connection is closed and the listener too, so new connections are refused
  (ECONNREFUSED); leaving `kill` listens again on the same port.
- `stall`: connections are accepted and requests read, but nothing is forwarded and nothing is
  answered (a hung station).
- `garble`: every answer is damaged in one of several ways (`GARBLES`: bytes flipped, a wrong
  MBAP length, cut short, junk appended, a wrong byte count, transaction id or function code, a
  Modbus exception instead); `garbles=` picks the ways to use.
- `nan`: in answers to register reads (functions 3 and 4) the words of float registers (the
  Alfen map's FLOAT32 and FLOAT64 registers) read IEEE NaN; everything else is unchanged.
- `random`: in answers to register reads every register word is a random word.
Requests always pass unchanged (except in `stall`), so writes reach the station in `garble`,
`nan` and `random`. Random choices come from one seeded generator, so runs repeat.

Frames are Modbus TCP ADUs: the MBAP header (transaction id, protocol id, length, unit id; 7
bytes) and the PDU. The proxy remembers each read request by transaction id to know which
registers an answer holds.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import struct
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

log = logging.getLogger("phaeton.sim.modbus_fault_proxy")

MODES = ("pass", "kill", "stall", "garble", "nan", "random")
READ_FUNCTIONS = (3, 4)
MBAP = struct.Struct(">HHHB")          # transaction id, protocol id, length, unit id
MAX_PDU = 253                          # Modbus: an ADU is at most 260 bytes
NAN_WORDS = {2: (0x7FC0, 0x0000), 4: (0x7FF8, 0x0000, 0x0000, 0x0000)}
GARBLES = ("flip", "length", "truncate", "junk", "byte_count", "transaction", "function",
           "exception")


def alfen_float_registers() -> dict[tuple[int, int], int]:
    """(unit, first address) -> words, for every float register of the Alfen simulator's map."""
    from phaeton.sim.alfen import REGISTER_MAP
    return {(unit, address): count for address, (unit, count, kind) in REGISTER_MAP.items()
            if kind in ("f32", "f64")}


def _require_loopback(host: str) -> None:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the fault proxy works on loopback addresses only, got {host!r}")


@dataclass(frozen=True)
class ReadRequest:
    unit: int
    function: int
    address: int
    count: int


def frame(transaction: int, unit: int, pdu: bytes, protocol: int = 0) -> bytes:
    """One Modbus TCP ADU."""
    return MBAP.pack(transaction, protocol, len(pdu) + 1, unit) + pdu


def read_request(transaction: int, unit: int, address: int, count: int, function: int = 3) -> bytes:
    return frame(transaction, unit, struct.pack(">BHH", function, address, count))


def write_request(transaction: int, unit: int, address: int, words: list[int]) -> bytes:
    """Function 16 (write multiple registers)."""
    return frame(transaction, unit, struct.pack(f">BHHB{len(words)}H", 16, address, len(words),
                                                2 * len(words), *words))


def parse_read_request(unit: int, pdu: bytes) -> ReadRequest | None:
    if len(pdu) == 5 and pdu[0] in READ_FUNCTIONS:
        _, address, count = struct.unpack(">BHH", pdu)
        return ReadRequest(unit, pdu[0], address, count)
    return None


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, int, int, bytes]:
    """(transaction id, protocol id, unit id, PDU) of the next ADU; ValueError for a length no
    Modbus TCP frame has; IncompleteReadError at the end of the stream."""
    transaction, protocol, length, unit = MBAP.unpack(await reader.readexactly(MBAP.size))
    if not 2 <= length <= MAX_PDU + 1:
        raise ValueError(f"MBAP length {length} is not a Modbus TCP frame")
    return transaction, protocol, unit, await reader.readexactly(length - 1)


class _Connection:
    """One client connection and its upstream connection."""

    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter):
        self.client = client
        self.upstream = upstream
        self.reads: dict[int, ReadRequest] = {}      # transaction id -> read request
        self.tasks: list[asyncio.Task] = []

    def close(self) -> None:
        for writer in (self.client, self.upstream):
            writer.close()
        for task in self.tasks:
            if task is not asyncio.current_task():
                task.cancel()


class ModbusFaultProxy:
    """See the module docstring. `stats` counts what happened (connections, answers passed,
    altered and dropped, requests dropped)."""

    def __init__(self, upstream_port: int, *, upstream_host: str = "127.0.0.1",
                 host: str = "127.0.0.1", port: int = 0, seed: int | None = 0,
                 float_registers: Mapping[tuple[int, int], int] | None = None,
                 garbles: tuple[str, ...] = GARBLES):
        _require_loopback(host)
        _require_loopback(upstream_host)
        if not garbles or set(garbles) - set(GARBLES):
            raise ValueError(f"garbles must be some of {', '.join(GARBLES)}, got {garbles!r}")
        self.garbles = tuple(garbles)
        self.upstream_host, self.upstream_port = upstream_host, upstream_port
        self.host, self.port = host, port
        self.float_registers = dict(alfen_float_registers() if float_registers is None
                                    else float_registers)
        self.mode = "pass"
        self.stats: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[_Connection] = set()

    # ---- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Listen (on the same port again after a `kill`)."""
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, self.host, self.port,
                                                      reuse_address=True)
            self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and close every connection."""
        self._drop_connections()
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def __aenter__(self) -> ModbusFaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *_exc) -> None:
        await self.close()

    async def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if mode != self.mode:
            log.info("Modbus fault proxy on port %d: %s -> %s", self.port, self.mode, mode)
        self.mode = mode
        if mode == "kill":
            await self.close()
        else:
            await self.start()

    def _drop_connections(self) -> None:
        for connection in list(self._connections):
            connection.close()
        self._connections.clear()

    # ---- connections ---------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "kill":
            writer.close()
            return
        self.stats["connections"] += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(self.upstream_host,
                                                                 self.upstream_port)
        except OSError:
            self.stats["upstream_refused"] += 1
            writer.close()
            return
        connection = _Connection(writer, up_writer)
        if self.mode == "kill":                  # killed while the upstream connection opened
            connection.close()
            return
        self._connections.add(connection)
        connection.tasks = [asyncio.create_task(self._requests(connection, reader)),
                            asyncio.create_task(self._answers(connection, up_reader))]
        await asyncio.gather(*connection.tasks, return_exceptions=True)
        connection.close()
        self._connections.discard(connection)

    async def _requests(self, connection: _Connection, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                transaction, protocol, unit, pdu = await read_frame(reader)
                if self.mode == "stall":
                    self.stats["requests_dropped"] += 1
                    continue
                request = parse_read_request(unit, pdu)
                if request is not None:
                    connection.reads[transaction] = request
                    if len(connection.reads) > 256:          # answers that never came
                        connection.reads.pop(next(iter(connection.reads)))
                connection.upstream.write(frame(transaction, unit, pdu, protocol))
                await connection.upstream.drain()
        except (asyncio.IncompleteReadError, ValueError, OSError):
            pass
        finally:
            connection.close()

    async def _answers(self, connection: _Connection, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                transaction, protocol, unit, pdu = await read_frame(reader)
                request = connection.reads.pop(transaction, None)
                mode = self.mode
                if mode == "stall":
                    self.stats["answers_dropped"] += 1
                    continue
                data = frame(transaction, unit, pdu, protocol)
                changed = self._alter(mode, data, request)
                self.stats["answers_altered" if changed != data else "answers_passed"] += 1
                connection.client.write(changed)
                await connection.client.drain()
        except (asyncio.IncompleteReadError, ValueError, OSError):
            pass
        finally:
            connection.close()

    # ---- faults --------------------------------------------------------------------------

    def _alter(self, mode: str, data: bytes, request: ReadRequest | None) -> bytes:
        if mode == "garble":
            return self.garble(data)
        if mode in ("nan", "random") and request is not None and len(data) > 9 \
                and data[7] == request.function and data[8] == len(data) - 9:
            words = list(struct.unpack(f">{data[8] // 2}H", data[9:9 + data[8] // 2 * 2]))
            if mode == "nan":
                self.nan_floats(request, words)
            else:
                words = [self._random.getrandbits(16) for _ in words]
            return data[:9] + struct.pack(f">{len(words)}H", *words)
        return data

    def nan_floats(self, request: ReadRequest, words: list[int]) -> None:
        """Set every float register wholly inside the answer's words to NaN (in place)."""
        end = request.address + len(words)
        for (unit, address), count in self.float_registers.items():
            if unit == request.unit and request.address <= address and address + count <= end:
                start = address - request.address
                words[start:start + count] = NAN_WORDS[count]

    def garble(self, data: bytes) -> bytes:
        """`data` damaged in one randomly chosen way (never returned unchanged)."""
        rng = self._random
        kind = rng.choice(self.garbles)
        self.stats[f"garble_{kind}"] += 1
        out = bytearray(data)
        if kind == "flip":
            for _ in range(rng.randint(1, 3)):
                out[rng.randrange(len(out))] ^= rng.randint(1, 255)
        elif kind == "length":
            length = struct.unpack_from(">H", out, 4)[0]
            struct.pack_into(">H", out, 4, (length + rng.randint(1, 300)) % 0x10000)
        elif kind == "truncate":
            del out[rng.randint(1, len(out) - 1):]
        elif kind == "junk":
            out += bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 20)))
        elif kind == "byte_count" and len(out) > 8 and out[7] in READ_FUNCTIONS:
            out[8] = (out[8] + rng.randint(1, 255)) % 256
        elif kind == "function":                 # a function code no answer has
            out[7] = rng.choice((0x41, 0x55, 0x64, 0x7E))
        elif kind == "transaction":
            struct.pack_into(">H", out, 0, (struct.unpack_from(">H", out, 0)[0]
                                            + rng.randint(1, 0xFFFE)) % 0x10000)
        else:   # a Modbus exception instead of the answer (also "byte_count" on other answers)
            out = bytearray(data[:4]) + struct.pack(">HBBB", 3, data[6], (data[7] | 0x80) & 0xFF,
                                                   rng.choice((1, 2, 3, 4, 6, 11)))
        return bytes(out) if bytes(out) != data else bytes(out) + b"\x00"
