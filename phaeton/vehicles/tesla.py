"""A Tesla's state of charge from Tesla's Fleet API.

The owner authorises phaeton once (OAuth 2 authorization-code flow with the developer app's
`client_id`, scope `offline_access vehicle_device_data`) and puts the `client_id` and the
resulting refresh token in the config. From then on:

- the refresh token is exchanged at the token endpoint (form-encoded `grant_type=refresh_token`)
  for an access token that lasts `expires_in` seconds. Tesla's refresh tokens are single use:
  every exchange returns a new one, which is written to the state file (atomically, mode 0600)
  *before* the access token is used, and is the one used next time, also after a restart. The
  state file records which config token its chain started from: when the owner pastes a new
  refresh token into the config, the config wins; otherwise the stored (newer) token does.
- `GET /api/1/vehicles/{vin}` tells whether the car is `online`, `asleep` or `offline` without
  waking it. Only an online car is asked for `vehicle_data?endpoints=charge_state` (a live,
  billed call). A sleeping car is woken (`POST .../wake_up`, the most expensive call) only with
  `wake: true`, and then at most once per `wake_interval_s`, counted across restarts.
- Polls are `interval_s` apart (default 600 s, never less than 300 s: vehicle_data is billed
  per call and Tesla asks not to poll it regularly). A 429 is honoured: no request before its
  Retry-After has passed. Other failures back off exponentially (capped); the newest good
  reading stays, and `problem` says what went wrong. A refused refresh token stops all requests
  until the config changes: it will never become valid again.

The parsing functions (`parse_*`) are pure; `TeslaFleetSource` does the I/O.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from .base import SocReading, SourceError, checked_range_km, checked_soc

log = logging.getLogger(__name__)

KIND = "tesla"
DEFAULT_API_URL = "https://fleet-api.prd.eu.vn.cloud.tesla.com"   # Europe, Middle East, Africa
DEFAULT_AUTH_URL = "https://fleet-auth.prd.vn.cloud.tesla.com/oauth2/v3/token"
TOKEN_PATH = "/oauth2/v3/token"
DEFAULT_INTERVAL_S = 600.0
MIN_INTERVAL_S = 300.0          # at most 288 billed vehicle_data calls a day, a car always awake
DEFAULT_WAKE_INTERVAL_S = 6 * 3600.0
MIN_WAKE_INTERVAL_S = 3600.0    # a wake-up costs ten vehicle_data calls and keeps the car awake
WAKE_CHECK_S = 30.0             # after a wake-up, look again this soon (the vehicle endpoint)
WAKE_WINDOW_S = 120.0           # ... for this long, then back to the normal interval
MAX_BACKOFF_S = 3600.0
REQUEST_TIMEOUT_S = 30.0
REFRESH_MARGIN_S = 300.0        # refresh the access token this long before it expires
KM_PER_MILE = 1.609344
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
VIN_PATTERN = re.compile(r"[A-HJ-NPR-Z0-9]{17}")   # 17 characters, never I, O or Q
REFUSED_TOKEN_CODES = ("invalid_grant", "login_required")
REFUSED_CLIENT_CODES = ("invalid_client", "unauthorized_client")


# ---------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class TeslaConfig:
    vin: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    api_url: str = DEFAULT_API_URL
    token_url: str = DEFAULT_AUTH_URL
    interval_s: float = DEFAULT_INTERVAL_S
    wake: bool = False
    wake_interval_s: float = DEFAULT_WAKE_INTERVAL_S


def parse_config(cfg: Mapping[str, Any]) -> TeslaConfig:
    """`cfg` (the car's `tesla` settings) checked; ValueError names the key that is wrong.

    Intervals below their floor are raised to it (logged), so that no config can hammer the
    API or run up the owner's bill."""
    vin = str(cfg.get("vin") or "").strip().upper()
    if not VIN_PATTERN.fullmatch(vin):
        raise ValueError(f"tesla vin must be the car's 17-character VIN, got {vin!r}")
    client_id = str(cfg.get("client_id") or "").strip()
    if not client_id:
        raise ValueError("tesla client_id is missing: the developer app's client ID")
    return TeslaConfig(
        vin=vin,
        client_id=client_id,
        client_secret=_optional_text(cfg.get("client_secret")),
        refresh_token=_optional_text(cfg.get("refresh_token")),
        api_url=_checked_url(cfg.get("api_url") or DEFAULT_API_URL, "api_url"),
        token_url=_token_url(cfg.get("auth_url") or DEFAULT_AUTH_URL),
        interval_s=_floored(cfg.get("interval_s"), "interval_s", DEFAULT_INTERVAL_S,
                            MIN_INTERVAL_S),
        wake=_flag(cfg.get("wake", False), "wake"),
        wake_interval_s=_floored(cfg.get("wake_interval_s"), "wake_interval_s",
                                 DEFAULT_WAKE_INTERVAL_S, MIN_WAKE_INTERVAL_S),
    )


def _optional_text(value: object) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _checked_url(value: object, key: str) -> str:
    """An https URL (plain http only to this machine: the bearer token must not travel in
    clear), without a trailing slash."""
    url = str(value).strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return url
    raise ValueError(f"tesla {key} must be an https:// URL, got {value!r}")


def _token_url(value: object) -> str:
    """The token endpoint; a bare host (`https://auth.tesla.com`) gets Tesla's token path."""
    url = _checked_url(value, "auth_url")
    return url + TOKEN_PATH if urlsplit(url).path in ("", "/") else url


def _floored(value: object, key: str, default: float, floor: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"tesla {key} must be a number of seconds, got {value!r}")
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"tesla {key} must be a number of seconds, got {value!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"tesla {key} must be a positive number of seconds, got {value!r}")
    if seconds < floor:
        log.warning("tesla %s %g s is below the minimum; using %g s", key, seconds, floor)
        return floor
    return seconds


def _flag(value: object, key: str) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(f"tesla {key} must be true or false, got {value!r}")


# ---------------------------------------------------------------------------------------------
# Parsing (pure)


def parse_json(text: str, where: str) -> dict[str, Any]:
    """The JSON object in `text`, or SourceError."""
    try:
        body = json.loads(text)
    except ValueError:
        raise SourceError(f"{where}: the answer is not JSON ({text.strip()[:40]!r})") from None
    if not isinstance(body, dict):
        raise SourceError(f"{where}: expected a JSON object, got {type(body).__name__}")
    return body


def _object(parent: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = parent.get(key)
    if not isinstance(value, dict):
        raise SourceError(f"{where}: no {key} object in the answer")
    return value


def parse_vehicle_state(body: Mapping[str, Any], where: str = "Tesla vehicle") -> str:
    """`response.state` of a vehicle or wake_up answer: "online", "asleep", "offline", ..."""
    state = _object(body, "response", where).get("state")
    if not isinstance(state, str) or not state:
        raise SourceError(f"{where}: no response.state in the answer")
    return state.strip().lower()


def parse_charge_state(body: Mapping[str, Any], now_s: float) -> SocReading:
    """The reading in a `vehicle_data?endpoints=charge_state` answer.

    `battery_level` is the SoC in %, `battery_range` the range in miles (given in km here),
    `timestamp` the car's time of the data in milliseconds (never later than `now_s`; `now_s`
    when the car did not send it: vehicle_data is a live call)."""
    where = "Tesla vehicle_data"
    charge = _object(_object(body, "response", where), "charge_state", f"{where} response")
    soc = checked_soc(charge.get("battery_level"), f"{where} charge_state.battery_level")
    range_km = None
    miles = checked_range_km(charge.get("battery_range"), f"{where} charge_state.battery_range")
    if miles is not None:
        range_km = checked_range_km(miles * KM_PER_MILE, f"{where} charge_state.battery_range")
    stamp = charge.get("timestamp")
    if stamp is None:
        at_s = now_s
    elif (isinstance(stamp, bool) or not isinstance(stamp, (int, float))
          or not math.isfinite(stamp) or stamp <= 0):
        raise SourceError(f"{where} charge_state.timestamp: expected milliseconds since 1970, "
                          f"got {str(stamp)[:40]!r}")
    else:
        at_s = min(stamp / 1000.0, now_s)
    return SocReading(soc_pct=soc, at_s=at_s, source=KIND, range_km=range_km)


def parse_token_response(body: Mapping[str, Any]) -> tuple[str, str | None, float]:
    """(access token, new refresh token or None, lifetime in s) from a token answer."""
    where = "Tesla token endpoint"
    access = body.get("access_token")
    if not isinstance(access, str) or not access:
        raise SourceError(f"{where}: no access_token in the answer")
    refresh = body.get("refresh_token")
    if refresh is not None and (not isinstance(refresh, str) or not refresh):
        raise SourceError(f"{where}: refresh_token is not a string")
    expires_in = body.get("expires_in", 3600)
    if isinstance(expires_in, str):
        try:
            expires_in = float(expires_in)
        except ValueError:
            pass
    if (isinstance(expires_in, bool) or not isinstance(expires_in, (int, float))
            or not math.isfinite(expires_in) or expires_in <= 0):
        raise SourceError(f"{where}: expires_in {str(expires_in)[:40]!r} is not a lifetime")
    return access, refresh, float(expires_in)


def error_of(text: str) -> tuple[str, str]:
    """(`error`, `error_description`) of an error answer; ("", start of the text) if not JSON."""
    try:
        body = json.loads(text)
    except ValueError:
        return "", text.strip()[:120]
    if not isinstance(body, dict):
        return "", text.strip()[:120]
    code, description = body.get("error"), body.get("error_description")
    return (str(code) if code else "", str(description)[:200] if description else "")


def retry_after_s(header: str | None) -> float | None:
    """Seconds of a Retry-After header given in seconds; None when absent or not a number."""
    try:
        value = float(header) if header else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) and value >= 0 else None


def backoff_s(failures: int, interval_s: float) -> float:
    """The wait after `failures` failed polls in a row: the interval, then doubling, capped at
    an hour (or the interval, when that is longer)."""
    return min(interval_s * 2 ** max(0, failures - 1), max(interval_s, MAX_BACKOFF_S))


def token_digest(token: str) -> str:
    """What the state file keeps of the config's refresh token: enough to recognise it."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------------
# State file


def read_state(path: Path) -> dict[str, Any] | None:
    """The stored tokens, or None when there are none (a bad file is logged and ignored: the
    config's refresh token is used and the file is rewritten at the next refresh)."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("Tesla state file %s cannot be read (%s); ignoring it", path, exc)
        return None
    try:
        state = json.loads(raw)
    except ValueError:
        log.warning("Tesla state file %s is not JSON; ignoring it", path)
        return None
    if not isinstance(state, dict):
        log.warning("Tesla state file %s holds no JSON object; ignoring it", path)
        return None
    return state


def write_state(path: Path, state: Mapping[str, Any]) -> None:
    """Replace `path` with `state` as JSON, readable by its owner only (0600), atomically: a
    temp file in the same directory (created 0600), fsync, rename, fsync of the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(dict(state), indent=1, sort_keys=True) + "\n").encode("utf-8")
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    with contextlib.suppress(OSError):
        directory = os.open(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _number(value: object) -> float:
    """A stored number, 0 when it is missing or not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    return float(value) if math.isfinite(value) else 0.0


# ---------------------------------------------------------------------------------------------
# The source


class TeslaError(Exception):
    """A poll failed; the message is the problem sentence."""


class _RateLimited(TeslaError):
    def __init__(self, message: str, retry_after: float | None):
        super().__init__(message)
        self.retry_after = retry_after


class _AuthRefused(TeslaError):
    """Tesla refused the refresh token or the client: nothing changes until the config does."""


class _Unavailable(Exception):
    """408: the car is asleep or offline."""


def _default_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
                                 headers={"User-Agent": "phaeton"})


class TeslaFleetSource:
    """The SoC of one Tesla from the Fleet API (see the module docstring)."""

    kind = KIND

    def __init__(self, cfg: Mapping[str, Any], state_path: str | os.PathLike, *,
                 session_factory: Callable[[], aiohttp.ClientSession] | None = None,
                 clock: Callable[[], float] = time.time):
        self.config = parse_config(cfg)
        self.state_path = Path(state_path)
        self._session_factory = session_factory or _default_session
        self._clock = clock
        self._lock = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self._latest: SocReading | None = None
        self._problem: str | None = None
        self._store_problem: str | None = None
        self._refused: str | None = None       # the refresh-token refusal, once it happened
        self._failures = 0
        self._hold_until = 0.0                 # 429: no request before this
        self._wake_window_until = 0.0
        self.next_poll_at = clock()
        self._load_tokens()

    # -- SocSource -----------------------------------------------------------------------------

    def latest(self) -> SocReading | None:
        return self._latest

    @property
    def problem(self) -> str | None:
        return self._problem

    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"tesla-{self.config.vin}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except Exception as exc:   # a bug must not end the polling for good
                log.exception("Tesla %s: poll failed unexpectedly", self.config.vin)
                self._problem = f"the Tesla source failed unexpectedly: {exc}"
                self.next_poll_at = self._clock() + self.config.interval_s
            await asyncio.sleep(max(1.0, self.next_poll_at - self._clock()))

    # -- one poll ------------------------------------------------------------------------------

    async def poll_once(self) -> SocReading | None:
        """Poll now (unless a refused token or a 429's Retry-After forbids any request); sets
        `latest()`, `problem` and `next_poll_at`. Returns the newest good reading."""
        async with self._lock:
            now = self._clock()
            if self._refused is not None:
                self._problem = self._refused
                self.next_poll_at = now + self.config.interval_s
                return self._latest
            if now < self._hold_until:
                self.next_poll_at = self._hold_until
                return self._latest
            if self._store_problem is not None:
                self._save_state()
            previous = self._problem
            try:
                async with self._session_factory() as session:
                    problem, delay = await self._poll(session)
            except _AuthRefused as exc:
                self._refused = problem = str(exc)
                delay = self.config.interval_s
                log.error("Tesla %s: %s; no more requests until the config changes",
                          self.config.vin, exc)
            except _RateLimited as exc:
                self._failures += 1
                wait = exc.retry_after if exc.retry_after is not None else backoff_s(
                    self._failures, self.config.interval_s)
                self._hold_until = self._clock() + wait
                problem = f"{exc}; next request in {wait:.0f} s"
                delay = max(wait, backoff_s(self._failures, self.config.interval_s))
            except (TeslaError, SourceError) as exc:
                self._failures += 1
                problem = str(exc)
                delay = backoff_s(self._failures, self.config.interval_s)
            else:
                self._failures = 0
            self._problem = problem or self._store_problem
            self.next_poll_at = self._clock() + delay
            if self._problem != previous and self._problem is not None:
                log.warning("Tesla %s: %s", self.config.vin, self._problem)
            return self._latest

    async def _poll(self, session: aiohttp.ClientSession) -> tuple[str | None, float]:
        """(problem or None, seconds to the next poll) of one poll that did not fail."""
        cfg = self.config
        vehicle = f"/api/1/vehicles/{cfg.vin}"
        try:
            state = parse_vehicle_state(await self._api(session, "GET", vehicle, "vehicle"))
        except _Unavailable:
            state = "offline"
        if state == "online":
            return await self._read(session)
        if state not in ("asleep", "offline"):
            return f"Tesla reports the car as {state!r}, so its data is not read", cfg.interval_s
        now = self._clock()
        if not cfg.wake:
            return (f"the car is {state}; phaeton does not wake it (wake is off), so the "
                    "reading is not refreshed"), cfg.interval_s
        if now < self._wake_window_until:
            return f"the car is {state}; woken up, waiting for it to come online", WAKE_CHECK_S
        since = now - self._last_wake_at
        if since < cfg.wake_interval_s:
            return (f"the car is {state}; it was woken {since / 60:.0f} min ago, the next "
                    f"wake-up is allowed in {(cfg.wake_interval_s - since) / 60:.0f} min "
                    "(wake_interval_s)"), cfg.interval_s
        # Counted before the request: a wake-up that fails is still not repeated before the
        # interval (a car without connection answers 408 every time).
        self._last_wake_at = now
        self._wake_window_until = now + WAKE_WINDOW_S
        self._save_state()
        log.info("Tesla %s: the car is %s; waking it up", cfg.vin, state)
        try:
            woken = parse_vehicle_state(
                await self._api(session, "POST", f"{vehicle}/wake_up", "wake_up"), "Tesla wake_up")
        except _Unavailable:
            return f"the car is {state} and did not answer the wake-up (408)", cfg.interval_s
        if woken == "online":
            return await self._read(session)
        return f"the car is {state}; woken up, looking again in {WAKE_CHECK_S:.0f} s", WAKE_CHECK_S

    async def _read(self, session: aiohttp.ClientSession) -> tuple[str | None, float]:
        try:
            body = await self._api(session, "GET", f"/api/1/vehicles/{self.config.vin}"
                                   "/vehicle_data", "vehicle_data",
                                   params={"endpoints": "charge_state"})
        except _Unavailable:
            return ("the car went to sleep or lost its connection before its data could be read "
                    "(408)"), self.config.interval_s
        self._latest = parse_charge_state(body, self._clock())
        self._wake_window_until = 0.0
        return None, self.config.interval_s

    # -- HTTP ----------------------------------------------------------------------------------

    async def _send(self, session: aiohttp.ClientSession, method: str, url: str, what: str,
                    **kwargs) -> tuple[int, str | None, str]:
        """(status, Retry-After header, body) of one request; TeslaError when none came."""
        try:
            async with session.request(method, url, **kwargs) as response:
                text = await response.text(errors="replace")
                return response.status, response.headers.get("Retry-After"), text
        except asyncio.TimeoutError:
            raise TeslaError(f"Tesla did not answer the {what} request within "
                             f"{REQUEST_TIMEOUT_S:g} s") from None
        except aiohttp.ClientError as exc:
            host = urlsplit(url).hostname
            raise TeslaError(f"cannot reach Tesla at {host} ({what}): {exc}") from None

    async def _api(self, session: aiohttp.ClientSession, method: str, path: str, what: str,
                   params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The JSON answer of a Fleet API call; on a 401 the token is refreshed once and the
        call repeated. Raises _Unavailable (408), _RateLimited (429) or TeslaError."""
        url = self.config.api_url + path
        for attempt in (1, 2):
            token = await self._access_token_for(session, force=attempt == 2)
            kwargs: dict[str, Any] = {"headers": {"Authorization": f"Bearer {token}"}}
            if params:
                kwargs["params"] = dict(params)
            if method == "POST":
                kwargs["json"] = {}
            status, retry_after, text = await self._send(session, method, url, what, **kwargs)
            if status != 401 or attempt == 2:
                break
            log.info("Tesla %s: the access token was refused (401); refreshing it once",
                     self.config.vin)
        if status == 200:
            return parse_json(text, f"Tesla {what}")
        code, description = error_of(text)
        detail = " ".join(filter(None, (str(status), code)))
        if status == 408:
            raise _Unavailable(code)
        if status == 429:
            raise _RateLimited(f"Tesla Fleet API rate limit reached ({detail}) on {what}",
                               retry_after_s(retry_after))
        if status == 401:
            raise TeslaError(f"Tesla refused a freshly refreshed access token for {what} "
                             f"({detail})")
        if status == 403:
            raise TeslaError(f"Tesla refused access to vehicle {self.config.vin} ({detail}): "
                             "the authorisation lacks the vehicle_device_data scope or the car "
                             "is not on this Tesla account")
        if status == 404:
            raise TeslaError(f"Tesla does not know vehicle {self.config.vin} on this account "
                             f"({detail})")
        if status == 421:
            raise TeslaError(f"Tesla serves this account from another region ({detail}): "
                             f"{code or description} — set api_url accordingly")
        raise TeslaError(f"Tesla Fleet API answered HTTP {detail} to {what}"
                         + (f": {description}" if description else ""))

    # -- tokens --------------------------------------------------------------------------------

    def _load_tokens(self) -> None:
        """Start from the stored chain when it grew from the config's refresh token (or the
        config has none); a different token in the config is a new authorisation and wins."""
        cfg_token = self.config.refresh_token
        stored = read_state(self.state_path) or {}
        if stored.get("vin") not in (None, self.config.vin):
            stored = {}
        stored_token = stored.get("refresh_token")
        self._last_wake_at = _number(stored.get("last_wake_at"))
        use_stored = isinstance(stored_token, str) and stored_token and (
            cfg_token is None or cfg_token == stored_token
            or token_digest(cfg_token) == stored.get("origin_sha256"))
        if use_stored:
            self._refresh_token: str | None = stored_token
            self._origin = stored.get("origin_sha256") or ""
            access = stored.get("access_token")
            self._access_token: str | None = access if isinstance(access, str) else None
            self._refresh_at = _number(stored.get("access_refresh_at"))
            return
        if isinstance(stored_token, str) and stored_token:
            log.info("Tesla %s: the config has a new refresh token; the stored one is dropped",
                     self.config.vin)
        self._refresh_token = cfg_token
        self._origin = token_digest(cfg_token) if cfg_token else ""
        self._access_token = None
        self._refresh_at = 0.0

    async def _access_token_for(self, session: aiohttp.ClientSession, force: bool) -> str:
        if force or self._access_token is None or self._clock() >= self._refresh_at:
            await self._refresh(session)
        assert self._access_token is not None
        return self._access_token

    async def _refresh(self, session: aiohttp.ClientSession) -> None:
        cfg = self.config
        if not self._refresh_token:
            raise _AuthRefused("no Tesla refresh token: authorise phaeton for the car and put "
                               "the refresh token in the config")
        form = {"grant_type": "refresh_token", "client_id": cfg.client_id,
                "refresh_token": self._refresh_token}
        if cfg.client_secret:
            form["client_secret"] = cfg.client_secret
        status, retry_after, text = await self._send(session, "POST", cfg.token_url,
                                                     "token refresh", data=form)
        if status == 200:
            access, refresh, expires_in = parse_token_response(
                parse_json(text, "Tesla token endpoint"))
            self._access_token = access
            self._refresh_token = refresh or self._refresh_token
            self._refresh_at = self._clock() + expires_in - min(REFRESH_MARGIN_S, expires_in / 10)
            self._save_state()   # before the access token is used: the old refresh token is spent
            return
        code, description = error_of(text)
        detail = " ".join(filter(None, (str(status), code)))
        if status == 429:
            raise _RateLimited(f"Tesla token endpoint rate limit reached ({detail})",
                               retry_after_s(retry_after))
        if status >= 500 or status == 408:
            raise TeslaError(f"Tesla token endpoint answered HTTP {detail}; trying again later")
        if code in REFUSED_TOKEN_CODES:
            raise _AuthRefused(f"Tesla token refresh refused ({detail}): the refresh token is no "
                               "longer valid — authorise phaeton again and put the new refresh "
                               "token in the config")
        if code in REFUSED_CLIENT_CODES:
            secret = " with this client_secret" if cfg.client_secret else ""
            raise _AuthRefused(f"Tesla token refresh refused ({detail}): Tesla does not accept "
                               f"client_id {cfg.client_id!r}{secret} — check the developer "
                               "app's credentials in the config")
        raise _AuthRefused(f"Tesla token refresh refused ({detail})"
                           + (f": {description}" if description else ""))

    def _save_state(self) -> None:
        state = {"vin": self.config.vin, "refresh_token": self._refresh_token,
                 "origin_sha256": self._origin, "access_token": self._access_token,
                 "access_refresh_at": self._refresh_at, "last_wake_at": self._last_wake_at}
        try:
            write_state(self.state_path, state)
        except OSError as exc:
            self._store_problem = (
                f"cannot store the rotated Tesla refresh token in {self.state_path} "
                f"({exc.strerror or exc}): Tesla accepts the spent one for 24 h only, so a later "
                "restart would need a new authorisation")
            log.error("Tesla %s: %s", self.config.vin, self._store_problem)
        else:
            self._store_problem = None


__all__ = ["TeslaFleetSource", "TeslaConfig", "TeslaError", "parse_config", "parse_charge_state",
           "parse_vehicle_state", "parse_token_response", "read_state", "write_state",
           "backoff_s", "retry_after_s", "DEFAULT_API_URL", "DEFAULT_AUTH_URL",
           "MIN_INTERVAL_S", "MIN_WAKE_INTERVAL_S"]
