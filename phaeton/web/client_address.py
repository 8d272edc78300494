"""Which client a request comes from, as the login limit and the event-stream limit count them.

An IPv4 address counts as itself. An IPv6 client counts by its /64 network: one host can take
any number of addresses within its /64 (privacy addresses), so counting single addresses would
give it as many fresh starts as it likes. An IPv4 address written as IPv6 (::ffff:a.b.c.d)
counts as the IPv4 address. No proxy stands in front of phaeton, so forwarding headers
(X-Forwarded-For) are never trusted.
"""
from __future__ import annotations

import ipaddress

from aiohttp import web

IPV6_PREFIX = 64


def client_key(remote: str | None) -> str:
    """The key the limits count `remote` (a peer address) under."""
    if not remote:
        return "unknown"
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return remote  # a Unix socket or similar: as it is
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/{IPV6_PREFIX}", strict=False))
    return str(address)


def client_of(request: web.Request) -> str:
    """The key of the client that sent `request`."""
    return client_key(request.remote)
