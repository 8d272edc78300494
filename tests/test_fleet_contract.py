"""The fleet contract's pure rules: every refusal names what is wrong, and the slot rules
aim the battery where the schedule says within the site's SoC limits."""
from __future__ import annotations

import dataclasses
import math

import pytest

from phaeton.fleet.contract import (MAX_SLOTS, Refusal, SiteLimits, check_limits,
                                    open_envelope, parse_schedule, seal, validate)
from phaeton.fleet.slots import (ActiveSlot, BatteryFacts, FleetReadings, SlotMeter,
                                 active_slot, battery_plan)

KEY = "contract-test-key-000"
LIMITS = SiteLimits(max_charge_kw=5, max_discharge_kw=4, soc_min_pct=10, soc_max_pct=90,
                    import_limit_kw=11.0, charger_max_kw={"0": 11.0, "garage": 7.4})
FACTS = BatteryFacts(capacity_kwh=10, soc_min=0.1, soc_max=0.9, charge_efficiency=0.95,
                     discharge_efficiency=0.95)


def body(**changes):
    base = {"type": "schedule", "id": "s-1", "version": 1, "site": "gx", "priority": "fleet",
            "issued_at": "2026-12-06T20:00:00Z", "valid_from": "2026-12-07T00:00:00+01:00",
            "slots": [{"battery": "charge", "kw": 2}]}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


@pytest.mark.parametrize("changes, words", [
    ({"version": True}, "version must be an integer"),
    ({"version": 0}, "version must be an integer of at least 1"),
    ({"id": "has space"}, "id must be"),
    ({"valid_from": "2026-12-07T00:07:00Z"}, "on a quarter hour"),
    ({"valid_from": "2026-12-07 00:00"}, "valid_from must be an ISO 8601 time"),
    ({"slots": []}, f"1 to {MAX_SLOTS}"),
    ({"slots": [{"battery": "idle"}] * (MAX_SLOTS + 1)}, f"1 to {MAX_SLOTS}"),
    ({"slots": [{"battery": "charge"}]}, "slots[0]: battery 'charge' needs kw"),
    ({"slots": [{"battery": "idle", "kw": 1}]}, "['kw'] not allowed with battery 'idle'"),
    ({"slots": [{"battery": "charge", "kw": float("nan")}]}, "slots[0].kw must be a number"),
    ({"slots": [{"battery": "soc", "target_pct": 101}]}, "at most 100"),
    ({"slots": [{"battery": "boost"}]}, "slots[0].battery must be one of"),
    ({"priority": "urgent"}, "priority must be one of"),
    ({"extra": 1}, "unknown fields ['extra']"),
    ({"site": ...}, "the schedule needs site"),
    ({"ev": [{"start": "2026-12-07T02:00:00Z", "end": "2026-12-07T01:00:00Z", "max_kw": 3}]},
     "ev[0]: end must be after start"),
])
def test_schema_refusals_name_the_field(changes, words):
    with pytest.raises(Refusal) as caught:
        parse_schedule(body(**changes))
    assert caught.value.code == "schema" and words in caught.value.reason


@pytest.mark.parametrize("slots, ev, limits, words", [
    ([{"battery": "charge", "kw": 12}], [], LIMITS, "more than the fuse allows"),
    ([{"battery": "charge", "kw": 6}], [], LIMITS, "max_charge_kw"),
    ([{"battery": "discharge", "kw": 4.5}], [], LIMITS, "max_discharge_kw"),
    ([{"battery": "soc", "target_pct": 5}], [], LIMITS, "outside the site's 10..90 %"),
    ([{"battery": "idle"}], [], dataclasses.replace(LIMITS, has_battery=False),
     "has no home battery"),
    ([{"battery": "idle"}], [], dataclasses.replace(LIMITS, battery_steered=False),
     "planner.ess_control is off"),
    ([{"battery": "local"}], [{"charger": "shed", "start": "2026-12-07T00:00:00Z",
                               "end": "2026-12-07T01:00:00Z", "max_kw": 3}], LIMITS,
     "no charger 'shed'"),
    ([{"battery": "local"}], [{"charger": "garage", "start": "2026-12-07T00:00:00Z",
                               "end": "2026-12-07T01:00:00Z", "max_kw": 11}], LIMITS,
     "more than charger garage can draw (7.4 kW)"),
])
def test_what_the_site_cannot_do_is_refused_as_limits(slots, ev, limits, words):
    schedule = parse_schedule(body(slots=slots, ev=ev))
    with pytest.raises(Refusal) as caught:
        check_limits(schedule, limits)
    assert caught.value.code == "limits" and words in caught.value.reason


def test_the_signature_covers_the_body_text_exactly():
    payload = seal(body(), KEY)
    assert open_envelope(payload, KEY)["id"] == "s-1"
    tampered = payload.replace(b'\\"kw\\":2', b'\\"kw\\":5')
    assert tampered != payload
    with pytest.raises(Refusal) as caught:
        open_envelope(tampered, KEY)
    assert caught.value.code == "bad_signature"
    for garbage, words in ((b"[1]", "not a JSON object"), (b'{"v": 2}', "'v' must be 1"),
                           (b'{"v":1,"body":"{}","hmac_sha256":"XYZ"}', "64 lowercase hex")):
        with pytest.raises(Refusal) as caught:
            open_envelope(garbage, KEY)
        assert caught.value.code == "malformed" and words in caught.value.reason


def test_validate_checks_site_and_expiry_after_the_signature():
    schedule = validate(seal(body(), KEY), key=KEY, site_id="gx", now_s=0, limits=LIMITS)
    assert schedule.valid_from_s == 1796598000            # 00:00+01:00 is 23:00 UTC
    with pytest.raises(Refusal, match="is for site 'gx'"):
        validate(seal(body(), KEY), key=KEY, site_id="other", now_s=0, limits=LIMITS)
    with pytest.raises(Refusal) as caught:
        validate(seal(body(), KEY), key=KEY, site_id="gx", now_s=schedule.end_s, limits=LIMITS)
    assert caught.value.code == "expired"


def test_targets_are_clipped_to_the_sites_soc_limits_and_a_local_slot_ends_the_run():
    schedule = parse_schedule(body(slots=[{"battery": "charge", "kw": 5}] * 3
                                   + [{"battery": "discharge", "kw": 4}] * 8
                                   + [{"battery": "local"}, {"battery": "charge", "kw": 1}]))
    plan = battery_plan(ActiveSlot(schedule, 0), 85.0, FACTS, FleetReadings())
    assert len(plan.slot_start_s) == 11                   # up to the local slot
    assert plan.soc[1] == pytest.approx(0.9)              # 85 % + 1.19 kWh would pass 90 %
    assert plan.battery_charge_kwh[0] == pytest.approx(0.05 * 10 / 0.95)
    assert min(plan.soc) == pytest.approx(0.1)            # the discharge stops at 10 %
    assert all(math.isclose(a, b) or a > b for a, b in zip(plan.soc[3:], plan.soc[4:]))


def test_priority_local_gives_way_while_the_local_plan_steers():
    schedule = parse_schedule(body(priority="local"))
    at = schedule.valid_from_s + 10
    assert active_slot([schedule], at, local_steers=True) is None
    assert active_slot([schedule], at, local_steers=False).index == 0


def test_the_meter_skips_what_it_could_not_read_and_names_missing_readings():
    schedule = parse_schedule(body())
    meter = SlotMeter(ActiveSlot(schedule, 0))
    start = schedule.valid_from_s
    meter.sample(start, FleetReadings(soc_pct=50, battery_w=1800))
    meter.sample(start + 300, FleetReadings(soc_pct=51, battery_w=float("nan")))
    meter.sample(start + 600, FleetReadings(soc_pct=52, battery_w=1800))
    meter.sample(start + 900, FleetReadings(soc_pct=53, battery_w=1800))
    assert meter.battery_kwh == pytest.approx(1.8 * 600 / 3600)   # the unread 5 min left out
    assert SlotMeter(ActiveSlot(schedule, 0)).limited_by(FACTS, 11) == "no_readings"
