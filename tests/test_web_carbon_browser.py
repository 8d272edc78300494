"""Carbon in the pages, in a real headless Chromium: the dashboard's carbon card and budget
banner follow the live status, the sessions page shows kg CO2 per session and per month, and
the plan page draws the grid's intensity beside the prices."""
from __future__ import annotations

import pytest
import yaml
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from phaeton.control.carbon_budget import BudgetStatus
from phaeton.snapshot import CarbonPeriod, CarbonView
from phaeton.store.sessions import ChargingSession
from phaeton.web.status import carbon_status
from tests.test_web_browser import (OUTPUT, base_url, browser, fresh_page, in_thread,  # noqa: F401
                                    log_in, plan_chart, text_of, wait_for_text)
from tests.web_fixtures import PASSWORD, backend, client  # noqa: F401

JAN = 1_767_225_600          # 2026-01-01 00:00 UTC


def carbon(level: int, usage_pct: float) -> dict:
    """The status's carbon part as the service builds it (web/status.carbon_status)."""
    budget = BudgetStatus("site", "month", "2026-01", 300.0, 3.0 * usage_pct, usage_pct,
                          400.0, 133.3, level)
    return carbon_status(CarbonView(
        intensity_g_per_kwh=312.0, today=CarbonPeriod("2026-01-20", 3.0, 1.5, 2.0),
        month=CarbonPeriod("2026-01", 200.0, 50.0, 80.0),
        year=CarbonPeriod("2026", 200.0, 50.0, 80.0), budgets=(budget,), budget_state=level))


def shown(driver, element_id: str) -> bool:
    return driver.find_element(By.ID, element_id).is_displayed()


def severe_errors(driver) -> list:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


async def test_the_dashboard_shows_carbon_and_the_budget_banner_as_levels_change(
        browser, client, backend):
    await in_thread(fresh_page, browser, base_url(client) + "/")
    await in_thread(wait_for_text, browser, "live", "live")
    # without a carbon source there is no carbon card and no banner
    assert not await in_thread(shown, browser, "carbon-card")
    assert not await in_thread(shown, browser, "carbon-banner")

    backend.publish(carbon=carbon(0, 50.0))
    await in_thread(wait_for_text, browser, "carbon-intensity", "312 g/kWh")
    assert await in_thread(shown, browser, "carbon-card")
    assert await in_thread(text_of, browser, "carbon-today") == "4.5 kg (EV 1.5 kg)"
    assert await in_thread(text_of, browser, "carbon-month") == "250.0 kg (EV 50.0 kg)"
    assert await in_thread(text_of, browser, "carbon-budget") == \
        "site month: 50 % of 300 kg, heading for 400 kg"
    assert not await in_thread(shown, browser, "carbon-banner")   # below the warning

    backend.publish(carbon=carbon(1, 83.0))
    banner = await in_thread(wait_for_text, browser, "carbon-banner", "warning")
    assert banner == ("Carbon budget warning: the site used 83 % of its monthly 300 kg CO2 "
                      "budget (2026-01)")
    classes = await in_thread(lambda: browser.find_element(By.ID, "carbon-banner")
                              .get_attribute("class"))
    assert "warn" in classes.split() and "error" not in classes.split()

    backend.publish(carbon=carbon(2, 96.0))
    await in_thread(wait_for_text, browser, "carbon-banner", "critical")
    classes = await in_thread(lambda: browser.find_element(By.ID, "carbon-banner")
                              .get_attribute("class"))
    assert "error" in classes.split()
    assert "96 %" in await in_thread(text_of, browser, "carbon-banner")

    backend.publish(carbon=None)                  # the source was switched off
    await in_thread(lambda: WebDriverWait(browser, 10).until(
        lambda d: not shown(d, "carbon-card")))
    assert not await in_thread(shown, browser, "carbon-banner")
    assert await in_thread(severe_errors, browser) == []


async def test_the_sessions_page_shows_co2_per_session_and_per_month(browser, client, backend):
    for day, energy, co2 in ((1, 10.0, 4.0), (2, 5.0, None), (40, 20.0, 2.5)):
        start = JAN + day * 86400
        backend.store.add(ChargingSession(start, start + 3600, energy, 3600, 11000, 1.0, "EUR",
                                          0.0, co2_kg=co2))
    await in_thread(fresh_page, browser, base_url(client) + "/sessions")
    total = await in_thread(wait_for_text, browser, "total-co2", "kg")
    assert total == "6.50 kg (2 of 3 sessions)"   # the session without a source is not a 0
    cells = await in_thread(lambda: [c.text for c in browser.find_elements(
        By.CSS_SELECTOR, "#rows tr:not(.running) td.co2")])
    assert cells == ["2.50 kg", "—", "4.00 kg"]    # newest first
    months = await in_thread(lambda: {r.get_attribute("data-month"): r.find_element(
        By.CSS_SELECTOR, "td.co2").text for r in browser.find_elements(By.CSS_SELECTOR,
                                                                      "#months tr")})
    assert months == {"2026-02": "2.50 kg", "2026-01": "4.00 kg"}
    assert await in_thread(severe_errors, browser) == []


def _plan(intensities: list[float | None] | None) -> dict:
    start = 1_780_000_000
    slots = [{"start_s": start + i * 3600, "import_eur_per_kwh": 0.30 - 0.02 * i,
              "export_eur_per_kwh": 0.05, "ev_kwh": 7.0 if i >= 5 else 0.0,
              "battery_kwh": 0.0, "soc_pct": 50.0, "pv_kwh": 0.0, "load_kwh": 0.3,
              "why": "greenest hours for the EV" if i >= 5 else "idle",
              "intensity_g_per_kwh": None if intensities is None else intensities[i]}
             for i in range(8)]
    return {"slots": slots, "total_cost_eur": 4.56, "savings_eur": 1.23,
            "ev_delivered_kwh": 21.0, "shortfall": None, "warnings": [], "strategy": "optimise",
            "currency": "EUR",
            "objective": "carbon" if intensities else "cost",
            "co2_kg": 3.21 if intensities else None, "state": {}}


async def test_the_plan_page_draws_the_grid_intensity_beside_the_prices(browser, client,
                                                                        backend):
    grams = [600.0, 650.0, 700.0, None, 300.0, 150.0, 120.0, 100.0]   # one slot unknown
    backend.plan_data = _plan(grams)
    await in_thread(fresh_page, browser, base_url(client) + "/schedule")
    summary = await in_thread(wait_for_text, browser, "plan-summary", "kg")
    assert await in_thread(text_of, browser, "plan-co2") == "3.2 kg"
    assert await in_thread(text_of, browser, "plan-objective") == "CO2"

    labels, data = await in_thread(plan_chart, browser)
    assert labels[-1] == "Grid CO2"                        # beside the prices, its own scale
    assert data[-1] == grams                               # the unknown slot stays a gap
    assert data[1] == pytest.approx([0.30 - 0.02 * i for i in range(8)])
    axes = await in_thread(lambda: browser.execute_script(
        "return document.getElementById('plan-chart').chart.axes.map((a) => a.label);"))
    assert "EUR/kWh" in axes and "kWh per slot" in axes     # a phone: two axes, the rest
    assert "g CO2/kWh" not in axes                          # in the legend
    OUTPUT.mkdir(exist_ok=True)
    await in_thread(lambda: browser.find_element(By.ID, "plan").screenshot(
        str(OUTPUT / "plan-with-carbon.png")))
    header = await in_thread(lambda: [h.text for h in browser.find_elements(
        By.CSS_SELECTOR, "#plan-table thead th")])
    assert header[:3] == ["Start", "EUR/kWh", "g CO2/kWh"]
    cells = await in_thread(lambda: [c.text for c in browser.find_elements(
        By.CSS_SELECTOR, "#plan-table td.carbon")])
    assert cells == ["600", "650", "700", "—", "300", "150", "120", "100"]
    assert "kg" in summary and await in_thread(severe_errors, browser) == []

    # a plan without a carbon source: no line, no column, no CO2 in the summary
    backend.plan_data = _plan(None)
    await in_thread(fresh_page, browser, base_url(client) + "/schedule")
    await in_thread(wait_for_text, browser, "plan-summary", "4.56")
    labels, _ = await in_thread(plan_chart, browser)
    assert "Grid CO2" not in labels
    assert await in_thread(lambda: browser.find_elements(
        By.CSS_SELECTOR, "#plan-table td.carbon, #plan-co2, #plan-objective")) == []
    header = await in_thread(lambda: [h.text for h in browser.find_elements(
        By.CSS_SELECTOR, "#plan-table thead th")])
    assert "g CO2/kWh" not in header


async def test_the_owner_picks_the_greenest_plan_and_budget_levels_in_the_settings(
        browser, client, backend):
    """planner.objective and the carbon budget are in the settings form; a warning level at or
    above the critical one is refused there with its reason and nothing is saved."""
    before = backend.config_file.read_text()
    await in_thread(log_in, browser, base_url(client), PASSWORD, "/settings")

    def fill(warning: str) -> None:
        objective = WebDriverWait(browser, 10).until(
            lambda d: d.find_element(By.ID, "cfg-planner.objective"))
        Select(objective).select_by_visible_text("carbon")
        for key, value in (("warning_pct", warning), ("critical_pct", "90")):
            field = browser.find_element(By.ID, "cfg-carbon.budget." + key)
            field.clear()
            field.send_keys(value)
        browser.find_element(By.ID, "save-settings").click()
    await in_thread(fill, "90")
    problem = await in_thread(wait_for_text, browser, "problem-carbon.budget.warning_pct",
                              "must be below")
    assert problem.strip() == ("carbon.budget.warning_pct: must be below "
                               "carbon.budget.critical_pct (90 %): a warning at or above the "
                               "critical level is never seen, got 90")
    assert backend.config_file.read_text() == before

    await in_thread(fill, "70")
    await in_thread(wait_for_text, browser, "settings-message", "saved")
    saved = yaml.safe_load(backend.config_file.read_text())
    assert saved["planner"]["objective"] == "carbon"
    assert saved["carbon"]["budget"]["warning_pct"] == 70
    assert saved["carbon"]["budget"]["critical_pct"] == 90
