"""The fleet at size: N simulated sites (default 1,000) on one local mosquitto, one schedule pushed
to all of them, the broker restarted in the middle of the push.

Every site is a real `FleetSite` (phaeton/fleet/site_client.py) with its own SQLite store (a
file each) and its own MQTT connection (persistent session, last will), all in this process on
one event loop, without D-Bus: its readings are a constant. The operator side is the code of
`phaeton fleet` (phaeton/fleet/operator.py): `prepare_push` signs the schedule per site (each
site its own random key), `push_envelopes` publishes at QoS 1 with 100 in flight, and an
in-process `Watcher` with a persistent session collects the acks. `phaeton fleet watch
--until-acked N` also runs as a subprocess on the same broker (persistent session too); its
summary line is printed.

Measured, on the operator's clock (time.monotonic of this process):
- per site, from the schedule's first publish to the arrival of its `accepted` ack: p50, p99,
  max; and the throughput in acks per second;
- with --restart (the default): the broker is stopped (SIGTERM: it saves its persistence file)
  once half of the schedules were confirmed, stays down --down-s seconds and starts again on
  the same port. The push waits for it and sends the unconfirmed schedules again.
- lost schedules: sites that never acked; lost acks: per site, the seqs the broker confirmed
  to the site (its outbox's `delivered`) that the watcher never saw, plus gaps in the seqs the
  watcher saw; and acks still waiting in a site's outbox at the end. All must be 0.

There is no reference implementation to compare with, so it prints the p99 as a share of the
15-minute slot (the time a schedule has to arrive before its slot matters) and the broker's
setup.

    .venv/bin/python benchmarks/fleet_bench.py                 # 1,000 sites, broker restart
    .venv/bin/python benchmarks/fleet_bench.py --sites 200 --no-restart

The script owns everything it uses: a temp dir (stores, broker data, logs) removed at the end,
its mosquitto (tests/brokers.py's, on a free port) and the watch subprocess. Exit code 1 when
something was lost.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import math
import os
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from brokers import MOSQUITTO, Mosquitto  # noqa: E402

from phaeton import __version__  # noqa: E402
from phaeton.fleet import operator  # noqa: E402
from phaeton.fleet.contract import SLOT_S, SiteLimits, iso  # noqa: E402
from phaeton.fleet.link import BrokerLink  # noqa: E402
from phaeton.fleet.site_client import FleetSite  # noqa: E402
from phaeton.fleet.slots import BatteryFacts, FleetReadings  # noqa: E402
from phaeton.fleet.mqtt_client import MqttDisconnected  # noqa: E402
from phaeton.store.fleet_store import FleetStore  # noqa: E402

LIMITS = SiteLimits(max_charge_kw=5, max_discharge_kw=5, soc_min_pct=10, soc_max_pct=100,
                    import_limit_kw=17.25)
BATTERY = BatteryFacts(capacity_kwh=10, soc_min=0.1, soc_max=1.0, charge_efficiency=0.95,
                       discharge_efficiency=0.95)
READINGS = FleetReadings(soc_pct=50, battery_w=0, grid_w=0, pv_w=0, consumption_w=500)
FILES_PER_SITE = 4           # its socket, and SQLite's database, -wal and -shm files
TICK_S = 1.0


class RecordingStore(FleetStore):
    """A site's store that remembers which ack seqs the broker confirmed (the outbox deletes
    them then), to compare with what the watcher saw."""

    def __init__(self, path):
        super().__init__(path)
        self.confirmed_seqs: list[int] = []

    def delivered(self, seq: int) -> None:
        super().delivered(seq)
        self.confirmed_seqs.append(seq)


class DropNoise(logging.Filter):
    """Counts (instead of printing) what asyncio logs when the broker goes away under a
    thousand connections: writes to a socket already reset ("socket.send() raised
    exception.") and publishes that were waiting in drain() when the connection dropped, whose
    PUBACK future then holds an MqttDisconnected nobody retrieves (mqtt_client.py)."""

    def __init__(self):
        super().__init__()
        self.writes_after_reset = 0
        self.unretrieved = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("socket.send() raised exception"):
            self.writes_after_reset += 1
            return False
        return True

    def exception_handler(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        if isinstance(context.get("exception"), MqttDisconnected) \
                and context.get("message", "").startswith("Future exception was never"):
            self.unretrieved += 1
            return
        loop.default_exception_handler(context)


def raise_file_limit(need: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft < need:
        sys.exit(f"fleet_bench: needs {need} open files, the hard limit is {hard}")
    return soft


def percentile(values: list[float], share: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def mosquitto_version() -> str:
    result = subprocess.run([MOSQUITTO, "-h"], capture_output=True, text=True)
    first = (result.stdout or result.stderr).splitlines()[0]
    return first.replace("mosquitto version ", "")


def schedule_body(slots: int) -> dict:
    """A day of quarter hours from the next quarter hour: charge, hold, discharge, local."""
    now = time.time()
    pattern = [{"battery": "charge", "kw": 3.0}, {"battery": "soc", "target_pct": 80},
               {"battery": "idle"}, {"battery": "discharge", "kw": 2.5}, {"battery": "local"}]
    return {"type": "schedule", "id": f"bench-{int(now)}", "version": 1, "site": "-",
            "issued_at": iso(now), "valid_from": iso((int(now) // SLOT_S + 1) * SLOT_S),
            "priority": "fleet",
            "slots": [pattern[(i * len(pattern)) // slots] for i in range(slots)]}


async def tick_sites(sites: list[FleetSite]) -> None:
    """What the service's control tick does for the fleet: status and telemetry publishing."""
    while True:
        began = time.monotonic()
        for index, site in enumerate(sites):
            site.tick()
            if index % 50 == 49:
                await asyncio.sleep(0)
        await asyncio.sleep(max(0.1, TICK_S - (time.monotonic() - began)))


async def wait_until(predicate, timeout_s: float, step_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step_s)
    return predicate()


def last_lines(path: Path, count: int) -> list[str]:
    return path.read_text(errors="replace").splitlines()[-count:] if path.exists() else []


async def run(args: argparse.Namespace, work: Path) -> int:
    n = args.sites
    noise = DropNoise()
    logging.getLogger("asyncio").addFilter(noise)
    asyncio.get_running_loop().set_exception_handler(noise.exception_handler)
    # a SIGTERM cleans up like Ctrl-C: the broker runs in its own session and would outlive us
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    limit = raise_file_limit(FILES_PER_SITE * n + 256)
    broker = Mosquitto(work / "broker")
    # Every packet of N sites in the log would be most of the broker's work; log what an
    # operator would (connections, warnings, errors).
    config = broker.config_file.read_text().replace(
        "log_type all", "log_type error\nlog_type warning\nlog_type notice")
    broker.config_file.write_text(config)
    broker.start()
    opts = operator.BrokerOptions(broker.host, broker.port)
    sites: list[FleetSite] = []
    watcher = push_client = watch_cli = ticker = None
    restart: dict = {}
    try:
        print(f"fleet benchmark: {n} sites, phaeton {__version__}, python "
              f"{sys.version.split()[0]}, {os.cpu_count()} cores; "
              f"{'broker restart during the push' if args.restart else 'no broker restart'}")
        settings = {line.split()[0]: line.split(None, 1)[1] for line in config.splitlines()
                    if line.strip() and len(line.split()) > 1}
        print(f"broker: mosquitto {mosquitto_version()} on {broker.host}:{broker.port}, "
              f"persistence {settings['persistence']} (autosave_interval "
              f"{settings['autosave_interval']} s, saved on SIGTERM), max_queued_messages "
              f"{settings['max_queued_messages']}, no TLS, anonymous")

        # ---- the sites -------------------------------------------------------------------
        began = time.monotonic()
        for number in range(1, n + 1):
            site_id = f"site-{number:05d}"
            site = FleetSite(site_id=site_id, key=secrets.token_hex(16),
                             store=RecordingStore(work / "sites" / f"{site_id}.db"),
                             limits=LIMITS, battery=BATTERY, readings=lambda: READINGS,
                             version=__version__)
            site.connect(BrokerLink(broker.host, broker.port))
            sites.append(site)
            if number % 100 == 0:
                await asyncio.sleep(0)
        connected = await asyncio.gather(*(s.client.wait_connected(120) for s in sites))
        if not all(connected):
            print(f"only {sum(connected)} of {n} sites connected", file=sys.stderr)
            return 1
        ticker = asyncio.create_task(tick_sites(sites))
        setup_s = time.monotonic() - began

        # ---- the watchers: in-process (the measurements) and the CLI (its summary) ----------
        watcher = operator.Watcher(opts, client_id="bench-ops")
        await watcher.connect(10)
        book = watcher.book
        if not await watcher.wait_for(
                lambda: sum(1 for v in book.sites.values() if v.online) == n, 120):
            print("not every site published its status", file=sys.stderr)
            return 1
        print(f"setup: {n} sites (own SQLite file, own MQTT connection, persistent session) "
              f"connected and online in {setup_s:.1f} s; open-file limit {limit}")

        body = schedule_body(args.slots)
        schedule, outgoing = operator.prepare_push(body, [(s.site_id, s.key) for s in sites],
                                                   opts.prefix, now_s=time.time())
        key = (schedule.id, schedule.version)
        watch_out, watch_err = work / "watch.out", work / "watch.err"
        with open(watch_out, "w") as out, open(watch_err, "w") as err:
            watch_cli = subprocess.Popen(
                [sys.executable, "-m", "phaeton", "fleet", "watch", "--broker",
                 f"{broker.host}:{broker.port}", "--client-id", "bench-watch-cli",
                 "--until-acked", str(n), "--schedule-id", schedule.id, "--timeout", "600"],
                stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)})
        # subscribed once the retained statuses come in
        if not await wait_until(lambda: " status " in watch_out.read_text(), 60, 0.1):
            print(f"phaeton fleet watch did not start: {last_lines(watch_err, 5)}",
                  file=sys.stderr)
            return 1

        # ---- the push, with the broker restart in the middle ------------------------------
        push_client = operator.make_client(opts, operator.random_client_id("push"),
                                           clean_session=True)
        await operator.connect(push_client, opts, 10)

        async def start_again() -> None:
            await asyncio.sleep(args.down_s)
            await asyncio.to_thread(broker.start)
            restart["up"] = time.monotonic()

        def on_confirmed(_site: str, count: int) -> None:
            if args.restart and count == n // 2 and "down" not in restart:
                # synchronously, so exactly half were confirmed when it goes (SIGTERM, it
                # saves its sessions and queues, then exits)
                stopping = time.monotonic()
                broker.stop()
                restart["down"] = time.monotonic()
                restart["stop_s"] = restart["down"] - stopping
                restart["task"] = asyncio.get_running_loop().create_task(start_again())

        envelope_bytes = len(outgoing[0].payload)
        report = await operator.push_envelopes(push_client, outgoing, timeout_s=120,
                                               on_confirmed=on_confirmed,
                                               address=opts.address)
        if "task" in restart:
            await restart.pop("task")
        push_s = report.seconds

        # ---- wait for every ack -----------------------------------------------------------
        all_acked = await watcher.wait_for(lambda: len(book.answers(key)[0]) +
                                           len(book.answers(key)[1]) >= n, 180)

        def confirmed_seen() -> bool:
            return all(s.store.pending_count() == 0
                       and set(s.store.confirmed_seqs) <= book.site(s.site_id).seqs
                       for s in sites)

        await wait_until(confirmed_seen, 60, 0.2)
        try:
            cli_rc = await asyncio.to_thread(watch_cli.wait, 120)
        except subprocess.TimeoutExpired:
            cli_rc = None

        # ---- the figures ------------------------------------------------------------------
        accepted, refused = book.answers(key)
        latencies = [book.sites[s].schedules[key].accepted_at - report.first_sent[s]
                     for s in accepted]
        first_publish = min(report.first_sent.values())
        last_ack = max(book.sites[s].schedules[key].accepted_at for s in accepted)
        schedules_lost = n - len(accepted) - len(refused)
        acks_lost = gaps = outbox_left = 0
        for site in sites:
            seen = book.site(site.site_id).seqs
            acks_lost += len(set(site.store.confirmed_seqs) - seen)
            gaps += len(set(range(1, max(seen, default=0) + 1)) - seen)
            outbox_left += site.store.pending_count()
        ack_messages = sum(len(site.store.confirmed_seqs) for site in sites)

        print(f"schedule: {schedule.id} v1, {len(schedule.slots)} slots, envelope "
              f"{envelope_bytes / 1000:.1f} kB, signed per site (own key each)")
        line = f"push: {report.sent} schedules confirmed by the broker (QoS 1, " \
               f"{operator.PUSH_CONCURRENCY} in flight) in {push_s:.2f} s"
        if "down" in restart:
            line += (f"; broker stopped after {n // 2} were confirmed (its shutdown held "
                     f"this process {restart['stop_s']:.2f} s), back "
                     f"{restart['up'] - restart['down']:.1f} s later, {report.resent} sent "
                     "again")
        print(line)
        print(f"latency, schedule publish -> accepted ack at the operator ({len(latencies)} "
              f"sites): p50 {percentile(latencies, 0.5):.3f} s, p99 "
              f"{percentile(latencies, 0.99):.3f} s, max {max(latencies):.3f} s")
        print(f"throughput: {len(accepted)} accepted acks in {last_ack - first_publish:.2f} s "
              f"= {len(accepted) / (last_ack - first_publish):.0f} acks/s (first publish to "
              f"last accepted ack); {ack_messages} ack messages confirmed in all, "
              f"{book.repeats} repeats dropped by (site, seq)")
        p99 = percentile(latencies, 0.99)
        print(f"p99 / 15-min slot: {p99 / SLOT_S:.5f} ({p99:.2f} s of {SLOT_S} s)")
        print(f"schedules lost (sites that never acked): {schedules_lost}")
        print(f"acks lost (confirmed to a site by the broker, never seen by the watcher): "
              f"{acks_lost}; seq gaps at the watcher: {gaps}")
        print(f"acks still in a site outbox: {outbox_left}")
        summary = [ln for ln in last_lines(watch_out, 5) if "sites acknowledged" in ln]
        print(f"phaeton fleet watch --until-acked {n} (subprocess, persistent session): "
              f"{summary[-1] if summary else '(no summary)'} (exit {cli_rc})")
        if refused:
            print(f"refused: {len(refused)} (unexpected)")
        gc.collect()             # the unretrieved futures are reported when collected
        if noise.writes_after_reset or noise.unretrieved:
            print(f"asyncio noise on the dropped connections (counted, not printed): "
                  f"{noise.writes_after_reset} writes to reset sockets, {noise.unretrieved} "
                  "unretrieved MqttDisconnected futures of publishes caught in drain()")
        ok = all_acked and not schedules_lost and not acks_lost and not gaps \
            and not outbox_left and cli_rc == 0 and not refused
        return 0 if ok else 1
    finally:
        if "task" in restart:     # a broker start in its thread: let it finish, then stop it
            await asyncio.gather(restart["task"], return_exceptions=True)
        if ticker is not None:
            ticker.cancel()
        if watch_cli is not None and watch_cli.poll() is None:
            watch_cli.kill()
            watch_cli.wait()
        if push_client is not None:
            await push_client.stop()
        if watcher is not None:
            await watcher.stop()
        await asyncio.gather(*(site.close() for site in sites), return_exceptions=True)
        broker.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, default=1000, metavar="N",
                        help="simulated sites (default 1000)")
    parser.add_argument("--restart", action=argparse.BooleanOptionalAction, default=True,
                        help="stop the broker half-way through the push and start it again "
                             "(default on)")
    parser.add_argument("--down-s", type=float, default=2.0, metavar="S",
                        help="seconds the broker stays down (default 2)")
    parser.add_argument("--slots", type=int, default=96, metavar="N",
                        help="quarter hours in the schedule (default 96, one day)")
    args = parser.parse_args()
    if args.sites < 2:
        parser.error("--sites must be at least 2")
    with tempfile.TemporaryDirectory(prefix="phaeton-fleet-bench-") as work:
        began = time.monotonic()
        try:
            code = asyncio.run(run(args, Path(work)))
        except (asyncio.CancelledError, KeyboardInterrupt):
            print("fleet_bench: interrupted (broker, watcher and temp dir cleaned up)",
                  file=sys.stderr)
            return 130
        print(f"ran {time.monotonic() - began:.0f} s")
        return code


if __name__ == "__main__":
    sys.exit(main())
