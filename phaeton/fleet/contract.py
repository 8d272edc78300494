"""The fleet's messages (docs/fleet.md): signed envelopes, schedules, acks, status. Pure: no I/O.

A schedule arrives as an envelope `{"v": 1, "body": "<JSON text>", "hmac_sha256": "<hex>"}`; the
HMAC covers the exact body text, so no canonical JSON is needed. `open_envelope` checks the
envelope and its signature, `parse_schedule` the body, `check_limits` the site's limits. Every
refusal is a `Refusal` with a code from `REFUSAL_CODES` and a sentence that names the field.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

CONTRACT_VERSION = 1
SLOT_S = 900
MAX_SLOTS = 672                      # seven days of quarter hours
MIN_KEY_CHARS = 16
DEFAULT_TOPIC_PREFIX = "phaeton/fleet"

SITE_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
SCHEDULE_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$")

BATTERY_COMMANDS = ("charge", "discharge", "idle", "soc", "local")
PRIORITIES = ("fleet", "local")
REFUSAL_CODES = ("malformed", "bad_signature", "schema", "wrong_site", "expired", "superseded",
                 "limits")
LIMITED_BY = ("soc_max", "soc_min", "fuse", "battery_power", "dess_conflict", "owner_off",
              "no_readings")
ACK_STATES = ("received", "accepted", "refused", "superseded", "executed", "completed",
              "cancelled")

SCHEDULE_KEYS = {"type", "id", "version", "site", "issued_at", "valid_from", "priority", "slots",
                 "ev"}
COMMAND_KEYS = {"type", "id", "site", "issued_at", "command", "schedule_id"}
COMMANDS = ("cancel", "status")


class Refusal(Exception):
    """A message the site will not take: `code` (REFUSAL_CODES) and a sentence."""

    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


def topic(prefix: str, site_id: str, leaf: str) -> str:
    """`<prefix>/<site>/<leaf>`, leaf one of schedule, command, ack, status, telemetry."""
    return f"{prefix}/{site_id}/{leaf}"


# ---- envelopes -------------------------------------------------------------------------------

def signature(body_text: str, key: str) -> str:
    """HMAC-SHA256 of the body text's UTF-8 bytes with the site's key, lowercase hex."""
    return hmac.new(key.encode("utf-8"), body_text.encode("utf-8"), hashlib.sha256).hexdigest()


def seal(body: Mapping[str, Any] | str, key: str) -> bytes:
    """An envelope for `body` (a dict is written as compact JSON), as the MQTT payload."""
    text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
    return json.dumps({"v": CONTRACT_VERSION, "body": text,
                       "hmac_sha256": signature(text, key)}).encode("utf-8")


def peek_ids(body_text: str) -> tuple[str | None, int | None]:
    """The id and version a body names, if it is readable at all (for the `received` ack)."""
    try:
        body = json.loads(body_text)
    except (ValueError, TypeError):
        return None, None
    if not isinstance(body, dict):
        return None, None
    ident = body.get("id") if isinstance(body.get("id"), str) else None
    version = body.get("version")
    return ident, version if isinstance(version, int) and not isinstance(version, bool) else None


def read_envelope(payload: bytes) -> tuple[str, str]:
    """(body text, hmac) of an envelope, before the signature is checked. Refusal('malformed')."""
    try:
        envelope = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Refusal("malformed", f"the message is not JSON text: {exc}") from None
    if not isinstance(envelope, dict):
        raise Refusal("malformed", "the message is not a JSON object")
    if envelope.get("v") != CONTRACT_VERSION:
        raise Refusal("malformed", f"envelope field 'v' must be {CONTRACT_VERSION}, "
                                   f"got {envelope.get('v')!r}")
    extra = set(envelope) - {"v", "body", "hmac_sha256"}
    if extra:
        raise Refusal("malformed", f"envelope has unknown fields: {sorted(extra)}")
    body, mac = envelope.get("body"), envelope.get("hmac_sha256")
    if not isinstance(body, str):
        raise Refusal("malformed", "envelope field 'body' must be the message as a JSON text")
    if not isinstance(mac, str) or not re.fullmatch(r"[0-9a-f]{64}", mac):
        raise Refusal("malformed", "envelope field 'hmac_sha256' must be 64 lowercase hex digits")
    return body, mac


def envelope_body(payload: bytes) -> str:
    """The body text of an envelope, before its signature is checked. Refusal('malformed')."""
    return read_envelope(payload)[0]


def open_envelope(payload: bytes, key: str) -> dict[str, Any]:
    """The body of a signed envelope as a dict; Refusal('malformed' | 'bad_signature')."""
    body_text, mac = read_envelope(payload)
    if not hmac.compare_digest(mac, signature(body_text, key)):
        raise Refusal("bad_signature", "the HMAC does not match this site's key: the message "
                                       "was not signed by the operator or was changed")
    try:
        body = json.loads(body_text)
    except ValueError as exc:
        raise Refusal("malformed", f"the envelope's body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise Refusal("malformed", "the envelope's body is not a JSON object")
    return body


# ---- times -----------------------------------------------------------------------------------

def parse_time(value: Any, name: str) -> int:
    """ISO 8601 with Z or an offset -> unix seconds. Refusal('schema') names the field."""
    if not isinstance(value, str) or not _TIME_RE.match(value):
        raise Refusal("schema", f"{name} must be an ISO 8601 time with Z or an offset "
                                f"(e.g. 2026-12-07T00:00:00Z), got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise Refusal("schema", f"{name}: {exc}") from None
    return int(parsed.timestamp())


def iso(unix_s: float) -> str:
    """Unix seconds as ISO 8601 UTC with Z."""
    return datetime.fromtimestamp(int(unix_s), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- schedules -------------------------------------------------------------------------------

@dataclass(frozen=True)
class SlotCommand:
    """What one quarter hour asks of the battery: `kind` in BATTERY_COMMANDS, `kw` for charge
    and discharge (AC side, > 0), `target_pct` for soc."""

    kind: str
    kw: float | None = None
    target_pct: float | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"battery": self.kind}
        if self.kw is not None:
            out["kw"] = self.kw
        if self.target_pct is not None:
            out["target_pct"] = self.target_pct
        return out


@dataclass(frozen=True)
class EvWindow:
    """A window in which a charger (None: every charger) may charge up to `max_kw`, until it
    delivered `target_kwh` in the window (None: for the whole window)."""

    start_s: int
    end_s: int
    max_kw: float
    charger: str | None = None
    target_kwh: float | None = None


@dataclass(frozen=True)
class Schedule:
    id: str
    version: int
    site: str
    issued_at_s: int
    valid_from_s: int
    priority: str
    slots: tuple[SlotCommand, ...]
    ev: tuple[EvWindow, ...] = field(default=())

    @property
    def end_s(self) -> int:
        return self.valid_from_s + SLOT_S * len(self.slots)

    def slot_index(self, now_s: float) -> int | None:
        """The slot that covers `now_s`, or None outside the window."""
        if not self.valid_from_s <= now_s < self.end_s:
            return None
        return int((now_s - self.valid_from_s) // SLOT_S)

    def slot_start_s(self, index: int) -> int:
        return self.valid_from_s + SLOT_S * index


def _number(value: Any, name: str, *, low: float, high: float, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Refusal("schema", f"{name} must be a number, got {value!r}")
    if value < low or value > high or (low_open and value <= low):
        bound = f"above {low:g}" if low_open else f"at least {low:g}"
        raise Refusal("schema", f"{name} must be {bound} and at most {high:g}, got {value!r}")
    return float(value)


def _slot(raw: Any, index: int) -> SlotCommand:
    name = f"slots[{index}]"
    if not isinstance(raw, dict):
        raise Refusal("schema", f"{name} must be an object such as {{\"battery\": \"idle\"}}")
    kind = raw.get("battery")
    if kind not in BATTERY_COMMANDS:
        raise Refusal("schema", f"{name}.battery must be one of {list(BATTERY_COMMANDS)}, "
                                f"got {kind!r}")
    allowed = {"battery"} | ({"kw"} if kind in ("charge", "discharge") else set()) \
        | ({"target_pct"} if kind == "soc" else set())
    extra = set(raw) - allowed
    if extra:
        raise Refusal("schema", f"{name}: {sorted(extra)} not allowed with battery {kind!r}")
    if kind in ("charge", "discharge"):
        if "kw" not in raw:
            raise Refusal("schema", f"{name}: battery {kind!r} needs kw")
        return SlotCommand(kind, kw=_number(raw["kw"], f"{name}.kw", low=0, high=1000,
                                            low_open=True))
    if kind == "soc":
        if "target_pct" not in raw:
            raise Refusal("schema", f"{name}: battery 'soc' needs target_pct")
        return SlotCommand(kind, target_pct=_number(raw["target_pct"], f"{name}.target_pct",
                                                    low=0, high=100))
    return SlotCommand(kind)


def _ev_window(raw: Any, index: int) -> EvWindow:
    name = f"ev[{index}]"
    if not isinstance(raw, dict):
        raise Refusal("schema", f"{name} must be an object with start, end and max_kw")
    extra = set(raw) - {"charger", "start", "end", "max_kw", "target_kwh"}
    if extra:
        raise Refusal("schema", f"{name}: unknown fields {sorted(extra)}")
    for key in ("start", "end", "max_kw"):
        if key not in raw:
            raise Refusal("schema", f"{name} needs {key}")
    charger = raw.get("charger")
    if charger is not None and (not isinstance(charger, str) or not SITE_ID_RE.match(charger)):
        raise Refusal("schema", f"{name}.charger must be a charger id such as 'phaeton_0'")
    start, end = parse_time(raw["start"], f"{name}.start"), parse_time(raw["end"], f"{name}.end")
    if end <= start:
        raise Refusal("schema", f"{name}: end must be after start")
    target = raw.get("target_kwh")
    if target is not None:
        target = _number(target, f"{name}.target_kwh", low=0, high=1000, low_open=True)
    return EvWindow(start, end, _number(raw["max_kw"], f"{name}.max_kw", low=0, high=1000,
                                        low_open=True), charger, target)


def parse_schedule(body: Mapping[str, Any]) -> Schedule:
    """A schedule body (an envelope's opened body) as a Schedule; Refusal('schema')."""
    if body.get("type") != "schedule":
        raise Refusal("schema", f"type must be 'schedule', got {body.get('type')!r}")
    extra = set(body) - SCHEDULE_KEYS
    if extra:
        raise Refusal("schema", f"unknown fields {sorted(extra)}")
    for key in ("id", "version", "site", "issued_at", "valid_from", "priority", "slots"):
        if key not in body:
            raise Refusal("schema", f"the schedule needs {key}")
    ident, version, site = body["id"], body["version"], body["site"]
    if not isinstance(ident, str) or not SCHEDULE_ID_RE.match(ident):
        raise Refusal("schema", "id must be 1..100 of A-Z a-z 0-9 _ . : -")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise Refusal("schema", f"version must be an integer of at least 1, got {version!r}")
    if not isinstance(site, str) or not SITE_ID_RE.match(site):
        raise Refusal("schema", "site must be 1..64 of A-Z a-z 0-9 _ . -")
    priority = body["priority"]
    if priority not in PRIORITIES:
        raise Refusal("schema", f"priority must be one of {list(PRIORITIES)}, got {priority!r}")
    valid_from = parse_time(body["valid_from"], "valid_from")
    if valid_from % SLOT_S:
        raise Refusal("schema", "valid_from must be on a quarter hour (:00, :15, :30, :45)")
    slots = body["slots"]
    if not isinstance(slots, list) or not 1 <= len(slots) <= MAX_SLOTS:
        raise Refusal("schema", f"slots must be a list of 1 to {MAX_SLOTS} quarter hours")
    ev = body.get("ev", [])
    if not isinstance(ev, list):
        raise Refusal("schema", "ev must be a list of windows")
    return Schedule(ident, version, site, parse_time(body["issued_at"], "issued_at"), valid_from,
                    priority, tuple(_slot(raw, i) for i, raw in enumerate(slots)),
                    tuple(_ev_window(raw, i) for i, raw in enumerate(ev)))


@dataclass(frozen=True)
class SiteLimits:
    """What the site allows, from its config: battery powers (kW, AC), SoC range (%), the
    fuse's import power (kW) and each charger's maximum (kW, by charger id)."""

    max_charge_kw: float
    max_discharge_kw: float
    soc_min_pct: float
    soc_max_pct: float
    import_limit_kw: float
    has_battery: bool = True
    battery_steered: bool = True          # planner.ess_control is not "off"
    charger_max_kw: Mapping[str, float] = field(default_factory=dict)


def check_limits(schedule: Schedule, limits: SiteLimits) -> None:
    """Refusal('limits') for the first slot or EV window the site can never do."""
    for index, slot in enumerate(schedule.slots):
        name = f"slots[{index}]"
        if slot.kind in ("charge", "discharge", "soc", "idle") and not limits.has_battery:
            raise Refusal("limits", f"{name} asks the battery to {slot.kind}, but this site "
                                    "has no home battery (planner.battery.capacity_kwh is 0)")
        if slot.kind in ("charge", "discharge", "soc", "idle") and not limits.battery_steered:
            raise Refusal("limits", f"{name} asks the battery to {slot.kind}, but this site "
                                    "does not steer its battery (planner.ess_control is off)")
        if slot.kind == "charge":
            if slot.kw > limits.import_limit_kw:
                raise Refusal("limits", f"{name} charges at {slot.kw:g} kW, more than the "
                                        f"fuse allows from the grid ({limits.import_limit_kw:g} "
                                        "kW, site.fuse_a)")
            if slot.kw > limits.max_charge_kw:
                raise Refusal("limits", f"{name} charges at {slot.kw:g} kW, more than the "
                                        f"battery's {limits.max_charge_kw:g} kW "
                                        "(planner.battery.max_charge_kw)")
        elif slot.kind == "discharge" and slot.kw > limits.max_discharge_kw:
            raise Refusal("limits", f"{name} discharges at {slot.kw:g} kW, more than the "
                                    f"battery's {limits.max_discharge_kw:g} kW "
                                    "(planner.battery.max_discharge_kw)")
        elif slot.kind == "soc" and not limits.soc_min_pct <= slot.target_pct \
                <= limits.soc_max_pct:
            raise Refusal("limits", f"{name} targets {slot.target_pct:g} % SoC, outside the "
                                    f"site's {limits.soc_min_pct:g}..{limits.soc_max_pct:g} %")
    for index, window in enumerate(schedule.ev):
        name = f"ev[{index}]"
        if window.charger is not None and window.charger not in limits.charger_max_kw:
            raise Refusal("limits", f"{name}: this site has no charger {window.charger!r} "
                                    f"(it has {sorted(limits.charger_max_kw)})")
        chargers = [window.charger] if window.charger else list(limits.charger_max_kw)
        for charger in chargers:
            most = limits.charger_max_kw[charger]
            if window.max_kw > most:
                raise Refusal("limits", f"{name}: {window.max_kw:g} kW is more than charger "
                                        f"{charger} can draw ({most:g} kW)")
        if window.max_kw > limits.import_limit_kw:
            raise Refusal("limits", f"{name}: {window.max_kw:g} kW is more than the fuse allows "
                                    f"({limits.import_limit_kw:g} kW)")


def validate(payload: bytes, *, key: str, site_id: str, now_s: float,
             limits: SiteLimits) -> Schedule:
    """Every check in the contract's order; the accepted Schedule or a Refusal."""
    body = open_envelope(payload, key)
    schedule = parse_schedule(body)
    if schedule.site != site_id:
        raise Refusal("wrong_site", f"the schedule is for site {schedule.site!r}, this is "
                                    f"{site_id!r}")
    if schedule.end_s <= now_s:
        raise Refusal("expired", f"the schedule's window ended at {iso(schedule.end_s)}, "
                                 f"before it arrived ({iso(now_s)})")
    check_limits(schedule, limits)
    return schedule


def schedule_from_json(text: str) -> Schedule:
    """A stored schedule body (already validated once) back as a Schedule."""
    return parse_schedule(json.loads(text))


# ---- commands --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Command:
    id: str
    site: str
    command: str
    schedule_id: str | None = None


def parse_command(body: Mapping[str, Any]) -> Command:
    extra = set(body) - COMMAND_KEYS
    if extra:
        raise Refusal("schema", f"unknown fields {sorted(extra)}")
    ident, site, command = body.get("id"), body.get("site"), body.get("command")
    if not isinstance(ident, str) or not SCHEDULE_ID_RE.match(ident):
        raise Refusal("schema", "id must be 1..100 of A-Z a-z 0-9 _ . : -")
    if not isinstance(site, str) or not SITE_ID_RE.match(site):
        raise Refusal("schema", "site must be 1..64 of A-Z a-z 0-9 _ . -")
    parse_time(body.get("issued_at"), "issued_at")
    if command not in COMMANDS:
        raise Refusal("schema", f"command must be one of {list(COMMANDS)}, got {command!r}")
    schedule_id = body.get("schedule_id")
    if command == "cancel" and not isinstance(schedule_id, str):
        raise Refusal("schema", "command 'cancel' needs schedule_id")
    return Command(ident, site, command, schedule_id)
