"""Who may write: login sessions, CSRF protection and the API token.

Reading is open on the LAN. Every write needs one of:
- a login session (cookie `phaeton_session`, HttpOnly, SameSite=Strict) AND its CSRF token in
  the `X-CSRF-Token` header (the page gets it from /api/session; another site cannot read it);
- `Authorization: Bearer <password>` (for scripts; browsers never send it on their own).
Any write whose `Origin` header names another host is refused as cross-site. Wrong passwords
count against the login limit (login_limit.py) whichever way they come in.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from phaeton.clock import Clock
from phaeton.web.client_address import client_of
from phaeton.web.http_json import ApiError, fail
from phaeton.web.login_limit import LoginRateLimiter
from phaeton.web.passwords import PasswordHashError, verify_password

log = logging.getLogger(__name__)

SESSION_COOKIE = "phaeton_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_LIFETIME_S = 12 * 3600
MAX_SESSIONS = 64
MAX_CONCURRENT_CHECKS = 2
NO_PASSWORD_MESSAGE = ("writes are disabled: no web password is set; set one on the login page "
                       "(/login) or with `python -m phaeton.web.set_password --config "
                       "/path/to/config.yaml`")


@dataclass
class LoginSession:
    """One logged-in browser."""

    csrf_token: str
    expires_at_s: float


class Authenticator:
    """Checks passwords (rate-limited), keeps login sessions and guards writes."""

    def __init__(self, password_hash: str | None, clock: Clock, *,
                 limiter: LoginRateLimiter | None = None, first_password_allowed: bool = False):
        self.password_hash = password_hash
        # the config has no password at all (not an unusable one): the first may come from the UI
        self.first_password_allowed = first_password_allowed and not password_hash
        self.first_password_lock = asyncio.Lock()
        self.clock = clock
        self.limiter = limiter or LoginRateLimiter(clock)
        self._sessions: dict[str, LoginSession] = {}
        self._checking: dict[str, tuple[asyncio.Lock, int]] = {}  # client -> (lock, users)
        self._hashing = asyncio.Semaphore(MAX_CONCURRENT_CHECKS)

    @property
    def password_set(self) -> bool:
        """True when a password hash is configured (writes possible at all)."""
        return bool(self.password_hash)

    # ---- passwords -----------------------------------------------------------------------

    async def check_password(self, client: str, password: object) -> None:
        """Return when `password` is right; else raise 429 (the address must wait, see
        login_limit), 401 (wrong) or 403 (no password configured).

        One check at a time per client address (concurrent guesses queue and each sees the
        count of the ones before), at most MAX_CONCURRENT_CHECKS over all (scrypt takes 16 MB
        and a good part of a second on a GX)."""
        if not self.password_set:
            fail(403, NO_PASSWORD_MESSAGE)
        async with self._one_check_at_a_time(client):
            wait_s = self.limiter.retry_after_s(client)
            if wait_s > 0:
                raise _too_many(max(1, int(wait_s + 0.999)))
            if not (isinstance(password, str) and password and await self._verify(password)):
                self.limiter.record_failure(client)
                log.warning("failed web login from %s", client)
                fail(401, "wrong password")
            self.limiter.record_success(client)

    async def _verify(self, password: str) -> bool:
        async with self._hashing:
            try:
                return await asyncio.get_running_loop().run_in_executor(
                    None, verify_password, password, self.password_hash)
            except PasswordHashError as exc:
                log.error("web.password_hash in the config is unusable: %s", exc)
                fail(500, f"the stored password hash is unusable ({exc}); set the password "
                          f"again")

    @contextlib.asynccontextmanager
    async def _one_check_at_a_time(self, client: str):
        lock, users = self._checking.get(client, (asyncio.Lock(), 0))
        self._checking[client] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._checking[client]
            if users <= 1:
                del self._checking[client]
            else:
                self._checking[client] = (lock, users - 1)

    # ---- sessions ------------------------------------------------------------------------

    def create_session(self) -> tuple[str, LoginSession]:
        """A new login session: (cookie value, session)."""
        self._expire()
        while len(self._sessions) >= MAX_SESSIONS:
            self._sessions.pop(next(iter(self._sessions)))
        token = secrets.token_urlsafe(32)
        session = LoginSession(secrets.token_urlsafe(32),
                               self.clock.monotonic() + SESSION_LIFETIME_S)
        self._sessions[token] = session
        return token, session

    def session_of(self, request: web.Request) -> LoginSession | None:
        """The live login session of the request's cookie, or None."""
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        self._expire()
        return self._sessions.get(token)

    def end_session(self, request: web.Request) -> None:
        """Forget the request's login session (log out)."""
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            self._sessions.pop(token, None)

    def end_all_sessions(self) -> None:
        """Log every browser out (after a password change)."""
        self._sessions.clear()

    def _expire(self) -> None:
        now = self.clock.monotonic()
        for token in [t for t, s in self._sessions.items() if s.expires_at_s <= now]:
            del self._sessions[token]

    # ---- the guard -----------------------------------------------------------------------

    async def require_writer(self, request: web.Request) -> None:
        """Return when the request may write; else raise 401/403/429 with the reason."""
        refuse_cross_site(request)
        if not self.password_set:
            fail(403, NO_PASSWORD_MESSAGE)
        authorization = request.headers.get("Authorization", "")
        if authorization:
            scheme, _, credential = authorization.partition(" ")
            if scheme.lower() != "bearer" or not credential.strip():
                fail(401, "use `Authorization: Bearer <password>` or log in")
            await self.check_password(client_of(request), credential.strip())
            return
        session = self.session_of(request)
        if session is None:
            fail(401, "log in first: writing needs the web password")
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not secrets.compare_digest(sent, session.csrf_token):
            fail(403, f"missing or wrong {CSRF_HEADER} header (reload the page)")


def refuse_cross_site(request: web.Request) -> None:
    """403 when the request's Origin (or, without one, its Referer) names another host."""
    origin = request.headers.get("Origin")
    if origin is None:
        origin = request.headers.get("Referer")
        if not origin:
            return
    if origin == "null":
        fail(403, "cross-site request refused (Origin: null)")
    netloc = urlsplit(origin).netloc
    if netloc.lower() != request.host.lower():
        fail(403, f"cross-site request refused: Origin {netloc or origin} is not {request.host}")


def _too_many(seconds: int) -> ApiError:
    return ApiError(429, f"too many failed logins; try again in {seconds} s",
                    headers={"Retry-After": str(seconds)}, retry_after_s=seconds)
