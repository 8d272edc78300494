"""Where a fleet broker is and how to log in: the site (`fleet.broker` in the config) and the
operator's commands (`--broker`, `--username`, ...) describe it the same way."""
from __future__ import annotations

import ssl
from dataclasses import dataclass


@dataclass(frozen=True)
class BrokerLink:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None          # TLS is on when a CA file or a client certificate is set
    cert_file: str | None = None
    key_file: str | None = None
    keepalive_s: int = 30

    @property
    def tls(self) -> bool:
        return bool(self.ca_file or self.cert_file)

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def ssl_context(self) -> ssl.SSLContext | None:
        """The client TLS context (verifies the broker against `ca_file`, else the system's
        CAs; presents the client certificate when one is set), or None without TLS."""
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context
