"""The web UI's port is open from start-up; the web stack is loaded when someone first uses it.

aiohttp's server brings its HTTP client with it (about 16 MB of resident memory here, CA
certificates in two SSL contexts, a third of a second of imports, several seconds on a Cerbo
GX). Most GX owners look at the GX touchscreen or VRM and open the web UI rarely, so the
service binds the port itself at start-up (a port in use is reported at once, as before) and
only watches the listening sockets. The first incoming connection imports aiohttp, builds the
app and hands the same sockets to aiohttp (`web.SockSite`); that connection waits in the
kernel's backlog meanwhile and is then served like any other. From then on aiohttp serves
until the service stops (Python cannot unload it).

    listener = OnDemandWebServer(host, port, build_runner)
    listener.listen()             # OSError when the port cannot be bound
    ...
    await listener.close()        # stops aiohttp if it was started, else closes the sockets
"""
from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("phaeton.web")

BACKLOG = 128


def bind_sockets(host: str, port: int) -> list[socket.socket]:
    """Listening TCP sockets for `host` (a name may give several addresses, as aiohttp binds
    them all), non-blocking; OSError when one cannot be bound (every socket closed)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    seen = set()
    try:
        for family, kind, proto, _name, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class OnDemandWebServer:
    """See the module docstring. `build_runner()` imports the web stack and returns a set-up
    `aiohttp.web.AppRunner`; `serve(runner, sock)` starts a site on an already bound socket."""

    def __init__(self, host: str, port: int,
                 build_runner: Callable[[], Awaitable[Any]],
                 serve: Callable[[Any, socket.socket], Awaitable[None]]):
        self.host = host
        self.port = port
        self._build_runner = build_runner
        self._serve = serve
        self._sockets: list[socket.socket] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._starting: asyncio.Task | None = None
        self.runner: Any = None       # aiohttp's AppRunner once the first visitor came

    @property
    def loaded(self) -> bool:
        """True once the web stack serves (after the first connection)."""
        return self.runner is not None

    def listen(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._sockets = bind_sockets(self.host, self.port)
        for sock in self._sockets:
            self._loop.add_reader(sock.fileno(), self._first_connection)

    def _first_connection(self) -> None:
        self._stop_watching()
        if self._starting is None:
            self._starting = self._loop.create_task(self._load(), name="phaeton-web-load")

    def _stop_watching(self) -> None:
        if self._loop is None:
            return
        for sock in self._sockets:
            if sock.fileno() >= 0:
                self._loop.remove_reader(sock.fileno())

    async def _load(self) -> None:
        try:
            runner = await self._build_runner()
            for sock in self._sockets:
                await self._serve(runner, sock)
        except Exception:  # noqa: BLE001 - the service carries on without its web UI
            log.exception("the web UI could not be started; the service carries on without it")
            for sock in self._sockets:
                sock.close()
            return
        self.runner = runner
        log.info("web UI loaded at its first visit")

    async def close(self) -> None:
        self._stop_watching()
        if self._starting is not None:
            await asyncio.gather(self._starting, return_exceptions=True)
        if self.runner is not None:
            await self.runner.cleanup()
        for sock in self._sockets:
            sock.close()
        self._sockets = []
