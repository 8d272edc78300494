"""The charger brands phaeton can drive: the one list `charger.protocol` is checked against.

Each brand is one `ChargerKind`: its name (the value of `charger.protocol` and the key of its
config section `charger.<name>`), how it talks (for the protocol key's description), its config
section, the keys of that section it cannot do without, and where its builder lives. The config
schema (`phaeton.config_schema`: the protocol enum, the sections, the "required when" rules,
hence `docs/config.md` and the web UI's settings form) and `phaeton.chargers.factory` are made
from this list; nothing else names the brands.

The builder is named as "module:function" and imported when a charger of that kind is built, so
loading a config imports no driver, and building an Alfen charger never imports the OCPP library
(nor the other way round). It is called as `function(charger, config, clock)` and returns the
`Charger` for ONE charger (one loadpoint; a GX may drive several):
- `charger`: that charger's entry, a mapping with the keys of the `charger:` config section
  (`protocol`, `position`, `min_current_a`, `max_current_a`, `phases`, `safe_current_a`, and
  the brands' sections such as `alfen` or `ocpp`), defaults applied; keys a builder does not
  know (a loadpoint's `id`, `priority`, `phase`, `circuit`, `custom_name`, `instance` ...) are
  ignored;
- `config`: the whole config (defaults applied), for site-wide facts such as
  `site.nominal_voltage_v`;
- `clock`: the `Clock` the driver runs on.
Chargers that share hardware share its connection inside the driver package (two sockets of one
Alfen station: one Modbus TCP connection; several OCPP charge points or connectors: one central
system per host, port and path); a builder refuses (ValueError) an entry that would drive what
another built charger already drives (e.g. the same OCPP charge point id and connector).

Adding a brand: write its driver module with its builder, then add its `ChargerKind` here
(docs/architecture.md, "Adding a charger brand").
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from phaeton import config_schema_parts as parts
from phaeton.kinds import add_kind, find_kind, load_builder

if TYPE_CHECKING:
    from phaeton.chargers.base import Charger
    from phaeton.clock import Clock

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")      # a YAML key and a protocol value
BUILDER_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass(frozen=True)
class ChargerKind:
    """One charger brand or protocol (see the module)."""
    name: str                     # charger.protocol value and the section's key
    title: str                    # how it talks, e.g. "Modbus TCP"
    section: dict[str, Any]       # JSON schema of charger.<name> (`parts.section(...)`)
    builder: str                  # "module:function": function(charger, config, clock) -> Charger
    required: tuple[str, ...] = ()  # keys of the section without a default

    def __post_init__(self):
        if not NAME_PATTERN.match(self.name):
            raise ValueError(f"a charger kind's name must be lower-case letters, digits and _, "
                             f"got {self.name!r}")
        if not BUILDER_PATTERN.match(self.builder):
            raise ValueError(f"builder must be 'module:function', got {self.builder!r}")
        missing = [key for key in self.required if key not in self.section["properties"]]
        if missing:
            raise ValueError(f"{self.name}: required keys {missing} are not in its section")

    def schema_section(self) -> dict[str, Any]:
        """The section's schema, each required key marked with why it is required."""
        properties = dict(self.section["properties"])
        for key in self.required:
            properties[key] = {**properties[key], "x-required-when": self.condition_text}
        return {**self.section, "properties": properties}

    def schema_rule(self) -> dict[str, Any]:
        """The `if`/`then` that makes this section and its required keys required when
        charger.protocol names this kind."""
        then: dict[str, Any] = {"required": [self.name]}
        if self.required:
            then["properties"] = {self.name: {"required": list(self.required)}}
        return {"if": {"properties": {"protocol": {"const": self.name}}}, "then": then}

    @property
    def condition_text(self) -> str:
        return f"charger.protocol is {self.name!r}"

    def build(self, charger: Mapping[str, Any], config: Mapping[str, Any],
              clock: Clock) -> Charger:
        """The driver for one charger entry `charger` (its keys as in the `charger:` section)
        within the whole `config`: imports the builder's module now (not before)."""
        return load_builder(self.builder)(charger, config, clock)


CHARGER_KINDS: dict[str, ChargerKind] = {}   # by name, in registration order (first = default)


def register(kind: ChargerKind) -> ChargerKind:
    """Add a kind; a second kind with the same name is refused."""
    return add_kind(CHARGER_KINDS, kind.name, kind, "charger protocol")


def kind_named(name: Any) -> ChargerKind:
    """The registered kind called `name`; ValueError naming the registered ones otherwise."""
    kind = find_kind(CHARGER_KINDS, name)
    if kind is None:
        raise ValueError(f"unknown charger protocol {name!r}; known: "
                         f"{', '.join(CHARGER_KINDS)}")
    return kind


def default_protocol() -> str:
    """The protocol a config without `charger.protocol` gets: the first registered."""
    return next(iter(CHARGER_KINDS))


def protocol_description() -> str:
    """What `charger.protocol` means, listing every kind: "alfen (Modbus TCP) or ocpp (…)"."""
    choices = [f"{kind.name} ({kind.title})" for kind in CHARGER_KINDS.values()]
    listed = choices[0] if len(choices) == 1 else \
        f"{', '.join(choices[:-1])} or {choices[-1]}"
    return f"How the charger is driven: {listed}."


# ---- the brands ---------------------------------------------------------------------------

register(ChargerKind(
    name="alfen", title="Modbus TCP", builder="phaeton.chargers.alfen:charger_from_config",
    required=("host",),
    section=parts.section("Alfen NG9xx over Modbus TCP (used when charger.protocol is alfen).", {
        "host": parts.host(None, "IP address or host name of the Alfen charger. Required when "
                           "charger.protocol is alfen."),
        "port": parts.port(502, "Modbus TCP port of the charger."),
        "station_unit_id": parts.number(200, "Modbus unit id of the station registers (Alfen: "
                                        "200).", integer=True, minimum=1, maximum=255),
        "socket_unit_id": parts.number(1, "Modbus unit id of the socket (1, or 2 for the "
                                       "second socket of a double station).", integer=True,
                                       minimum=1, maximum=255),
        "timeout_s": parts.number(3, "Timeout of one Modbus request.", "s", minimum=0.1,
                                  maximum=60),
        "setpoint_refresh_s": parts.number(20, "Rewrite the current setpoint at least this "
                                           "often; the charger falls back to its safe current "
                                           "when it is not rewritten within its validity time "
                                           "(60 s).", "s", minimum=1, maximum=25),
        "reconnect_max_s": parts.number(5, "While the charger is unreachable, try to connect "
                                        "at least this often (attempts start 1 s apart and "
                                        "back off to this); a charger that answers again gets "
                                        "its setpoint within about this time. The log backs "
                                        "off on its own: one warning, then rare reminders.",
                                        "s", minimum=1, maximum=300),
    })))

register(ChargerKind(
    name="ocpp", title="OCPP 1.6J", builder="phaeton.chargers.ocpp:charger_from_config",
    required=("charge_point_id",),
    section=parts.section("OCPP 1.6J central system (used when charger.protocol is ocpp). The "
                          "charger connects to ws://<GX address>:<port><path>/"
                          "<charge_point_id>.", {
        "host": parts.host("0.0.0.0", "Address the OCPP WebSocket server listens on (0.0.0.0 "
                           "= all IPv4 addresses)."),
        "port": parts.port(8887, "TCP port the OCPP WebSocket server listens on."),
        "path": parts.string("/ocpp", "URL path in front of the charge point id.",
                             pattern=r"^/[A-Za-z0-9._~/-]*$",
                             hint='a URL path starting with "/" (letters, digits, . _ ~ - /)'),
        "charge_point_id": parts.string(None, "The charge point id the charger is configured "
                                        "with. Required when charger.protocol is ocpp.",
                                        pattern=r"^[^\s/]+$",
                                        hint="an id without spaces or slashes", min_length=1,
                                        max_length=48),
        "connector_id": parts.number(1, "Connector of the charge point to control.",
                                     integer=True, minimum=1, maximum=10),
        "password": parts.string(None, "HTTP Basic auth password (security profile 1); null = "
                                 "no authentication.", nullable=True, min_length=1,
                                 max_length=64),
        "meter_interval_s": parts.number(10, "Meter value sample interval asked of the "
                                         "charger.", "s", integer=True, minimum=1,
                                         maximum=3600),
        "heartbeat_interval_s": parts.number(60, "Heartbeat interval given to the charger.",
                                             "s", integer=True, minimum=10, maximum=86400),
    })))
