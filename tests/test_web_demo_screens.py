"""The owner's view of the demo after an hour of simulated time, on a phone (412×915) and a
desktop (1280×900): the charts hold the service's own data (the minute history, the plan's
slots, the sessions), nothing overflows the page sideways, and a full-page screenshot of each
page goes to test-output/ (dashboard, schedule, sessions at both sizes)."""
from __future__ import annotations

import asyncio
import base64
import json
import urllib.request

import pytest
from selenium.webdriver.support.ui import WebDriverWait

from phaeton.sim.demo import run_demo
from tests.test_web_browser import OUTPUT, browser, in_thread  # noqa: F401

pytestmark = pytest.mark.slow

SPEED = 600.0            # an hour of the demo's day in 6 s
SIZES = {"phone": (412, 915, True), "desktop": (1280, 900, False)}


def show(driver, url: str, size: str) -> None:
    width, height, mobile = SIZES[size]
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})
    driver.get(url)


def chart_points(driver, element_id: str, series: int = 1) -> int:
    """Data points (non-null) of one series of a chart, once the chart is drawn."""
    WebDriverWait(driver, 20).until(lambda d: d.execute_script(
        f"const c = document.getElementById('{element_id}');"
        f"return c && c.chart && c.chart.data[{series}].some((v) => v !== null);"))
    return driver.execute_script(
        f"return document.getElementById('{element_id}').chart.data[{series}]"
        ".filter((v) => v !== null).length;")


def get_json(url: str):
    """GET in a worker thread: the demo's web server runs on the test's event loop."""
    with urllib.request.urlopen(url, timeout=20) as response:
        return json.load(response)


def overflow_px(driver) -> int:
    """How far the page is wider than the screen (0: nothing sticks out sideways)."""
    return driver.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth;")


def screenshot(driver, name: str) -> None:
    """The whole page, not only the screen."""
    OUTPUT.mkdir(exist_ok=True)
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True})
    (OUTPUT / name).write_bytes(base64.b64decode(shot["data"]))


async def test_the_demo_after_an_hour_on_a_phone_and_a_desktop(browser):
    seen: dict = {}

    async def ready(world, app, url):
        start = world.clock.time()
        while world.clock.time() - start < 3600:              # an hour of the demo's day
            await asyncio.sleep(0.2)
        assert len(app.flow_history.rows(0)) >= 50             # a row a minute
        plan = (await in_thread(get_json, url + "api/plan"))["plan"]
        seen["plan_slots"] = len(plan["slots"])
        for size in SIZES:
            await in_thread(show, browser, url, size)
            seen[f"history {size}"] = await in_thread(chart_points, browser, "history-chart")
            seen[f"overflow / {size}"] = await in_thread(overflow_px, browser)
            await in_thread(screenshot, browser, f"demo-dashboard-{size}.png")
            await in_thread(show, browser, url + "schedule", size)
            seen[f"plan {size}"] = await in_thread(chart_points, browser, "plan-chart")
            seen[f"overflow /schedule {size}"] = await in_thread(overflow_px, browser)
            await in_thread(screenshot, browser, f"demo-schedule-{size}.png")
            await in_thread(show, browser, url + "sessions", size)
            seen[f"overflow /sessions {size}"] = await in_thread(overflow_px, browser)
            await in_thread(screenshot, browser, f"demo-sessions-{size}.png")
        await in_thread(browser.execute_cdp_cmd, "Emulation.clearDeviceMetricsOverride", {})

    assert await run_demo(speed=SPEED, port=0, seconds=0.1, ready=ready) == 0
    for size in SIZES:
        assert seen[f"history {size}"] >= 50                  # the service's own minutes
        assert seen[f"plan {size}"] == seen["plan_slots"] > 0  # every slot of the plan
        for page in ("/", "/schedule", "/sessions"):
            assert seen[f"overflow {page} {size}"] == 0, (page, size)
