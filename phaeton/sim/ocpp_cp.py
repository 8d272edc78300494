"""A simulated OCPP 1.6J charge point (one connector) with a SimulatedEV behind it.

It connects to a central system (`ocpp` package as client over an aiohttp WebSocket, optional
HTTP Basic auth), sends BootNotification, heartbeats, StatusNotification transitions, MeterValues
every MeterValueSampleInterval, Authorize + StartTransaction when a car plugs in (or on
RemoteStartTransaction), StopTransaction when it leaves (or on RemoteStopTransaction), and
reconnects when the socket drops. Time (heartbeats, meter interval, the EV's charging) runs on
a `phaeton.clock` clock so tests can go faster than real time.

Smart charging as OCPP 1.6 describes it: TxProfile only on connector > 0 for the running
transaction (else Rejected) and removed when it ends; TxDefaultProfile on the connector or 0
(the connector's own wins); ChargePointMaxProfile only on connector 0; within a purpose the
highest stack level wins; same purpose + stack level (or the same id) replaces. The limit in
force is min(ChargePointMax, TxProfile or TxDefault, the station's hardware maximum); in W it is
converted with the profile's numberPhases (else the station's phases) and the voltage. A limit
below 6 A pauses the car (SuspendedEVSE).

Test hooks: plug_in / plug_out, set_fault / clear_fault, send_raw (garbage frames, answers
collected in `raw_replies`), disconnect(), `received` (calls the central system sent us),
`on_profile` (called with each accepted charging profile, for latency benchmarks).

Run: python -m phaeton.sim.ocpp_cp --url ws://127.0.0.1:8887/ocpp/CP1 [--plug-in] [--speed 10]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
from collections import deque
from datetime import UTC, datetime

import aiohttp
from ocpp.exceptions import InternalError
from ocpp.routing import after, on
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action

from ..chargers.ocpp_ws import (
    SUBPROTOCOL,
    GuardedChargePoint,
    LinkClosed,
    WebSocketLink,
    call_error_frame,
)
from ..clock import REAL_CLOCK, Clock, ScaledClock
from .ev import MIN_CURRENT_A, SimulatedEV

log = logging.getLogger(__name__)

PROFILE_ANSWERS = ("Accepted", "Rejected", "CallError", "silent")
KNOWN_MEASURANDS = {"Energy.Active.Import.Register", "Power.Active.Import", "Current.Import",
                    "Voltage", "SoC", "Current.Offered", "Power.Offered"}
RATE_UNIT_KEY = "ChargingScheduleAllowedChargingRateUnit"
RECEIVED_KEPT = 1000    # calls from the central system kept in `received` (latest)


def _parse_time(text) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class _SimSession(GuardedChargePoint):
    """The `ocpp` ChargePoint of one connection; forwards calls to the simulator."""

    def __init__(self, sim: SimulatedChargePoint, link: WebSocketLink):
        super().__init__(sim.charge_point_id, link, response_timeout=sim.call_timeout_s)
        self.sim = sim
        self.link = link

    async def route_message(self, raw_msg):
        sim = self.sim
        try:
            frame = json.loads(raw_msg)
        except (ValueError, TypeError):
            frame = None
        if isinstance(frame, list) and len(frame) >= 2:
            if frame[0] in (3, 4) and frame[1] in sim._raw_ids:
                sim.raw_replies[frame[1]] = frame
                sim._raw_ids.discard(frame[1])
                return None
            if frame[0] == 2 and len(frame) == 4:
                sim.received.append((frame[2], frame[3]))
                if frame[2] == "SetChargingProfile" and sim.profile_answer == "silent":
                    return None      # a charge point that never answers
                if frame[2] in sim.unsupported_actions and isinstance(frame[1], str):
                    await self._send(call_error_frame(frame[1], "NotImplemented",
                                                      f"{frame[2]} is not implemented here"))
                    return None
        return await super().route_message(raw_msg)

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, connector_id, cs_charging_profiles, **kwargs):
        return call_result.SetChargingProfile(
            status=self.sim._set_profile(int(connector_id), cs_charging_profiles))

    @after(Action.set_charging_profile)
    async def after_set_charging_profile(self, **kwargs):
        await self.sim._refresh_status()

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(self, **kwargs):
        return call_result.ClearChargingProfile(status=self.sim._clear_profiles(**kwargs))

    @after(Action.clear_charging_profile)
    async def after_clear_charging_profile(self, **kwargs):
        await self.sim._refresh_status()

    @on(Action.remote_start_transaction)
    def on_remote_start_transaction(self, id_tag, **kwargs):
        ok = self.sim._can_start(kwargs.get("connector_id"))
        return call_result.RemoteStartTransaction(status="Accepted" if ok else "Rejected")

    @after(Action.remote_start_transaction)
    async def after_remote_start_transaction(self, id_tag, **kwargs):
        if self.sim._can_start(kwargs.get("connector_id")):
            await self.sim._start_transaction(str(id_tag), authorize=False)

    @on(Action.remote_stop_transaction)
    def on_remote_stop_transaction(self, transaction_id, **kwargs):
        ok = self.sim.transaction_id is not None and int(transaction_id) == self.sim.transaction_id
        return call_result.RemoteStopTransaction(status="Accepted" if ok else "Rejected")

    @after(Action.remote_stop_transaction)
    async def after_remote_stop_transaction(self, transaction_id, **kwargs):
        if self.sim.transaction_id is not None and int(transaction_id) == self.sim.transaction_id:
            await self.sim._stop_transaction("Remote")

    @on(Action.change_configuration)
    def on_change_configuration(self, key, value, **kwargs):
        return call_result.ChangeConfiguration(status=self.sim._change_configuration(key, value))

    @on(Action.get_configuration)
    def on_get_configuration(self, **kwargs):
        known, unknown = self.sim._get_configuration(kwargs.get("key"))
        return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message, **kwargs):
        ok = requested_message in ("MeterValues", "StatusNotification")
        return call_result.TriggerMessage(status="Accepted" if ok else "NotImplemented")

    @after(Action.trigger_message)
    async def after_trigger_message(self, requested_message, **kwargs):
        if requested_message == "MeterValues":
            self.sim._advance()
            await self.sim._send_meter_values()
        elif requested_message == "StatusNotification":
            await self.sim._send_status(force=True)


class SimulatedChargePoint:
    """One-connector OCPP 1.6J charge point; see the module docstring."""

    def __init__(self, url: str, ev: SimulatedEV | None = None, clock: Clock = REAL_CLOCK, *,
                 password: str | None = None, connector_id: int = 1,
                 rate_units: str = "Current", phases: int = 3, voltage_v: float = 230.0,
                 max_current_a: float = 32.0, energy_unit: str = "Wh",
                 supports_soc: bool = True, profile_answer: str = "Accepted",
                 auto_start: bool = True, authorize_before_start: bool = True,
                 id_tag: str = "SIMTAG", boot_on_reconnect: bool = True,
                 reconnect_delay_s: float = 1.0, meter_interval_s: int = 60,
                 call_timeout_s: float = 10.0, subprotocol: str = SUBPROTOCOL,
                 vendor: str = "Phaeton", model: str = "SimCP-1", serial: str = "SIM0001",
                 lifetime_energy_wh: float = 1_000_000.0,
                 unsupported_actions: frozenset[str] = frozenset()):
        if profile_answer not in PROFILE_ANSWERS:
            raise ValueError(f"profile_answer must be one of {PROFILE_ANSWERS}")
        if energy_unit not in ("Wh", "kWh"):
            raise ValueError("energy_unit must be 'Wh' or 'kWh'")
        self.url = url
        self.charge_point_id = url.rstrip("/").rsplit("/", 1)[-1]
        self.ev = ev if ev is not None else SimulatedEV()
        self.clock = clock
        self.password = password
        self.connector_id = connector_id
        self.phases = phases
        self.voltage_v = voltage_v
        self.max_current_a = max_current_a
        self.energy_unit = energy_unit
        self.supports_soc = supports_soc
        self.profile_answer = profile_answer
        self.unsupported_actions = frozenset(unsupported_actions)  # answered NotImplemented
        self.auto_start = auto_start                    # start a transaction on plug-in
        self.authorize_before_start = authorize_before_start
        self.id_tag = id_tag                            # the card the driver presents
        self.boot_on_reconnect = boot_on_reconnect
        self.reconnect_delay_s = reconnect_delay_s
        self.call_timeout_s = call_timeout_s
        self.subprotocol = subprotocol
        self.vendor, self.model, self.serial = vendor, model, serial
        self.configuration = {
            "MeterValuesSampledData": "Energy.Active.Import.Register",
            "MeterValueSampleInterval": str(int(meter_interval_s)),
            "HeartbeatInterval": "60",
            RATE_UNIT_KEY: rate_units,
        }
        self.meter_wh = float(lifetime_energy_wh)
        self.transaction_id: int | None = None
        self.meter_start_wh: float | None = None
        self.status: str = "Available"
        self.fault: str | None = None
        self.profiles: list[tuple[int, dict]] = []    # (connector id, snake_case profile)
        self.received: deque[tuple[str, dict]] = deque(maxlen=RECEIVED_KEPT)
        self.raw_replies: dict[str, list] = {}
        self.boots = 0
        self.starts_refused = 0      # StartTransaction answered with a tag status not Accepted
        self.connections = 0
        self.last_error: str | None = None
        self.online = asyncio.Event()
        self.on_profile = None     # hook: called (connector id, profile) for each accepted one
        self.drawn_a = 0.0
        self.drawn_phases = 0
        self._raw_ids: set[str] = set()
        self._finished = False
        self._status_sent: str | None = None
        self._tx_start_s: float | None = None
        self._last_step_s = clock.monotonic()
        self._cp: _SimSession | None = None
        self._ws = None
        self._task: asyncio.Task | None = None
        self._stopping = False

    # ---- life cycle ---------------------------------------------------------------------
    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        self._stopping = True
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None

    @property
    def connected(self) -> bool:
        return self.online.is_set()

    async def disconnect(self) -> None:
        """Drop the WebSocket (test hook); the simulator reconnects after reconnect_delay_s."""
        if self._ws is not None:
            await self._ws.close(code=1001, message=b"simulated network loss")

    async def _run(self) -> None:
        headers = {}
        if self.password:
            headers["Authorization"] = aiohttp.encode_basic_auth(self.charge_point_id,
                                                                 self.password)
        async with aiohttp.ClientSession() as http:
            while not self._stopping:
                try:
                    async with http.ws_connect(self.url, protocols=(self.subprotocol,),
                                               headers=headers, autoping=True) as ws:
                        self._ws = ws
                        self.connections += 1
                        self.last_error = None
                        await self._serve(ws)
                except aiohttp.WSServerHandshakeError as exc:
                    self.last_error = f"handshake refused: HTTP {exc.status} {exc.message}"
                    log.warning("%s: %s", self.charge_point_id, self.last_error)
                except (aiohttp.ClientError, OSError, LinkClosed) as exc:
                    self.last_error = f"connection failed: {exc}"
                    log.info("%s: %s", self.charge_point_id, self.last_error)
                finally:
                    self._ws = None
                    self._cp = None
                    self.online.clear()
                if not self._stopping:
                    await self.clock.sleep(self.reconnect_delay_s)

    async def _serve(self, ws) -> None:
        link = WebSocketLink(ws, f"sim {self.charge_point_id}")
        cp = _SimSession(self, link)
        self._cp = cp
        loop = asyncio.get_running_loop()
        receiver = loop.create_task(cp.start())
        worker = loop.create_task(self._online_work(cp))
        try:
            await asyncio.wait({receiver, worker}, return_when=asyncio.FIRST_EXCEPTION)
            if receiver.done() and not receiver.cancelled() and receiver.exception():
                exc = receiver.exception()
                if not isinstance(exc, LinkClosed):
                    log.error("%s: receive loop failed: %r", self.charge_point_id, exc)
            if worker.done() and not worker.cancelled() and worker.exception():
                exc = worker.exception()
                if not isinstance(exc, (LinkClosed, asyncio.TimeoutError)):
                    log.error("%s: worker failed: %r", self.charge_point_id, exc)
                self.last_error = f"{type(exc).__name__}: {exc}"
        finally:
            for task in (receiver, worker):
                task.cancel()
            await asyncio.gather(receiver, worker, return_exceptions=True)

    async def _online_work(self, cp: _SimSession) -> None:
        if self.boots == 0 or self.boot_on_reconnect:
            while True:
                answer = await cp.call(call.BootNotification(
                    charge_point_model=self.model, charge_point_vendor=self.vendor,
                    charge_point_serial_number=self.serial, firmware_version="sim-1.0"))
                if answer is not None and answer.status == "Accepted":
                    self.configuration["HeartbeatInterval"] = str(int(answer.interval))
                    self.boots += 1
                    break
                await self.clock.sleep(float(answer.interval) if answer else 10.0)
            await cp.call(call.StatusNotification(connector_id=0, error_code="NoError",
                                                  status="Available"))
            self._status_sent = None
        self.online.set()
        self._advance()
        await self._send_status(force=True)
        await asyncio.gather(self._heartbeat_loop(cp), self._meter_loop(cp))

    async def _heartbeat_loop(self, cp) -> None:
        while True:
            await self.clock.sleep(max(1.0, float(self.configuration["HeartbeatInterval"])))
            await cp.call(call.Heartbeat())

    async def _meter_loop(self, cp) -> None:
        while True:
            interval = int(self.configuration["MeterValueSampleInterval"])
            await self.clock.sleep(interval if interval > 0 else 1.0)
            self._advance()
            await self._refresh_status()
            if interval > 0:
                await self._send_meter_values()

    async def _call(self, payload):
        cp = self._cp
        if cp is None:
            return None
        try:
            return await cp.call(payload)
        except (TimeoutError, LinkClosed, ConnectionError) as exc:
            log.info("%s: %s not delivered: %s", self.charge_point_id, type(payload).__name__, exc)
            return None

    # ---- test hooks -----------------------------------------------------------------------
    async def plug_in(self) -> None:
        """The car is plugged in: Preparing, then (auto_start) Authorize + StartTransaction."""
        self._advance()
        self.ev.plug_in()
        self._finished = False
        await self._refresh_status()
        if self.auto_start:
            await self._start_transaction(self.id_tag, authorize=self.authorize_before_start)

    async def plug_out(self) -> None:
        """The car leaves: StopTransaction (EVDisconnected) if one runs, then Available."""
        self._advance()
        if self.transaction_id is not None:
            await self._stop_transaction("EVDisconnected")
        self.ev.plug_out()
        self._finished = False
        await self._refresh_status()

    async def set_fault(self, error_code: str = "GroundFailure") -> None:
        self._advance()
        self.fault = error_code
        await self._refresh_status()

    async def clear_fault(self) -> None:
        self._advance()
        self.fault = None
        await self._refresh_status()

    async def send_raw(self, text: str, reply_id: str | None = None) -> None:
        """Send any text frame. With `reply_id`, the answer to it lands in raw_replies."""
        if reply_id is not None:
            self._raw_ids.add(reply_id)
        if self._cp is None:
            raise ConnectionError("simulated charge point is not connected")
        await self._cp.link.send(text)

    # ---- the model -------------------------------------------------------------------------
    def offered_current_a(self) -> float:
        """The current limit in force now (per phase), from profiles and the hardware maximum."""
        limits = [self.max_current_a]
        cp_max = self._purpose_limit_a("ChargePointMaxProfile", (0,))
        if cp_max is not None:
            limits.append(cp_max)
        tx = None
        if self.transaction_id is not None:
            tx = self._purpose_limit_a("TxProfile", (self.connector_id,))
        if tx is None:
            tx = self._purpose_limit_a("TxDefaultProfile", (self.connector_id,))
            if tx is None:
                tx = self._purpose_limit_a("TxDefaultProfile", (0,))
        if tx is not None:
            limits.append(tx)
        return max(0.0, min(limits))

    def _purpose_limit_a(self, purpose: str, connectors: tuple[int, ...]) -> float | None:
        candidates = [p for c, p in self.profiles
                      if c in connectors and p.get("charging_profile_purpose") == purpose]
        candidates.sort(key=lambda p: int(p.get("stack_level", 0)), reverse=True)
        for profile in candidates:
            limit = self._schedule_limit_a(profile)
            if limit is not None:
                return limit
        return None

    def _schedule_limit_a(self, profile: dict) -> float | None:
        schedule = profile.get("charging_schedule") or {}
        now = self.clock.time()
        if profile.get("charging_profile_kind") == "Relative":
            start = self._tx_start_s if self._tx_start_s is not None else now
        else:
            start = _parse_time(schedule.get("start_schedule"))
            if start is None:
                start = now
        elapsed = now - start
        duration = schedule.get("duration")
        if elapsed < 0 or (duration is not None and elapsed > float(duration)):
            return None
        chosen = None
        for period in schedule.get("charging_schedule_period") or []:
            if float(period.get("start_period", 0)) <= elapsed:
                if chosen is None or period["start_period"] >= chosen["start_period"]:
                    chosen = period
        if chosen is None:
            return None
        limit = float(chosen["limit"])
        if schedule.get("charging_rate_unit") == "W":
            phases = int(chosen.get("number_phases") or self.phases)
            limit = limit / (self.voltage_v * phases)
        return limit

    def _advance(self) -> None:
        """Let the car charge from the last step until now at the limit that was in force."""
        now = self.clock.monotonic()
        dt_s = max(0.0, now - self._last_step_s)
        self._last_step_s = now
        if self.transaction_id is None or self.fault is not None or not self.ev.plugged_in:
            self.drawn_a, self.drawn_phases = 0.0, 0
            return
        offered = self.offered_current_a()
        current, phases = self.ev.step(dt_s, offered, self.phases, self.voltage_v)
        self.meter_wh += current * phases * self.voltage_v * dt_s / 3600.0
        # what the car draws from now on, at the same offer
        self.drawn_a, self.drawn_phases = self.ev.draw(offered, self.phases)

    def _compute_status(self) -> str:
        if self.fault is not None:
            return "Faulted"
        if not self.ev.plugged_in:
            return "Available"
        if self.transaction_id is None:
            return "Finishing" if self._finished else "Preparing"
        if self.offered_current_a() < MIN_CURRENT_A:
            return "SuspendedEVSE"
        if self.drawn_a <= 0:
            return "SuspendedEV"
        return "Charging"

    async def _refresh_status(self) -> None:
        self._advance()
        await self._send_status()

    async def _send_status(self, force: bool = False) -> None:
        status = self._compute_status()
        self.status = status
        if (status == self._status_sent and not force) or self._cp is None:
            return
        self._status_sent = status
        await self._call(call.StatusNotification(
            connector_id=self.connector_id, error_code=self.fault or "NoError", status=status,
            timestamp=self._now_iso()))

    def _now_iso(self) -> str:
        return datetime.fromtimestamp(self.clock.time(), UTC).isoformat().replace(
            "+00:00", "Z")

    def _can_start(self, connector_id) -> bool:
        if connector_id is not None and int(connector_id) != self.connector_id:
            return False
        return self.ev.plugged_in and self.transaction_id is None and self.fault is None

    async def _start_transaction(self, id_tag: str, authorize: bool) -> None:
        if authorize:
            answer = await self._call(call.Authorize(id_tag=id_tag))
            if answer is None or answer.id_tag_info.get("status") != "Accepted":
                log.info("%s: id tag %s not authorized", self.charge_point_id, id_tag)
                return
        self._advance()
        meter_start = int(round(self.meter_wh))
        answer = await self._call(call.StartTransaction(
            connector_id=self.connector_id, id_tag=id_tag, meter_start=meter_start,
            timestamp=self._now_iso()))
        if answer is None:
            return
        if answer.id_tag_info.get("status") != "Accepted":
            log.info("%s: StartTransaction not accepted: %s", self.charge_point_id,
                     answer.id_tag_info)
            self.starts_refused += 1
            return
        self.transaction_id = int(answer.transaction_id)
        self.meter_start_wh = float(meter_start)
        self._tx_start_s = self.clock.time()
        self._finished = False
        self._last_step_s = self.clock.monotonic()
        await self._refresh_status()

    async def _stop_transaction(self, reason: str) -> None:
        self._advance()
        tx_id, self.transaction_id = self.transaction_id, None
        if tx_id is None:
            return
        self.profiles = [(c, p) for c, p in self.profiles
                         if p.get("charging_profile_purpose") != "TxProfile"]
        self._finished = True
        self._tx_start_s = None
        self.drawn_a, self.drawn_phases = 0.0, 0
        await self._call(call.StopTransaction(
            meter_stop=int(round(self.meter_wh)), timestamp=self._now_iso(),
            transaction_id=tx_id, reason=reason))
        await self._refresh_status()

    def _set_profile(self, connector_id: int, profile: dict) -> str:
        if self.profile_answer == "CallError":
            raise InternalError(description="simulated failure applying the charging profile")
        if self.profile_answer == "Rejected":
            return "Rejected"
        purpose = profile.get("charging_profile_purpose")
        unit = (profile.get("charging_schedule") or {}).get("charging_rate_unit")
        allowed = self.configuration[RATE_UNIT_KEY].replace(" ", "").split(",")
        if {"A": "Current", "W": "Power"}.get(unit) not in allowed:
            return "Rejected"
        if purpose == "TxProfile":
            if connector_id == 0 or self.transaction_id is None:
                return "Rejected"
            if profile.get("transaction_id") not in (None, self.transaction_id):
                return "Rejected"
        if purpose == "ChargePointMaxProfile" and connector_id != 0:
            return "Rejected"
        if connector_id not in (0, self.connector_id):
            return "Rejected"
        self._advance()    # charge at the old limit up to now
        level = int(profile.get("stack_level", 0))
        self.profiles = [
            (c, p) for c, p in self.profiles
            if p.get("charging_profile_id") != profile.get("charging_profile_id")
            and not (c == connector_id and p.get("charging_profile_purpose") == purpose
                     and int(p.get("stack_level", 0)) == level)]
        self.profiles.append((connector_id, profile))
        if self.on_profile is not None:
            self.on_profile(connector_id, profile)
        return "Accepted"

    def _clear_profiles(self, id=None, connector_id=None, charging_profile_purpose=None,
                        stack_level=None, **_) -> str:
        def matches(c, p):
            if id is not None:
                return p.get("charging_profile_id") == id
            return ((connector_id is None or c == connector_id)
                    and (charging_profile_purpose is None
                         or p.get("charging_profile_purpose") == charging_profile_purpose)
                    and (stack_level is None or p.get("stack_level") == stack_level))
        self._advance()
        kept = [(c, p) for c, p in self.profiles if not matches(c, p)]
        removed = len(self.profiles) - len(kept)
        self.profiles = kept
        return "Accepted" if removed else "Unknown"

    def _change_configuration(self, key: str, value: str) -> str:
        if key == RATE_UNIT_KEY:
            return "Rejected"     # read-only
        if key == "MeterValuesSampledData":
            wanted = [m.strip() for m in value.split(",") if m.strip()]
            if not wanted or any(m not in KNOWN_MEASURANDS for m in wanted):
                return "Rejected"
            if "SoC" in wanted and not self.supports_soc:
                return "Rejected"
            self.configuration[key] = ",".join(wanted)
            return "Accepted"
        if key in ("MeterValueSampleInterval", "HeartbeatInterval"):
            try:
                number = int(value)
            except ValueError:
                return "Rejected"
            if number < 0:
                return "Rejected"
            self.configuration[key] = str(number)
            return "Accepted"
        return "NotSupported"

    def _get_configuration(self, keys) -> tuple[list, list]:
        names = list(self.configuration) if not keys else list(keys)
        known = [{"key": k, "readonly": k == RATE_UNIT_KEY, "value": self.configuration[k]}
                 for k in names if k in self.configuration]
        unknown = [k for k in names if k not in self.configuration]
        return known, unknown

    def _meter_sample(self) -> list[dict]:
        wanted = self.configuration["MeterValuesSampledData"].split(",")
        values = []
        if "Energy.Active.Import.Register" in wanted:
            if self.energy_unit == "kWh":
                values.append({"value": f"{self.meter_wh / 1000.0:.3f}", "unit": "kWh",
                               "measurand": "Energy.Active.Import.Register"})
            else:
                values.append({"value": f"{self.meter_wh:.0f}", "unit": "Wh",
                               "measurand": "Energy.Active.Import.Register"})
        currents = [self.drawn_a if i < self.drawn_phases else 0.0 for i in range(3)]
        if "Power.Active.Import" in wanted:
            power = sum(currents) * self.voltage_v
            values.append({"value": f"{power:.1f}", "unit": "W",
                           "measurand": "Power.Active.Import"})
        for i, phase in enumerate(("L1", "L2", "L3")):
            if "Current.Import" in wanted:
                values.append({"value": f"{currents[i]:.2f}", "unit": "A",
                               "measurand": "Current.Import", "phase": phase})
            if "Voltage" in wanted:
                values.append({"value": f"{self.voltage_v:.1f}", "unit": "V",
                               "measurand": "Voltage", "phase": f"{phase}-N"})
        if "SoC" in wanted and self.ev.plugged_in:
            values.append({"value": f"{self.ev.soc_pct:.1f}", "unit": "Percent",
                           "measurand": "SoC", "location": "EV"})
        return values

    async def _send_meter_values(self) -> None:
        await self._call(call.MeterValues(
            connector_id=self.connector_id, transaction_id=self.transaction_id,
            meter_value=[{"timestamp": self._now_iso(), "sampled_value": self._meter_sample()}]))


async def _main(args) -> None:
    ev = SimulatedEV(capacity_kwh=args.capacity_kwh, soc_pct=args.soc_pct)
    clock = ScaledClock(args.speed) if args.speed != 1 else REAL_CLOCK
    sim = SimulatedChargePoint(args.url, ev, clock, password=args.password,
                               rate_units=args.rate_units, meter_interval_s=args.meter_interval_s)
    await sim.start()
    try:
        await asyncio.wait_for(sim.online.wait(), args.connect_timeout_s)
        print(f"simulated charge point {sim.charge_point_id} online at {args.url}", flush=True)
        if args.plug_in:
            await sim.plug_in()
        while True:
            await clock.sleep(max(10.0, float(args.meter_interval_s)))
            print(f"status={sim.status} offered={sim.offered_current_a():.1f} A "
                  f"drawn={sim.drawn_a:.1f} A x{sim.drawn_phases} soc={ev.soc_pct:.1f} % "
                  f"meter={sim.meter_wh / 1000:.3f} kWh", flush=True)
    except TimeoutError:
        print(f"could not come online: {sim.last_error}", flush=True)
        raise SystemExit(1)
    finally:
        await sim.stop()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m phaeton.sim.ocpp_cp",
                                     description="Simulated OCPP 1.6J charge point")
    parser.add_argument("--url", required=True, help="ws://host:port/path/<charge point id>")
    parser.add_argument("--password", default=None, help="HTTP Basic password (profile 1)")
    parser.add_argument("--speed", type=float, default=1.0, help="time acceleration")
    parser.add_argument("--plug-in", action="store_true", help="plug a car in after boot")
    parser.add_argument("--capacity-kwh", type=float, default=60.0)
    parser.add_argument("--soc-pct", type=float, default=40.0)
    parser.add_argument("--rate-units", default="Current",
                        help="ChargingScheduleAllowedChargingRateUnit: Current, Power or both")
    parser.add_argument("--meter-interval-s", type=int, default=10)
    parser.add_argument("--connect-timeout-s", type=float, default=30.0,
                        help="give up (exit 1) if not online within this many real seconds")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    try:
        asyncio.run(_main(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
