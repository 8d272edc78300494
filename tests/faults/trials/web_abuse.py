"""Web abuse helpers: clients from other loopback addresses, raw HTTP requests (URLs exactly as
written, bodies sent in part), and the lists of writes and traversal paths to try."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp

ANSWER_S = 10.0

# Every write the API has, with a body that would be accepted from a logged-in owner.
WRITES = [
    ("POST", "/api/mode", {"mode": 1}),
    ("POST", "/api/startstop", {"start_stop": 0}),
    ("POST", "/api/current", {"current_a": 10}),
    ("POST", "/api/max_current", {"max_current_a": 10}),
    ("POST", "/api/phases", {"phases": 1}),
    ("POST", "/api/autostart", {"auto_start": 0}),
    ("POST", "/api/password", {"password": "correct horse battery",
                               "new_password": "taken over by someone"}),
    ("PUT", "/api/schedule", {"windows": [{"days": "daily", "start": "01:00", "end": "05:00",
                                           "current_a": 16}]}),
    ("PUT", "/api/config", {"config": {"site": {"fuse_a": 63}}}),
]

# Ways out of /static/, written as they go on the wire (not normalised by a client).
TRAVERSALS = [
    "/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py", "/static/%2e%2e%2fapp.py",
    "/static/%2e%2e%2f%2e%2e%2f%2e%2e%2fsetup.py", "/static/....//app.py",
    "/static/%252e%252e/app.py", "/static/..%5capp.py", "/static/.%2e/web/app.py",
    "/static/app.css%00.py", "/static//etc/passwd", "/static/%2fetc%2fpasswd",
    "/static/../../../../../../etc/passwd", "/static/../templates/../app.py",
    "/static/..;/app.py", "/static/%c0%ae%c0%ae/app.py",
]
# Text that would show a file from outside the static directory was served.
LEAKS = ("import ", "def ", "root:", "from __future__", "setup(")


def client_from(address: str) -> aiohttp.ClientSession:
    """An HTTP client whose connections come from `address` (any 127.x.y.z on Linux), as a
    second machine on the LAN would look to the server; no connection limit."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0),
                                                                limit=0))


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes


async def raw_request(host: str, port: int, head: str, body_parts=(), *,
                      timeout_s: float = ANSWER_S) -> RawAnswer:
    """Send `head` (request line and headers, CRLF line ends added) and then each of
    `body_parts` as far as the server lets us, and read its answer. The server may answer
    (and close) before the body was sent; a reset while sending is not an error here."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(head.replace("\n", "\r\n").encode("latin-1") + b"\r\n")
        for part in body_parts:
            try:
                writer.write(part)
                await asyncio.wait_for(writer.drain(), 2.0)
            except (ConnectionError, asyncio.TimeoutError):
                break                        # the server stopped reading: it has answered
        return await asyncio.wait_for(_read_answer(reader), timeout_s)
    finally:
        writer.close()


async def _read_answer(reader: asyncio.StreamReader) -> RawAnswer:
    status_line = (await reader.readline()).decode("latin-1")
    if not status_line:
        raise ConnectionError("the server closed without an answer")
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while True:
        line = (await reader.readline()).decode("latin-1").rstrip("\r\n")
        if not line:
            break
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    body = await reader.readexactly(length) if length else b""
    return RawAnswer(status, headers, body)
