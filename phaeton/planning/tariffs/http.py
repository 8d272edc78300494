"""One HTTP GET/POST for the fetching tariffs and carbon sources: transport failures and error
statuses become the caller's own error classes, in words a user can act on (401/403: check
the token; 429: rate limited, with Retry-After when given in seconds).

aiohttp's client is imported at the first request: it loads the system's CA certificates into
two SSL contexts at import, which sources that never fetch (and the service's start-up)
should not pay for."""
from __future__ import annotations

import math


async def get_text(method: str, url: str, *, source: str, timeout_s: float,
                   error: type[Exception], auth_error: type[Exception],
                   rate_limited: type[Exception], **kwargs) -> str:
    """The response body of one request; `error` (or its subclasses `auth_error`,
    `rate_limited(message, retry_after_s)`) for anything else."""
    import aiohttp
    try:
        async with aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
            async with session.request(method, url, **kwargs) as response:
                body = await response.text(errors="replace")
                if response.status in (401, 403):
                    raise auth_error(f"{source}: access refused (HTTP {response.status}); "
                                     "check the API token")
                if response.status == 429:
                    raise rate_limited(f"{source}: rate limited (HTTP 429)",
                                       retry_after_s(response.headers.get("Retry-After")))
                if response.status >= 400:
                    raise error(f"{source}: HTTP {response.status}: {body.strip()[:200]}")
                return body
    except TimeoutError as exc:
        raise error(f"{source}: no answer within {timeout_s:g} s") from exc
    except aiohttp.ClientError as exc:
        raise error(f"{source}: connection failed: {exc}") from exc


def retry_after_s(header: str | None) -> float | None:
    """Seconds from a Retry-After header given in seconds; None when absent or a date."""
    if not header:
        return None
    try:
        value = float(header)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None
