"""OCPP abuse: a raw WebSocket client that sends what a broken or hostile charge point might,
and a brute-force password loop. Loopback only; every loop bounded in count and time."""
from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

from phaeton.chargers.ocpp_ws import SUBPROTOCOL

ANSWER_S = 5.0

# (frame, the call id a CallError must answer, or None when nothing can be answered)
GARBAGE = [
    ("this is not json", None),
    ("", None),
    ("[", None),
    ("null", None),
    ('{"an": "object"}', None),
    ("[]", None),
    ("[2]", None),
    ('[2, 1, "Heartbeat", {}]', None),                       # the id is not a string
    ('[2, "g1", "Heartbeat"]', "g1"),                        # a call with 3 elements
    ('[2, "g2", "Heartbeat", {}', "g2"),                     # broken JSON, id readable
    ('[9, "g3", {}]', "g3"),                                 # unknown message type
    ('[2, "g4", "BrewCoffee", {}]', "g4"),                   # unknown action
    ('[2, "g5", "StatusNotification", {"connectorId": "one"}]', "g5"),
    ('[2, "g6", "Heartbeat", []]', "g6"),                    # payload not an object
    ('[2, "g7", 42, {}]', "g7"),                             # action not a string
    ('[2, "g8", "Heartbeat", {"x": "' + "\u00e9\U0001f600" * 1000 + '"}]', "g8"),
    ('[3, "nobody-asked", {}]', None),                        # an answer to nothing
    ('[4, "nobody-asked", "InternalError", "", {}]', None),
]


def deep_call(call_id: str, depth: int = 10_000, brackets: str = "{}") -> str:
    """A Heartbeat call whose payload is nested `depth` levels deep (about 6 bytes a level)."""
    opening, closing = brackets
    inner = (('{"a":' * depth) + "1" + ("}" * depth) if opening == "{"
             else ("[" * depth) + ("]" * depth))
    return f'[2, "{call_id}", "Heartbeat", {{"x": {inner}}}]'


class RawChargePoint:
    """`async with RawChargePoint(url) as cp:` one WebSocket with the OCPP subprotocol."""

    def __init__(self, url: str, password: str | None = None, local_host: str = "127.0.0.1"):
        self.url = url
        self.headers = {}
        if password is not None:
            cp_id = url.rstrip("/").rsplit("/", 1)[-1]
            self.headers["Authorization"] = aiohttp.encode_basic_auth(cp_id, password)
        self.local_host = local_host
        self.http: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def __aenter__(self) -> RawChargePoint:
        connector = aiohttp.TCPConnector(local_addr=(self.local_host, 0))
        self.http = aiohttp.ClientSession(connector=connector)
        try:
            self.ws = await asyncio.wait_for(self.http.ws_connect(
                self.url, protocols=(SUBPROTOCOL,), headers=self.headers, autoping=True,
                max_msg_size=0), ANSWER_S)
        except BaseException:
            await self.http.close()
            raise
        return self

    async def __aexit__(self, *_exc) -> None:
        if self.ws is not None:
            await self.ws.close()
        await self.http.close()

    async def answer_to(self, call_id: str, timeout_s: float = ANSWER_S) -> list | None:
        """The CALLRESULT/CALLERROR frame for `call_id` (other frames are skipped); None when
        the connection closed first; TimeoutError when nothing came."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            left = deadline - asyncio.get_running_loop().time()
            message = await asyncio.wait_for(self.ws.receive(), max(left, 0.001))
            if message.type != aiohttp.WSMsgType.TEXT:
                if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                    aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR):
                    return None
                continue
            try:
                frame = json.loads(message.data)
            except ValueError:
                continue
            if isinstance(frame, list) and len(frame) >= 2 and frame[0] in (3, 4) \
                    and frame[1] == call_id:
                return frame

    async def send(self, text: str | bytes) -> None:
        if isinstance(text, bytes):
            await self.ws.send_bytes(text)
        else:
            await self.ws.send_str(text)

    async def heartbeat(self, call_id: str = "hb") -> list | None:
        await self.send(json.dumps([2, call_id, "Heartbeat", {}]))
        return await self.answer_to(call_id)

    @property
    def closed(self) -> bool:
        return self.ws is None or self.ws.closed


@dataclass
class BruteForce:
    """What a wrong-password loop got."""

    attempts: int = 0
    statuses: Counter = field(default_factory=Counter)   # HTTP status (or "timeout", "error")
    real_s: float = 0.0

    @property
    def upgraded(self) -> int:
        return self.statuses.get(101, 0)


async def brute_force(url: str, attempts: int, budget_s: float,
                      local_host: str = "127.0.0.2") -> BruteForce:
    """Wrong passwords one after the other (each waits for its answer, at most ANSWER_S), until
    `attempts` were made or `budget_s` real seconds have passed."""
    result = BruteForce()
    started = time.monotonic()
    connector = aiohttp.TCPConnector(local_addr=(local_host, 0), force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:
        while result.attempts < attempts and time.monotonic() - started < budget_s:
            result.attempts += 1
            headers = {"Authorization": aiohttp.encode_basic_auth(
                url.rstrip("/").rsplit("/", 1)[-1], f"guess-{result.attempts}")}
            try:
                await asyncio.wait_for(_one_attempt(http, url, headers), ANSWER_S)
                result.statuses[101] += 1
            except aiohttp.WSServerHandshakeError as exc:
                result.statuses[exc.status] += 1
            except asyncio.TimeoutError:
                result.statuses["timeout"] += 1
            except (aiohttp.ClientError, OSError):
                result.statuses["error"] += 1
    result.real_s = time.monotonic() - started
    return result


async def _one_attempt(http: aiohttp.ClientSession, url: str, headers: dict) -> None:
    async with http.ws_connect(url, protocols=(SUBPROTOCOL,), headers=headers) as ws:
        await ws.close()
