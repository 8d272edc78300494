"""The OCPP-J transport shared by the central system and the simulated charge point.

Three jobs, no protocol logic (and one package setting, see ASYNC_VALIDATION below):
- `WebSocketLink` adapts an aiohttp WebSocket (server or client side) to the async `recv()` /
  `send(str)` pair the `ocpp` package's ChargePoint wants.
- `check_frame()` screens a received text frame before the `ocpp` package sees it: at most
  MAX_FRAME_CHARS, valid JSON nested at most MAX_NESTING deep, the OCPP-J shape. A broken
  frame gets a CallError where the spec wants one: FormationViolation (ProtocolError for an
  unknown message type) with the call's unique id, or with "-1" when no id can be read (OCPP-J
  2.0.1 part 4 4.2.3; OCPP-J 1.6 does not say). A broken CallResult / CallError is never
  answered. `GuardedChargePoint.route_message` sends that reply and keeps the connection.
- `LibraryLog`: what the `ocpp` package logs goes to our logger `LIBRARY_LOG`, frames (INFO in
  the package) at DEBUG, a CallError the package answers as one WARNING line (not a traceback),
  and warnings at most once a minute per kind and connection. The package's own logger `ocpp`
  is set to WARNING unless configured otherwise.
"""
from __future__ import annotations

import json
import logging
import re
import sys
from dataclasses import dataclass

import aiohttp
import ocpp.messages
from ocpp.exceptions import OCPPError
from ocpp.v16 import ChargePoint as _V16ChargePoint

from .ocpp_limits import ReportLimiter

log = logging.getLogger(__name__)
LIBRARY_LOG = logging.getLogger(__name__ + ".library")   # the ocpp package's messages

# The package logs every frame at INFO on its logger "ocpp". Our sessions hand it LibraryLog;
# anything else using the package stays quiet below WARNING unless someone configured "ocpp".
if logging.getLogger("ocpp").level == logging.NOTSET:
    logging.getLogger("ocpp").setLevel(logging.WARNING)

# The ocpp package validates every payload in the default thread pool unless told otherwise.
# OCPP payloads are small; validating inline keeps the service on one thread (design: no
# threads) and halves set_current -> profile accepted latency on loopback (benchmarks/
# charger_bench.py --protocol ocpp: median 3.5 -> 1.5..2.3 ms, p99 13.6 -> 3.5..7.4 ms).
ocpp.messages.ASYNC_VALIDATION = False

SUBPROTOCOL = "ocpp1.6"

# The largest WebSocket message accepted (aiohttp refuses a bigger one from its frame header,
# before buffering it, and closes with 1009). OCPP 1.6 sets no limit; a MeterValues batch or a
# StopTransaction with transactionData can reach tens of kB, so this leaves room.
MAX_FRAME_BYTES = 256 * 1024
MAX_FRAME_CHARS = MAX_FRAME_BYTES
# The deepest OCPP 1.6 frame (SetChargingProfile, MeterValues) nests 6 levels.
MAX_NESTING = 16
NO_ID = "-1"                  # the unique id of a CallError answering a frame without one
LOGGED_CHARS = 2000           # frames and arguments longer than this are cut in the log

CALL, CALL_RESULT, CALL_ERROR = 2, 3, 4
_FRAME_LENGTHS = {CALL: 4, CALL_RESULT: 3, CALL_ERROR: 5}
# A call id at the start of text that is not valid JSON: `[2, "abc", ...`
_CALL_ID_PREFIX = re.compile(r'^\s*\[\s*2\s*,\s*"([^"\\]{1,36})"')
# The start of a CallResult / CallError (never answered, even when broken)
_RESPONSE_PREFIX = re.compile(r'^\s*\[\s*[34]\s*,')


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


def shorten(value, limit: int = LOGGED_CHARS) -> str:
    """str(value), cut to `limit` characters (saying how long it was)."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def nesting_depth(value, limit: int) -> int:
    """How deep lists and dicts nest in `value` (a scalar is 0); stops counting above `limit`.
    Iterative: never recurses, whatever the input."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            break
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _message_type(frame) -> int | None:
    """The MessageTypeId of a parsed frame, None if it has none (bools are not numbers)."""
    if isinstance(frame, list) and frame and type(frame[0]) is int:
        return frame[0]
    return None


def _answer_id_in_frame(frame) -> str | None:
    """The unique id a CallError about this parsed frame goes to: the frame's own if it has a
    string one, else "-1"; None for a CallResult / CallError (never answered)."""
    kind = _message_type(frame)
    if kind in (CALL_RESULT, CALL_ERROR):
        return None
    if isinstance(frame, list) and len(frame) > 1 and isinstance(frame[1], str):
        return frame[1]
    return NO_ID


def _answer_id_in_text(raw: str) -> str | None:
    """Like `_answer_id_in_frame`, for text that could not be parsed."""
    if _RESPONSE_PREFIX.match(raw):
        return None
    match = _CALL_ID_PREFIX.match(raw)
    return match.group(1) if match else NO_ID


def _refuse(answer_id: str | None, reason: str, code: str = "FormationViolation") -> FrameCheck:
    if answer_id is None:
        return FrameCheck(False, reason)
    return FrameCheck(False, reason, call_error_frame(answer_id, code, reason))


def _parse(raw: str):
    """(frame, None) or (None, FrameCheck refusing the text)."""
    if len(raw) > MAX_FRAME_CHARS:
        return None, _refuse(_answer_id_in_text(raw),
                             f"frame longer than {MAX_FRAME_CHARS} characters")
    try:
        frame = json.loads(raw)
    except RecursionError:
        return None, _refuse(_answer_id_in_text(raw), "JSON nested too deeply")
    except ValueError:
        return None, _refuse(_answer_id_in_text(raw), "not valid JSON")
    if nesting_depth(frame, MAX_NESTING) > MAX_NESTING:
        return None, _refuse(_answer_id_in_frame(frame),
                             f"JSON nested deeper than {MAX_NESTING} levels")
    return frame, None


def _check_shape(frame) -> FrameCheck:
    """The OCPP-J shape of a parsed frame."""
    answer_id = _answer_id_in_frame(frame)
    if not isinstance(frame, list) or not frame:
        return _refuse(answer_id, f"not a non-empty JSON array ({type(frame).__name__})")
    kind = _message_type(frame)
    if kind not in _FRAME_LENGTHS:
        return _refuse(answer_id, f"unknown message type {shorten(repr(frame[0]), 40)}",
                       "ProtocolError")
    if len(frame) < 2 or not isinstance(frame[1], str):
        return _refuse(answer_id, "message without a string unique id")
    if len(frame) != _FRAME_LENGTHS[kind]:
        what = "a call" if kind == CALL else "an answer"
        return _refuse(answer_id, f"{what} with {len(frame)} elements instead of "
                                  f"{_FRAME_LENGTHS[kind]}")
    if kind == CALL and (not isinstance(frame[2], str) or not isinstance(frame[3], dict)):
        return _refuse(answer_id, "a call is [2, id, action, {payload}]")
    return FrameCheck(True)


def check_frame(raw) -> FrameCheck:
    """Screen one received frame. Well-formed ones are `ok`; a broken call gets a CallError
    reply (FormationViolation, ProtocolError for an unknown message type) with its unique id,
    or "-1" when none can be read; a broken answer is ignored. Never raises."""
    if not isinstance(raw, str):
        return FrameCheck(False, f"not text ({type(raw).__name__})")
    frame, refusal = _parse(raw)
    if refusal is not None:
        return refusal
    return _check_shape(frame)


class LibraryLog(logging.LoggerAdapter):
    """The logger a GuardedChargePoint hands the `ocpp` package (see the module docstring)."""

    def __init__(self, subject: str, reports: ReportLimiter):
        super().__init__(LIBRARY_LOG, {})
        self.subject = subject
        self.reports = reports

    def log(self, level, msg, *args, exc_info=None, **kwargs):
        if level < logging.WARNING:             # frames: "%s: receive message %s", "send"
            if self.logger.isEnabledFor(logging.DEBUG):
                self.logger.debug(msg, *(shorten(arg) for arg in args))
            return
        args = tuple(shorten(arg) for arg in args)
        error = sys.exc_info()[1] if exc_info is True else exc_info
        if exc_info and not isinstance(error, OCPPError):
            self.logger.log(level, msg, *args, exc_info=exc_info)   # a bug: keep the traceback
            return
        text = _format(msg, args)
        if isinstance(error, OCPPError):        # a CallError the package answered
            level = logging.WARNING
            text = f"{text}: {type(error).__name__}: {shorten(error, 300)}"
        line = self.reports.event(("library", msg), f"similar messages about {self.subject}",
                                  text)
        if line is not None:
            self.logger.log(level, "%s", line)


def _format(msg, args) -> str:
    try:
        return str(msg) % args if args else str(msg)
    except (TypeError, ValueError):
        return " ".join([str(msg), *args])


class GuardedChargePoint(_V16ChargePoint):
    """ocpp.v16.ChargePoint that screens frames with `check_frame` before routing them, never
    lets one frame end the connection, and logs through `LibraryLog` (rate limited)."""

    def __init__(self, id, connection, response_timeout=30):
        self.reports = ReportLimiter()
        super().__init__(id, connection, response_timeout, logger=LibraryLog(id, self.reports))

    async def route_message(self, raw_msg):
        self.flush_reports(force=False)
        verdict = check_frame(raw_msg)
        if not verdict.ok:
            await self._answer_malformed(raw_msg, verdict)
            return None
        try:
            return await super().route_message(raw_msg)
        except ConnectionError:          # LinkClosed: the connection is gone, end the loop
            raise
        except Exception:  # a fault in the ocpp package or a handler: this frame only
            log.exception("%s: handling a frame failed: %s", self.id, shorten(raw_msg, 200))
            return None

    async def _answer_malformed(self, raw_msg, verdict: FrameCheck) -> None:
        preview = shorten(raw_msg if isinstance(raw_msg, str) else repr(raw_msg), 200)
        action = "answering CallError" if verdict.reply is not None else "ignoring it"
        line = self.reports.event(("frame",), f"malformed frames from {self.id}",
                                  f"{self.id}: malformed frame ({verdict.reason}), {action}: "
                                  f"{preview}")
        if line is not None:
            log.warning("%s", line)
        if verdict.reply is not None:
            await self._send(verdict.reply)

    def flush_reports(self, force: bool = True) -> None:
        """Log the summaries of suppressed warnings that are due (all of them with `force`,
        e.g. when the connection ends)."""
        for line in self.reports.due(force=force):
            log.warning("%s", line)
