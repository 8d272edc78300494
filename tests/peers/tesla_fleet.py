"""A local stand-in for Tesla's Fleet API and its token endpoint (aiohttp, 127.0.0.1, port 0).

It behaves as Tesla documents it, independently of phaeton's code:

- `POST /oauth2/v3/token`, form-encoded, `grant_type=refresh_token` with `client_id` and
  `refresh_token` (a `client_secret`, when sent, must be the app's). Refresh tokens are single
  use: each exchange returns a new access token, `expires_in` and a *new* refresh token. The
  most recently used refresh token stays valid for `grace_s` (Tesla: 24 hours); any other old
  or unknown token is refused with `refusal` (Tesla documents `401 login_required`; many OAuth
  servers answer `400 invalid_grant`). A wrong client is `401 invalid_client`; another grant
  type is `400 unsupported_grant_type`.
- `GET /api/1/vehicles/{vin}` (never wakes the car): `response.state` is `online`, `asleep` or
  `offline` (`reported_state` makes it lag behind the car, as just after it fell asleep).
- `GET /api/1/vehicles/{vin}/vehicle_data?endpoints=charge_state`: the car's charge_state (range
  in miles, timestamp in ms); `408` with "vehicle unavailable: vehicle is offline or asleep"
  unless the car is online.
- `POST /api/1/vehicles/{vin}/wake_up`: an asleep car is online `wake_delay_s` later (an offline
  one stays offline); the answer carries the state at the time of the call.
- Every API call needs `Authorization: Bearer <a live access token>`, else `401`; `rate_limit()`
  makes the next calls answer `429` with `Retry-After`.

Every request is recorded (`requests`) so tests can assert what was called, and how.
"""
from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field

from aiohttp import web

VIN = "5YJ3E7EB0NF000001"
CLIENT_ID = "phaeton-test-client"
UNAVAILABLE = "vehicle unavailable: vehicle is offline or asleep"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]

    @property
    def bearer(self) -> str | None:
        value = self.headers.get("Authorization", "")
        return value[len("Bearer "):] if value.startswith("Bearer ") else None


@dataclass
class TeslaFleetPeer:
    vin: str = VIN
    client_id: str = CLIENT_ID
    client_secret: str | None = None
    access_lifetime_s: float = 28800.0
    grace_s: float = 86400.0
    refusal: tuple[int, str] = (401, "login_required")
    state: str = "online"                       # online / asleep / offline
    reported_state: str | None = None            # what the vehicle endpoint says, when it lags
    wake_delay_s: float = 0.05
    charge_state: dict = field(default_factory=lambda: {
        "battery_level": 57, "usable_battery_level": 56, "battery_range": 180.0,
        "charge_limit_soc": 80, "charging_state": "Stopped",
        "timestamp": 1_700_000_000_123})
    vehicle_data_text: str | None = None         # a raw answer instead of the charge_state
    api_status: int | None = None                # answer every API call with this status
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self):
        self._serial = itertools.count(1)
        self._newest_refresh: str | None = None
        self._recently_used: tuple[str, float] | None = None   # (token, used at)
        self._access: dict[str, float] = {}                    # token -> expires at
        self._wake_at: float | None = None
        self._limited: list[float] = []                         # Retry-After of the next 429s
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.initial_refresh_token = self.authorise()

    # -- driving it from a test ----------------------------------------------------------------

    def authorise(self) -> str:
        """A new authorisation by the owner: a fresh refresh token (the old chain ends)."""
        self._newest_refresh = f"EU_refresh_{next(self._serial)}"
        self._recently_used = None
        return self._newest_refresh

    def expire_access_tokens(self) -> None:
        self._access.clear()

    def rate_limit(self, retry_after_s: float, count: int = 1) -> None:
        self._limited.extend([retry_after_s] * count)

    def calls(self, suffix: str, method: str | None = None) -> list[Request]:
        """Recorded requests whose path ends with `suffix` (e.g. "/token", "/wake_up")."""
        return [r for r in self.requests
                if r.path.endswith(suffix) and (method is None or r.method == method)]

    def paths(self) -> list[str]:
        return [f"{r.method} {r.path.rsplit('/', 1)[-1]}" for r in self.requests]

    @property
    def newest_refresh_token(self) -> str | None:
        return self._newest_refresh

    # -- server --------------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application(middlewares=[self._record])
        app.router.add_post("/oauth2/v3/token", self._token)
        app.router.add_get("/api/1/vehicles/{vin}", self._vehicle)
        app.router.add_get("/api/1/vehicles/{vin}/vehicle_data", self._vehicle_data)
        app.router.add_post("/api/1/vehicles/{vin}/wake_up", self._wake_up)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _record(self, request: web.Request, handler):
        form = {}
        if request.content_type == "application/x-www-form-urlencoded":
            form = {k: str(v) for k, v in (await request.post()).items()}
        self.requests.append(Request(request.method, request.path, dict(request.query), form,
                                     dict(request.headers)))
        return await handler(request)

    # -- token endpoint ------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        if request.content_type != "application/x-www-form-urlencoded":
            return _oauth_error(400, "invalid_request", "expected a form-encoded body")
        form = await request.post()
        if form.get("grant_type") != "refresh_token":
            return _oauth_error(400, "unsupported_grant_type",
                                "Use one of: authorization_code, client_credentials, "
                                "refresh_token")
        if form.get("client_id") != self.client_id or (
                "client_secret" in form and form.get("client_secret") != self.client_secret):
            return _oauth_error(401, "invalid_client",
                                "We don't recognize this client_id and client_secret combination")
        token, now = form.get("refresh_token"), time.time()
        recent = self._recently_used
        if token == self._newest_refresh:
            self._recently_used = (token, now)
        elif not (recent and token == recent[0] and now < recent[1] + self.grace_s):
            status, code = self.refusal
            return _oauth_error(status, code, "The refresh_token is invalid or expired")
        self._newest_refresh = f"EU_refresh_{next(self._serial)}"
        access = f"EU_access_{next(self._serial)}"
        self._access[access] = now + self.access_lifetime_s
        return web.json_response({
            "access_token": access, "refresh_token": self._newest_refresh,
            "id_token": "eyJ.id.token", "expires_in": self.access_lifetime_s,
            "state": "", "token_type": "Bearer"})

    # -- Fleet API -----------------------------------------------------------------------------

    def _refusal(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        token = header[len("Bearer "):] if header.startswith("Bearer ") else ""
        if self._access.get(token, 0.0) <= time.time():
            return _api_error(401, "invalid bearer token")
        if self._limited:
            retry_after = self._limited.pop(0)
            return _api_error(429, "Account or server is rate limited",
                              headers={"Retry-After": f"{retry_after:g}"})
        if self.api_status is not None:
            return _api_error(self.api_status, "upstream internal error")
        if request.match_info["vin"] != self.vin:
            return _api_error(404, "not_found")
        return None

    def _current_state(self) -> str:
        if self._wake_at is not None and time.time() >= self._wake_at:
            self.state, self._wake_at = "online", None
        return self.state

    def _vehicle_object(self, state: str | None = None) -> dict:
        return {"id": 100021, "vehicle_id": 99999, "vin": self.vin, "color": None,
                "access_type": "OWNER", "display_name": "Test", "option_codes": None,
                "granular_access": {"hide_private": False}, "tokens": ["4f993c5b9e2b937b"],
                "state": state or self._current_state(), "in_service": False, "id_s": "100021",
                "calendar_enabled": True, "api_version": 71, "backseat_token": None,
                "backseat_token_updated_at": None}

    async def _vehicle(self, request: web.Request) -> web.Response:
        return self._refusal(request) or web.json_response(
            {"response": self._vehicle_object(self.reported_state)})

    async def _vehicle_data(self, request: web.Request) -> web.Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        if self._current_state() != "online":
            return _api_error(408, UNAVAILABLE)
        if self.vehicle_data_text is not None:
            return web.Response(text=self.vehicle_data_text, content_type="application/json")
        body = self._vehicle_object()
        wanted = request.query.get("endpoints", "").split(";")
        if "charge_state" in wanted:
            body["charge_state"] = dict(self.charge_state)
        return web.json_response({"response": body})

    async def _wake_up(self, request: web.Request) -> web.Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        body = self._vehicle_object()   # the state at the time of the call
        if self.state == "asleep" and self._wake_at is None:
            self._wake_at = time.time() + self.wake_delay_s
        return web.json_response({"response": body})


def _oauth_error(status: int, code: str, description: str) -> web.Response:
    return web.json_response({"error": code, "error_description": description,
                              "referenceID": "test"}, status=status)


def _api_error(status: int, error: str, headers: dict | None = None) -> web.Response:
    return web.Response(status=status, headers=headers, content_type="application/json",
                        text=json.dumps({"response": None, "error": error,
                                         "error_description": ""}))
