"""OCPP 1.6J central system: the aiohttp WebSocket server charge points connect to.

Endpoint `<path>/<charge point id>`. A connection is accepted only when
- the id belongs to a registered `OcppCharger` (the allow-list; unknown ids get HTTP 404),
- the client offers the `ocpp1.6` subprotocol (else HTTP 400),
- with a password configured for that charger: HTTP Basic auth with user = charge point id
  (security profile 1; else HTTP 401).
Every refusal is logged with its reason. An accepted connection is handed to the charger's
`serve_connection`, which runs it until it closes.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging

from aiohttp import hdrs, web

from .ocpp_ws import SUBPROTOCOL

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


class OcppCentralSystem:
    """Serves any number of OcppChargers; starts with the first attached one, stops with the
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
        self._chargers: dict = {}
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._start_lock = asyncio.Lock()
        self.refusals: list[tuple[str, str]] = []    # (charge point id, reason), latest last

    @property
    def port(self) -> int:
        """The bound port (the real one when configured with 0), once started."""
        return self._port

    @property
    def running(self) -> bool:
        return self._runner is not None

    def url_for(self, charge_point_id: str, host: str = "127.0.0.1") -> str:
        return f"ws://{host}:{self._port}{self.path}/{charge_point_id}"

    async def attach(self, charger) -> None:
        cp_id = charger.config.charge_point_id
        other = self._chargers.get(cp_id)
        if other is not None and other is not charger:
            raise ValueError(f"charge point id {cp_id!r} is already registered")
        self._chargers[cp_id] = charger
        await self.start()       # OSError (port in use...) propagates; the charger retries

    async def detach(self, charger) -> None:
        cp_id = charger.config.charge_point_id
        if self._chargers.get(cp_id) is charger:
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
            for charger in list(self._chargers.values()):
                await charger.disconnect(b"central system stopping")
            await runner.cleanup()

    def _refuse(self, cp_id: str, status: int, reason: str, peer) -> web.Response:
        log.warning("OCPP: refused %r from %s: %s", cp_id, peer, reason)
        self.refusals.append((cp_id, reason))
        del self.refusals[:-50]
        headers = {}
        if status == 401:
            headers[hdrs.WWW_AUTHENTICATE] = 'Basic realm="OCPP"'
        return web.Response(status=status, text=reason, headers=headers)

    def _check(self, request: web.Request, cp_id: str, charger) -> tuple[int, str] | None:
        """(HTTP status, reason) to refuse the handshake, or None to accept it."""
        if charger is None:
            return 404, f"unknown charge point id {cp_id!r}"
        offered = [p.strip() for p in request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL, "")
                   .split(",") if p.strip()]
        if SUBPROTOCOL not in offered:
            return 400, f"subprotocol {SUBPROTOCOL} required, offered {offered or 'none'}"
        password = charger.config.password
        if password is not None:
            header = request.headers.get(hdrs.AUTHORIZATION)
            if not header:
                return 401, "HTTP Basic authentication required"
            try:
                user, given = decode_basic_auth(header)
            except ValueError as exc:
                return 401, f"bad Authorization header: {exc}"
            if user != cp_id:
                return 401, f"Basic auth user {user!r} is not the charge point id"
            if not hmac.compare_digest(given.encode(), password.encode()):
                return 401, "wrong password"
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        cp_id = request.match_info["charge_point_id"]
        charger = self._chargers.get(cp_id)
        refusal = self._check(request, cp_id, charger)
        if refusal is not None:
            return self._refuse(cp_id, refusal[0], refusal[1], request.remote)
        ws = web.WebSocketResponse(protocols=(SUBPROTOCOL,), autoping=True,
                                   heartbeat=self.ping_interval_s, max_msg_size=1 << 20)
        try:
            await ws.prepare(request)
        except Exception as exc:  # not a valid WebSocket upgrade
            return self._refuse(cp_id, 400, f"WebSocket handshake failed: {exc}",
                                request.remote)
        await charger.serve_connection(ws, str(request.remote))
        return ws
