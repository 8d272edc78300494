"""The settings page's update box in a real headless Chromium: it shows the versions, checks
now, and starts an apply (the process is a stand-in that records its arguments)."""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace

from selenium.webdriver.common.by import By

from phaeton.update.in_service import UpdateService
from tests.test_update_service import install, recorder  # noqa: F401
from tests.test_web_browser import base_url, browser, in_thread, log_in, wait_for_text  # noqa: F401
from tests.web_fixtures import PASSWORD, backend, client  # noqa: F401


async def test_the_update_box_checks_and_starts_an_apply(browser, client, backend, install,
                                                         recorder):
    backend.updates = UpdateService(install.config, install.config_path, install.layout,
                                    python=recorder.python)
    await in_thread(log_in, browser, base_url(client), PASSWORD, "/settings")
    await in_thread(wait_for_text, browser, "update-versions", "running ")
    text = await in_thread(lambda: browser.find_element(By.ID, "update-versions").text)
    assert "channel stable" in text and "no release key configured" in text
    assert not await in_thread(lambda: browser.find_element(By.ID, "update-apply").is_enabled())
    assert not await in_thread(
        lambda: browser.find_element(By.ID, "update-rollback").is_enabled())

    await in_thread(lambda: browser.find_element(By.ID, "update-check").click())
    await in_thread(wait_for_text, browser, "update-message", "refused (offline")

    # a check found 0.2.0 (and the key is there): Install starts `phaeton update apply`
    install.status.write_text(json.dumps({"last_check": {
        "time": time.time(), "ok": True, "available": "0.2.0", "channel": "stable",
        "message": "phaeton 0.2.0 is available on the stable channel"}}))
    backend.updates.settings = replace(backend.updates.settings, public_key="A" * 43 + "=")
    await in_thread(browser.refresh)
    await in_thread(wait_for_text, browser, "update-apply", "Install 0.2.0")
    await in_thread(lambda: browser.find_element(By.ID, "update-apply").click())
    deadline = time.monotonic() + 10
    while not recorder.calls.exists():
        assert time.monotonic() < deadline, "the apply was not started"
        await asyncio.sleep(0.05)
    assert recorder.calls.read_text().startswith("-m phaeton update apply --config ")
    await in_thread(wait_for_text, browser, "update-message", "ended without a result")
    errors = [e for e in await in_thread(browser.get_log, "browser") if e["level"] == "SEVERE"]
    assert errors == []
