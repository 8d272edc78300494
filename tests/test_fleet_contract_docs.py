"""The fleet contract's documents hold together: docs/fleet.schema.json is a valid JSON Schema
2020-12, every file in docs/fleet-examples/ and every JSON block in docs/fleet.md passes it, the
example envelope's HMAC verifies with the example key, and wrong messages fail.

Times are checked by the schema's regex; `format: date-time` is only asserted where jsonschema
has a date-time checker installed (rfc3339-validator), so the tests do not rely on it."""
from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator, FormatChecker

DOCS = Path(__file__).resolve().parents[1] / "docs"
SCHEMA_PATH = DOCS / "fleet.schema.json"
EXAMPLES = DOCS / "fleet-examples"
KEY = "example-key-0123456789"

SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))

# example file -> the $defs entry it is checked against (None: the top level)
EXAMPLE_DEFS = {
    "schedule.json": "schedule",
    "command.json": "command",
    "envelope.json": None,
    "ack-received.json": None,
    "ack-accepted.json": None,
    "ack-refused.json": None,
    "ack-executed.json": None,
    "ack-completed.json": None,
    "ack-superseded.json": None,
    "status.json": None,
    "status-offline.json": None,
    "telemetry.json": None,
}


def _validator(definition: str | None = None) -> Draft202012Validator:
    if definition is None:
        schema = SCHEMA
    else:
        assert definition in SCHEMA["$defs"], definition
        schema = {"$schema": SCHEMA["$schema"], "$defs": SCHEMA["$defs"],
                  "$ref": f"#/$defs/{definition}"}
    return Draft202012Validator(schema, format_checker=FormatChecker())


def _errors(instance, definition: str | None = None) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}"
            for e in _validator(definition).iter_errors(instance)]


def _example(name: str):
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))


def _sign(body: str, key: str = KEY) -> str:
    return hmac.new(key.encode("utf-8"), body.encode("utf-8"), hashlib.sha256).hexdigest()


# ---- the schema and the examples -----------------------------------------------------------

def test_schema_is_a_valid_2020_12_schema_with_the_contract_defs():
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert {"envelope", "schedule", "slot", "ev_window", "command", "ack", "status",
            "telemetry"} <= set(SCHEMA["$defs"])
    assert [entry["$ref"] for entry in SCHEMA["oneOf"]] == [
        "#/$defs/envelope", "#/$defs/ack", "#/$defs/status", "#/$defs/telemetry"]
    for name in ("schedule", "slot", "ev_window", "command", "envelope"):
        assert SCHEMA["$defs"][name]["additionalProperties"] is False, name


def test_every_example_file_is_checked():
    assert {p.name for p in EXAMPLES.glob("*.json")} == set(EXAMPLE_DEFS)


@pytest.mark.parametrize("name", sorted(EXAMPLE_DEFS))
def test_example_is_valid(name):
    assert _errors(_example(name), EXAMPLE_DEFS[name]) == []


@pytest.mark.parametrize("name", ["schedule.json", "command.json"])
def test_bodies_are_not_top_level_messages(name):
    """A schedule or command alone is not a message on a topic: it travels in an envelope."""
    assert _errors(_example(name)) != []


def test_envelope_example_is_the_schedule_example_signed_with_the_example_key():
    envelope = _example("envelope.json")
    assert hmac.compare_digest(envelope["hmac_sha256"], _sign(envelope["body"]))
    assert not hmac.compare_digest(envelope["hmac_sha256"], _sign(envelope["body"], KEY + "x"))
    body = json.loads(envelope["body"])
    assert body == _example("schedule.json")
    assert _errors(body, "schedule") == []


def test_schedule_example_covers_what_the_brief_asks():
    schedule = _example("schedule.json")
    assert schedule["site"] == "site-0001"
    assert len(schedule["slots"]) == 8
    assert {slot["battery"] for slot in schedule["slots"]} == {
        "charge", "discharge", "idle", "soc", "local"}
    assert len(schedule["ev"]) == 1


@pytest.mark.parametrize("state", ["received", "accepted", "refused", "executed", "completed",
                                   "superseded"])
def test_each_ack_example_has_its_state(state):
    ack = _example(f"ack-{state}.json")
    assert ack["type"] == "ack" and ack["state"] == state


def test_offline_status_is_exactly_the_last_will():
    assert _example("status-offline.json") == {"type": "status", "site": "site-0001",
                                               "online": False}


# ---- wrong messages fail -------------------------------------------------------------------

def _schedule(**changes):
    schedule = _example("schedule.json")
    schedule.update(changes)
    return schedule


def _with_slot(slot):
    schedule = _example("schedule.json")
    schedule["slots"][0] = slot
    return schedule


def _ack(name, drop=(), **changes):
    ack = _example(name)
    for key in drop:
        ack.pop(key, None)
    ack.update(changes)
    return ack


def _without(obj, *keys):
    obj = copy.deepcopy(obj)
    for key in keys:
        obj.pop(key, None)
    return obj


WRONG = [
    # schedules and slots
    ("charge slot without kw", "schedule", _with_slot({"battery": "charge"})),
    ("discharge slot with kw 0", "schedule", _with_slot({"battery": "discharge", "kw": 0})),
    ("charge slot with a target", "schedule",
     _with_slot({"battery": "charge", "kw": 3, "target_pct": 50})),
    ("soc slot without target", "schedule", _with_slot({"battery": "soc"})),
    ("soc slot above 100 %", "schedule", _with_slot({"battery": "soc", "target_pct": 101})),
    ("soc slot with kw", "schedule", _with_slot({"battery": "soc", "target_pct": 50, "kw": 1})),
    ("idle slot with kw", "schedule", _with_slot({"battery": "idle", "kw": 1})),
    ("local slot with a target", "schedule", _with_slot({"battery": "local", "target_pct": 5})),
    ("unknown slot command", "schedule", _with_slot({"battery": "boost", "kw": 1})),
    ("slot with an extra field", "schedule", _with_slot({"battery": "idle", "note": "x"})),
    ("schedule with an extra field", "schedule", _schedule(comment="hello")),
    ("schedule without priority", "schedule", _without(_schedule(), "priority")),
    ("unknown priority", "schedule", _schedule(priority="urgent")),
    ("version 0", "schedule", _schedule(version=0)),
    ("id with a space", "schedule", _schedule(id="trade 2026")),
    ("id of 101 characters", "schedule", _schedule(id="a" * 101)),
    ("site id with a slash", "schedule", _schedule(site="site/0001")),
    ("site id with a wildcard", "schedule", _schedule(site="site+1")),
    ("no slots", "schedule", _schedule(slots=[])),
    ("673 slots", "schedule", _schedule(slots=[{"battery": "idle"}] * 673)),
    ("valid_from off the quarter hour", "schedule", _schedule(valid_from="2026-12-07T00:10:00Z")),
    ("valid_from with seconds", "schedule", _schedule(valid_from="2026-12-07T00:15:30Z")),
    ("time without Z or offset", "schedule", _schedule(issued_at="2026-12-06T20:00:00")),
    ("time without seconds", "schedule", _schedule(issued_at="2026-12-06T20:00Z")),
    ("date only", "schedule", _schedule(issued_at="2026-12-06")),
    ("ev window without end", "schedule",
     _schedule(ev=[{"start": "2026-12-07T00:30:00Z", "max_kw": 7.4}])),
    ("ev window with an extra field", "schedule",
     _schedule(ev=[{"start": "2026-12-07T00:30:00Z", "end": "2026-12-07T01:30:00Z",
                    "max_kw": 7.4, "phases": 3}])),
    ("ev window at 0 kW", "schedule",
     _schedule(ev=[{"start": "2026-12-07T00:30:00Z", "end": "2026-12-07T01:30:00Z",
                    "max_kw": 0}])),
    # commands
    ("cancel without schedule_id", "command", _without(_example("command.json"), "schedule_id")),
    ("status command with schedule_id", "command", {**_example("command.json"),
                                                    "command": "status"}),
    ("unknown command", "command", {**_example("command.json"), "command": "reboot"}),
    ("command with an extra field", "command", {**_example("command.json"), "force": True}),
    # envelopes
    ("envelope with upper-case hex", "envelope",
     {**_example("envelope.json"),
      "hmac_sha256": _example("envelope.json")["hmac_sha256"].upper()}),
    ("envelope with a short hmac", "envelope",
     {**_example("envelope.json"), "hmac_sha256": "ab12"}),
    ("envelope version 2", "envelope", {**_example("envelope.json"), "v": 2}),
    ("envelope with an extra field", "envelope", {**_example("envelope.json"), "key_id": "k1"}),
    ("envelope whose body is an object", "envelope",
     {**_example("envelope.json"), "body": _example("schedule.json")}),
    # acks
    ("refused ack without reason", "ack", _ack("ack-refused.json", drop=["reason"])),
    ("refused ack without code", "ack", _ack("ack-refused.json", drop=["code"])),
    ("refused ack with an unknown code", "ack", _ack("ack-refused.json", code="too_big")),
    ("accepted ack with a code", "ack", _ack("ack-accepted.json", code="limits")),
    ("unknown ack state", "ack", _ack("ack-accepted.json", state="queued")),
    ("ack with seq 0", "ack", _ack("ack-accepted.json", seq=0)),
    ("ack without ts", "ack", _ack("ack-accepted.json", drop=["ts"])),
    ("accepted ack without a schedule id", "ack", _ack("ack-accepted.json", schedule_id=None)),
    ("accepted ack without a version", "ack", _ack("ack-accepted.json", version=None)),
    ("superseded ack without by_version or by_id", "ack",
     _ack("ack-superseded.json", drop=["by_version"])),
    ("superseded ack with by_version and by_id", "ack",
     _ack("ack-superseded.json", by_id="other")),
    ("executed ack without limited_by", "ack", _ack("ack-executed.json", drop=["limited_by"])),
    ("executed ack without battery_kwh", "ack", _ack("ack-executed.json", drop=["battery_kwh"])),
    ("executed ack without asked", "ack", _ack("ack-executed.json", drop=["asked"])),
    ("executed ack with an unknown limit", "ack", _ack("ack-executed.json", limited_by="weather")),
    ("executed ack with SoC above 100", "ack", _ack("ack-executed.json", soc_end_pct=100.5)),
    ("executed ack with null energy but readings", "ack",
     _ack("ack-executed.json", battery_kwh=None)),
    ("executed ack asking for an invalid slot", "ack",
     _ack("ack-executed.json", asked={"battery": "charge"})),
    ("completed ack with a slot", "ack", _ack("ack-completed.json", slot=3)),
    ("ack with both schedule_id and command_id", "ack",
     _ack("ack-accepted.json", command_id="cancel-0001")),
    ("command ack with a version", "ack",
     {"type": "ack", "site": "site-0001", "seq": 60, "ts": "2026-12-07T00:40:02Z",
      "command_id": "cancel-0001", "version": 1, "state": "accepted"}),
    ("command ack executed", "ack",
     {"type": "ack", "site": "site-0001", "seq": 60, "ts": "2026-12-07T00:40:02Z",
      "command_id": "cancel-0001", "state": "completed"}),
    # status and telemetry
    ("online status without schedules", "status", _without(_example("status.json"), "schedules")),
    ("online status with 11 schedules", "status",
     {**_example("status.json"),
      "schedules": [{"id": f"s{i}", "version": 1, "state": "completed"} for i in range(11)]}),
    ("status with a bad source", "status", {**_example("status.json"), "source": "vrm"}),
    ("telemetry without pv_w", "telemetry", _without(_example("telemetry.json"), "pv_w")),
    ("telemetry with SoC as text", "telemetry", {**_example("telemetry.json"), "soc_pct": "47"}),
    ("unknown message type", "telemetry", {**_example("telemetry.json"), "type": "metrics"}),
]


@pytest.mark.parametrize("definition, instance", [(d, i) for _, d, i in WRONG],
                         ids=[name for name, _, _ in WRONG])
def test_wrong_message_fails(definition, instance):
    assert _errors(instance, definition) != []
    if definition in ("envelope", "ack", "status", "telemetry"):
        assert _errors(instance) != []      # the top level refuses it too


RIGHT = [
    ("a malformed envelope refused without an id", None,
     {"type": "ack", "site": "site-0001", "seq": 70, "ts": "2026-12-07T00:00:01Z",
      "schedule_id": None, "version": None, "state": "refused", "code": "malformed",
      "reason": "the message is not JSON text"}),
    ("a received ack whose version could not be read", None,
     _ack("ack-received.json", version=None)),
    ("a duplicate", None, _ack("ack-accepted.json", duplicate=True)),
    ("a superseded ack by another id", None,
     _ack("ack-superseded.json", drop=["by_version"], by_id="trade-2026-12-09")),
    ("an executed ack without readings", None,
     _ack("ack-executed.json", battery_kwh=None, soc_start_pct=None, soc_end_pct=None,
          limited_by="no_readings")),
    ("an executed ack that nothing held back", None, _ack("ack-executed.json", limited_by=None)),
    ("a command ack", None,
     {"type": "ack", "site": "site-0001", "seq": 60, "ts": "2026-12-07T00:40:02Z",
      "command_id": "cancel-0001", "state": "accepted"}),
    ("a status command", "command",
     _without({**_example("command.json"), "command": "status"}, "schedule_id")),
    ("times with an offset", "schedule",
     _schedule(issued_at="2026-12-06T21:00:00.250+01:00",
               valid_from="2026-12-07T05:45:00+05:45")),
    ("a schedule without ev and with priority local", "schedule",
     _without(_schedule(priority="local"), "ev")),
    ("an ev window for every charger", "schedule",
     _schedule(ev=[{"start": "2026-12-07T00:30:00Z", "end": "2026-12-07T01:30:00Z",
                    "max_kw": 11}])),
    ("672 slots", "schedule", _schedule(slots=[{"battery": "idle"}] * 672)),
    ("telemetry with unknown values", None,
     {**_example("telemetry.json"), "soc_pct": None, "pv_w": None, "source": "local"}),
]


@pytest.mark.parametrize("definition, instance", [(d, i) for _, d, i in RIGHT],
                         ids=[name for name, _, _ in RIGHT])
def test_edge_cases_the_contract_allows(definition, instance):
    assert _errors(instance, definition) == []


# ---- docs/fleet.md -------------------------------------------------------------------------

def _doc_json_blocks() -> list:
    text = (DOCS / "fleet.md").read_text(encoding="utf-8")
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.S)]


def test_every_json_block_in_the_doc_is_a_valid_message():
    blocks = _doc_json_blocks()
    assert len(blocks) >= 11
    for block in blocks:
        kind = block.get("type")
        definition = kind if kind in ("schedule", "command") else None
        assert _errors(block, definition) == [], block
        if "hmac_sha256" in block:
            assert block["hmac_sha256"] == _sign(block["body"]), "doc envelope does not verify"


def test_the_doc_names_every_code_limit_command_and_state():
    text = (DOCS / "fleet.md").read_text(encoding="utf-8")
    ack = SCHEMA["$defs"]["ack"]["properties"]
    values = (ack["code"]["enum"] + [v for v in ack["limited_by"]["enum"] if v]
              + ack["state"]["enum"] + SCHEMA["$defs"]["slot"]["properties"]["battery"]["enum"]
              + SCHEMA["$defs"]["command"]["properties"]["command"]["enum"])
    for value in values:
        assert f"`{value}`" in text, value
    assert "benchmarks/fleet_bench.py" in text        # the scaling section's measured figures


# ---- the code, where it exists ------------------------------------------------------------

def test_schema_agrees_with_the_contract_module():
    contract = pytest.importorskip("phaeton.fleet.contract")
    defs = SCHEMA["$defs"]
    pairs = [("REFUSAL_CODES", defs["ack"]["properties"]["code"]["enum"]),
             ("LIMITED_BY", [v for v in defs["ack"]["properties"]["limited_by"]["enum"] if v]),
             ("ACK_STATES", defs["ack"]["properties"]["state"]["enum"]),
             ("BATTERY_COMMANDS", defs["slot"]["properties"]["battery"]["enum"]),
             ("PRIORITIES", defs["schedule"]["properties"]["priority"]["enum"]),
             ("COMMANDS", defs["command"]["properties"]["command"]["enum"])]
    for name, documented in pairs:
        if hasattr(contract, name):
            assert set(getattr(contract, name)) == set(documented), name
    for name, definition in (("SITE_ID_RE", "site_id"), ("SCHEDULE_ID_RE", "message_id")):
        if hasattr(contract, name):
            assert getattr(contract, name).pattern == defs[definition]["pattern"], name
    if hasattr(contract, "open_envelope"):
        payload = (EXAMPLES / "envelope.json").read_bytes()
        assert contract.open_envelope(payload, KEY) == _example("schedule.json")
