"""A simulated Alfen NG9xx charging station speaking Modbus TCP (pymodbus server).

It serves the register map of shared/reference/alfen-modbus.md: unit 200 is the station, unit 1
the socket. Values are stored in the encodings a real station uses (big-endian words, high word
first, NUL-padded ASCII strings, 0xFFFF words for "not available").

With `sockets=2` it is a double station (an Eve Double): unit 2 is the second socket, with its
own EV (`second_ev`), setpoint, validity, phases and meter; `socket(2)` is that socket's model
(the same attributes and test hooks as the simulator's own, which are socket 1's). The
station's active max current (1100) caps what each socket offers; 1105 reads the number of
sockets; `fault` and `reboot()` are the station's, so they touch both sockets.

Behaviour modelled after the real station:
- Register 1210 (Modbus max current setpoint) is writable only as a whole FLOAT32 in one request;
  a write touching only one of its two registers is refused with ILLEGAL_VALUE (exception 3).
- The setpoint is valid for `validity_s` (default 60 s of simulated time) after the last write.
  Then the station applies the safe current (1212). 1206 shows the applied max current, 1208 the
  remaining validity in s, 1214 whether the Modbus setpoint is being applied.
- Phases (1215, socket unit) accept 1 or 3; anything else is refused with ILLEGAL_VALUE.
- Registers that the map does not list as writable refuse writes with ILLEGAL_ADDRESS (2), and so
  do reads of undefined registers.
- A unit id other than 200 and the sockets' (1, and 2 with `sockets=2`) gets exception 10
  "gateway path unavailable", the usual answer of a Modbus TCP device for a unit it does not
  have.
- Within the socket block 300..377, registers the reference does not list (L-L voltages, power
  factors, apparent/reactive power on a real station) exist but read as NaN here, so a client can
  read the whole block in one request as it can on a real station.

The car is a `SimulatedEV` advanced on the simulator's clock (a ScaledClock makes it fast):
per-phase current, power and energy follow what it draws, the mode-3 state comes from it.

Test hooks are plain methods: plug_in()/plug_out(), reboot(), set_nan(register), force_mode3(),
stop()/start() (the server vanishes and returns on the same port); `connection_count` is the
number of Modbus TCP connections open now.

`sim.fault` garbles what the Modbus server answers (the model underneath runs on, and writes are
taken as usual), for as long as it is set; None answers normally again:
- "nan": every measurement register (1100..1105, 300..377, 1200..1215) reads 0xFFFF (NaN);
- "nan_floats": only their FLOAT32/FLOAT64 registers read NaN (the mode-3 state, phases and
  flags stay true), as a meter that lost its values would answer;
- "random": those registers read random words (a seeded generator, so runs repeat);
- "negative_max_current": register 1100 (station active max current) reads -16.0 A;
- "huge_energy": register 374 (lifetime energy) reads 2.2e307 Wh.
The identity block 100..177 is never garbled, so a (re)connecting client still sees the station.
It is a hook on the station; faults *between* client and station (a killed, stalled or garbling
connection) are a proxy's job.

Run alone: `python -m phaeton.sim.alfen --port 1502 [--host 127.0.0.1] [--speed 1] [--plugged-in]
[--sockets 2]`.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import logging
import math
import random
import signal
from collections.abc import Callable

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from phaeton.chargers import modbus_words as mw
from phaeton.clock import REAL_CLOCK, Clock, ScaledClock
from phaeton.sim.ev import SimulatedEV

log = logging.getLogger("phaeton.sim.alfen")

STATION_UNIT = 200
SOCKET_UNIT = 1

# Register map: address -> (unit, registers, kind). Kinds: "str", "i16", "u16", "u32", "u64",
# "f32", "f64". The simulator fills these from its model on every request.
REGISTER_MAP: dict[int, tuple[int, int, str]] = {
    100: (STATION_UNIT, 17, "str"),   # name
    117: (STATION_UNIT, 5, "str"),    # manufacturer
    122: (STATION_UNIT, 1, "i16"),    # Modbus table version
    123: (STATION_UNIT, 17, "str"),   # firmware version
    140: (STATION_UNIT, 17, "str"),   # platform type
    157: (STATION_UNIT, 11, "str"),   # station serial
    168: (STATION_UNIT, 1, "i16"), 169: (STATION_UNIT, 1, "i16"), 170: (STATION_UNIT, 1, "i16"),
    171: (STATION_UNIT, 1, "i16"), 172: (STATION_UNIT, 1, "i16"), 173: (STATION_UNIT, 1, "i16"),
    174: (STATION_UNIT, 4, "u64"),    # uptime ms
    1100: (STATION_UNIT, 2, "f32"),   # station active max current
    1102: (STATION_UNIT, 2, "f32"),   # board temperature
    1104: (STATION_UNIT, 1, "u16"),   # OCPP state
    1105: (STATION_UNIT, 1, "u16"),   # number of sockets
    300: (SOCKET_UNIT, 1, "u16"),     # meter state
    306: (SOCKET_UNIT, 2, "f32"), 308: (SOCKET_UNIT, 2, "f32"), 310: (SOCKET_UNIT, 2, "f32"),
    320: (SOCKET_UNIT, 2, "f32"), 322: (SOCKET_UNIT, 2, "f32"), 324: (SOCKET_UNIT, 2, "f32"),
    326: (SOCKET_UNIT, 2, "f32"),     # current sum
    336: (SOCKET_UNIT, 2, "f32"),     # frequency
    338: (SOCKET_UNIT, 2, "f32"), 340: (SOCKET_UNIT, 2, "f32"), 342: (SOCKET_UNIT, 2, "f32"),
    344: (SOCKET_UNIT, 2, "f32"),     # real power sum
    362: (SOCKET_UNIT, 4, "f64"), 366: (SOCKET_UNIT, 4, "f64"), 370: (SOCKET_UNIT, 4, "f64"),
    374: (SOCKET_UNIT, 4, "f64"),     # energy delivered sum (Wh)
    1200: (SOCKET_UNIT, 1, "u16"),    # availability
    1201: (SOCKET_UNIT, 5, "str"),    # mode-3 state
    1206: (SOCKET_UNIT, 2, "f32"),    # applied max current
    1208: (SOCKET_UNIT, 2, "u32"),    # remaining validity (s)
    1210: (SOCKET_UNIT, 2, "f32"),    # Modbus max current setpoint (R/W)
    1212: (SOCKET_UNIT, 2, "f32"),    # safe current
    1214: (SOCKET_UNIT, 1, "u16"),    # setpoint applied flag
    1215: (SOCKET_UNIT, 1, "u16"),    # phases (R/W)
}
WRITABLE = {1210, 1211, 1215}
SETPOINT_REGISTER = 1210
PHASES_REGISTER = 1215
# Contiguous blocks each unit serves; registers inside a block that the map does not list read
# as NaN (a real station has other values there).
BLOCKS: dict[int, list[tuple[int, int]]] = {
    STATION_UNIT: [(100, 178), (1100, 1106)],
    SOCKET_UNIT: [(300, 378), (1200, 1216)],
}
# What `AlfenSimulator.fault` can garble: the registers a client reads on every poll.
FAULTS = ("nan", "nan_floats", "random", "negative_max_current", "huge_energy")
GARBLED_BLOCKS: dict[int, list[tuple[int, int]]] = {
    STATION_UNIT: [(1100, 1106)],
    SOCKET_UNIT: [(300, 378), (1200, 1216)],
}
NEGATIVE_MAX_CURRENT_A = -16.0
HUGE_ENERGY_WH = 2.2e307
METER_INITIALISED, METER_UPDATED, METER_WARNING, METER_ERROR = 1, 2, 4, 8
VALID_MODE3 = {"A", "B1", "B2", "C1", "C2", "D1", "D2", "E", "F"}
MAX_STEP_S = 10.0  # EV integration step (simulated seconds)


class AlfenSimulator:
    """An Alfen NG9xx station with one socket (or two: `sockets=2`), served over Modbus TCP
    on `host:port`. The simulator's own model is socket 1; `socket(2)` is the second one's.

    `port=0` picks a free port; `port` tells the bound one after `start()`.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, clock: Clock = REAL_CLOCK,
                 ev: SimulatedEV | None = None, station_max_current_a: float = 32.0,
                 safe_current_a: float = 6.0, validity_s: float = 60.0, phases: int = 3,
                 voltages_v: tuple[float, float, float] = (230.0, 231.0, 229.0),
                 frequency_hz: float = 50.0, board_temperature_c: float = 35.0,
                 lifetime_energy_wh: float = 1_000_000.0, serial: str = "ACE0123456",
                 name: str = "ALF_1000", platform: str = "NG910", firmware: str = "4.10.0-3250",
                 manufacturer: str = "Alfen NV", table_version: int = 1,
                 setpoint_writes_applied: bool = True, sockets: int = 1,
                 second_ev: SimulatedEV | None = None):
        if phases not in (1, 3):
            raise ValueError(f"phases must be 1 or 3, got {phases!r}")
        for label, value in (("station_max_current_a", station_max_current_a),
                             ("safe_current_a", safe_current_a), ("validity_s", validity_s)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{label} must be a finite number >= 0, got {value!r}")
        self.host = host
        self.port = port
        self.clock = clock
        self.ev = ev if ev is not None else SimulatedEV()
        self.station_max_current_a = float(station_max_current_a)
        self.safe_current_a = float(safe_current_a)
        self.validity_s = float(validity_s)
        self.phases = phases
        self.voltages_v = tuple(float(v) for v in voltages_v)
        self.frequency_hz = frequency_hz
        self.board_temperature_c = board_temperature_c
        self.serial, self.name, self.platform = serial, name, platform
        self.firmware, self.manufacturer, self.table_version = firmware, manufacturer, table_version
        # False models a station not set to "Energy Management System" load balancing: writes to
        # 1210 are stored but never applied (1214 stays 0).
        self.setpoint_writes_applied = setpoint_writes_applied
        self.meter_error = False
        self.available = True
        self.on_setpoint: Callable[[float], None] | None = None  # called on every 1210 write

        self.energy_wh = [lifetime_energy_wh / 3.0] * 3
        self.setpoint_a = 0.0                      # last value written to 1210
        self.setpoint_writes = 0
        self.phase_writes = 0
        self._written_at: float | None = None      # clock.monotonic() of the last 1210 write
        self._t = clock.monotonic()
        self._boot_t = self._t
        self._draw_a = 0.0
        self._draw_phases = 0
        self._nan: set[int] = set()
        self._forced_mode3: str | None = None
        self._fault: str | None = None
        self._garbage = random.Random(1100)
        self._server: ModbusTcpServer | None = None
        self._ticker: asyncio.Task | None = None
        self._last_logged: tuple | None = None
        if sockets not in (1, 2):
            raise ValueError(f"sockets must be 1 or 2, got {sockets!r}")
        self._station: AlfenSimulator = self          # whose station registers cap us
        self._sockets: dict[int, AlfenSimulator] = {SOCKET_UNIT: self}
        if sockets == 2:
            second = AlfenSimulator(
                host=host, port=0, clock=clock,
                ev=second_ev if second_ev is not None else SimulatedEV(),
                station_max_current_a=station_max_current_a, safe_current_a=safe_current_a,
                validity_s=validity_s, phases=phases, voltages_v=voltages_v,
                frequency_hz=frequency_hz, board_temperature_c=board_temperature_c,
                lifetime_energy_wh=lifetime_energy_wh, serial=serial, name=name,
                platform=platform, firmware=firmware, manufacturer=manufacturer,
                table_version=table_version, setpoint_writes_applied=setpoint_writes_applied)
            second._station = self
            self._sockets[SOCKET_UNIT + 1] = second
        elif second_ev is not None:
            raise ValueError("second_ev needs sockets=2")

    def socket(self, unit: int) -> AlfenSimulator:
        """The model of socket `unit` (1 is the simulator itself; 2 with `sockets=2`)."""
        try:
            return self._sockets[unit]
        except KeyError:
            raise ValueError(f"this station has no socket {unit} (sockets: "
                             f"{sorted(self._sockets)})") from None

    @property
    def socket_units(self) -> list[int]:
        return sorted(self._sockets)

    @property
    def connection_count(self) -> int:
        """Modbus TCP connections open at the server now."""
        server = self._station._server
        return len(server.active_connections) if server is not None else 0

    def _advance_all(self) -> None:
        for model in self._sockets.values():
            model._advance()

    # ---- model -----------------------------------------------------------------------------

    def _setpoint_active_at(self, t: float) -> bool:
        return (self.setpoint_writes_applied and self._written_at is not None
                and t - self._written_at < self.validity_s)

    def _offered_at(self, t: float) -> float:
        base = self.setpoint_a if self._setpoint_active_at(t) else self.safe_current_a
        return min(base, self._station.station_max_current_a)

    def _advance(self) -> None:
        """Run the EV from the last update to now, splitting at the validity expiry."""
        now = self.clock.monotonic()
        while self._t < now:
            end = min(now, self._t + MAX_STEP_S)
            if self._written_at is not None:
                expiry = self._written_at + self.validity_s
                if self._t < expiry < end:
                    end = expiry
            dt = end - self._t
            current, used = self.ev.step(dt, self._offered_at(self._t), self.phases,
                                         self.voltages_v[0])
            for i in range(used):
                self.energy_wh[i] += self.voltages_v[i] * current * dt / 3600.0
            self._t = end
        self._draw_a, self._draw_phases = self.ev.draw(self._offered_at(now), self.phases)

    @property
    def setpoint_active(self) -> bool:
        """True while the Modbus setpoint is applied (written within the validity time)."""
        return self._setpoint_active_at(self.clock.monotonic())

    @property
    def applied_current_a(self) -> float:
        """The max current the station offers now (register 1206)."""
        return self._offered_at(self.clock.monotonic())

    @property
    def remaining_validity_s(self) -> int:
        now = self.clock.monotonic()
        if not self._setpoint_active_at(now):
            return 0
        return max(0, math.ceil(self._written_at + self.validity_s - now))

    def mode3_state(self) -> str:
        if self._forced_mode3 is not None:
            return self._forced_mode3
        self._advance()
        offered = self.applied_current_a
        return self.ev.mode3_state(pwm_offered=offered >= 6.0, drawing=self._draw_a > 0)

    def phase_currents_a(self) -> list[float]:
        """What the car draws on L1, L2, L3 now."""
        self._advance()
        return [self._draw_a if i < self._draw_phases else 0.0 for i in range(3)]

    # ---- test hooks ------------------------------------------------------------------------

    def plug_in(self) -> None:
        self._advance()
        self.ev.plug_in()
        log.info("EV plugged in (SoC %.1f %%)", self.ev.soc_pct)

    def plug_out(self) -> None:
        self._advance()
        self.ev.plug_out()
        log.info("EV unplugged")

    def reboot(self) -> None:
        """A station restart: the Modbus setpoints are gone (safe current until written again),
        uptime restarts and open connections are dropped."""
        for model in self._sockets.values():
            model._advance()
            model.setpoint_a = 0.0
            model._written_at = None
        self._boot_t = self.clock.monotonic()
        if self._server is not None:
            for connection in list(self._server.active_connections.values()):
                connection.close()
        log.info("station rebooted: setpoint dropped, safe current %.1f A applies",
                 self.safe_current_a)

    def set_nan(self, register: int, nan: bool = True) -> None:
        """Make a mapped register (its first address) read NaN (0xFFFF words), or normal."""
        if register not in REGISTER_MAP:
            raise ValueError(f"register {register} is not in the Alfen register map")
        (self._nan.add if nan else self._nan.discard)(register)

    def force_mode3(self, state: str | None) -> None:
        """Report this mode-3 state (e.g. 'E', 'F') instead of the EV's; None: back to the EV."""
        if state is not None and state not in VALID_MODE3:
            raise ValueError(f"mode-3 state must be one of {sorted(VALID_MODE3)}, got {state!r}")
        self._forced_mode3 = state

    @property
    def fault(self) -> str | None:
        """The garbling of the Modbus answers now (one of FAULTS), or None."""
        return self._fault

    @fault.setter
    def fault(self, fault: str | None) -> None:
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"fault must be None or one of {', '.join(FAULTS)}, got {fault!r}")
        if fault != self._fault:
            log.info("Modbus answers %s", f"garbled: {fault}" if fault else "normal again")
        self._fault = fault

    # ---- register rendering ----------------------------------------------------------------

    def _values(self) -> dict[int, object]:
        """Every mapped register's value from the model (call after _advance())."""
        now = self.clock.monotonic()
        wall = datetime.datetime.fromtimestamp(self.clock.time(), datetime.timezone.utc)
        currents = self.phase_currents_a()
        powers = [v * i for v, i in zip(self.voltages_v, currents)]
        meter = METER_INITIALISED | METER_UPDATED | (METER_ERROR if self.meter_error else 0)
        return {
            100: self.name, 117: self.manufacturer, 122: self.table_version,
            123: self.firmware, 140: self.platform, 157: self.serial,
            168: wall.year, 169: wall.month, 170: wall.day,
            171: wall.hour, 172: wall.minute, 173: wall.second,
            174: int((now - self._boot_t) * 1000),
            1100: self._station.station_max_current_a,
            1102: self.board_temperature_c + 0.2 * sum(currents),
            1104: 0, 1105: len(self._station._sockets),
            300: meter,
            306: self.voltages_v[0], 308: self.voltages_v[1], 310: self.voltages_v[2],
            320: currents[0], 322: currents[1], 324: currents[2], 326: sum(currents),
            336: self.frequency_hz,
            338: powers[0], 340: powers[1], 342: powers[2], 344: sum(powers),
            362: self.energy_wh[0], 366: self.energy_wh[1], 370: self.energy_wh[2],
            374: sum(self.energy_wh),
            1200: 1 if self.available else 0,
            1201: self.mode3_state(),
            1206: self._offered_at(now),
            1208: self.remaining_validity_s,
            1210: self.setpoint_a,
            1212: self.safe_current_a,
            1214: 1 if self._setpoint_active_at(now) else 0,
            1215: self.phases,
        }

    def registers(self, unit: int, address: int, count: int) -> list[int]:
        """What a read of `count` registers from `address` on `unit` returns now (for tests)."""
        self._advance_all()
        words = self._render(unit)
        out = []
        for a in range(address, address + count):
            if a not in words:
                raise ValueError(f"register {a} is not served on unit {unit}")
            out.append(words[a])
        return out

    def _render(self, unit: int) -> dict[int, int]:
        """The words `unit` serves now: the station's registers (from this model) or a
        socket's (from that socket's model); the station's fault garbles both."""
        if unit == STATION_UNIT:
            layout, model = STATION_UNIT, self
        elif unit in self._sockets:
            layout, model = SOCKET_UNIT, self._sockets[unit]
        else:
            raise ValueError(f"unit {unit} is not served")
        words: dict[int, int] = {}
        for start, end in BLOCKS[layout]:
            for a in range(start, end):
                words[a] = mw.NAN_WORD
        values = model._values()
        for address, (reg_unit, count, kind) in REGISTER_MAP.items():
            if reg_unit != layout:
                continue
            if address in model._nan:
                encoded = mw.nan_words(count)
            else:
                encoded = _encode(kind, values[address], count)
            for i, word in enumerate(encoded):
                words[address + i] = word
        if self._fault is not None:
            self._garble(layout, words)
        return words

    def _garble(self, unit: int, words: dict[int, int]) -> None:
        """Apply `fault` to the rendered words of `unit` (in place)."""
        if self._fault == "negative_max_current" and unit == STATION_UNIT:
            words.update(zip(range(1100, 1102), mw.encode_float32(NEGATIVE_MAX_CURRENT_A)))
        elif self._fault == "huge_energy" and unit == SOCKET_UNIT:
            words.update(zip(range(374, 378), mw.encode_float64(HUGE_ENERGY_WH)))
        elif self._fault == "nan_floats":
            for address, (reg_unit, count, kind) in REGISTER_MAP.items():
                if reg_unit == unit and kind in ("f32", "f64") and _garbled(unit, address):
                    words.update(zip(range(address, address + count), mw.nan_words(count)))
        elif self._fault in ("nan", "random"):
            for start, end in GARBLED_BLOCKS[unit]:
                for a in range(start, end):
                    words[a] = (mw.NAN_WORD if self._fault == "nan"
                                else self._garbage.randrange(0x10000))

    # ---- Modbus request handling -----------------------------------------------------------

    async def _action(self, unit: int, function_code: int, start_address: int, address: int,
                      count: int, registers: list[int], set_values) -> ExcCodes | None:
        """pymodbus calls this before every access to `unit`; fills `registers` in place."""
        self._advance_all()
        if set_values:
            refused = self._sockets.get(unit, self)._write(address, list(set_values))
            if refused is not None:
                return refused
        for a, word in self._render(unit).items():
            registers[a - start_address] = word
        return None

    def _write(self, address: int, values: list[int]) -> ExcCodes | None:
        end = address + len(values)
        touched = set(range(address, end))
        if touched & {1210, 1211}:
            if not (address <= 1210 and end >= 1212):
                log.warning("refused a write to half of the setpoint register 1210")
                return ExcCodes.ILLEGAL_VALUE
            amps = mw.decode_float32(values[1210 - address:1212 - address])
            if amps is None or amps < 0:
                log.warning("refused setpoint write %r", values[1210 - address:1212 - address])
                return ExcCodes.ILLEGAL_VALUE
        if PHASES_REGISTER in touched:
            phases = values[PHASES_REGISTER - address]
            if phases not in (1, 3):
                log.warning("refused phases %d (only 1 or 3)", phases)
                return ExcCodes.ILLEGAL_VALUE
        # all checks passed: apply
        if touched & {1210, 1211}:
            self.setpoint_a = amps
            self._written_at = self.clock.monotonic()
            self.setpoint_writes += 1
            log.debug("setpoint %.2f A written", amps)
            if self.on_setpoint is not None:
                self.on_setpoint(amps)
        if PHASES_REGISTER in touched:
            if phases != self.phases:
                log.info("phases switched %d -> %d", self.phases, phases)
            self.phases = phases
            self.phase_writes += 1
        return None

    @staticmethod
    async def _unknown_unit(*_args) -> ExcCodes:
        return ExcCodes.GATEWAY_PATH_UNAVIABLE

    def _devices(self) -> list[SimDevice]:
        devices = []
        units = [(STATION_UNIT, BLOCKS[STATION_UNIT])]
        units += [(unit, BLOCKS[SOCKET_UNIT]) for unit in sorted(self._sockets)]
        for unit, blocks in units:
            simdata = [SimData(a, count=1, values=0, datatype=DataType.REGISTERS,
                               readonly=a not in WRITABLE)
                       for start, end in blocks for a in range(start, end)]

            async def action(fc, start, address, count, registers, values, _unit=unit):
                return await self._action(_unit, fc, start, address, count, registers, values)

            devices.append(SimDevice(unit, simdata=simdata, action=action))
        # id 0 answers every other unit id: with an exception, as a real station does
        devices.append(SimDevice(0, simdata=[SimData(0, count=65536, values=0,
                                                     datatype=DataType.REGISTERS)],
                                 action=self._unknown_unit))
        return devices

    # ---- server lifecycle ------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        """Listen on host:port (the same port again after a stop())."""
        if self._server is not None:
            return
        server = ModbusTcpServer(self._devices(), address=(self.host, self.port))
        await server.serve_forever(background=True)
        self._server = server
        self.port = server.transport.sockets[0].getsockname()[1]
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick(), name="alfen-sim-ticker")
        log.info("Alfen simulator listening on %s:%d (station unit %d, socket unit%s %s)",
                 self.host, self.port, STATION_UNIT, "s" if len(self._sockets) > 1 else "",
                 ", ".join(str(u) for u in sorted(self._sockets)))

    async def stop(self) -> None:
        """Close the listener and every connection (the station vanishes from the network)."""
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()
            log.info("Alfen simulator on port %d stopped", self.port)

    async def close(self) -> None:
        """stop() and end the background ticker."""
        await self.stop()
        if self._ticker is not None:
            self._ticker.cancel()
            try:
                await self._ticker
            except asyncio.CancelledError:
                pass
            self._ticker = None

    async def __aenter__(self) -> AlfenSimulator:
        await self.start()
        return self

    async def __aexit__(self, *_exc) -> None:
        await self.close()

    async def _tick(self) -> None:
        """Keep the EV model moving and log state changes (not every tick)."""
        while True:
            for unit, model in self._sockets.items():
                model._advance()
                state = (model.mode3_state(), model.setpoint_active,
                         round(model.applied_current_a, 1), model.phases)
                if state != model._last_logged:
                    where = f"socket {unit}: " if len(self._sockets) > 1 else ""
                    log.info("%smode-3 %s, %s, applied %.1f A, %d phases, car draws %.1f A",
                             where, state[0], "Modbus setpoint" if state[1] else "safe current",
                             state[2], state[3], model._draw_a)
                    model._last_logged = state
            await asyncio.sleep(0.2)


def _garbled(unit: int, address: int) -> bool:
    """Whether `address` of `unit` lies in what `fault` garbles."""
    return any(start <= address < end for start, end in GARBLED_BLOCKS[unit])


def _encode(kind: str, value, count: int) -> list[int]:
    if kind == "str":
        return mw.encode_string(str(value), count)
    if kind == "f32":
        return mw.encode_float32(float(value))
    if kind == "f64":
        return mw.encode_float64(float(value))
    if kind == "u16":
        return mw.encode_uint16(int(value))
    if kind == "i16":
        return mw.encode_int16(int(value))
    if kind == "u32":
        return mw.encode_uint32(int(value))
    if kind == "u64":
        return mw.encode_uint64(int(value))
    raise ValueError(f"unknown register kind {kind!r}")


async def _serve(args: argparse.Namespace) -> None:
    clock = ScaledClock(args.speed) if args.speed != 1 else REAL_CLOCK
    sim = AlfenSimulator(host=args.host, port=args.port, clock=clock,
                         station_max_current_a=args.max_current, safe_current_a=args.safe_current,
                         validity_s=args.validity, sockets=args.sockets)
    if args.plugged_in:
        for unit in sim.socket_units:
            sim.socket(unit).plug_in()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await sim.start()
    try:
        await stop.wait()
    finally:
        await sim.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m phaeton.sim.alfen",
                                     description="Simulated Alfen NG9xx station on Modbus TCP")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1502)
    parser.add_argument("--speed", type=float, default=1.0,
                        help="simulated seconds per real second")
    parser.add_argument("--plugged-in", action="store_true", help="start with the EV plugged in")
    parser.add_argument("--max-current", type=float, default=32.0, help="station max current A")
    parser.add_argument("--safe-current", type=float, default=6.0, help="safe current A")
    parser.add_argument("--validity", type=float, default=60.0, help="setpoint validity s")
    parser.add_argument("--sockets", type=int, choices=(1, 2), default=1,
                        help="1, or 2 for a double station (units 1 and 2)")
    args = parser.parse_args(argv)
    if not args.speed > 0:
        parser.error("--speed must be > 0")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
