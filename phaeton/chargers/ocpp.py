"""OCPP 1.6J charger: the `Charger` for one charge point connector, driven by our central system.

The charge point connects to `OcppCentralSystem` (phaeton/chargers/ocpp_server.py), which hands
each accepted WebSocket to the `_ChargePoint` registered for that charge point id. One
`_CentralSystemSession` (an `ocpp` ChargePoint) lives per connection; the charger keeps what
outlives a connection (status, transaction, meter values, the limit to apply).

Several chargers per GX:
- any number of charge points connect to one central system: chargers built from the config
  share the one for their (host, port, path) (`central_system_for`; the first charger's
  `start()` starts it, the last one's `stop()` stops it), each matched by its charge point id;
- a charge point with several connectors is one connection: the `OcppCharger`s of its
  connectors (same charge_point_id, connector_id 1, 2 ...) share its `_ChargePoint`, which
  answers the station (boot, heartbeats, authorisation, transaction ids) and hands each
  connector's StatusNotification, StartTransaction, StopTransaction and MeterValues to that
  connector's charger (connector 0's status to all of them; connector 0's meter only when one
  connector is driven). Each charger sets its own connector's limit (SetChargingProfile with its
  connectorId). A charger that stops leaves its connector at `stop_current_a`; the connection
  closes with the last one. The same charge point id and connector twice is refused
  (ValueError) when built (`OcppCentralSystem.claim`) and when started.

Current limiting (smart charging), as the reference describes:
- fixed profile ids per purpose (`TX_DEFAULT_PROFILE_ID`, `TX_PROFILE_ID`), one stack level;
- each change sends a TxProfile for the running transaction (connector > 0, its transactionId)
  and always a TxDefaultProfile for the next one, Absolute, starting `PROFILE_START_BACKDATE_S`
  in the past, in A or (W-only stations) W = A x voltage_v x phases;
- numberPhases is not sent: OCPP 1.6 has no standard phase switching, so the station keeps the
  phases it has and Capability.PHASE_SWITCHING is not claimed;
- a rejected / unanswered / CallError'd profile sets `last_error` and is retried on the next
  `set_current` (even with the same value) and after every (re)connect; an unchanged limit
  that is already in place is not sent again;
- `set_current` waits for the answers (at most `call_timeout_s` per profile; after a timeout
  it does not wait for a second one), so its return means "applied" or `last_error` says why.

After each boot (or a reconnect without boot, after RECONNECT_BOOT_GRACE_S): ChangeConfiguration
MeterValuesSampledData (without SoC/Voltage if refused) and MeterValueSampleInterval,
GetConfiguration ChargingScheduleAllowedChargingRateUnit (A preferred, W if only W), then the
limit is re-applied; `configured` tells when that is done.

Vehicle states: see `ocpp_readings.vehicle_state_for`. The car counts as finished (CHARGED)
when the connector goes SuspendedEV (the car stops drawing although current is offered) after
this session delivered energy; that lasts through Finishing until Charging/Available.
"""
from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ocpp.exceptions import OCPPError
from ocpp.routing import after, on
from ocpp.v16 import call, call_result, datatypes
from ocpp.v16.enums import (
    Action,
    AuthorizationStatus,
    ChargingProfileKindType,
    ChargingProfilePurposeType,
    ChargingRateUnitType,
    ConfigurationStatus,
    MessageTrigger,
    RegistrationStatus,
    RemoteStartStopStatus,
)

from ..clock import REAL_CLOCK, Clock
from .base import (
    Capability,
    Charger,
    ChargerIdentity,
    ChargerMeasurement,
    ChargerUnavailable,
    effective_current,
)
from .ocpp_readings import MeterSample, allowed_rate_units, parse_meter_values, vehicle_state_for
from .ocpp_server import OcppCentralSystem
from .ocpp_ws import GuardedChargePoint, LinkClosed, WebSocketLink

log = logging.getLogger(__name__)

TX_DEFAULT_PROFILE_ID = 8501
TX_PROFILE_ID = 8502
PROFILE_STACK_LEVEL = 1
PROFILE_START_BACKDATE_S = 60.0
RECONNECT_BOOT_GRACE_S = 5.0    # a reconnecting known station may still boot; wait this long
LISTEN_RETRY_S = 10.0           # when the port cannot be bound, try again this often

MEASURANDS_FULL = "Energy.Active.Import.Register,Power.Active.Import,Current.Import,Voltage,SoC"
MEASURANDS_BASIC = "Energy.Active.Import.Register,Power.Active.Import,Current.Import"
RATE_UNIT_KEY = "ChargingScheduleAllowedChargingRateUnit"

# Connector states in which a car is plugged in but no transaction runs (RemoteStart makes sense)
_PLUGGED_IDLE = {"Preparing", "Finishing", "SuspendedEV", "SuspendedEVSE"}


@dataclass(frozen=True)
class OcppChargerConfig:
    charge_point_id: str
    connector_id: int = 1
    password: str | None = None          # security profile 1 (HTTP Basic, user = id)
    meter_interval_s: int = 10           # MeterValueSampleInterval we configure
    heartbeat_interval_s: int = 60       # told in the BootNotification answer
    call_timeout_s: float = 10.0         # how long we wait for the charge point to answer
    phases: int = 3                      # for W <-> A
    voltage_v: float = 230.0             # for W <-> A
    id_tags: frozenset[str] | None = None  # Authorize allow-list; None accepts every tag
    remote_id_tag: str = "phaeton"       # id tag for RemoteStartTransaction
    stop_current_a: float | None = 0.0   # limit left on the station by stop(); None = leave

    def __post_init__(self):
        cp_id = self.charge_point_id
        if not isinstance(cp_id, str) or not cp_id or "/" in cp_id or len(cp_id) > 48:
            raise ValueError(f"charge_point_id must be 1..48 characters without '/', "
                             f"got {cp_id!r}")
        if not isinstance(self.connector_id, int) or self.connector_id < 1:
            raise ValueError(f"connector_id must be an integer >= 1, got {self.connector_id!r}")
        for name in ("meter_interval_s", "heartbeat_interval_s"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of seconds >= 1, got {value!r}")
        if not (isinstance(self.call_timeout_s, (int, float)) and self.call_timeout_s > 0):
            raise ValueError(f"call_timeout_s must be > 0, got {self.call_timeout_s!r}")
        if self.phases not in (1, 3):
            raise ValueError(f"phases must be 1 or 3, got {self.phases!r}")
        if not (isinstance(self.voltage_v, (int, float)) and 100 <= self.voltage_v <= 400):
            raise ValueError(f"voltage_v must be between 100 and 400 V, got {self.voltage_v!r}")
        if self.password is not None and (not isinstance(self.password, str)
                                          or not self.password):
            raise ValueError("password must be a non-empty string or None")


class CallFailed(Exception):
    """A call to the charge point got no usable answer (reason in words)."""


class CallUnanswered(CallFailed):
    """No answer at all: timeout or the connection went away (do not wait for more)."""


class CallRefused(CallFailed):
    """The charge point answered with a CallError (or an answer we cannot read)."""


def charging_profile(purpose: str, profile_id: int, limit_a: float, rate_unit: str,
                     voltage_v: float, phases: int, start_time_s: float,
                     transaction_id: int | None = None) -> datatypes.ChargingProfile:
    """A one-period Absolute profile limiting to `limit_a` per phase, in A or W."""
    if rate_unit == "W":
        limit = round(limit_a * voltage_v * phases, 1)
        unit = ChargingRateUnitType.watts
    else:
        limit = round(limit_a, 1)
        unit = ChargingRateUnitType.amps
    start = datetime.fromtimestamp(start_time_s, UTC).isoformat().replace("+00:00", "Z")
    return datatypes.ChargingProfile(
        charging_profile_id=profile_id,
        stack_level=PROFILE_STACK_LEVEL,
        charging_profile_purpose=purpose,
        charging_profile_kind=ChargingProfileKindType.absolute,
        transaction_id=transaction_id,
        charging_schedule=datatypes.ChargingSchedule(
            charging_rate_unit=unit,
            start_schedule=start,
            charging_schedule_period=[datatypes.ChargingSchedulePeriod(start_period=0,
                                                                       limit=limit)],
        ),
    )


def _iso(clock: Clock) -> str:
    return datetime.fromtimestamp(clock.time(), UTC).isoformat().replace("+00:00", "Z")


async def _call(session: _CentralSystemSession, payload, timeout_s: float):
    """session.call with every failure turned into CallFailed (words for last_error).
    Ends early (CallFailed) when the connection closes while we wait."""
    name = type(payload).__name__
    task = asyncio.ensure_future(session.call(payload, suppress=False))
    session.tasks.add(task)
    task.add_done_callback(session.tasks.discard)
    try:
        return await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            task.cancel()
            raise
        raise CallUnanswered(f"{name}: connection closed before the answer") from None
    except TimeoutError:
        raise CallUnanswered(f"{name}: no answer within {timeout_s:g} s") from None
    except OCPPError as exc:
        raise CallRefused(f"{name}: CallError {exc.code}: {exc.description}") from None
    except (LinkClosed, ConnectionError) as exc:
        raise CallUnanswered(f"{name}: connection lost ({exc})") from None
    except Exception as exc:  # e.g. an unknown CallError code or a malformed answer
        raise CallRefused(f"{name}: {type(exc).__name__}: {exc}") from None


class _CentralSystemSession(GuardedChargePoint):
    """One WebSocket connection of a charge point; answers its calls on behalf of the
    `_ChargePoint`, which hands each connector's news to that connector's charger."""

    def __init__(self, station: _ChargePoint, link: WebSocketLink):
        super().__init__(station.charge_point_id, link, response_timeout=station.call_timeout_s)
        self.station = station
        self.link = link
        self.booted = False
        self.configured = False   # meter values, rate unit and limits set up on this connection
        self.boot_seen = asyncio.Event()
        self.tasks: set[asyncio.Task] = set()

    def spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def cancel_tasks(self) -> None:
        for task in list(self.tasks):
            task.cancel()

    @on(Action.boot_notification)
    def on_boot_notification(self, charge_point_vendor, charge_point_model, **kwargs):
        return self.station._on_boot(self, charge_point_vendor, charge_point_model, kwargs)

    @after(Action.boot_notification)
    def after_boot_notification(self, **kwargs):
        self.spawn(self.station._setup(self))

    @on(Action.heartbeat)
    def on_heartbeat(self, **kwargs):
        return call_result.Heartbeat(current_time=_iso(self.station.clock))

    @on(Action.status_notification)
    def on_status_notification(self, connector_id, error_code, status, **kwargs):
        self.station._on_status(int(connector_id), str(status), str(error_code),
                                kwargs.get("info"))
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_tag, **kwargs):
        return call_result.Authorize(id_tag_info={"status": self.station._tag_status(id_tag)})

    @on(Action.start_transaction)
    def on_start_transaction(self, connector_id, id_tag, meter_start, timestamp, **kwargs):
        tx_id, status = self.station._on_start_transaction(int(connector_id), id_tag,
                                                           int(meter_start))
        return call_result.StartTransaction(transaction_id=tx_id, id_tag_info={"status": status})

    @after(Action.start_transaction)
    def after_start_transaction(self, connector_id=None, **kwargs):
        # Put a TxProfile on the new transaction (the TxDefault already limits it).
        charger = self.station.charger_on(connector_id)
        if charger is not None and charger._target_limit_a() is not None:
            self.spawn(charger._apply_limit())

    @on(Action.stop_transaction)
    def on_stop_transaction(self, meter_stop, timestamp, transaction_id, **kwargs):
        self.station._on_stop_transaction(int(transaction_id), int(meter_stop))
        return call_result.StopTransaction()

    @on(Action.meter_values)
    def on_meter_values(self, connector_id, meter_value, **kwargs):
        self.station._on_meter_values(int(connector_id), meter_value,
                                      kwargs.get("transaction_id"))
        return call_result.MeterValues()

    @on(Action.firmware_status_notification)
    def on_firmware_status_notification(self, status, **kwargs):
        log.info("%s: firmware status %s", self.id, status)
        return call_result.FirmwareStatusNotification()

    @on(Action.diagnostics_status_notification)
    def on_diagnostics_status_notification(self, status, **kwargs):
        log.info("%s: diagnostics status %s", self.id, status)
        return call_result.DiagnosticsStatusNotification()


class _ChargePoint:
    """One charge point id on a central system: its WebSocket connection (one at a time) and
    what belongs to the whole station (identity, boot, rate unit, transaction ids), shared by
    the `OcppCharger`s of its connectors (one per connector). Connector news goes to that
    connector's charger; station-wide news (connector 0 status) to all of them."""

    def __init__(self, charge_point_id: str, central: OcppCentralSystem, clock: Clock):
        self.charge_point_id = charge_point_id
        self.central = central
        self.clock = clock
        self.chargers: dict[int, OcppCharger] = {}     # by connector id
        self.session: _CentralSystemSession | None = None
        self.identity: ChargerIdentity | None = None
        self.rate_unit = "A"
        self.link_error: str | None = "not connected yet"
        self.stopping = False
        self._closing: set[asyncio.Task] = set()
        # Transaction ids increase within a run and start above earlier runs' (time based).
        self.next_transaction_id = max(1, int(clock.time()) - 1_700_000_000)

    # ---- the connectors ---------------------------------------------------------------
    def add(self, charger: OcppCharger) -> None:
        """A connector's charger joins; ValueError when its connector is taken or its
        password differs from the other connectors' (one connection, one login)."""
        connector = charger.config.connector_id
        other = self.chargers.get(connector)
        if other is not None and other is not charger:
            raise ValueError(f"charge point id {self.charge_point_id!r} connector {connector} "
                             f"is already registered on the OCPP central system "
                             f"{self.central.where}")
        for peer in self.chargers.values():
            if peer is not charger and peer.config.password != charger.config.password:
                raise ValueError(f"charge point id {self.charge_point_id!r}: connector "
                                 f"{connector} has a different password than connector "
                                 f"{peer.config.connector_id} (one connection, one password)")
        self.central.claim(self.charge_point_id, connector, charger)
        self.chargers[connector] = charger
        self.stopping = False
        session = self.session
        if session is not None and session.configured and not session.link.closed:
            session.spawn(charger._setup_connector(session))   # joined a running connection

    def remove(self, charger: OcppCharger) -> bool:
        """The charger leaves; True when it was the last one."""
        connector = charger.config.connector_id
        if self.chargers.get(connector) is charger:
            del self.chargers[connector]
        self.central.release(self.charge_point_id, connector, charger)
        return not self.chargers

    def charger_on(self, connector_id) -> OcppCharger | None:
        try:
            return self.chargers.get(int(connector_id))
        except (TypeError, ValueError):
            return None

    @property
    def password(self) -> str | None:
        for charger in self.chargers.values():
            return charger.config.password
        return None

    @property
    def call_timeout_s(self) -> float:
        return max((c.config.call_timeout_s for c in self.chargers.values()), default=10.0)

    @property
    def meter_interval_s(self) -> int:
        return min((c.config.meter_interval_s for c in self.chargers.values()), default=10)

    @property
    def heartbeat_interval_s(self) -> int:
        return min((c.config.heartbeat_interval_s for c in self.chargers.values()), default=60)

    @property
    def connected(self) -> bool:
        session = self.session
        return session is not None and session.booted and not session.link.closed

    # ---- the connection -----------------------------------------------------------------
    async def disconnect(self, reason: bytes = b"closed by the central system") -> None:
        """Close the current connection, if any (the charge point will reconnect)."""
        session = self.session
        if session is not None:
            session.cancel_tasks()
            await session.link.close(message=reason)

    async def serve_connection(self, ws, peer: str = "") -> None:
        """Run one accepted WebSocket until it closes; a newer one replaces an older one."""
        cp = self.charge_point_id
        link = WebSocketLink(ws, f"{cp}@{peer}")
        session = _CentralSystemSession(self, link)
        old = self.session
        self.session = session
        self.link_error = "connected, waiting for BootNotification"
        if old is not None:
            log.warning("%s: new connection from %s replaces the old one", cp, peer)
            old.cancel_tasks()
            # Close in the background: a half-open old socket must not delay the new one.
            closing = asyncio.ensure_future(old.link.close(message=b"replaced"))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        if self.identity is not None:
            # A known station reconnecting without a reboot does not send BootNotification.
            session.booted = True
            session.spawn(self._setup_unless_boot(session))
        log.info("%s: connected from %s", cp, peer)
        try:
            await session.start()
        except LinkClosed as exc:
            log.info("%s", exc)
        except Exception:  # the ocpp package or a handler failed: log it, keep the service up
            log.exception("%s: connection loop failed", cp)
        finally:
            session.cancel_tasks()
            session.flush_reports()
            await link.close()
            if self.session is session:
                self.session = None
                for charger in self.chargers.values():
                    charger._applied_key = None
                if self.stopping:
                    self.link_error = "stopped"
                    log.info("%s: connection closed (stopping)", cp)
                else:
                    self.link_error = "connection closed by the charge point or the network"
                    log.warning("%s: disconnected", cp)

    # ---- handlers' logic ----------------------------------------------------------------
    def _on_boot(self, session, vendor, model, extra) -> call_result.BootNotification:
        self.identity = ChargerIdentity(
            manufacturer=str(vendor), model=str(model),
            serial=str(extra.get("charge_point_serial_number")
                       or extra.get("charge_box_serial_number") or ""),
            firmware=str(extra.get("firmware_version") or ""))
        session.booted = True
        session.boot_seen.set()
        for charger in self.chargers.values():
            charger._applied_key = None    # a rebooted station may have lost our profiles
        self.link_error = None
        log.info("%s: booted (%s %s)", self.charge_point_id, vendor, model)
        return call_result.BootNotification(current_time=_iso(self.clock),
                                            interval=self.heartbeat_interval_s,
                                            status=RegistrationStatus.accepted)

    def _on_status(self, connector_id: int, status: str, error_code: str, info) -> None:
        if connector_id == 0:
            for charger in list(self.chargers.values()):
                charger._on_status(connector_id, status, error_code, info)
            return
        charger = self.chargers.get(connector_id)
        if charger is not None:
            charger._on_status(connector_id, status, error_code, info)

    def _tag_status(self, id_tag) -> str:
        """Authorize (no connector named): accepted when any connector's charger accepts."""
        for charger in self.chargers.values():
            if charger._tag_status(id_tag) == AuthorizationStatus.accepted:
                return AuthorizationStatus.accepted
        return AuthorizationStatus.invalid

    def _on_start_transaction(self, connector_id: int, id_tag,
                              meter_start_wh: int) -> tuple[int, str]:
        """A transaction id for the station (always) and the tag's status; tracked by the
        connector's charger only if the tag was accepted (otherwise the station ends it)."""
        tx_id = self.next_transaction_id
        self.next_transaction_id += 1
        charger = self.chargers.get(connector_id)
        status = charger._tag_status(id_tag) if charger is not None else self._tag_status(id_tag)
        if charger is not None:
            charger._on_start_transaction(connector_id, meter_start_wh,
                                          status == AuthorizationStatus.accepted, tx_id,
                                          id_tag=id_tag if isinstance(id_tag, str) else None)
        return tx_id, status

    def _on_stop_transaction(self, transaction_id: int, meter_stop_wh: int) -> None:
        chargers = list(self.chargers.values())
        owner = next((c for c in chargers if c._transaction_id == transaction_id), None)
        if owner is None and len(chargers) == 1:
            owner = chargers[0]           # it says whether it knows the transaction
        if owner is None:
            log.info("%s: StopTransaction for %s, a transaction of none of our connectors",
                     self.charge_point_id, transaction_id)
            return
        owner._on_stop_transaction(transaction_id, meter_stop_wh)

    def _on_meter_values(self, connector_id: int, meter_value, transaction_id) -> None:
        if connector_id == 0:
            # The station's own meter: a connector's only when it is the one we drive.
            if len(self.chargers) == 1:
                next(iter(self.chargers.values()))._on_meter_values(0, meter_value,
                                                                    transaction_id)
            return
        charger = self.chargers.get(connector_id)
        if charger is not None:
            charger._on_meter_values(connector_id, meter_value, transaction_id)

    # ---- setup after (re)connect -------------------------------------------------------
    async def _setup_unless_boot(self, session: _CentralSystemSession) -> None:
        """Set up a reconnected known station, unless it boots (then the boot does it)."""
        boot = asyncio.ensure_future(session.boot_seen.wait())
        grace = asyncio.ensure_future(self.clock.sleep(RECONNECT_BOOT_GRACE_S))
        try:
            await asyncio.wait({boot, grace}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            boot.cancel()
            grace.cancel()
        if not session.boot_seen.is_set():
            await self._setup(session)

    async def _setup(self, session: _CentralSystemSession) -> None:
        """After boot/reconnect: meter values we need, the rate unit, then each connector's
        status and limit. A step the station refuses is logged and skipped; no answer at all
        ends the setup (it runs again on the next connection)."""
        cp = self.charge_point_id
        timeout_s = self.call_timeout_s

        async def configure(key: str, value: str) -> bool:
            try:
                result = await _call(session, call.ChangeConfiguration(key=key, value=value),
                                     timeout_s)
            except CallRefused as exc:
                log.warning("%s: %s", cp, exc)
                return False
            if result.status in (ConfigurationStatus.accepted,
                                 ConfigurationStatus.reboot_required):
                return True
            log.info("%s: ChangeConfiguration %s=%s: %s", cp, key, value, result.status)
            return False

        try:
            if not await configure("MeterValuesSampledData", MEASURANDS_FULL):
                await configure("MeterValuesSampledData", MEASURANDS_BASIC)
            await configure("MeterValueSampleInterval", str(self.meter_interval_s))
            try:
                result = await _call(session, call.GetConfiguration(key=[RATE_UNIT_KEY]),
                                     timeout_s)
                value = None
                for item in result.configuration_key or []:
                    if isinstance(item, dict) and item.get("key") == RATE_UNIT_KEY:
                        value = item.get("value")
                self.rate_unit = allowed_rate_units(value)[0]
                log.info("%s: charging profiles in %s (station allows %r)", cp,
                         self.rate_unit, value)
            except CallRefused as exc:
                log.warning("%s: %s; using A", cp, exc)
            for charger in list(self.chargers.values()):
                await charger._ask_status(session)
        except CallUnanswered as exc:
            for charger in self.chargers.values():
                charger._command_error = f"setup: {exc}"
            log.warning("%s: setup after connect: %s", cp, exc)
            return
        for charger in list(self.chargers.values()):
            await charger._apply_limit(force=True)
            charger._configured_on = session
        session.configured = True


class OcppCharger(Charger):
    """One connector of an OCPP 1.6J charge point, as the controller sees it. The chargers of
    one charge point's connectors share its connection (`_ChargePoint`); any number of charge
    points share one central system."""

    def __init__(self, config: OcppChargerConfig, central_system, clock: Clock = REAL_CLOCK):
        self.config = config
        self.clock = clock
        self._central = central_system
        self._station: _ChargePoint | None = None     # while started
        self._identity: ChargerIdentity | None = None
        self._status: str | None = None
        self._error_code: str | None = None
        self._status_info: str | None = None
        self._station_status: str | None = None      # connector 0
        self._station_error: tuple[str | None, str | None] = (None, None)  # (code, info)
        self._own_meter_seen = False                 # meter values for our connector arrived
        self._listen_task: asyncio.Task | None = None
        self._transaction_id: int | None = None
        self._id_tag: str | None = None              # the running transaction's idTag
        self._meter_start_kwh: float | None = None
        self._finished_session_kwh: float | None = None
        self._car_finished = False    # SuspendedEV after energy flowed: the car is done
        self._sample = MeterSample()
        self._soc_seen = False
        self._desired_a: float | None = None         # what the controller asked for
        self._enabled = True
        self._applied_key: tuple | None = None
        self._applied_a: float | None = None         # last limit the station accepted
        self._configured_on: _CentralSystemSession | None = None
        self._link_error: str | None = "not connected yet"
        self._command_error: str | None = None
        self._apply_lock = asyncio.Lock()
        self._stopping = False

    # ---- Charger interface -------------------------------------------------------------
    async def start(self) -> None:
        self._stopping = False
        if self._station is None:
            station = self._central.registered(self.config.charge_point_id)
            if not isinstance(station, _ChargePoint):
                station = _ChargePoint(self.config.charge_point_id, self._central, self.clock)
            station.add(self)              # ValueError: the connector is already driven
            self._station = station
        try:
            await self._central.attach(self._station)
        except OSError as exc:
            self._station.link_error = f"cannot listen for charge points: {exc}"
            log.error("%s: %s; retrying every %g s", self.config.charge_point_id,
                      self._station.link_error, LISTEN_RETRY_S)
            self._listen_task = asyncio.get_running_loop().create_task(self._retry_listen())

    async def _retry_listen(self) -> None:
        while not self._stopping:
            await self.clock.sleep(LISTEN_RETRY_S)
            station = self._station
            if station is None:
                return
            try:
                await self._central.start()
            except OSError as exc:
                station.link_error = f"cannot listen for charge points: {exc}"
                continue
            if station.session is None:
                station.link_error = "not connected yet"
            return

    async def stop(self) -> None:
        """Leave our connector at `stop_current_a`; the connection closes with the last
        connector's charger (the other connectors carry on)."""
        self._stopping = True
        if self._listen_task is not None:
            self._listen_task.cancel()
            self._listen_task = None
        if self.connected and self.config.stop_current_a is not None:
            self._desired_a = effective_current(self.config.stop_current_a)
            await self._apply_limit()
        station, self._station = self._station, None
        self._link_error = "stopped"
        self._configured_on = None
        if station is None:
            self._central.release(self.config.charge_point_id, self.config.connector_id, self)
            return
        if station.remove(self):
            station.stopping = True
            await station.disconnect(b"central system stopping")
            await self._central.detach(station)

    async def disconnect(self, reason: bytes = b"closed by the central system") -> None:
        """Close the charge point's current connection, if any (it will reconnect). The
        connection is the whole charge point's: every connector's charger loses it."""
        if self._station is not None:
            await self._station.disconnect(reason)

    @property
    def _session(self) -> _CentralSystemSession | None:
        station = self._station
        return station.session if station is not None else None

    @property
    def connected(self) -> bool:
        station = self._station
        return station is not None and station.connected

    @property
    def connection_text(self) -> str:
        if self.config.connector_id != 1:
            return f"OCPP 1.6J {self.config.charge_point_id} connector {self.config.connector_id}"
        return f"OCPP 1.6J {self.config.charge_point_id}"

    @property
    def last_error(self) -> str | None:
        if not self.connected:
            station = self._station
            error = station.link_error if station is not None else self._link_error
            return error or "not connected"
        return self._command_error

    @property
    def identity(self) -> ChargerIdentity | None:
        station = self._station
        if station is not None and station.identity is not None:
            self._identity = station.identity
        return self._identity

    @property
    def capabilities(self) -> frozenset[Capability]:
        caps = {Capability.SESSION_ENERGY}
        if self._soc_seen:
            caps.add(Capability.VEHICLE_SOC)
        return frozenset(caps)

    @property
    def configured(self) -> bool:
        """Connected, and the after-connect setup (meter values, rate unit, limit) is done."""
        session = self._session
        return (self.connected and session is not None and session.configured
                and self._configured_on is session)

    @property
    def rate_unit(self) -> str:
        """"A" or "W": the unit our charging profiles use for this station."""
        station = self._station
        return station.rate_unit if station is not None else "A"

    @property
    def transaction_id(self) -> int | None:
        return self._transaction_id

    async def read(self) -> ChargerMeasurement:
        if not self.connected:
            raise ChargerUnavailable(f"{self.connection_text}: {self.last_error}")
        if self._status is None and self._station_status is None:
            raise ChargerUnavailable(f"{self.connection_text}: no StatusNotification yet")
        session_kwh = self._session_energy_kwh()
        if self._station_status in ("Faulted", "Unavailable"):
            state, reason = vehicle_state_for(self._station_status, *self._station_error)
        else:
            state, reason = vehicle_state_for(self._status, self._error_code,
                                              self._status_info, self._car_finished)
        sample = self._sample
        return ChargerMeasurement(
            vehicle_state=state,
            voltage_v=tuple(sample.voltage_v),
            current_a=tuple(sample.current_a),
            power_w=tuple(sample.power_w),
            total_power_w=sample.total_power_w,
            lifetime_energy_kwh=sample.energy_register_kwh,
            error_reason=reason,
            applied_current_a=self._applied_a,
            phases=self.config.phases,
            session_energy_kwh=session_kwh,
            vehicle_soc_pct=sample.soc_pct,
            extra={"ocpp_status": self._status, "transaction_id": self._transaction_id,
                   "id_tag": self._id_tag,
                   "rate_unit": self.rate_unit, "connector_id": self.config.connector_id},
        )

    async def set_current(self, amps: float) -> None:
        if isinstance(amps, bool) or not isinstance(amps, (int, float)):
            raise TypeError(f"current must be a number of amps, got {amps!r}")
        self._desired_a = effective_current(amps)
        self._require_connection("set the current")
        await self._apply_limit()

    async def set_enabled(self, enabled: bool) -> None:
        if not isinstance(enabled, bool):
            raise TypeError(f"enabled must be True or False, got {enabled!r}")
        self._enabled = enabled
        session = self._require_connection("enable" if enabled else "disable")
        await self._apply_limit()
        if not enabled and self._transaction_id is not None:
            await self._remote_call(session, call.RemoteStopTransaction(
                transaction_id=self._transaction_id), "RemoteStopTransaction")
        elif enabled and self._transaction_id is None and self._status in _PLUGGED_IDLE:
            await self._remote_call(session, call.RemoteStartTransaction(
                id_tag=self.config.remote_id_tag, connector_id=self.config.connector_id),
                "RemoteStartTransaction")

    async def call(self, payload):
        """Send any OCPP 1.6 call (an `ocpp.v16.call` object) and return its result.
        For tools and diagnostics; raises ChargerUnavailable with the reason on failure."""
        session = self._require_connection(type(payload).__name__)
        try:
            return await self._call(session, payload)
        except CallFailed as exc:
            raise ChargerUnavailable(str(exc)) from None

    # ---- this connector's news (from the charge point) --------------------------------
    def _on_status(self, connector_id: int, status: str, error_code: str, info) -> None:
        code = None if error_code == "NoError" else error_code
        info = str(info) if info else None
        if connector_id == 0:
            self._station_status = status
            self._station_error = (code, info)
            return
        if connector_id != self.config.connector_id:
            return
        self._status = status
        self._error_code, self._status_info = code, info
        if status == "SuspendedEV":
            energy = self._session_energy_kwh()
            self._car_finished = energy is not None and energy > 0
        elif status != "Finishing":
            self._car_finished = False
        if status == "Available":
            self._finished_session_kwh = None
            self._sample.soc_pct = None

    def _tag_status(self, id_tag) -> str:
        allowed = self.config.id_tags
        if allowed is None or id_tag in allowed or id_tag == self.config.remote_id_tag:
            return AuthorizationStatus.accepted
        return AuthorizationStatus.invalid

    def _on_start_transaction(self, connector_id: int, meter_start_wh: int,
                              accepted: bool, tx_id: int, id_tag: str | None = None) -> None:
        """The station's transaction `tx_id` on `connector_id`: tracked only if the tag was
        accepted (otherwise the station ends it at once). `id_tag` (the card or the car's own
        tag) tells which car charges (`phaeton.vehicles.garage`)."""
        if connector_id == self.config.connector_id and accepted:
            self._transaction_id = tx_id
            self._id_tag = id_tag
            self._meter_start_kwh = meter_start_wh / 1000.0
            self._finished_session_kwh = None
            self._car_finished = False

    def _on_stop_transaction(self, transaction_id: int, meter_stop_wh: int) -> None:
        if transaction_id != self._transaction_id and self._transaction_id is not None:
            log.info("%s: StopTransaction for %s, ours is %s", self.config.charge_point_id,
                     transaction_id, self._transaction_id)
            return
        if self._meter_start_kwh is not None:
            self._finished_session_kwh = max(0.0, meter_stop_wh / 1000.0 - self._meter_start_kwh)
        self._sample.energy_register_kwh = meter_stop_wh / 1000.0
        self._transaction_id = None
        self._id_tag = None
        self._meter_start_kwh = None
        self._sample.total_power_w = 0.0
        self._sample.power_w = [None, None, None]
        self._sample.current_a = [None, None, None]

    def _on_meter_values(self, connector_id: int, meter_value, transaction_id) -> None:
        # Connector 0 is the station's own meter: used only while our connector sends none.
        if connector_id == self.config.connector_id:
            self._own_meter_seen = True
        elif connector_id != 0 or self._own_meter_seen:
            return
        sample = parse_meter_values(meter_value)
        for problem in sample.problems:
            log.warning("%s: MeterValues: %s", self.config.charge_point_id, problem)
        merged = self._sample
        for name in ("energy_register_kwh", "total_power_w", "soc_pct"):
            value = getattr(sample, name)
            if value is not None:
                setattr(merged, name, value)
        for name in ("power_w", "current_a", "voltage_v"):
            values = getattr(sample, name)
            if any(v is not None for v in values):
                setattr(merged, name, list(values))
        if sample.soc_pct is not None:
            self._soc_seen = True
        if transaction_id is not None and self._transaction_id is None:
            # A transaction we did not see start (e.g. our service restarted): adopt it.
            self._transaction_id = int(transaction_id)

    def _session_energy_kwh(self) -> float | None:
        if self._transaction_id is not None:
            register = self._sample.energy_register_kwh
            if register is None or self._meter_start_kwh is None:
                return None
            return max(0.0, register - self._meter_start_kwh)
        return self._finished_session_kwh

    # ---- calls to the charge point ------------------------------------------------------
    def _require_connection(self, what: str) -> _CentralSystemSession:
        session = self._session
        if session is None or not self.connected:
            raise ChargerUnavailable(
                f"{self.connection_text}: cannot {what}, {self.last_error}; "
                "it is applied when the charge point connects")
        return session

    async def _call(self, session: _CentralSystemSession, payload):
        """session.call with every failure turned into CallFailed (words for last_error)."""
        return await _call(session, payload, self.config.call_timeout_s)

    async def _remote_call(self, session, payload, name: str) -> bool:
        try:
            result = await self._call(session, payload)
        except CallFailed as exc:
            self._command_error = str(exc)
            log.warning("%s: %s", self.config.charge_point_id, exc)
            return False
        if result.status != RemoteStartStopStatus.accepted:
            self._command_error = f"{name}: {result.status}"
            log.warning("%s: %s answered %s", self.config.charge_point_id, name, result.status)
            return False
        return True

    def _target_limit_a(self) -> float | None:
        if not self._enabled:
            return 0.0
        return self._desired_a

    async def _apply_limit(self, force: bool = False) -> bool:
        """Send the limit in force (TxProfile if a transaction runs, always TxDefault) for our
        connector. Skips when the same limit is already in place on this connection. True
        when applied."""
        async with self._apply_lock:
            session = self._session
            limit_a = self._target_limit_a()
            if session is None or not self.connected or limit_a is None:
                return False
            tx_id = self._transaction_id
            rate_unit = self.rate_unit
            key = (id(session), limit_a, tx_id, rate_unit)
            if key == self._applied_key and not force:
                return True
            start_s = self.clock.time() - PROFILE_START_BACKDATE_S
            profiles = []
            if tx_id is not None:
                profiles.append(charging_profile(
                    ChargingProfilePurposeType.tx_profile, TX_PROFILE_ID, limit_a,
                    rate_unit, self.config.voltage_v, self.config.phases, start_s, tx_id))
            profiles.append(charging_profile(
                ChargingProfilePurposeType.tx_default_profile, TX_DEFAULT_PROFILE_ID, limit_a,
                rate_unit, self.config.voltage_v, self.config.phases, start_s))
            problems = []
            for profile in profiles:
                purpose = profile.charging_profile_purpose
                try:
                    result = await self._call(session, call.SetChargingProfile(
                        connector_id=self.config.connector_id, cs_charging_profiles=profile))
                except CallUnanswered as exc:
                    problems.append(f"{purpose} {limit_a:g} A: {exc}")
                    break       # no answer / connection gone: do not wait again
                except CallRefused as exc:
                    problems.append(f"{purpose} {limit_a:g} A: {exc}")
                    continue
                if result.status != "Accepted":
                    problems.append(f"{purpose} {limit_a:g} A: SetChargingProfile {result.status}")
            if problems:
                self._applied_key = None
                self._command_error = "; ".join(problems)
                log.warning("%s: limit not applied: %s", self.connection_text,
                            self._command_error)
                return False
            self._applied_key = key
            self._applied_a = limit_a
            self._command_error = None
            return True

    async def _ask_status(self, session: _CentralSystemSession) -> None:
        """TriggerMessage StatusNotification for our connector while we know no status.
        CallUnanswered propagates (the setup ends)."""
        if self._status is not None:
            return
        try:
            await self._call(session, call.TriggerMessage(
                requested_message=MessageTrigger.status_notification,
                connector_id=self.config.connector_id))
        except CallRefused as exc:
            log.info("%s: %s", self.config.charge_point_id, exc)

    async def _setup_connector(self, session: _CentralSystemSession) -> None:
        """Joining a charge point whose connection is already set up: our status, our limit."""
        try:
            await self._ask_status(session)
        except CallUnanswered as exc:
            self._command_error = f"setup: {exc}"
            log.warning("%s: setup after connect: %s", self.connection_text, exc)
            return
        await self._apply_limit(force=True)
        self._configured_on = session


# Central systems by (host, port, path): chargers built from the config share one (several
# charge points, the connectors of one charge point). Held weakly: a central system nobody's
# charger holds any more is gone.
_CENTRAL_SYSTEMS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def central_system_for(host: str, port: int, path: str) -> OcppCentralSystem:
    """The shared central system listening at host, port and path (made when none is).
    ValueError when another one would listen on the same port with another host or path (one
    port, one server)."""
    key = (host, port, path.rstrip("/"))
    central = _CENTRAL_SYSTEMS.get(key)
    if central is not None:
        return central
    if port:
        for (other_host, other_port, other_path), other in list(_CENTRAL_SYSTEMS.items()):
            if other_port == port and other.in_use:
                raise ValueError(
                    f"OCPP port {port} is already served at {other_host}:{other_port}"
                    f"{other_path or '/'}; charger entries on one port must use the same host "
                    f"and path (here {host} and {path!r})")
    central = OcppCentralSystem(host=host, port=port, path=path)
    _CENTRAL_SYSTEMS[key] = central
    return central


def charger_from_config(charger: Mapping[str, Any], config: Mapping[str, Any],
                        clock: Clock = REAL_CLOCK) -> OcppCharger:
    """The registry's builder (`phaeton.chargers.registry`): the driver for ONE charger entry
    (its `ocpp` section, `phases` and `safe_current_a`; defaults applied) within the whole
    `config` (`site.nominal_voltage_v`). Entries with the same host, port and path share one
    central system (`central_system_for`), which the first charger's `start()` starts and the
    last one's `stop()` stops; entries with the same charge_point_id share its connection, one
    charger per connector.

    ValueError when another built (and not stopped) charger already drives the same charge
    point id and connector."""
    ocpp = charger["ocpp"]
    central_system = central_system_for(ocpp["host"], ocpp["port"], ocpp["path"])
    driver = OcppCharger(OcppChargerConfig(
        charge_point_id=ocpp["charge_point_id"], connector_id=ocpp["connector_id"],
        password=ocpp["password"], meter_interval_s=ocpp["meter_interval_s"],
        heartbeat_interval_s=ocpp["heartbeat_interval_s"], phases=charger["phases"],
        voltage_v=float(config["site"]["nominal_voltage_v"]),
        stop_current_a=float(charger["safe_current_a"])), central_system, clock=clock)
    central_system.claim(driver.config.charge_point_id, driver.config.connector_id, driver)
    return driver
