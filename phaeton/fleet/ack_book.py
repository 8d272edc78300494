"""What `phaeton fleet watch` and `status` make of the sites' messages, without I/O: the
per-site bookkeeping of acks (repeats dropped by site and seq), the table and summary lines,
and the summary of the retained statuses (docs/fleet.md, "Operator commands")."""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from phaeton.fleet import contract

DETAIL_CHARS = 80
# a status's schedule states, and the word the summary uses for each
STATUS_STATES = {"accepted": "pending", "executing": "executing", "completed": "completed",
                 "superseded": "superseded", "cancelled": "cancelled"}
# ack states that say the site took the schedule (it has been accepted at some point)
TAKEN_STATES = ("accepted", "executed", "completed", "superseded")
TABLE_HEADER = ("site", "online", "source", "schedule", "state", "detail")


# ---- watch: the bookkeeping (pure) -----------------------------------------------------------

ScheduleKey = tuple[str | None, int | None]


@dataclass
class ScheduleAcks:
    """What one site said about one schedule (id, version)."""

    schedule_id: str | None
    version: int | None
    first_seq: int
    state: str = ""              # the latest ack's state, e.g. "refused(limits)"
    state_seq: int = 0
    detail: str = ""
    answer: str | None = None    # "accepted" or "refused", from the latest answering ack
    answer_seq: int = 0
    code: str | None = None
    reason: str | None = None
    answered_at: float | None = None   # book clock: the first accepted/refused arrived
    accepted_at: float | None = None   # book clock: the first accepted arrived


@dataclass
class SiteView:
    site: str
    online: bool | None = None
    source: str | None = None
    version: str | None = None
    seqs: set[int] = field(default_factory=set)
    schedules: dict[ScheduleKey, ScheduleAcks] = field(default_factory=dict)
    latest: ScheduleKey | None = None
    refused_reason: str | None = None
    command: str | None = None

    @property
    def last_seq(self) -> int:
        return max(self.seqs, default=0)

    def gaps(self) -> list[int]:
        """Seqs missing between the lowest and the highest seen (acks lost on the way)."""
        if not self.seqs:
            return []
        return [seq for seq in range(min(self.seqs), max(self.seqs)) if seq not in self.seqs]


def schedule_text(schedule_id: str | None, version: int | None) -> str:
    if schedule_id is None:
        return "(unreadable)"
    return f"{schedule_id} v{version}" if version is not None else schedule_id


def ack_state_text(ack: Mapping[str, Any]) -> str:
    """received, accepted, refused(code), executed slot n, completed, superseded."""
    state = ack.get("state")
    if state == "refused":
        return f"refused({ack.get('code')})"
    if state == "executed":
        return f"executed slot {ack.get('slot')}"
    return str(state)


def ack_detail(ack: Mapping[str, Any]) -> str:
    state, parts = ack.get("state"), []
    if state == "refused" and ack.get("reason"):
        parts.append(str(ack["reason"]))
    elif state == "superseded":
        parts.append(f"by version {ack['by_version']}" if ack.get("by_version") is not None
                     else f"by {ack.get('by_id')}")
    elif state == "executed":
        kwh = ack.get("battery_kwh")
        if kwh is not None:
            parts.append(f"{kwh:+.2f} kWh, SoC {ack.get('soc_start_pct')} -> "
                         f"{ack.get('soc_end_pct')} %")
        if ack.get("limited_by"):
            parts.append(f"limited by {ack['limited_by']}")
    if ack.get("duplicate"):
        parts.append("repeat")
    return ", ".join(parts)


def answer_of(ack: Mapping[str, Any]) -> str | None:
    """'refused', 'accepted' (the site took the schedule: accepted, or a later state, or the
    answer to a repeat) or None (received: no answer yet)."""
    state = ack.get("state")
    if state == "refused":
        return "refused"
    if state in TAKEN_STATES or ack.get("duplicate"):
        return "accepted"
    return None


class AckBook:
    """Per-site status and acks as a watcher sees them; repeats dropped by (site, seq).

    `handle(topic, payload, now)` takes one MQTT message and returns a line describing it
    (None for a repeat or a message that is not ours). `now` is whatever clock the caller
    uses; it is recorded as `answered_at`/`accepted_at`."""

    def __init__(self, prefix: str = contract.DEFAULT_TOPIC_PREFIX):
        self.prefix = prefix
        self.sites: dict[str, SiteView] = {}
        self.statuses: dict[str, dict[str, Any]] = {}
        self.repeats = 0           # acks dropped as repeats of a seen (site, seq)
        self.acks = 0              # acks taken
        self.changes = 0           # grows with every change (for redrawing)
        self._first_seen: dict[ScheduleKey, int] = {}

    def site(self, site_id: str) -> SiteView:
        view = self.sites.get(site_id)
        if view is None:
            view = self.sites[site_id] = SiteView(site_id)
        return view

    def handle(self, message_topic: str, payload: bytes, now: float) -> str | None:
        head, _, leaf = message_topic.rpartition("/")
        prefix, _, site_id = head.rpartition("/")
        if prefix != self.prefix or not site_id or leaf not in ("ack", "status"):
            return None
        if leaf == "status" and not payload:     # a cleared retained status
            self.statuses.pop(site_id, None)
            return None
        try:
            message = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            return f"{site_id} {leaf}: not JSON, ignored"
        if not isinstance(message, dict):
            return f"{site_id} {leaf}: not a JSON object, ignored"
        if leaf == "status":
            return self.on_status(site_id, message)
        return self.on_ack(site_id, message, now)

    def on_status(self, site_id: str, status: dict[str, Any]) -> str:
        view = self.site(site_id)
        self.statuses[site_id] = status
        view.online = bool(status.get("online"))
        if view.online:
            view.source, view.version = status.get("source"), status.get("version")
        self.changes += 1
        return status_line(site_id, status)

    def on_ack(self, site_id: str, ack: dict[str, Any], now: float) -> str | None:
        view = self.site(site_id)
        seq = ack.get("seq")
        if isinstance(seq, bool) or not isinstance(seq, int):
            return f"{site_id} ack without a seq, ignored"
        if seq in view.seqs:
            self.repeats += 1
            return None
        view.seqs.add(seq)
        self.acks += 1
        self.changes += 1
        if "command_id" in ack:
            view.command = f"{ack.get('command_id')}: {ack_state_text(ack)}"
            return ack_line(site_id, ack)
        key = (ack.get("schedule_id"), ack.get("version"))
        track = view.schedules.get(key)
        if track is None:
            track = view.schedules[key] = ScheduleAcks(key[0], key[1], first_seq=seq)
            if view.latest is None or seq > view.schedules[view.latest].first_seq:
                view.latest = key
            if key[0] is not None:
                self._first_seen.setdefault(key, len(self._first_seen))
        if seq >= track.state_seq:
            track.state, track.state_seq, track.detail = ack_state_text(ack), seq, \
                ack_detail(ack)
        answer = answer_of(ack)
        if answer is not None:
            if track.answered_at is None:
                track.answered_at = now
            if answer == "accepted" and track.accepted_at is None:
                track.accepted_at = now
            if seq >= track.answer_seq:
                track.answer, track.answer_seq = answer, seq
                if answer == "refused":
                    track.code, track.reason = ack.get("code"), ack.get("reason")
                    view.refused_reason = track.reason
        return ack_line(site_id, ack)

    def newest(self, schedule_id: str | None = None) -> ScheduleKey | None:
        """The schedule seen most recently for the first time (its highest version when
        `schedule_id` is given)."""
        keys = list(self._first_seen)
        if schedule_id is not None:
            versions = [key for key in keys if key[0] == schedule_id and key[1] is not None]
            return max(versions, key=lambda key: key[1]) if versions else None
        return keys[-1] if keys else None

    def answers(self, key: ScheduleKey | None) -> tuple[list[str], list[str]]:
        """The sites that accepted and those that refused schedule `key`."""
        accepted, refused = [], []
        if key is None:
            return accepted, refused
        for site_id, view in self.sites.items():
            track = view.schedules.get(key)
            if track is not None and track.answer == "accepted":
                accepted.append(site_id)
            elif track is not None and track.answer == "refused":
                refused.append(site_id)
        return accepted, refused


def ack_line(site_id: str, ack: Mapping[str, Any]) -> str:
    if "command_id" in ack:
        what = f"command {ack.get('command_id')}"
    else:
        what = schedule_text(ack.get("schedule_id"), ack.get("version"))
    detail = ack_detail(ack)
    return f"{site_id} ack #{ack.get('seq')} {what} {ack_state_text(ack)}" + \
        (f": {detail}" if detail else "")


def status_line(site_id: str, status: Mapping[str, Any]) -> str:
    if not status.get("online"):
        return f"{site_id} status offline"
    schedules = status.get("schedules") or []
    return (f"{site_id} status online, {status.get('source')}, {len(schedules)} "
            f"schedule{'' if len(schedules) == 1 else 's'}")


def table_rows(book: AckBook) -> list[tuple[str, ...]]:
    """(site, online, source, schedule, state, detail) per site, sorted by site id."""
    rows = []
    for site_id in sorted(book.sites):
        view = book.sites[site_id]
        online = {True: "yes", False: "no", None: "?"}[view.online]
        track = view.schedules.get(view.latest) if view.latest is not None else None
        if track is None:
            rows.append((site_id, online, view.source or "", "", "", view.command or ""))
            continue
        rows.append((site_id, online, view.source or "",
                     schedule_text(track.schedule_id, track.version), track.state,
                     track.detail))
    return rows


def format_table(rows: list[tuple[str, ...]], max_width: int | None = None) -> str:
    detail_chars = DETAIL_CHARS
    rows = [TABLE_HEADER, *[(*row[:-1], _shorten(row[-1], detail_chars)) for row in rows]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_HEADER) - 1)]
    lines = []
    for row in rows:
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1]
        line = line.rstrip()
        lines.append(_shorten(line, max_width) if max_width else line)
    return "\n".join(lines)


def _shorten(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[:max(chars - 3, 0)] + "..."


def summary_line(accepted: int, refused: int, wanted: int) -> str:
    return (f"{accepted + refused} of {wanted} sites acknowledged ({accepted} accepted, "
            f"{refused} refused)")


# ---- status: the summary (pure) --------------------------------------------------------------

def summarise_statuses(statuses: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Sites known, online, offline; schedules per state over every site's `schedules`
    (`accepted` counts as pending); phaeton versions and what steers the battery."""
    online = [s for s in statuses.values() if s.get("online")]
    states = Counter(entry.get("state") for status in online
                     for entry in status.get("schedules") or [] if isinstance(entry, dict))
    return {
        "sites": len(statuses),
        "online": len(online),
        "offline": len(statuses) - len(online),
        "schedules": {label: states.get(state, 0) for state, label in STATUS_STATES.items()},
        "versions": dict(sorted(Counter(str(s.get("version")) for s in online).items())),
        "sources": dict(sorted(Counter(str(s.get("source")) for s in online).items())),
    }


def format_status_summary(summary: Mapping[str, Any]) -> str:
    schedules = ", ".join(f"{count} {label}" for label, count in summary["schedules"].items())
    lines = [f"{summary['sites']} sites: {summary['online']} online, "
             f"{summary['offline']} offline",
             f"schedules: {schedules}"]
    if summary["versions"]:
        lines.append("versions: " + ", ".join(f"{version} on {count}" for version, count
                                              in summary["versions"].items()))
    if summary["sources"]:
        lines.append("running: " + ", ".join(f"{source} on {count}" for source, count
                                             in summary["sources"].items()))
    return "\n".join(lines)
