"""The pages in a real headless Chromium (Debian's chromium + chromium-driver, via selenium).

Selenium calls block, so they run in a worker thread while the aiohttp server and the D-Bus
service keep running on the test's event loop.
"""
from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.web_fixtures import PASSWORD, backend, client  # noqa: F401

OUTPUT = Path(__file__).resolve().parent.parent / "test-output"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync")


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module, with a fresh profile directory."""
    chromium = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    assert chromium and driver_path, "install Debian's chromium and chromium-driver (dev/test)"
    profile = tempfile.mkdtemp(prefix="phaeton-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument("--window-size=420,1400")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def in_thread(function, *args):
    """Run a blocking selenium step off the event loop."""
    return asyncio.to_thread(function, *args)


def text_of(driver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def wait_for_text(driver, element_id: str, expected: str, timeout_s: float = 10) -> str:
    """Wait until the element's text contains `expected`; returns the text. (A page that
    reloads meanwhile, e.g. after a form submit, leaves a stale element: looked up again.)"""
    WebDriverWait(driver, timeout_s, ignored_exceptions=(
        NoSuchElementException, StaleElementReferenceException)).until(
            lambda d: expected in text_of(d, element_id))
    return text_of(driver, element_id)


def fresh_page(driver, url: str) -> None:
    driver.delete_all_cookies()
    driver.get_log("browser")  # start each page with an empty console log
    driver.get(url)


def log_in(driver, base: str, password: str, next_page: str = "/") -> None:
    fresh_page(driver, f"{base}/login?next={next_page}")
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "login-button").click()


async def wait_until(condition, timeout_s: float = 10) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


def plan_chart(driver) -> tuple[list, list]:
    """The plan chart's series labels and data, once it is drawn."""
    WebDriverWait(driver, 10).until(lambda d: d.execute_script(
        "const c = document.getElementById('plan-chart'); return c && c.chart;"))
    return driver.execute_script("const c = document.getElementById('plan-chart').chart;"
                                 "return [c.series.map((s) => s.label), c.data];")


def base_url(client) -> str:
    return str(client.make_url("")).rstrip("/")


async def test_dashboard_updates_live_when_pv_changes(browser, client, backend):
    base = base_url(client)
    await in_thread(fresh_page, browser, base + "/")
    await in_thread(wait_for_text, browser, "pv-w", "4.20 kW")
    await in_thread(wait_for_text, browser, "live", "live")
    assert await in_thread(text_of, browser, "status-text") == "Charging"
    backend.publish(power={"pv_w": 2500.0, "grid_w": [-300.0, -300.0, -300.0]},
                    reason="surplus: 2.5 kW of solar")
    await in_thread(wait_for_text, browser, "pv-w", "2.50 kW")
    assert await in_thread(text_of, browser, "grid-dir") == "export"
    assert "surplus: 2.5 kW of solar" in await in_thread(text_of, browser, "reason")
    backend.publish(power={"pv_w": 4200.0, "grid_w": [2400.0, 2300.0, 2300.0]},
                    reason="manual: 16 A requested")
    await in_thread(wait_for_text, browser, "pv-w", "4.20 kW")
    OUTPUT.mkdir(exist_ok=True)
    assert await in_thread(browser.save_screenshot, str(OUTPUT / "dashboard.png"))
    errors = [entry for entry in await in_thread(browser.get_log, "browser")
              if entry["level"] == "SEVERE"]
    assert errors == []  # no script error, no refused resource, no CSP violation


async def test_mode_button_changes_mode_on_dbus(browser, client, backend):
    base = base_url(client)
    await in_thread(log_in, browser, base, PASSWORD, "/")
    await in_thread(wait_for_text, browser, "auth-link", "Log out")
    await in_thread(wait_for_text, browser, "pv-w", "kW")
    await in_thread(lambda: browser.find_element(By.ID, "mode-1").click())
    await wait_until(lambda: backend.service["/Mode"] == 1)
    await in_thread(lambda: WebDriverWait(browser, 10).until(
        lambda d: d.find_element(By.ID, "mode-1").get_attribute("aria-pressed") == "true"))
    assert await in_thread(
        lambda: browser.find_element(By.ID, "mode-0").get_attribute("aria-pressed")) == "false"


async def test_controls_without_login_are_refused_and_say_so(browser, client, backend):
    base = base_url(client)
    await in_thread(fresh_page, browser, base + "/")
    await in_thread(wait_for_text, browser, "pv-w", "kW")
    await in_thread(lambda: browser.find_element(By.ID, "mode-2").click())
    message = await in_thread(wait_for_text, browser, "control-message", "log in")
    assert message == "log in first: writing needs the web password Log in"   # said once
    assert backend.service["/Mode"] == 0


async def test_failed_login_is_refused(browser, client, backend):
    base = base_url(client)
    await in_thread(log_in, browser, base, "not the password")
    assert "wrong password" in await in_thread(wait_for_text, browser, "login-message",
                                               "wrong password")
    assert "/login" in browser.current_url
    assert await in_thread(text_of, browser, "auth-link") == "Log in"
    assert backend.writes == []


async def test_settings_form_rejects_an_invalid_value_with_its_message(browser, client,
                                                                       backend):
    base = base_url(client)
    before = backend.config_file.read_text()
    await in_thread(log_in, browser, base, PASSWORD, "/settings")

    def enter_bad_fuse() -> None:
        field = WebDriverWait(browser, 10).until(
            lambda d: d.find_element(By.ID, "cfg-site.fuse_a"))
        field.clear()
        field.send_keys("1000")
        browser.find_element(By.ID, "save-settings").click()
    await in_thread(enter_bad_fuse)
    message = await in_thread(wait_for_text, browser, "problem-site.fuse_a", "must be")
    assert message.strip() == "site.fuse_a: must be between 6 and 630 A, got 1000"
    problems = await in_thread(lambda: [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".problem") if e.text])
    assert problems == ["site.fuse_a: must be between 6 and 630 A, got 1000"]
    assert "1 problem" in await in_thread(text_of, browser, "settings-message")
    assert backend.config_file.read_text() == before

    def enter_good_fuse() -> None:
        field = browser.find_element(By.ID, "cfg-site.fuse_a")
        field.clear()
        field.send_keys("35")
        browser.find_element(By.ID, "save-settings").click()
    await in_thread(enter_good_fuse)
    await in_thread(wait_for_text, browser, "settings-message", "saved")
    assert yaml.safe_load(backend.config_file.read_text())["site"]["fuse_a"] == 35


async def test_settings_save_over_a_file_changed_meanwhile_is_refused_and_keeps_the_form(
        browser, client, backend):
    base = base_url(client)
    await in_thread(log_in, browser, base, PASSWORD, "/settings")

    def enter_fuse(value: str) -> None:
        field = WebDriverWait(browser, 10).until(
            lambda d: d.find_element(By.ID, "cfg-site.fuse_a"))
        field.clear()
        field.send_keys(value)
    await in_thread(enter_fuse, "35")
    hand_edited = "# edited by hand\n" + backend.config_file.read_text() + "site:\n  fuse_a: 20\n"
    backend.config_file.write_text(hand_edited)  # someone edits the file meanwhile
    await in_thread(lambda: browser.find_element(By.ID, "save-settings").click())
    message = await in_thread(wait_for_text, browser, "settings-message", "changed since")
    assert "nothing was saved" in message
    assert backend.config_file.read_text() == hand_edited
    assert await in_thread(lambda: browser.find_element(
        By.ID, "cfg-site.fuse_a").get_attribute("value")) == "35"  # what was typed stays
    await in_thread(lambda: browser.find_element(By.ID, "reload-settings").click())
    await in_thread(lambda: WebDriverWait(browser, 10).until(lambda d: d.find_element(
        By.ID, "cfg-site.fuse_a").get_attribute("value") == "20"))
    await in_thread(enter_fuse, "35")
    await in_thread(lambda: browser.find_element(By.ID, "save-settings").click())
    await in_thread(wait_for_text, browser, "settings-message", "saved")
    assert backend.config_file.read_text() == hand_edited.replace("fuse_a: 20", "fuse_a: 35")


async def test_stale_stream_is_shown_and_the_page_reconnects(browser, private_bus, tmp_path):
    from tests.web_backend_for_tests import WebBackendForTests
    from tests.web_fixtures import start_client
    from phaeton.web.keys import SSE_TASKS

    fast = await WebBackendForTests.create(
        tmp_path, "charger:\n  alfen:\n    host: 127.0.0.1\ncontrol:\n  tick_s: 0.4\n",
        bus_address=private_bus)
    client = await start_client(fast)
    try:
        await in_thread(fresh_page, browser, base_url(client) + "/")
        await in_thread(wait_for_text, browser, "live", "live")
        # no tick for more than 3 ticks (+1 s of slack): the page says so
        await in_thread(wait_for_text, browser, "live", "stale")
        # the server drops every stream; the browser reconnects by itself
        for task in list(client.app[SSE_TASKS]):
            task.cancel()
        await wait_until(lambda: not client.app[SSE_TASKS])
        await wait_until(lambda: fast.subscriber_count == 1)
        fast.publish(power={"pv_w": 1500.0})
        await in_thread(wait_for_text, browser, "pv-w", "1.50 kW")
        await in_thread(wait_for_text, browser, "live", "live")
    finally:
        await client.close()
        await fast.close()


async def test_schedule_editor_saves_windows_and_shows_problems(browser, client, backend):
    base = base_url(client)
    before = backend.schedule()  # the default config has one window
    await in_thread(log_in, browser, base, PASSWORD, "/schedule")

    def add_window(start: str, end: str) -> None:
        WebDriverWait(browser, 10).until(lambda d: d.current_url.endswith("/schedule"))
        WebDriverWait(browser, 10).until(
            lambda d: d.execute_script("return phaeton.state.logged_in"))
        WebDriverWait(browser, 10).until(
            lambda d: d.execute_script("return document.body.dataset.ready === '1'"))
        browser.find_element(By.ID, "add-window").click()
        box = browser.find_elements(By.CSS_SELECTOR, "#windows .window")[-1]
        for name, value in (("start", start), ("end", end)):
            browser.execute_script("arguments[0].value = arguments[1]",
                                   box.find_element(By.CSS_SELECTOR, "." + name), value)
        box.find_element(By.CSS_SELECTOR, "input[value=sat]").click()  # untick Saturday
        browser.find_element(By.ID, "save-schedule").click()
    await in_thread(add_window, "07:00", "07:00")
    await in_thread(wait_for_text, browser, "schedule-message", "1 problem")
    problems = await in_thread(lambda: [p.text for p in browser.find_elements(
        By.CSS_SELECTOR, "#windows .problem")])
    assert problems[:-1] == [""] * len(before)
    assert problems[-1] == (f"schedule.windows[{len(before)}].end: must differ from start "
                            f"(07:00): an empty window never charges")
    assert backend.schedule() == before

    def fix_end() -> None:
        box = browser.find_elements(By.CSS_SELECTOR, "#windows .window")[-1]
        browser.execute_script("arguments[0].value = '09:30'",
                               box.find_element(By.CSS_SELECTOR, ".end"))
        browser.find_element(By.ID, "save-schedule").click()
    await in_thread(fix_end)
    await in_thread(wait_for_text, browser, "schedule-message", "saved")
    assert backend.schedule() == before + [{"days": ["mon", "tue", "wed", "thu", "fri", "sun"],
                                            "start": "07:00", "end": "09:30",
                                            "current_a": None}]


async def test_sessions_page_shows_history_and_totals(browser, client, backend):
    from phaeton.store.sessions import ChargingSession
    for day, energy in enumerate((12.5, 7.5)):
        start = 1_780_000_000 + day * 86400
        backend.store.add(ChargingSession(start, start + 3600, energy, 3600, 11000, 2.0, "EUR",
                                          0.5))
    await in_thread(fresh_page, browser, base_url(client) + "/sessions")
    await in_thread(wait_for_text, browser, "total-energy", "20.00 kWh")
    assert await in_thread(text_of, browser, "total-count") == "2"
    rows = await in_thread(lambda: [r.text for r in browser.find_elements(
        By.CSS_SELECTOR, "#rows tr:not(.running)")])
    assert len(rows) == 2 and "12.50 kWh" in rows[1] and "50 %" in rows[0]
    # the session under way (7.25 kWh, 42 min in the backend's status) is on top
    running = await in_thread(lambda: [r.text for r in browser.find_elements(
        By.CSS_SELECTOR, "#rows tr.running")])
    assert len(running) == 1 and "(running)" in running[0]
    assert "7.25 kWh" in running[0] and "42 min" in running[0] and "1.81 EUR" in running[0]
    assert await in_thread(text_of, browser, "total-count") == "2"   # totals: finished only


async def test_schedule_page_draws_the_plan_with_its_price_curve(browser, client, backend):
    start = 1_780_000_000
    backend.plan_data = {
        "slots": [{"start_s": start + i * 3600, "import_eur_per_kwh": 0.20 + 0.02 * i,
                   "export_eur_per_kwh": 0.05, "ev_kwh": 7.0 if i < 3 else 0.0,
                   "battery_kwh": -0.001 if i == 7 else 0.0, "soc_pct": 50.0, "why": "cheapest hours for the EV"
                   if i < 3 else "idle", "pv_kwh": [0, 0, 0, 0.5, 1.5, 2.5, 1.5, 0.5][i],
                   "load_kwh": 0.3} for i in range(8)],
        "total_cost_eur": 4.56, "savings_eur": 1.23, "ev_delivered_kwh": 21.0, "currency": "EUR",
        "shortfall": None, "warnings": ["prices after 18:00 are a forecast"],
        "strategy": "optimise",
        "state": {"/Planner/DessConflict": 1, "/Planner/Reason": "Victron Dynamic ESS is "
                  "active (VRM mode 1); phaeton does not write the battery schedule"}}
    await in_thread(fresh_page, browser, base_url(client) + "/schedule")
    summary = await in_thread(wait_for_text, browser, "plan-summary", "1.23 EUR")
    assert "4.56 EUR" in summary and "21.0 kWh" in summary
    assert "prices after 18:00 are a forecast" in await in_thread(text_of, browser, "plan")
    labels, data = await in_thread(plan_chart, browser)
    assert labels[1:] == ["Import price", "EV", "PV forecast", "House forecast", "Battery SoC"]
    assert data[0] == [start + i * 3600 for i in range(8)]             # the plan's slots
    assert data[1] == pytest.approx([0.20 + 0.02 * i for i in range(8)])   # the price steps
    assert data[2] == [7.0, 7.0, 7.0, 0.0, 0.0, 0.0, 0.0, 0.0]          # EV bars
    assert data[3] == [0, 0, 0, 0.5, 1.5, 2.5, 1.5, 0.5]                # PV forecast
    assert set(data[4]) == {0.3}                                        # flat house load
    def hover_slot(index: int) -> str:
        chart = browser.find_element(By.ID, "plan-chart")
        browser.execute_script(
            "const u = arguments[0].chart; u.setCursor({left: u.valToPos(u.data[0][arguments[1]]"
            " + 60, 'x'), top: 10});", chart, index)
        return browser.find_element(By.ID, "plan-why").text
    why = await in_thread(hover_slot, 1)
    assert "cheapest hours for the EV" in why and "EV 7.00 kWh" in why and "0.220 EUR/kWh" in why
    rows = await in_thread(lambda: browser.find_elements(By.CSS_SELECTOR,
                                                         "#plan-table tbody tr.slot"))
    assert len(rows) == 8 and "cheapest hours for the EV" in rows[0].text
    days = await in_thread(lambda: [r.text for r in browser.find_elements(
        By.CSS_SELECTOR, "#plan-table tbody tr.day")])
    assert 1 <= len(days) <= 2 and all(days)       # 8 hours: one or two days, each named
    warning = await in_thread(lambda: browser.find_element(
        By.XPATH, "//div[contains(text(), 'prices after 18:00')]").get_attribute("class"))
    assert "warn" in warning.split() and "error" not in warning.split()
    assert "2.50" in rows[5].text and "0.30" in rows[5].text    # PV and house columns
    assert "-0.00" not in rows[7].text and "0.00" in rows[7].text   # no signed zero
    # the windows are not used while the plan is in charge, and the page says so there
    note = await in_thread(text_of, browser, "windows-note")
    assert note.startswith("The energy plan is in charge")
    # Victron's own DESS is running: the page says phaeton leaves the battery alone
    conflict = await in_thread(text_of, browser, "plan-conflict")
    assert "Dynamic ESS is active" in conflict and "VRM mode 1" in conflict
    assert "optimise" in summary


async def test_schedule_page_shows_what_the_house_paid_against_self_consumption(browser, client,
                                                                                 backend):
    backend.realised_data = {
        "days": [{"date": "2026-11-30", "paid": 2.10, "self_consumption": 2.40, "saved": 0.30},
                 {"date": "2026-12-01", "paid": 1.90, "self_consumption": 1.80, "saved": -0.10}],
        "total": {"paid": 4.00, "self_consumption": 4.20, "saved": 0.20}, "currency": "EUR"}
    await in_thread(fresh_page, browser, base_url(client) + "/schedule")
    summary = await in_thread(wait_for_text, browser, "realised-summary", "4.00 EUR")
    assert "4.20 EUR" in summary and "Saved by the plan" in summary and "0.20 EUR" in summary

    def chart() -> tuple[list, list]:
        WebDriverWait(browser, 10).until(lambda d: d.execute_script(
            "const c = document.getElementById('realised-chart'); return c && c.chart;"))
        return browser.execute_script("const c = document.getElementById('realised-chart')"
                                      ".chart; return [c.series.map((s) => s.label), c.data];")
    labels, data = await in_thread(chart)
    assert labels[1:] == ["Paid", "Plain self-consumption"]
    assert data[1] == [2.10, 1.90] and data[2] == [2.40, 1.80]
    assert data[0][1] - data[0][0] == 86400                    # a bar pair per day


async def test_schedule_page_says_when_the_owner_switched_dynamic_ess_off(browser, client,
                                                                          backend):
    off = ("Dynamic ESS was switched off on the GX (/Settings/DynamicEss/Mode = 0); phaeton "
           "does not steer the battery until Mode is set to 4 again or the planner Strategy "
           "(/Settings/Phaeton/Planner/Strategy) is changed")
    backend.plan_data = {
        "slots": [{"start_s": 1_780_000_000, "import_eur_per_kwh": 0.2, "soc_pct": 50.0,
                   "why": "idle"}],
        "total_cost_eur": 1.0, "savings_eur": 0.0, "ev_delivered_kwh": 0.0, "shortfall": None,
        "warnings": [], "strategy": "optimise",
        "state": {"/Planner/DessConflict": 0, "/Planner/Reason": off},
        "ess": {"control": "dess_schedule", "in_control": False, "conflict": None,
                "owner_off": off, "error": None, "windows": 0}}
    await in_thread(fresh_page, browser, base_url(client) + "/schedule")
    message = await in_thread(wait_for_text, browser, "plan-owner-off", "switched off")
    assert message.startswith("Dynamic ESS was switched off on the GX")
    assert "switched off on the GX" in await in_thread(text_of, browser, "plan-battery")


async def test_schedule_page_says_where_the_pv_forecast_came_from(browser, client, backend):
    plan = {"slots": [{"start_s": 1_780_000_000, "import_eur_per_kwh": 0.2, "soc_pct": 50.0,
                       "why": "idle"}],
            "total_cost_eur": 1.0, "savings_eur": 0.0, "ev_delivered_kwh": 0.0,
            "shortfall": None, "warnings": [], "strategy": "optimise", "state": {}}
    backend.plan_data = {**plan, "pv_forecast": {
        "source": "open_meteo", "weather_slots": 96, "calibration": 0.912,
        "compared_kwh": 40.0, "nowcast_ratio": 1.0, "last_error": None}}
    await in_thread(fresh_page, browser, base_url(client) + "/schedule")
    shown = await in_thread(wait_for_text, browser, "plan-pv-forecast", "Open-Meteo")
    assert shown == "Open-Meteo, calibrated × 0.91"
    backend.plan_data = {**plan, "pv_forecast": {
        "source": "solcast", "weather_slots": 0, "calibration": 1.0,
        "last_error": "solcast: access refused (HTTP 401); check the API token"}}
    await in_thread(fresh_page, browser, base_url(client) + "/schedule")
    shown = await in_thread(wait_for_text, browser, "plan-pv-forecast", "Solcast")
    assert shown == ("Solcast unavailable, learned forecast used: solcast: access refused "
                     "(HTTP 401); check the API token")


async def test_the_real_service_behind_the_page_follows_the_sky_and_takes_the_mode(
        browser, private_bus, tmp_path):
    """No test double: phaeton with the demo's config on a simulated GX; the sky changes, the
    dashboard follows; a click on Auto changes /Mode for every D-Bus client."""
    from datetime import datetime

    from dbus_clients import dbus_send
    from phaeton.app import Phaeton
    from phaeton.config import load_config
    from phaeton.sim.demo import demo_config
    from phaeton.sim.world import SimWorld, free_tcp_port
    from phaeton.web.passwords import hash_password

    password = "a-long-owner-password"
    async with SimWorld(speed=20, start=datetime(2026, 6, 1, 12, 0), cloud_script=(),
                        bus_address=private_bus) as world:
        config = demo_config(world, str(tmp_path / "data"), free_tcp_port(),
                             hash_password(password))
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        app = Phaeton(load_config(str(path)), config_path=str(path), clock=world.clock,
                      bus_address=world.bus_address)
        await app.start()
        try:
            base = f"http://127.0.0.1:{config['web']['port']}"
            await in_thread(log_in, browser, base, password, "/")
            await in_thread(wait_for_text, browser, "auth-link", "Log out")
            await in_thread(wait_for_text, browser, "live", "live")
            def pv_w(driver) -> float:
                number, unit = (text_of(driver, "pv-w").split() + ["", ""])[:2]
                return float(number) * (1000.0 if unit == "kW" else 1.0) if unit else -1.0

            await in_thread(lambda: WebDriverWait(browser, 20).until(
                lambda d: pv_w(d) > 3000.0))                   # June noon, clear sky
            world.site.force_cloud(1.0)                        # a thick cloud: no PV at all
            await in_thread(wait_for_text, browser, "pv-w", "0 W", 20)
            world.site.clear_forced_cloud()
            await in_thread(lambda: WebDriverWait(browser, 20).until(
                lambda d: pv_w(d) > 3000.0))
            await in_thread(lambda: browser.find_element(By.ID, "mode-1").click())
            await wait_until(lambda: app.loadpoints[0].choices.mode == 1)
            assert "int32 1" in await dbus_send("com.victronenergy.evcharger.phaeton_0",
                                                "/Mode", "GetValue")
            await in_thread(lambda: WebDriverWait(browser, 10).until(
                lambda d: d.find_element(By.ID, "mode-1").get_attribute("aria-pressed")
                == "true"))
            # the chart holds the service's own minutes: the sunny PV, the cloud's dip
            await wait_until(lambda: len(app.flow_history.rows(0)) >= 3, 30)
            await in_thread(fresh_page, browser, base + "/")
            def charted():
                WebDriverWait(browser, 10).until(lambda d: d.execute_script(
                    "const c = document.getElementById('history-chart').chart;"
                    "return c && c.data[0].length >= 3;"))
                return browser.execute_script(
                    "return document.getElementById('history-chart').chart.data;")
            data = await in_thread(charted)
            rows = app.flow_history.rows(0)
            assert data[0][:3] == [row["t"] for row in rows][:3]
            assert max(v for v in data[1] if v is not None) > 3000.0       # PV in kW
        finally:
            await app.stop()


async def test_the_first_password_is_set_on_the_login_page_then_used_to_log_in(browser,
                                                                                backend):
    from tests.web_fixtures import start_client
    client = await start_client(backend, password_hash=None)
    try:
        base = base_url(client)
        await in_thread(fresh_page, browser, base + "/login?next=/settings")

        def set_first(password: str, repeat: str) -> None:
            WebDriverWait(browser, 10).until(
                lambda d: d.find_element(By.ID, "first-card").is_displayed())
            assert not browser.find_element(By.ID, "login-card").is_displayed()
            for element_id, value in (("first-password", password), ("first-repeat", repeat)):
                field = browser.find_element(By.ID, element_id)
                field.clear()
                field.send_keys(value)
            browser.find_element(By.ID, "first-button").click()
        await in_thread(set_first, "garage-door-7", "garage-door-8")
        await in_thread(wait_for_text, browser, "first-message", "the two passwords differ")
        assert "password_hash" not in backend.config_file.read_text()
        await in_thread(set_first, "garage-door-7", "garage-door-7")
        await in_thread(wait_for_text, browser, "login-message", "password set")
        assert not await in_thread(lambda: browser.find_element(By.ID, "first-card")
                                   .is_displayed())

        def log_in_with_it() -> None:
            browser.find_element(By.ID, "password").send_keys("garage-door-7")
            browser.find_element(By.ID, "login-button").click()
            WebDriverWait(browser, 10).until(lambda d: d.current_url.endswith("/settings"))
        await in_thread(log_in_with_it)
        assert yaml.safe_load(backend.config_file.read_text())["web"]["password_hash"]
    finally:
        await client.close()


async def test_on_a_phone_every_page_link_is_on_one_row_and_fits(browser, client, backend):
    await in_thread(fresh_page, browser, base_url(client) + "/schedule")
    await in_thread(wait_for_text, browser, "plan", "")

    def layout():
        links = browser.find_elements(By.CSS_SELECTOR, "header nav a")
        nav = browser.find_element(By.CSS_SELECTOR, "header nav")
        return ({link.rect["y"] for link in links}, len(links),
                browser.execute_script("return [arguments[0].scrollWidth, arguments[0]"
                                       ".clientWidth, matchMedia('(max-width:560px)').matches]",
                                       nav))
    tops, count, (scroll_w, client_w, phone) = await in_thread(layout)
    assert phone and count == 6               # the phone layout (this window is phone-wide)
    assert len(tops) == 1                     # one row
    assert scroll_w <= client_w               # and nothing hidden off the side


async def test_the_dashboard_shows_what_the_car_draws_and_when_it_is_full(browser, client,
                                                                          backend):
    await in_thread(fresh_page, browser, base_url(client) + "/")
    draws = await in_thread(wait_for_text, browser, "car-draws", "offered")
    assert draws == "16.0 A (L1 15.9 · L2 16.0 · L3 15.8) · 11.0 kW · of 16.0 A offered"
    # the car takes less than the setpoint: both are there
    backend.publish(current_a=[8.9, 8.8, 8.9], power={"ev_w": 6120.0})
    draws = await in_thread(wait_for_text, browser, "car-draws", "8.9 A")
    assert draws == "8.9 A (L1 8.9 · L2 8.8 · L3 8.9) · 6.12 kW · of 16.0 A offered"
    assert await in_thread(text_of, browser, "current-value") == "16 A"      # the setpoint
    backend.publish(current_a=[0.1, 0.0, 0.1], power={"ev_w": 40.0}, car_full=True,
                    status_code=3, status_text="Charged", vehicle_soc_pct=80.0,
                    reason="manual: SetCurrent 16 A; the car takes no current: full, or at "
                           "its own charge limit or timer")
    draws = await in_thread(wait_for_text, browser, "car-draws", "car full")
    assert draws == "car full: takes no current (of 16.0 A offered) car at 80 %"
    assert await in_thread(text_of, browser, "status-text") == "Charged"
    assert "full" in await in_thread(text_of, browser, "reason")



async def test_the_dashboard_says_whether_the_car_gets_to_its_target_in_time(browser, client,
                                                                              backend):
    backend.plan_data = {"slots": [], "ev": {
        "soc_pct": None, "assumed_soc_pct": 30.0, "target_soc_pct": 80.0, "target_kwh": None,
        "departure": "07:00", "needed_kwh": 30.0, "planned_kwh": 33.3, "late": False,
        "short_kwh": None, "late_reason": None}}
    await in_thread(fresh_page, browser, base_url(client) + "/")
    goal = await in_thread(wait_for_text, browser, "car-goal", "by 07:00")
    assert goal == ("80 % by 07:00 · on track: 33.3 kWh planned · car SoC unknown, "
                    "assumed 30 %")
    backend.plan_data = {"slots": [], "ev": {
        "soc_pct": 20.0, "assumed_soc_pct": None, "target_soc_pct": 80.0, "target_kwh": None,
        "departure": "23:00", "needed_kwh": 36.0, "planned_kwh": 6.2, "late": True,
        "short_kwh": 30.4, "late_reason": "the charger's power is not enough by departure"}}
    await in_thread(fresh_page, browser, base_url(client) + "/")
    goal = await in_thread(wait_for_text, browser, "car-goal", "late")
    assert goal == ("80 % by 23:00 · late: 30.4 kWh short (the charger's power is not "
                    "enough by departure) · car at 20 %")


async def test_the_dashboard_charts_the_power_history_it_is_given(browser, client, backend):
    import time as _time
    now = int(_time.time()) // 60 * 60
    backend.history_rows = [
        {"t": now - 120 * i, "pv_w": 1000.0 * i, "house_w": 500.0, "battery_w": -200.0,
         "grid_w": 300.0, "soc_pct": 40.0 + i, "ev_w": {"0": 7000.0 if i < 3 else None}}
        for i in range(5, -1, -1)]
    await in_thread(fresh_page, browser, base_url(client) + "/")
    await in_thread(wait_for_text, browser, "live", "live")

    def chart():
        WebDriverWait(browser, 10).until(lambda d: d.execute_script(
            "const c = document.getElementById('history-chart').chart;"
            "return c && c.data[0].length === 6;"))
        return browser.execute_script(
            "const c = document.getElementById('history-chart').chart;"
            "return [c.series.map((s) => s.label), c.data];")
    labels, data = await in_thread(chart)
    assert labels[1:] == ["PV", "House", "EV", "Battery (+ charging)", "Grid (+ import)",
                          "Battery SoC"]
    assert data[0] == [row["t"] for row in backend.history_rows]        # the service's rows
    assert data[1] == [5000.0, 4000.0, 3000.0, 2000.0, 1000.0, 0.0]     # PV
    assert data[3] == [None, None, None, 7000.0, 7000.0, 7000.0]        # EV: gaps stay gaps
    assert data[6] == [45.0, 44.0, 43.0, 42.0, 41.0, 40.0]              # SoC
    legend = await in_thread(lambda: browser.find_element(
        By.CSS_SELECTOR, "#history-chart .u-legend").text)
    assert "PV" in legend and "Battery SoC" in legend
    OUTPUT.mkdir(exist_ok=True)
    await in_thread(lambda: browser.find_element(By.ID, "history-card").screenshot(
        str(OUTPUT / "dashboard-history.png")))
    errors = [e for e in await in_thread(browser.get_log, "browser") if e["level"] == "SEVERE"]
    assert errors == []


async def test_the_sessions_page_charts_energy_solar_and_cost_per_day_and_month(browser, client,
                                                                               backend):
    from datetime import datetime

    from phaeton.store.sessions import ChargingSession
    days = [datetime(2026, 5, 3, 20), datetime(2026, 5, 3, 23), datetime(2026, 5, 4, 9),
            datetime(2026, 6, 1, 12)]
    for when, energy, share, cost in zip(days, (10.0, 5.0, 8.0, 4.0), (0.0, 0.2, 1.0, 0.5),
                                         (3.0, 1.5, 0.0, 0.6)):
        start = int(when.timestamp())                 # local time: the browser's zone is ours
        backend.store.add(ChargingSession(start, start + 3600, energy, 3600, 11000, cost, "EUR",
                                          share))
    await in_thread(fresh_page, browser, base_url(client) + "/sessions")
    await in_thread(wait_for_text, browser, "total-energy", "27.00 kWh")

    def chart(element_id):
        WebDriverWait(browser, 10).until(lambda d: d.execute_script(
            f"const c = document.getElementById('{element_id}').chart; return c && c.data;"))
        return browser.execute_script(
            f"const c = document.getElementById('{element_id}').chart;"
            "return [c.series.map((s) => s.label), c.data];")
    labels, data = await in_thread(chart, "days-chart")
    assert labels[1:] == ["Energy", "of it solar", "Cost"]
    assert data[0] == [int(datetime(2026, 5, d).timestamp()) for d in (3, 4)] + \
        [int(datetime(2026, 6, 1).timestamp())]
    assert data[1] == [15.0, 8.0, 4.0]
    assert data[2] == pytest.approx([1.0, 8.0, 2.0])
    assert data[3] == pytest.approx([4.5, 0.0, 0.6])
    _, data = await in_thread(chart, "months-chart")
    assert data[0] == [int(datetime(2026, 5, 1).timestamp()), int(datetime(2026, 6, 1).timestamp())]
    assert data[1] == [23.0, 4.0]


async def test_the_dashboard_shows_the_car_s_own_soc_its_age_and_takes_a_typed_in_one(
        browser, client, backend):
    base = base_url(client)
    await in_thread(log_in, browser, base, PASSWORD, "/")
    await in_thread(wait_for_text, browser, "auth-link", "Log out")
    assert await in_thread(text_of, browser, "car-soc") == "—"          # no car: no box
    assert not await in_thread(lambda: browser.find_element(By.ID, "car-soc-form")
                               .is_displayed())
    car = {"name": "model3", "charger": "0", "identified_by": "id_tag", "soc_pct": 63.0,
           "range_km": 287.0, "at_s": 0, "age_s": 420.0, "stale": False, "source": "mqtt",
           "problem": None, "capacity_kwh": 57.5, "manual_soc_pct": None}
    backend.publish(car=car)
    shown = await in_thread(wait_for_text, browser, "car-soc", "model3")
    assert shown == "model3 at 63 % · 287 km · 7 min ago from mqtt"
    backend.publish(car={**car, "soc_pct": 64.4, "charged_since_kwh": 0.92})
    shown = await in_thread(wait_for_text, browser, "car-soc", "64 %")
    assert shown == "model3 at 64 % · 287 km · 7 min ago from mqtt +0.9 kWh charged since"
    backend.publish(car={**car, "stale": True, "age_s": 7500.0, "charged_since_kwh": 0.0,
                         "problem": "MQTT broker 10.0.0.5: connection refused"})
    shown = await in_thread(wait_for_text, browser, "car-soc", "stale")
    assert shown == ("model3 at 63 % · 287 km · stale, 2 h 05 min ago from mqtt · "
                     "MQTT broker 10.0.0.5: connection refused")
    assert "stale" in await in_thread(
        lambda: browser.find_element(By.ID, "car-soc").get_attribute("class"))
    # the owner types the SoC in: it goes to /Vehicle/ManualSoc, as a D-Bus write would
    await in_thread(lambda: browser.find_element(By.ID, "car-soc-input").send_keys("41"))
    await in_thread(lambda: browser.find_element(
        By.CSS_SELECTOR, "#car-soc-form button").click())
    await wait_until(lambda: backend.service["/Vehicle/ManualSoc"] == 41.0)
    await in_thread(wait_for_text, browser, "control-message", "done")
    await in_thread(lambda: browser.find_element(By.ID, "car-soc-input").send_keys("140"))
    await in_thread(lambda: browser.find_element(
        By.CSS_SELECTOR, "#car-soc-form button").click())
    # the browser itself holds back 140 % (the box's 0..100); the server refuses it too
    # (tests/test_web_api.py)
    assert await in_thread(lambda: browser.execute_script(
        "return document.getElementById('car-soc-input').validity.rangeOverflow;"))
    await asyncio.sleep(0.3)
    assert backend.service["/Vehicle/ManualSoc"] == 41.0
    assert [w for w in backend.writes if w[0] == "/Vehicle/ManualSoc"] == [
        ("/Vehicle/ManualSoc", 41, 0)]
