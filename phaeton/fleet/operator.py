"""The operator's side of the fleet: `phaeton fleet push`, `watch` and `status` (docs/fleet.md,
"Operator commands"), over the operator's broker with the same MQTT client as the sites.

- `push` signs one schedule per site (each with its own `site` and key) and publishes it at
  QoS 1, many in flight at once; it returns when the broker confirmed every one. A connection
  that drops on the way is waited for (up to `--timeout`) and the unconfirmed ones are sent
  again: a site answers a repeat with the state it has, so sending twice is harmless.
- `watch` follows `<p>/+/status` and `<p>/+/ack`: per site whether it is online, what steers it,
  its newest schedule and that schedule's latest state. Acks repeat at QoS 1; they are dropped
  by (site, seq).
- `status` reads the retained statuses and counts.

The pure parts (no I/O) are plain functions and classes: `parse_broker`, `read_sites_csv`,
`prepare_push` here, and in `ack_book.py` the per-site bookkeeping of acks, the table and the
status summary. The I/O parts (`push_envelopes`, `Watcher`) take
`BrokerOptions`; benchmarks/fleet_bench.py drives them in-process.

Exit codes: 0 done, 1 the broker could not be reached or `watch --until-acked` timed out, 2 an
unusable schedule, sites file or option (nothing was sent).
"""
from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import math
import secrets
import shutil
import ssl
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phaeton.fleet import contract
from phaeton.fleet.contract import Refusal, Schedule, iso, topic
from phaeton.fleet.mqtt_client import MqttClient, MqttDisconnected
from phaeton.fleet.link import BrokerLink
from phaeton.fleet.ack_book import (AckBook, ScheduleKey, format_status_summary, format_table,
                                    schedule_text, summarise_statuses, summary_line,
                                    table_rows)

EXIT_OK, EXIT_FAILED, EXIT_UNUSABLE = 0, 1, 2

DEFAULT_BROKER = "127.0.0.1:1883"
CONNECT_TIMEOUT_S = 10.0
PUSH_CONCURRENCY = 100         # schedules in flight at once (awaiting their PUBACK)
RETRY_PAUSE_S = 0.1            # after a publish failed on a dropped connection
REDRAW_S = 1.0                 # the live table is redrawn at most this often




class FleetCommandError(Exception):
    """A `phaeton fleet` command cannot go on: one line for the user and the exit code."""

    def __init__(self, message: str, code: int = EXIT_UNUSABLE):
        super().__init__(message)
        self.code = code


# ---- the broker ------------------------------------------------------------------------------

@dataclass(frozen=True)
class BrokerOptions(BrokerLink):
    """The options every fleet command takes: the broker and the topics' prefix."""

    prefix: str = contract.DEFAULT_TOPIC_PREFIX


def parse_broker(text: str, *, tls: bool = False) -> tuple[str, int]:
    """`host:port`, `host` (port 1883, or 8883 with TLS) or `[v6-address]:port`."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f"expected [address]:port, got {text!r}")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError(f"no host in {text!r}")
    if not port_text:
        return host, 8883 if tls else 1883
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"the port must be 1..65535, got {port_text!r}")
    return host, int(port_text)


def parse_prefix(text: str) -> str:
    prefix = text.strip().rstrip("/")
    if not prefix or "+" in prefix or "#" in prefix:
        raise ValueError(f"a topic prefix has no '+' or '#' and is not empty, got {text!r}")
    return prefix


def broker_options(args: Any) -> BrokerOptions:
    """BrokerOptions from the parsed command line; FleetCommandError (exit 2) if one is wrong."""
    tls = bool(getattr(args, "ca_file", None) or getattr(args, "cert_file", None))
    try:
        host, port = parse_broker(getattr(args, "broker", None) or DEFAULT_BROKER, tls=tls)
    except ValueError as exc:
        raise FleetCommandError(f"--broker: {exc}") from None
    try:
        prefix = parse_prefix(getattr(args, "topic_prefix", None)
                              or contract.DEFAULT_TOPIC_PREFIX)
    except ValueError as exc:
        raise FleetCommandError(f"--topic-prefix: {exc}") from None
    if getattr(args, "key_file", None) and not getattr(args, "cert_file", None):
        raise FleetCommandError("--key-file needs --cert-file")
    return BrokerOptions(host, port, args.username, args.password, args.ca_file,
                         args.cert_file, args.key_file, prefix=prefix)


def random_client_id(kind: str) -> str:
    return f"phaeton-{kind}-{secrets.token_hex(4)}"


def make_client(opts: BrokerOptions, client_id: str, *, clean_session: bool,
                on_message=None, on_connect=None, on_disconnect=None,
                connect_timeout_s: float = CONNECT_TIMEOUT_S,
                backoff_max_s: float = 2.0) -> MqttClient:
    """An MqttClient for an operator tool: quick reconnects (a push waits for the broker)."""
    try:
        context = opts.ssl_context()
    except (OSError, ssl.SSLError) as exc:
        raise FleetCommandError(f"cannot use the TLS files: {exc}") from None
    return MqttClient(opts.host, opts.port, client_id, username=opts.username,
                      password=opts.password, ssl_context=context,
                      clean_session=clean_session, on_message=on_message,
                      on_connect=on_connect, on_disconnect=on_disconnect,
                      backoff_initial_s=0.2, backoff_max_s=backoff_max_s,
                      connect_timeout_s=min(connect_timeout_s, CONNECT_TIMEOUT_S))


async def connect(client: MqttClient, opts: BrokerOptions, timeout_s: float) -> None:
    """Start `client` and wait for its first connection; FleetCommandError (exit 1) if the
    broker does not take it within `timeout_s`."""
    client.start()
    if not await client.wait_connected(timeout_s):
        reason = client.last_error or "no answer"
        await client.stop()
        raise FleetCommandError(f"no connection to the broker at {opts.address} within "
                                f"{timeout_s:g} s: {reason}", EXIT_FAILED)


# ---- push: the pure part ---------------------------------------------------------------------

def load_schedule_file(path: str) -> dict[str, Any]:
    """The schedule body in a JSON file; FleetCommandError (exit 2)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FleetCommandError(f"{path}: cannot read the file: "
                                f"{getattr(exc, 'strerror', None) or exc}") from None
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise FleetCommandError(f"{path}: not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise FleetCommandError(f"{path}: a schedule is a JSON object "
                                "(docs/fleet-examples/schedule.json)")
    return body


def read_sites_csv(text: str, name: str = "sites.csv") -> list[tuple[str, str]]:
    """(site_id, hmac_key) per line of a CSV with the header `site_id,hmac_key` (other
    columns are ignored; blank lines and lines starting with # are skipped).
    FleetCommandError (exit 2) naming the line."""
    reader = csv.reader(io.StringIO(text))
    columns: tuple[int, int] | None = None
    sites: list[tuple[str, str]] = []
    lines: dict[str, int] = {}
    for row in reader:
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        where = f"{name}:{reader.line_num}"
        if columns is None:
            header = [cell.lower() for cell in cells]
            if "site_id" not in header or "hmac_key" not in header:
                raise FleetCommandError(f"{where}: the first line must be the header "
                                        f"site_id,hmac_key, got {','.join(row)!r}")
            columns = header.index("site_id"), header.index("hmac_key")
            continue
        if len(cells) <= max(columns):
            raise FleetCommandError(f"{where}: needs a site_id and an hmac_key")
        site_id, key = cells[columns[0]], cells[columns[1]]
        if not contract.SITE_ID_RE.match(site_id):
            raise FleetCommandError(f"{where}: site_id {site_id!r} must be 1 to 64 of "
                                    "A-Z a-z 0-9 _ . -")
        if len(key) < contract.MIN_KEY_CHARS:
            raise FleetCommandError(f"{where}: the hmac_key of {site_id} has {len(key)} "
                                    f"characters, at least {contract.MIN_KEY_CHARS} are needed")
        if site_id in lines:
            raise FleetCommandError(f"{where}: {site_id} is listed twice (also on line "
                                    f"{lines[site_id]})")
        lines[site_id] = reader.line_num
        sites.append((site_id, key))
    if not sites:
        raise FleetCommandError(f"{name}: no sites (a header site_id,hmac_key, then one line "
                                "per site)")
    return sites


@dataclass(frozen=True)
class Outgoing:
    """One sealed schedule for one site."""

    site: str
    topic: str
    payload: bytes


def prepare_push(body: Mapping[str, Any], sites: list[tuple[str, str]], prefix: str, *,
                 now_s: float | None = None) -> tuple[Schedule, list[Outgoing]]:
    """The schedule and one envelope per site: `site` set to the site's id, signed with its
    key. Refusal (the contract's sentence, naming the field) when the body is not a valid
    schedule, or when its window ended before `now_s` (every site would refuse it)."""
    schedule: Schedule | None = None
    outgoing = []
    for site_id, key in sites:
        one = {**body, "site": site_id}
        parsed = contract.parse_schedule(one)
        schedule = schedule or parsed
        outgoing.append(Outgoing(site_id, topic(prefix, site_id, "schedule"),
                                 contract.seal(one, key)))
    if schedule is None:
        raise FleetCommandError("no sites to push to")
    if now_s is not None and schedule.end_s <= now_s:
        raise Refusal("expired", f"the schedule's window ended at {iso(schedule.end_s)}; "
                                 "every site would refuse it (set valid_from later)")
    return schedule, outgoing


# ---- push: the I/O ---------------------------------------------------------------------------

@dataclass
class PushReport:
    """What a push did: per site when its schedule first went out and when the broker
    confirmed it (the `clock` of `push_envelopes`), and how many were sent again."""

    sent: int = 0
    seconds: float = 0.0
    resent: int = 0
    first_sent: dict[str, float] = field(default_factory=dict)
    confirmed: dict[str, float] = field(default_factory=dict)


async def push_envelopes(client: MqttClient, outgoing: list[Outgoing], *,
                         timeout_s: float = CONNECT_TIMEOUT_S,
                         concurrency: int = PUSH_CONCURRENCY,
                         clock: Callable[[], float] = time.monotonic,
                         on_confirmed: Callable[[str, int], None] | None = None,
                         address: str = "the broker") -> PushReport:
    """Publish every envelope at QoS 1 and wait for each PUBACK, `concurrency` at a time.
    When the connection drops, wait up to `timeout_s` for it to come back and send the
    unconfirmed ones again; FleetCommandError (exit 1) if it does not come back."""
    report = PushReport()
    began = clock()
    gate = asyncio.Semaphore(concurrency)

    async def one(item: Outgoing) -> None:
        async with gate:
            while True:
                if not client.connected and not await client.wait_connected(timeout_s):
                    raise FleetCommandError(
                        f"lost the broker at {address} and it did not come back within "
                        f"{timeout_s:g} s ({client.last_error or 'no answer'})", EXIT_FAILED)
                if item.site in report.first_sent:
                    report.resent += 1
                else:
                    report.first_sent[item.site] = clock()
                try:
                    await client.publish(item.topic, item.payload, qos=1)
                except MqttDisconnected:
                    # publish can fail without yielding while `connected` still says True
                    # (the reader task notices the drop only when it runs): let it run
                    await asyncio.sleep(RETRY_PAUSE_S)
                    continue
                report.confirmed[item.site] = clock()
                report.sent += 1
                if on_confirmed is not None:
                    on_confirmed(item.site, report.sent)
                return

    tasks = [asyncio.ensure_future(one(item)) for item in outgoing]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is not None:
                raise task.exception()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        report.seconds = clock() - began
    return report


# ---- watch and status: the I/O ---------------------------------------------------------------

class Watcher:
    """A subscriber to `<p>/+/status` (and `<p>/+/ack`) that feeds an AckBook. With a
    `client_id` its session is persistent, so acks sent while it is away wait at the broker."""

    def __init__(self, opts: BrokerOptions, book: AckBook | None = None, *,
                 client_id: str | None = None, acks: bool = True,
                 on_line: Callable[[str], None] | None = None,
                 on_notice: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.opts, self.book = opts, book or AckBook(opts.prefix)
        self.on_line, self.on_notice, self.clock = on_line, on_notice, clock
        self.changed = asyncio.Event()
        persistent = client_id is not None
        self.client = make_client(opts, client_id or random_client_id("watch"),
                                  clean_session=not persistent, on_message=self._message,
                                  on_connect=self._connected, on_disconnect=self._dropped,
                                  backoff_max_s=5.0)
        leaves = ("status", "ack") if acks else ("status",)
        self.client.subscribe([topic(opts.prefix, "+", leaf) for leaf in leaves])

    def _message(self, message_topic: str, payload: bytes, _retain: bool) -> None:
        line = self.book.handle(message_topic, payload, self.clock())
        self.changed.set()
        if line is not None and self.on_line is not None:
            self.on_line(line)

    def _connected(self, session_present: bool) -> None:
        if self.on_notice is not None:
            session = "persistent session " + ("resumed" if session_present else "new") \
                if not self.client.clean_session else "clean session"
            self.on_notice(f"connected to {self.opts.address} as {self.client.client_id} "
                           f"({session})")

    def _dropped(self, reason: str) -> None:
        if self.on_notice is not None:
            self.on_notice(f"lost the broker at {self.opts.address} ({reason}); reconnecting")

    async def connect(self, timeout_s: float) -> None:
        await connect(self.client, self.opts, timeout_s)

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float | None) -> bool:
        """True once `predicate()` holds (checked after every message), False at the timeout."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            self.changed.clear()
            if predicate():
                return True
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self.changed.wait()

    async def stop(self) -> None:
        await self.client.stop()


# ---- the commands ----------------------------------------------------------------------------

def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def plan_push(args: Any, opts: BrokerOptions) -> tuple[Schedule, list[Outgoing]]:
    """Everything `push` checks before it connects; FleetCommandError (exit 2)."""
    body = load_schedule_file(args.schedule)
    if args.sites:
        if args.key:
            raise FleetCommandError("--key goes with --site; --sites takes the keys from the "
                                    "file")
        try:
            text = Path(args.sites).read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise FleetCommandError(f"{args.sites}: cannot read the file: "
                                    f"{getattr(exc, 'strerror', None) or exc}") from None
        sites = read_sites_csv(text, args.sites)
    else:
        if not args.key:
            raise FleetCommandError("--site needs --key (the site's fleet.hmac_key)")
        if not contract.SITE_ID_RE.match(args.site):
            raise FleetCommandError(f"--site: {args.site!r} must be 1 to 64 of "
                                    "A-Z a-z 0-9 _ . -")
        if len(args.key) < contract.MIN_KEY_CHARS:
            raise FleetCommandError(f"--key: a site key has at least {contract.MIN_KEY_CHARS} "
                                    f"characters, this one {len(args.key)}")
        sites = [(args.site, args.key)]
    try:
        return prepare_push(body, sites, opts.prefix, now_s=time.time())
    except Refusal as refusal:
        raise FleetCommandError(f"{args.schedule}: {refusal.reason}") from None


async def run_push(args: Any, opts: BrokerOptions,
                   planned: tuple[Schedule, list[Outgoing]] | None = None) -> int:
    schedule, outgoing = planned or plan_push(args, opts)
    client = make_client(opts, random_client_id("push"), clean_session=True,
                         connect_timeout_s=args.timeout)
    await connect(client, opts, args.timeout)
    try:
        report = await push_envelopes(client, outgoing, timeout_s=args.timeout,
                                      address=opts.address)
    finally:
        await client.stop()
    rate = report.sent / report.seconds if report.seconds > 0 else math.inf
    count = f"{report.sent} site{'' if report.sent == 1 else 's'}"
    again = f", {report.resent} sent again after a lost connection" if report.resent else ""
    print(f"sent {schedule.id} v{schedule.version} to {count} in {report.seconds:.2f} s "
          f"({rate:.0f}/s, each confirmed by the broker{again})")
    return EXIT_OK


def _redraw(book: AckBook, footer: str) -> None:
    width = shutil.get_terminal_size((120, 40)).columns
    sys.stdout.write("\x1b[H\x1b[J" + format_table(table_rows(book), width) + "\n" + footer
                     + "\n")
    sys.stdout.flush()


def _progress(book: AckBook, args: Any) -> tuple[ScheduleKey | None, str]:
    key = book.newest(args.schedule_id)
    accepted, refused = book.answers(key)
    wanted = args.until_acked or len(book.sites)
    return key, summary_line(len(accepted), len(refused), wanted)


async def run_watch(args: Any, opts: BrokerOptions) -> int:
    tty = sys.stdout.isatty()

    def event(line: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)

    book = AckBook(opts.prefix)
    watcher = Watcher(opts, book, client_id=args.client_id, on_line=None if tty else event,
                      on_notice=None if tty else _stderr)
    timeout = args.timeout
    await watcher.connect(min(CONNECT_TIMEOUT_S, timeout) if timeout else CONNECT_TIMEOUT_S)
    deadline = None if timeout is None else time.monotonic() + timeout
    drawn, last_draw, reached = -1, 0.0, False

    def done() -> bool:
        if not args.until_acked:
            return False
        accepted, refused = book.answers(book.newest(args.schedule_id))
        return len(accepted) + len(refused) >= args.until_acked

    try:
        while True:
            if await watcher.wait_for(done, REDRAW_S if tty else None if deadline is None
                                      else max(0.0, deadline - time.monotonic())):
                reached = True
                break
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            if tty and book.changes != drawn and now - last_draw >= REDRAW_S:
                drawn, last_draw = book.changes, now
                _redraw(book, _progress(book, args)[1])
    finally:
        await watcher.stop()
    key, line = _progress(book, args)
    accepted, refused = book.answers(key)
    if tty:
        sys.stdout.write("\x1b[H\x1b[J")
    print(format_table(table_rows(book)))
    if key is not None:
        print(f"schedule {schedule_text(*key)}")
    if book.repeats:
        print(f"{book.repeats} repeated ack{'' if book.repeats == 1 else 's'} dropped")
    print(line, flush=True)
    if args.until_acked and not reached:
        what = schedule_text(*key) if key else "a schedule"
        _stderr(f"phaeton fleet watch: only {len(accepted) + len(refused)} of "
                f"{args.until_acked} sites acknowledged {what} within {timeout:g} s")
        return EXIT_FAILED
    return EXIT_OK


async def run_status(args: Any, opts: BrokerOptions) -> int:
    watcher = Watcher(opts, acks=False)
    await watcher.connect(args.timeout)
    try:
        await asyncio.sleep(args.wait)
    finally:
        await watcher.stop()
    summary = summarise_statuses(watcher.book.statuses)
    print(json.dumps(summary, indent=2) if args.json else format_status_summary(summary))
    return EXIT_OK


def run_from_cli(args: Any) -> int:
    """`phaeton fleet push|watch|status` (phaeton/cli.py declares the options)."""
    command = args.fleet_command
    try:
        opts = broker_options(args)
        if command == "push":
            planned = plan_push(args, opts)  # a wrong file or option fails before connecting
            return asyncio.run(run_push(args, opts, planned))
        if command == "watch":
            return asyncio.run(run_watch(args, opts))
        return asyncio.run(run_status(args, opts))
    except FleetCommandError as exc:
        _stderr(f"phaeton fleet {command}: {exc}")
        return exc.code
