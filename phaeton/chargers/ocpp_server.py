"""OCPP 1.6J central system: the aiohttp WebSocket server charge points connect to.

Endpoint `<path>/<charge point id>`. What is registered per charge point id is the object that
serves its connection (`ocpp._ChargePoint`: one WebSocket shared by the `OcppCharger`s of its
connectors); it has `charge_point_id`, `password`, `serve_connection(ws, peer)` and
`disconnect(reason)`. A connection is accepted only when
- the id is registered (the allow-list; unknown ids get HTTP 404),
- the client offers the `ocpp1.6` subprotocol (else HTTP 400),
- with a password configured for that charger: HTTP Basic auth with user = charge point id
  (security profile 1; else HTTP 401). Failed logins are throttled per client address
  (`ocpp_limits.LoginThrottle`): a blocked address gets HTTP 429 with Retry-After at once,
  without its credentials being read.
Refusals are logged per client address at most once a minute (`ocpp_limits.ReportLimiter`):
the first in full, then "N failed logins from <address> in the last 60 s". An accepted
connection is handed to the registered `serve_connection`, which runs it until it closes.

One central system serves any number of charge points (several chargers on one GX); chargers
built from the config share the one for their host, port and path (`ocpp.central_system_for`).
`claim()` reserves a (charge point id, connector) for one charger, so two config entries for the
same connector are refused when built.
WebSocket messages are limited to `MAX_FRAME_BYTES` (bigger ones close the connection, 1009).
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import gc
import hmac
import logging
import math
import weakref
from dataclasses import dataclass

from aiohttp import hdrs, web

from .ocpp_limits import LoginThrottle, ReportLimiter
from .ocpp_ws import MAX_FRAME_BYTES, SUBPROTOCOL

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 5.0   # stop(): how long open connections get to finish


def decode_basic_auth(header: str) -> tuple[str, str]:
    """(user, password) from an `Authorization: Basic ...` header; ValueError if it is not one."""
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise ValueError(f"not Basic authentication ({scheme or 'empty'})")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("credentials are not valid base64 UTF-8") from None
    user, colon, password = decoded.partition(":")
    if not colon:
        raise ValueError("credentials have no ':' between user and password")
    return user, password


@dataclass(frozen=True)
class Refusal:
    """Why a handshake is refused: the HTTP status and the reason (told the client and logged)."""
    status: int
    reason: str
    retry_after_s: int | None = None      # 429: when the address may try again

    @property
    def login(self) -> bool:
        return self.status in (401, 429)


class OcppCentralSystem:
    """Serves any number of charge points; starts with the first attached one, stops with the
    last detached one (or `stop()`)."""

    def __init__(self, host: str = "0.0.0.0", port: int = 8887, path: str = "/ocpp",
                 ping_interval_s: float | None = 30.0):
        """`ping_interval_s`: WebSocket pings; a charge point that does not answer one within
        the interval is disconnected (half-open TCP). None turns pings off."""
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be 0..65535, got {port!r}")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        self.ping_interval_s = ping_interval_s
        self.host = host
        self.path = path.rstrip("/")
        self._port = port
        self._chargers: dict = {}       # charge point id -> what serves its connection
        self._claims: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._start_lock = asyncio.Lock()
        self.refusals: list[tuple[str, str]] = []    # (charge point id, reason), latest last
        self.logins = LoginThrottle()
        self.reports = ReportLimiter()
        self._report_timer: asyncio.TimerHandle | None = None

    @property
    def port(self) -> int:
        """The bound port (the real one when configured with 0), once started."""
        return self._port

    @property
    def running(self) -> bool:
        return self._runner is not None

    def url_for(self, charge_point_id: str, host: str = "127.0.0.1") -> str:
        return f"ws://{host}:{self._port}{self.path}/{charge_point_id}"

    @property
    def where(self) -> str:
        return f"{self.host}:{self._port}{self.path}"

    def registered(self, charge_point_id: str):
        """What serves `charge_point_id`'s connection, None when nothing does."""
        return self._chargers.get(charge_point_id)

    def claim(self, charge_point_id: str, connector_id: int, owner) -> None:
        """Reserve one connector of a charge point for `owner` (held weakly: an owner that is
        gone frees it; `release` frees it at once). ValueError when another owner holds it."""
        key = (charge_point_id, connector_id)
        other = self._claims.get(key)
        if other is not None and other is not owner:
            del other
            gc.collect()          # a charger nobody holds any more (kept by a cycle) is gone
            other = self._claims.get(key)
        if other is not None and other is not owner:
            raise ValueError(f"charge point id {charge_point_id!r} connector {connector_id} is "
                             f"already registered on the OCPP central system {self.where}: "
                             f"two charger entries with the same charge_point_id and "
                             f"connector_id")
        self._claims[key] = owner

    @property
    def in_use(self) -> bool:
        """Listening, serving a charge point, or holding a connector for a built charger."""
        return self.running or bool(self._chargers) or len(self._claims) > 0

    def release(self, charge_point_id: str, connector_id: int, owner) -> None:
        key = (charge_point_id, connector_id)
        if self._claims.get(key) is owner:
            del self._claims[key]

    async def attach(self, station) -> None:
        """Serve `station` (its `charge_point_id`) and start listening if not yet."""
        cp_id = station.charge_point_id
        other = self._chargers.get(cp_id)
        if other is not None and other is not station:
            raise ValueError(f"charge point id {cp_id!r} is already registered")
        self._chargers[cp_id] = station
        await self.start()       # OSError (port in use...) propagates; the charger retries

    async def detach(self, station) -> None:
        """Stop serving `station`; the last one stops the central system."""
        cp_id = station.charge_point_id
        if self._chargers.get(cp_id) is station:
            del self._chargers[cp_id]
        if not self._chargers:
            await self.stop()

    async def start(self) -> None:
        async with self._start_lock:
            if self._runner is not None:
                return
            app = web.Application()
            app.router.add_get(self.path + "/{charge_point_id}", self._handle)
            runner = web.AppRunner(app, handle_signals=False, access_log=None,
                                   shutdown_timeout=SHUTDOWN_TIMEOUT_S)
            await runner.setup()
            site = web.TCPSite(runner, self.host, self._port)
            try:
                await site.start()
            except BaseException:
                await runner.cleanup()
                raise
            self._runner, self._site = runner, site
            sockets = site._server.sockets if site._server else []
            if sockets:
                self._port = sockets[0].getsockname()[1]
            log.info("OCPP central system listening on ws://%s:%d%s/<id>", self.host,
                     self._port, self.path)

    async def stop(self) -> None:
        """Close every charge point connection and stop listening."""
        async with self._start_lock:
            runner, self._runner, self._site = self._runner, None, None
            if runner is None:
                return
            for station in list(self._chargers.values()):
                await station.disconnect(b"central system stopping")
            await runner.cleanup()
            self._flush_reports(force=True)

    def _refuse(self, cp_id: str, refusal: Refusal, peer: str) -> web.Response:
        self._report(peer, refusal.login, f"refused {cp_id!r} from {peer}: {refusal.reason}")
        self.refusals.append((cp_id, refusal.reason))
        del self.refusals[:-50]
        headers = {}
        if refusal.status == 401:
            headers[hdrs.WWW_AUTHENTICATE] = 'Basic realm="OCPP"'
        if refusal.retry_after_s is not None:
            headers[hdrs.RETRY_AFTER] = str(refusal.retry_after_s)
        return web.Response(status=refusal.status, text=refusal.reason, headers=headers)

    # ---- the refusal log: per address at most one line a minute ----------------------------
    def _report(self, peer: str, login: bool, text: str) -> None:
        noun = f"failed logins from {peer}" if login else f"refused connections from {peer}"
        line = self.reports.event((peer, login), noun, text)
        if line is not None:
            log.warning("OCPP: %s", line)
        self._schedule_reports()

    def _schedule_reports(self) -> None:
        if self._report_timer is not None:
            return
        delay = self.reports.next_due_in()
        if delay is not None:
            self._report_timer = asyncio.get_running_loop().call_later(
                delay + 0.01, self._flush_reports)

    def _flush_reports(self, force: bool = False) -> None:
        if self._report_timer is not None:
            self._report_timer.cancel()
            self._report_timer = None
        for line in self.reports.due(force=force):
            log.warning("OCPP: %s", line)
        if not force:
            self._schedule_reports()

    # ---- handshake checks ------------------------------------------------------------------
    def _check(self, request: web.Request, cp_id: str, charger, peer: str) -> Refusal | None:
        """Why to refuse the handshake, or None to accept it."""
        if charger is None:
            return Refusal(404, f"unknown charge point id {cp_id!r}")
        offered = [p.strip() for p in request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL, "")
                   .split(",") if p.strip()]
        if SUBPROTOCOL not in offered:
            return Refusal(400, f"subprotocol {SUBPROTOCOL} required, "
                                f"offered {offered or 'none'}")
        password = charger.password
        if password is None:
            return None
        return self._check_login(request.headers.get(hdrs.AUTHORIZATION), cp_id, password, peer)

    def _check_login(self, header: str | None, cp_id: str, password: str,
                     peer: str) -> Refusal | None:
        wait_s = self.logins.blocked_for(peer)
        if wait_s > 0:        # answered at once: the credentials are not even read
            retry = math.ceil(wait_s)
            return Refusal(429, f"too many failed logins, try again in {retry} s", retry)
        if not header:        # not a guess (a client may try without first): not counted
            return Refusal(401, "HTTP Basic authentication required")
        try:
            user, given = decode_basic_auth(header)
        except ValueError as exc:
            return self._failed_login(peer, f"bad Authorization header: {exc}")
        if user != cp_id:
            return self._failed_login(peer, f"Basic auth user {user!r} is not the charge "
                                            "point id")
        if not hmac.compare_digest(given.encode(), password.encode()):
            return self._failed_login(peer, "wrong password")
        self.logins.succeeded(peer)
        return None

    def _failed_login(self, peer: str, reason: str) -> Refusal:
        blocked_s = self.logins.failed(peer)
        if blocked_s:
            reason = f"{reason}; logins from {peer} refused for {blocked_s:.0f} s"
        return Refusal(401, reason)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        cp_id = request.match_info["charge_point_id"]
        charger = self._chargers.get(cp_id)
        peer = str(request.remote or "unknown")   # the TCP peer; forwarded-for is not trusted
        refusal = self._check(request, cp_id, charger, peer)
        if refusal is not None:
            return self._refuse(cp_id, refusal, peer)
        ws = web.WebSocketResponse(protocols=(SUBPROTOCOL,), autoping=True,
                                   heartbeat=self.ping_interval_s, max_msg_size=MAX_FRAME_BYTES)
        try:
            await ws.prepare(request)
        except Exception as exc:  # not a valid WebSocket upgrade
            return self._refuse(cp_id, Refusal(400, f"WebSocket handshake failed: {exc}"), peer)
        await charger.serve_connection(ws, peer)
        return ws
