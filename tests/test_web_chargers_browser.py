"""Several chargers in the pages, in a real headless Chromium: one card per charger on the
dashboard, each card's controls reach only its charger's D-Bus service, the power flow shows
every charger's power, and the sessions page names each session's charger."""
from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from phaeton.store.sessions import ChargingSession
from tests.test_web_browser import (OUTPUT, base_url, browser, fresh_page, in_thread,  # noqa: F401
                                    log_in, text_of, wait_for_text, wait_until)
from tests.web_backend_for_tests import STATUS_OF_PATH, WebBackendForTests
from tests.web_fixtures import PASSWORD, backend, client, start_client  # noqa: F401

IDS = ["0", "garage_left"]
SECOND = "garage_left"


@pytest.fixture
async def backend2(private_bus, tmp_path):
    made = await WebBackendForTests.create(tmp_path, bus_address=private_bus, chargers=IDS)
    yield made
    await made.close()


@pytest.fixture
async def client2(backend2):
    made = await start_client(backend2)
    yield made
    await made.close()


def card(driver, charger_id: str):
    return driver.find_element(By.CSS_SELECTOR, f'section.charger-card[data-charger="{charger_id}"]')


def part_text(driver, charger_id: str, part: str) -> str:
    return card(driver, charger_id).find_element(By.CSS_SELECTOR, f'[data-part="{part}"]').text


def wait_for_part(driver, charger_id: str, part: str, expected: str, timeout_s: float = 10):
    WebDriverWait(driver, timeout_s).until(
        lambda d: expected in part_text(d, charger_id, part))
    return part_text(driver, charger_id, part)


def pressed(driver, charger_id: str, part: str) -> str:
    return card(driver, charger_id).find_element(
        By.CSS_SELECTOR, f'[data-part="{part}"]').get_attribute("aria-pressed")


def values(service) -> dict:
    return {path: service[path] for path in STATUS_OF_PATH}


async def test_the_dashboard_has_a_card_per_charger_and_every_chargers_power(browser, client2,
                                                                           backend2):
    await in_thread(fresh_page, browser, base_url(client2) + "/")
    await in_thread(wait_for_text, browser, "live", "live")
    await in_thread(wait_for_part, browser, SECOND, "reason", "auto: 3.7 kW of solar surplus")
    cards = await in_thread(lambda: [(c.get_attribute("data-charger"), c.find_element(
        By.CSS_SELECTOR, "h2").text) for c in browser.find_elements(
        By.CSS_SELECTOR, "section.charger-card")])
    assert cards == [("0", "CHARGER 0"), (SECOND, "CHARGER GARAGE_LEFT")]  # h2 is upper case
    assert await in_thread(part_text, browser, "0", "reason") == "manual: 16 A requested"
    assert await in_thread(pressed, browser, "0", "mode-0") == "true"
    assert await in_thread(pressed, browser, SECOND, "mode-1") == "true"
    assert await in_thread(pressed, browser, SECOND, "phases-1") == "true"
    assert await in_thread(part_text, browser, SECOND, "charger-ev-w") == "3.68 kW"
    assert "0.50 kWh" in await in_thread(part_text, browser, SECOND, "charger-session")
    # the power flow: the EV box has the sum, and each charger's power is listed
    assert await in_thread(text_of, browser, "ev-w") == "14.7 kW"
    assert await in_thread(text_of, browser, "ev-chargers") == (
        "EV · Charger 0\n11.0 kW\nEV · Charger garage_left\n3.68 kW")
    # the single-charger session card gives way to each card's session line
    assert not await in_thread(lambda: browser.find_element(By.ID, "session-state").is_displayed())
    # a tick that changes the second charger shows in its card only
    backend2.publish_charger(SECOND, reason="auto: cloud, waiting for 1.4 kW more surplus",
                             ev_w=0.0, charger={"name": "Garage left"})
    await in_thread(wait_for_part, browser, SECOND, "reason", "waiting for 1.4 kW")
    await in_thread(wait_for_text, browser, "ev-w", "11.0 kW")
    assert await in_thread(part_text, browser, SECOND, "charger-title") == "GARAGE LEFT"
    assert await in_thread(part_text, browser, "0", "reason") == "manual: 16 A requested"
    OUTPUT.mkdir(exist_ok=True)
    assert await in_thread(browser.save_screenshot, str(OUTPUT / "dashboard-two-chargers.png"))
    errors = [entry for entry in await in_thread(browser.get_log, "browser")
              if entry["level"] == "SEVERE"]
    assert errors == []


async def test_a_click_on_the_second_cards_control_reaches_only_the_second_charger(
        browser, client2, backend2):
    first_before = values(backend2.services["0"])
    await in_thread(log_in, browser, base_url(client2), PASSWORD, "/")
    await in_thread(wait_for_text, browser, "auth-link", "Log out")
    await in_thread(wait_for_part, browser, SECOND, "status-text", "Charging")

    def click(charger_id: str, part: str) -> None:
        card(browser, charger_id).find_element(By.CSS_SELECTOR, f'[data-part="{part}"]').click()

    await in_thread(click, SECOND, "mode-2")
    await wait_until(lambda: backend2.services[SECOND]["/Mode"] == 2)
    await in_thread(lambda: WebDriverWait(browser, 10).until(
        lambda d: pressed(d, SECOND, "mode-2") == "true"))
    assert await in_thread(pressed, browser, SECOND, "mode-1") == "false"
    assert await in_thread(pressed, browser, "0", "mode-0") == "true"
    assert await in_thread(part_text, browser, SECOND, "control-message") == "done"
    assert await in_thread(part_text, browser, "0", "control-message") == ""
    await in_thread(click, SECOND, "start-stop")
    await wait_until(lambda: backend2.services[SECOND]["/StartStop"] == 0)
    await in_thread(wait_for_part, browser, SECOND, "start-stop", "Start charging")
    assert await in_thread(part_text, browser, "0", "start-stop") == "Stop charging"
    await in_thread(click, SECOND, "phases-3")
    await wait_until(lambda: backend2.services[SECOND]["/SetPhases"] == 3)
    assert values(backend2.services["0"]) == first_before
    assert [(w[0], w[1]) for w in backend2.charger_writes] == [
        (SECOND, "/Mode"), (SECOND, "/StartStop"), (SECOND, "/SetPhases")]
    # and the first card still reaches the first charger
    await in_thread(click, "0", "mode-1")
    await wait_until(lambda: backend2.services["0"]["/Mode"] == 1)
    assert backend2.services[SECOND]["/Mode"] == 2


async def test_the_second_cards_controls_without_login_are_refused(browser, client2, backend2):
    await in_thread(fresh_page, browser, base_url(client2) + "/")
    await in_thread(wait_for_part, browser, SECOND, "status-text", "Charging")
    await in_thread(lambda: card(browser, SECOND).find_element(
        By.CSS_SELECTOR, '[data-part="mode-2"]').click())
    assert "Log in" in await in_thread(wait_for_part, browser, SECOND, "control-message",
                                       "log in")
    assert backend2.writes == []


async def test_one_charger_looks_as_before(browser, client, backend):
    await in_thread(fresh_page, browser, base_url(client) + "/")
    await in_thread(wait_for_text, browser, "status-text", "Charging")
    assert len(await in_thread(browser.find_elements, By.CSS_SELECTOR,
                               "section.charger-card")) == 1
    assert await in_thread(text_of, browser, "charger-title") == "CHARGER"
    assert await in_thread(browser.execute_script,
                           "return document.body.classList.contains('multi')") is False
    assert not await in_thread(lambda: browser.find_element(By.ID, "ev-chargers").is_displayed())
    assert await in_thread(lambda: browser.find_element(By.ID, "session-state").is_displayed())
    assert await in_thread(text_of, browser, "ev-w") == "11.0 kW"


async def test_the_sessions_page_names_each_sessions_charger_and_filters_by_it(
        browser, client2, backend2):
    for day, (charger, energy) in enumerate([("0", 12.5), (SECOND, 7.5), (SECOND, 2.5)]):
        start = 1_780_000_000 + day * 86400
        backend2.store.add(ChargingSession(start, start + 3600, energy, 3600, 11000, 2.0, "EUR",
                                           0.5, loadpoint=charger))
    backend2.publish_charger(SECOND, charger={"name": "Garage left"})
    await in_thread(fresh_page, browser, base_url(client2) + "/sessions")
    await in_thread(wait_for_text, browser, "total-energy", "22.50 kWh")

    def chargers_in_rows(rows: str = "tr:not(.running)") -> list[str]:
        return [c.text for c in browser.find_elements(By.CSS_SELECTOR, f"#rows {rows} td.charger")]
    assert await in_thread(chargers_in_rows) == ["Garage left", "Garage left", "Charger 0"]
    # both chargers have a session under way: each on top, named
    assert await in_thread(chargers_in_rows, "tr.running") == ["Charger 0", "Garage left"]
    headers = await in_thread(lambda: [h.text for h in browser.find_elements(
        By.CSS_SELECTOR, "thead th")])
    assert headers[:2] == ["Start", "Charger"]

    def pick_second() -> None:
        browser.find_element(By.CSS_SELECTOR, f'#charger option[value="{SECOND}"]').click()
        browser.find_element(By.CSS_SELECTOR, "#filter button[type=submit]").click()
    await in_thread(pick_second)
    await in_thread(wait_for_text, browser, "total-energy", "10.00 kWh")
    assert await in_thread(chargers_in_rows) == ["Garage left", "Garage left"]
    assert await in_thread(chargers_in_rows, "tr.running") == ["Garage left"]
    assert f"charger_id={SECOND}" in await in_thread(
        lambda: browser.find_element(By.ID, "csv").get_attribute("href"))
    errors = [entry for entry in await in_thread(browser.get_log, "browser")
              if entry["level"] == "SEVERE"]
    assert errors == []
