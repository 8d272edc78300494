"""What the updater needs from the config, as plain values (pure).

Built from the loaded, defaulted config (a mapping: `phaeton.config.Config` or its dict) by the
caller, so this package never imports the config module (the web UI, which the config module
uses, reaches the updater through the service object).
"""
from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_INDEX_URL = "https://api.github.com/repos/phaeton-ev/phaeton/releases"
STATUS_FILE_NAME = "update-status.json"


@dataclass(frozen=True)
class UpdateSettings:
    url: str = DEFAULT_INDEX_URL
    channel: str = "stable"
    public_key: str = ""               # base64 of the raw 32-byte Ed25519 key; "" = none
    health_timeout_s: float = 60.0
    auto: bool = False
    window: str = "03:00-05:00"
    data_dir: str = "/data/phaeton"
    web_enabled: bool = True
    web_host: str = "0.0.0.0"
    web_port: int = 8088
    tz: str = "UTC"
    dbus_names: tuple[str, ...] = ()   # the service's D-Bus names, one per charger

    @classmethod
    def from_config(cls, config: Mapping[str, Any],
                    dbus_names: tuple[str, ...] = ()) -> "UpdateSettings":
        update = config.get("update") or {}
        web = config.get("web") or {}
        planner_site = (config.get("planner") or {}).get("site") or {}
        return cls(url=str(update.get("url", DEFAULT_INDEX_URL)),
                   channel=str(update.get("channel", "stable")),
                   public_key=str(update.get("public_key") or ""),
                   health_timeout_s=float(update.get("health_timeout_s", 60)),
                   auto=bool(update.get("auto", False)),
                   window=str(update.get("window", "03:00-05:00")),
                   data_dir=str(config.get("data_dir", "/data/phaeton")),
                   web_enabled=bool(web.get("enabled", True)),
                   web_host=str(web.get("host", "0.0.0.0")),
                   web_port=int(web.get("port", 8088)),
                   tz=str(planner_site.get("tz", "UTC")),
                   dbus_names=tuple(dbus_names))

    @property
    def status_path(self) -> str:
        return f"{self.data_dir.rstrip('/')}/{STATUS_FILE_NAME}"

    @property
    def health_url(self) -> str | None:
        """Where the service's /health answers on this machine (None: the web UI is off)."""
        if not self.web_enabled:
            return None
        host = self.web_host
        if host in ("0.0.0.0", "", "::"):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.web_port}/health"


def public_key_bytes(text: str) -> bytes:
    """The raw 32-byte key of `update.public_key`; ValueError saying what is wrong."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("update.public_key is not base64") from None
    if len(raw) != 32:
        raise ValueError(f"update.public_key is {len(raw)} bytes, an Ed25519 key is 32")
    return raw


NO_KEY_MESSAGE = ("no update.public_key is configured, so no release can be verified: refusing "
                  "to install. Put the release key published with phaeton (base64 of the raw "
                  "32-byte Ed25519 key) into config.yaml as update.public_key (docs/update.md, "
                  "'The release key')")
