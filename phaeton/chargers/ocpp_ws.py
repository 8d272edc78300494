"""The OCPP-J transport shared by the central system and the simulated charge point.

Two jobs, no protocol logic (and one package setting, see ASYNC_VALIDATION below):
- `WebSocketLink` adapts an aiohttp WebSocket (server or client side) to the async `recv()` /
  `send(str)` pair the `ocpp` package's ChargePoint wants.
- `check_frame()` screens a received text frame before the `ocpp` package sees it. The package
  only logs frames it cannot unpack; OCPP-J wants a CallError back where the sender can be told
  (a call whose unique id we can read), so `GuardedChargePoint.route_message` answers those with
  FormationViolation / ProtocolError and ignores (and logs) the rest.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass

import aiohttp
import ocpp.messages
from ocpp.v16 import ChargePoint as _V16ChargePoint

log = logging.getLogger(__name__)

# The ocpp package validates every payload in the default thread pool unless told otherwise.
# OCPP payloads are small; validating inline keeps the service on one thread (design: no
# threads) and halves set_current -> profile accepted latency on loopback (benchmarks/
# charger_bench.py --protocol ocpp: median 3.5 -> 1.5..2.3 ms, p99 13.6 -> 3.5..7.4 ms).
ocpp.messages.ASYNC_VALIDATION = False

SUBPROTOCOL = "ocpp1.6"

CALL, CALL_RESULT, CALL_ERROR = 2, 3, 4
_FRAME_LENGTHS = {CALL: 4, CALL_RESULT: 3, CALL_ERROR: 5}
# A call id at the start of text that is not valid JSON: `[2, "abc", ...`
_CALL_ID_PREFIX = re.compile(r'^\s*\[\s*2\s*,\s*"([^"\\]{1,36})"')


class LinkClosed(ConnectionError):
    """The WebSocket closed (or failed); the ChargePoint receive loop ends with this."""


class WebSocketLink:
    """aiohttp WebSocket (WebSocketResponse or ClientWebSocketResponse) as recv()/send(str)."""

    def __init__(self, ws, name: str = ""):
        self._ws = ws
        self._name = name

    @property
    def closed(self) -> bool:
        return self._ws.closed

    async def recv(self) -> str:
        while True:
            msg = await self._ws.receive()
            if msg.type == aiohttp.WSMsgType.TEXT:
                return msg.data
            if msg.type == aiohttp.WSMsgType.BINARY:
                # OCPP-J uses text frames only; try to be lenient with UTF-8 payloads.
                try:
                    return msg.data.decode("utf-8")
                except UnicodeDecodeError:
                    log.warning("%s: ignoring a binary frame that is not UTF-8", self._name)
                    continue
            if msg.type in (aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG):
                continue
            raise LinkClosed(f"{self._name}: WebSocket closed ({msg.type.name}, {msg.extra!r})")

    async def send(self, text: str) -> None:
        if self._ws.closed:
            raise LinkClosed(f"{self._name}: WebSocket is closed")
        try:
            await self._ws.send_str(text)
        except (ConnectionError, RuntimeError) as exc:
            raise LinkClosed(f"{self._name}: send failed: {exc}") from exc

    async def close(self, code: int = 1000, message: bytes = b"") -> None:
        if not self._ws.closed:
            await self._ws.close(code=code, message=message)


@dataclass(frozen=True)
class FrameCheck:
    """Verdict on one received frame: pass it on (`ok`), or `reply` (may be None = ignore)."""
    ok: bool
    reason: str = ""
    reply: str | None = None


def call_error_frame(unique_id: str, code: str, description: str) -> str:
    return json.dumps([CALL_ERROR, unique_id, code, description, {}], separators=(",", ":"))


def check_frame(raw: str) -> FrameCheck:
    """Screen one text frame. Well-formed frames are `ok`; broken calls whose id can be read get
    a CallError reply (FormationViolation for a broken call, ProtocolError for an unknown message
    type); everything else is ignored with a reason for the log."""
    try:
        frame = json.loads(raw)
    except (ValueError, TypeError):
        match = _CALL_ID_PREFIX.match(raw) if isinstance(raw, str) else None
        if match:
            return FrameCheck(False, "not valid JSON",
                              call_error_frame(match.group(1), "FormationViolation",
                                               "Message is not valid JSON"))
        return FrameCheck(False, "not valid JSON and no call id to answer")
    if not isinstance(frame, list) or not frame:
        return FrameCheck(False, f"not a non-empty JSON array ({type(frame).__name__})")
    kind = frame[0]
    unique_id = frame[1] if len(frame) > 1 and isinstance(frame[1], str) else None
    if isinstance(kind, bool) or kind not in _FRAME_LENGTHS:
        if unique_id is None:
            return FrameCheck(False, f"unknown message type {kind!r} and no id")
        return FrameCheck(False, f"unknown message type {kind!r}",
                          call_error_frame(unique_id, "ProtocolError",
                                           f"Unknown message type id {kind!r}"))
    if unique_id is None:
        return FrameCheck(False, "message without a string unique id")
    if len(frame) != _FRAME_LENGTHS[kind]:
        if kind == CALL:
            return FrameCheck(False, f"call with {len(frame)} elements instead of 4",
                              call_error_frame(unique_id, "FormationViolation",
                                               "A call has exactly 4 elements"))
        return FrameCheck(False, f"response with {len(frame)} elements")
    if kind == CALL:
        if not isinstance(frame[2], str) or not isinstance(frame[3], dict):
            return FrameCheck(False, "call without an action name or object payload",
                              call_error_frame(unique_id, "FormationViolation",
                                               "A call is [2, id, action, {payload}]"))
    return FrameCheck(True)


class GuardedChargePoint(_V16ChargePoint):
    """ocpp.v16.ChargePoint that screens frames with `check_frame` before routing them."""

    async def route_message(self, raw_msg):
        verdict = check_frame(raw_msg)
        if not verdict.ok:
            preview = raw_msg[:200] if isinstance(raw_msg, str) else repr(raw_msg)[:200]
            if verdict.reply is not None:
                log.warning("%s: malformed frame (%s), answering CallError: %s",
                            self.id, verdict.reason, preview)
                await self._send(verdict.reply)
            else:
                log.warning("%s: ignoring malformed frame (%s): %s", self.id, verdict.reason,
                            preview)
            return None
        return await super().route_message(raw_msg)
