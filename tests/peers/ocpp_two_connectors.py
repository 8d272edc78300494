"""A real OCPP 1.6J charge point with two connectors, for the multi-charger driver tests.

Independent of phaeton's own code: it speaks OCPP-J over an aiohttp WebSocket client with the
`ocpp` package's plain `ChargePoint`, so what the central system sends is what a station with
two connectors receives. It is deliberately small: it boots, answers configuration calls,
keeps the charging profiles per connector (the latest TxDefaultProfile and TxProfile of each),
answers TriggerMessage with the connector's StatusNotification, and the test drives the rest
(status changes, transactions, meter values) with plain methods.
"""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import aiohttp
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action

CONNECTORS = (1, 2)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class _Link:
    """aiohttp client WebSocket as the recv()/send() pair the ocpp package wants."""

    def __init__(self, ws):
        self.ws = ws

    async def recv(self) -> str:
        msg = await self.ws.receive()
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"WebSocket closed ({msg.type.name})")
        return msg.data

    async def send(self, text: str) -> None:
        await self.ws.send_str(text)


class _Session(ChargePoint):
    def __init__(self, peer: TwoConnectorChargePoint, link: _Link):
        super().__init__(peer.charge_point_id, link, response_timeout=5)
        self.peer = peer

    @on(Action.change_configuration)
    def on_change_configuration(self, key, value, **kwargs):
        self.peer.configuration[key] = value
        return call_result.ChangeConfiguration(status="Accepted")

    @on(Action.get_configuration)
    def on_get_configuration(self, **kwargs):
        return call_result.GetConfiguration(configuration_key=[
            {"key": "ChargingScheduleAllowedChargingRateUnit", "readonly": True,
             "value": "Current"}])

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message, **kwargs):
        return call_result.TriggerMessage(status="Accepted")

    @after(Action.trigger_message)
    async def after_trigger_message(self, requested_message, **kwargs):
        connector = kwargs.get("connector_id")
        if requested_message == "StatusNotification" and connector in CONNECTORS:
            await self.peer.send_status(connector, self.peer.status[connector])

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, connector_id, cs_charging_profiles, **kwargs):
        profile = cs_charging_profiles
        purpose = profile["charging_profile_purpose"]
        if connector_id not in CONNECTORS:
            return call_result.SetChargingProfile(status="Rejected")
        if purpose == "TxProfile":
            # the transaction's id may reach us before our own StartTransaction call returns
            known = self.peer.transactions.get(connector_id)
            tx_id = profile.get("transaction_id")
            if tx_id is None or (known is not None and tx_id != known) or any(
                    t == tx_id for c, t in self.peer.transactions.items() if c != connector_id):
                return call_result.SetChargingProfile(status="Rejected")
        limit = profile["charging_schedule"]["charging_schedule_period"][0]["limit"]
        self.peer.profiles.append((connector_id, purpose, limit, profile.get("transaction_id")))
        return call_result.SetChargingProfile(status="Accepted")

    @on(Action.remote_start_transaction)
    def on_remote_start_transaction(self, id_tag, **kwargs):
        return call_result.RemoteStartTransaction(status="Rejected")

    @on(Action.remote_stop_transaction)
    def on_remote_stop_transaction(self, transaction_id, **kwargs):
        return call_result.RemoteStopTransaction(status="Rejected")


class TwoConnectorChargePoint:
    """Connects to `url` (…/<charge point id>) once; `start()` returns when it has booted."""

    def __init__(self, url: str, charge_point_id: str):
        self.url = url
        self.charge_point_id = charge_point_id
        self.configuration: dict[str, str] = {}
        self.profiles: list[tuple[int, str, float, int | None]] = []   # connector, purpose, ...
        self.status = {c: "Available" for c in CONNECTORS}
        self.transactions: dict[int, int] = {}
        self.meter_wh = {c: 1_000_000.0 for c in CONNECTORS}
        self.connections = 0
        self._http: aiohttp.ClientSession | None = None
        self._ws = None
        self._session: _Session | None = None
        self._task: asyncio.Task | None = None

    @property
    def connected(self) -> bool:
        return self._ws is not None and not self._ws.closed

    def limit(self, connector: int, purpose: str = "TxDefaultProfile") -> float | None:
        """The latest accepted limit of `purpose` on `connector`."""
        for c, p, limit, _tx in reversed(self.profiles):
            if c == connector and p == purpose:
                return limit
        return None

    async def start(self) -> None:
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(self.url, protocols=("ocpp1.6",))
        self.connections += 1
        self._session = _Session(self, _Link(self._ws))
        self._task = asyncio.create_task(self._run())
        await self._session.call(call.BootNotification(
            charge_point_vendor="PeerWorks", charge_point_model="Twin-2",
            charge_point_serial_number="TWIN0002"))
        for connector in CONNECTORS:
            await self.send_status(connector, self.status[connector])

    async def _run(self) -> None:
        try:
            await self._session.start()
        except (ConnectionError, asyncio.CancelledError):
            pass

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()

    async def send_status(self, connector: int, status: str) -> None:
        self.status[connector] = status
        await self._session.call(call.StatusNotification(
            connector_id=connector, error_code="NoError", status=status, timestamp=_now()))

    async def start_transaction(self, connector: int) -> int:
        result = await self._session.call(call.StartTransaction(
            connector_id=connector, id_tag="PEERTAG", meter_start=int(self.meter_wh[connector]),
            timestamp=_now()))
        self.transactions[connector] = result.transaction_id
        await self.send_status(connector, "Charging")
        return result.transaction_id

    async def send_meter(self, connector: int, amps: float, energy_wh: float) -> None:
        self.meter_wh[connector] = energy_wh
        sampled = [{"value": str(energy_wh), "measurand": "Energy.Active.Import.Register",
                    "unit": "Wh"}]
        sampled += [{"value": str(amps), "measurand": "Current.Import", "phase": phase,
                     "unit": "A"} for phase in ("L1", "L2", "L3")]
        sampled.append({"value": str(round(amps * 230 * 3, 1)),
                        "measurand": "Power.Active.Import", "unit": "W"})
        await self._session.call(call.MeterValues(
            connector_id=connector, transaction_id=self.transactions.get(connector),
            meter_value=[{"timestamp": _now(), "sampled_value": sampled}]))
