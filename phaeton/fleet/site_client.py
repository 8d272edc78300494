"""The site's fleet daemon part: takes schedules from the operator's broker, keeps them in
SQLite, tells the planner what the battery must do now, and acknowledges (docs/fleet.md).

`FleetSite` has no D-Bus: the service gives it a function that returns the GX's readings and
one that says whether Victron's Dynamic ESS or the owner holds the battery, and asks it each
tick for `battery_plan(now)` (run by the planner's EssWriter) and `ev_allowance_w(now,
charger)`. The benchmark runs a thousand of them in one process on the same code.

Every ack goes to the outbox first, in the same SQLite transaction as the state change it
reports, and leaves it only when the broker confirmed it; one sender publishes them in seq
order, so acks made while the broker was away arrive after it returns, in order.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from phaeton import __version__
from phaeton.clock import REAL_CLOCK, Clock
from phaeton.fleet import contract
from phaeton.fleet.contract import Refusal, Schedule, SiteLimits, iso, topic
from phaeton.fleet.link import BrokerLink
from phaeton.fleet.mqtt_client import MqttClient, MqttDisconnected, Will
from phaeton.fleet.slots import (ActiveSlot, BatteryFacts, FleetReadings, SlotMeter,
                                 active_slot, battery_plan, owner_at)
from phaeton.store.fleet_store import FleetStore, StoredSchedule

log = logging.getLogger("phaeton.fleet")

STATUS_SCHEDULES = 10


class FleetSite:
    def __init__(self, *, site_id: str, key: str, store: FleetStore, limits: SiteLimits,
                 battery: BatteryFacts | None, readings: Callable[[], FleetReadings],
                 blocked: Callable[[], str | None] = lambda: None,
                 local_steers: Callable[[], bool] = lambda: False,
                 clock: Clock = REAL_CLOCK, topic_prefix: str = contract.DEFAULT_TOPIC_PREFIX,
                 telemetry_s: float = 60.0, version: str = __version__):
        self.site_id, self.key, self.store, self.limits = site_id, key, store, limits
        self.battery, self.readings, self.blocked = battery, readings, blocked
        self.local_steers, self.clock, self.prefix = local_steers, clock, topic_prefix
        self.telemetry_s, self.version = telemetry_s, version
        self.client: MqttClient | None = None
        self._schedules: list[tuple[StoredSchedule, Schedule]] = []
        self._meter: SlotMeter | None = None
        self._anchor: dict[tuple[str, int, int], float] = {}
        self._outbox_ready = asyncio.Event()
        self._status_due = True
        self._sender: asyncio.Task | None = None
        self._last_telemetry = 0.0
        self._last_source: tuple[str, int] | None = None
        self._next_slot: dict[tuple[str, int], int] = {}
        # each EV window's energy counter when the charger was first seen in it (target_kwh)
        self._ev_counter: dict[tuple[str, int, int, str | None], float] = {}
        self.received = 0
        self._reload()

    # ---- life --------------------------------------------------------------------------------

    def _topic(self, leaf: str) -> str:
        return topic(self.prefix, self.site_id, leaf)

    def connect(self, link: BrokerLink, *, backoff_max_s: float = 60.0) -> None:
        """Start the broker connection (persistent session, last will) and the ack sender."""
        will = Will(self._topic("status"), json.dumps(
            {"type": "status", "site": self.site_id, "online": False}).encode(), 1, True)
        self.client = MqttClient(link.host, link.port, f"phaeton-site-{self.site_id}",
                                 username=link.username, password=link.password,
                                 ssl_context=link.ssl_context(), keepalive_s=link.keepalive_s,
                                 clean_session=False, will=will, on_message=self.on_message,
                                 on_connect=self._connected, on_oversize=self._oversize,
                                 backoff_max_s=backoff_max_s)
        self.client.subscribe([self._topic("schedule"), self._topic("command")])
        self.client.start()
        self._sender = asyncio.get_running_loop().create_task(self._send_acks())

    async def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
            self._sender = None
        if self.client is not None:
            offline = json.dumps({"type": "status", "site": self.site_id, "online": False})
            await self.client.stop(final=(self._topic("status"), offline.encode(), True))
        self.store.close()

    def _connected(self, _session_present: bool) -> None:
        self._status_due = True
        self._outbox_ready.set()

    # ---- receiving ---------------------------------------------------------------------------

    async def on_message(self, message_topic: str, payload: bytes, _retain: bool) -> None:
        """A schedule or command from the operator; every outcome is acked (never raises)."""
        self.received += 1
        if message_topic == self._topic("schedule"):
            self.take_schedule(payload)
        elif message_topic == self._topic("command"):
            self.take_command(payload)
        self._outbox_ready.set()

    def _oversize(self, message_topic: str, length: int) -> None:
        """A message too big to be a schedule was dropped: say so, as a refusal."""
        from phaeton.fleet.mqtt_client import MAX_PACKET
        self.store.enqueue(self._ack(
            "refused", schedule_id=None, version=None, code="malformed",
            reason=f"the message on {message_topic} is {length} bytes, more than the "
                   f"{MAX_PACKET} a site takes; it was dropped"))
        self._outbox_ready.set()

    def _ack(self, state: str, **fields: Any) -> dict[str, Any]:
        return {"type": "ack", "site": self.site_id, "ts": iso(self.clock.time()),
                "state": state, **fields}

    def take_schedule(self, payload: bytes) -> str:
        """Validate, store and ack a schedule envelope; returns the ack state it ended in."""
        now = self.clock.time()
        try:
            body_text = contract.envelope_body(payload)
        except Refusal as refusal:
            self.store.enqueue(self._ack("refused", schedule_id=None, version=None,
                                         code=refusal.code, reason=refusal.reason))
            return "refused"
        ident, version = contract.peek_ids(body_text)
        ids = {"schedule_id": ident, "version": version}
        if ident is not None and version is not None:
            known = self.store.get(ident, version)
            if known is not None:    # a duplicate delivery: answer with what it is, change nothing
                self.store.enqueue(self._duplicate_ack(known, ids))
                return "duplicate"
        self.store.enqueue(self._ack("received", **ids))
        try:
            schedule = contract.validate(payload, key=self.key, site_id=self.site_id,
                                         now_s=now, limits=self.limits)
            highest = self.store.highest_version(schedule.id)
            if highest is not None and highest > schedule.version:
                raise Refusal("superseded", f"version {highest} of schedule {schedule.id} is "
                                            "already accepted")
        except Refusal as refusal:
            self.store.enqueue(self._ack("refused", **ids, code=refusal.code,
                                         reason=refusal.reason))
            log.warning("fleet: refused schedule %s v%s: %s", ident, version, refusal.reason)
            return "refused"
        self._accept(schedule, body_text, now)
        return "accepted"

    def _duplicate_ack(self, known: StoredSchedule, ids: dict[str, Any]) -> dict[str, Any]:
        """The ack a schedule already has, for a second delivery of it (`duplicate`)."""
        if known.state == "superseded":
            newer = self.store.highest_version(known.id)
            if newer is not None and newer > known.version:
                return self._ack("superseded", **ids, by_version=newer, duplicate=True)
            latest = self.store.recent(1)[0]
            return self._ack("superseded", **ids, by_id=latest.id, duplicate=True)
        state = "accepted" if known.state == "executing" else known.state
        return self._ack(state, **ids, duplicate=True)

    def _accept(self, schedule: Schedule, body_text: str, now: float) -> None:
        ids = {"schedule_id": schedule.id, "version": schedule.version}
        # ended slots are not run late: execution acks start with the slot under way
        first = schedule.slot_index(now) or 0
        self.store.add(schedule.id, schedule.version, body_text, now, self._ack("accepted", **ids))
        if first:
            self.store.slot_done(schedule.id, schedule.version, first, None, state="accepted")
        for stored, older in self._schedules:
            if older.id == schedule.id:
                self.store.set_state(older.id, older.version, "superseded", self._ack(
                    "superseded", schedule_id=older.id, version=older.version,
                    by_version=schedule.version))
            elif schedule.valid_from_s <= max(now, older.valid_from_s) \
                    and schedule.end_s >= older.end_s:
                self.store.set_state(older.id, older.version, "superseded", self._ack(
                    "superseded", schedule_id=older.id, version=older.version,
                    by_id=schedule.id))
        log.info("fleet: accepted schedule %s v%d (%d slots from %s)", schedule.id,
                 schedule.version, len(schedule.slots), iso(schedule.valid_from_s))
        self._reload()

    def take_command(self, payload: bytes) -> None:
        unreadable = {"schedule_id": None, "version": None}    # no id to answer to
        try:
            body_text = contract.envelope_body(payload)
        except Refusal as refusal:
            self.store.enqueue(self._ack("refused", **unreadable, code=refusal.code,
                                         reason=refusal.reason))
            return
        ident, _version = contract.peek_ids(body_text)
        if ident is None or not contract.SCHEDULE_ID_RE.match(ident):
            self.store.enqueue(self._ack("refused", **unreadable, code="schema",
                                         reason="the command has no valid id"))
            return
        self.store.enqueue(self._ack("received", command_id=ident))
        try:
            command = contract.parse_command(contract.open_envelope(payload, self.key))
            if command.site != self.site_id:
                raise Refusal("wrong_site", f"the command is for site {command.site!r}, this "
                                            f"is {self.site_id!r}")
        except Refusal as refusal:
            self.store.enqueue(self._ack("refused", command_id=ident, code=refusal.code,
                                         reason=refusal.reason))
            return
        if command.command == "cancel":
            for stored, schedule in self._schedules:
                if schedule.id == command.schedule_id:
                    self.store.set_state(schedule.id, schedule.version, "cancelled", self._ack(
                        "cancelled", schedule_id=schedule.id, version=schedule.version))
            self._reload()
        self._status_due = True
        self.store.enqueue(self._ack("accepted", command_id=ident))

    def _reload(self) -> None:
        self._schedules = [(row, contract.schedule_from_json(row.body))
                           for row in self.store.live()]
        # the next slot to report, per schedule: kept here so a tick needs no query
        self._next_slot = {(row.id, row.version): row.next_slot for row, _ in self._schedules}
        self._status_due = True

    # ---- what the battery does now -------------------------------------------------------

    def active(self, now_s: float) -> ActiveSlot | None:
        return active_slot([s for _row, s in self._schedules], now_s,
                           local_steers=self._local_steers())

    def _local_steers(self) -> bool:
        try:
            return bool(self.local_steers())
        except Exception:  # noqa: BLE001 - a failing probe: the fleet does not take priority
            return True

    def source(self, now_s: float) -> str:
        """`local`, or `fleet:<id>@<version>` while a fleet slot steers the battery."""
        slot = self.active(now_s)
        return "local" if slot is None else f"fleet:{slot.schedule.id}@{slot.schedule.version}"

    def battery_plan(self, now_s: float):
        """The Plan the EssWriter runs now, or None (the local plan runs)."""
        slot = self.active(now_s)
        if slot is None or self.battery is None:
            return None
        readings = self._read()
        anchor = self._anchor.get(slot.key)
        if anchor is None:
            if readings.soc_pct is None:
                return None        # no SoC: nothing to aim from; the local plan holds
            anchor = readings.soc_pct
            self._anchor = {slot.key: anchor}     # only the running slot's is needed
        return battery_plan(slot, anchor, self.battery, readings)

    def ev_allowance_w(self, now_s: float, charger: str | None,
                       energy_kwh: float | None = None) -> float | None:
        """The power (W) a fleet EV window gives this charger now, or None (its mode decides):
        none covers now, or the window's `target_kwh` is delivered. `energy_kwh`: the
        charger's energy counter now (lifetime kWh), what the delivery is measured on; without
        one a target cannot be followed and the window runs to its end."""
        owner = owner_at([s for _row, s in self._schedules], now_s)
        if owner is None:
            return None
        for index, window in enumerate(owner.schedule.ev):
            if not (window.start_s <= now_s < window.end_s and window.charger in (None, charger)):
                continue
            if window.target_kwh is not None and energy_kwh is not None:
                key = (owner.schedule.id, owner.schedule.version, index, charger)
                first = self._ev_counter.setdefault(key, energy_kwh)
                if energy_kwh - first >= window.target_kwh:
                    return None
            return window.max_kw * 1000.0
        return None

    def _read(self) -> FleetReadings:
        try:
            return self.readings()
        except Exception as exc:  # noqa: BLE001 - no readings is a state, not a crash
            log.debug("fleet: readings unavailable: %s", exc)
            return FleetReadings()

    # ---- each tick -------------------------------------------------------------------------

    def tick(self, now_s: float | None = None) -> None:
        """Measure the running slot, ack the slots that ended, finish schedules; publish the
        status when it changed and telemetry when due. Cheap; call every control tick."""
        now = self.clock.time() if now_s is None else now_s
        readings = self._read()
        slot = self.active(now)
        source = None if slot is None else slot.key[:2]
        if source != self._last_source:         # the battery changed hands: say so
            self._last_source, self._status_due = source, True
        if self._meter is not None and (slot is None or slot.key != self._meter.slot.key):
            self._meter.sample(now, readings, self._blocked())
            self._finish_meter()
        if slot is not None:
            if self._meter is None:
                self._meter = SlotMeter(slot)
            self._meter.sample(now, readings, self._blocked())
        self._ack_ended_slots(now)
        if self.client is not None and self.client.connected:
            loop = asyncio.get_running_loop()
            if self._status_due:
                self._status_due = False
                loop.create_task(self._publish_status(now))
            if now - self._last_telemetry >= self.telemetry_s:
                self._last_telemetry = now
                loop.create_task(self._publish_telemetry(now, readings))

    def _blocked(self) -> str | None:
        try:
            return self.blocked()
        except Exception:  # noqa: BLE001
            return None

    def _finish_meter(self) -> None:
        meter, self._meter = self._meter, None
        schedule = meter.slot.schedule
        next_slot = self._next_slot.get((schedule.id, schedule.version))
        if next_slot is None or next_slot > meter.slot.index:   # cancelled, superseded, done
            return
        self._executed(schedule, meter.slot.index, meter)

    def _executed(self, schedule: Schedule, index: int, meter: SlotMeter | None) -> None:
        limits = self.limits
        if meter is None:
            fields = {"battery_kwh": None, "soc_start_pct": None, "soc_end_pct": None,
                      "limited_by": "no_readings"}
        else:
            fields = {"battery_kwh": round(meter.battery_kwh, 4),
                      "soc_start_pct": meter.soc_start_pct, "soc_end_pct": meter.soc_end_pct,
                      "limited_by": meter.limited_by(self.battery, limits.import_limit_kw)}
            if fields["limited_by"] == "no_readings":
                fields.update(battery_kwh=None, soc_start_pct=None, soc_end_pct=None)
        ack = self._ack("executed", schedule_id=schedule.id, version=schedule.version,
                        slot=index, slot_start=iso(schedule.slot_start_s(index)),
                        asked=schedule.slots[index].as_dict(), **fields)
        self.store.slot_done(schedule.id, schedule.version, index + 1, ack)
        self._next_slot[(schedule.id, schedule.version)] = index + 1
        self._outbox_ready.set()

    def _ack_ended_slots(self, now: float) -> None:
        """Slots that ended without a meter (the site was down): `no_readings`; then the
        schedules whose last slot ended are completed."""
        changed = False
        schedules = [s for _row, s in self._schedules]
        for row, schedule in self._schedules:
            next_slot = self._next_slot.get((schedule.id, schedule.version),
                                            len(schedule.slots))
            running = self._meter.slot.key if self._meter else None
            while next_slot < len(schedule.slots) \
                    and schedule.slot_start_s(next_slot) + contract.SLOT_S <= now \
                    and running != (schedule.id, schedule.version, next_slot):
                start = schedule.slot_start_s(next_slot)
                owner = owner_at(schedules, start)
                if owner is not None and owner.schedule is schedule \
                        and owner.command.kind != "local":
                    self._executed(schedule, next_slot, None)
                else:     # run by another schedule or the local plan: no execution ack
                    self.store.slot_done(schedule.id, schedule.version, next_slot + 1, None,
                                         state=row.state)
                    self._next_slot[(schedule.id, schedule.version)] = next_slot + 1
                next_slot += 1
            own_meter = running is not None and running[:2] == (schedule.id, schedule.version)
            if now >= schedule.end_s and next_slot >= len(schedule.slots) and not own_meter:
                self.store.set_state(schedule.id, schedule.version, "completed", self._ack(
                    "completed", schedule_id=schedule.id, version=schedule.version))
                changed = True
        if changed:
            self._reload()
            self._outbox_ready.set()

    # ---- sending -----------------------------------------------------------------------------

    async def _send_acks(self) -> None:
        """Publish the outbox in seq order, each once confirmed, forever."""
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            client = self.client
            if client is None or not client.connected:
                continue
            try:
                while True:
                    pending = self.store.pending(limit=50)
                    if not pending:
                        break
                    for seq, payload in pending:
                        await client.publish(self._topic("ack"), payload.encode(), qos=1)
                        self.store.delivered(seq)
            except MqttDisconnected:
                pass      # the next connect sets the event again

    def status(self, now_s: float) -> dict[str, Any]:
        return {"type": "status", "site": self.site_id, "online": True, "ts": iso(now_s),
                "version": self.version, "source": self.source(now_s),
                "schedules": [{"id": row.id, "version": row.version, "state": row.state}
                              for row in self.store.recent(STATUS_SCHEDULES)]}

    async def _publish_status(self, now: float) -> None:
        payload = json.dumps(self.status(now)).encode()
        with contextlib.suppress(MqttDisconnected):
            await self.client.publish(self._topic("status"), payload, qos=1, retain=True)

    async def _publish_telemetry(self, now: float, readings: FleetReadings) -> None:
        payload = json.dumps({"type": "telemetry", "site": self.site_id, "ts": iso(now),
                              "soc_pct": readings.soc_pct, "battery_w": readings.battery_w,
                              "grid_w": readings.grid_w, "pv_w": readings.pv_w,
                              "consumption_w": readings.consumption_w,
                              "source": self.source(now)}).encode()
        with contextlib.suppress(MqttDisconnected):
            await self.client.publish(self._topic("telemetry"), payload, qos=0)

    def state(self, now_s: float) -> dict[str, Any]:
        """For the web UI and the API: connection, source, schedules, outbox."""
        client = self.client
        return {"site_id": self.site_id, "connected": bool(client and client.connected),
                "error": client.last_error if client else None, "source": self.source(now_s),
                "pending_acks": self.store.pending_count(),
                "schedules": [{"id": row.id, "version": row.version, "state": row.state,
                               "next_slot": row.next_slot}
                              for row in self.store.recent(STATUS_SCHEDULES)]}
