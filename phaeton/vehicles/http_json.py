"""The car's SoC from any HTTP URL that answers JSON: Home Assistant's REST API
(`/api/states/sensor.car_battery`, field `state`, time `last_updated`, a bearer token header),
TeslaMate's API, a car maker's bridge, a script on the LAN.

    vehicles[].soc: {source: http, http: {url, field, range_field, time_field, bearer_token,
                     interval_s, timeout_s}}

Polled every `interval_s` (at least MIN_INTERVAL_S); a failed poll keeps the last good reading,
says why (`problem`) and tries again after a back-off that doubles up to the interval.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from phaeton.vehicles.base import SocReading, SourceError, json_reading

log = logging.getLogger("phaeton.vehicles")

MIN_INTERVAL_S = 30.0
FIRST_RETRY_S = 10.0
MAX_BODY = 1 << 20


def parse_document(text: str, cfg: Mapping[str, Any], received_s: float, url: str) -> SocReading:
    """An answer's body as a reading (SourceError when it is not one)."""
    where = f"HTTP {url}"
    return json_reading(text, cfg, received_s, where, "http")


class HttpJsonSource:
    kind = "http"

    def __init__(self, cfg: Mapping[str, Any], name: str, *,
                 clock: Callable[[], float] = time.time):
        self.cfg, self.name, self.clock = cfg, name, clock
        self.url = str(cfg["url"])
        self.interval_s = max(MIN_INTERVAL_S, float(cfg.get("interval_s") or 300.0))
        self.timeout_s = float(cfg.get("timeout_s") or 10.0)
        self._latest: SocReading | None = None
        self._problem: str | None = None
        self._task: asyncio.Task | None = None
        self._session = None

    async def poll_once(self) -> SocReading | None:
        """One request; the new reading, or None (then `problem` says why)."""
        import aiohttp                          # only when an HTTP source is configured
        if self._session is None:
            self._session = aiohttp.ClientSession()
        token = self.cfg.get("bearer_token")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            async with self._session.get(self.url, headers=headers,
                                         timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as r:
                body = await r.content.read(MAX_BODY + 1)
                if r.status != 200:
                    raise SourceError(f"HTTP {self.url}: answered {r.status} {r.reason or ''}"
                                      .rstrip())
                if len(body) > MAX_BODY:
                    raise SourceError(f"HTTP {self.url}: the answer is over 1 MB")
            reading = parse_document(body.decode("utf-8", "replace"), self.cfg, self.clock(),
                                     self.url)
        except SourceError as exc:
            return self._failed(str(exc))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return self._failed(f"HTTP {self.url}: {exc.__class__.__name__} {exc}".rstrip())
        self._latest, self._problem = reading, None
        return reading

    def _failed(self, problem: str) -> None:
        if problem != self._problem:
            log.warning("car %s: %s", self.name, problem)
        self._problem = problem
        return None

    async def _loop(self) -> None:
        retry_s = FIRST_RETRY_S
        while True:
            ok = await self.poll_once() is not None
            wait_s = self.interval_s if ok else min(retry_s, self.interval_s)
            retry_s = FIRST_RETRY_S if ok else min(retry_s * 2, self.interval_s)
            await asyncio.sleep(wait_s)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def latest(self) -> SocReading | None:
        return self._latest

    @property
    def problem(self) -> str | None:
        return self._problem
