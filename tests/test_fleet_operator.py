"""`phaeton fleet push|watch|status` (phaeton/fleet/operator.py) as an operator runs them: the
command in a subprocess, a real mosquitto of the test's own, and real `FleetSite`s (SQLite
stores, the site's MQTT client) answering. Every ack and status the sites send on the way is
also checked against docs/fleet.schema.json by an independent subscriber. The pure parts
(sites file, ack bookkeeping, table, status summary) are tested on their own at the end."""
from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from brokers import free_port, mosquitto  # noqa: F401  (fixture)
from jsonschema import Draft202012Validator

from phaeton.fleet import ack_book, operator
from phaeton.fleet.contract import SiteLimits, iso
from phaeton.fleet.mqtt_client import MqttClient
from phaeton.fleet.link import BrokerLink
from phaeton.fleet.site_client import FleetSite
from phaeton.fleet.slots import BatteryFacts, FleetReadings
from phaeton.store.fleet_store import FleetStore

REPO = Path(__file__).resolve().parent.parent
SCHEMA = Draft202012Validator(json.loads((REPO / "docs" / "fleet.schema.json").read_text()))
KEYS = {"site-a": "key-of-site-a-0123456789", "site-b": "key-of-site-b-0123456789",
        "site-c": "key-of-site-c-0123456789"}
LIMITS = SiteLimits(max_charge_kw=5, max_discharge_kw=5, soc_min_pct=10, soc_max_pct=100,
                    import_limit_kw=17.25)
BATTERY = BatteryFacts(capacity_kwh=10, soc_min=0.1, soc_max=1.0, charge_efficiency=0.95,
                       discharge_efficiency=0.95)


def readings() -> FleetReadings:
    return FleetReadings(soc_pct=50, battery_w=0, grid_w=0, pv_w=0, consumption_w=500)


def schedule_body(ident="trade-1", version=1, slots=None) -> dict:
    """A schedule from the next quarter hour (so no site finds it expired)."""
    now = time.time()
    return {"type": "schedule", "id": ident, "version": version, "site": "set-by-push",
            "issued_at": iso(now), "valid_from": iso((int(now) // 900 + 1) * 900),
            "priority": "fleet",
            "slots": slots or [{"battery": "charge", "kw": 3.0}, {"battery": "soc",
                                                                  "target_pct": 80},
                               {"battery": "idle"}, {"battery": "discharge", "kw": 2.5}]}


def write_json(path: Path, body: dict) -> str:
    path.write_text(json.dumps(body, indent=2))
    return str(path)


def write_sites(path: Path, keys: dict[str, str]) -> str:
    path.write_text("site_id,hmac_key\n" + "".join(f"{s},{k}\n" for s, k in keys.items()))
    return str(path)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def _command(args) -> list[str]:
    return [sys.executable, "-m", "phaeton", "fleet", *map(str, args)]


_ENV = {**os.environ, "PYTHONPATH": str(REPO)}


async def phaeton_fleet(*args, timeout_s=60.0) -> Result:
    """Run `phaeton fleet ARGS` to its end (the sites keep running on this event loop)."""
    process = await asyncio.create_subprocess_exec(
        *_command(args), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=REPO, env=_ENV)
    out, err = await asyncio.wait_for(process.communicate(), timeout_s)
    return Result(process.returncode, out.decode(), err.decode())


class Background:
    """`phaeton fleet ARGS` running beside the test; its stdout lines as they come."""

    def __init__(self):
        self.lines: list[str] = []
        self.process = None
        self._reader = None

    async def start(self, *args) -> "Background":
        self.process = await asyncio.create_subprocess_exec(
            *_command(args), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            cwd=REPO, env=_ENV)
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        async for raw in self.process.stdout:
            self.lines.append(raw.decode().rstrip("\n"))

    async def wait_line(self, predicate, timeout_s=15.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in self.lines:
                if predicate(line):
                    return line
            if self.process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"no such line; got {self.lines}")

    async def finish(self, timeout_s=60.0) -> Result:
        err = await asyncio.wait_for(self.process.stderr.read(), timeout_s)
        await asyncio.wait_for(self.process.wait(), timeout_s)
        await self._reader
        return Result(self.process.returncode, "\n".join(self.lines) + "\n", err.decode())

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


class Probe:
    """An independent subscriber: every status and ack the sites send, checked against the
    contract's schema."""

    def __init__(self, broker):
        self.statuses: dict[str, dict] = {}
        self.acks: list[dict] = []
        self.invalid: list[str] = []
        self.client = MqttClient(broker.host, broker.port, "test-probe", clean_session=True,
                                 on_message=self._message)
        self.client.subscribe(["phaeton/fleet/+/status", "phaeton/fleet/+/ack"])

    def _message(self, message_topic, payload, _retain):
        message = json.loads(payload)
        for error in SCHEMA.iter_errors(message):
            self.invalid.append(f"{message_topic} {message}: {error.message}")
        if message_topic.endswith("/status"):
            self.statuses[message["site"]] = message
        else:
            self.acks.append(message)

    def schedules(self, site_id) -> list[tuple[str, int, str]]:
        status = self.statuses.get(site_id) or {}
        return [(s["id"], s["version"], s["state"]) for s in status.get("schedules", [])]


async def wait_for(predicate, timeout_s=10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


@dataclass
class Fleet:
    broker: object
    sites: dict[str, FleetSite]
    probe: Probe
    tmp: Path

    @property
    def broker_option(self) -> list[str]:
        return ["--broker", f"{self.broker.host}:{self.broker.port}"]


@pytest.fixture
async def fleet(mosquitto, tmp_path):
    """Three real sites on the test's mosquitto, ticked every 0.1 s (status publishing), and
    a probe that has seen each one's retained status."""
    probe = Probe(mosquitto)
    probe.client.start()
    assert await probe.client.wait_connected(5)
    sites = {}
    for site_id, key in KEYS.items():
        site = FleetSite(site_id=site_id, key=key, store=FleetStore(tmp_path / f"{site_id}.db"),
                         limits=LIMITS, battery=BATTERY, readings=readings, version="0.1.0")
        site.connect(BrokerLink(mosquitto.host, mosquitto.port))
        sites[site_id] = site
    for site in sites.values():
        assert await site.client.wait_connected(5)

    async def tick():
        while True:
            for site in sites.values():
                if site.client is not None and site.client._task is not None:
                    site.tick()
            await asyncio.sleep(0.1)

    ticker = asyncio.create_task(tick())
    assert await wait_for(lambda: set(probe.statuses) == set(KEYS))
    yield Fleet(mosquitto, sites, probe, tmp_path)
    ticker.cancel()
    for site in sites.values():
        if site.client is not None and site.client._task is not None:
            await site.close()
    await probe.client.stop()
    assert probe.invalid == []


async def test_push_to_three_sites_one_with_a_wrong_key_and_watch_until_all_acked(fleet):
    schedule = write_json(fleet.tmp / "schedule.json", schedule_body())
    sites = write_sites(fleet.tmp / "sites.csv",
                        {**KEYS, "site-c": "not-the-key-of-site-c-0123"})
    watch = await Background().start("watch", *fleet.broker_option, "--until-acked", 3,
                                     "--timeout", 30)
    try:
        # the retained statuses arrive once its subscription is in place
        await watch.wait_line(lambda line: "site-a status online" in line)
        push = await phaeton_fleet("push", schedule, "--sites", sites, *fleet.broker_option)
        assert push.returncode == 0, push.stderr
        assert push.stdout.startswith("sent trade-1 v1 to 3 sites in ")
        result = await watch.finish()
    finally:
        await watch.kill()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "3 of 3 sites acknowledged (2 accepted, 1 refused)"
    assert "schedule trade-1 v1" in lines
    # one line per event (stdout is not a TTY): the refusal with its code and seq
    assert any(line.endswith("site-c ack #2 trade-1 v1 refused(bad_signature): the HMAC does "
                             "not match this site's key: the message was not signed by the "
                             "operator or was changed") for line in lines)
    header = lines.index(next(line for line in lines if line.startswith("site ")))
    table = {line.split()[0]: line.split() for line in lines[header + 1:header + 4]}
    # (site, online, source, schedule, state, detail); the source turns fleet:trade-1@1 if
    # the test ran past valid_from
    assert table["site-a"][:2] == ["site-a", "yes"] and table["site-a"][3:] == [
        "trade-1", "v1", "accepted"]
    assert table["site-b"][3:] == ["trade-1", "v1", "accepted"]
    assert table["site-c"][3:6] == ["trade-1", "v1", "refused(bad_signature)"]
    assert " ".join(table["site-c"][6:]).startswith("the HMAC does not match")
    # what the sites themselves hold
    assert fleet.sites["site-a"].store.get("trade-1", 1).state == "accepted"
    assert fleet.sites["site-b"].store.get("trade-1", 1).state == "accepted"
    assert fleet.sites["site-c"].store.get("trade-1", 1) is None


async def test_status_counts_sites_online_offline_and_schedules_per_state(fleet):
    body = schedule_body()
    for site_id in ("site-a", "site-b"):
        result = await phaeton_fleet("push", write_json(fleet.tmp / "v1.json", body),
                                     "--site", site_id, "--key", KEYS[site_id],
                                     *fleet.broker_option)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("sent trade-1 v1 to 1 site in ")
    second = write_json(fleet.tmp / "v2.json", {**schedule_body(), "version": 2})
    result = await phaeton_fleet("push", second, "--site", "site-a", "--key", KEYS["site-a"],
                                 *fleet.broker_option)
    assert result.returncode == 0, result.stderr
    await fleet.sites["site-c"].close()          # a clean stop leaves "offline" retained
    assert await wait_for(lambda: fleet.probe.schedules("site-a") == [
        ("trade-1", 1, "superseded"), ("trade-1", 2, "accepted")]
        and fleet.probe.schedules("site-b") == [("trade-1", 1, "accepted")]
        and fleet.probe.statuses["site-c"]["online"] is False)

    result = await phaeton_fleet("status", *fleet.broker_option, "--json", "--wait", 1)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert {k: summary[k] for k in ("sites", "online", "offline", "schedules", "versions")} == {
        "sites": 3, "online": 2, "offline": 1,
        "schedules": {"pending": 2, "executing": 0, "completed": 0, "superseded": 1,
                      "cancelled": 0},
        "versions": {"0.1.0": 2}}
    text = await phaeton_fleet("status", *fleet.broker_option, "--wait", 1)
    assert text.returncode == 0
    assert text.stdout.splitlines()[:2] == [
        "3 sites: 2 online, 1 offline",
        "schedules: 2 pending, 0 executing, 0 completed, 1 superseded, 0 cancelled"]


async def test_push_of_an_invalid_file_exits_2_naming_the_field_and_sends_nothing(fleet):
    sites = write_sites(fleet.tmp / "sites.csv", KEYS)
    wrong_slot = schedule_body(slots=[{"battery": "charge", "kw": 3}, {"battery": "idle",
                                                                      "kw": 1}])
    no_start = schedule_body()
    del no_start["valid_from"]
    off_quarter = {**schedule_body(), "valid_from": "2030-01-01T00:10:00Z"}
    cases = [
        (wrong_slot, "slots[1]: ['kw'] not allowed with battery 'idle'"),
        (no_start, "the schedule needs valid_from"),
        (off_quarter, "valid_from must be on a quarter hour (:00, :15, :30, :45)"),
        ({**schedule_body(), "colour": "red"}, "unknown fields ['colour']"),
    ]
    for body, sentence in cases:
        path = write_json(fleet.tmp / "bad.json", body)
        result = await phaeton_fleet("push", path, "--sites", sites, *fleet.broker_option)
        assert result.returncode == 2
        assert result.stdout == ""
        assert result.stderr == f"phaeton fleet push: {path}: {sentence}\n"
    expired = {**schedule_body(), "valid_from": "2020-01-01T00:00:00Z"}
    result = await phaeton_fleet("push", write_json(fleet.tmp / "old.json", expired),
                                 "--sites", sites, *fleet.broker_option)
    assert result.returncode == 2 and "window ended at 2020-01-01T01:00:00Z" in result.stderr
    broken_csv = fleet.tmp / "broken.csv"
    broken_csv.write_text("site_id,hmac_key\nsite-a,short\n")
    result = await phaeton_fleet("push", write_json(fleet.tmp / "ok.json", schedule_body()),
                                 "--sites", broken_csv, *fleet.broker_option)
    assert result.returncode == 2
    assert result.stderr == (f"phaeton fleet push: {broken_csv}:2: the hmac_key of site-a has "
                             "5 characters, at least 16 are needed\n")
    await asyncio.sleep(0.5)
    assert [site.received for site in fleet.sites.values()] == [0, 0, 0]
    assert fleet.probe.acks == []


async def test_push_with_no_broker_listening_fails_with_one_clear_line(tmp_path):
    port = free_port()
    began = time.monotonic()
    result = await phaeton_fleet("push", write_json(tmp_path / "s.json", schedule_body()),
                                 "--site", "site-a", "--key", KEYS["site-a"],
                                 "--broker", f"127.0.0.1:{port}", "--timeout", 1)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(
        f"phaeton fleet push: no connection to the broker at 127.0.0.1:{port} within 1 s: ")
    assert "Connect call failed" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert time.monotonic() - began < 8


async def test_watch_with_a_persistent_client_id_gets_the_acks_sent_while_it_was_away(fleet):
    first = await phaeton_fleet("watch", *fleet.broker_option, "--client-id", "ops-1",
                                "--timeout", 1)
    assert first.returncode == 0, first.stderr
    assert "as ops-1 (persistent session new)" in first.stderr

    push = await phaeton_fleet("push", write_json(fleet.tmp / "s.json", schedule_body()),
                               "--sites", write_sites(fleet.tmp / "sites.csv", KEYS),
                               *fleet.broker_option)
    assert push.returncode == 0, push.stderr
    # every site took it and the broker confirmed its acks: all sent while no watcher ran
    assert await wait_for(lambda: all(
        site.store.get("trade-1", 1) is not None and site.store.pending_count() == 0
        for site in fleet.sites.values()))

    clean = await phaeton_fleet("watch", *fleet.broker_option, "--until-acked", 3,
                                "--timeout", 2)
    assert clean.returncode == 1                 # acks are not retained: a new session has none
    assert "only 0 of 3 sites acknowledged a schedule within 2 s" in clean.stderr

    back = await phaeton_fleet("watch", *fleet.broker_option, "--client-id", "ops-1",
                               "--until-acked", 3, "--timeout", 20)
    assert back.returncode == 0, back.stderr
    assert "as ops-1 (persistent session resumed)" in back.stderr
    lines = back.stdout.splitlines()
    assert lines[-1] == "3 of 3 sites acknowledged (3 accepted, 0 refused)"
    for site_id in KEYS:
        assert f"{site_id} ack #1 trade-1 v1 received" in "\n".join(lines)
        assert f"{site_id} ack #2 trade-1 v1 accepted" in "\n".join(lines)


# ---- the pure parts ---------------------------------------------------------------------------

def test_sites_csv_takes_the_header_in_any_order_and_names_the_line_of_a_mistake():
    text = "# our sites\nhmac_key, site_id ,region\n\nk-0123456789abcdef,site-1,eu\n" \
           "k-abcdef0123456789,site-2,us\n"
    assert operator.read_sites_csv(text, "s.csv") == [("site-1", "k-0123456789abcdef"),
                                                      ("site-2", "k-abcdef0123456789")]
    mistakes = {
        "site,key\na,0123456789abcdef\n": "s.csv:1: the first line must be the header",
        "site_id,hmac_key\nsite/1,0123456789abcdef\n": "s.csv:2: site_id 'site/1' must be",
        "site_id,hmac_key\na,0123456789abcdef\na,0123456789abcdef\n":
            "s.csv:3: a is listed twice (also on line 2)",
        "site_id,hmac_key\na\n": "s.csv:2: needs a site_id and an hmac_key",
        "site_id,hmac_key\n": "s.csv: no sites",
    }
    for text, message in mistakes.items():
        with pytest.raises(operator.FleetCommandError) as caught:
            operator.read_sites_csv(text, "s.csv")
        assert str(caught.value).startswith(message) and caught.value.code == 2


def test_each_site_gets_its_own_site_field_and_signature():
    from phaeton.fleet.contract import open_envelope
    schedule, outgoing = operator.prepare_push(schedule_body(), [("a", "k" * 16),
                                                                 ("b", "j" * 16)], "p/q")
    assert (schedule.id, schedule.version) == ("trade-1", 1)
    assert [(o.site, o.topic) for o in outgoing] == [("a", "p/q/a/schedule"),
                                                     ("b", "p/q/b/schedule")]
    assert open_envelope(outgoing[0].payload, "k" * 16)["site"] == "a"
    assert open_envelope(outgoing[1].payload, "j" * 16)["site"] == "b"


def _ack(site, seq, state, **fields):
    return json.dumps({"type": "ack", "site": site, "seq": seq, "ts": "2026-12-07T00:00:00Z",
                       "schedule_id": fields.pop("schedule_id", "s"),
                       "version": fields.pop("version", 1), "state": state,
                       **fields}).encode()


def test_the_ack_book_drops_repeats_by_site_and_seq_and_keeps_the_latest_state():
    book = ack_book.AckBook("p")
    assert book.handle("p/a/status", json.dumps(
        {"type": "status", "site": "a", "online": True, "ts": "2026-12-07T00:00:00Z",
         "version": "0.1.0", "source": "local", "schedules": []}).encode(), 0) == \
        "a status online, local, 0 schedules"
    assert book.handle("p/a/ack", _ack("a", 1, "received"), 1.0) == "a ack #1 s v1 received"
    assert book.handle("p/a/ack", _ack("a", 2, "accepted"), 2.0) == "a ack #2 s v1 accepted"
    assert book.handle("p/a/ack", _ack("a", 2, "accepted"), 3.0) is None     # a repeat
    assert book.handle("p/a/ack", _ack("a", 5, "executed", slot=0, battery_kwh=0.5,
                                       soc_start_pct=40, soc_end_pct=45,
                                       limited_by="fuse"), 4.0) == \
        "a ack #5 s v1 executed slot 0: +0.50 kWh, SoC 40 -> 45 %, limited by fuse"
    book.handle("p/b/ack", _ack("b", 1, "received"), 1.0)
    book.handle("p/b/ack", _ack("b", 2, "refused", code="limits", reason="too much"), 2.5)
    book.handle("p/c/ack", _ack("c", 7, "accepted", duplicate=True, version=2), 3.0)
    book.handle("other/a/ack", _ack("a", 9, "accepted"), 3.0)              # not our prefix
    assert book.repeats == 1 and book.acks == 6
    assert book.sites["a"].gaps() == [3, 4]
    assert book.newest() == ("s", 2) and book.newest("s") == ("s", 2)
    assert book.answers(("s", 1)) == (["a"], ["b"])
    assert book.sites["a"].schedules[("s", 1)].accepted_at == 2.0
    assert ack_book.table_rows(book) == [
        ("a", "yes", "local", "s v1", "executed slot 0",
         "+0.50 kWh, SoC 40 -> 45 %, limited by fuse"),
        ("b", "?", "", "s v1", "refused(limits)", "too much"),
        ("c", "?", "", "s v2", "accepted", "repeat")]
    table = ack_book.format_table(ack_book.table_rows(book)).splitlines()
    assert table[0].split() == list(ack_book.TABLE_HEADER)
    assert table[2] == "b     ?               s v1      refused(limits)  too much"
    assert ack_book.summary_line(1, 1, 3) == "2 of 3 sites acknowledged (1 accepted, 1 refused)"


def test_the_status_summary_counts_schedules_of_online_sites_per_state():
    statuses = {
        "a": {"online": True, "version": "0.1.0", "source": "fleet:x@2",
              "schedules": [{"id": "x", "version": 1, "state": "superseded"},
                            {"id": "x", "version": 2, "state": "executing"}]},
        "b": {"online": True, "version": "0.1.0", "source": "local",
              "schedules": [{"id": "x", "version": 1, "state": "accepted"},
                            {"id": "y", "version": 1, "state": "cancelled"},
                            {"id": "z", "version": 1, "state": "completed"}]},
        "c": {"online": False},
    }
    summary = ack_book.summarise_statuses(statuses)
    assert summary == {"sites": 3, "online": 2, "offline": 1,
                       "schedules": {"pending": 1, "executing": 1, "completed": 1,
                                     "superseded": 1, "cancelled": 1},
                       "versions": {"0.1.0": 2}, "sources": {"fleet:x@2": 1, "local": 1}}
    assert ack_book.format_status_summary(summary).splitlines() == [
        "3 sites: 2 online, 1 offline",
        "schedules: 1 pending, 1 executing, 1 completed, 1 superseded, 1 cancelled",
        "versions: 0.1.0 on 2",
        "running: fleet:x@2 on 1, local on 1"]


def test_broker_addresses():
    assert operator.parse_broker("mqtt.example.net:8883") == ("mqtt.example.net", 8883)
    assert operator.parse_broker("mqtt.example.net") == ("mqtt.example.net", 1883)
    assert operator.parse_broker("mqtt.example.net", tls=True) == ("mqtt.example.net", 8883)
    assert operator.parse_broker("[::1]:1884") == ("::1", 1884)
    for wrong in ("host:0", "host:x", ":1883", "[::1]x"):
        with pytest.raises(ValueError):
            operator.parse_broker(wrong)
