"""The fleet in the web UI: the site's key and broker password never leave the service, and
the plan page says whose command the battery follows (real Chromium)."""
from __future__ import annotations

import yaml

from tests.test_web_browser import (base_url, browser, fresh_page, in_thread,  # noqa: F401
                                    text_of, wait_for_text)
from tests.test_web_carbon_browser import _plan
from tests.web_fixtures import backend, client  # noqa: F401


async def test_the_fleet_key_and_broker_password_are_not_sent_out(client, backend):
    data = yaml.safe_load(backend.config_file.read_text())
    data["fleet"] = {"enabled": True, "site_id": "gx-1", "hmac_key": "k" * 32,
                     "broker": {"password": "broker-secret"}}
    backend.config_file.write_text(yaml.safe_dump(data))
    text = await (await client.get("/api/config")).text()
    assert "k" * 32 not in text and "broker-secret" not in text
    fleet = (await (await client.get("/api/config")).json())["config"]["fleet"]
    assert fleet["hmac_key"] == "(unchanged)" and fleet["broker"]["password"] == "(unchanged)"
    assert fleet["site_id"] == "gx-1"


async def test_the_plan_page_shows_the_fleet_schedule_the_battery_follows(browser, client,
                                                                         backend):
    plan = _plan(None)
    plan["fleet"] = {"site_id": "gx-1", "connected": False, "error": "connection refused",
                     "source": "fleet:trade-7@2", "pending_acks": 3,
                     "schedules": [{"id": "trade-7", "version": 2, "state": "executing",
                                    "next_slot": 1}]}
    backend.plan_data = plan
    await in_thread(fresh_page, browser, base_url(client) + "/schedule")
    source = await in_thread(wait_for_text, browser, "plan-fleet-source", "trade-7")
    assert source == "the battery follows the operator's schedule trade-7@2"
    assert await in_thread(text_of, browser, "plan-fleet-link") == \
        "not connected: connection refused"
    box = await in_thread(text_of, browser, "plan-fleet")
    assert "trade-7 v2 executing" in box and "Acks waiting\n3" in box

    plan["fleet"] = {**plan["fleet"], "connected": True, "error": None, "source": "local",
                     "pending_acks": 0}
    backend.plan_data = plan
    await in_thread(fresh_page, browser, base_url(client) + "/schedule")
    source = await in_thread(wait_for_text, browser, "plan-fleet-source", "own plan")
    assert await in_thread(text_of, browser, "plan-fleet-link") == "connected"
    assert "Acks waiting" not in await in_thread(text_of, browser, "plan-fleet")
