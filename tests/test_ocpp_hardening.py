"""OCPP central system against hostile or broken clients: throttled failed logins, garbage
frames answered with CallErrors on a connection that stays open, oversized messages refused,
and a quiet log (no frames at INFO). Real WebSocket server on loopback, real aiohttp clients."""
from __future__ import annotations

import asyncio
import json
import logging
import re

import aiohttp
import pytest
from test_ocpp import Rig, eventually, rig  # noqa: F401  (rig is a fixture)

from phaeton.chargers.ocpp_ws import SUBPROTOCOL

SERVER_LOG = "phaeton.chargers.ocpp_server"
FRAME_TEXT = re.compile(r'\[\s*[234]\s*,\s*"')     # an OCPP-J frame in a log message
TIMEOUT_S = 10.0
JUST_TOO_BIG = 300 * 1024      # over the 256 KiB message limit (ocpp_ws.MAX_FRAME_BYTES)


def basic(user: str, password: str) -> dict:
    return {"Authorization": aiohttp.encode_basic_auth(user, password)}


async def handshake_status(http: aiohttp.ClientSession, url: str, headers: dict) -> int:
    """HTTP status of one WebSocket handshake (101 when accepted; the socket is closed again)."""
    try:
        async with http.ws_connect(url, protocols=(SUBPROTOCOL,), headers=headers,
                                   timeout=aiohttp.ClientWSTimeout(ws_close=TIMEOUT_S)):
            return 101
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status


async def receive_frame(ws) -> list:
    msg = await asyncio.wait_for(ws.receive(), TIMEOUT_S)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)


def http_from(local_host: str) -> aiohttp.ClientSession:
    """A client whose connections come from `local_host` (any 127.x.y.z works on Linux)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(local_host, 0)))


# ---- failed logins -------------------------------------------------------------------------

async def test_wrong_passwords_from_a_loop_are_throttled_and_logged_quietly(rig, caplog):
    charger = await rig.charger("CP1", password="s3cret")
    url = rig.central.url_for("CP1")
    caplog.set_level(logging.INFO)
    async with http_from("127.0.0.1") as attacker:
        statuses = [await handshake_status(attacker, url, basic("CP1", f"guess{i}"))
                    for i in range(200)]
        warnings = [r for r in caplog.records
                    if r.name == SERVER_LOG and r.levelno >= logging.WARNING]
        assert 1 <= len(warnings) <= 3, f"{len(warnings)} warnings"
        assert "wrong password" in warnings[0].getMessage()
        assert statuses[0] == 401 and set(statuses) == {401, 429}
        assert statuses.count(429) >= 190 and statuses[-1] == 429
        # the right password from the attacking address is refused too while it is blocked
        assert await handshake_status(attacker, url, basic("CP1", "s3cret")) == 429

    # the charge point, at another address, gets in with the right password at once
    async with http_from("127.0.0.2") as station, \
            station.ws_connect(url, protocols=(SUBPROTOCOL,), headers=basic("CP1", "s3cret")) \
            as ws:
        await ws.send_str(json.dumps([2, "b1", "BootNotification", {
            "chargePointVendor": "Acme", "chargePointModel": "Box"}]))
        answer = await receive_frame(ws)
        assert answer[:2] == [3, "b1"] and answer[2]["status"] == "Accepted"
        await eventually(lambda: charger.connected, "connected", TIMEOUT_S)


async def test_blocked_address_is_told_when_to_retry(rig):
    await rig.charger("CP1", password="s3cret")
    url = rig.central.url_for("CP1")
    async with http_from("127.0.0.3") as http:
        for i in range(10):
            await handshake_status(http, url, basic("CP1", f"guess{i}"))
        async with http.get(url.replace("ws://", "http://"), headers={
                "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Protocol": SUBPROTOCOL, **basic("CP1", "x")}) as response:
            assert response.status == 429
            assert 0 < int(response.headers["Retry-After"]) <= 300


# ---- garbage frames ------------------------------------------------------------------------

GARBAGE = [   # (frame, the CallError's unique id and code, or None: no answer)
    ("[" * 100_000, ("-1", "FormationViolation")),
    ('{"a":' * 50_000, ("-1", "FormationViolation")),
    ('[2,"deep1","Heartbeat",' + "[" * 100_000, ("deep1", "FormationViolation")),
    ('[2,"deep2","DataTransfer",{"vendorId":"x","data":' + '{"a":' * 40 + "1" + "}" * 40 + "}]",
     ("deep2", "FormationViolation")),
    ("not json at all", ("-1", "FormationViolation")),
    ('[[1], "x", {}]', ("x", "ProtocolError")),
    ('[{"a": 1}, 5, {}]', ("-1", "ProtocolError")),
    ('[2, 5, "Heartbeat", {}]', ("-1", "FormationViolation")),
    ('[2, "s1", "Heartbeat", {}, 5]', ("s1", "FormationViolation")),
    ('[3, "nobody asked", {}]', None),
    ('[2, "v1", "StatusNotification", {"connectorId": "one"}]', ("v1", None)),
]


async def test_garbage_gets_call_errors_and_the_connection_stays_open(rig, caplog):
    charger = await rig.charger("CP1")
    caplog.set_level(logging.INFO)
    async with aiohttp.ClientSession() as http, \
            http.ws_connect(rig.central.url_for("CP1"), protocols=(SUBPROTOCOL,)) as ws:
        for frame, expected in GARBAGE:
            await ws.send_str(frame)
            if expected is None:
                continue
            answer = await receive_frame(ws)
            unique_id, code = expected
            assert answer[:2] == [4, unique_id], (frame[:60], answer)
            assert len(answer) == 5 and (code is None or answer[2] == code)
        # the same connection still works
        await ws.send_str('[2, "hb1", "Heartbeat", {}]')
        answer = await receive_frame(ws)
        assert answer[:2] == [3, "hb1"] and "currentTime" in answer[2]
        assert not ws.closed and charger._session is not None
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    frame_warnings = [r for r in caplog.records if r.name.startswith("phaeton.chargers.ocpp_ws")
                      and r.levelno == logging.WARNING]
    assert len(frame_warnings) <= 3, [r.getMessage()[:100] for r in frame_warnings]


@pytest.mark.parametrize("size", [JUST_TOO_BIG, 10 * 1024 * 1024])
async def test_oversized_message_is_refused_and_the_station_can_come_back(rig, size):
    await rig.charger("CP1")
    url = rig.central.url_for("CP1")
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url, protocols=(SUBPROTOCOL,)) as ws:
            try:
                await ws.send_str('[2,"big","Heartbeat",{"pad":"' + "x" * size + '"}]')
            except (ConnectionError, aiohttp.ClientError):
                pass                 # the server may close while we are still sending
            msg = await asyncio.wait_for(ws.receive(), TIMEOUT_S)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                aiohttp.WSMsgType.ERROR)
            # 1009 "message too big", or 1006 when the server closed while we still sent
            assert ws.close_code in (None, aiohttp.WSCloseCode.MESSAGE_TOO_BIG,
                                     aiohttp.WSCloseCode.ABNORMAL_CLOSURE)
        async with http.ws_connect(url, protocols=(SUBPROTOCOL,)) as ws:
            await ws.send_str('[2, "hb2", "Heartbeat", {}]')
            assert (await receive_frame(ws))[:2] == [3, "hb2"]


# ---- the log -------------------------------------------------------------------------------

async def test_a_normal_session_logs_no_frames_at_info(rig, caplog):
    caplog.set_level(logging.INFO)
    charger, sim = await rig.pair()
    await charger.set_current(10)
    await sim.plug_in()
    await eventually(lambda: charger.transaction_id is not None, "transaction")
    assert sim.offered_current_a() == 10.0
    frames = [r for r in caplog.records
              if r.levelno >= logging.INFO and FRAME_TEXT.search(r.getMessage())]
    assert not frames, [r.getMessage()[:120] for r in frames[:5]]
    assert logging.getLogger("ocpp").getEffectiveLevel() >= logging.WARNING


async def test_frames_are_logged_at_debug_when_asked(rig, caplog):
    caplog.set_level(logging.DEBUG)
    charger, sim = await rig.pair()
    await charger.set_current(8)
    frames = [r.getMessage() for r in caplog.records
              if r.levelno == logging.DEBUG and FRAME_TEXT.search(r.getMessage())
              and r.name == "phaeton.chargers.ocpp_ws.library"]
    assert any("BootNotification" in text for text in frames)
    assert any("SetChargingProfile" in text for text in frames)
