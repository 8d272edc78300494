"""Alfen NG9xx (Eve Single/Double Pro-line) over Modbus TCP.

Register map and behaviour: shared/reference/alfen-modbus.md. Unit 200 is the station, unit 1
the socket (2 the second socket of a double station). The driver reads four contiguous blocks:

- station identity 100..177 (once per connection): name, manufacturer, table version,
  firmware, platform type (= model), serial;
- station status 1100..1105: active max current, board temperature, number of sockets;
- socket meter 300..377: meter state, voltages, currents, frequency, powers, energies;
- socket control 1200..1215: availability, mode-3 state, applied max current, setpoint
  validity, setpoint, safe current, setpoint-applied flag, phases.

The current limit goes to register 1210 as one FLOAT32 in one write-multiple request (0x10).
The station forgets it after its validity time (60 s by default) and after a reboot, so the
driver re-sends the last setpoint every `setpoint_refresh_s` (<= 25 s) and right after every
(re)connect. After a write, the next read checks 1214/1210/1206; a charger that does not apply
the setpoint is reported in `last_error` and `extra`, not hidden.

Reconnecting: a rebooted or unplugged station runs on its own safe current until the driver is
back, so the driver keeps trying quickly. Connection attempts start `reconnect_min_s` (1 s)
apart, doubling up to `reconnect_max_s` (config `charger.alfen.reconnect_max_s`, default 5 s),
measured start to start: a station that answers again is reconnected (and told its setpoint)
within about that cap. An attempt is one TCP connect on the LAN (plus one diagnostic connect
when it fails), so trying every few seconds for hours costs nothing; attempts never follow
each other faster than every `reconnect_min_s`. What backs off is the log: one warning when the
station is lost (or the first attempt fails), reminders 1 min, 2 min, 4 min ... (at most 1 h)
apart while it stays away, and one info line with the outage's length when it is back.

Values are reported as the station says them (NaN registers as None; the lifetime counter as
read, never a remembered "last good" value): the service judges them
(`phaeton.control.plausibility`). A read that fails those checks teaches the driver nothing: the
capabilities, the station maximum that clamps the setpoint and the setpoint read-back check wait
for a believable answer (the problems are listed in `extra["implausible"]`).

One station, one connection: the drivers of a station's sockets (same host and port, e.g.
socket_unit_id 1 and 2 of an Eve Double) share one Modbus TCP connection (`_StationLink`, a
refcounted pool keyed by host and port: the first driver to start opens it, the last to stop
closes it). A station accepts only two masters at once, so a connection per socket would leave
no room for anyone else. Requests on it go one at a time. A lost connection (no answer, closed
by the station) is lost for every socket; whichever driver reconnects first opens the new one
and the others use it (each reads its own socket's blocks and re-sends its own setpoint). A
refusal that concerns one socket (a Modbus exception, e.g. a wrong unit id) does not close the
connection the other socket uses. Each driver clamps its setpoint to the station's active max
current (register 1100 of the station unit, shown as `station_max_current_a`). Stations on
other hosts or ports have connections of their own.

Pure decoding and decision logic (module-level functions) is kept apart from the I/O class
`AlfenCharger`. Note on stop(): nothing is written; without refreshes the station falls back
to its own safe current after the validity time, which is its designed safe state.
"""
from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import math
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from phaeton.chargers import modbus_log
from phaeton.chargers import modbus_words as mw
from phaeton.chargers.base import (Capability, CapabilityMissing, Charger, ChargerIdentity,
                                   ChargerMeasurement, ChargerUnavailable, VehicleState,
                                   effective_current)
from phaeton.clock import REAL_CLOCK, Clock
from phaeton.control.plausibility import measurement_problems, plausible_station_max_current

if TYPE_CHECKING:
    from pymodbus.client import AsyncModbusTcpClient

log = logging.getLogger("phaeton.chargers.alfen")

# Contiguous blocks read in one request each: (first register, number of registers).
IDENTITY_BLOCK = (100, 78)   # station 100..177
STATUS_BLOCK = (1100, 6)     # station 1100..1105
METER_BLOCK = (300, 78)      # socket 300..377
CONTROL_BLOCK = (1200, 16)   # socket 1200..1215

SETPOINT_REGISTER = 1210
PHASES_REGISTER = 1215
MAX_SETPOINT_REFRESH_S = 25.0
LOG_REMINDER_FIRST_S = 60.0    # while the station stays away: first reminder after 1 min,
LOG_REMINDER_MAX_S = 3600.0    # then doubling gaps up to one per hour
METER_ERROR_BIT = 8
SETPOINT_TOLERANCE_A = 0.05
REQUIRED_READINGS = frozenset({"voltage_v", "current_a"})

MODBUS_EXCEPTIONS = {
    1: "illegal function", 2: "illegal data address", 3: "illegal data value",
    4: "server device failure", 5: "acknowledge", 6: "server device busy",
    10: "gateway path unavailable", 11: "gateway target device failed to respond",
}

_MODE3_STATES = {
    "A": VehicleState.NO_VEHICLE,
    "B1": VehicleState.CONNECTED, "B2": VehicleState.CONNECTED,
    "C1": VehicleState.CONNECTED, "D1": VehicleState.CONNECTED,
    "C2": VehicleState.CHARGING, "D2": VehicleState.CHARGING,
}
_MODE3_ERRORS = {"E": "no power (state E)", "F": "charger error (state F)"}


@dataclass(frozen=True)
class AlfenConfig:
    host: str
    port: int = 502
    station_unit_id: int = 200
    socket_unit_id: int = 1
    timeout_s: float = 3.0
    setpoint_refresh_s: float = 20.0
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 5.0   # longest time between the starts of two connection attempts

    def __post_init__(self):
        if not isinstance(self.host, str) or not self.host.strip():
            raise ValueError(f"Alfen host must be a non-empty host name or address, got {self.host!r}")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise ValueError(f"Alfen port must be 1..65535, got {self.port!r}")
        for name in ("station_unit_id", "socket_unit_id"):
            unit = getattr(self, name)
            if isinstance(unit, bool) or not isinstance(unit, int) or not 0 <= unit <= 255:
                raise ValueError(f"Alfen {name} must be 0..255, got {unit!r}")
        for name in ("timeout_s", "setpoint_refresh_s", "reconnect_min_s", "reconnect_max_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value <= 0:
                raise ValueError(f"Alfen {name} must be a number > 0, got {value!r}")
        if self.setpoint_refresh_s > MAX_SETPOINT_REFRESH_S:
            raise ValueError(f"Alfen setpoint_refresh_s must be <= {MAX_SETPOINT_REFRESH_S:g} s "
                             f"(the station drops the setpoint after its validity time), "
                             f"got {self.setpoint_refresh_s!r}")
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError(f"Alfen reconnect_min_s ({self.reconnect_min_s}) must not exceed "
                             f"reconnect_max_s ({self.reconnect_max_s})")


# ---- pure decoding and decisions -----------------------------------------------------------

def vehicle_state_from_mode3(state: str | None) -> tuple[VehicleState, str | None]:
    """(vehicle state, error reason) for an IEC 61851 mode-3 state as the station reports it.
    An unreadable or unknown state is UNKNOWN (the answer is unusable), not a charger error."""
    if state is None:
        return VehicleState.UNKNOWN, "mode-3 state not available (register 1201 reads NaN)"
    if state in _MODE3_STATES:
        return _MODE3_STATES[state], None
    if state in _MODE3_ERRORS:
        return VehicleState.ERROR, _MODE3_ERRORS[state]
    return VehicleState.UNKNOWN, f"unknown mode-3 state {state!r}"


def decode_identity(identity: mw.RegisterBlock, status: mw.RegisterBlock) -> tuple[ChargerIdentity, dict]:
    """The station's identity (platform type is the model) and other facts for `extra`."""
    ident = ChargerIdentity(
        manufacturer=identity.string(117, 5) or "",
        model=identity.string(140, 17) or "",
        serial=identity.string(157, 11) or "",
        firmware=identity.string(123, 17) or "",
    )
    info = {
        "station_name": identity.string(100, 17),
        "modbus_table_version": identity.int16(122),
        "number_of_sockets": status.uint16(1105),
    }
    return ident, info


def decode_capabilities(status: mw.RegisterBlock, control: mw.RegisterBlock) -> frozenset[Capability]:
    """What this station showed it can do: phase switching when 1215 reads 1 or 3, station max
    current when 1100 reads a plausible current."""
    caps = set()
    if control.uint16(PHASES_REGISTER) in (1, 3):
        caps.add(Capability.PHASE_SWITCHING)
    if plausible_station_max_current(status.float32(1100)):
        caps.add(Capability.STATION_MAX_CURRENT)
    return frozenset(caps)


def decode_measurement(status: mw.RegisterBlock, meter: mw.RegisterBlock,
                       control: mw.RegisterBlock) -> ChargerMeasurement:
    """A measurement from the three status blocks, exactly as the registers say (energy in kWh;
    NaN registers give None). Whether to believe it is the service's decision."""
    mode3 = control.string(1201, 5)
    vehicle_state, error_reason = vehicle_state_from_mode3(mode3)
    energy_wh = meter.float64(374)
    meter_state = meter.uint16(300)
    phases = control.uint16(PHASES_REGISTER)
    applied_flag = control.uint16(1214)
    available = control.uint16(1200)
    extra = {
        "mode3_state": mode3,
        "board_temperature_c": status.float32(1102),
        "frequency_hz": meter.float32(336),
        "setpoint_validity_remaining_s": control.uint32(1208),
        "safe_current_a": control.float32(1212),
        "setpoint_a": control.float32(SETPOINT_REGISTER),
        "setpoint_applied": None if applied_flag is None else applied_flag == 1,
        "current_sum_a": meter.float32(326),
        "meter_state": meter_state,
        "meter_error": bool(meter_state is not None and meter_state & METER_ERROR_BIT),
        "available": None if available is None else available == 1,
        "energy_phase_kwh": tuple(None if (wh := meter.float64(a)) is None else wh / 1000.0
                                  for a in (362, 366, 370)),
    }
    return ChargerMeasurement(
        vehicle_state=vehicle_state,
        voltage_v=(meter.float32(306), meter.float32(308), meter.float32(310)),
        current_a=(meter.float32(320), meter.float32(322), meter.float32(324)),
        power_w=(meter.float32(338), meter.float32(340), meter.float32(342)),
        total_power_w=meter.float32(344),
        lifetime_energy_kwh=None if energy_wh is None else energy_wh / 1000.0,
        error_reason=error_reason,
        applied_current_a=control.float32(1206),
        phases=phases if phases in (1, 3) else None,
        station_max_current_a=status.float32(1100),
        extra=extra,
    )


def target_setpoint_a(requested_a: float | None, enabled: bool,
                      station_max_a: float | None) -> float:
    """What to write to 1210: 0 when disabled or below 6 A, else the request clamped to the
    station's max current (and 0 if that clamp lands below 6 A)."""
    if not enabled or requested_a is None:
        return 0.0
    amps = effective_current(requested_a)
    if station_max_a is not None:
        amps = min(amps, station_max_a)
    return effective_current(amps)


def setpoint_problem(written_a: float, control: mw.RegisterBlock) -> str | None:
    """Why the station is not applying the setpoint we wrote, or None when it is."""
    flag = control.uint16(1214)
    readback = control.float32(SETPOINT_REGISTER)
    applied = control.float32(1206)
    if flag != 1:
        return (f"charger is not applying the Modbus setpoint {written_a:g} A (register 1214 = "
                f"{flag}); it uses its safe current. Check 'Active load balancing' with data "
                f"source 'Energy Management System' in the Alfen service tool")
    if readback is None or abs(readback - written_a) > SETPOINT_TOLERANCE_A:
        return f"charger holds setpoint {readback} A, not the {written_a:g} A written"
    if applied is not None and applied > written_a + SETPOINT_TOLERANCE_A:
        return f"charger applies {applied:g} A although the setpoint is {written_a:g} A"
    return None


def next_backoff_s(delay_s: float, config: AlfenConfig) -> float:
    """The interval between connection attempts after one more failure: doubling from
    reconnect_min_s, capped at reconnect_max_s."""
    return min(max(delay_s * 2.0, config.reconnect_min_s), config.reconnect_max_s)


def duration_text(seconds: float) -> str:
    """A length of time for the log: '45 s', '12 min', '3.5 h'."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# ---- I/O -----------------------------------------------------------------------------------

class _LinkError(Exception):
    """The connection is gone or the station did not answer."""


class _DeviceError(Exception):
    """The station answered with a Modbus exception or a malformed answer."""


def _request_errors() -> tuple[type[BaseException], ...]:
    """What a request on an open connection raises when the station is gone or silent. Only
    evaluated when a request raised, so pymodbus (imported with the first connection: the
    service owns its D-Bus name before it loads) is there by then."""
    from pymodbus.exceptions import ModbusException
    return ModbusException, OSError, asyncio.TimeoutError


class _StationLink:
    """The Modbus TCP connection to one station (host, port), shared by its sockets' drivers
    (see the module docstring). `users` are the started drivers."""

    def __init__(self, key: tuple[str, int]):
        self.key = key
        self.users: set[AlfenCharger] = set()
        self.client: AsyncModbusTcpClient | None = None
        self.io_lock = asyncio.Lock()        # one request (sequence) at a time on the wire
        self._connect_lock = asyncio.Lock()
        self.connections_opened = 0          # TCP connections made (for tests and logs)

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.connected

    async def connect(self, config: AlfenConfig) -> AsyncModbusTcpClient | None:
        """The open connection, opening it when there is none (one attempt); None when the
        TCP connection cannot be made."""
        async with self._connect_lock:
            if self.client is not None and self.client.connected:
                return self.client
            from pymodbus.client import AsyncModbusTcpClient   # the first connection loads it
            holder: list[AsyncModbusTcpClient] = []
            client = AsyncModbusTcpClient(
                config.host, port=config.port, timeout=config.timeout_s, retries=0,
                reconnect_delay=0, name="alfen",
                trace_connect=lambda up: self._on_trace(holder[0] if holder else None, up))
            holder.append(client)
            try:
                tcp_up = await client.connect()
            except BaseException:
                client.close()
                raise
            if not tcp_up:
                client.close()
                return None
            self.client = client
            self.connections_opened += 1
            return client

    def _on_trace(self, client: AsyncModbusTcpClient | None, up: bool) -> None:
        if not up and client is not None:
            self.drop(client, "the charger closed the connection")

    def drop(self, client: AsyncModbusTcpClient | None, reason: str) -> None:
        """`client` is broken: every socket using it is told (it reconnects), then it closes."""
        if client is None:
            return
        if client is self.client:
            self.client = None
        for driver in list(self.users):
            driver._link_gone(client, reason)
        client.close()

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.close()


_STATION_LINKS: dict[tuple[str, int], _StationLink] = {}


def _link_key(config: AlfenConfig) -> tuple[str, int]:
    return config.host.strip().lower(), config.port


def _acquire_link(driver: AlfenCharger) -> _StationLink:
    key = _link_key(driver.config)
    link = _STATION_LINKS.get(key)
    if link is None:
        link = _STATION_LINKS[key] = _StationLink(key)
    link.users.add(driver)
    return link


def _release_link(driver: AlfenCharger, link: _StationLink) -> None:
    link.users.discard(driver)
    if not link.users:
        link.close()
        if _STATION_LINKS.get(link.key) is link:
            del _STATION_LINKS[link.key]


def station_link_of(driver: AlfenCharger) -> _StationLink | None:
    """The shared connection a started driver uses (None before start / after stop)."""
    return driver._link


class AlfenCharger(Charger):
    """One Alfen socket over Modbus TCP. Start with `await charger.start()`. Sockets of one
    station (same host and port) share one connection (`_StationLink`)."""

    def __init__(self, config: AlfenConfig, clock: Clock = REAL_CLOCK):
        self.config = config
        self.clock = clock
        self._client: AsyncModbusTcpClient | None = None   # the link's client while we use it
        self._link: _StationLink | None = None              # while started
        self._stopped = False                                # stop() was called
        self._connected = False
        self._link_error: str | None = "not started"
        self._command_error: str | None = None
        self._identity: ChargerIdentity | None = None
        self._station_info: dict = {}
        self._capabilities: frozenset[Capability] = frozenset()
        self._station_max_a: float | None = None
        self._requested_a: float | None = None   # None: no setpoint asked for yet
        self._enabled = True
        self._requested_phases: int | None = None
        self._written_a: float | None = None      # last value written to 1210
        self._last_write_t: float | None = None
        self._last_io_t = 0.0
        self._resent_after_fallback = False
        self._own_io_lock = asyncio.Lock()    # only while not started (no link)
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.setpoint_writes = 0     # successful writes to 1210
        self.reconnects = 0          # successful (re)connections
        self.connect_attempts = 0
        # the current outage (None while connected and before the first attempt)
        self._away_since: float | None = None
        self._away_attempts = 0                  # failed connection attempts in this outage
        self._remind_at = 0.0                    # clock.monotonic() of the next log reminder
        self._remind_gap_s = LOG_REMINDER_FIRST_S

    # ---- Charger interface -----------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def connection_text(self) -> str:
        suffix = "" if self.config.port == 502 else f":{self.config.port}"
        return f"Modbus TCP {self.config.host}{suffix}"

    @property
    def last_error(self) -> str | None:
        if not self._connected:
            return self._link_error
        return self._command_error

    @property
    def identity(self) -> ChargerIdentity | None:
        return self._identity

    @property
    def station_info(self) -> dict:
        """Station name, Modbus table version and number of sockets (known once connected)."""
        return dict(self._station_info)

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self._capabilities

    @property
    def required_readings(self) -> frozenset[str]:
        """Its meter always has voltages and currents: NaN on every phase is no answer."""
        return REQUIRED_READINGS

    @property
    def _io_lock(self) -> asyncio.Lock:
        """The station connection's lock: one request sequence at a time, whichever socket."""
        return self._link.io_lock if self._link is not None else self._own_io_lock

    async def start(self) -> None:
        modbus_log.install()   # an undecodable answer is a warning, not a traceback
        self._stopped = False
        if self._task is None:
            self._link_error = "connecting"
            if self._link is None:
                self._link = _acquire_link(self)
            self._task = asyncio.create_task(self._supervise(), name="alfen-supervisor")

    async def stop(self) -> None:
        self._stopped = True
        task, self._task = self._task, None
        if task is not None:
            # A cancellation can be swallowed inside the Modbus client's connect (asyncio's
            # wait_for on 3.11): cancel again until the supervisor has really ended.
            for _ in range(50):
                task.cancel()
                await asyncio.wait({task}, timeout=0.2)
                if task.done():
                    break
            else:
                log.error("the Alfen supervisor did not stop; leaving it behind")
        self._close_client(broken=False)
        link, self._link = self._link, None
        if link is not None:
            _release_link(self, link)      # the last socket of the station closes it
        if self._connected:
            log.info("disconnected from %s (stopped)", self.connection_text)
        self._connected = False
        self._link_error = "stopped"

    async def read(self) -> ChargerMeasurement:
        if not self._connected:
            raise ChargerUnavailable(f"Alfen {self.connection_text} not connected: {self._link_error}")
        async with self._io_lock:
            try:
                status = await self._read(self.config.station_unit_id, *STATUS_BLOCK)
                meter = await self._read(self.config.socket_unit_id, *METER_BLOCK)
                control = await self._read(self.config.socket_unit_id, *CONTROL_BLOCK)
            except (_LinkError, _DeviceError) as exc:
                self._lost(str(exc), broken=isinstance(exc, _LinkError))
                raise ChargerUnavailable(f"Alfen {self.connection_text}: {exc}") from None
        measurement = decode_measurement(status, meter, control)
        extra = dict(measurement.extra)
        extra.update({k: v for k, v in self._station_info.items() if v is not None})
        if extra["meter_error"]:
            extra["meter_warning"] = f"meter reports an error (state bits {extra['meter_state']})"
        implausible = measurement_problems(measurement, REQUIRED_READINGS)
        if implausible:
            # Garbage teaches nothing: capabilities, the station maximum (which clamps the
            # setpoint) and the setpoint read-back check wait for a believable answer.
            extra["implausible"] = implausible
        else:
            self._learn(status, control)
            self._check_setpoint(control, extra)
        return dataclasses.replace(measurement, extra=extra)

    async def set_current(self, amps: float) -> None:
        if isinstance(amps, bool) or not isinstance(amps, (int, float)) or not math.isfinite(amps):
            raise ValueError(f"charging current must be a finite number of amps, got {amps!r}")
        if amps < 0:
            raise ValueError(f"charging current cannot be negative, got {amps!r} A")
        self._requested_a = float(amps)
        await self._send_setpoint()

    async def set_enabled(self, enabled: bool) -> None:
        if not isinstance(enabled, bool):
            raise ValueError(f"enabled must be True or False, got {enabled!r}")
        self._enabled = enabled
        if self._has_setpoint():
            await self._send_setpoint()

    async def set_phases(self, phases: int) -> None:
        if isinstance(phases, bool) or phases not in (1, 3):
            raise ValueError(f"phases must be 1 or 3, got {phases!r}")
        if not self._connected:
            raise ChargerUnavailable(f"Alfen {self.connection_text} not connected: {self._link_error}")
        if Capability.PHASE_SWITCHING not in self._capabilities:
            raise CapabilityMissing(f"Alfen {self.connection_text} does not report phases in "
                                    f"register {PHASES_REGISTER}; phase switching unavailable "
                                    f"(enable 'Allow 1- and 3-phase charging')")
        self._requested_phases = phases
        async with self._io_lock:
            await self._write_phases(phases)

    # ---- setpoint --------------------------------------------------------------------------

    @property
    def target_current_a(self) -> float:
        """The value the driver writes to 1210 (and keeps re-sending)."""
        return target_setpoint_a(self._requested_a, self._enabled, self._station_max_a)

    def _has_setpoint(self) -> bool:
        return self._requested_a is not None or not self._enabled

    async def _send_setpoint(self) -> None:
        if not self._connected:
            raise ChargerUnavailable(
                f"Alfen {self.connection_text} not connected ({self._link_error}); "
                f"{self.target_current_a:g} A will be sent once it is back")
        async with self._io_lock:
            await self._write_setpoint()

    async def _write_setpoint(self) -> None:
        """Write the target to 1210 in one 0x10 request (caller holds the I/O lock)."""
        amps = self.target_current_a
        try:
            await self._write(self.config.socket_unit_id, SETPOINT_REGISTER, mw.encode_float32(amps))
        except _LinkError as exc:
            self._lost(str(exc))
            raise ChargerUnavailable(f"Alfen {self.connection_text}: {exc}") from None
        except _DeviceError as exc:
            self._command_error = f"setpoint {amps:g} A refused: {exc}"
            log.warning("%s", self._command_error)
            raise ChargerUnavailable(f"Alfen {self.connection_text}: {self._command_error}") from None
        self._written_a = amps
        self._last_write_t = self.clock.monotonic()
        self.setpoint_writes += 1
        self._wake.set()

    async def _write_phases(self, phases: int) -> None:
        try:
            await self._write(self.config.socket_unit_id, PHASES_REGISTER, [phases], single=True)
        except _LinkError as exc:
            self._lost(str(exc))
            raise ChargerUnavailable(f"Alfen {self.connection_text}: {exc}") from None
        except _DeviceError as exc:
            self._command_error = f"switching to {phases} phases refused: {exc}"
            log.warning("%s", self._command_error)
            raise ChargerUnavailable(f"Alfen {self.connection_text}: {self._command_error}") from None
        log.info("switched %s to %d phase(s)", self.connection_text, phases)

    def _check_setpoint(self, control: mw.RegisterBlock, extra: dict) -> None:
        """Read-back check of the last write; a station that lost it gets it again at once
        (once per loss, the refresh schedule does the rest)."""
        if self._written_a is None:
            return
        problem = setpoint_problem(self._written_a, control)
        extra["setpoint_written_a"] = self._written_a
        if problem is None:
            if self._command_error and self._command_error.startswith("charger"):
                log.info("charger applies the Modbus setpoint again")
            self._command_error = None
            self._resent_after_fallback = False
            return
        extra["setpoint_problem"] = problem
        if self._command_error != problem:
            log.warning("%s", problem)
        self._command_error = problem
        if control.uint16(1214) != 1 and not self._resent_after_fallback:
            self._resent_after_fallback = True
            self._last_write_t = None   # due now
            self._wake.set()

    # ---- connection supervision ------------------------------------------------------------

    async def _supervise(self) -> None:
        delay = self.config.reconnect_min_s
        while True:
            try:
                if not self._connected:
                    started = self.clock.monotonic()
                    if await self._connect():
                        delay = self.config.reconnect_min_s
                    else:
                        self._away_attempts += 1
                        self._remind_if_due()
                        # `delay` from start to start: a slow attempt (a host that does not
                        # answer) is not followed by the full wait on top
                        await self.clock.sleep(started + delay - self.clock.monotonic())
                        delay = next_backoff_s(delay, self.config)
                    continue
                wait_s = self._refresh_due_in_s()
                if wait_s > 0:
                    await self._sleep_or_wake(wait_s)
                    continue
                await self._refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let the supervisor die
                log.exception("unexpected error in Alfen supervisor")
                self._lost(f"internal error: {exc!r}", broken=False)
                await self.clock.sleep(delay)

    def _refresh_due_in_s(self) -> float:
        now = self.clock.monotonic()
        if self._has_setpoint():
            if self._last_write_t is None:
                return 0.0
            return self._last_write_t + self.config.setpoint_refresh_s - now
        return self._last_io_t + self.config.setpoint_refresh_s - now

    async def _sleep_or_wake(self, seconds: float) -> None:
        self._wake.clear()
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()

    async def _refresh(self) -> None:
        """Re-send the setpoint, or (without one) read the station status to keep the
        connection alive and notice a loss."""
        async with self._io_lock:
            if not self._connected:
                return
            if self._has_setpoint():
                try:
                    await self._write_setpoint()
                except ChargerUnavailable:
                    if self._connected:   # refused, not lost: retry on the normal schedule
                        self._last_write_t = self.clock.monotonic()
                return
            try:
                await self._read(self.config.station_unit_id, *STATUS_BLOCK)
            except (_LinkError, _DeviceError) as exc:
                self._lost(str(exc), broken=isinstance(exc, _LinkError))

    async def _connect(self) -> bool:
        cfg = self.config
        self.connect_attempts += 1
        if self._link is None:            # stopped meanwhile
            return False
        client = await self._link.connect(cfg)   # the station's connection, opened if needed
        if client is None:
            self._lost(await self._probe_reason())
            return False
        self._client = client
        async with self._io_lock:
            try:
                identity = await self._read(cfg.station_unit_id, *IDENTITY_BLOCK)
                status = await self._read(cfg.station_unit_id, *STATUS_BLOCK)
                control = await self._read(cfg.socket_unit_id, *CONTROL_BLOCK)
            except (_LinkError, _DeviceError) as exc:
                self._lost(f"{exc}{self._unit_hint(exc)}", broken=isinstance(exc, _LinkError))
                return False
            self._identity, self._station_info = decode_identity(identity, status)
            self._learn(status, control)
            self._connected = True
            self._link_error = None
            self._command_error = None   # anything still wrong is found again by the checks
            self.reconnects += 1
            outage = ""
            if self._away_since is not None:
                outage = (f"; back after {duration_text(self.clock.monotonic() - self._away_since)}"
                          f" unavailable ({self._away_attempts + 1} connection attempts)")
                self._away_since = None
            log.info("connected to %s: %s %s (%s), serial %s, firmware %s, capabilities %s%s",
                     self.connection_text, self._identity.manufacturer,
                     self._station_info.get("station_name"), self._identity.model,
                     self._identity.serial, self._identity.firmware,
                     sorted(c.value for c in self._capabilities), outage)
            try:
                if self._has_setpoint():   # a reboot or outage may have lost it
                    await self._write_setpoint()
                phases_now = control.uint16(PHASES_REGISTER)
                if (self._requested_phases is not None and phases_now != self._requested_phases
                        and Capability.PHASE_SWITCHING in self._capabilities):
                    await self._write_phases(self._requested_phases)
            except ChargerUnavailable:
                pass   # reported through last_error; the supervisor carries on
        return self._connected

    def _unit_hint(self, exc: Exception) -> str:
        if isinstance(exc, _DeviceError):
            return (f" (check the unit ids: station_unit_id={self.config.station_unit_id}, "
                    f"socket_unit_id={self.config.socket_unit_id}; an Alfen station is 200, "
                    f"socket 1 is 1)")
        return ""

    async def _probe_reason(self) -> str:
        """Why a TCP connection cannot be made, in words (one plain connection attempt)."""
        cfg = self.config
        where = f"{cfg.host}:{cfg.port}"
        try:
            _reader, writer = await asyncio.wait_for(asyncio.open_connection(cfg.host, cfg.port),
                                                     cfg.timeout_s)
        except asyncio.TimeoutError:
            return f"no answer from {where} within {cfg.timeout_s:g} s"
        except ConnectionRefusedError:
            return f"connection to {where} refused (is Modbus TCP enabled on the charger?)"
        except OSError as exc:
            return f"cannot reach {where}: {exc.strerror or exc}"
        writer.close()
        return f"Modbus connection to {where} failed although TCP connects"

    def _link_gone(self, client: AsyncModbusTcpClient, reason: str) -> None:
        """The station's connection `client` broke (found by this or another socket's driver,
        or closed by the station)."""
        if client is self._client:
            if self._connected:
                self._lost(reason, broken=False)
            else:
                self._client = None

    def _lost(self, reason: str, broken: bool = True) -> None:
        """Mark the link down. The start of an outage is a warning; while it lasts, a changed
        reason is only a debug line (the reminders of `_remind_if_due` repeat it). `broken`:
        the connection itself failed (closed for every socket of the station); otherwise only
        this socket stops using it (a Modbus exception about this socket)."""
        if self._connected or self._away_since is None:
            if self._connected:
                log.warning("lost %s: %s", self.connection_text, reason)
            else:
                log.warning("%s unavailable: %s", self.connection_text, reason)
            self._away_since = self.clock.monotonic()
            self._away_attempts = 0
            self._remind_gap_s = LOG_REMINDER_FIRST_S
            self._remind_at = self._away_since + self._remind_gap_s
        elif reason != self._link_error:
            log.debug("%s still unavailable: %s", self.connection_text, reason)
        self._connected = False
        self._link_error = reason
        self._close_client(broken=broken, reason=reason)
        self._wake.set()

    def _remind_if_due(self) -> None:
        """While the station stays away: a warning now and then, at growing gaps."""
        now = self.clock.monotonic()
        if self._away_since is None or now < self._remind_at:
            return
        log.warning("%s still unavailable after %s (%d connection attempts): %s",
                    self.connection_text, duration_text(now - self._away_since),
                    self._away_attempts, self._link_error)
        self._remind_gap_s = min(self._remind_gap_s * 2.0, LOG_REMINDER_MAX_S)
        self._remind_at = now + self._remind_gap_s

    def _close_client(self, broken: bool, reason: str = "") -> None:
        """Stop using the station's connection; `broken`: close it for every socket."""
        client, self._client = self._client, None
        if client is None:
            return
        if self._link is not None:
            if broken:
                self._link.drop(client, reason)
        else:
            client.close()

    def _learn(self, status: mw.RegisterBlock, control: mw.RegisterBlock) -> None:
        self._capabilities = decode_capabilities(status, control)
        max_a = status.float32(1100)
        if plausible_station_max_current(max_a):
            self._station_max_a = max_a

    # ---- raw requests ----------------------------------------------------------------------

    async def _read(self, unit: int, address: int, count: int) -> mw.RegisterBlock:
        where = f"registers {address}..{address + count - 1} of unit {unit}"
        client = self._client
        if client is None or not client.connected:
            raise _LinkError("connection closed")
        try:
            response = await client.read_holding_registers(address, count=count, device_id=unit)
        except _request_errors() as exc:
            raise _LinkError(f"no answer reading {where} within {self.config.timeout_s:g} s "
                             f"({_short(exc)})") from None
        if response.isError():
            raise _DeviceError(f"reading {where}: {_exception_text(response)}")
        if len(response.registers) != count:
            raise _DeviceError(f"reading {where}: got {len(response.registers)} registers")
        self._last_io_t = self.clock.monotonic()
        return mw.RegisterBlock(address, response.registers)

    async def _write(self, unit: int, address: int, words: list[int], single: bool = False) -> None:
        where = f"register {address} of unit {unit}"
        client = self._client
        if client is None or not client.connected:
            raise _LinkError("connection closed")
        try:
            if single:
                response = await client.write_register(address, words[0], device_id=unit)
            else:
                response = await client.write_registers(address, words, device_id=unit)
        except _request_errors() as exc:
            raise _LinkError(f"no answer writing {where} within {self.config.timeout_s:g} s "
                             f"({_short(exc)})") from None
        if response.isError():
            raise _DeviceError(f"writing {where}: {_exception_text(response)}")
        self._last_io_t = self.clock.monotonic()


def _exception_text(response) -> str:
    code = getattr(response, "exception_code", None)
    return f"Modbus exception {code} ({MODBUS_EXCEPTIONS.get(code, 'unknown')})"


def _short(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


_BUILT_SOCKETS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def charger_from_config(charger: Mapping[str, Any], config: Mapping[str, Any] | None = None,
                        clock: Clock = REAL_CLOCK) -> AlfenCharger:
    """The registry's builder (`phaeton.chargers.registry`): the driver for ONE charger entry's
    `alfen` section (defaults applied; `config`, the whole config, is not needed). Entries for
    sockets of one station (same host and port) share its connection once started.

    ValueError when another built (and not stopped) driver already drives the same socket (host,
    port and socket unit id): two entries would fight over one setpoint."""
    alfen = charger["alfen"]
    driver = AlfenCharger(AlfenConfig(
        host=alfen["host"], port=alfen["port"], station_unit_id=alfen["station_unit_id"],
        socket_unit_id=alfen["socket_unit_id"], timeout_s=float(alfen["timeout_s"]),
        setpoint_refresh_s=float(alfen["setpoint_refresh_s"]),
        reconnect_max_s=float(alfen["reconnect_max_s"])), clock=clock)
    key = (*_link_key(driver.config), driver.config.socket_unit_id)
    other = _BUILT_SOCKETS.get(key)
    if other is not None and not other._stopped:
        del other
        gc.collect()              # a driver nobody holds any more (kept by a cycle) is gone
        other = _BUILT_SOCKETS.get(key)
    if other is not None and not other._stopped:
        raise ValueError(f"Alfen socket {driver.config.socket_unit_id} of the station at "
                         f"{driver.config.host}:{driver.config.port} is already driven by "
                         f"another charger entry (each socket may be configured once)")
    _BUILT_SOCKETS[key] = driver
    return driver
